"""Data sets: the fixed stratified digits split, sequential digits, synthetic sets."""
import hashlib

import numpy as np
import pytest
from sklearn.datasets import load_digits

from sample_models import digits, gaussian_clusters, sequential_digits, two_cubes
from sample_models.data import digits_split_indices


def test_digits_shapes_types_and_range():
    d = digits()
    assert d.X_train.shape == (1438, 64) and d.X_test.shape == (359, 64)
    assert d.y_train.shape == (1438,) and d.y_test.shape == (359,)
    assert d.X_train.dtype == np.float32 and d.X_test.dtype == np.float32
    assert d.y_train.dtype == np.int64 and d.y_test.dtype == np.int64
    for X in (d.X_train, d.X_test):
        assert X.min() == 0.0 and X.max() == 1.0
    assert set(np.unique(d.y_train)) == set(range(10))


def test_digits_is_cached_and_read_only():
    d1, d2 = digits(), digits()
    assert d1 is d2
    for a in d1:
        assert not a.flags.writeable
        with pytest.raises(ValueError):
            a[0] = 0


def test_digits_split_matches_sklearn_rows():
    raw = load_digits()
    tr, te = digits_split_indices()
    d = digits()
    np.testing.assert_array_equal(d.X_test, (raw.data[te] / 16.0).astype(np.float32))
    np.testing.assert_array_equal(d.y_train, raw.target[tr])
    assert np.intersect1d(tr, te).size == 0
    assert np.union1d(tr, te).size == 1797


def test_digits_split_is_stratified():
    raw = load_digits()
    d = digits()
    total = np.bincount(raw.target, minlength=10)
    np.testing.assert_array_equal(np.bincount(d.y_test, minlength=10), np.round(0.2 * total).astype(int))
    np.testing.assert_array_equal(
        np.bincount(d.y_train, minlength=10) + np.bincount(d.y_test, minlength=10), total
    )


def test_digits_split_is_fixed():
    # The shipped weights were trained and evaluated on exactly this split.
    _, te = digits_split_indices()
    assert te[:10].tolist() == [3, 7, 13, 19, 36, 38, 43, 48, 53, 55]
    digest = hashlib.sha256(te.astype("<i8").tobytes()).hexdigest()
    assert digest == "3530be80b9605f4c4adc46d0ee3006a356c16968a8efcc58f24463bc820d5ef9"


def test_sequential_digits_are_rows_as_time_steps():
    s, d = sequential_digits(), digits()
    assert s.X_train.shape == (1438, 8, 8) and s.X_test.shape == (359, 8, 8)
    # step t of example i is row t of its image
    np.testing.assert_array_equal(s.X_test[5, 3], d.X_test[5, 24:32])
    np.testing.assert_array_equal(s.X_train.reshape(-1, 64), d.X_train)
    np.testing.assert_array_equal(s.y_test, d.y_test)


def test_gaussian_clusters_geometry():
    ds = gaussian_clusters(n_per_class=4000, n_classes=4, dim=6, separation=5.0, seed=3)
    assert ds.X.shape == (16000, 6) and ds.X.dtype == np.float64
    np.testing.assert_array_equal(np.bincount(ds.y), [4000] * 4)
    means = np.stack([ds.X[ds.y == k].mean(0) for k in range(4)])
    dist = np.linalg.norm(means[:, None] - means[None], axis=-1)[np.triu_indices(4, 1)]
    np.testing.assert_allclose(dist, 5.0, atol=0.15)
    within = np.concatenate([ds.X[ds.y == k] - means[k] for k in range(4)])
    np.testing.assert_allclose(within.std(0), 1.0, atol=0.03)


def test_gaussian_clusters_seeded_and_validated():
    a, b = gaussian_clusters(seed=1), gaussian_clusters(seed=1)
    np.testing.assert_array_equal(a.X, b.X)
    assert not np.array_equal(a.X, gaussian_clusters(seed=2).X)
    assert gaussian_clusters().X.shape == (600, 10)
    with pytest.raises(ValueError, match="dim"):
        gaussian_clusters(n_classes=5, dim=3)
    with pytest.raises(ValueError, match="separation"):
        gaussian_clusters(separation=float("nan"))


def test_two_cubes():
    ds = two_cubes(n_per_cube=300, dim=20, offset=1.1, seed=0)
    assert ds.X.shape == (600, 20)
    np.testing.assert_array_equal(ds.y, np.repeat([0, 1], 300))
    first, second = ds.X[:300], ds.X[300:]
    assert first.min() >= -0.5 and first.max() <= 0.5
    assert second[:, 1:].min() >= -0.5 and second[:, 1:].max() <= 0.5
    assert second[:, 0].min() >= 0.6 and second[:, 0].max() <= 1.6
    # separable along e1 because offset > 1
    assert first[:, 0].max() < second[:, 0].min()
    np.testing.assert_array_equal(two_cubes(seed=4).X, two_cubes(seed=4).X)
    assert two_cubes().X.shape == (1000, 100)
