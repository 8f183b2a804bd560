"""similarity() and MEASURES: values against independent references, known exact values, and
every declared invariance checked on random transformations (hypothesis)."""
import math

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import cka_core

from . import reference as ref
from .cka_testdata import PROPERTY_FEW, correlated_pair, invariance_map, seeds

NAMES = ["linear_cka", "linear_cka_debiased", "rbf_cka", "mean_cca", "svcca", "pwcca", "procrustes",
         "shape_metric", "rsa", "linear_regression"]
#: ReSi's neighbourhood, RSM, statistic and output measures.
RESI_OTHER = ["jaccard_knn", "rank_similarity", "second_order_cosine", "rsm_norm_difference", "rsa_correlation",
              "distance_correlation", "magnitude_difference", "concentricity_difference", "uniformity_difference",
              "jsd", "disagreement", "accuracy_difference"]
NAMES += RESI_OTHER
#: ReSi's alignment and spectral measures (cka_core/measures/alignment.py, spectral.py).
RESI_ALIGNMENT = ["orthogonal_procrustes", "procrustes_size_and_shape", "permutation_procrustes", "aligned_cosine",
                  "hard_correlation_match", "soft_correlation_match", "eigenspace_overlap", "gulp"]
ALIGNMENT_DISTANCES = ["orthogonal_procrustes", "procrustes_size_and_shape", "permutation_procrustes", "gulp"]
NAMES += RESI_ALIGNMENT
RESI_DISTANCES = ("rsm_norm_difference", "magnitude_difference", "concentricity_difference", "uniformity_difference",
                  "jsd", "disagreement", "accuracy_difference")
INVARIANCES = {"orthogonal", "isotropic_scaling", "invertible_linear", "translation", "permutation"}
SYMMETRIC = ["linear_cka", "linear_cka_debiased", "rbf_cka", "mean_cca", "svcca", "procrustes", "shape_metric",
             "rsa"] + RESI_OTHER + RESI_ALIGNMENT
#: Measures that compare a summary of each side (where it sits, how it spreads, how accurate it is), not
#: how the examples correspond: unrelated data can match such a summary as well as related data.
SUMMARY_MEASURES = {"magnitude_difference", "concentricity_difference", "uniformity_difference", "accuracy_difference"}


def _min_width(name):
    # Rows one feature wide all point one of two ways (every cosine is +-1); rows two features wide
    # correlate +-1 with each other (often all +1: then every correlation distance is 0); class outputs
    # need two classes.
    if name == "rsa_correlation":
        return 3
    info = cka_core.MEASURES.get(name)
    wider = name in ("jaccard_knn", "rank_similarity", "second_order_cosine")
    return 2 if wider or (info is not None and info.on_outputs) else 1


def _pair(name, rng, n, dx, dy, **kwargs):
    """correlated_pair, with equal widths for a measure on class outputs (two networks' logits)."""
    return correlated_pair(rng, n, dx, dx if cka_core.MEASURES[name].on_outputs else dy, **kwargs)


def _labels(X):
    """True classes for the measures that need them: every class of the outputs, in turn."""
    return np.arange(X.shape[0]) % X.shape[1]


def _value(X, Y, name):
    """cka_core.similarity, with labels for the measures that need them."""
    labels = {"labels": _labels(X)} if cka_core.MEASURES[name].needs_labels else {}
    return cka_core.similarity(X, Y, name, **labels)


def test_registry_contents_and_metadata():
    assert set(NAMES) <= set(cka_core.MEASURES)
    for key, info in cka_core.MEASURES.items():
        assert info.name == key
        assert isinstance(info.label, str) and info.label
        assert isinstance(info.description, str) and info.description
        assert isinstance(info.higher_is_similar, bool)
        lo, hi = info.value_range
        assert lo < hi
        assert isinstance(info.invariances, frozenset) and info.invariances <= INVARIANCES
    M = cka_core.MEASURES
    assert M["procrustes"].higher_is_similar is False
    assert M["procrustes"].value_range == pytest.approx((0.0, math.pi / 2))
    assert all(M[k].higher_is_similar for k in NAMES if k not in ("procrustes", "shape_metric", *RESI_DISTANCES,
                                                                 *ALIGNMENT_DISTANCES))
    assert not any(M[k].higher_is_similar for k in (*RESI_DISTANCES, *ALIGNMENT_DISTANCES))
    assert not M["shape_metric"].higher_is_similar and M["shape_metric"].value_range == M["procrustes"].value_range
    # textbook declarations (Kornblith et al. 2019 Table 1; Williams et al. 2021)
    for k in ("linear_cka", "linear_cka_debiased", "rbf_cka", "procrustes", "shape_metric"):
        assert {"orthogonal", "isotropic_scaling", "translation", "permutation"} <= M[k].invariances
        assert "invertible_linear" not in M[k].invariances
    assert INVARIANCES <= M["mean_cca"].invariances
    assert M["linear_cka"].value_range == (0.0, 1.0)


