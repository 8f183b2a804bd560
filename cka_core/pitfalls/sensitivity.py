"""Specificity and sensitivity of similarity measures under principal-component deletion (Ding, Denain
& Steinhardt, NeurIPS 2021, "Grounding representation similarity with statistical testing";
docs/theory.md §8.3).

Delete the k principal components of largest (top) or smallest non-zero (bottom) variance of one
layer, compare the result with the layer under each measure, and set the change against what the
deletion costs functionally (a score of the edited layer, such as accuracy) and against the noise
floor: the same measure between the layer and the same layer of networks that differ only in their
training seed. A measure is *sensitive* when its dissimilarity ranks deletions as their functional
cost does, and it *hides* a deletion that costs accuracy yet reads closer than a retrained seed.

Every measure is put on one dissimilarity scale (0: identical, 1: unrelated), so that they can be
read on one axis. Small pure functions, one equation each; no UI code.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import stats

from ..errors import RepresentationError
from ..measures.registry import (identical_and_unrelated, is_unbounded, MEASURES, movement, similarity, TRANSLATION,
                                 unrelated_baseline)
from .transforms import (deleted_components, deletion_cka, kept_components, nonzero_spectrum, projection_on,
                         WHICH_COMPONENTS)
from ..cka.validation import as_matrix, check_rows
from ..measures.view import LayerView

#: The measures Ding et al. compare (linear CKA, PWCCA, orthogonal Procrustes) and Williams et al.'s
#: shape metric, halfway between the Procrustes angle and the angle of mean CCA.
COMPARED = ("linear_cka", "procrustes", "pwcca", "shape_metric")
OPTIONS: dict[str, dict] = {"shape_metric": {"alpha": 0.5}}

#: Dissimilarities (and score changes) closer than this are one value: it is far above the measures'
#: round-off (PWCCA reads 1 - 7e-16 for an exact 1) and far below any change worth ranking.
ROUND_OFF = 1e-9


@dataclass(frozen=True)
class Deletion:
    """One PC deletion of a layer: each measure between the layer and the layer with the deletion, the
    functional score of the edited layer, and linear CKA in closed form (``transforms.deletion_cka``)."""

    which: str                   # "top" or "bottom"
    k: int                       # how many components were deleted
    values: dict[str, float]     # measure -> its value (not a dissimilarity)
    score: float                 # the functional score of the layer with the deletion
    closed_form_cka: float


@dataclass(frozen=True)
class Sweep:
    """Every deletion tried on one layer and the score of the layer as it is."""

    measures: tuple[str, ...]
    lambdas: np.ndarray          # covariance eigenvalues of the layer's directions with non-zero variance
    baseline: float              # the functional score with nothing deleted
    deletions: tuple[Deletion, ...]
    skipped: tuple[tuple[str, int, str], ...] = ()  # (which, k, why) of deletions that could not be measured
    #: measure -> its value between the layer and unrelated noise of its shape and spread, for the distances
    #: with no upper bound: the "unrelated" end of their dissimilarity scale (``measures.unrelated_baseline``)
    unrelated: Mapping[str, float] = field(default_factory=dict)

    @property
    def rank(self) -> int:
        """How many directions of the layer have non-zero variance (components a deletion counts among)."""
        return self.lambdas.size

    def drops(self) -> np.ndarray:
        """The functional cost of each deletion: baseline - score (an accuracy drop)."""
        return np.array([self.baseline - d.score for d in self.deletions])

    def dissimilarities(self, measure: str) -> np.ndarray:
        """``measure``'s dissimilarity between the layer and each deletion (see :func:`dissimilarity`)."""
        return np.array([dissimilarity(measure, d.values[measure], self.unrelated.get(measure))
                         for d in self.deletions])

    def find(self, which: str, k: int) -> Deletion | None:
        return next((d for d in self.deletions if d.which == which and d.k == k), None)

    def rows(self) -> list[dict]:
        """One flat row per deletion (which, k, each measure's value, score, drop, closed-form CKA)."""
        return [{"which": d.which, "k": d.k, **d.values, "score": d.score, "drop": self.baseline - d.score,
                 "closed_form_cka": d.closed_form_cka} for d in self.deletions]


def dissimilarity(measure: str, value: float, unrelated: float | None = None) -> float:
    """A measure's value on one scale for every measure: how far it is from the value for identical
    inputs, as a share of the way to unrelated ones (``measures.movement``): 1 - value for a similarity
    in [0, 1], angle / (pi/2) for an angle, value / ``unrelated`` for a distance with no upper bound
    (``unrelated``: its value against unrelated noise of the layer's shape, ``Sweep.unrelated``)."""
    return movement(measure, value, identical_and_unrelated(measure, unrelated)[0], unrelated)


