"""Similarity measures beside CKA behind one entry point, each declaring its properties, and
:func:`similarity_matrix`, any measure between every pair of layers.

Every measure maps two representations of the same n examples to a number and says what it
is invariant to (a map applied to either argument leaves it unchanged), its range and
whether higher means more similar; the pages use this metadata to explain what moved.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.spatial.distance import pdist

from .accumulator import cka_matrix
from .errors import RepresentationError
from .kernels import centre_features, scaled_to_unit
from .pairwise import linear_cka, rbf_cka
from .validation import as_layers, as_matrix, check_not_constant, check_rows

ORTHOGONAL = "orthogonal"
ISOTROPIC = "isotropic_scaling"
INVERTIBLE = "invertible_linear"
TRANSLATION = "translation"
PERMUTATION = "permutation"
INVARIANCES = (ORTHOGONAL, ISOTROPIC, INVERTIBLE, TRANSLATION, PERMUTATION)


@dataclass(frozen=True)
class MeasureInfo:
    """What a measure is: how to call it and how to read its value."""

    name: str
    label: str
    function: Callable[..., float]
    higher_is_similar: bool
    value_range: tuple[float, float]
    invariances: frozenset[str]
    symmetric: bool
    description: str
    reference: str


def _centred_pair(X, Y) -> tuple[np.ndarray, np.ndarray]:
    x, y = as_matrix(X, "X"), as_matrix(Y, "Y")
    check_rows(x.shape[0], y.shape[0], debiased=False)
    xc, yc = centre_features(x), centre_features(y.to(x.device))
    check_not_constant(xc, x, "X")
    check_not_constant(yc, y, "Y")
    return scaled_to_unit(xc).cpu().numpy(), scaled_to_unit(yc).cpu().numpy()


def _orthonormal_basis(xc: np.ndarray, keep_variance: float | None = None) -> np.ndarray:
    """Orthonormal basis of the column space of centred X (rank-revealing SVD), optionally
    keeping only the leading directions that explain ``keep_variance`` of the variance (SVCCA)."""
    u, s, _ = np.linalg.svd(xc, full_matrices=False)
    rank = int((s > s[0] * max(xc.shape) * np.finfo(float).eps).sum())
    if keep_variance is not None:
        explained = np.cumsum(s[:rank] ** 2) / np.sum(s[:rank] ** 2)
        rank = int(np.searchsorted(explained, keep_variance) + 1)
    return u[:, :rank]


def canonical_correlations(X, Y, keep_variance: float | None = None) -> np.ndarray:
    """Canonical correlations: singular values of Q_X^T Q_Y for orthonormal bases of the centred
    column spaces (Bjorck and Golub 1973). With keep_variance, SVCCA's SVD step comes first."""
    xc, yc = _centred_pair(X, Y)
    qx, qy = _orthonormal_basis(xc, keep_variance), _orthonormal_basis(yc, keep_variance)
    return np.clip(np.linalg.svd(qx.T @ qy, compute_uv=False), 0.0, 1.0)


def mean_cca(X, Y) -> float:
    """Mean canonical correlation rho-bar (Raghu et al. 2017). Degenerate (= 1) once d >= n."""
    return float(canonical_correlations(X, Y).mean())


def svcca(X, Y, keep_variance: float = 0.99) -> float:
    """SVCCA (Raghu et al. 2017): keep the top singular directions explaining 99% of each
    side's variance, then the mean canonical correlation."""
    return float(canonical_correlations(X, Y, keep_variance).mean())


TIE_TOLERANCE = 1e-9  # values this close (relative to the largest) are one value


def _tie_groups(ordered: np.ndarray, rel_tol: float = TIE_TOLERANCE) -> np.ndarray:
    """Group index of each entry of a sorted array: neighbours that differ by at most ``rel_tol``
    times the largest magnitude share a group (values equal in exact arithmetic, apart by round-off)."""
    scale = float(np.abs(ordered).max()) if ordered.size else 0.0
    return np.concatenate([[0], np.cumsum(np.abs(np.diff(ordered)) > rel_tol * scale)]).astype(np.intp)


