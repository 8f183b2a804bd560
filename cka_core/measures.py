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

from .accumulator import cka_matrix
from .errors import RepresentationError
from .pairwise import linear_cka, rbf_cka
from .validation import as_layers, check_rows
from .views import (LayerView, canonical_correlations_of, deconfounded_cka_of, linear_regression_of, mean_cca_of,
                    procrustes_angle_of, pwcca_of, rbf_cka_of, rsa_of, shape_distance_of, svcca_of, views)

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
    of: Callable[..., float] | None = None  # the same on two LayerViews (per-layer work reusable)
    needs_inputs: bool = False  # takes the inputs the layers were computed from (option ``inputs``)


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


def procrustes_angle(X, Y) -> float:
    """Angular orthogonal-Procrustes distance (Williams et al. 2021; Ding et al. 2021):
    arccos ||X~^T Y~||_* with X~, Y~ centred and scaled to unit Frobenius norm; 0 = same shape."""
    return procrustes_angle_of(*views(X, Y))


def shape_distance(X, Y, alpha: float = 0.5) -> float:
    """Generalized shape metric (Williams et al. 2021): the angular Procrustes distance between the
    two layers after partial whitening with ``alpha`` (1: the Procrustes angle, 0: whitened, the
    angle of mean CCA). A metric for every alpha: each layer is mapped on its own, then compared
    by an angle between shapes, so the triangle inequality holds (docs/theory.md §8.1)."""
    return shape_distance_of(*views(X, Y), alpha)


def deconfounded_cka(X, Y, inputs) -> float:
    """Deconfounded linear CKA (Cui et al. 2022): regress the inputs' Gram matrix out of each
    layer's Gram (least squares over all n^2 entries, with an intercept), keep the positive
    semi-definite part of each residual, and take the CKA of the two. ``inputs`` are the (n, ...)
    examples both layers were computed from, in the same order. Similarity that the inputs
    already have (why untrained networks look like trained ones in early layers) no longer counts."""
    vx, vy = views(X, Y)
    return deconfounded_cka_of(vx, vy, inputs_view(inputs, vx.n))


def inputs_view(inputs, n: int) -> LayerView:
    """The inputs of a deconfounded comparison as a view (a LayerView is passed through), checked
    to have one row per example."""
    if isinstance(inputs, LayerView):
        view = inputs
    else:
        if inputs is None:
            raise RepresentationError("deconfounded CKA needs inputs: the (n, ...) examples the layers were "
                                      "computed from, in the same order.")
        view = LayerView.of(inputs, "inputs")
    if view.n != n:
        raise RepresentationError(f"inputs have {view.n} rows but the layers have {n} examples; pass the inputs the "
                                  "layers were computed from, one row per example, in the same order.")
    return view


def prepared_options(info: MeasureInfo, options: dict, n: int) -> dict:
    """``options`` with per-comparison arguments prepared once (the inputs of dCKA as a view, so that
    every pair of layers and every resample regresses on the same prepared Gram)."""
    if info.needs_inputs:
        return {**options, "inputs": inputs_view(options.get("inputs"), n)}
    if "inputs" in options:
        raise RepresentationError(f"inputs apply to deconfounded CKA only, not to {info.name!r}.")
    return options


def rsa(X, Y) -> float:
    """Representational similarity analysis (Kriegeskorte et al. 2008): Spearman correlation of
    the upper triangles of the two Euclidean representational dissimilarity matrices.

    Distances come from row differences (``pdist``, accurate for near pairs, unlike the Gram
    identity) and are ranked with round-off-level ties merged (``LayerView.distance_ranks``).
    """
    return rsa_of(*views(X, Y))


