"""The RSM measures (rsm_norm_difference, rsa_correlation, distance_correlation): exact values, the
conventions pinned (no normalisation; correlation, not Euclidean, RDMs; Székely's dCor), the ranking
code shared with rsa, one distance matrix per layer, and the errors."""
import math

import numpy as np
import pytest
from scipy import stats
from scipy.spatial.distance import pdist

import cka_core
from cka_core.measures import similarity_matrix
from cka_core.measures.rsm import distance_correlation, rsa_correlation, rsm_norm_difference
from cka_core.measures.view import LayerView

from . import reference as ref
from .cka_testdata import correlated_pair


@pytest.mark.parametrize("c", [0.0, 0.5, 3.0])
def test_rsm_norm_difference_of_a_rescaled_copy(c):
    """D(cX) = c D(X), so ||D_X - D_cX||_F = |1 - c| ||D_X||_F: the layers' own units, no normalisation."""
    X, _ = correlated_pair(np.random.default_rng(0), 30, 4, 4)
    expected = abs(1 - c) * np.linalg.norm(ref.rdm(X))
    if c == 0.0:
        with pytest.raises(cka_core.RepresentationError, match="constant"):
            rsm_norm_difference(X, c * X)
        return
    assert rsm_norm_difference(X, c * X) == pytest.approx(expected, rel=1e-12)


def test_rsm_norm_difference_is_unbounded_and_translation_invariant():
    X, Y = correlated_pair(np.random.default_rng(1), 30, 4, 6)
    assert cka_core.MEASURES["rsm_norm_difference"].value_range == (0.0, math.inf)
    assert rsm_norm_difference(X, 1e6 * Y) > 1e6
    assert rsm_norm_difference(X + 100.0, Y - 7.0) == pytest.approx(rsm_norm_difference(X, Y), rel=1e-10)


def test_rsm_norm_difference_keeps_extreme_scales_finite():
    X, Y = correlated_pair(np.random.default_rng(2), 30, 4, 6)
    with np.errstate(all="raise"):
        got = rsm_norm_difference(1e200 * X, 1e200 * Y)
    assert got == pytest.approx(1e200 * rsm_norm_difference(X, Y), rel=1e-10)


def test_rsa_correlation_uses_correlation_distance_rdms():
    """ReSi's RSA: 1 - Pearson r between examples; the library's rsa (Euclidean) differs visibly here."""
    rng = np.random.default_rng(3)
    X = rng.standard_normal((30, 6)) * rng.uniform(0.2, 5, (30, 1)) + rng.uniform(-3, 3, (30, 1))
    Y = X @ rng.standard_normal((6, 4)) + rng.standard_normal((30, 4))
    expected = ref.rsa_correlation(X, Y)
    assert abs(expected - ref.rsa(X, Y)) > 0.05
    assert rsa_correlation(X, Y) == pytest.approx(expected, abs=1e-10)


def test_the_ranks_of_either_metric_come_from_one_ranking_code():
    X, _ = correlated_pair(np.random.default_rng(4), 25, 5, 5)
    view = LayerView.of(X)
    np.testing.assert_allclose(view.distance_ranks("correlation"), stats.rankdata(pdist(X, "correlation")))
    np.testing.assert_allclose(view.distance_ranks(), stats.rankdata(pdist(X)))
    assert view.distance_ranks() is view.distance_ranks("euclidean")  # rsa's default is kept once


def test_rsa_correlation_is_not_translation_invariant():
    """ReSi declares RSA translation-invariant; a shift of the features changes every row's correlation
    with the others, and the value moves (only adding one constant to every feature would not)."""
    X, Y = correlated_pair(np.random.default_rng(5), 40, 5, 5)
    shift = np.random.default_rng(6).uniform(-5, 5, 5)
    assert abs(rsa_correlation(X + shift, Y) - rsa_correlation(X, Y)) > 0.01
    assert rsa_correlation(X + 3.0, Y) != pytest.approx(rsa_correlation(X + shift, Y))
    assert "translation" not in cka_core.MEASURES["rsa_correlation"].invariances


def test_rsa_correlation_refuses_rows_without_a_correlation():
    X, Y = correlated_pair(np.random.default_rng(7), 20, 4, 4)
    X[3] = 2.5
    with pytest.raises(cka_core.RepresentationError, match="rsa_correlation: 1 example.*example 3"):
        rsa_correlation(X, Y)
    with pytest.raises(cka_core.RepresentationError, match="one feature wide"):
        rsa_correlation(Y[:, :1], Y)


def test_distance_correlation_known_values():
    rng = np.random.default_rng(8)
    X = rng.standard_normal((60, 4))
    Q = ref.random_orthogonal(4, rng)
    assert distance_correlation(X, 3.0 * X @ Q + 5.0) == pytest.approx(1.0, abs=1e-10)
    # y = x^2 of a symmetric x: Pearson correlation ~0, but y is a function of x, and dCor sees it.
    x = rng.standard_normal((300, 1))
    assert abs(np.corrcoef(x[:, 0], x[:, 0] ** 2)[0, 1]) < 0.2
    assert distance_correlation(x, x ** 2) > 0.4
    assert distance_correlation(x, rng.standard_normal((300, 1))) < 0.2


def test_distance_correlation_matches_szekelys_formula_written_out():
    X, Y = correlated_pair(np.random.default_rng(9), 35, 3, 5, noise=3.0)
    assert distance_correlation(X, Y) == pytest.approx(ref.distance_correlation(X, Y), abs=1e-12)


def test_distances_are_computed_once_per_layer(monkeypatch):
    from cka_core.measures import view as view_module
    calls = []
    real = view_module.pdist

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(view_module, "pdist", counted)
    rng = np.random.default_rng(10)
    layers = {f"l{i}": rng.standard_normal((30, 3 + i)) for i in range(3)}
    for measure in ("distance_correlation", "rsm_norm_difference"):
        similarity_matrix(layers, measure=measure)
    assert len(calls) == 2 * 3  # each call prepares new views: 3 layers, one pdist each


@pytest.mark.parametrize("name", ["rsm_norm_difference", "rsa_correlation", "distance_correlation"])
def test_mismatched_rows_name_the_measure(name):
    X, Y = correlated_pair(np.random.default_rng(11), 20, 3, 3)
    with pytest.raises(cka_core.RepresentationError, match=f"{name}: X has 20 examples but Y has 19"):
        cka_core.similarity(X, Y[:19], name)
