"""The column-space family: canonical correlations (mean CCA, SVCCA, PWCCA) and linear regression,
each from orthonormal bases of the two centred layers.
"""
from __future__ import annotations
import numpy as np
from .view import LayerView, tie_groups, views


# -------------------------------------------------------------------- the measures, on views
def canonical_correlations_of(vx: LayerView, vy: LayerView, keep_variance: float | None = None) -> np.ndarray:
    """Singular values of Q_X^T Q_Y for orthonormal bases of the centred column spaces (Bjorck and
    Golub 1973); with keep_variance, SVCCA's SVD step first."""
    return np.clip(np.linalg.svd(vx.basis(keep_variance).T @ vy.basis(keep_variance), compute_uv=False), 0.0, 1.0)


def mean_cca_of(vx: LayerView, vy: LayerView) -> float:
    return float(canonical_correlations_of(vx, vy).mean())


def svcca_of(vx: LayerView, vy: LayerView, keep_variance: float = 0.99) -> float:
    return float(canonical_correlations_of(vx, vy, keep_variance).mean())


def pwcca_of(vx: LayerView, vy: LayerView) -> float:
    """Canonical correlations weighted by sum_j ||P_g x_j|| per group g of equal correlations."""
    qx = vx.basis()
    u, rho, _ = np.linalg.svd(qx.T @ vy.basis(), full_matrices=False)
    loadings = (qx @ u[:, : rho.shape[0]]).T @ vx.xc  # <h_i, x_j> for the unit-norm canonical variates h_i
    group = tie_groups(rho)
    squared = np.zeros((group[-1] + 1, vx.xc.shape[1]))
    np.add.at(squared, group, loadings**2)
    weights = np.sqrt(squared).sum(axis=1)  # sum_j ||P_g x_j|| per group g
    correlations = np.clip(np.bincount(group, weights=rho) / np.bincount(group), 0, 1)
    return float(np.sum(weights * correlations) / np.sum(weights))


def canonical_correlations(X, Y, keep_variance: float | None = None) -> np.ndarray:
    """Canonical correlations: singular values of Q_X^T Q_Y for orthonormal bases of the centred
    column spaces (Bjorck and Golub 1973). With keep_variance, SVCCA's SVD step comes first."""
    return canonical_correlations_of(*views(X, Y), keep_variance)


def mean_cca(X, Y) -> float:
    """Mean canonical correlation rho-bar (Raghu et al. 2017). Degenerate (= 1) once d >= n."""
    return mean_cca_of(*views(X, Y))


def svcca(X, Y, keep_variance: float = 0.99) -> float:
    """SVCCA (Raghu et al. 2017): keep the top singular directions explaining 99% of each
    side's variance, then the mean canonical correlation."""
    return svcca_of(*views(X, Y), keep_variance)


def pwcca(X, Y) -> float:
    """Projection-weighted CCA (Morcos et al. 2018): canonical correlations weighted by how much
    of X's neurons each canonical variate accounts for, alpha_i = sum_j |<h_i, x_j>|.

    Variates that share one correlation (shared columns, integer data) are unique only as a
    subspace, and |<h_i, x_j>| depends on the basis chosen in it, so round-off would pick the
    value. Such a group is weighted by sum_j ||P x_j|| (P the projection onto it), which is
    Morcos et al.'s weight for a group of one and the same for every basis.
    """
    return pwcca_of(*views(X, Y))


def linear_regression_of(vx: LayerView, vy: LayerView) -> float:
    """R^2 of the least-squares fit of centred Y from centred X: ||Q_X^T Y||_F^2 / ||Y||_F^2."""
    return float(np.linalg.norm(vx.basis().T @ vy.xc) ** 2 / np.linalg.norm(vy.xc) ** 2)


def linear_regression_fit(X, Y) -> float:
    """R^2 of the least-squares fit of centred Y from centred X (Kornblith et al. 2019, R^2_LR):
    ||Q_X^T Y||_F^2 / ||Y||_F^2. Not symmetric: it asks how well X predicts Y."""
    return linear_regression_of(*views(X, Y))
