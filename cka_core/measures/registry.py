"""Similarity measures beside CKA behind one entry point, each declaring its properties, and
:func:`similarity_matrix`, any measure between every pair of layers.

Every measure maps two representations of the same n examples to a number and says what it
is invariant to (a map applied to either argument leaves it unchanged), its range and
whether higher means more similar; the pages use this metadata to explain what moved.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..cka.matrix import cka_matrix
from ..errors import RepresentationError
from .cka import linear_cka, rbf_cka
from ..cka.validation import as_layers, as_matrix, check_rows
from .view import LayerView
from .cca import linear_regression_of, mean_cca_of, pwcca_of, svcca_of
from .deconfounded import deconfounded_cka_of
from .shape import procrustes_angle_of, shape_distance_of
from .cka import rbf_cka_of
from .rsa import rsa_of
from .alignment import (aligned_cosine, aligned_cosine_of, hard_correlation_match, hard_correlation_match_of,
                        orthogonal_procrustes, orthogonal_procrustes_of, permutation_procrustes,
                        permutation_procrustes_of, procrustes_size_and_shape, procrustes_size_and_shape_of,
                        soft_correlation_match, soft_correlation_match_of)
from .spectral import eigenspace_overlap, eigenspace_overlap_of, gulp, gulp_of
from .alignment import centred_norm
from .cca import linear_regression_fit, mean_cca, pwcca, svcca
from .cka import linear_cka_debiased
from .deconfounded import deconfounded_cka, inputs_view
from .rsa import rsa
from .shape import procrustes_angle, shape_distance
from .functional import accuracy_difference, accuracy_difference_of, disagreement, disagreement_of, jsd, jsd_of
from .neighbours import (jaccard_knn, jaccard_knn_of, rank_similarity, rank_similarity_of, second_order_cosine,
                         second_order_cosine_of)
from .rsm import (distance_correlation, distance_correlation_of, rsa_correlation, rsa_correlation_of,
                  rsm_norm_difference, rsm_norm_difference_of)
from .statistics import (concentricity_difference, concentricity_difference_of, magnitude_difference,
                         magnitude_difference_of, uniformity_difference, uniformity_difference_of)

ORTHOGONAL = "orthogonal"
ISOTROPIC = "isotropic_scaling"
INVERTIBLE = "invertible_linear"
TRANSLATION = "translation"
PERMUTATION = "permutation"
INVARIANCES = (ORTHOGONAL, ISOTROPIC, INVERTIBLE, TRANSLATION, PERMUTATION)


@dataclass(frozen=True)
class MeasureParameter:
    """A number a measure takes besides the data (the keyword ``name`` of its functions), declared once:
    the Compare page's control, the command line's ``--name`` flag and the defaults elsewhere read it."""

    name: str             # the keyword of the measure's functions (and of similarity_matrix)
    default: float
    label: str            # the Compare page's control
    help: str             # one line under the control
    flag_help: str        # the command line's --name flag
    shown: str            # the measure's label with the value, "{:g}" in place of the value
    low: float | None = None   # a range (a slider) ...
    high: float | None = None
    step: float | None = None
    choices: tuple = ()        # ... or a few values (a select box)


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
    parameters: tuple[MeasureParameter, ...] = ()  # the numbers it takes besides the data
    on_outputs: bool = False  # compares two networks' class outputs (logits of equal width), not any two layers
    needs_labels: bool = False  # takes the examples' true classes (option ``labels``)


def parameter_defaults(measure: str) -> dict[str, float]:
    """The declared default of each parameter of ``measure``, as keyword arguments."""
    return {p.name: p.default for p in MEASURES[measure].parameters}


def prepared_options(info: MeasureInfo, options: dict, n: int) -> dict:
    """``options`` with per-comparison arguments prepared once (the inputs of dCKA as a view, so that
    every pair of layers and every resample regresses on the same prepared Gram)."""
    if info.needs_inputs:
        return {**options, "inputs": inputs_view(options.get("inputs"), n)}
    if "inputs" in options:
        raise RepresentationError(f"inputs apply to deconfounded CKA only, not to {info.name!r}.")
    if "labels" in options and not info.needs_labels:
        raise RepresentationError(f"labels apply to the measures that compare accuracies only, not to {info.name!r}.")
    return options


_ALL_BUT_LINEAR = frozenset({ORTHOGONAL, ISOTROPIC, TRANSLATION, PERMUTATION})
#: Cosine similarity between examples (rows as given) survives rotations, scalings and reorderings of the
#: features, but not a translation, which changes every angle.
_COSINE = frozenset({ORTHOGONAL, ISOTROPIC, PERMUTATION})


def _k(label: str) -> MeasureParameter:
    """The neighbourhood size of a kNN measure (ReSi's k = 10), shown as ``label (k = ...)``."""
    return MeasureParameter("k", 10, "Neighbours k", "How many nearest neighbours (cosine distance) of each example "
                            "count.", "nearest neighbours per example of --measure jaccard_knn, rank_similarity or "
                            "second_order_cosine (default 10, as ReSi)", label + " (k = {:g})", low=1, high=50, step=1)


MEASURES: dict[str, MeasureInfo] = {
    m.name: m
    for m in [
        MeasureInfo("linear_cka", "Linear CKA", linear_cka, True, (0.0, 1.0), _ALL_BUT_LINEAR, True,
                    "Alignment of the two centred linear Gram matrices; dominated by high-variance directions.",
                    "Kornblith et al., ICML 2019"),
        MeasureInfo("linear_cka_debiased", "Linear CKA (debiased)", linear_cka_debiased, True, (-1.0, 1.0),
                    _ALL_BUT_LINEAR, True,
                    "Linear CKA with the unbiased HSIC estimator: no inflation when features outnumber examples.",
                    "Song et al., JMLR 2012; Nguyen et al., ICLR 2021"),
        MeasureInfo("rbf_cka", "RBF CKA", rbf_cka, True, (0.0, 1.0), _ALL_BUT_LINEAR, True,
                    "CKA with Gaussian kernels, bandwidth sigma x the median distance; local structure.",
                    "Kornblith et al., ICML 2019", rbf_cka_of,
                    parameters=(MeasureParameter(
                        "sigma", 1.0, "Bandwidth σ (× median distance)",
                        "Small σ: local neighbourhoods; large σ: close to linear CKA.",
                        "RBF bandwidth as a multiple of the median distance",
                        "RBF CKA (σ = {:g} × median distance)", low=0.1, high=3.0, step=0.1),)),
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
                    "Williams et al., NeurIPS 2021", shape_distance_of,
                    parameters=(MeasureParameter(
                        "alpha", 0.5, "Partial whitening α",
                        "0: whiten each layer first (the angle of mean CCA, blind to any invertible map); "
                        "1: no whitening (the Procrustes angle). A metric for every α.",
                        "partial whitening of --measure shape_metric: 0 whitened (CCA), 1 none (Procrustes); "
                        "default 0.5",
                        "Shape metric (α = {:g})", low=0.0, high=1.0, step=0.05),)),
        MeasureInfo("rsa", "RSA (Spearman of RDMs)", rsa, True, (-1.0, 1.0), _ALL_BUT_LINEAR, True,
                    "Rank correlation of the pairwise Euclidean distances between examples.",
                    "Kriegeskorte et al., Front. Syst. Neurosci. 2008", rsa_of),
        MeasureInfo("linear_regression", "Linear regression R²", linear_regression_fit, True, (0.0, 1.0),
                    _ALL_BUT_LINEAR, False,
                    "How much of the second representation a linear map of the first explains.",
                    "Kornblith et al., ICML 2019", linear_regression_of),
        # ReSi's alignment and spectral measures (docs/theory.md §8.5)
        MeasureInfo("orthogonal_procrustes", "Orthogonal Procrustes distance", orthogonal_procrustes, False,
                    (0.0, math.sqrt(2.0)), _ALL_BUT_LINEAR, True,
                    "Residual after the best rotation of one centred, unit-norm layer onto the other: the chord "
                    "sqrt(2 - 2 cos) of the Procrustes angle.",
                    "Ding et al., NeurIPS 2021; Klabunde et al., ICLR 2025 (ReSi)", orthogonal_procrustes_of),
        MeasureInfo("procrustes_size_and_shape", "Procrustes size-and-shape distance", procrustes_size_and_shape,
                    False, (0.0, math.inf), frozenset({ORTHOGONAL, TRANSLATION, PERMUTATION}), True,
                    "Residual after the best rotation of one centred layer onto the other, in the layers' own "
                    "units: a difference in scale alone counts.",
                    "Williams et al., NeurIPS 2021; Klabunde et al., ICLR 2025 (ReSi)", procrustes_size_and_shape_of),
        MeasureInfo("permutation_procrustes", "Permutation Procrustes distance", permutation_procrustes, False,
                    (0.0, math.inf), frozenset({PERMUTATION}), True,
                    "Residual after the best one-to-one matching of the neurons, on the layers as given (neither "
                    "centred nor rescaled): a rotation, a shift or a rescaling moves it.",
                    "Klabunde et al., ICLR 2025 (ReSi)", permutation_procrustes_of),
        MeasureInfo("aligned_cosine", "Aligned cosine similarity", aligned_cosine, True, (-1.0, 1.0),
                    frozenset({ORTHOGONAL, ISOTROPIC, PERMUTATION}), True,
                    "Mean cosine between each example in the two layers after the best rotation of one onto the "
                    "other; the layers are not centred, so a shift moves it.",
                    "Hamilton et al., ACL 2016; Klabunde et al., ICLR 2025 (ReSi)", aligned_cosine_of),
        MeasureInfo("hard_correlation_match", "Hard correlation match", hard_correlation_match, True, (-1.0, 1.0),
                    frozenset({ISOTROPIC, TRANSLATION, PERMUTATION}), True,
                    "Mean correlation of the neurons matched one to one across the layers: it asks for single "
                    "neurons to agree, so a rotation of the features moves it.",
                    "Li et al., ICLR 2016 (Convergent learning)", hard_correlation_match_of),
        MeasureInfo("soft_correlation_match", "Soft correlation match", soft_correlation_match, True, (-1.0, 1.0),
                    frozenset({ISOTROPIC, TRANSLATION, PERMUTATION}), True,
                    "Mean correlation of each neuron with its best-correlated neuron in the other layer (several "
                    "may pick the same one), both directions averaged.",
                    "Li et al., ICLR 2016 (Convergent learning)", soft_correlation_match_of),
        MeasureInfo("eigenspace_overlap", "Eigenspace overlap score", eigenspace_overlap, True, (0.0, 1.0),
                    frozenset(INVARIANCES), True,
                    "How much the two centred column spaces overlap (summed squared canonical correlations over "
                    "the larger rank); blind to any invertible linear map.",
                    "May et al., NeurIPS 2019", eigenspace_overlap_of),
        MeasureInfo("gulp", "GULP distance", gulp, False, (0.0, math.inf), frozenset(INVARIANCES), True,
                    "How far apart the ridge-regression predictors fitted on each layer are; at λ = 0 it is "
                    "sqrt(rank_A + rank_B - 2 Σ ρ²) from the canonical correlations ρ, blind to invertible maps.",
                    "Boix-Adserà et al., NeurIPS 2022", gulp_of,
                    parameters=(MeasureParameter(
                        "lam", 0.0, "Ridge λ",
                        "0: least squares (the CCA limit, invariant to any invertible map); larger λ: ridge, "
                        "weighting high-variance directions like CKA.",
                        "ridge parameter of --measure gulp, on layers with covariance of unit trace (default 0)",
                        "GULP (λ = {:g})", low=0.0, high=1.0, step=0.01),)),
        # ReSi's neighbourhood, RSM, statistic and functional measures (docs/theory.md §8.y)
        MeasureInfo("jaccard_knn", "Jaccard of k nearest neighbours", jaccard_knn, True, (0.0, 1.0), _COSINE, True,
                    "How many of each example's k nearest neighbours (cosine distance) the two layers share: blind "
                    "to everything beyond the k-th neighbour.",
                    "Klabunde et al., ICLR 2025 (ReSi)", jaccard_knn_of,
                    parameters=(_k("Jaccard kNN"),)),
        MeasureInfo("rank_similarity", "Rank similarity of k nearest neighbours", rank_similarity, True, (0.0, 1.0),
                    _COSINE, True,
                    "Shared nearest neighbours weighted by how near they are and how alike their ranks are in the "
                    "two layers.",
                    "Wang et al., IEEE TKDE 2020", rank_similarity_of,
                    parameters=(_k("Rank similarity"),)),
        MeasureInfo("second_order_cosine", "Second-order cosine similarity", second_order_cosine, True, (-1.0, 1.0),
                    _COSINE, True,
                    "Each example's cosine similarities to its nearest neighbours (in either layer), compared "
                    "between the layers.",
                    "Hamilton et al., EMNLP 2016", second_order_cosine_of,
                    parameters=(_k("Second-order cosine"),)),
        MeasureInfo("rsm_norm_difference", "RSM norm difference", rsm_norm_difference, False, (0.0, math.inf),
                    frozenset({ORTHOGONAL, TRANSLATION, PERMUTATION}), True,
                    "Frobenius norm of the difference of the two Euclidean distance matrices, in the layers' own "
                    "units: it grows with the scale of either layer.",
                    "Klabunde et al., ICLR 2025 (ReSi)", rsm_norm_difference_of),
        MeasureInfo("rsa_correlation", "RSA (Spearman of correlation RDMs)", rsa_correlation, True, (-1.0, 1.0),
                    frozenset({ISOTROPIC, PERMUTATION}), True,
                    "Rank correlation of the examples' pairwise correlation distances (1 - Pearson r across the "
                    "features), ReSi's RSA: neither rotation- nor translation-invariant.",
                    "Kriegeskorte et al., Front. Syst. Neurosci. 2008", rsa_correlation_of),
        MeasureInfo("distance_correlation", "Distance correlation", distance_correlation, True, (0.0, 1.0),
                    _ALL_BUT_LINEAR, True,
                    "Correlation of the double-centred Euclidean distance matrices; 0 only for independent "
                    "configurations.",
                    "Székely et al., Ann. Statist. 2007", distance_correlation_of),
        MeasureInfo("magnitude_difference", "Magnitude difference", magnitude_difference, False, (0.0, math.inf),
                    frozenset({ORTHOGONAL, PERMUTATION}), True,
                    "Difference of the lengths of the two mean examples: where the layers sit, not how their "
                    "examples are arranged.",
                    "Wang et al., IEEE TKDE 2020; Klabunde et al., ICLR 2025 (ReSi)", magnitude_difference_of),
        MeasureInfo("concentricity_difference", "Concentricity difference", concentricity_difference, False,
                    (0.0, 2.0), _COSINE, True,
                    "Difference of the mean cosine similarity of the examples to their mean example.",
                    "Wang et al., IEEE TKDE 2020; Klabunde et al., ICLR 2025 (ReSi)", concentricity_difference_of),
        MeasureInfo("uniformity_difference", "Uniformity difference", uniformity_difference, False, (0.0, math.inf),
                    frozenset({ORTHOGONAL, TRANSLATION, PERMUTATION}), True,
                    "Difference of the uniformity log E exp(-t ||x_i - x_j||^2) of the layers as given: how evenly "
                    "the examples spread, at the layers' own scale.",
                    "Wang & Isola, ICML 2020", uniformity_difference_of,
                    parameters=(MeasureParameter(
                        "t", 2.0, "Uniformity temperature t",
                        "Large t: only near pairs of examples count; small t: all pairs.",
                        "temperature of --measure uniformity_difference (default 2, as ReSi)",
                        "Uniformity difference (t = {:g})", low=0.5, high=10.0, step=0.5),)),
        MeasureInfo("jsd", "Jensen-Shannon divergence of outputs", jsd, False, (0.0, 1.0), frozenset(), True,
                    "Mean Jensen-Shannon divergence (bits) of the two networks' softmax outputs per example.",
                    "Klabunde et al., ICLR 2025 (ReSi)", jsd_of, on_outputs=True),
        MeasureInfo("disagreement", "Disagreement of predictions", disagreement, False, (0.0, 1.0),
                    frozenset({ISOTROPIC}), True,
                    "Fraction of examples whose predicted classes differ.",
                    "Klabunde et al., ICLR 2025 (ReSi)", disagreement_of, on_outputs=True),
        MeasureInfo("accuracy_difference", "Accuracy difference", accuracy_difference, False, (0.0, 1.0),
                    frozenset({ISOTROPIC}), True,
                    "Absolute difference of the two networks' accuracies on the true classes.",
                    "Klabunde et al., ICLR 2025 (ReSi)", accuracy_difference_of, on_outputs=True, needs_labels=True),
    ]
}


