"""Sanity checks for a layer x layer comparison: pure functions, each returning a :class:`Check`.

Each check would have caught a bug that shipped in a popular CKA library (docs/peers.md §2):
a model compared with itself must give the measure's identity value on the diagonal; a symmetric
measure must give M(A, B) = M(B, A)^T; both sides must hold the same examples in the same order;
no layer may be constant; biased CKA is inflated when features outnumber examples; and a value is
only evidence of *learned* similarity if it beats the same comparison against a random-init network.

The permutation-null means used here are exact, in closed form (derived for this module and
checked against full enumeration in tests/cka_core/test_sanity.py): for centred Grams K, L and a
uniformly random row permutation P,

    E[tr(K P L P^T)] = tr(K) tr(L) / (n - 1)        (row sums of K are 0)

and the self terms ||K||_F, ||L||_F do not move, so the mean of *biased* linear CKA over shuffled
rows is tr(K) tr(L) / ((n - 1) ||K||_F ||L||_F) = sqrt(PR_X PR_Y) / (n - 1), with PR the
participation ratio of each side's spectrum. For U-centred Grams (debiased CKA) it is exactly 0.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy.stats import norm

from ..cka.matrix import cka_matrix
from ..errors import RepresentationError
from ..measures.registry import MEASURES, similarity_matrix

PASS, WARN, FAIL, INFO = "pass", "warn", "fail", "info"


@dataclass(frozen=True)
class Check:
    """One sanity check: a short name, a status (pass / warn / fail / info), a message that says
    what was found and what to do, and the numbers behind it (for tables and exports)."""

    name: str
    status: str
    message: str
    details: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status in (PASS, INFO)


# --------------------------------------------------------------------------- helpers
def _as_float(X) -> np.ndarray:
    if hasattr(X, "detach"):
        X = X.detach().cpu().numpy()
    X = np.asarray(X)
    if X.ndim == 0:
        raise RepresentationError("a layer is a single number; pass arrays of shape (n_examples, ...).")
    return X.reshape(X.shape[0], -1) if X.ndim != 2 else X


def _items(layers) -> list[tuple[str, np.ndarray]]:
    if isinstance(layers, dict):
        return [(str(k), _as_float(v)) for k, v in layers.items()]
    return [(f"layer {i}", _as_float(v)) for i, v in enumerate(layers)]


@dataclass(frozen=True)
class Direction:
    """How to word a comparison of two values of a measure: a similarity index (higher = more similar)
    and a distance (lower = more similar) say "more similar" in opposite directions."""

    most: str      # the best cell: "most similar" / "closest"
    best_value: str  # what the best cell's value is, before it: "" / "smallest distance, "
    more: str      # a value that beats another: "more similar" / "closer"
    less: str      # a value that does not: "less similar" / "further away"
    as_much: str   # a value that is no worse: "as similar or more" / "as close or closer"
    reads: str     # how to read the scale: "higher = more similar" / "lower = closer"


DIRECTIONS = {
    True: Direction("most similar", "", "more similar", "less similar", "as similar or more",
                    "higher = more similar"),
    False: Direction("closest", "smallest distance, ", "closer", "further away", "as close or closer",
                     "lower = closer"),
}


def direction(measure: str) -> Direction:
    """The words for ``measure``'s direction, read from the registry (``MeasureInfo.higher_is_similar``)."""
    return DIRECTIONS[MEASURES[measure].higher_is_similar]


def more_similar(values, other, measure: str, *, tol: float = 1e-9) -> np.ndarray:
    """Where ``values`` are more similar than ``other`` under ``measure``: larger for a similarity,
    smaller for a distance; ties within ``tol`` (e.g. CCA at 1 on both) are not."""
    values, other = np.asarray(values, dtype=np.float64), np.asarray(other, dtype=np.float64)
    return values > other + tol if MEASURES[measure].higher_is_similar else values < other - tol


