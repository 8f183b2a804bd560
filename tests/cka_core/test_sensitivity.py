"""PC deletion (cka_core.transforms.delete_components, deletion_cka) against an explicit
eigendecomposition of the covariance, its closed forms against the independent reference measures,
and the helpers of cka_core.sensitivity on cases whose answer is known by construction."""
from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cka_core import MEASURES, RepresentationError
from cka_core.pitfalls import sensitivity as S
from cka_core.pitfalls import transforms as T

from . import reference as ref
from .cka_testdata import PROPERTY, PROPERTY_FEW


# ---------------------------------------------------------------- reference (no cka_core inside)
def eigen_reference(X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean, covariance eigenvalues of the non-zero-variance directions, descending, their unit
    eigenvectors as columns), from eigh of Sigma = X_c^T X_c / n."""
    mean = X.mean(axis=0)
    xc = X - mean
    lam, vectors = np.linalg.eigh(xc.T @ xc / X.shape[0])
    order = np.argsort(lam)[::-1]
    lam, vectors = lam[order], vectors[:, order]
    nonzero = lam > 1e-12 * lam[0]
    return mean, lam[nonzero], vectors[:, nonzero]


def deleted_reference(X: np.ndarray, k: int, which: str) -> np.ndarray:
    """mean + X_c (I - V_S V_S^T), S the first k (top) or last k (bottom) non-zero-variance eigenvectors."""
    mean, lam, vectors = eigen_reference(X)
    chosen = vectors[:, :k] if which == "top" else vectors[:, lam.size - k:]
    return mean + (X - mean) @ (np.eye(X.shape[1]) - chosen @ chosen.T)


def layer(n: int, spectrum: np.ndarray, seed: int, offset: float = 2.0) -> np.ndarray:
    """(n, d) data with covariance eigenvalues exactly ``spectrum`` (descending, distinct), random axes and a mean."""
    rng = np.random.default_rng(seed)
    d = spectrum.size
    z = rng.standard_normal((n, d))
    z -= z.mean(axis=0)
    q, _ = np.linalg.qr(z)                        # orthonormal, centred columns: z^T z = I
    axes = ref.random_orthogonal(d, rng)
    return math.sqrt(n) * (q * np.sqrt(spectrum)) @ axes.T + offset * rng.standard_normal(d)


@st.composite
def spectra(draw, max_d: int = 10):
    """(n > d, distinct descending eigenvalues over up to five decades, seed)."""
    d = draw(st.integers(2, max_d))
    n = draw(st.integers(d + 2, 60))
    gaps = draw(st.lists(st.floats(0.05, 0.6), min_size=d - 1, max_size=d - 1))
    return n, 10.0 ** (1.0 - np.concatenate([[0.0], np.cumsum(gaps)])), draw(st.integers(0, 2**32 - 1))


# ---------------------------------------------------------------- delete_components
@pytest.mark.parametrize("which", ["top", "bottom"])
@pytest.mark.parametrize("k", [1, 3, 7])
def test_deletion_matches_the_eigen_reference(which, k):
    X = layer(50, 2.0 ** -np.arange(8.0), seed=k)
    got, lambdas = T.delete_components(X, k, which)
    np.testing.assert_allclose(got, deleted_reference(X, k, which), atol=1e-10)
    np.testing.assert_allclose(lambdas, eigen_reference(X)[1], rtol=1e-10)


@pytest.mark.parametrize("which", ["top", "bottom"])
def test_deleted_directions_are_gone_and_the_kept_ones_untouched(which):
    X = layer(40, np.array([9.0, 4.0, 2.0, 1.0, 0.5, 0.1]), seed=3)
    k = 2
    got, _ = T.delete_components(X, k, which)
    mean, lam, vectors = eigen_reference(X)
    deleted = np.arange(k) if which == "top" else np.arange(lam.size - k, lam.size)
    kept = np.setdiff1d(np.arange(lam.size), deleted)
    np.testing.assert_allclose(got.mean(axis=0), mean, atol=1e-12)                           # the mean stays
    np.testing.assert_allclose((got - mean) @ vectors[:, deleted], 0.0, atol=1e-10)          # deleted: nothing left
    np.testing.assert_allclose((got - mean) @ vectors[:, kept], (X - mean) @ vectors[:, kept], atol=1e-10)
    remaining = eigen_reference(got)[1]
    np.testing.assert_allclose(remaining, lam[kept], rtol=1e-9)                               # the kept eigenvalues


def test_bottom_counts_within_the_rank():
    """A rank-3 layer in 8 features: bottom-1 deletes the third component, not one of the five null directions."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((30, 3)) * [3.0, 2.0, 1.0] @ rng.standard_normal((3, 8)) + 5.0
    got, lambdas = T.delete_components(X, 1, "bottom")
    assert lambdas.size == 3
    np.testing.assert_allclose(got, deleted_reference(X, 1, "bottom"), atol=1e-10)
    assert eigen_reference(got)[1].size == 2                      # one direction fewer, not the same rank
    np.testing.assert_allclose(T.delete_components(X, 0, "bottom")[0], X, atol=1e-10)
    with pytest.raises(RepresentationError, match="between 0 and 3"):
        T.delete_components(X, 4, "bottom")
    np.testing.assert_allclose(T.top_k_projection(X, 3)[0], X, atol=1e-10)  # k >= rank: nothing to delete


