"""Neighbourhood measures (as in ReSi, Klabunde et al. 2025): how far the k nearest neighbours of each
example, by cosine distance between the rows as given, agree between the two layers.

Each layer's neighbours come from one (n, n) cosine matrix, kept by its :class:`LayerView` (a matrix
of layers finds each layer's neighbours once). A row's neighbours exclude the row itself; ties
(equal up to round-off) are broken by the lower example index (:func:`.view.nearest_neighbours`).
"""
from __future__ import annotations

import numpy as np

from ..errors import RepresentationError
from .view import LayerView, measure_views


def checked_k(k, n: int, measure: str) -> int:
    """k as a count of neighbours: a whole number with 1 <= k < n (a row is not its own neighbour)."""
    if isinstance(k, bool) or not float(k).is_integer() or k < 1:
        raise RepresentationError(f"{measure}: k is the number of nearest neighbours, a whole number >= 1; "
                                  f"got {k!r}.")
    if k >= n:
        raise RepresentationError(f"{measure}: k = {int(k)} neighbours need more than {int(k)} examples, but there "
                                  f"are {n}; lower k below {n} or pass more examples.")
    return int(k)


def neighbour_ranks(neighbours: np.ndarray) -> np.ndarray:
    """(n, n) matrix R with R[i, j] = the rank (1 = nearest) of j among i's k neighbours, 0 if j is not one."""
    n, k = neighbours.shape
    ranks = np.zeros((n, n))
    np.put_along_axis(ranks, neighbours, np.arange(1.0, k + 1.0)[None, :].repeat(n, 0), axis=1)
    return ranks


def _both_neighbours(vx: LayerView, vy: LayerView, k, measure: str) -> tuple[np.ndarray, np.ndarray, int]:
    k = checked_k(k, vx.n, measure)
    return vx.neighbours(k, measure), vy.neighbours(k, measure), k


def jaccard_knn_of(vx: LayerView, vy: LayerView, k: int = 10) -> float:
    """(1/n) sum_i |N_k^X(i) & N_k^Y(i)| / |N_k^X(i) | N_k^Y(i)|: the mean Jaccard similarity of each
    example's k-nearest-neighbour sets (cosine distance) in the two layers (ReSi's Jaccard kNN)."""
    nx, ny, k = _both_neighbours(vx, vy, k, "jaccard_knn")
    shared = ((neighbour_ranks(nx) > 0) & (neighbour_ranks(ny) > 0)).sum(axis=1)
    return float(np.mean(shared / (2 * k - shared)))


def rank_similarity_of(vx: LayerView, vy: LayerView, k: int = 10) -> float:
    """Rank similarity (Wang et al. 2020, as in ReSi): for example i with common neighbours J_i,
    (sum_{j in J_i} 2 / ((1 + |r^X_ij - r^Y_ij|)(r^X_ij + r^Y_ij))) / (sum_{l=1}^{|J_i|} 1/l), r the rank
    (1 = nearest) among i's k neighbours, 0 when J_i is empty; the mean over examples. The denominator is
    the numerator's largest value (the common neighbours ranked 1..|J_i| in both), so each term is in [0, 1]."""
    nx, ny, k = _both_neighbours(vx, vy, k, "rank_similarity")
    rx, ry = neighbour_ranks(nx), neighbour_ranks(ny)
    common = (rx > 0) & (ry > 0)
    with np.errstate(divide="ignore", invalid="ignore"):  # the 0/0 outside J_i is masked out
        terms = np.where(common, 2.0 / ((1.0 + np.abs(rx - ry)) * (rx + ry)), 0.0)
    harmonic = np.concatenate([[1.0], np.cumsum(1.0 / np.arange(1, k + 1))])  # H_0 := 1 (empty J_i: 0 / 1)
    return float(np.mean(terms.sum(axis=1) / harmonic[common.sum(axis=1)]))


def second_order_cosine_of(vx: LayerView, vy: LayerView, k: int = 10) -> float:
    """Second-order cosine similarity (Hamilton et al. 2016): for example i with U_i the union of its k
    nearest neighbours in X and in Y, s^X_i = (cos(x_i, x_j))_{j in U_i} and s^Y_i likewise; the mean over
    examples of cos(s^X_i, s^Y_i)."""
    nx, ny, k = _both_neighbours(vx, vy, k, "second_order_cosine")
    union = (neighbour_ranks(nx) > 0) | (neighbour_ranks(ny) > 0)
    sx = np.where(union, vx.cosine_similarities("second_order_cosine"), 0.0)
    sy = np.where(union, vy.cosine_similarities("second_order_cosine"), 0.0)
    norms = np.linalg.norm(sx, axis=1) * np.linalg.norm(sy, axis=1)
    if np.any(norms == 0):
        i = int(np.flatnonzero(norms == 0)[0])
        raise RepresentationError(f"second_order_cosine: example {i} is orthogonal to all of its nearest "
                                  "neighbours in one layer, so its second-order vector is zero and has no cosine; "
                                  "raise k or use jaccard_knn.")
    return float(np.clip(np.mean((sx * sy).sum(axis=1) / norms), -1.0, 1.0))


def jaccard_knn(X, Y, k: int = 10) -> float:
    """Mean Jaccard similarity of the k-nearest-neighbour sets (cosine distance) of each example in X
    and in Y; 1 = the same neighbourhoods (ReSi, Klabunde et al. 2025)."""
    return jaccard_knn_of(*measure_views(X, Y, "jaccard_knn"), k)


def rank_similarity(X, Y, k: int = 10) -> float:
    """Rank similarity of the k nearest neighbours (Wang et al. 2020): common neighbours count more when
    they are near and ranked alike in X and Y; in [0, 1], 1 = the same ranked neighbourhoods."""
    return rank_similarity_of(*measure_views(X, Y, "rank_similarity"), k)


def second_order_cosine(X, Y, k: int = 10) -> float:
    """Second-order cosine similarity (Hamilton et al. 2016): each example's cosine similarities to the
    union of its k nearest neighbours in X and in Y, compared by cosine, averaged over examples."""
    return second_order_cosine_of(*measure_views(X, Y, "second_order_cosine"), k)
