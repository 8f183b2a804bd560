"""The statistic-difference measures (magnitude, concentricity, uniformity): exact values on layers whose
statistic is known, the conventions pinned (ReSi's: length of the mean example, no normalisation; the
rows as given), what they are visibly not invariant to, the parameter t, and the errors."""
import math

import numpy as np
import pytest

import cka_core
from cka_core.measures.registry import parameter_defaults
from cka_core.measures.statistics import concentricity_difference, magnitude_difference, uniformity_difference

from . import reference as ref
from .cka_testdata import correlated_pair


def centred_noise(rng, n, d):
    Z = rng.standard_normal((n, d))
    return Z - Z.mean(axis=0)


def test_magnitude_is_the_length_of_the_mean_example():
    """Mean example 3 * 1 in 4 dimensions (length 6) against mean example (0, 0, 8, 0) (length 8): 2,
    whatever the spread around the means (ReSi: no normalisation by the mean)."""
    rng = np.random.default_rng(0)
    X = 3.0 + centred_noise(rng, 40, 4)
    Y = np.array([0.0, 0.0, 8.0, 0.0]) + 5.0 * centred_noise(rng, 40, 4)
    assert magnitude_difference(X, Y) == pytest.approx(2.0, abs=1e-12)
    assert magnitude_difference(X, 10.0 * (X - 3.0) + 3.0) == pytest.approx(0.0, abs=1e-12)


def test_concentricity_of_a_known_spread():
    """Rows m + v and m - v with v orthogonal to m and |v| = |m|: each at 45 degrees to the mean m
    (concentricity 1/sqrt(2)); rows all along m: concentricity 1."""
    m, v = np.array([2.0, 0.0, 0.0]), np.array([0.0, 2.0, 0.0])
    X = np.array([m + v, m - v] * 10)
    Y = np.outer(np.arange(1.0, 21.0), m)
    assert concentricity_difference(X, Y) == pytest.approx(1 - 1 / math.sqrt(2), abs=1e-12)


def test_uniformity_of_two_clusters():
    """Rows a, a, b, b with |a - b| = r: the n^2 = 16 pairs are 8 at distance 0 (the diagonal and the
    repeats) and 8 at distance r, so u = log((8 + 8 exp(-t r^2)) / 16)."""
    a, b = np.zeros(3), np.array([0.3, 0.4, 0.0])  # r = 0.5
    X = np.array([a, a, b, b])
    Y = np.array([a, b, a, b]) * 2.0  # r = 1
    for t in (2.0, 0.7):
        u = lambda r: math.log((8 + 8 * math.exp(-t * r ** 2)) / 16)  # noqa: E731
        assert uniformity_difference(X, Y, t=t) == pytest.approx(abs(u(0.5) - u(1.0)), abs=1e-12)
    assert parameter_defaults("uniformity_difference") == {"t": 2.0}


def test_uniformity_of_far_apart_examples_reaches_minus_log_n():
    """Examples so far apart that exp(-t d^2) underflows: only the diagonal counts, u = log(n / n^2)."""
    X = np.eye(10) * 1e3
    Y = np.eye(10) * 1e-9  # all pairs at ~0: u = log 1 = 0
    with np.errstate(all="raise"):
        assert uniformity_difference(X, Y) == pytest.approx(math.log(10), abs=1e-12)


@pytest.mark.parametrize("name,move", [
    ("magnitude_difference", lambda X: X + 2.0),
    ("magnitude_difference", lambda X: 3.0 * X),
    ("concentricity_difference", lambda X: X + 2.0),
    ("uniformity_difference", lambda X: 3.0 * X),
])
def test_what_each_statistic_is_visibly_not_invariant_to(name, move):
    X, Y = correlated_pair(np.random.default_rng(1), 40, 4, 4)
    assert abs(cka_core.similarity(move(X), Y, name) - cka_core.similarity(X, Y, name)) > 1e-3


def test_statistics_are_computed_once_per_layer():
    rng = np.random.default_rng(2)
    layers = {f"l{i}": rng.standard_normal((30, 3 + i)) + 1.0 for i in range(3)}
    values = cka_core.measures.similarity_matrix(layers, measure="concentricity_difference")
    assert values[0, 2] == pytest.approx(ref.concentricity_difference(layers["l0"], layers["l2"]), abs=1e-12)
    assert np.allclose(np.diag(values), 0.0)


def test_bad_t_and_centred_layers_are_clear_errors():
    X, Y = correlated_pair(np.random.default_rng(3), 30, 3, 3)
    for t in (0.0, -1.0):
        with pytest.raises(cka_core.RepresentationError, match="uniformity_difference: t must be positive"):
            uniformity_difference(X, Y, t=t)
    with pytest.raises(cka_core.RepresentationError, match="concentricity_difference: the mean example of X is zero"):
        concentricity_difference(X - X.mean(axis=0), Y)
    X[2] = 0.0
    with pytest.raises(cka_core.RepresentationError, match="concentricity_difference: X has 1 all-zero row"):
        concentricity_difference(X, Y)
    with pytest.raises(cka_core.RepresentationError, match="magnitude_difference: X has 30 examples but Y has 10"):
        magnitude_difference(X, Y[:10])


@pytest.mark.parametrize("name", ["magnitude_difference", "jaccard_knn", "rsm_norm_difference", "rsa_correlation"])
def test_a_constant_layer_is_a_clear_error_naming_the_measure(name):
    X, Y = correlated_pair(np.random.default_rng(4), 30, 3, 3)
    with pytest.raises(cka_core.RepresentationError, match=f"{name}: Y is the same for every example"):
        cka_core.similarity(X, np.full((30, 2), 7, dtype=np.int64), name)
    assert np.isfinite(cka_core.similarity((100 * X).astype(np.int64), Y, name))  # integer layers are numbers too


def test_a_permutation_of_the_rows_keeps_each_layers_statistics():
    from cka_core.measures.statistics import uniformity
    from cka_core.measures.view import LayerView

    X, Y = correlated_pair(np.random.default_rng(5), 30, 3, 4)
    vx, vy = LayerView.of(X), LayerView.of(Y)
    name = "uniformity_difference"
    before = cka_core.MEASURES[name].of(vx, vy)
    perm = np.random.default_rng(6).permutation(30)
    moved = vy.permuted(perm)
    assert moved._cache[("uniformity", 2.0)] == uniformity(vy, 2.0)
    assert cka_core.MEASURES[name].of(vx, moved) == before  # the statistic ignores which row is which
    assert uniformity(LayerView.of(Y[perm]), 2.0) == pytest.approx(uniformity(vy, 2.0), abs=1e-12)
