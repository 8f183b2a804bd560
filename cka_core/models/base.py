"""What every loaded model offers, and the loop that turns its layers into representations.

A :class:`LoadedModel` knows its layers (name, per-example shape), what its inputs are (text with
its own tokenizer, images with its own processor, or arrays), how to turn a batch of
:class:`~cka_core.models.inputs.Examples` into the tensors it reads, and how to run them and return
the chosen layers. :func:`represent` runs every batch, reduces each layer as it goes (so memory
holds the reduced rows, never every token of every layer) and reports progress; a ``should_stop``
callback ends it between batches.
"""
from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..errors import RepresentationError
from . import reduction
from .inputs import Examples


@dataclass(frozen=True)
class Layer:
    name: str
    shape: tuple[int, ...]   # per-example output shape on the probe examples (the token count varies)
    kind: str                # reduction.TOKENS, MAP or VECTOR


@dataclass
class Feed:
    """One batch as the model reads it, and which tokens are real (None: no padding)."""

    tensors: dict
    mask: np.ndarray | None = None


class LoadedModel(ABC):
    """A network loaded from a file: Hugging Face, ONNX or torch.export."""

    format: str = ""
    name: str = ""
    digest: str = ""          # SHA-256 of what it was loaded from: its identity in caches and exports
    input_kind: str = ""      # inputs.TEXT, IMAGE or ARRAY
    input_names: tuple[str, ...] = ()
    layers: tuple[Layer, ...] = ()
    default_layers: tuple[str, ...] = ()

    def layer(self, name: str) -> Layer:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise RepresentationError(f"{self.name} has no layer {name!r}; its layers are: "
                                  f"{', '.join(l.name for l in self.layers[:40])}"
                                  f"{' …' if len(self.layers) > 40 else ''}.")

    @abstractmethod
    def feed(self, examples: Examples) -> Feed:
        """The batch ``examples`` as the model's input tensors (tokenised, processed or checked)."""

    @abstractmethod
    def run(self, feed: Feed, layers: tuple[str, ...]) -> dict[str, np.ndarray]:
        """The outputs (batch, ...) of ``layers`` for one batch."""

    def close(self) -> None:
        """Release what the model holds outside this process (a worker's process); in-process, nothing."""

    def describe(self) -> dict:
        """What an export records about the model."""
        return {"format": self.format, "name": self.name, "sha256": self.digest, "inputs": self.input_kind}


def default_layers(layers: tuple[Layer, ...]) -> tuple[str, ...]:
    """The layers offered first when a model is named after its modules: the blocks of its outermost
    repeated stack (names ending in a number, e.g. encoder.layer.3, not the blocks inside a block),
    after the shallowest embedding module; without such blocks, the top-level modules."""
    blocks = [layer.name for layer in layers if layer.name.split(".")[-1].isdigit()
              and not any(part.isdigit() for part in layer.name.split(".")[:-1])]  # the outermost stack
    embeddings = sorted((layer.name for layer in layers if "embed" in layer.name.split(".")[-1].lower()),
                        key=lambda name: name.count("."))
    if blocks:
        return tuple(embeddings[:1] + blocks)
    return tuple(layer.name for layer in layers if "." not in layer.name) or tuple(l.name for l in layers[:12])


@dataclass(frozen=True)
class Representations:
    """Reduced layers of one model on some examples: name -> (rows, d) float64, and each row's example."""

    layers: dict
    example_of_row: np.ndarray
    reduction: str
    examples_digest: str


Progress = Callable[[int, int, float], None]  # (examples done, total, seconds so far)


def represent(model: LoadedModel, examples: Examples, layers, how: str, *, batch_size: int = 32,
              progress: Progress | None = None, should_stop: Callable[[], bool] | None = None) -> Representations:
    """Run ``examples`` through ``model`` in batches and reduce each chosen layer (``how``: a key of
    :data:`reduction.REDUCTIONS`, applied to token sequences or feature maps; vectors stay as they are).

    Raises :class:`Stopped` when ``should_stop()`` turns true between batches."""
    return represent_all(model, examples, layers, (how,), batch_size=batch_size, progress=progress,
                         should_stop=should_stop)[how]


def represent_all(model: LoadedModel, examples: Examples, layers, hows, *, batch_size: int = 32,
                  progress: Progress | None = None,
                  should_stop: Callable[[], bool] | None = None) -> dict[str, Representations]:
    """:func:`represent` for several reductions from one forward pass: reduction -> representations."""
    layers, hows = tuple(layers), tuple(dict.fromkeys(hows))
    if not layers:
        raise RepresentationError("choose at least one layer.")
    for name in layers:
        model.layer(name)
    unknown = [how for how in hows if how not in reduction.REDUCTIONS]
    if unknown or not hows:
        raise RepresentationError(f"unknown reduction {unknown[0] if unknown else None!r}; choose one of: "
                                  f"{', '.join(reduction.REDUCTIONS)}.")
    n = len(examples)
    start = time.perf_counter()
    parts = {how: {name: [] for name in layers} for how in hows}
    owners: dict[str, list[np.ndarray]] = {how: [] for how in hows}
    for first in range(0, n, batch_size):
        if should_stop is not None and should_stop():
            raise Stopped(first, n)
        batch = examples.batch(first, min(n, first + batch_size))
        feed = model.feed(batch)
        outputs = model.run(feed, layers)
        for how in hows:
            rows = None
            for name in layers:
                values = np.asarray(outputs[name])
                how_here = how if _applies(how, values.ndim) else _default_for(values.ndim)
                parts[how][name].append(np.asarray(reduction.reduce(values, how_here, feed.mask), dtype=np.float64))
                counts = reduction.rows_per_example(how_here, values.shape, feed.mask)
                if rows is None:
                    rows = counts
                elif not np.array_equal(rows, counts):
                    raise RepresentationError(
                        f"with '{how}' the layers give different numbers of rows per example ({name!r} differs); "
                        "pick layers of one kind, or a reduction that gives one row per example (mean, first, "
                        "last, avg_pool, flatten).")
            owners[how].append(np.repeat(np.arange(first, first + len(batch)), rows))
        if progress is not None:
            progress(min(n, first + batch_size), n, time.perf_counter() - start)
    return {how: Representations({name: _stack(parts[how][name], name) for name in layers},
                                 np.concatenate(owners[how]), how, examples.digest) for how in hows}


def _applies(how: str, ndim: int) -> bool:
    return (ndim == 3 and how in reduction.TOKEN_REDUCTIONS) or (ndim == 4 and how in reduction.MAP_REDUCTIONS)


def _default_for(ndim: int) -> str:
    """Layers the chosen reduction does not apply to (a vector among token layers) keep one row per
    example: the default of their own kind."""
    return reduction.DEFAULTS[reduction.TOKENS] if ndim == 3 else reduction.DEFAULTS[reduction.MAP] if ndim == 4 \
        else "flatten"


def _stack(parts: list[np.ndarray], name: str) -> np.ndarray:
    widths = {p.shape[1] for p in parts}
    if len(widths) > 1:
        raise RepresentationError(f"layer {name!r} has a different width in different batches ({sorted(widths)}): "
                                  "with 'flatten' a token layer's width depends on the padded length; use 'mean'.")
    return np.concatenate(parts)


class Stopped(Exception):
    """The run was stopped between batches."""

    def __init__(self, done: int, total: int):
        super().__init__(f"stopped after {done} of {total} examples")
        self.done, self.total = done, total
