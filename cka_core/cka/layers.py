"""Which layers one comparison holds: the unique layers U (side a, or a + b) and the pairs a heatmap
needs."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import RepresentationError
from .validation import as_layers


@dataclass(frozen=True)
class LayerLayout:
    """Which layers are compared: U = a (self-comparison) or U = a + b."""

    names_a: tuple[str, ...]
    names_b: tuple[str, ...]
    widths: tuple[int, ...]  # widths of the unique layers U
    self_compare: bool

    @property
    def names(self) -> tuple[str, ...]:
        """Names of the unique layers U, in order."""
        return self.names_a + (() if self.self_compare else self.names_b)

    @property
    def n_a(self) -> int:
        return len(self.names_a)

    @property
    def index_b(self) -> list[int]:
        """Position in U of each layer of side b."""
        return list(range(self.n_a)) if self.self_compare else list(range(self.n_a, len(self.widths)))

    def pairs(self) -> list[tuple[int, int]]:
        """Pairs (l, m), l <= m in U, whose cross statistics a heatmap needs (self pairs included)."""
        needed = {(k, k) for k in range(len(self.widths))}
        for i in range(self.n_a):
            for j in self.index_b:
                needed.add((min(i, j), max(i, j)))
        return sorted(needed)


def layer_layout(layers_a, layers_b, check_finite: bool = True) -> tuple[LayerLayout, list[torch.Tensor]]:
    names_a, tensors_a = as_layers(layers_a, "layers_a", check_finite=check_finite)
    if layers_b is None:
        names_b, tensors_b, unique = names_a, tensors_a, tensors_a
    else:
        names_b, tensors_b = as_layers(layers_b, "layers_b", check_finite=check_finite)
        unique = tensors_a + tensors_b
    if tensors_a[0].shape[0] != tensors_b[0].shape[0]:
        raise RepresentationError(
            f"layers_a have {tensors_a[0].shape[0]} examples but layers_b have {tensors_b[0].shape[0]}; CKA "
            "compares the same examples seen by two representations, so both need one row per example in the same order."
        )
    device = tensors_a[0].device
    unique = [t.to(device) for t in unique]
    structure = LayerLayout(tuple(names_a), tuple(names_b), tuple(t.shape[1] for t in unique), layers_b is None)
    return structure, unique
