"""cka_core.stats.resampling: bootstrap intervals hold the full-data value and shrink with n; permutation
p-values are uniform under independence and minimal (1 / (N + 1)) for X against an isometry of X."""
import numpy as np
import pytest
from scipy.stats import kstest

from cka_core import RepresentationError, cka_matrix
from cka_core.stats.resampling import bootstrap, bootstrap_and_permutation, permutation_test

from . import reference as ref
from .cka_testdata import correlated_pair, layers


def _pair_layers(rng, n):
    L = layers(rng, n, [5, 8, 6, 4])
    return {"a1": L[0], "a2": L[1]}, {"b1": L[2], "b2": L[3]}


def test_bootstrap_intervals_contain_the_full_data_value():
    a, b = _pair_layers(np.random.default_rng(0), 80)
    result = bootstrap(a, b, n_resamples=60, seed=1)
    np.testing.assert_allclose(result.values, cka_matrix(a, b), atol=1e-12)
    assert (result.low <= result.values).all() and (result.values <= result.high).all()
    assert (result.low < result.high).all() and (result.low >= 0).all() and (result.high <= 1).all()
    assert result.n_resamples == 60 and result.confidence == 0.95


def test_bootstrap_intervals_shrink_with_n():
    widths = {}
    for n in (60, 480):
        a, b = _pair_layers(np.random.default_rng(2), n)
        result = bootstrap(a, b, n_resamples=80, seed=3)
        widths[n] = float(np.mean(result.high - result.low))
    assert widths[480] < 0.7 * widths[60], widths  # ~ 1/sqrt(n): about 0.35


def test_bootstrap_is_seeded_reports_progress_and_takes_options():
    a, b = _pair_layers(np.random.default_rng(4), 40)
    calls = []
    first = bootstrap(a, b, n_resamples=12, seed=5, debiased=True, progress=lambda done, total: calls.append((done, total)))
    again = bootstrap(a, b, n_resamples=12, seed=5, debiased=True)
    np.testing.assert_array_equal(first.low, again.low)
    assert calls == [(k, 12) for k in range(1, 13)]
    np.testing.assert_allclose(first.values, cka_matrix(a, b, debiased=True), atol=1e-12)
    wider = bootstrap(a, b, n_resamples=12, seed=5, debiased=True, confidence=0.99)
    assert (wider.high - wider.low >= first.high - first.low - 1e-12).all()
    self_result = bootstrap(a, None, n_resamples=5, seed=0, measure="rbf_cka", sigma=0.8)
    assert self_result.values.shape == (2, 2) and np.allclose(np.diag(self_result.values), 1.0)


def test_permutation_p_values_are_uniform_for_independent_data():
    rng = np.random.default_rng(6)
    p_values = []
    for _ in range(40):
        X, Y = rng.standard_normal((24, 3)), rng.standard_normal((24, 4))
        p_values.append(permutation_test([X], [Y], n_permutations=49, seed=int(rng.integers(1 << 30))).p_values[0, 0])
    p_values = np.array(p_values)
    assert kstest(p_values, "uniform").pvalue > 0.01, np.sort(p_values)
    assert 0.0 <= np.mean(p_values < 0.1) <= 0.3


@pytest.mark.parametrize("measure", ["linear_cka", "linear_cka_debiased", "procrustes"])
def test_p_value_is_minimal_for_an_isometry(measure):
    rng = np.random.default_rng(7)
    X = rng.standard_normal((50, 6)) * np.arange(1, 7)
    XQ = X @ ref.random_orthogonal(6, rng) + 5.0
    result = permutation_test([X], [XQ], measure=measure, n_permutations=99, seed=8)
    assert result.p_values[0, 0] == pytest.approx(1 / 100)
    better = result.null_mean[0, 0] < result.values[0, 0] if measure != "procrustes" else \
        result.null_mean[0, 0] > result.values[0, 0]
    assert better and result.null_std[0, 0] > 0


def test_permutation_null_mean_matches_the_closed_form():
    from cka_core.stats.sanity import biased_null_mean

    X, Y = correlated_pair(np.random.default_rng(9), 30, 40, 35)
    result = permutation_test([X], [Y], n_permutations=400, seed=10)
    assert result.null_mean[0, 0] == pytest.approx(biased_null_mean(X, Y), abs=4 * result.null_std[0, 0] / 20)


def test_bad_arguments_are_clear_errors():
    a, b = _pair_layers(np.random.default_rng(11), 30)
    with pytest.raises(RepresentationError, match="n_resamples"):
        bootstrap(a, b, n_resamples=0)
    with pytest.raises(RepresentationError, match="confidence"):
        bootstrap(a, b, n_resamples=5, confidence=1.5)
    with pytest.raises(RepresentationError, match="n_permutations"):
        permutation_test(a, b, n_permutations=2.5)
    with pytest.raises(RepresentationError, match="examples"):
        permutation_test(a, {k: v[:20] for k, v in b.items()}, n_permutations=5)


