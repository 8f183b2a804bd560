"""The closed-form linear probe."""

import numpy as np
import pytest
import torch

import sample_models as sm
from sample_models import LinearProbe, probe_accuracy


def test_probe_is_perfect_on_a_trivially_separable_set():
    ds = sm.gaussian_clusters(n_per_class=100, n_classes=4, dim=8, separation=30.0, seed=0)
    test = sm.gaussian_clusters(n_per_class=50, n_classes=4, dim=8, separation=30.0, seed=0)
    assert probe_accuracy(ds.X, ds.y, test.X, test.y) == 1.0
    cubes = sm.two_cubes(n_per_cube=200, dim=10, offset=3.0)
    assert probe_accuracy(cubes.X[::2], cubes.y[::2], cubes.X[1::2], cubes.y[1::2]) == 1.0


def test_probe_on_digits_pixels_and_layers():
    d = sm.digits()
    acc = probe_accuracy(d.X_train, d.y_train, d.X_test, d.y_test)
    assert 0.9 <= acc <= 1.0
    # deterministic
    assert acc == probe_accuracy(d.X_train, d.y_train, d.X_test, d.y_test)
    # tensors, arbitrary label values and a wide (d > n, dual) representation
    Z = torch.from_numpy(np.repeat(d.X_train[:300], 5, axis=1))
    Zt = np.repeat(d.X_test, 5, axis=1)
    wide = probe_accuracy(Z, d.y_train[:300] + 10, Zt, d.y_test + 10)
    assert 0.8 <= wide <= 1.0


def test_probe_handles_constant_features_and_rejects_bad_input():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3))
    y = (X[:, 0] > 0).astype(int)
    Xc = np.hstack([X, np.full((60, 2), 7.5)])  # constant columns
    assert probe_accuracy(Xc, y, Xc, y) == probe_accuracy(X, y, X, y) >= 0.9
    with pytest.raises(ValueError, match="NaN"):
        probe_accuracy(np.full((4, 2), np.nan), [0, 1, 0, 1], X[:4, :2], y[:4])
    with pytest.raises(ValueError, match="labels"):
        probe_accuracy(X, y[:-1], X, y)
    with pytest.raises(ValueError, match="features"):
        LinearProbe().fit(X, y).predict(X[:, :2])
