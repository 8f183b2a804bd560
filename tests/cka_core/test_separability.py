"""Davari et al.'s Corollary 4, classifier side: margins, accuracy under translation for many c,
and directions orthogonal to every decision normal (optionally non-negative)."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import cka_core
from cka_core import RepresentationError
from cka_core.pitfalls.directions import null_space_direction, random_direction
from cka_core.pitfalls.separability import (class_margins, normal_alignment, orthant_null_direction,
                                            translated_accuracy)


def _clusters(seed, n_per=40, k=4, d=12, sep=4.0, offset=3.0):
    rng = np.random.default_rng(seed)
    means = rng.standard_normal((k, d)) * sep
    X = np.concatenate([rng.standard_normal((n_per, d)) + m for m in means]) + offset
    y = np.repeat(np.arange(k) * 3 + 1, n_per)          # labels need not be 0..k-1
    return X, y


def _affine(X, y, seed=0):
    """A least-squares one-vs-rest read-out: normals W (K, d), biases b, classes."""
    classes = np.unique(y)
    Y = (y[:, None] == classes[None, :]).astype(float)
    A = np.hstack([X, np.ones((X.shape[0], 1))])
    coef = np.linalg.lstsq(A, Y, rcond=None)[0]
    return coef[:-1].T, coef[-1], classes


def test_class_margins_by_hand():
    scores = np.array([[3.0, 1.0, 2.0], [0.0, 5.0, 4.5], [1.0, 2.0, 0.0]])
    labels = np.array([10, 20, 30])
    got = class_margins(scores, labels, np.array([10, 20, 30]))
    np.testing.assert_allclose(got, [1.0, 0.5, -2.0])


def test_class_margins_column_order_follows_classes():
    scores = np.array([[3.0, 1.0], [0.0, 5.0]])
    np.testing.assert_allclose(class_margins(scores, [7, 2], [7, 2]), [2.0, 5.0])
    np.testing.assert_allclose(class_margins(scores, [2, 7], [7, 2]), [-2.0, -5.0])


@pytest.mark.parametrize("bad", [
    dict(scores=np.zeros((3, 2)), labels=[0, 1], classes=[0, 1]),          # row mismatch
    dict(scores=np.zeros((2, 3)), labels=[0, 1], classes=[0, 1]),          # column mismatch
    dict(scores=np.zeros((2, 2)), labels=[0, 5], classes=[0, 1]),          # unknown label
    dict(scores=np.zeros((2, 1)), labels=[0, 0], classes=[0]),             # one class
])
def test_class_margins_rejects_bad_input(bad):
    with pytest.raises(RepresentationError):
        class_margins(**bad)


@pytest.mark.parametrize("seed", range(3))
def test_translated_accuracy_matches_brute_force(seed):
    X, y = _clusters(seed)
    W, b, classes = _affine(X, y)
    moved = y == classes[1]
    v = random_direction(X.shape[1], seed)
    cs = np.array([0.0, 0.5, 2.0, 10.0, 100.0, 1e4, -30.0])
    got = translated_accuracy(X @ W.T + b, y, classes, moved, W @ v, cs)
    for c, value in zip(cs, got):
        scores = (X + np.outer(moved * c, v)) @ W.T + b
        assert value == pytest.approx(np.mean(classes[scores.argmax(1)] == y), abs=1e-12)
    assert translated_accuracy(X @ W.T + b, y, classes, moved, W @ v, 2.0) == pytest.approx(got[2])


@pytest.mark.parametrize("seed", range(3))
def test_corollary_4_orthogonal_translation_keeps_decisions_and_margins(seed):
    """The statement itself: v orthogonal to every normal -> scores, accuracy and margins do not
    change for any c, while linear CKA falls to the direction-independent limit."""
    X, y = _clusters(seed)
    W, b, classes = _affine(X, y)
    moved = y == classes[2]
    base = X @ W.T + b
    margins = class_margins(base, y, classes)
    for v in (null_space_direction(W, seed), orthant_null_direction(W, seed)):
        assert normal_alignment(W, v) < 1e-12
        accuracy = translated_accuracy(base, y, classes, moved, W @ v, np.logspace(-2, 6, 50))
        np.testing.assert_array_equal(accuracy, accuracy[0])
        for c in (1.0, 100.0, 1e4):
            after = (X + np.outer(moved * c, v)) @ W.T + b
            np.testing.assert_allclose(class_margins(after, y, classes), margins, rtol=0, atol=1e-8 * c)
        curve = cka_core.translation_cka(X, moved, v, np.array([0.0, 1e8]))
        assert curve[0] == pytest.approx(1.0)
        assert curve[1] == pytest.approx(cka_core.translation_cka_limit(X, moved), abs=1e-6)
    # a random direction at large c changes the decisions about the moved class
    v = random_direction(X.shape[1], seed)
    assert translated_accuracy(base, y, classes, moved, W @ v, 1e6) < translated_accuracy(base, y, classes, moved, W @ v, 0.0)


@pytest.mark.parametrize("seed", range(4))
def test_orthant_direction_is_unit_orthogonal_and_positive(seed):
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((5, 30))
    W -= W.mean(axis=0)                                     # normals summing to zero, as a probe's do
    v = orthant_null_direction(W, seed)
    assert v.shape == (30,)
    assert np.linalg.norm(v) == pytest.approx(1.0)
    assert np.all(v > 0)
    assert np.max(np.abs(W @ v)) < 1e-12 * np.linalg.norm(W)


def test_orthant_direction_depends_on_seed_and_is_deterministic():
    W = np.random.default_rng(0).standard_normal((4, 20))
    np.testing.assert_array_equal(orthant_null_direction(W, 1), orthant_null_direction(W, 1))
    assert not np.allclose(orthant_null_direction(W, 1), orthant_null_direction(W, 2))


def test_orthant_direction_infeasible_or_empty_null_space_raises():
    # a normal with every coordinate positive: no positive vector is orthogonal to it (Gordan)
    with pytest.raises(RepresentationError, match="positive in every coordinate"):
        orthant_null_direction(np.array([[1.0, 2.0, 0.5]]))
    with pytest.raises(RepresentationError, match="orthogonal"):
        orthant_null_direction(np.eye(3))
    with pytest.raises(RepresentationError):
        orthant_null_direction(np.array([[np.nan, 1.0]]))


def test_orthant_direction_with_zero_normals():
    v = orthant_null_direction(np.zeros((2, 4)), 0)
    assert np.all(v > 0) and np.linalg.norm(v) == pytest.approx(1.0)


def test_normal_alignment():
    W = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 1.0, 1.0]])
    assert normal_alignment(W, [0.0, 1.0, -1.0]) == pytest.approx(0.0)
    assert normal_alignment(W, [2.0, 0.0, 0.0]) == pytest.approx(1.0)
    assert normal_alignment(W, [0.0, 1.0, 0.0]) == pytest.approx(1 / np.sqrt(2))
    with pytest.raises(RepresentationError):
        normal_alignment(W, [0.0, 0.0, 0.0])
    with pytest.raises(RepresentationError):
        normal_alignment(W, [1.0, 0.0])


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), k=st.integers(2, 6), d=st.integers(8, 40))
def test_property_null_direction_never_changes_accuracy(seed, k, d):
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((k, d))
    n = 50
    X = rng.standard_normal((n, d)) * 3
    y = rng.integers(0, k, n)
    y[:k] = np.arange(k)
    classes = np.arange(k)
    base = X @ W.T
    v = null_space_direction(W, seed)
    moved = y == y[0]
    cs = np.logspace(-3, 8, 23)
    accuracy = translated_accuracy(base, y, classes, moved, W @ v, cs)
    np.testing.assert_array_equal(accuracy, accuracy[0])
