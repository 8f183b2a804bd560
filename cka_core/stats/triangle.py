"""Is a dissimilarity between layers a distance? The triangle inequality over every triple.

A score such as 1 - CKA can be 0 for the same layer and symmetric, and still not be a distance:
d(i, k) > d(i, j) + d(j, k) for some triple, so "A is close to B and B to C" says nothing about A
and C. arccos(CKA) and the generalized shape metrics are distances (docs/theory.md §8.1).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import RepresentationError


@dataclass(frozen=True)
class TriangleCheck:
    """The triangle inequality d(i, k) <= d(i, j) + d(j, k) over every triple of distinct items."""

    triples: int                  # ordered triples (i, j, k), all distinct: L (L - 1) (L - 2)
    violations: int               # triples with excess above the tolerance
    worst_excess: float           # max of d(i, k) - d(i, j) - d(j, k); <= 0 when none is broken
    worst_triple: tuple[int, int, int] | None

    @property
    def holds(self) -> bool:
        return self.violations == 0


def triangle_excess(distances) -> np.ndarray:
    """(L, L, L) array of d(i, k) - d(i, j) - d(j, k) at [i, j, k] (NaN where two indices coincide)."""
    d = np.asarray(distances, dtype=np.float64)
    if d.ndim != 2 or d.shape[0] != d.shape[1]:
        raise RepresentationError(f"distances must be a square (L, L) matrix, got shape {d.shape}.")
    if not np.isfinite(d).all():
        raise RepresentationError("distances hold a NaN or infinite value (a constant layer?); drop that layer first.")
    excess = d[:, None, :] - d[:, :, None] - d[None, :, :]
    same = np.eye(len(d), dtype=bool)
    excess[same[:, :, None] | same[:, None, :] | same[None, :, :]] = np.nan
    return excess


def triangle_check(distances, tolerance: float = 1e-9) -> TriangleCheck:
    """Count the triples that break the triangle inequality by more than ``tolerance`` (round-off)."""
    excess = triangle_excess(distances)
    count = len(excess)
    triples = count * (count - 1) * (count - 2)
    if triples == 0:
        return TriangleCheck(0, 0, float("-inf"), None)
    worst = np.unravel_index(np.nanargmax(excess), excess.shape)
    return TriangleCheck(triples, int(np.sum(excess > tolerance)), float(excess[worst]),
                         tuple(int(i) for i in worst))