@PROPERTY
@given(case=spectra(), data=st.data())
def test_the_closed_form_is_linear_cka_of_the_deletion(case, data):
    n, spectrum, seed = case
    X = layer(n, spectrum, seed)
    which = data.draw(st.sampled_from(["top", "bottom"]))
    k = data.draw(st.integers(1, spectrum.size - 1))
    edited, lambdas = T.delete_components(X, k, which)
    np.testing.assert_allclose(lambdas, spectrum, rtol=1e-6)
    assert T.deletion_cka(lambdas, k, which) == pytest.approx(ref.linear_cka(X, edited), abs=1e-9)
    # the same deletion seen by the Procrustes angle: cos(theta) = sqrt(kept share of sum lambda)
    kept = spectrum[k:] if which == "top" else spectrum[:-k]
    assert math.cos(ref.procrustes_angle(X, edited)) == pytest.approx(math.sqrt(kept.sum() / spectrum.sum()), abs=1e-8)
    assert S.deleted_variance(lambdas, k, which) == pytest.approx(1 - kept.sum() / spectrum.sum(), abs=1e-12)


def test_top_k_cka_is_the_closed_form_of_keeping_k():
    lambdas = np.array([5.0, 3.0, 1.0, 0.2, 0.0, 0.0])           # zeros as covariance_eigenvalues gives them
    for k in range(1, 7):
        expected = math.sqrt(np.sum(lambdas[:k] ** 2) / np.sum(lambdas**2))
        assert T.top_k_cka(lambdas, k) == pytest.approx(expected, abs=1e-15)
    assert T.deletion_cka(lambdas[:4], 1, "top") == pytest.approx(math.sqrt(1 - 25 / np.sum(lambdas**2)), abs=1e-15)
    assert T.deletion_cka(lambdas[:4], 4, "bottom") == 0.0 and T.deletion_cka(lambdas[:4], 0, "top") == 1.0


@pytest.mark.parametrize("k", [-1, 2.5, "2", True, float("nan"), 7, None])
def test_bad_k_is_refused_naming_it(k):
    X = layer(20, np.arange(6.0, 0.0, -1.0), seed=0)
    with pytest.raises(RepresentationError, match=r"k = .* between 0 and 6"):
        T.delete_components(X, k, "bottom")
    with pytest.raises(RepresentationError, match=r"k = .* between 0 and 6"):
        T.deletion_cka(np.arange(6.0, 0.0, -1.0), k, "top")


@pytest.mark.parametrize("which", ["middle", "Top", None])
def test_bad_which_is_refused_naming_it(which):
    X = layer(20, np.arange(6.0, 0.0, -1.0), seed=0)
    with pytest.raises(RepresentationError, match="which = .*'top'.*'bottom'"):
        T.delete_components(X, 1, which)


