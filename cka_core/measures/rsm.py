"""Measures on representational similarity matrices (as in ReSi, Klabunde et al. 2025): each layer is
reduced to the (n, n) matrix of distances between its examples, and the two matrices are compared.

The distance matrices and their ranks are per-layer quantities of :class:`LayerView`, computed once
per layer; ``rsa`` (:mod:`.rsa`) is the Euclidean-RDM member of this family.
"""
from __future__ import annotations

import numpy as np

from ..errors import RepresentationError
from .view import LayerView, measure_views


def rsm_norm_difference_of(vx: LayerView, vy: LayerView) -> float:
    """||D_X - D_Y||_F, D_ij = ||x_i - x_j|| in each layer's own units (no normalisation, as in ReSi).
    The view keeps D of the layer at unit magnitude (a power of two away): the larger of the two
    factors is taken out of the norm so that extreme-scale layers do not overflow its squares."""
    sx, sy = 1.0 / vx.unit_scale(), 1.0 / vy.unit_scale()
    big = max(sx, sy)
    return float(big * np.linalg.norm(vx.distances() * (sx / big) - vy.distances() * (sy / big)))


def rsa_correlation_of(vx: LayerView, vy: LayerView) -> float:
    """Spearman correlation of the upper triangles of the two correlation-distance RDMs,
    D_ij = 1 - Pearson correlation of rows i and j across the features (ReSi's RSA)."""
    if vx.n < 3:
        raise RepresentationError("rsa_correlation needs at least 3 examples (2 pairs of examples to rank).")
    return float(np.clip(vx.centred_ranks("correlation") @ vy.centred_ranks("correlation"), -1.0, 1.0))


def double_centred(d: np.ndarray) -> np.ndarray:
    """A_ij = d_ij - mean_i d_ij - mean_j d_ij + mean d (Székely et al. 2007, eq. 2.8)."""
    return d - d.mean(axis=0, keepdims=True) - d.mean(axis=1, keepdims=True) + d.mean()


def distance_correlation_of(vx: LayerView, vy: LayerView) -> float:
    """dCor = sqrt(dCov^2(X, Y) / sqrt(dCov^2(X, X) dCov^2(Y, Y))) with dCov^2(X, Y) = (1/n^2) sum_ij A_ij B_ij,
    A and B the double-centred Euclidean distance matrices (Székely et al. 2007, eqs. 2.8-2.10).
    dCov^2 of two double-centred distance matrices is >= 0 in exact arithmetic: round-off is clipped."""
    a, b = double_centred(vx.distances()), double_centred(vy.distances())
    ratio = np.mean(a * b) / np.sqrt(np.mean(a * a) * np.mean(b * b))
    return float(np.sqrt(np.clip(ratio, 0.0, 1.0)))


def rsm_norm_difference(X, Y) -> float:
    """Frobenius norm of the difference of the two Euclidean distance matrices between examples, in the
    layers' own units; 0 = the same distances. Unbounded, and it grows with the layers' scale."""
    return rsm_norm_difference_of(*measure_views(X, Y, "rsm_norm_difference"))


def rsa_correlation(X, Y) -> float:
    """RSA as ReSi computes it: Spearman correlation of the correlation-distance (1 - Pearson r between
    examples) dissimilarity matrices. ``rsa`` uses Euclidean distances instead."""
    return rsa_correlation_of(*measure_views(X, Y, "rsa_correlation"))


def distance_correlation(X, Y) -> float:
    """Distance correlation (Székely et al. 2007) between the two layers: 0 only for independent
    examples' configurations, 1 for configurations equal up to scale, rotation and translation."""
    return distance_correlation_of(*measure_views(X, Y, "distance_correlation"))
