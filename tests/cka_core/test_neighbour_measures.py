"""The kNN measures (jaccard_knn, rank_similarity, second_order_cosine): exact values on data whose
neighbours are known, the parameter k, ties broken by the lower index, one neighbour search per layer,
resamples, and the errors."""
import numpy as np
import pytest

import cka_core
from cka_core.measures import similarity_matrix, view as view_module
from cka_core.measures.neighbours import jaccard_knn, rank_similarity, second_order_cosine
from cka_core.measures.registry import parameter_defaults
from cka_core.measures.view import LayerView

from . import reference as ref
from .cka_testdata import correlated_pair

KNN = ["jaccard_knn", "rank_similarity", "second_order_cosine"]


def paired_directions(pairs, noise=0.02, seed=0):
    """Rows in pairs of near directions: example i and its partner point the same way (an orthogonal
    direction per pair) up to small noise, so each one's single nearest neighbour (k = 1) is its partner."""
    rng = np.random.default_rng(seed)
    n = 2 * len(pairs)
    X = np.zeros((n, len(pairs)))
    for p, (i, j) in enumerate(pairs):
        X[[i, j], p] = 1.0
    return X + noise * rng.uniform(0, 1, X.shape)


def test_exact_values_when_half_of_the_examples_keep_their_nearest_neighbour():
    X = paired_directions([(0, 1), (2, 3), (4, 5), (6, 7)])
    Y = paired_directions([(0, 1), (2, 3), (4, 6), (5, 7)], seed=1)
    assert jaccard_knn(X, Y, k=1) == pytest.approx(0.5, abs=1e-12)
    assert rank_similarity(X, Y, k=1) == pytest.approx(0.5, abs=1e-12)
    W = paired_directions([(0, 1), (2, 4), (3, 6), (5, 7)], seed=2)
    assert jaccard_knn(X, W, k=1) == pytest.approx(0.25, abs=1e-12)  # only 0 and 1 keep theirs
    Z = paired_directions([(0, 2), (1, 3), (4, 6), (5, 7)], seed=3)
    assert jaccard_knn(X, Z, k=1) == 0.0 and rank_similarity(X, Z, k=1) == 0.0


def test_rank_similarity_of_swapped_ranks():
    """The same two neighbours (k = 2) ranked (1, 2) in X and (2, 1) in Y: that example scores
    (2/(2*3) + 2/(2*3)) / (1 + 1/2) = 4/9, while Jaccard sees identical sets."""
    # Three directions at 0, 50 and 110 degrees in X, at 0, 60 and 110 in Y: each example's neighbours are
    # the other two; the middle one's nearer neighbour flips (0 in X, 2 in Y), the outer ones' do not.
    def at(degrees):
        t = np.radians(degrees)
        return np.stack([np.cos(t), np.sin(t)], axis=1)
    X, Y = at([0.0, 50.0, 110.0]), at([0.0, 60.0, 110.0])
    assert ref.knn_cosine(X, 2)[1] == [0, 2] and ref.knn_cosine(Y, 2)[1] == [2, 0]
    assert jaccard_knn(X, Y, k=2) == 1.0
    assert rank_similarity(X, Y, k=2) == pytest.approx((4 / 9 + 1 + 1) / 3, abs=1e-12)


@pytest.mark.parametrize("name", KNN)
@pytest.mark.parametrize("k", [1, 3, 10, 24])
def test_matches_the_brute_force_reference_for_every_k(name, k):
    X, Y = correlated_pair(np.random.default_rng(k), 25, 4, 6, noise=2.0)
    assert cka_core.similarity(X, Y, name, k=k) == pytest.approx(getattr(ref, name)(X, Y, k), abs=1e-10)


def test_the_default_k_is_resis_ten():
    assert all(parameter_defaults(name) == {"k": 10} for name in KNN)
    X, Y = correlated_pair(np.random.default_rng(1), 40, 5, 5, noise=2.0)
    assert jaccard_knn(X, Y) == pytest.approx(ref.jaccard_knn(X, Y, 10), abs=1e-12)
    assert jaccard_knn(X, Y) != pytest.approx(jaccard_knn(X, Y, k=3))