def test_cka_measures_delegate_to_the_cka_functions():
    X, Y = correlated_pair(np.random.default_rng(0), 40, 6, 4)
    assert cka_core.similarity(X, Y) == pytest.approx(cka_core.linear_cka(X, Y), abs=1e-12)
    assert cka_core.similarity(X, Y, "linear_cka") == pytest.approx(ref.linear_cka(X, Y), abs=1e-8)
    assert cka_core.similarity(X, Y, "linear_cka_debiased") == pytest.approx(
        ref.linear_cka(X, Y, True), abs=1e-8)
    assert cka_core.similarity(X, Y, "rbf_cka") == pytest.approx(ref.rbf_cka(X, Y, 1.0), abs=1e-8)
    assert cka_core.similarity(X, Y, "rbf_cka", sigma=0.4) == pytest.approx(ref.rbf_cka(X, Y, 0.4), abs=1e-8)


REFERENCES = {
    "procrustes": ref.procrustes_angle,
    "shape_metric": ref.shape_distance,
    "rsa": ref.rsa,
    "linear_regression": ref.linear_regression_r2,
    "mean_cca": ref.mean_cca,
    "jaccard_knn": ref.jaccard_knn,
    "rank_similarity": ref.rank_similarity,
    "second_order_cosine": ref.second_order_cosine,
    "rsm_norm_difference": ref.rsm_norm_difference,
    "rsa_correlation": ref.rsa_correlation,
    "distance_correlation": ref.distance_correlation,
    "magnitude_difference": ref.magnitude_difference,
    "concentricity_difference": ref.concentricity_difference,
    "uniformity_difference": ref.uniformity_difference,
    "jsd": ref.jsd,
    "disagreement": ref.disagreement,
    "accuracy_difference": lambda X, Y: ref.accuracy_difference(X, Y, _labels(X)),
    "orthogonal_procrustes": ref.orthogonal_procrustes,
    "procrustes_size_and_shape": ref.procrustes_size_and_shape,
    "permutation_procrustes": ref.permutation_procrustes,
    "aligned_cosine": ref.aligned_cosine,
    "hard_correlation_match": ref.hard_correlation_match,
    "soft_correlation_match": ref.soft_correlation_match,
    "eigenspace_overlap": ref.eigenspace_overlap,
    "gulp": ref.gulp,
}


REF_SHAPES = [(60, 5, 3), (40, 3, 7), (30, 1, 1), (35, 2, 1), (20, 35, 12)]


@pytest.mark.parametrize("name,n,dx,dy", [(name, *shape) for name in REFERENCES for shape in REF_SHAPES
                                          if min(shape[1:]) >= _min_width(name)])
def test_matches_independent_reference(name, n, dx, dy):
    X, Y = _pair(name, np.random.default_rng(n + dx + dy), n, dx, dy)
    expected = REFERENCES[name](X, Y)
    assert _value(X, Y, name) == pytest.approx(expected, abs=1e-8)


def test_rsa_uses_euclidean_rdms():
    """RDM = Euclidean distance between examples (rows), as rsatoolbox's default. Correlation-
    distance RDMs give a visibly different answer here, so the convention is pinned down."""
    rng = np.random.default_rng(3)
    X = rng.standard_normal((30, 6)) * rng.uniform(0.2, 5, (30, 1)) + rng.uniform(-3, 3, (30, 1))
    Y = X @ rng.standard_normal((6, 4)) + rng.standard_normal((30, 4))
    iu = np.triu_indices(30, 1)
    from scipy.stats import spearmanr
    correlation_rsa = spearmanr((1 - np.corrcoef(X))[iu], (1 - np.corrcoef(Y))[iu])[0]
    expected = ref.rsa(X, Y)
    assert abs(correlation_rsa - expected) > 0.05
    assert cka_core.similarity(X, Y, "rsa") == pytest.approx(expected, abs=1e-8)


@pytest.mark.parametrize("rho", [0.3, 0.8])
def test_known_values_on_a_whitened_pair(rho):
    """X, Y with X^T X = Y^T Y = I, X^T Y = rho I: all canonical correlations are rho."""
    X, Y = ref.whitened_pair(80, 5, rho, np.random.default_rng(4))
    expected = {"mean_cca": rho, "svcca": rho, "pwcca": rho, "procrustes": math.acos(rho),
                "linear_regression": rho**2, "linear_cka": rho**2}
    for name, value in expected.items():
        assert cka_core.similarity(X, Y, name) == pytest.approx(value, abs=1e-8), name