def test_no_variance_is_refused():
    with pytest.raises(RepresentationError, match="no variance"):
        T.deletion_cka(np.zeros(3), 1, "top")
    with pytest.raises(RepresentationError, match="nothing to delete"):
        S.deletion_sweep(np.outer(np.arange(10.0), [1.0, 2.0]), lambda x: 1.0)   # rank 1


# ---------------------------------------------------------------- the sweep
def kept_variance(X: np.ndarray) -> float:
    """A functional score known by construction: the layer's total variance."""
    return float(np.sum(np.var(X, axis=0)))


@pytest.fixture(scope="module")
def sweep() -> tuple[np.ndarray, S.Sweep]:
    X = layer(60, 1.6 ** -np.arange(9.0), seed=11)
    return X, S.deletion_sweep(X, kept_variance)


def test_the_sweep_holds_every_deletion_with_its_values(sweep):
    X, found = sweep
    rank = 9
    assert found.rank == rank and found.measures == S.COMPARED and not found.skipped
    assert [(d.which, d.k) for d in found.deletions] == [(w, k) for w in ("top", "bottom") for k in range(1, rank)]
    assert found.baseline == pytest.approx(kept_variance(X))
    for d in found.deletions:
        edited = deleted_reference(X, d.k, d.which)
        assert d.score == pytest.approx(kept_variance(edited), rel=1e-9)
        assert d.values["linear_cka"] == pytest.approx(ref.linear_cka(X, edited), abs=1e-9)
        assert d.values["procrustes"] == pytest.approx(ref.procrustes_angle(X, edited), abs=1e-7)
        assert d.values["shape_metric"] == pytest.approx(ref.shape_distance(X, edited, 0.5), abs=1e-7)
        assert d.closed_form_cka == pytest.approx(d.values["linear_cka"], abs=1e-9)
        assert d.values["pwcca"] == pytest.approx(1.0, abs=1e-9)       # the column space only shrinks
    assert found.find("bottom", 3) is found.deletions[rank - 1 + 2] and found.find("top", rank) is None
    rows = found.rows()
    assert rows[0]["which"] == "top" and rows[0]["k"] == 1 and rows[0]["drop"] == pytest.approx(found.drops()[0])


def test_sensitivity_is_one_where_the_score_is_a_monotone_function_of_the_measure(sweep):
    """The score is the kept variance, so drop / baseline = 1 - cos^2(theta): the Procrustes angle ranks the
    deletions exactly as their cost does (rho = 1). PWCCA never moves: its rho is undefined, not NaN."""
    _, found = sweep
    drops = found.drops()
    theta = found.dissimilarities("procrustes") * (math.pi / 2)
    np.testing.assert_allclose(drops / found.baseline, np.sin(theta) ** 2, atol=1e-9)
    assert S.rank_sensitivity(found.dissimilarities("procrustes"), drops) == pytest.approx(1.0)
    assert S.is_constant(found.dissimilarities("pwcca"))
    assert S.rank_sensitivity(found.dissimilarities("pwcca"), drops) is None


def test_a_given_list_of_k_and_bad_ones():
    X = layer(30, 2.0 ** -np.arange(6.0), seed=2)
    found = S.deletion_sweep(X, kept_variance, ks=[1, 5], measures=("linear_cka",))
    assert [(d.which, d.k) for d in found.deletions] == [("top", 1), ("top", 5), ("bottom", 1), ("bottom", 5)]
    assert set(found.deletions[0].values) == {"linear_cka"}
    for bad in ([0], [6], [2, 9]):
        with pytest.raises(RepresentationError, match="between 1 and 5"):
            S.deletion_sweep(X, kept_variance, ks=bad)
    with pytest.raises(RepresentationError, match="unknown measure"):
        S.deletion_sweep(X, kept_variance, measures=("cosine",))
    with pytest.raises(RepresentationError, match="alpha"):
        S.deletion_sweep(X, kept_variance, options={"shape_metric": {"alpha": 2.0}})