def _from_scratch(a, b, measure: str, n_draws: int, seed: int, **options):
    """Bootstrap and permutation matrices with every cell recomputed from the resampled arrays
    (``similarity`` per cell, nothing shared): what the fast path must reproduce."""
    from cka_core import similarity

    a, b = list(a.values()), list(b.values())
    n = a[0].shape[0]

    def matrix(xs, ys):
        return np.array([[similarity(x, y, measure, **options) for y in ys] for x in xs])

    rng = np.random.default_rng(seed)
    boots = [matrix([x[i] for x in a], [y[i] for y in b]) for i in (rng.integers(0, n, size=n) for _ in range(n_draws))]
    rng = np.random.default_rng(seed)
    nulls = [matrix(a, [y[p] for y in b]) for p in (rng.permutation(n) for _ in range(n_draws))]
    return np.array(boots), np.array(nulls)


@pytest.mark.parametrize(("measure", "options"), [
    ("rbf_cka", {}), ("rbf_cka", {"sigma": 0.5, "debiased": True}), ("mean_cca", {}), ("svcca", {}), ("pwcca", {}),
    ("procrustes", {}), ("rsa", {}), ("linear_regression", {}), ("aligned_cosine", {}),
])
def test_resampling_reuses_per_layer_work_and_gives_the_from_scratch_values(measure, options):
    """Bases, distances, ranks and kernels are prepared once per layer per resample (and reordered,
    not recomputed, per permutation): the intervals and p-values are those of recomputing every
    cell, for the same seeds, to round-off. Integer data (many tied distances) included."""
    from cka_core.stats.resampling import _matrices, _null_matrices

    rng = np.random.default_rng(7)
    a, b = _pair_layers(rng, 40)
    b["ints"] = rng.integers(0, 3, size=(40, 4)).astype(float)
    if measure == "aligned_cosine":  # wider than it has examples: its rows in their own basis, kept per layer
        a["wide"] = rng.standard_normal((40, 55))
    boots, nulls = _from_scratch(a, b, measure, 6, seed=11, **options)
    _, resampled = _matrices(list(a.values()), list(b.values()), measure, options)
    _, shuffled = _null_matrices(list(a.values()), list(b.values()), measure, options)
    rng = np.random.default_rng(11)
    fast_boots = np.array([resampled(rng.integers(0, 40, size=40)) for _ in range(6)])
    rng = np.random.default_rng(11)
    fast_nulls = np.array([shuffled(rng.permutation(40)) for _ in range(6)])
    np.testing.assert_allclose(fast_boots, boots, atol=1e-9)
    np.testing.assert_allclose(fast_nulls, nulls, atol=1e-9)
    result = bootstrap(a, b, measure=measure, n_resamples=6, seed=11, **options)
    q_low, median = np.quantile(boots, [0.025, 0.5], axis=0)
    low = result.values + q_low - median
    from cka_core import MEASURES
    np.testing.assert_allclose(result.low, np.clip(low, *MEASURES[measure].value_range), atol=1e-9)


def test_a_self_comparison_resamples_one_set_of_views():
    from cka_core import similarity

    rng = np.random.default_rng(8)
    a, _ = _pair_layers(rng, 30)
    result = permutation_test(a, None, measure="rsa", n_permutations=5, seed=2)
    rng = np.random.default_rng(2)
    xs = list(a.values())
    nulls = [[[similarity(x, y[p], "rsa") for y in xs] for x in xs] for p in (rng.permutation(30) for _ in range(5))]
    np.testing.assert_allclose(result.null_mean, np.mean(nulls, axis=0), atol=1e-9)


def test_bootstrap_and_permutation_are_the_two_runs_with_one_count_over_both():
    rng = np.random.default_rng(7)
    a = {"x": rng.standard_normal((40, 5)), "y": rng.standard_normal((40, 3))}
    b = {"z": rng.standard_normal((40, 4))}
    counts = []
    boot, perm = bootstrap_and_permutation(a, b, n_resamples=6, n_permutations=4, seed=3,
                                                     progress=lambda done, total: counts.append((done, total)))
    alone = bootstrap(a, b, n_resamples=6, seed=3), permutation_test(a, b, n_permutations=4, seed=3)
    np.testing.assert_array_equal(boot.low, alone[0].low)
    np.testing.assert_array_equal(perm.p_values, alone[1].p_values)
    assert counts == [(k, 10) for k in range(1, 11)]