def identical_and_unrelated(measure: str, unrelated: float | None = None) -> tuple[float, float]:
    """The measure's value for identical inputs (the similar end of its range) and for unrelated ones
    (0 for a similarity, the far end of the range for a distance).

    A distance with no upper bound (``value_range`` up to ``math.inf``: in the layers' own units, like
    Procrustes size and shape, or growing with the ranks, like GULP) has no fixed value for "unrelated":
    pass ``unrelated``, its value between the layer and an unrelated baseline
    (:func:`unrelated_baseline`); without it this refuses. Bounded measures keep their fixed end."""
    info = MEASURES.get(measure)
    if info is None:
        raise RepresentationError(f"unknown measure {measure!r}; choose one of: {', '.join(MEASURES)}.")
    low, high = info.value_range
    if info.higher_is_similar:
        return high, 0.0
    if math.isinf(high):
        if unrelated is None:
            raise RepresentationError(f"{measure} has no upper bound, so 'unrelated' is no fixed value of it: pass "
                                      "its value between the layer and an unrelated baseline "
                                      "(measures.unrelated_baseline).")
        return low, float(unrelated)
    return low, high


def is_unbounded(measure: str) -> bool:
    """Whether ``measure``'s range has an infinite end (then "unrelated" needs :func:`unrelated_baseline`)."""
    return not all(math.isfinite(end) for end in MEASURES[measure].value_range)