def most_similar_cell(values, measure: str) -> tuple[int, int]:
    """(row, column) of the most similar pair: the largest value of a similarity, the smallest of a distance."""
    values = np.asarray(values, dtype=np.float64)
    flat = int(np.argmax(values) if MEASURES[measure].higher_is_similar else np.argmin(values))
    i, j = np.unravel_index(flat, values.shape)
    return int(i), int(j)


def identity_value(measure: str) -> float:
    """What ``measure`` gives for a representation compared with itself: 1 for the similarity
    indices (CKA, CCA, RSA, R^2), 0 for the angles and distances (Procrustes, shape metric, GULP), the
    finite end of the range even where the other end is infinite."""
    info = MEASURES[measure]
    return info.value_range[1] if info.higher_is_similar else info.value_range[0]


def _deviation(values: np.ndarray, measure: str) -> np.ndarray:
    """Distance from the identity value on a scale where round-off is ~1e-15. Angles and distances are
    compared through half their square: each is a square root (arccos near 1 is one too) of a quantity
    known to round-off, so 1e-16 under the root reads 1e-8 above it. For an angle theta^2 / 2 is
    1 - cos(theta) to leading order; unlike the cosine it also grows without bound, as a distance with
    no upper bound (in the layers' own units) may."""
    values = np.asarray(values, dtype=np.float64)
    if not MEASURES[measure].higher_is_similar:
        return (values - identity_value(measure)) ** 2 / 2
    return np.abs(values - identity_value(measure))


# --------------------------------------------------------------------------- layer health
def layer_health(layers, *, side: str = "A", dead_fraction: float = 0.5) -> Check:
    """Constant or empty layers (CKA is 0/0 there), and layers whose features are mostly constant
    (dead units). ``details``: per-layer (n, d, constant features), the lists of bad layers."""
    rows, constant, empty, mostly_dead = [], [], [], []
    for name, X in _items(layers):
        n, d = X.shape
        if n == 0 or d == 0:
            empty.append(name)
            rows.append({"layer": name, "n": n, "d": d, "constant_features": d})
            continue
        x = X.astype(np.float64, copy=False)
        spread = x.max(axis=0) - x.min(axis=0)
        scale = max(float(np.abs(x).max()), 1.0)
        dead = spread <= 1e-12 * scale
        rows.append({"layer": name, "n": n, "d": d, "constant_features": int(dead.sum())})
        if dead.all():
            constant.append(name)
        elif dead.mean() >= dead_fraction:
            mostly_dead.append(f"{name} ({int(dead.sum())} of {d})")
    details = {"layers": rows, "constant": constant, "empty": empty, "mostly_dead": mostly_dead}
    if constant or empty:
        bad = ", ".join(constant + empty)
        return Check(f"Constant or empty layers ({side})", FAIL,
                     f"{bad}: no variance across examples, so every measure is undefined (0/0) there; "
                     "these layers are left out. Check that the hook captured real activations.", details)
    if mostly_dead:
        return Check(f"Constant or empty layers ({side})", INFO,
                     f"no constant layer; mostly constant (dead) features in {', '.join(mostly_dead)}. CKA "
                     "ignores them, but they shrink the effective width.", details)
    return Check(f"Constant or empty layers ({side})", PASS, "every layer varies across the examples.", details)


# --------------------------------------------------------------------------- self-comparison
def self_diagonal(layers, *, measure: str = "linear_cka", tol: float = 1e-6, **options) -> Check:
    """Each layer compared with an independent copy of itself gives the measure's identity value
    (1 for CKA). A copy, not ``layers_b=None``, so no shortcut hides a bug in the pairing code."""
    names, diagonal = [], []
    for name, X in _items(layers):
        copy = np.array(X, copy=True)
        diagonal.append(float(similarity_matrix([X], [copy], measure=measure, **options)[0, 0]))
        names.append(name)
    diagonal = np.array(diagonal)
    worst = float(_deviation(diagonal, measure).max())
    target = identity_value(measure)
    details = {"layers": names, "values": diagonal.tolist(), "identity": target, "max_deviation": worst}
    if worst <= tol:
        return Check("Self-comparison diagonal", PASS,
                     f"every layer of A against a copy of itself gives {target:g}, {MEASURES[measure].label}'s value "
                     f"for identical representations (largest deviation {worst:.1e}).",
                     details)
    bad = [n for n, v in zip(names, _deviation(diagonal, measure)) if v > tol]
    return Check("Self-comparison diagonal", FAIL,
                 f"A against a copy of itself deviates from {target:g} by up to {worst:.2e} ({', '.join(bad[:5])}); "
                 "the estimator or the pairing of rows is broken.", details)