def test_svcca_keeps_99_percent_of_variance():
    """Three strong directions plus five of negligible variance: SVCCA = mean CCA of the top-3
    projections, which differs from mean CCA of the full data."""
    rng = np.random.default_rng(5)
    n = 100
    strong = rng.standard_normal((n, 3)) * [3.0, 2.0, 1.5]
    X = np.hstack([strong, 1e-3 * rng.standard_normal((n, 5))]) @ ref.random_orthogonal(8, rng)
    Ystrong = strong @ rng.standard_normal((3, 3)) + 0.5 * rng.standard_normal((n, 3))
    Y = np.hstack([Ystrong, 1e-3 * rng.standard_normal((n, 4))]) @ ref.random_orthogonal(7, rng)

    def top(Z, k):
        Zc = Z - Z.mean(0)
        U, s, _ = np.linalg.svd(Zc, full_matrices=False)
        return U[:, :k] * s[:k]

    expected = ref.mean_cca(top(X, 3), top(Y, 3))
    assert abs(expected - ref.mean_cca(X, Y)) > 0.05
    assert cka_core.similarity(X, Y, "svcca") == pytest.approx(expected, abs=1e-6)


# ----------------------------------------------------------------- invariances (hypothesis)

# One case per (measure, invariance it declares): the list is read from the registry, so a
# declaration added later is tested automatically.
DECLARED = [(name, inv) for name in NAMES if name in cka_core.MEASURES
            for inv in sorted(cka_core.MEASURES[name].invariances)]



@pytest.mark.parametrize("name,invariance", DECLARED)
@PROPERTY_FEW
@given(seed=seeds, side=st.sampled_from(["X", "Y", "both"]))
def test_property_declared_invariances_hold(name, invariance, seed, side):
    """Every invariance a measure declares holds, whichever argument the map is applied to
    (a map applied to either argument leaves the value unchanged)."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(25, 50))
    w = max(2, _min_width(name))
    X, Y = _pair(name, rng, n, int(rng.integers(w, 7)), int(rng.integers(w, 7)))
    base = _value(X, Y, name)
    Xt = invariance_map(invariance, X, rng) if side in ("X", "both") else X
    Yt = invariance_map(invariance, Y, rng) if side in ("Y", "both") else Y
    assert _value(Xt, Yt, name) == pytest.approx(base, abs=1e-6)


@pytest.mark.parametrize("name,invariance", DECLARED)
@PROPERTY_FEW
@given(seed=seeds, levels=st.sampled_from([2, 5]))
def test_property_declared_invariances_hold_on_integer_data(name, invariance, seed, levels):
    """0/1 and small-integer data (uploads of spikes, one-hot codes, counts) have many pairs of
    examples at exactly equal distances; a rotation makes them differ by round-off, which must not
    reorder them (RSA ranked such ties by round-off and moved by up to 0.1)."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(25, 50))
    X = rng.integers(0, levels, (n, int(rng.integers(max(2, _min_width(name)), 7)))).astype(np.float64)
    extra = X.shape[1] - 2 if cka_core.MEASURES[name].on_outputs else 3  # class outputs: equal widths
    Y = np.concatenate([X[:, :2], rng.integers(0, levels, (n, extra))], axis=1)
    try:
        base = _value(X, Y, name)
    except cka_core.RepresentationError:
        assume(False)  # e.g. a constant column, CCA on collinear columns, an all-zero row for a cosine
    Xt = invariance_map(invariance, X, rng)
    assert _value(Xt, Y, name) == pytest.approx(base, abs=1e-6)


@pytest.mark.parametrize("name", ["linear_cka", "linear_cka_debiased", "rbf_cka", "procrustes"])
def test_invertible_linear_is_visibly_not_an_invariance(name):
    rng = np.random.default_rng(6)
    X, Y = correlated_pair(rng, 200, 6, 6)
    M = ref.random_orthogonal(6, rng) * np.array([10.0, 5, 1, 1, 0.3, 0.1]) @ ref.random_orthogonal(6, rng)
    assert abs(cka_core.similarity(X @ M, Y, name) - cka_core.similarity(X, Y, name)) > 0.01