#: The noise of :func:`unrelated_baseline`: a fixed seed (so that pages and exports agree), not 0, which
#: demos and tests often draw their own data with: noise from the same stream would be X itself.
UNRELATED_SEED = 8_675_309


def unrelated_baseline(X, measure: str, *, seed: int = UNRELATED_SEED, **options) -> float:
    """``measure`` between X and an unrelated layer of the same shape and spread: independent standard
    Gaussian noise (``seed``), centred at the origin and scaled to the Frobenius norm of X's centred
    values. For a distance with no upper bound this is what "unrelated" reads for this layer, in its
    units and at its ranks: a fixed number such as sqrt(2) would mean nothing for a distance in the
    layer's own units. Noise, not X with its examples shuffled: a measure that compares a summary of each
    side (where the mean sits, how evenly the examples spread) reads a shuffled X as X itself."""
    x = as_matrix(X, "X").double().cpu().numpy()
    noise = np.random.default_rng(seed).standard_normal(x.shape)
    noise *= centred_norm(x) / centred_norm(noise)
    value = similarity(x, noise, measure, **options)
    identical = MEASURES[measure].value_range[0]
    if not value > identical:
        raise RepresentationError(f"{measure}: X is as close to unrelated noise as to itself ({value:g}), so there "
                                  "is no unrelated baseline to measure a change against.")
    return value