def test_pwcca_stays_one_on_a_layer_far_from_the_origin_with_a_steep_spectrum():
    """Six decades of variance, an offset 10^4 times the smallest spread: the deletions' column spaces lie
    inside the layer's, and the sweep must not let centring round-off show up as new directions."""
    X = layer(200, 10.0 ** -np.linspace(0.0, 6.0, 30), seed=1, offset=20.0)
    found = S.deletion_sweep(X, kept_variance, measures=("pwcca", "linear_cka"))
    pwcca = [d.values["pwcca"] for d in found.deletions]
    assert min(pwcca) == pytest.approx(1.0, abs=1e-9) and S.is_constant(found.dissimilarities("pwcca"))
    for d in found.deletions:
        assert d.values["linear_cka"] == pytest.approx(d.closed_form_cka, abs=1e-9)


def test_the_sweep_takes_translation_invariant_measures_only(monkeypatch):
    uncentred = replace(MEASURES["linear_cka"], name="uncentred", invariances=frozenset())
    monkeypatch.setitem(MEASURES, "uncentred", uncentred)
    with pytest.raises(RepresentationError, match="uncentred would change under a translation"):
        S.deletion_sweep(layer(20, 2.0 ** -np.arange(4.0), seed=0), kept_variance, measures=("linear_cka", "uncentred"))


def test_a_deletion_that_cannot_be_measured_is_left_out_with_its_reason(monkeypatch):
    X = layer(30, 2.0 ** -np.arange(4.0), seed=4)
    compare, calls = S._compare, []

    def failing_top_2(*args):  # calls: X against itself, then top 1, top 2, ...
        calls.append(1)
        if len(calls) == 3:
            raise np.linalg.LinAlgError("SVD did not converge")
        return compare(*args)

    monkeypatch.setattr(S, "_compare", failing_top_2)
    found = S.deletion_sweep(X, kept_variance)
    assert found.skipped == (("top", 2, "SVD did not converge"),)
    assert ("top", 2) not in [(d.which, d.k) for d in found.deletions] and len(found.deletions) == 5
    assert len(found.drops()) == len(found.dissimilarities("linear_cka")) == 5


def test_deletion_counts():
    assert S.deletion_counts(10) == list(range(1, 10))
    assert S.deletion_counts(65, most=64) == list(range(1, 65))
    wide = S.deletion_counts(358, most=16)
    assert wide == sorted(set(wide)) and wide[0] == 1 and wide[-1] == 357 and len(wide) <= 16
    assert {1, 2, 356, 357} <= set(wide)                                    # dense at both ends
    assert S.deletion_counts(1) == []


# ---------------------------------------------------------------- dissimilarity, seeds, rank correlation
@pytest.mark.parametrize("measure", S.COMPARED)
def test_dissimilarity_is_zero_for_identical_and_one_for_unrelated(measure):
    info = MEASURES[measure]
    low, high = info.value_range
    identical, unrelated = (high, 0.0) if info.higher_is_similar else (low, high)
    assert S.dissimilarity(measure, identical) == 0.0 and S.dissimilarity(measure, unrelated) == 1.0
    middle = S.dissimilarity(measure, (identical + unrelated) / 2)
    assert middle == pytest.approx(0.5)


def test_dissimilarity_scales():
    assert S.dissimilarity("linear_cka", 0.983) == pytest.approx(0.017)
    assert S.dissimilarity("procrustes", math.pi / 4) == pytest.approx(0.5)
    # unrelated is 0 for a similarity even when its range goes below (RSA: -1 to 1), as on the Invariances page
    assert S.dissimilarity("rsa", 0.0) == 1.0 and S.dissimilarity("rsa", -1.0) == 2.0
    with pytest.raises(RepresentationError, match="unknown measure"):
        S.dissimilarity("cosine", 0.5)


