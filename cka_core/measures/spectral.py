"""Measures on the two layers' principal subspaces and spectra: the eigenspace overlap score (May et al.
2019) and GULP (Boix-Adsera et al. 2022), both from each layer's SVD (``LayerView.spectrum``), which a
matrix of layers computes once per layer.
"""
from __future__ import annotations

import math

import numpy as np

from ..errors import RepresentationError
from .shape import above_whitening_floor
from .view import LayerView, views


def eigenspace_overlap_of(vx: LayerView, vy: LayerView) -> float:
    """||U_x^T U_y||_F^2 / max(rank_x, rank_y) for orthonormal bases U of the two centred column spaces
    (May et al. 2019, eq. 1): the summed squared canonical correlations over the larger rank. Every
    direction counts alike, so only those above the whitening floor do (``shape.WHITENING_FLOOR``): a
    layer with dead units translated far keeps round-off in their directions, which must not add to
    the rank."""
    (ux, _), (uy, _) = (above_whitening_floor(*v.spectrum()) for v in (vx, vy))
    return float(min(np.linalg.norm(ux.T @ uy) ** 2 / max(ux.shape[1], uy.shape[1]), 1.0))  # round-off above 1


def ridge_shares(s: np.ndarray, lam: float) -> np.ndarray:
    """s_i^2 / (s_i^2 + lam): the eigenvalues of the ridge predictor's hat matrix
    X~ (X~^T X~ + lam I)^+ X~^T = U diag(s^2 / (s^2 + lam)) U^T, X~ = U diag(s) V^T at unit Frobenius norm
    (so that the covariance's eigenvalues s_i^2 sum to 1, GULP's normalisation); 1 for every direction
    at lam = 0 (the pseudo-inverse)."""
    squared = s ** 2
    return squared / (squared + lam)


def gulp_of(vx: LayerView, vy: LayerView, lam: float = 0.0) -> float:
    """GULP distance (Boix-Adsera et al. 2022, as computed in ReSi): d^2 = ||H_x - H_y||_F^2 for the ridge
    hat matrices H = U diag(w) U^T, w = :func:`ridge_shares`, i.e.
    d^2 = ||w_x||^2 + ||w_y||^2 - 2 w_x^T (U_x^T U_y o U_x^T U_y) w_y (o: the entrywise product).
    At lam = 0: d^2 = rank_x + rank_y - 2 sum_i rho_i^2 with rho the canonical correlations; as for
    :func:`eigenspace_overlap_of`, only directions above the whitening floor count.

    That formula is a difference of near-equal sums where d is near 0, and its square root turns
    round-off of 1e-16 into 1e-8 (more at large ranks). Split U_y = U_x B + R with R orthogonal to U_x:
    d^2 = ||diag(w_x) - B W_y B^T||_F^2 + 2 tr(W_y B^T B W_y G) + tr(W_y G W_y G), G = R^T R, W_y = diag(w_y),
    three terms that are each >= 0, the first formed entry by entry: exact to round-off at d = 0."""
    if not (math.isfinite(lam) and lam >= 0):
        raise RepresentationError(f"gulp: the ridge parameter lam must be a finite number >= 0 (0: plain least "
                                  f"squares, the CCA limit), got {lam!r}.")
    (ux, sx), (uy, sy) = (above_whitening_floor(*v.spectrum()) for v in (vx, vy))
    wx, wy = ridge_shares(sx, lam), ridge_shares(sy, lam)
    b = ux.T @ uy
    residual = uy - ux @ b
    g = residual.T @ residual
    bw = b * wy
    within = np.diag(wx) - bw @ b.T
    weighted_g = wy[:, None] * g * wy[None, :]
    return float(np.sqrt(np.sum(within ** 2) + 2 * np.sum((bw.T @ bw) * g) + np.sum(weighted_g * g)))


def eigenspace_overlap(X, Y) -> float:
    """Eigenspace overlap score (May et al. 2019): ||U_X^T U_Y||_F^2 / max(rank_X, rank_Y), U orthonormal
    bases of the centred column spaces; 1 for the same column space, 0 for orthogonal ones."""
    return eigenspace_overlap_of(*views(X, Y))


def gulp(X, Y, lam: float = 0.0) -> float:
    """GULP distance (Boix-Adsera et al. 2022): how far apart the ridge predictors (parameter ``lam``)
    fitted on each layer are, as the Frobenius distance of their hat matrices, each layer centred with
    covariance of unit trace. lam = 0: sqrt(rank_X + rank_Y - 2 sum rho_i^2),
    invariant to every invertible linear map."""
    return gulp_of(*views(X, Y), lam)