def symmetry(layers_a, layers_b, values_ab, *, measure: str = "linear_cka", cells=None, tol: float = 1e-8,
             **options) -> Check:
    """M(A_i, B_j) = M(B_j, A_i) for a symmetric measure, recomputed with the sides swapped.

    ``cells``: the (i, j) cells to check (None: all of them, one matrix call).
    """
    info = MEASURES[measure]
    values_ab = np.asarray(values_ab, dtype=np.float64)
    a, b = _items(layers_a), _items(layers_b)
    if cells is None:
        swapped = similarity_matrix(dict(b), dict(a), measure=measure, **options).T
        cells = [(i, j) for i in range(len(a)) for j in range(len(b))]
        diffs = np.abs(swapped - values_ab).ravel()
    else:
        diffs = np.array([abs(similarity_matrix([b[j][1]], [a[i][1]], measure=measure, **options)[0, 0]
                              - values_ab[i, j]) for i, j in cells])
    worst = float(diffs.max()) if diffs.size else 0.0
    details = {"cells_checked": len(cells), "max_difference": worst, "symmetric_measure": info.symmetric}
    if not info.symmetric:
        return Check("Symmetry", INFO,
                     f"{info.label} is not symmetric by design (largest |M(A,B) − M(B,A)ᵀ| = {worst:.3g} over "
                     f"{len(cells)} cell(s)); read it as 'how well A accounts for B'.", details)
    if worst <= tol * max(1.0, float(np.abs(values_ab).max())):
        return Check("Symmetry", PASS,
                     f"M(A, B) = M(B, A)ᵀ on {len(cells)} cell(s) (largest difference {worst:.1e}).", details)
    return Check("Symmetry", FAIL,
                 f"M(A, B) and M(B, A)ᵀ differ by up to {worst:.2e} on a symmetric measure: a bug in the "
                 "estimator or in how the sides are paired.", details)


# --------------------------------------------------------------------------- sample pairing
def pairing(layers_a, layers_b, *, n_permutations: int = 30, seed: int = 0, alpha: float = 0.01,
            same_source: bool = False) -> Check:
    """Do both sides hold the same examples in the same order?

    Row counts must agree. Then a heuristic for rows shuffled against each other: take the best
    matching layer pair by *debiased* linear CKA (whose shuffled-rows null mean is exactly 0 whatever
    d/n is, so width cannot fake a match) and compare it with ``n_permutations`` shuffles of that
    pair's rows. Two networks that saw the same inputs always have some pair of layers (at least the
    early ones, driven by the inputs) far above that null; if even the best pair is within
    z* null standard deviations, the rows are probably not paired (or the sides are unrelated).
    z* = max(3, the one-sided normal quantile of alpha / number of cells), a Bonferroni correction
    for having picked the best of L_a x L_b cells.
    """
    a, b = _items(layers_a), _items(layers_b)
    n_a, n_b = a[0][1].shape[0], b[0][1].shape[0]
    if n_a != n_b:
        return Check("Sample pairing", FAIL,
                     f"A has {n_a} examples but B has {n_b}: both need one row per example, same examples, "
                     "same order.", {"n_a": n_a, "n_b": n_b})
    if same_source:
        return Check("Sample pairing", PASS, "A and B are the same data: rows are paired by construction.",
                     {"n": n_a})
    if n_a < 8:
        return Check("Sample pairing", INFO, f"only {n_a} examples: too few to test whether rows are paired.",
                     {"n": n_a})
    values = cka_matrix(dict(a), dict(b), debiased=True)
    i, j = np.unravel_index(int(np.argmax(values)), values.shape)
    x, y = a[i][1], b[j][1]
    rng = np.random.default_rng(seed)
    shuffled = [y[rng.permutation(n_a)] for _ in range(n_permutations)]
    null = cka_matrix([x], shuffled, debiased=True)[0]
    mean, sd = float(null.mean()), float(null.std(ddof=1))
    best = float(values[i, j])
    z = (best - mean) / sd if sd > 0 else math.inf
    threshold = max(3.0, float(norm.isf(alpha / values.size)))
    details = {"best_pair": [a[i][0], b[j][0]], "best_debiased_cka": best, "null_mean": mean, "null_sd": sd,
               "z": z, "z_threshold": threshold, "n_permutations": n_permutations}
    where = f"{a[i][0]} ↔ {b[j][0]}"
    if z < threshold:
        return Check("Sample pairing", WARN,
                     f"even the best-matching pair ({where}, debiased CKA {best:.3f}) is only {z:.1f} sd above "
                     f"its shuffled-rows null ({mean:.3f} ± {sd:.3f}; needs {threshold:.1f}). Rows look "
                     "shuffled against each other, or the two sides are unrelated: check that both files "
                     "list the same examples in the same order (no shuffled data loader).", details)
    return Check("Sample pairing", PASS,
                 f"same {n_a} examples on both sides; the best pair ({where}, debiased CKA {best:.3f}) is "
                 f"{z:.0f} sd above its shuffled-rows null, as paired rows should be.", details)