@pytest.mark.parametrize("name", NAMES)
@PROPERTY_FEW
@given(seed=seeds, wide=st.booleans())
def test_property_range_and_self_similarity(name, seed, wide):
    info = cka_core.MEASURES[name]
    lo, hi = info.value_range
    rng = np.random.default_rng(seed)
    n = int(rng.integers(12, 40))
    w = _min_width(name)
    d = int(rng.integers(n + 1, 2 * n)) if wide else int(rng.integers(w, 6))
    X, Y = _pair(name, rng, n, d, int(rng.integers(w, 6)), noise=3.0)
    v = _value(X, Y, name)
    assert isinstance(v, float) and np.isfinite(v)
    assert lo - 1e-9 <= v <= hi + 1e-9
    best = hi if info.higher_is_similar else lo
    assert _value(Y, Y, name) == pytest.approx(best, abs=1e-6)


@pytest.mark.parametrize("name", SYMMETRIC)
@PROPERTY_FEW
@given(seed=seeds)
def test_property_symmetric_measures(name, seed):
    rng = np.random.default_rng(seed)
    w = _min_width(name)
    X, Y = _pair(name, rng, int(rng.integers(20, 50)), int(rng.integers(w, 6)), int(rng.integers(w, 6)))
    assert _value(X, Y, name) == pytest.approx(_value(Y, X, name), abs=1e-8)


def test_independent_data_are_less_similar_than_related_data():
    rng = np.random.default_rng(7)
    X = rng.standard_normal((150, 5))
    related = X @ rng.standard_normal((5, 4)) + 0.3 * rng.standard_normal((150, 4))
    unrelated = rng.standard_normal((150, 4))
    outputs = (X + 0.3 * rng.standard_normal((150, 5)), rng.standard_normal((150, 5)))  # equal widths
    for name in NAMES:
        if name in SUMMARY_MEASURES:
            continue
        info = cka_core.MEASURES[name]
        pair = outputs if info.on_outputs else (related, unrelated)
        if "isotropic_scaling" not in info.invariances:  # both at X's scale, so that scale does not decide
            pair = tuple(Z * np.linalg.norm(X - X.mean(0)) / np.linalg.norm(Z - Z.mean(0)) for Z in pair)
        a = _value(X, pair[0], name)
        b = _value(X, pair[1], name)
        assert (a > b) if cka_core.MEASURES[name].higher_is_similar else (a < b), name


def test_unknown_measure_is_a_clear_error():
    X, Y = correlated_pair(np.random.default_rng(8), 20, 3, 3)
    with pytest.raises(ValueError, match="linear_cka"):
        cka_core.similarity(X, Y, "cosine_of_vibes")


@pytest.mark.parametrize("scale,dtype", [(1e19, np.float32), (1e-25, np.float32), (1e-40, np.float32),
                                         (1e200, np.float64), (1e-200, np.float64)])
@pytest.mark.parametrize("name", [name for name in NAMES if "isotropic_scaling" in cka_core.MEASURES[name].invariances])
def test_extreme_scales_give_the_value_of_the_rescaled_data(name, scale, dtype):
    """Squares of these values overflow or underflow their dtype; every measure here is invariant to
    isotropic scaling, so the answer is that of the same stored values brought back to unit scale
    (before: NaN, 'constant' errors, or a Procrustes angle of pi/2)."""
    X, Y = _pair(name, np.random.default_rng(8), 50, 5, 4)
    Xs, Ys = (X * scale).astype(dtype), (Y * scale).astype(dtype)
    expected = _value(Xs.astype(np.float64) / scale, Ys.astype(np.float64) / scale, name)
    with np.errstate(all="raise"):
        got = _value(Xs, Ys, name)
    assert got == pytest.approx(expected, abs=1e-6 if dtype == np.float32 else 1e-12)


def test_an_svd_that_does_not_converge_is_retried_with_the_other_driver(monkeypatch):
    """numpy's gesdd can fail on a finite matrix; every per-layer SVD then falls back to gesvd and the
    measures give the reference values."""
    import numpy.linalg

    real = numpy.linalg.svd

    def flaky(a, *args, **kwargs):
        if np.asarray(a).shape[0] > 20:  # the layers, not the small cross products
            raise numpy.linalg.LinAlgError("SVD did not converge")
        return real(a, *args, **kwargs)

    X, Y = correlated_pair(np.random.default_rng(9), 40, 5, 4)
    expected = {"procrustes": ref.procrustes_angle(X, Y), "mean_cca": ref.mean_cca(X, Y)}
    monkeypatch.setattr(numpy.linalg, "svd", flaky)
    for name, value in expected.items():
        assert cka_core.similarity(X, Y, name) == pytest.approx(value, abs=1e-8)