def _info(measure: str):
    info = MEASURES.get(measure)
    if info is None:
        raise RepresentationError(f"unknown measure {measure!r}; choose one of: {', '.join(MEASURES)}.")
    return info


def _compare(X: np.ndarray, view: LayerView, Y, measures: Sequence[str],
             options: Mapping[str, dict]) -> dict[str, float]:
    """Each measure between X and Y. Measures with a view-level form reuse X's prepared ``view`` (its
    centring, scaling and basis are done once for every Y); the others go through ``similarity``."""
    other = LayerView.of(Y, "Y") if any(_info(m).of is not None for m in measures) else None
    values = {}
    for m in measures:
        info, given = _info(m), options.get(m, {})
        values[m] = float(info.of(view, other, **given)) if info.of is not None else similarity(X, Y, m, **given)
    return values


def _checked(X) -> np.ndarray:
    """X validated (finite, (n, d)) as a float64 numpy array."""
    return as_matrix(X, "X").double().cpu().numpy()


def deletion_counts(rank: int, most: int = 64) -> list[int]:
    """The k tried on a layer of ``rank`` components: every k from 1 to rank - 1 when there are at most
    ``most`` + 1 of them, else about ``most`` of them, k = round(r^t) and r - round(r^t) on an even grid of t
    (dense at both ends, where deleting the top or leaving only a few components changes most)."""
    if rank - 1 <= most:
        return list(range(1, rank))
    ends = np.unique(np.round(np.geomspace(1, rank - 1, most // 2)).astype(int))
    return sorted({int(k) for k in ends} | {int(rank - k) for k in ends})


def deletion_sweep(X, score: Callable[[np.ndarray], float], *, ks: Sequence[int] | None = None,
                   measures: Sequence[str] = COMPARED, options: Mapping[str, dict] = OPTIONS) -> Sweep:
    """Ding et al.'s PC-deletion protocol on one layer X (n, d): for which in (top, bottom) and each k
    (every k from 1 to rank - 1 unless ``ks`` is given), X_del = mean + X_c (I - V_S V_S^T), each measure
    m(X, X_del), the functional score(X_del) and CKA in closed form sqrt(sum_kept lambda^2 / sum lambda^2).
    ``score`` maps an edited layer (n, d) to a number, e.g. the accuracy of the network run from it. The
    measures must be translation-invariant (all of the registry's are): they are given X_del centred.

    A deletion some measure cannot be computed on (an SVD that does not converge) is left out of
    ``deletions`` and listed in ``skipped`` with the reason, so that every measure is read on the same
    deletions."""
    x = _checked(X)
    lambdas, axes = nonzero_spectrum(x)
    rank = lambdas.size
    if rank < 2:
        raise RepresentationError(f"X varies along {rank} direction(s) only: deleting a principal component must "
                                  "leave one, so there is nothing to delete.")
    counts = list(range(1, rank)) if ks is None else [int(k) for k in ks]
    outside = [k for k in counts if not 1 <= k < rank]
    if outside:
        raise RepresentationError(f"ks = {outside} cannot be deleted: a deletion takes between 1 and {rank - 1} of the "
                                  f"{rank} components with non-zero variance, so that one is left.")
    measures = tuple(measures)
    shifted = [m for m in measures if TRANSLATION not in _info(m).invariances]
    if shifted:
        raise RepresentationError(f"{', '.join(shifted)} would change under a translation; the sweep compares the "
                                  "deletions centred, so it takes translation-invariant measures only.")
    view = LayerView.of(x, "X")
    # X against itself first: an unknown measure or a bad option fails here, once, with its message,
    # rather than as a skipped deletion every time below.
    _compare(x, view, x, measures, options)
    mean = x.mean(axis=0)
    xc = x - mean
    deletions, skipped = [], []
    for which in WHICH_COMPONENTS:
        for k in counts:
            # X_c V_K V_K^T from the one SVD of X: delete_components(x, k, which) without its mean. The
            # measures see it centred: adding the mean back and centring again leaves round-off of the
            # mean's size in every direction, which on a layer far from the origin with little variance
            # kept passes their rank threshold as directions that are not there (PWCCA would read < 1).
            centred = projection_on(xc, axes[:, kept_components(which, k, rank)])
            try:
                values = _compare(x, view, centred, measures, options)
            except (np.linalg.LinAlgError, RepresentationError) as error:
                skipped.append((which, k, str(error)))
                continue
            deletions.append(Deletion(which, k, values, float(score(mean + centred)), deletion_cka(lambdas, k, which)))
    unrelated = {m: unrelated_baseline(x, m, **options.get(m, {})) for m in measures if is_unbounded(m)}
    return Sweep(measures, lambdas, float(score(x)), tuple(deletions), tuple(skipped), unrelated)


def deleted_variance(lambdas, k: int, which: str) -> float:
    """The share of the variance a deletion removes, sum_{i in S} lambda_i / sum_i lambda_i (lambda the
    covariance eigenvalues of the directions with non-zero variance, descending)."""
    lam = np.sort(np.asarray(lambdas, dtype=np.float64))[::-1]
    return float(lam[deleted_components(which, k, lam.size)].sum() / lam.sum())


def seed_spread(X, others: Mapping[str, object], *, measures: Sequence[str] = COMPARED,
                options: Mapping[str, dict] = OPTIONS) -> dict[str, dict[str, float]]:
    """Each measure between X and each other representation of the same examples (name -> (n, d')): for
    networks that differ from X's only in their training seed, the spread a measure shows for no
    functional change at all, the noise floor a deletion must rise above (Ding et al.'s specificity baseline)."""
    x = _checked(X)
    view = LayerView.of(x, "X")
    spread: dict[str, dict[str, float]] = {m: {} for m in measures}
    for name, other in others.items():
        y = as_matrix(other, name)
        check_rows(x.shape[0], y.shape[0], False, "X", name)
        for m, value in _compare(x, view, y.double().cpu().numpy(), measures, options).items():
            spread[m][name] = value
    return spread


def seed_floor(measure: str, values: Sequence[float], unrelated: float | None = None) -> float | None:
    """The smallest dissimilarity between X and a retrained seed, min_s d(X, X_s); None without seeds.
    ``unrelated``: as for :func:`dissimilarity` (``Sweep.unrelated``), for a distance with no upper bound."""
    return min((dissimilarity(measure, v, unrelated) for v in values), default=None)


def round_off_groups(values: Sequence[float], tolerance: float = ROUND_OFF) -> np.ndarray:
    """Each value's rank group: values sorted, neighbours at most ``tolerance`` apart share a group
    (numbered in increasing order), so values equal but for round-off tie."""
    v = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(v)):
        raise RepresentationError("the values to rank hold NaN or infinity; a rank correlation needs finite values.")
    order = np.argsort(v, kind="stable")
    groups = np.zeros(v.size, dtype=np.intp)
    groups[order[1:]] = np.cumsum(np.diff(v[order]) > tolerance)
    return groups


def is_constant(values: Sequence[float], tolerance: float = ROUND_OFF) -> bool:
    """Whether every value is the same but for round-off (a rank correlation with it is undefined)."""
    groups = round_off_groups(values, tolerance)
    return groups.size == 0 or int(groups.max()) == 0


def rank_sensitivity(dissimilarities: Sequence[float], drops: Sequence[float]) -> float | None:
    """Ding et al.'s sensitivity of a measure: Spearman's rho between its dissimilarity and the functional
    cost (accuracy drop) across deletions, rho = corr(rank d, rank drop), ties (to round-off) averaged.
    None when either side is constant (or there is a single deletion): rho is then undefined (0/0), and
    a measure that never moves (PWCCA here) ranks nothing."""
    if len(dissimilarities) != len(drops):
        raise RepresentationError(f"{len(dissimilarities)} dissimilarities but {len(drops)} accuracy drops; pass "
                                  "one of each per deletion.")
    if is_constant(dissimilarities) or is_constant(drops):
        return None
    rho = stats.spearmanr(round_off_groups(dissimilarities), round_off_groups(drops)).statistic
    return float(rho)


def hidden_below_seed_spread(dissimilarities: Sequence[float], drops: Sequence[float],
                             floor: float | None) -> int | None:
    """The deletion a measure hides best: among deletions whose dissimilarity is below the seed floor
    (d < min_s d(X, X_s), closer to X than a retrained network is), the index of the one with the largest
    functional cost. None when no deletion reads below the floor, or there is no floor."""
    d, cost = np.asarray(dissimilarities, dtype=np.float64), np.asarray(drops, dtype=np.float64)
    if d.shape != cost.shape:
        raise RepresentationError(f"{d.size} dissimilarities but {cost.size} accuracy drops; pass one of each per "
                                  "deletion.")
    if floor is None:
        return None
    below = np.flatnonzero(d < floor)
    return None if below.size == 0 else int(below[np.argmax(cost[below])])