# --------------------------------------------------------------------------- d >> n
def _trace_and_frobenius(X: np.ndarray) -> tuple[float, float]:
    """tr(K) and ||K||_F of the centred Gram K = X_c X_c^T, in the cheaper of the two spaces."""
    x = X.astype(np.float64, copy=False)
    xc = x - x.mean(axis=0, keepdims=True)
    trace = float(np.sum(xc * xc))
    small = xc.T @ xc if xc.shape[1] <= xc.shape[0] else xc @ xc.T  # same non-zero spectrum
    return trace, float(np.linalg.norm(small))


def biased_null_mean(X, Y) -> float:
    """Exact mean of biased linear CKA(X, Y P) over all row permutations P:
    tr(K) tr(L) / ((n - 1) ||K||_F ||L||_F) = sqrt(PR_X PR_Y) / (n - 1)."""
    x, y = _as_float(X), _as_float(Y)
    n = x.shape[0]
    if y.shape[0] != n:
        raise RepresentationError(f"X has {n} examples but Y has {y.shape[0]}.")
    tx, fx = _trace_and_frobenius(x)
    ty, fy = _trace_and_frobenius(y)
    if fx == 0.0 or fy == 0.0:
        raise RepresentationError("a constant layer has no CKA null (0/0).")
    return tx * ty / ((n - 1) * fx * fy)


def isotropic_null(d_a: int, d_b: int, n: int) -> float:
    """Expected biased CKA of independent isotropic Gaussian features of widths d_a, d_b on n
    examples: sqrt(d_a d_b / ((d_a + n - 1)(d_b + n - 1))), i.e. d / (d + n - 1) for equal widths."""
    return math.sqrt(d_a * d_b / ((d_a + n - 1) * (d_b + n - 1)))