def movement(measure: str, value: float, reference: float, unrelated: float | None = None) -> float:
    """|value - reference| as a fraction of the way from "identical" to "unrelated" (see
    :func:`identical_and_unrelated`), one scale for every measure. Dividing by the whole range instead
    would make a similarity that can go negative (debiased CKA, RSA: range -1 to 1) look half as
    sensitive as biased CKA for the same change.

    For a distance with no upper bound, ``unrelated`` (from :func:`unrelated_baseline`) sets the far
    end: a movement of 1 is then as far as the layer is from unrelated noise of its shape and spread,
    the same reading as for a bounded measure, whatever the layer's units."""
    identical, far = identical_and_unrelated(measure, unrelated)
    return abs(float(value) - float(reference)) / abs(identical - far)


def colour_range(measure: str, values) -> tuple[float, float]:
    """The measure's range for a colour scale, an infinite end (a distance with no upper bound) replaced
    by the values' own extreme, so that the scale spans the data rather than 0 to infinity."""
    low, high = MEASURES[measure].value_range
    finite = np.asarray(values, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    if math.isinf(high):
        high = float(finite.max()) if finite.size else low + 1.0
    if math.isinf(low):
        low = float(finite.min()) if finite.size else high - 1.0
    return (low, high) if high > low else (low, low + 1.0)


def similarity(X, Y, measure: str = "linear_cka", **options) -> float:
    """The value of ``measure`` between X and Y; see ``MEASURES`` for the names and what each means."""
    info = MEASURES.get(measure)
    if info is None:
        raise RepresentationError(f"unknown measure {measure!r}; choose one of: {', '.join(MEASURES)}.")
    try:
        return float(info.function(X, Y, **options))
    except TypeError as error:
        raise RepresentationError(f"bad option for measure {measure!r}: {error}") from None


def similarities_of_views(vx: LayerView, vy: LayerView, measures, options: dict[str, dict] | None = None
                          ) -> tuple[dict[str, float], dict[str, str]]:
    """Each of ``measures`` between two prepared layers, their per-layer work (bases, distances, ranks,
    neighbours) done once and shared by every measure: (value of each measure, the message of each that
    could not apply). ``options``: keywords per measure (none: its declared defaults).

    The Invariances page compares one layer with each of its transformations on every measure: built
    again for each call of :func:`similarity`, the layer's views cost most of its table."""
    values, errors = {}, {}
    for name in measures:
        info = MEASURES[name]
        keywords = parameter_defaults(name) if options is None or name not in options else options[name]
        try:
            values[name] = float(info.of(vx, vy, **keywords) if info.of is not None
                                 else info.function(vx.raw, vy.raw, **keywords))
        except RepresentationError as error:
            errors[name] = str(error)
    return values, errors


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
