"""Block structure in a network's own CKA map and the dominant examples behind it (Nguyen, Raghu &
Kornblith, ICLR 2021, "Do wide and deep networks learn the same things?", and TMLR 2022, "On the
origins of the block structure phenomenon"; docs/theory.md §8.4).

A *block* is a run of consecutive layers whose representations are nearly identical under linear
CKA. Nguyen et al. find that the layers of a block share a dominant first principal component, and
that a small group of *dominant* examples, the ones far from the mean along it, carry that
component: CKA computed without them no longer shows the block. The functions below are the pieces
of that test: the share of the first component, each example's score along it, the CKA map with
rows removed, and the mean CKA inside a block against the mean between it and the other layers.
Small pure functions, one equation each; no UI code.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..cka.matrix import cka_matrix
from ..errors import RepresentationError
from .transforms import covariance_eigenvalues, principal_spectrum
from ..cka.validation import as_layers, as_matrix, min_rows


@dataclass(frozen=True)
class BlockSummary:
    """Mean CKA between the layers of a block, and between them and every layer outside it."""

    inside: float
    outside: float

    @property
    def contrast(self) -> float:
        """inside - outside: how far the block stands out from the rest of the map."""
        return self.inside - self.outside


def top_pc_share(X) -> float:
    """lambda_1 / sum_i lambda_i: the share of the variance of X (examples in rows) along its first
    principal component, lambda the covariance eigenvalues. Near 1, the layer is close to one line."""
    lambdas = covariance_eigenvalues(X)
    total = float(lambdas.sum())
    if total == 0.0:
        raise RepresentationError("X is constant across examples, so it has no principal component; "
                                  "pick a layer whose examples differ.")
    return float(lambdas[0]) / total


def dominance_scores(X) -> np.ndarray:
    """s_i = |<x_i - x_bar, v_1>|, v_1 the first principal axis of X: how far each example lies from
    the mean along the layer's dominant direction (Nguyen et al.'s dominant datapoints have the
    largest). The sign of v_1 is arbitrary, hence the absolute value."""
    x = as_matrix(X, "X").to(torch.float64).cpu().numpy()
    lambdas, axes = principal_spectrum(x)
    if lambdas[0] == 0.0:
        raise RepresentationError("X is constant across examples, so it has no principal axis to score "
                                  "examples on; pick a layer whose examples differ.")
    return np.abs((x - x.mean(axis=0)) @ axes[:, 0])


def dominant_examples(scores, m: int) -> np.ndarray:
    """Indices of the m examples with the largest scores, largest first (equal scores: lower index first)."""
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 1 or not np.all(np.isfinite(s)):
        raise RepresentationError("scores must be a 1-D array of finite numbers, one per example.")
    return np.argsort(-s, kind="stable")[:_count(m, s.size)]


def random_examples(n: int, m: int, seed: int = 0) -> np.ndarray:
    """The first m of a seeded random permutation of range(n): the baseline of :func:`dominant_examples`,
    nested like it (the examples removed at m are among those removed at m + 1)."""
    return np.random.default_rng(seed).permutation(n)[:_count(m, n)]


def _count(m, n: int) -> int:
    if isinstance(m, bool) or not isinstance(m, (int, np.integer)) or not 0 <= m <= n:
        raise RepresentationError(f"m must be a whole number of examples between 0 and {n}, not {m!r}.")
    return int(m)


def cka_map_without(layers, removed, *, debiased: bool = False) -> np.ndarray:
    """The layer-by-layer linear CKA map (``cka_matrix``) of ``layers`` (a sequence or name -> array
    mapping, the same n examples in rows) on the examples not in ``removed`` (row indices)."""
    _, tensors = as_layers(layers, "layers")
    n = tensors[0].shape[0]
    keep = torch.ones(n, dtype=torch.bool)
    keep[torch.as_tensor(_checked_rows(removed, n, debiased))] = False
    return cka_matrix([t[keep.to(t.device)] for t in tensors], debiased=debiased)


def _checked_rows(removed, n: int, debiased: bool) -> np.ndarray:
    rows = np.asarray(removed)
    if rows.size == 0:
        return rows.astype(np.int64).reshape(0)
    if rows.ndim != 1 or rows.dtype.kind not in "iu":
        raise RepresentationError("removed must be a 1-D array of whole row indices.")
    if rows.min() < 0 or rows.max() >= n:
        raise RepresentationError(f"removed holds row indices outside 0..{n - 1}; the layers have {n} examples.")
    if np.unique(rows).size != rows.size:
        raise RepresentationError("removed lists a row more than once; list each removed example once.")
    if n - rows.size < min_rows(debiased):
        raise RepresentationError(f"removed leaves {n - rows.size} of {n} examples, too few for CKA "
                                  f"(at least {min_rows(debiased)}); remove fewer.")
    return rows.astype(np.int64)


def block_summary(C, block: tuple[int, int]) -> BlockSummary:
    """For a block of layers first..last (inclusive) of a square CKA map C:
    inside = mean of C_ij over i != j both in the block, outside = mean of C_ij over i in the block
    and j outside it."""
    c = _square(C)
    first, last = _checked_block(block, c)
    inside = np.arange(first, last + 1)
    outside = np.setdiff1d(np.arange(c.shape[0]), inside)
    pairs = c[np.ix_(inside, inside)][~np.eye(inside.size, dtype=bool)]
    return BlockSummary(float(pairs.mean()), float(c[np.ix_(inside, outside)].mean()))


def pairs_reaching(C, block: tuple[int, int], threshold: float) -> tuple[int, int]:
    """(how many of the block's pairs of layers i < j, both in first..last, have C_ij >= threshold, how
    many pairs it has): all of them exactly when the run still meets :func:`detect_block`'s definition on C."""
    c = _square(C)
    first, last = _checked_block(block, c)
    inside = c[first:last + 1, first:last + 1][np.triu_indices(last - first + 1, k=1)]
    return int(np.sum(inside >= threshold)), int(inside.size)


