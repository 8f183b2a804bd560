"""Uncertainty for every cell of a layer x layer matrix: bootstrap intervals and permutation tests.

No peer library offers either (docs/peers.md §3; the method: docs/theory.md §9). Both resample the examples (rows),
keeping the pairing between the two sides intact for the bootstrap and breaking it on purpose
for the permutation null.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..errors import RepresentationError
from ..measures.registry import layer_views, matrix_of_views, MEASURES, prepared_options, similarity_matrix
from ..cka.validation import as_layers

Progress = Callable[[int, int], None]  # (done, total)


@dataclass(frozen=True)
class BootstrapResult:
    """Bootstrap over examples: the full-data values, a (low, high) interval per cell, and the
    bootstrap bias (median of the resampled values minus the full-data value)."""

    values: np.ndarray
    low: np.ndarray
    high: np.ndarray
    bias: np.ndarray
    confidence: float
    n_resamples: int


@dataclass(frozen=True)
class PermutationResult:
    """Permutation test of each cell against the null of unpaired examples (rows of B shuffled).

    p = (1 + #{null >= observed}) / (1 + n_permutations) for measures where higher means more
    similar (<= for distances), so p is never 0 and is exact under exchangeability.
    """

    values: np.ndarray
    p_values: np.ndarray
    null_mean: np.ndarray
    null_std: np.ndarray
    n_permutations: int


def _layers(layers_a, layers_b):
    names_a, a = as_layers(layers_a, "layers_a")
    if layers_b is None:
        return names_a, a, None, None
    names_b, b = as_layers(layers_b, "layers_b")
    if a[0].shape[0] != b[0].shape[0]:
        raise RepresentationError(
            f"layers_a have {a[0].shape[0]} examples but layers_b have {b[0].shape[0]}; both sides need "
            "the same examples in the same order."
        )
    return names_a, a, names_b, b


def _take(tensors, index):
    return [t[index] for t in tensors]


def _view_measure(measure: str):
    info = MEASURES.get(measure)
    return info if info is not None and info.of is not None else None


def _matrices(a, b, measure: str, options: dict):
    """(full-data matrix, rows index -> the matrix on those rows). Measures with per-layer views
    prepare each layer once per resample and take its distances from the full data's."""
    info = _view_measure(measure)
    if info is None:
        return (similarity_matrix(a, b, measure=measure, **options),
                lambda index: similarity_matrix(_take(a, index), None if b is None else _take(b, index),
                                                measure=measure, **options))
    va, vb = layer_views(a, b, debiased=bool(options.get("debiased")))
    options = prepared_options(info, options, va[0].n)
    values = matrix_of_views(info, va, vb, symmetric=b is None, **options)

    def resampled(index):
        ra = [v.rows(index) for v in va]
        return matrix_of_views(info, ra, ra if b is None else [v.rows(index) for v in vb], symmetric=b is None,
                               **options)

    return values, resampled


def _null_matrices(a, other, measure: str, options: dict):
    """(full-data matrix of A against ``other``, permutation -> the matrix with other's rows
    permuted). With per-layer views nothing is recomputed per permutation: other's per-layer
    quantities (bases, distance ranks, kernels) are reordered."""
    info = _view_measure(measure)
    if info is None:
        return (similarity_matrix(a, other, measure=measure, **options),
                lambda perm: similarity_matrix(a, _take(other, perm), measure=measure, **options))
    va, vo = layer_views(a, other, debiased=bool(options.get("debiased")))
    options = prepared_options(info, options, va[0].n)
    values = matrix_of_views(info, va, vo, **options)  # fills every view's cache
    return values, lambda perm: matrix_of_views(info, va, [v.permuted(perm) for v in vo], **options)


def _check_count(name: str, count: int) -> None:
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 1:
        raise RepresentationError(f"{name} must be a positive integer, not {count!r}.")


def recentred_interval(values, samples: np.ndarray, confidence: float):
    """(low, high, median) of the percentile interval re-centred on the full-data ``values``:
    [v + q_lo - m, v + q_hi - m], with m the median of the resamples (``samples`` along axis 0).
    Drawing an example twice inflates CKA, so the bootstrap gives the spread and the data the location."""
    tail = (1 - confidence) / 2
    q_low, median, q_high = np.quantile(samples, [tail, 0.5, 1 - tail], axis=0)
    return values + (q_low - median), values + (q_high - median), median


def bootstrap(layers_a, layers_b=None, *, measure: str = "linear_cka", n_resamples: int = 200,
              confidence: float = 0.95, seed: int = 0, progress: Progress | None = None,
              **options) -> BootstrapResult:
    """Bootstrap intervals for every cell: resample examples with replacement (the same rows on
    both sides) and recompute the matrix.

    Resampling duplicates examples, which inflates CKA (fewer distinct examples behave like a
    smaller n, and biased CKA grows as n shrinks). The interval is therefore the percentile
    interval re-centred on the full-data value: [v + q_lo - m, v + q_hi - m], with m the median
    of the resamples -- the spread comes from the bootstrap, the location from the data.
    """
    _check_count("n_resamples", n_resamples)
    if not 0 < confidence < 1:
        raise RepresentationError(f"confidence must be between 0 and 1, not {confidence!r}.")
    _, a, _, b = _layers(layers_a, layers_b)
    values, resampled = _matrices(a, b, measure, options)
    n = a[0].shape[0]
    rng = np.random.default_rng(seed)
    samples = np.empty((n_resamples, *values.shape))
    for k in range(n_resamples):
        samples[k] = resampled(rng.integers(0, n, size=n))
        if progress is not None:
            progress(k + 1, n_resamples)
    low, high, median = recentred_interval(values, samples, confidence)
    if measure in MEASURES:
        lo, hi = MEASURES[measure].value_range
        low, high = np.clip(low, lo, hi), np.clip(high, lo, hi)
    return BootstrapResult(values, low, high, median - values, confidence, n_resamples)


def permutation_test(layers_a, layers_b=None, *, measure: str = "linear_cka", n_permutations: int = 200,
                     seed: int = 0, progress: Progress | None = None, **options) -> PermutationResult:
    """p-value of every cell against the null in which the examples of side B are shuffled
    relative to side A (for a self-comparison, B is a shuffled copy of A)."""
    _check_count("n_permutations", n_permutations)
    _, a, _, b = _layers(layers_a, layers_b)
    values, shuffled = _null_matrices(a, a if b is None else b, measure, options)
    higher = MEASURES[measure].higher_is_similar if measure in MEASURES else True
    n = a[0].shape[0]
    rng = np.random.default_rng(seed)
    null = np.empty((n_permutations, *values.shape))
    for k in range(n_permutations):
        null[k] = shuffled(rng.permutation(n))
        if progress is not None:
            progress(k + 1, n_permutations)
    extreme = (null >= values) if higher else (null <= values)
    p_values = (1 + extreme.sum(axis=0)) / (1 + n_permutations)
    return PermutationResult(values, p_values, null.mean(axis=0), null.std(axis=0), n_permutations)



def bootstrap_and_permutation(layers_a, layers_b=None, *, measure: str = "linear_cka", n_resamples: int = 200,
                              n_permutations: int = 200, confidence: float = 0.95, seed: int = 0,
                              progress: Progress | None = None,
                              **options) -> tuple[BootstrapResult, PermutationResult]:
    """:func:`bootstrap` then :func:`permutation_test` with the same seed, as the Compare page runs
    them, reporting one count over both (``n_resamples + n_permutations`` steps)."""
    total = n_resamples + n_permutations

    def counted(offset: int) -> Progress | None:
        return None if progress is None else (lambda done, _: progress(offset + done, total))

    boot = bootstrap(layers_a, layers_b, measure=measure, n_resamples=n_resamples, confidence=confidence, seed=seed,
                     progress=counted(0), **options)
    perm = permutation_test(layers_a, layers_b, measure=measure, n_permutations=n_permutations, seed=seed,
                            progress=counted(n_resamples), **options)
    return boot, perm
