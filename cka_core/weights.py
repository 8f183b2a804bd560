"""A model's weights are not activations: telling them apart, in one place.

CKA compares the activations of the same examples; a state_dict (``fc1.weight``, ``bn.running_mean``)
has rows that are units, not examples, and comparing it gives a number that means nothing. Every
path that reads arrays (an upload, the command line, ``--stream``, a folder of arrays) asks
:func:`weights_reason` before comparing.
"""
from __future__ import annotations

import re

import numpy as np

from .errors import RepresentationError

#: Names of arrays that hold class labels, not activations: never compared as a layer.
LABEL_KEYS = ("labels", "y", "targets")

#: Names that parameters have in a torch state_dict, not activations.
WEIGHT_NAME = re.compile(r"(^|[._/])(weight|bias|running_mean|running_var|num_batches_tracked|in_proj_weight|"
                         r"in_proj_bias)$")


def activation_layers(arrays: dict[str, np.ndarray], filename: str) -> dict[str, np.ndarray]:
    """The arrays of a file that are activations: everything but the labels (:data:`LABEL_KEYS`).
    A file that looks like a model's weights (see :func:`weights_reason`) is refused."""
    layers = {k: v for k, v in arrays.items() if k not in LABEL_KEYS}
    if not layers:
        raise RepresentationError(f"{filename!r} only holds labels ({', '.join(arrays)}); add an array of "
                                  "activations (one row per example).")
    reason = weights_reason(layers)
    if reason is not None:
        raise RepresentationError(
            f"{filename!r} looks like a model's weights (a state_dict), not activations: {reason}. CKA compares "
            "the activations of the same examples. Load the model itself (Compare → Your model: a Hugging Face "
            "directory, .onnx or .pt2), or capture its layers on your inputs with cka_core.capture(model, inputs, "
            "layers) and save that: np.savez('acts.npz', **acts).")
    return layers


def weights_reason(arrays: dict[str, np.ndarray]) -> str | None:
    """Why ``arrays`` look like parameters rather than activations, or None. Parameters are named
    after what they are (``fc1.weight``, ``bn.running_mean``) and mix vectors (biases) with matrices
    whose rows are units, not examples."""
    names = list(arrays)
    named = [k for k in names if WEIGHT_NAME.search(k)]
    vectors = [k for k in names if arrays[k].ndim == 1]
    if named and len(named) * 2 >= len(names):
        return f"{len(named)} of its {len(names)} arrays are named like parameters ({', '.join(named[:3])}…)"
    if named and vectors and len(vectors) < len(names):
        return (f"it mixes 1-d vectors ({', '.join(vectors[:2])}) with matrices and has parameter names "
                f"({', '.join(named[:2])})")
    return None