def test_second_order_cosine_compares_similarities_not_neighbour_sets():
    """Two layers with the same neighbour sets but different cosines to them: Jaccard 1, second-order < 1."""
    X, _ = correlated_pair(np.random.default_rng(2), 30, 5, 5)
    Y = np.sign(X) * np.abs(X) ** 1.5
    assert second_order_cosine(X, X) == pytest.approx(1.0, abs=1e-12)
    assert second_order_cosine(X, Y) == pytest.approx(ref.second_order_cosine(X, Y), abs=1e-10)
    assert second_order_cosine(X, Y) < 1.0 - 1e-4


def test_ties_are_broken_by_the_lower_index_and_survive_a_rotation():
    """One-hot rows: every pair of examples is at cosine distance 1, so each example's neighbours are the
    lowest other indices; a rotation changes the distances by round-off only and must not reorder them."""
    X = np.eye(12)
    expected = np.array([[j for j in range(12) if j != i][:4] for i in range(12)])
    np.testing.assert_array_equal(LayerView.of(X).neighbours(4, "test"), expected)
    Q = ref.random_orthogonal(12, np.random.default_rng(3))
    np.testing.assert_array_equal(LayerView.of(X @ Q).neighbours(4, "test"), expected)
    assert jaccard_knn(X, X @ Q, k=4) == 1.0 and rank_similarity(X, X @ Q, k=4) == pytest.approx(1.0)


def test_a_matrix_of_layers_searches_each_layers_neighbours_once(monkeypatch):
    calls = []
    real = view_module.nearest_neighbours

    def counted(distances, k, *args):
        calls.append(distances.shape)
        return real(distances, k, *args)

    monkeypatch.setattr(view_module, "nearest_neighbours", counted)
    rng = np.random.default_rng(4)
    layers = {f"l{i}": rng.standard_normal((30, 4 + i)) for i in range(3)}
    values = similarity_matrix(layers, measure="rank_similarity", k=5)
    assert len(calls) == 3
    assert values[0, 1] == pytest.approx(ref.rank_similarity(layers["l0"], layers["l1"], 5), abs=1e-10)


def test_a_bootstrap_resample_takes_its_neighbours_from_the_root_cosines():
    X, Y = correlated_pair(np.random.default_rng(5), 30, 4, 5)
    index = np.random.default_rng(6).permutation(30)[:24]  # distinct rows: no repeat at distance 0
    vx, vy = LayerView.of(X).rows(index), LayerView.of(Y).rows(index)
    for name in KNN:
        got = cka_core.MEASURES[name].of(vx, vy, k=6)
        assert got == pytest.approx(getattr(ref, name)(X[index], Y[index], 6), abs=1e-10), name


@pytest.mark.parametrize("name", KNN)
@pytest.mark.parametrize("k,words", [(30, "lower k below 30"), (40, "lower k below 30"), (0, "whole number >= 1"),
                                     (2.5, "whole number >= 1")])
def test_bad_k_is_a_clear_error(name, k, words):
    X, Y = correlated_pair(np.random.default_rng(7), 30, 3, 3)
    with pytest.raises(cka_core.RepresentationError, match=name) as error:
        cka_core.similarity(X, Y, name, k=k)
    assert words in str(error.value)


@pytest.mark.parametrize("name", KNN)
def test_zero_rows_and_mismatched_rows_are_clear_errors(name):
    X, Y = correlated_pair(np.random.default_rng(8), 30, 3, 3)
    X[4] = 0.0
    with pytest.raises(cka_core.RepresentationError, match=f"{name}: X has 1 all-zero row"):
        cka_core.similarity(X, Y, name)
    with pytest.raises(cka_core.RepresentationError, match=f"{name}: X has 30 examples but Y has 29"):
        cka_core.similarity(np.ones((30, 3)) + np.eye(30, 3), Y[:29], name)