def pwcca(X, Y) -> float:
    """Projection-weighted CCA (Morcos et al. 2018): canonical correlations weighted by how much
    of X's neurons each canonical variate accounts for, alpha_i = sum_j |<h_i, x_j>|.

    Variates that share one correlation (shared columns, integer data) are unique only as a
    subspace, and |<h_i, x_j>| depends on the basis chosen in it, so round-off would pick the
    value. Such a group is weighted by sum_j ||P x_j|| (P the projection onto it), which is
    Morcos et al.'s weight for a group of one and the same for every basis.
    """
    xc, yc = _centred_pair(X, Y)
    qx, qy = _orthonormal_basis(xc), _orthonormal_basis(yc)
    u, rho, _ = np.linalg.svd(qx.T @ qy, full_matrices=False)
    loadings = (qx @ u[:, : rho.shape[0]]).T @ xc  # <h_i, x_j> for the unit-norm canonical variates h_i
    group = _tie_groups(rho)
    squared = np.zeros((group[-1] + 1, xc.shape[1]))
    np.add.at(squared, group, loadings**2)
    weights = np.sqrt(squared).sum(axis=1)  # sum_j ||P_g x_j|| per group g
    correlations = np.clip(np.bincount(group, weights=rho) / np.bincount(group), 0, 1)
    return float(np.sum(weights * correlations) / np.sum(weights))


def procrustes_angle(X, Y) -> float:
    """Angular orthogonal-Procrustes distance (Williams et al. 2021; Ding et al. 2021):
    arccos ||X~^T Y~||_* with X~, Y~ centred and scaled to unit Frobenius norm; 0 = same shape."""
    xc, yc = _centred_pair(X, Y)
    xc, yc = xc / np.linalg.norm(xc), yc / np.linalg.norm(yc)
    if min(xc.shape[1], yc.shape[1]) <= xc.shape[0]:
        nuclear = float(np.linalg.svd(xc.T @ yc, compute_uv=False).sum())
    else:
        # ||X^T Y||_* = sum of sqrt eig((X^T Y)(Y^T X)) = sum of sqrt eig((X X^T)(Y Y^T)), n x n.
        eig = np.linalg.eigvals((xc @ xc.T) @ (yc @ yc.T)).real
        nuclear = float(np.sqrt(np.clip(eig, 0, None)).sum())
    return float(np.arccos(np.clip(nuclear, -1.0, 1.0)))


def _ranks_with_ties(values: np.ndarray) -> np.ndarray:
    """Average ranks (Spearman's convention for ties), with round-off-level ties merged.

    Distances that are equal in exact arithmetic (integer or 0/1 data has many) come out a few
    ulps apart after a rotation; exact ranks would order them by round-off, so RSA would move
    under a transformation it is invariant to.
    """
    order = np.argsort(values, kind="stable")
    group = _tie_groups(values[order])
    positions = np.arange(1, values.size + 1, dtype=np.float64)
    mean_rank = np.bincount(group, weights=positions) / np.bincount(group)
    ranks = np.empty(values.size)
    ranks[order] = mean_rank[group]
    return ranks


def rsa(X, Y) -> float:
    """Representational similarity analysis (Kriegeskorte et al. 2008): Spearman correlation of
    the upper triangles of the two Euclidean representational dissimilarity matrices.

    Distances come from row differences (``pdist``, accurate for near pairs, unlike the Gram
    identity) and are ranked with round-off-level ties merged (``_ranks_with_ties``).
    """
    xc, yc = _centred_pair(X, Y)
    if xc.shape[0] < 3:
        raise RepresentationError("RSA needs at least 3 examples (2 pairs of examples to rank).")
    rank_x, rank_y = _ranks_with_ties(pdist(xc)), _ranks_with_ties(pdist(yc))
    if np.ptp(rank_x) == 0 or np.ptp(rank_y) == 0:
        raise RepresentationError("RSA is undefined here: all pairwise distances of one side are equal.")
    return float(np.corrcoef(rank_x, rank_y)[0, 1])


def linear_regression_fit(X, Y) -> float:
    """R^2 of the least-squares fit of centred Y from centred X (Kornblith et al. 2019, R^2_LR):
    ||Q_X^T Y||_F^2 / ||Y||_F^2. Not symmetric: it asks how well X predicts Y."""
    xc, yc = _centred_pair(X, Y)
    qx = _orthonormal_basis(xc)
    return float(np.linalg.norm(qx.T @ yc) ** 2 / np.linalg.norm(yc) ** 2)


def _linear_cka_debiased(X, Y) -> float:
    return linear_cka(X, Y, debiased=True)


_ALL_BUT_LINEAR = frozenset({ORTHOGONAL, ISOTROPIC, TRANSLATION, PERMUTATION})

