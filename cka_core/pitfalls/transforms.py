"""Transformations of a representation X (n examples x d features), one small pure function each.

They are the manipulations of the Invariances page: each maps X to T(X) with the same rows
(examples), is deterministic given its ``seed``, never writes to X, and raises
``RepresentationError`` with a message that says how to fix a bad argument. ``TRANSFORMATIONS``
describes them all behind one signature ``apply(X, strength, seed)`` and says which invariance
classes of ``cka_core.measures`` (orthogonal, isotropic scaling, invertible linear, translation,
permutation) each belongs to, so a measure that declares one of them must not move under it.
"""
from __future__ import annotations

import functools
import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import RepresentationError
from ..cka.linalg import thin_svd
from ..measures.registry import INVERTIBLE, ISOTROPIC, ORTHOGONAL, PERMUTATION, TRANSLATION
from ..cka.validation import as_matrix


def _matrix(X, name: str = "X") -> np.ndarray:
    """X as a finite float64 (n, d) numpy array (validated in one place: ``validation.as_matrix``)."""
    return as_matrix(X, name).to(torch.float64).cpu().numpy()


def _positive(value: float, name: str, fix: str) -> float:
    value = float(value)
    if not (math.isfinite(value) and value > 0):
        raise RepresentationError(f"{name} must be a positive finite number, not {value!r}; {fix}")
    return value


def _non_negative(value: float, name: str, fix: str) -> float:
    value = float(value)
    if not (math.isfinite(value) and value >= 0):
        raise RepresentationError(f"{name} must be a finite number >= 0, not {value!r}; {fix}")
    return value


def _centred(x: np.ndarray) -> np.ndarray:
    return x - x.mean(axis=0)


def _rms_radius(x: np.ndarray) -> float:
    """sqrt(E ||x - mean||^2): the typical distance of an example from the mean."""
    return float(np.sqrt(np.mean(np.sum(_centred(x) ** 2, axis=1))))


def _check_not_constant(x: np.ndarray, what: str) -> None:
    if _rms_radius(x) == 0.0:
        raise RepresentationError(
            f"every example of X is the same point, so {what} has no scale to refer to; pick a "
            "representation whose examples differ."
        )


# --------------------------------------------------------------------------------------------
# Random matrices
# --------------------------------------------------------------------------------------------


def haar_orthogonal(d: int, seed: int = 0) -> np.ndarray:
    """A Haar-distributed (uniformly random) d x d orthogonal matrix Q, Q^T Q = I.

    QR of a standard Gaussian matrix with the signs of diag(R) folded into Q (Mezzadri 2007,
    "How to generate random matrices from the classical compact groups"); without the sign fix
    the distribution is not uniform. The result is read-only: matrices up to 1024 x 1024 are
    memoised (a few of them), so moving a strength slider does not redo the O(d^3) QR.
    """
    d = int(d)
    if d < 1:
        raise RepresentationError(f"the dimension must be at least 1, not {d}.")
    seed = int(seed)
    return _haar_cached(d, seed) if d <= _HAAR_CACHE_MAX_D else _haar(d, seed)


_HAAR_CACHE_MAX_D = 1024  # 8 MB per matrix; at most 6 kept


def _haar(d: int, seed: int) -> np.ndarray:
    z = np.random.default_rng(seed).standard_normal((d, d))
    q, r = np.linalg.qr(z)
    signs = np.sign(np.diag(r))
    signs[signs == 0] = 1.0
    q *= signs
    q.setflags(write=False)
    return q


_haar_cached = functools.lru_cache(maxsize=6)(_haar)


