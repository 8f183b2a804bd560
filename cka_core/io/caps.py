"""How much one model file may cost: the caps, declared once, with the host's settings.

A model file comes from a stranger on a hosted demo, so every size it claims is checked against
these caps *before* anything of that size is allocated or built, and what cannot be judged
beforehand (a loop's real trip count, a slow operator) runs in a worker process with a memory
limit and a clock (:mod:`cka_core.models.worker`). Each cap is settable by the host through the
environment variable beside it; the defaults suit one 2-core, 24 GB machine serving a class.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, fields

from ..errors import RepresentationError

MiB = 2**20


@dataclass(frozen=True)
class ModelCaps:
    """The caps in force (see :func:`current`). Sizes in bytes, times in seconds."""

    #: Bytes all members of one archive (a model .zip, a .pt2, a .zip of images) may inflate to.
    archive_bytes: int = 4096 * MiB
    #: How many times its stored size one zip member may inflate to (real weights barely compress;
    #: text files reach ~10:1). A zip bomb inflates ~1000:1, so it is refused after reading little.
    inflation_ratio: int = 200
    #: Values in a model's weights and constants, counted from its config, graph or header before
    #: anything is built (500M float32 values = 2 GB; BERT-large has 340M).
    parameters: int = 500_000_000
    #: Bytes of one tensor a model forms on one batch, where its shapes are known before running.
    activation_bytes: int = 1024 * MiB
    #: Blocks (hidden layers) a configuration may ask for.
    layers: int = 256
    #: Trips of an ONNX Loop whose count is a constant in the graph.
    loop_trips: int = 1_000_000
    #: Address space a model's worker process may add to what it holds after start-up.
    memory_bytes: int = 4096 * MiB
    #: Seconds to load a model (checks, build, the probe forward pass).
    load_seconds: float = 120.0
    #: Seconds for one batch's forward pass.
    forward_seconds: float = 60.0


#: The environment variable that sets each cap, and the unit it is given in.
ENVIRONMENT = {
    "archive_bytes": ("CKA_MODEL_ARCHIVE_MB", MiB),
    "inflation_ratio": ("CKA_MODEL_INFLATION_RATIO", 1),
    "parameters": ("CKA_MODEL_PARAMETERS", 1),
    "activation_bytes": ("CKA_MODEL_ACTIVATION_MB", MiB),
    "layers": ("CKA_MODEL_LAYERS", 1),
    "loop_trips": ("CKA_MODEL_LOOP_TRIPS", 1),
    "memory_bytes": ("CKA_MODEL_MEMORY_MB", MiB),
    "load_seconds": ("CKA_MODEL_LOAD_SECONDS", 1),
    "forward_seconds": ("CKA_MODEL_FORWARD_SECONDS", 1),
}


def current() -> ModelCaps:
    """The defaults, with each cap the host set in the environment (read on every call, so a test
    or a host can change them without a restart). A malformed setting is a RepresentationError naming it."""
    settings = {}
    for field in fields(ModelCaps):
        variable, unit = ENVIRONMENT[field.name]
        text = os.environ.get(variable)
        if text is None or not text.strip():
            continue
        try:
            value = float(text)
        except ValueError:
            raise RepresentationError(f"{variable}={text!r} is not a number; set it to a positive number or unset it.") from None
        if not value > 0:
            raise RepresentationError(f"{variable}={text!r} must be positive; unset it for the default.")
        settings[field.name] = int(value * unit) if field.type in (int, "int") else value * unit
    return ModelCaps(**settings)

