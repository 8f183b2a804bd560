"""Corrections for testing every cell of a layer x layer matrix at once: Holm (family-wise error)
and Benjamini-Hochberg (false discovery rate) adjusted p-values.
"""
from __future__ import annotations
import numpy as np
from ..errors import RepresentationError


P_ADJUSTMENTS = {"none": "none (each cell on its own)", "holm": "Holm (family-wise error rate)",
                 "bh": "Benjamini–Hochberg (false discovery rate)"}


def holm_adjusted(p_values) -> np.ndarray:
    """Holm's step-down adjusted p-values (docs/theory.md §9): with p_(1) <= ... <= p_(m) sorted,
    p~_(i) = max_{j <= i} min(1, (m - j + 1) p_(j)). A cell with p~ <= alpha is rejected by Holm's
    procedure at family-wise error rate alpha."""
    p = np.asarray(p_values, dtype=np.float64)
    flat = p.ravel()
    order = np.argsort(flat, kind="stable")
    m = flat.size
    stepped = np.minimum(1.0, (m - np.arange(m)) * flat[order])
    adjusted = np.empty(m)
    adjusted[order] = np.maximum.accumulate(stepped)
    return adjusted.reshape(p.shape)


def benjamini_hochberg_adjusted(p_values) -> np.ndarray:
    """Benjamini and Hochberg's step-up adjusted p-values (docs/theory.md §9): with p_(1) <= ... <=
    p_(m) sorted, p~_(i) = min_{j >= i} min(1, m p_(j) / j). The cells with p~ <= q are those the
    procedure rejects at false discovery rate q."""
    p = np.asarray(p_values, dtype=np.float64)
    flat = p.ravel()
    order = np.argsort(flat, kind="stable")
    m = flat.size
    stepped = np.minimum(1.0, m * flat[order] / np.arange(1, m + 1))
    adjusted = np.empty(m)
    adjusted[order] = np.minimum.accumulate(stepped[::-1])[::-1]
    return adjusted.reshape(p.shape)


def adjusted_p_values(p_values, method: str) -> np.ndarray:
    """Every cell's p-value adjusted for testing all cells at once: ``method`` is a key of
    P_ADJUSTMENTS ("none" returns the p-values unchanged)."""
    if method == "none":
        return np.asarray(p_values, dtype=np.float64).copy()
    if method == "holm":
        return holm_adjusted(p_values)
    if method == "bh":
        return benjamini_hochberg_adjusted(p_values)
    raise RepresentationError(f"unknown p-value adjustment {method!r}; use one of {', '.join(P_ADJUSTMENTS)}.")


def smallest_adjusted_p(n_permutations: int, n_cells: int, method: str) -> float:
    """The smallest adjusted p-value any cell can reach with ``n_permutations`` (every raw p is at
    least 1/(N+1)): Holm multiplies the smallest by the number of cells, Benjamini–Hochberg does not
    when every cell is at the floor. Above alpha, no cell can be called beyond chance."""
    floor = 1.0 / (n_permutations + 1)
    return min(1.0, n_cells * floor) if method == "holm" else floor