def _square(C) -> np.ndarray:
    """C as a square float64 map with room for a block of two and a layer outside it."""
    c = np.asarray(C, dtype=np.float64)
    if c.ndim != 2 or c.shape[0] != c.shape[1] or c.shape[0] < 3:
        raise RepresentationError(f"C must be a square CKA map of at least 3 layers (a block of two and one "
                                  f"outside it), not an array of shape {c.shape}.")
    return c


def _checked_block(block, c: np.ndarray) -> tuple[int, int]:
    first, last = (int(i) for i in block)
    if not 0 <= first < last < c.shape[0] or last - first + 1 == c.shape[0]:
        raise RepresentationError(f"block must be (first, last) with 0 <= first < last < {c.shape[0]} that leaves "
                                  f"at least one layer outside it, not {tuple(block)}.")
    return first, last


def detect_block(C, threshold: float) -> tuple[int, int] | None:
    """The longest run first..last of at least two consecutive layers in which every pair has
    CKA >= threshold and at least one layer is left outside (equal lengths: the one with the higher
    mean CKA inside); None when no two neighbouring layers reach the threshold."""
    c = _square(C)
    best = None
    for first in range(c.shape[0]):
        for last in range(first + 1, c.shape[0]):
            if c[first:last + 1, first:last + 1].min() < threshold or last - first + 1 == c.shape[0]:
                break
            if best is None or _longer_or_tighter(c, (first, last), best):
                best = (first, last)
    return best


def _longer_or_tighter(c: np.ndarray, run: tuple[int, int], best: tuple[int, int]) -> bool:
    length, best_length = run[1] - run[0], best[1] - best[0]
    if length != best_length:
        return length > best_length
    return block_summary(c, run).inside > block_summary(c, best).inside


def most_dominated_layer(shares: Sequence[float], block: tuple[int, int]) -> int:
    """The layer of the block whose first principal component holds the largest share of its variance."""
    first, last = block
    return first + int(np.argmax(np.asarray(shares[first:last + 1], dtype=np.float64)))


def removal_maps(layers, order, ms: Sequence[int], *, debiased: bool = False) -> np.ndarray:
    """The CKA maps without the first m examples of ``order``, for each m in ``ms``: shape (len(ms), L, L).
    They do not depend on any block, so one set serves every threshold."""
    order = np.asarray(order)
    return np.stack([cka_map_without(layers, order[:m], debiased=debiased) for m in ms])


def removal_curve(layers, order, ms: Sequence[int], block: tuple[int, int], *,
                  debiased: bool = False) -> list[BlockSummary]:
    """The block's summary on the map without the first m examples of ``order``, for each m in ``ms``."""
    return [block_summary(C, block) for C in removal_maps(layers, order, ms, debiased=debiased)]
