"""The generalized shape metric (Williams et al. 2021) and the triangle inequality: values against
the definition at every alpha, its two ends (Procrustes angle, mean CCA), the triangle inequality
as a property, and cka_core.stats.triangle against brute force over every triple."""
import itertools
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import cka_core
from cka_core.measures import similarity_matrix
from cka_core.stats.triangle import triangle_check, triangle_excess

from . import reference as ref
from .cka_testdata import PROPERTY_FEW, correlated_pair, seeds

alphas = st.sampled_from([0.0, 0.1, 0.5, 0.9, 1.0])


@pytest.mark.parametrize("n,dx,dy", [(60, 5, 3), (40, 3, 7), (30, 1, 1), (20, 35, 12), (25, 30, 40)])
@pytest.mark.parametrize("alpha", [0.0, 0.25, 0.5, 0.8, 1.0])
def test_matches_the_definition_at_every_alpha(n, dx, dy, alpha):
    X, Y = correlated_pair(np.random.default_rng(n + dx + dy), n, dx, dy)
    expected = ref.shape_distance(X, Y, alpha)
    assert cka_core.similarity(X, Y, "shape_metric", alpha=alpha) == pytest.approx(expected, abs=1e-7)


def test_its_ends_are_the_procrustes_angle_and_mean_cca():
    X, Y = correlated_pair(np.random.default_rng(1), 80, 6, 6)
    assert cka_core.similarity(X, Y, "shape_metric", alpha=1.0) == pytest.approx(ref.procrustes_angle(X, Y), abs=1e-12)
    assert math.cos(cka_core.similarity(X, Y, "shape_metric", alpha=0.0)) == pytest.approx(ref.mean_cca(X, Y), abs=1e-12)


def test_whitened_end_is_invariant_to_invertible_maps_and_the_others_are_not():
    rng = np.random.default_rng(2)
    X, Y = correlated_pair(rng, 200, 6, 6)
    M = ref.random_orthogonal(6, rng) * np.array([10.0, 5, 1, 1, 0.3, 0.1]) @ ref.random_orthogonal(6, rng)
    moved = {a: abs(cka_core.similarity(X @ M, Y, "shape_metric", alpha=a) - cka_core.similarity(X, Y, "shape_metric",
                                                                                                   alpha=a))
             for a in (0.0, 0.5, 1.0)}
    assert moved[0.0] < 1e-9 and moved[0.5] > 0.01 and moved[1.0] > 0.01


def test_a_bad_alpha_is_refused_by_name():
    X, Y = correlated_pair(np.random.default_rng(3), 20, 3, 3)
    with pytest.raises(cka_core.RepresentationError, match="alpha must be in"):
        cka_core.similarity(X, Y, "shape_metric", alpha=1.5)


@PROPERTY_FEW
@given(seed=seeds, alpha=alphas)
def test_property_the_shape_metric_obeys_the_triangle_inequality(seed, alpha):
    """Three layers of different widths, two of them related, one random: d(X, Z) <= d(X, Y) + d(Y, Z)."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(15, 40))
    X = rng.standard_normal((n, int(rng.integers(1, 8))))
    Y = X @ rng.standard_normal((X.shape[1], int(rng.integers(1, 8)))) + rng.uniform(0, 2) * rng.standard_normal(
        (n, 1))
    Z = rng.standard_normal((n, int(rng.integers(1, 50))))
    for a, b, c in itertools.permutations([X, Y, Z]):
        d = [cka_core.similarity(p, q, "shape_metric", alpha=alpha) for p, q in ((a, c), (a, b), (b, c))]
        assert d[0] <= d[1] + d[2] + 1e-7


@PROPERTY_FEW
@given(seed=seeds)
def test_property_arccos_cka_obeys_the_triangle_inequality(seed):
    rng = np.random.default_rng(seed)
    layers = [rng.standard_normal((30, int(rng.integers(1, 10)))) for _ in range(2)]
    layers.append(layers[0] @ rng.standard_normal((layers[0].shape[1], 4)) + 0.3 * rng.standard_normal((30, 4)))
    angles = np.arccos(np.clip(cka_core.cka_matrix(layers), -1.0, 1.0))
    assert triangle_check(angles, tolerance=1e-7).holds


def test_one_minus_cka_breaks_the_triangle_inequality_along_a_path():
    """A, B and the layer [A, B] / sqrt(2) between them: its Gram matrix is the mean of theirs, so the
    three sit on one great circle of Gram space, and 1 - cos of the whole arc exceeds the sum over
    its two halves (docs/theory.md §8.1), while the angle arccos(CKA) adds up."""
    rng = np.random.default_rng(4)
    A, B = rng.standard_normal((200, 10)), rng.standard_normal((200, 10))
    layers = [A, np.hstack([A, B]) / np.sqrt(2), B]
    cka = cka_core.cka_matrix(layers)
    assert 1 - cka[0, 2] > (1 - cka[0, 1]) + (1 - cka[1, 2])
    assert triangle_check(1 - cka).violations >= 1
    assert triangle_check(np.arccos(np.clip(cka, -1.0, 1.0))).holds


@pytest.mark.parametrize("seed", range(5))
def test_triangle_check_counts_what_brute_force_counts(seed):
    rng = np.random.default_rng(seed)
    L = int(rng.integers(3, 7))
    D = rng.uniform(0, 1, (L, L))
    D = (D + D.T) / 2
    np.fill_diagonal(D, 0)
    violations, worst = 0, -np.inf
    for i, j, k in itertools.permutations(range(L), 3):
        excess = D[i, k] - D[i, j] - D[j, k]
        violations += excess > 1e-9
        worst = max(worst, excess)
    check = triangle_check(D)
    assert (check.triples, check.violations) == (L * (L - 1) * (L - 2), violations)
    assert check.worst_excess == pytest.approx(worst, abs=1e-15)
    i, j, k = check.worst_triple
    assert triangle_excess(D)[i, j, k] == pytest.approx(D[i, k] - D[i, j] - D[j, k], abs=1e-15)


def test_triangle_check_refuses_what_is_not_a_distance_matrix():
    with pytest.raises(cka_core.RepresentationError, match="square"):
        triangle_check(np.zeros((3, 4)))
    with pytest.raises(cka_core.RepresentationError, match="NaN"):
        triangle_check(np.array([[0, np.nan, 1], [np.nan, 0, 1], [1, 1, 0.0]]))


def test_the_matrix_of_shape_distances_is_that_of_the_pairs():
    rng = np.random.default_rng(5)
    layers = {f"l{i}": rng.standard_normal((40, w)) for i, w in enumerate([3, 8, 5])}
    values = similarity_matrix(layers, measure="shape_metric", alpha=0.3)
    for (i, a), (j, b) in itertools.product(enumerate(layers.values()), repeat=2):
        assert values[i, j] == pytest.approx(ref.shape_distance(a, b, 0.3), abs=1e-7)
