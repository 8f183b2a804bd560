"""A model as the grounding tests take it: plain arrays, no framework object."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from ..errors import RepresentationError

__all__ = ["Member", "accuracy"]


def accuracy(logits, labels) -> float:
    """Share of rows whose largest logit is the label's."""
    logits, labels = np.asarray(logits), np.asarray(labels).reshape(-1)
    if logits.ndim != 2 or logits.shape[0] != labels.shape[0]:
        raise RepresentationError(f"accuracy needs (n, classes) logits and n labels, got shapes {logits.shape} "
                                  f"and {labels.shape}.")
    return float(np.mean(np.argmax(logits, axis=1) == labels))


@dataclass(frozen=True)
class Member:
    """One model of a group, on the inputs every model of the group reads (same rows, same order).

    ``layers``: named activations (n, d_l) in forward order; the *last* is the one compared between
    models (ReSi compares the last hidden layer), all of them are compared within the model (layer
    monotonicity). ``logits`` (n, c) and ``labels`` (n,) give the output and accuracy tests their
    ground truth; ``group`` is the model's group in a group-separation test; ``inputs`` (n, ...) are
    what the layers were computed from (deconfounded CKA regresses them out).
    """

    name: str
    layers: Mapping[str, np.ndarray]
    logits: np.ndarray | None = None
    labels: np.ndarray | None = None
    group: str | None = None
    inputs: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self):
        if not self.layers:
            raise RepresentationError(f"model {self.name!r} has no layers; give at least one (n, d) activation.")
        rows = {np.shape(a)[0] for a in self.layers.values()}
        if self.logits is not None:
            rows.add(np.shape(self.logits)[0])
        if len(rows) != 1:
            raise RepresentationError(f"model {self.name!r}: its layers and logits have different numbers of rows "
                                      f"({sorted(rows)}); every array must hold the same examples.")

    @property
    def compared(self) -> str:
        """The layer compared between models: the last of ``layers``."""
        return list(self.layers)[-1]

    @property
    def accuracy(self) -> float:
        if self.logits is None or self.labels is None:
            raise RepresentationError(f"model {self.name!r} has no logits and labels, so no accuracy; give both.")
        return accuracy(self.logits, self.labels)