MEASURES: dict[str, MeasureInfo] = {
    m.name: m
    for m in [
        MeasureInfo("linear_cka", "Linear CKA", linear_cka, True, (0.0, 1.0), _ALL_BUT_LINEAR, True,
                    "Alignment of the two centred linear Gram matrices; dominated by high-variance directions.",
                    "Kornblith et al., ICML 2019"),
        MeasureInfo("linear_cka_debiased", "Linear CKA (debiased)", _linear_cka_debiased, True, (-1.0, 1.0),
                    _ALL_BUT_LINEAR, True,
                    "Linear CKA with the unbiased HSIC estimator: no inflation when features outnumber examples.",
                    "Song et al., JMLR 2012; Nguyen et al., ICLR 2021"),
        MeasureInfo("rbf_cka", "RBF CKA", rbf_cka, True, (0.0, 1.0), _ALL_BUT_LINEAR, True,
                    "CKA with Gaussian kernels, bandwidth sigma x the median distance; local structure.",
                    "Kornblith et al., ICML 2019"),
        MeasureInfo("mean_cca", "Mean CCA", mean_cca, True, (0.0, 1.0), frozenset(INVARIANCES), True,
                    "Mean canonical correlation; invariant to any invertible linear map, so it is 1 "
                    "for every pair once features outnumber examples.",
                    "Raghu et al., NeurIPS 2017"),
        MeasureInfo("svcca", "SVCCA", svcca, True, (0.0, 1.0), _ALL_BUT_LINEAR, True,
                    "Mean CCA after keeping the singular directions that explain 99% of the variance.",
                    "Raghu et al., NeurIPS 2017"),
        MeasureInfo("pwcca", "PWCCA", pwcca, True, (0.0, 1.0), frozenset({ISOTROPIC, TRANSLATION, PERMUTATION}), False,
                    "Canonical correlations weighted by how much of the first representation each accounts for.",
                    "Morcos et al., NeurIPS 2018"),
        MeasureInfo("procrustes", "Procrustes angle", procrustes_angle, False, (0.0, float(np.pi / 2)),
                    _ALL_BUT_LINEAR, True,
                    "Angle between the two normalised shapes after the best rotation; a true metric.",
                    "Williams et al., NeurIPS 2021; Ding et al., NeurIPS 2021"),
        MeasureInfo("rsa", "RSA (Spearman of RDMs)", rsa, True, (-1.0, 1.0), _ALL_BUT_LINEAR, True,
                    "Rank correlation of the pairwise Euclidean distances between examples.",
                    "Kriegeskorte et al., Front. Syst. Neurosci. 2008"),
        MeasureInfo("linear_regression", "Linear regression R²", linear_regression_fit, True, (0.0, 1.0),
                    _ALL_BUT_LINEAR, False,
                    "How much of the second representation a linear map of the first explains.",
                    "Kornblith et al., ICML 2019"),
    ]
}


def similarity(X, Y, measure: str = "linear_cka", **options) -> float:
    """The value of ``measure`` between X and Y; see ``MEASURES`` for the names and what each means."""
    info = MEASURES.get(measure)
    if info is None:
        raise RepresentationError(f"unknown measure {measure!r}; choose one of: {', '.join(MEASURES)}.")
    try:
        return float(info.function(X, Y, **options))
    except TypeError as error:
        raise RepresentationError(f"bad option for measure {measure!r}: {error}") from None


LINEAR_CKA = {"linear_cka": False, "linear_cka_debiased": True}


def similarity_matrix(layers_a, layers_b=None, *, measure: str = "linear_cka", debiased: bool = False,
                      batch_size: int | None = None, **options) -> np.ndarray:
    """(L_a, L_b) values of ``measure`` between every pair of layers (``layers_b=None``: self-comparison).

    Linear CKA goes through ``cka_matrix`` (per-layer statistics shared, one pass); the other
    measures are evaluated pair by pair, each pair once when the matrix is symmetric.
    """
    if measure in LINEAR_CKA:
        return cka_matrix(layers_a, layers_b, debiased=debiased or LINEAR_CKA[measure], batch_size=batch_size)
    if measure not in MEASURES:
        raise RepresentationError(f"unknown measure {measure!r}; choose one of: {', '.join(MEASURES)}.")
    if batch_size is not None:
        raise RepresentationError(f"batch_size applies to linear CKA only, not to {measure!r}.")
    if debiased:
        if measure != "rbf_cka":
            raise RepresentationError(f"debiased applies to CKA only, not to {measure!r}.")
        options = {**options, "debiased": True}
    _, a = as_layers(layers_a, "layers_a")
    b = a if layers_b is None else as_layers(layers_b, "layers_b")[1]
    symmetric = layers_b is None and MEASURES[measure].symmetric
    values = np.empty((len(a), len(b)))
    for i, x in enumerate(a):
        for j, y in enumerate(b):
            if symmetric and j < i:
                values[i, j] = values[j, i]
            else:
                values[i, j] = similarity(x, y, measure, **options)
    return values