def linear_regression_fit(X, Y) -> float:
    """R^2 of the least-squares fit of centred Y from centred X (Kornblith et al. 2019, R^2_LR):
    ||Q_X^T Y||_F^2 / ||Y||_F^2. Not symmetric: it asks how well X predicts Y."""
    return linear_regression_of(*views(X, Y))


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
                    "Kornblith et al., ICML 2019", rbf_cka_of),
        MeasureInfo("deconfounded_cka", "Deconfounded CKA (dCKA)", deconfounded_cka, True, (0.0, 1.0),
                    _ALL_BUT_LINEAR, True,
                    "Linear CKA after regressing the inputs' similarity out of each layer's Gram matrix: what the "
                    "layers share beyond what the inputs already share.",
                    "Cui et al., NeurIPS 2022", deconfounded_cka_of, needs_inputs=True),
        MeasureInfo("mean_cca", "Mean CCA", mean_cca, True, (0.0, 1.0), frozenset(INVARIANCES), True,
                    "Mean canonical correlation; invariant to any invertible linear map, so it is 1 "
                    "for every pair once features outnumber examples.",
                    "Raghu et al., NeurIPS 2017", mean_cca_of),
        MeasureInfo("svcca", "SVCCA", svcca, True, (0.0, 1.0), _ALL_BUT_LINEAR, True,
                    "Mean CCA after keeping the singular directions that explain 99% of the variance.",
                    "Raghu et al., NeurIPS 2017", svcca_of),
        MeasureInfo("pwcca", "PWCCA", pwcca, True, (0.0, 1.0), frozenset({ISOTROPIC, TRANSLATION, PERMUTATION}), False,
                    "Canonical correlations weighted by how much of the first representation each accounts for.",
                    "Morcos et al., NeurIPS 2018", pwcca_of),
        MeasureInfo("procrustes", "Procrustes angle", procrustes_angle, False, (0.0, float(np.pi / 2)),
                    _ALL_BUT_LINEAR, True,
                    "Angle between the two normalised shapes after the best rotation; a true metric.",
                    "Williams et al., NeurIPS 2021; Ding et al., NeurIPS 2021", procrustes_angle_of),
        MeasureInfo("shape_metric", "Shape metric (partial whitening)", shape_distance, False,
                    (0.0, float(np.pi / 2)), _ALL_BUT_LINEAR, True,
                    "Angle between the two shapes after partial whitening α (α = 0.5 by default): between the "
                    "angle of mean CCA (α = 0) and the Procrustes angle (α = 1); a true metric for every α.",
                    "Williams et al., NeurIPS 2021", shape_distance_of),
        MeasureInfo("rsa", "RSA (Spearman of RDMs)", rsa, True, (-1.0, 1.0), _ALL_BUT_LINEAR, True,
                    "Rank correlation of the pairwise Euclidean distances between examples.",
                    "Kriegeskorte et al., Front. Syst. Neurosci. 2008", rsa_of),
        MeasureInfo("linear_regression", "Linear regression R²", linear_regression_fit, True, (0.0, 1.0),
                    _ALL_BUT_LINEAR, False,
                    "How much of the second representation a linear map of the first explains.",
                    "Kornblith et al., ICML 2019", linear_regression_of),
    ]
}


def identical_and_unrelated(measure: str) -> tuple[float, float]:
    """The measure's value for identical inputs (the similar end of its range) and for unrelated ones
    (0 for a similarity, the far end of the range for a distance)."""
    info = MEASURES.get(measure)
    if info is None:
        raise RepresentationError(f"unknown measure {measure!r}; choose one of: {', '.join(MEASURES)}.")
    low, high = info.value_range
    return (high, 0.0) if info.higher_is_similar else (low, high)


def movement(measure: str, value: float, reference: float) -> float:
    """|value - reference| as a fraction of the way from "identical" to "unrelated" (see
    :func:`identical_and_unrelated`), one scale for every measure. Dividing by the whole range instead
    would make a similarity that can go negative (debiased CKA, RSA: range -1 to 1) look half as
    sensitive as biased CKA for the same change."""
    identical, unrelated = identical_and_unrelated(measure)
    return abs(float(value) - float(reference)) / abs(identical - unrelated)


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
    if measure not in MEASURES:
        raise RepresentationError(f"unknown measure {measure!r}; choose one of: {', '.join(MEASURES)}.")
    if measure in LINEAR_CKA and "inputs" not in options:
        return cka_matrix(layers_a, layers_b, debiased=debiased or LINEAR_CKA[measure], batch_size=batch_size)
    if batch_size is not None:
        raise RepresentationError(f"batch_size applies to linear CKA only, not to {measure!r}.")
    if debiased:
        if measure != "rbf_cka":
            raise RepresentationError(f"debiased applies to CKA only, not to {measure!r}.")
        options = {**options, "debiased": True}
    info = MEASURES[measure]
    va, vb = layer_views(layers_a, layers_b, debiased=bool(options.get("debiased")))
    return matrix_of_views(info, va, vb, symmetric=layers_b is None, **prepared_options(info, options, va[0].n))


def layer_views(layers_a, layers_b=None, *, debiased: bool = False) -> tuple[list[LayerView], list[LayerView]]:
    """One :class:`LayerView` per layer of each side (side B is side A's views for a self-comparison)."""
    names_a, a = as_layers(layers_a, "layers_a")
    va = [LayerView.of(t, f"layers_a[{name!r}]") for name, t in zip(names_a, a)]
    if layers_b is None:
        check_rows(a[0].shape[0], a[0].shape[0], debiased, "layers_a", "layers_a")
        return va, va
    names_b, b = as_layers(layers_b, "layers_b")
    check_rows(a[0].shape[0], b[0].shape[0], debiased, "layers_a", "layers_b")
    return va, [LayerView.of(t, f"layers_b[{name!r}]") for name, t in zip(names_b, b)]


def matrix_of_views(info: MeasureInfo, va: list[LayerView], vb: list[LayerView], *, symmetric: bool = False,
                    **options) -> np.ndarray:
    """(L_a, L_b) values of a view-level measure; each pair once when the matrix is symmetric."""
    symmetric = symmetric and info.symmetric
    values = np.empty((len(va), len(vb)))
    try:
        for i, x in enumerate(va):
            for j, y in enumerate(vb):
                values[i, j] = values[j, i] if symmetric and j < i else info.of(x, y, **options)
    except TypeError as error:
        raise RepresentationError(f"bad option for measure {info.name!r}: {error}") from None
    return values