def _conditioned_factors(d: int, kappa: float, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    kappa = _positive(kappa, "the condition number kappa", "use kappa >= 1 (1 means an orthogonal map).")
    if kappa < 1:
        raise RepresentationError(f"a condition number is at least 1, not {kappa!r}; use kappa >= 1.")
    d = int(d)
    if d < 1:
        raise RepresentationError(f"the dimension must be at least 1, not {d}.")
    rng = np.random.default_rng(seed)
    u = haar_orthogonal(d, int(rng.integers(2**31)))
    v = haar_orthogonal(d, int(rng.integers(2**31)))
    sigma = np.logspace(0.0, math.log10(kappa), d) if d > 1 else np.ones(1)
    return u, sigma, v


def conditioned_matrix(d: int, kappa: float, seed: int = 0) -> np.ndarray:
    """An invertible d x d matrix M = U diag(sigma) V^T with condition number exactly kappa.

    U and V are independent Haar orthogonal matrices and the singular values are log-spaced,
    sigma_i = kappa^{(i-1)/(d-1)} for i = 1..d, so they run from 1 to kappa. kappa = 1 gives the
    orthogonal matrix U V^T.
    """
    u, sigma, v = _conditioned_factors(d, kappa, seed)
    return (u * sigma) @ v.T


def lognormal_scales(d: int, spread: float, seed: int = 0) -> np.ndarray:
    """Per-feature scale factors exp(spread * z_j), z_j ~ N(0, 1): log-normal with log-std ``spread``.

    spread = 0 gives all ones (no change); see ``median_scale_ratio`` for how unequal they get.
    """
    spread = _non_negative(spread, "the spread", "use 0 for no scaling and about 1 for a strong one.")
    return np.exp(spread * np.random.default_rng(seed).standard_normal(int(d)))


def median_scale_ratio(spread: float) -> float:
    """Median ratio between the larger and the smaller of two log-normal scales with log-std ``spread``:
    exp(spread * sqrt(2) * 0.6745), since z_1 - z_2 ~ N(0, 2) and the median of |N(0, 1)| is 0.6745.
    About 2.6 at spread = 1."""
    return float(np.exp(spread * math.sqrt(2.0) * 0.6744897501960817))


# --------------------------------------------------------------------------------------------
# The transformations
# --------------------------------------------------------------------------------------------


def orthogonal_map(X, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Rotation/reflection of feature space: X Q with Q a Haar random orthogonal matrix.

    Returns (X Q, Q). Lengths, angles and distances between examples are unchanged.
    """
    x = _matrix(X)
    q = haar_orthogonal(x.shape[1], seed)
    return x @ q, q


def isotropic_scaling(X, factor: float) -> np.ndarray:
    """Isotropic scaling a X with a > 0: every feature multiplied by the same factor."""
    a = _positive(factor, "the scale factor a", "use a > 0 (a negative factor is a reflection times a scaling).")
    return a * _matrix(X)


def anisotropic_scaling(X, spread: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Anisotropic (per-feature) scaling X D with D = diag(s), s log-normal with log-std ``spread``.

    Returns (X D, s). D is an invertible diagonal map: a special invertible linear map.
    """
    x = _matrix(X)
    s = lognormal_scales(x.shape[1], spread, seed)
    return x * s, s


def one_feature_scaling(X, factor: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Scale a single feature by ``factor`` (Davari et al.'s anisotropic rescaling; notes R9).

    The feature is drawn uniformly (by ``seed``) among the non-constant ones, so the change is
    visible. Returns (X D, s) with s = 1 except s_j = factor.
    """
    x = _matrix(X)
    k = _positive(factor, "the factor", "use a factor > 0 (1 means no change).")
    varying = np.flatnonzero(np.ptp(x, axis=0) > 0)
    if varying.size == 0:
        raise RepresentationError("every feature of X is constant, so scaling one of them changes nothing.")
    s = np.ones(x.shape[1])
    s[int(np.random.default_rng(seed).choice(varying))] = k
    return x * s, s


def invertible_map(X, kappa: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Invertible linear map X M with M = U diag(sigma) V^T of condition number kappa
    (see ``conditioned_matrix``). Returns (X M, M). kappa = 1 is an orthogonal map."""
    x = _matrix(X)
    return _apply_conditioned(x, kappa, seed), conditioned_matrix(x.shape[1], kappa, seed)


def _apply_conditioned(x: np.ndarray, kappa: float, seed: int) -> np.ndarray:
    """X M computed as ((X U) diag(sigma)) V^T: two n x d x d products, M itself never formed."""
    u, sigma, v = _conditioned_factors(x.shape[1], kappa, seed)
    return ((x @ u) * sigma) @ v.T


def feature_permutation(X, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Permutation of the features (relabelling the neurons): X P. Returns (X[:, perm], perm)."""
    x = _matrix(X)
    perm = np.random.default_rng(seed).permutation(x.shape[1])
    return x[:, perm], perm


def translation(X, distance: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Translation of every example by the same vector b: X + 1 b^T.

    b has a random direction (by ``seed``) and length ``distance`` times the RMS distance of the
    examples from their mean. Returns (X + 1 b^T, b).
    """
    x = _matrix(X)
    c = _non_negative(distance, "the translation distance", "use 0 for no shift.")
    _check_not_constant(x, "a translation measured in its spread")
    v = np.random.default_rng(seed).standard_normal(x.shape[1])
    b = c * _rms_radius(x) * v / np.linalg.norm(v)
    return x + b, b


def gaussian_noise(X, relative_std: float, seed: int = 0) -> tuple[np.ndarray, float]:
    """Additive i.i.d. Gaussian noise X + std * E, E_ij ~ N(0, 1).

    std = ``relative_std`` times the RMS feature standard deviation sqrt(tr(Sigma)/d), so
    relative_std = 1 adds as much variance as the representation has. Returns (X + std E, std).
    """
    x = _matrix(X)
    r = _non_negative(relative_std, "the relative noise level", "use 0 for no noise.")
    _check_not_constant(x, "a noise level relative to its spread")
    std = r * _rms_radius(x) / math.sqrt(x.shape[1])
    return x + std * np.random.default_rng(seed).standard_normal(x.shape), std


def covariance_eigenvalues(X) -> np.ndarray:
    """Eigenvalues lambda_1 >= lambda_2 >= ... of the covariance Sigma = X_c^T X_c / n (min(n, d) of them),
    from the singular values of X_c."""
    x = _matrix(X)
    return thin_svd(_centred(x), compute_uv=False) ** 2 / x.shape[0]


def principal_spectrum(X) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues lambda_1 >= ... of the covariance Sigma = X_c^T X_c / n and the principal axes.

    Returns (lambdas, axes) with axes of shape (d, min(n, d)), one unit axis per column.
    """
    x = _matrix(X)
    _, s, vt = thin_svd(_centred(x))
    return s**2 / x.shape[0], vt.T


def numerical_rank(singular_values: np.ndarray, shape: tuple[int, int]) -> int:
    """How many directions of X_c have non-zero variance: singular values above s_1 max(n, d) eps
    (round-off of an SVD of an (n, d) matrix; the threshold of ``views.LayerView.spectrum``)."""
    s = np.asarray(singular_values, dtype=np.float64)
    if s.size == 0 or s[0] == 0.0:
        return 0
    return int(np.sum(s > s[0] * max(shape) * np.finfo(np.float64).eps))


WHICH_COMPONENTS = ("top", "bottom")


def deleted_components(which: str, k, rank: int) -> slice:
    """Which of ``rank`` principal components (in descending variance) a deletion of k takes: the first k
    (``which="top"``) or the last k (``"bottom"``)."""
    if which not in WHICH_COMPONENTS:
        raise RepresentationError(f"which = {which!r} is not a set of principal components; use 'top' (the k of "
                                  "largest variance) or 'bottom' (the k of smallest non-zero variance).")
    whole = (isinstance(k, numbers.Real) and not isinstance(k, (bool, np.bool_)) and math.isfinite(k)
             and int(k) == k)
    if not (whole and 0 <= k <= rank):
        raise RepresentationError(f"k = {k!r} principal components cannot be deleted out of {rank} with non-zero "
                                  f"variance (the numerical rank of X); pick an integer k between 0 and {rank}.")
    k = int(k)
    return slice(0, k) if which == "top" else slice(rank - k, rank)


def kept_components(which: str, k, rank: int) -> np.ndarray:
    """The components a deletion of k keeps, as a mask over the ``rank`` components (descending variance)."""
    kept = np.ones(rank, dtype=bool)
    kept[deleted_components(which, k, rank)] = False
    return kept


def nonzero_spectrum(X) -> tuple[np.ndarray, np.ndarray]:
    """(covariance eigenvalues lambda_1 >= ... >= lambda_r, principal axes (d, r)) of the r = rank
    directions of X_c with non-zero variance (sqrt(lambda) is proportional to the singular values)."""
    x = _matrix(X)
    lambdas, axes = principal_spectrum(x)
    rank = numerical_rank(np.sqrt(lambdas), x.shape)
    return lambdas[:rank], axes[:, :rank]


def projection_on(X, axes: np.ndarray) -> np.ndarray:
    """mean + X_c V V^T: X with only its components along the orthonormal axes V (columns) kept."""
    x = _matrix(X)
    mean = x.mean(axis=0)
    return mean + ((x - mean) @ axes) @ axes.T


def delete_components(X, k: int, which: str = "bottom") -> tuple[np.ndarray, np.ndarray]:
    """Delete k principal components of X (Ding et al. 2021's PC deletion): mean + X_c (I - V_S V_S^T),
    V_S the unit principal axes of the deleted set S, the k of largest variance (``which="top"``) or the
    k of smallest non-zero variance (``"bottom"``, counted within the numerical rank r: directions with
    no variance are not components to delete).

    Returns (X with the deletion, the covariance eigenvalues lambda_1 >= ... >= lambda_r of the r
    directions with non-zero variance): ``deletion_cka`` of those gives linear CKA in closed form.
    """
    x = _matrix(X)
    lambdas, axes = nonzero_spectrum(x)
    # Computed as the projection on the kept axes V_K, mean + X_c V_K V_K^T: the same matrix (X_c has no
    # component outside its r axes), but its round-off is relative to what is kept. Subtracting the deleted
    # part instead leaves round-off of the largest deleted component, which after a top-k deletion can pass
    # the rank threshold of the small remainder and show up as a new direction (PWCCA then reads 0.99).
    return projection_on(x, axes[:, kept_components(which, k, lambdas.size)]), lambdas


def deletion_cka(lambdas, k: int, which: str = "bottom") -> float:
    """Linear CKA between X and X with k principal components deleted (docs/theory.md §8.3):
    sqrt(sum_{i kept} lambda_i^2 / sum_i lambda_i^2), lambda the covariance eigenvalues sorted in
    descending order, the first k deleted (``which="top"``) or the last k (``"bottom"``). Pass the
    eigenvalues of the directions with non-zero variance, as ``delete_components`` returns them."""
    lam = np.sort(np.asarray(lambdas, dtype=np.float64))[::-1]
    total = float(np.sum(lam**2))
    if total == 0:
        raise RepresentationError("X has no variance, so its principal components are undefined.")
    return float(np.sqrt(np.sum(lam[kept_components(which, k, lam.size)] ** 2) / total))


def top_k_projection(X, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Projection on the top-k principal components (Ding et al. 2021's PC deletion): mean + X_c V_k V_k^T,
    i.e. every direction with non-zero variance but the k leading ones deleted (``delete_components``
    of the bottom rank - k).

    Returns (projected X, covariance eigenvalues of its directions with non-zero variance). k >= rank(X_c)
    leaves X unchanged.
    """
    x = _matrix(X)
    d = x.shape[1]
    if int(k) != k or not 1 <= k <= d:
        raise RepresentationError(
            f"k = {k!r} principal components is not possible for {d} feature(s); pick an integer "
            f"k between 1 and {d}."
        )
    lambdas, axes = nonzero_spectrum(x)
    return projection_on(x, axes[:, : int(k)]), lambdas


def top_k_cka(lambdas, k: int) -> float:
    """Linear CKA between X and its top-k PC projection (notes R8, derived):
    sqrt(sum_{i<=k} lambda_i^2 / sum_i lambda_i^2), with lambda the covariance eigenvalues: the
    closed form of ``deletion_cka`` with all but the k largest deleted."""
    lam = np.asarray(lambdas, dtype=np.float64)
    return deletion_cka(lam, max(lam.size - int(k), 0), "bottom")


# --------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Transformation:
    """One transformation behind a common signature ``apply(X, strength, seed) -> T(X)``.

    ``belongs_to``: the invariance classes (names in ``cka_core.measures.INVARIANCES``) that contain
    every map of this kind, e.g. a permutation is also orthogonal and invertible linear. A measure
    declaring any of them must give m(X, T(X)) = m(X, X). Empty for noise and PC deletion.
    ``strength``: what the strength argument means (None if the transformation has none).
    """

    name: str
    label: str
    apply: Callable[[np.ndarray, float | None, int], np.ndarray]
    belongs_to: frozenset[str]
    strength: str | None
    uses_seed: bool
    description: str


TRANSFORMATIONS: dict[str, Transformation] = {
    t.name: t
    for t in [
        Transformation("orthogonal", "Orthogonal map", lambda x, s, seed: orthogonal_map(x, seed)[0],
                       frozenset({ORTHOGONAL, INVERTIBLE}), None, True,
                       "X Q with Q a random (Haar) orthogonal matrix: a rotation or reflection of feature space."),
        Transformation("isotropic", "Isotropic scaling", lambda x, s, seed: isotropic_scaling(x, s),
                       frozenset({ISOTROPIC, INVERTIBLE}), "scale factor a", False,
                       "a X: every feature multiplied by the same factor a."),
        Transformation("anisotropic", "Anisotropic scaling", lambda x, s, seed: anisotropic_scaling(x, s, seed)[0],
                       frozenset({INVERTIBLE}), "log-normal spread s", True,
                       "X·diag(exp(s·z)), z ~ N(0, 1): each feature gets its own scale."),
        Transformation("one_feature", "One feature scaled", lambda x, s, seed: one_feature_scaling(x, s, seed)[0],
                       frozenset({INVERTIBLE}), "factor a", True,
                       "One random non-constant feature multiplied by a, the others untouched (notes R9)."),
        Transformation("invertible", "Invertible linear map", lambda x, s, seed: _apply_conditioned(_matrix(x), s, seed),
                       frozenset({INVERTIBLE}), "condition number κ", True,
                       "X M with M = U diag(σ) Vᵀ, σ log-spaced from 1 to κ (U, V random orthogonal)."),
        Transformation("permutation", "Feature permutation", lambda x, s, seed: feature_permutation(x, seed)[0],
                       frozenset({PERMUTATION, ORTHOGONAL, INVERTIBLE}), None, True,
                       "The features (neurons) relabelled in a random order."),
        Transformation("translation", "Translation", lambda x, s, seed: translation(x, s, seed)[0],
                       frozenset({TRANSLATION}), "distance c", True,
                       "X + 1 bᵀ: every example shifted by the same vector b, ‖b‖ = c × the RMS spread."),
        Transformation("noise", "Gaussian noise", lambda x, s, seed: gaussian_noise(x, s, seed)[0],
                       frozenset(), "relative noise std r", True,
                       "X + r·σ̄·E, E i.i.d. N(0, 1), σ̄ the RMS feature standard deviation."),
        Transformation("top_k", "Top-k PC projection", lambda x, s, seed: top_k_projection(x, int(s))[0],
                       frozenset(), "k components kept", False,
                       "X projected on its k leading principal components (the low-variance ones deleted)."),
    ]
}


def transform(X, name: str, strength: float | None = None, seed: int = 0) -> np.ndarray:
    """T(X) for the transformation ``name`` of ``TRANSFORMATIONS`` at ``strength`` (ignored by those
    without one) and ``seed``."""
    info = TRANSFORMATIONS.get(name)
    if info is None:
        raise RepresentationError(f"unknown transformation {name!r}; choose one of: {', '.join(TRANSFORMATIONS)}.")
    if info.strength is not None and strength is None:
        raise RepresentationError(f"the {info.label.lower()} needs a strength ({info.strength}).")
    return info.apply(X, strength, int(seed))


def declared_invariant(invariances, name: str) -> bool:
    """Whether a measure declaring ``invariances`` must be unchanged by transformation ``name``."""
    return bool(TRANSFORMATIONS[name].belongs_to & frozenset(invariances))