def test_seed_spread_and_its_floor():
    rng = np.random.default_rng(5)
    X = layer(40, 2.0 ** -np.arange(5.0), seed=5)
    rotated = X @ ref.random_orthogonal(5, rng) + 1.0
    unrelated = rng.standard_normal((40, 7))
    spread = S.seed_spread(X, {"rotated": rotated, "unrelated": unrelated})
    assert set(spread) == set(S.COMPARED)
    assert spread["linear_cka"]["rotated"] == pytest.approx(1.0)
    assert spread["procrustes"]["rotated"] == pytest.approx(0.0, abs=1e-6)
    assert spread["linear_cka"]["unrelated"] == pytest.approx(ref.linear_cka(X, unrelated), abs=1e-9)
    assert spread["pwcca"]["rotated"] == pytest.approx(1.0)
    floor = S.seed_floor("linear_cka", spread["linear_cka"].values())
    assert floor == pytest.approx(0.0, abs=1e-12)                           # the closer of the two
    assert S.seed_floor("linear_cka", [0.9, 0.95]) == pytest.approx(0.05) and S.seed_floor("pwcca", []) is None
    with pytest.raises(RepresentationError, match="40 examples but short has 39"):
        S.seed_spread(X, {"short": unrelated[:39]})


def test_spearman_on_a_known_permutation():
    """rho = 1 - 6 sum d_i^2 / (n (n^2 - 1)) without ties: one swapped pair of five gives 0.9."""
    d = [0.1, 0.2, 0.3, 0.4, 0.5]
    assert S.rank_sensitivity(d, [1.0, 2.0, 3.0, 5.0, 4.0]) == pytest.approx(0.9)
    assert S.rank_sensitivity(d, np.exp(d)) == pytest.approx(1.0)           # any increasing function
    assert S.rank_sensitivity(d, -np.square(d)) == pytest.approx(-1.0)


def test_round_off_ties_and_constant_columns():
    # 0.1 and 0.1 + 1e-15 are one value: their ranks are averaged (1.5, 1.5, 3), not ordered by round-off.
    assert S.rank_sensitivity([0.1, 0.1 + 1e-15, 0.2], [0.5, 0.0, 1.0]) == pytest.approx(1.5 / math.sqrt(3))
    assert S.round_off_groups([0.3, 1e-16, 0.0, 0.3 + 1e-12]).tolist() == [1, 0, 0, 1]
    assert S.rank_sensitivity([1e-16, 0.0, 7e-16], [0.1, 0.2, 0.3]) is None            # a measure that never moves
    assert S.rank_sensitivity([0.1, 0.2, 0.3], [0.05, 0.05, 0.05]) is None            # a score that never moves
    assert S.rank_sensitivity([0.1], [0.2]) is None and S.is_constant([])
    with pytest.raises(RepresentationError, match="one of each"):
        S.rank_sensitivity([0.1, 0.2], [0.1])
    with pytest.raises(RepresentationError, match="NaN"):
        S.rank_sensitivity([0.1, float("nan"), 0.3], [0.1, 0.2, 0.3])


def test_hidden_below_the_seed_spread():
    d = [0.01, 0.02, 0.05, 0.2]
    drops = [0.0, 0.3, 0.4, 0.5]
    assert S.hidden_below_seed_spread(d, drops, 0.05) == 1      # 0.05 itself is not below the floor
    assert S.hidden_below_seed_spread(d, drops, 0.06) == 2
    assert S.hidden_below_seed_spread(d, drops, 0.3) == 3
    assert S.hidden_below_seed_spread(d, drops, 0.005) is None
    assert S.hidden_below_seed_spread(d, drops, None) is None
    with pytest.raises(RepresentationError, match="one of each"):
        S.hidden_below_seed_spread(d, drops[:3], 0.1)


@PROPERTY_FEW
@given(case=spectra(max_d=8))
def test_hidden_deletions_are_below_the_floor_and_nothing_below_costs_more(case):
    n, spectrum, seed = case
    X = layer(n, spectrum, seed)
    found = S.deletion_sweep(X, kept_variance, measures=("linear_cka",))
    d, drops = found.dissimilarities("linear_cka"), found.drops()
    floor = float(np.median(d))
    hidden = S.hidden_below_seed_spread(d, drops, floor)
    below = d < floor
    if not below.any():
        assert hidden is None
    else:
        assert below[hidden] and drops[hidden] == drops[below].max()