def high_dimension(layers_a, layers_b, biased, debiased, *, threshold: float = 0.2, show: int = 5) -> Check:
    """Where biased CKA is inflated by width: the exact shuffled-rows null mean of every cell,
    with the debiased value beside it. Warns when some cell's null mean exceeds ``threshold``."""
    a, b = _items(layers_a), _items(layers_b)
    n = a[0][1].shape[0]
    stats_a = [_trace_and_frobenius(x) for _, x in a]
    stats_b = [_trace_and_frobenius(y) for _, y in b]
    null = np.array([[ta * tb / ((n - 1) * fa * fb) for tb, fb in stats_b] for ta, fa in stats_a])
    biased, debiased = np.asarray(biased), np.asarray(debiased)
    order = np.argsort(null, axis=None)[::-1][:show]
    rows = []
    for flat in order:
        i, j = np.unravel_index(flat, null.shape)
        d_a, d_b = a[i][1].shape[1], b[j][1].shape[1]
        rows.append({"layer_a": a[i][0], "layer_b": b[j][0], "d_a": d_a, "d_b": d_b, "n": n,
                     "biased_cka": float(biased[i, j]), "null_mean_biased": float(null[i, j]),
                     "isotropic_null": isotropic_null(d_a, d_b, n), "debiased_cka": float(debiased[i, j])})
    widest = max(x.shape[1] for _, x in a + b)
    details = {"null_mean": null.tolist(), "rows": rows, "n": n, "max_width": widest}
    top = rows[0]
    if top["null_mean_biased"] > threshold:
        return Check("Width vs examples (d ≫ n)", WARN,
                     f"with {n} examples and up to {widest} features, biased CKA of *shuffled* (unrelated) rows "
                     f"would already read {top['null_mean_biased']:.2f} for {top['layer_a']} ↔ {top['layer_b']} "
                     f"(isotropic estimate d/(d+n−1) = {top['isotropic_null']:.2f}). Read the debiased value "
                     f"({top['debiased_cka']:.3f} there), whose shuffled null is 0, or use more examples.", details)
    return Check("Width vs examples (d ≫ n)", PASS,
                 f"the largest shuffled-rows mean of biased CKA is {top['null_mean_biased']:.3f} "
                 f"({top['layer_a']} ↔ {top['layer_b']}): width does not inflate these values much.", details)


# --------------------------------------------------------------------------- random-init baseline
def random_init_baseline(values, baseline, names_a, names_b, *, measure: str = "linear_cka",
                         replaced: str = "A", what: str = "its random initialisation") -> Check:
    """Compare every cell with the same comparison after replacing one side by a random-init copy
    of its network. A cell that does not beat that baseline measures the input's structure (which
    even an untrained network passes on), not what training made similar."""
    values, baseline = np.asarray(values, dtype=np.float64), np.asarray(baseline, dtype=np.float64)
    if values.shape != baseline.shape:
        raise RepresentationError(f"baseline has shape {baseline.shape} but the heatmap has {values.shape}.")
    beats = more_similar(values, baseline, measure)
    margin = values - baseline
    n_cells = values.size
    details = {"baseline": baseline.tolist(), "beats": beats.tolist(), "margin": margin.tolist(),
               "replaced": replaced, "what": what}
    k = int(beats.sum())
    i, j = most_similar_cell(values, measure)
    words = direction(measure)
    text = (f"{k} of {n_cells} cells are {words.more} than the same comparison with {replaced} replaced by {what} "
            f"({words.most} cell {names_a[i]} ↔ {names_b[j]}: {values[i, j]:.3f} against {baseline[i, j]:.3f}).")
    if k == n_cells:
        return Check("Random-init baseline", PASS, text + " Every value reflects more than the input's structure.",
                     details)
    if not beats[i, j]:
        return Check("Random-init baseline", WARN,
                     text + f" Even the {words.most} cell is {words.as_much} with {replaced} replaced: this "
                     "similarity comes from the inputs, not from training.", details)
    return Check("Random-init baseline", INFO,
                 text + f" The cells that are not {words.more} say little about what training "
                 "made similar.", details)


# --------------------------------------------------------------------------- marking cells
def not_above_null(low, high, p_values, null_mean, null_sd, *, alpha: float = 0.05, width: float = 2.0) -> np.ndarray:
    """Cells whose value is not clearly beyond chance: permutation p > alpha, or the bootstrap
    interval [low, high] overlaps the shuffled-rows null band null_mean ± width * null_sd."""
    low, high = np.asarray(low), np.asarray(high)
    band_low = np.asarray(null_mean) - width * np.asarray(null_sd)
    band_high = np.asarray(null_mean) + width * np.asarray(null_sd)
    overlaps = (low <= band_high) & (high >= band_low)
    return (np.asarray(p_values) > alpha) | overlaps
