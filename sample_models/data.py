"""Data sets of the model zoo. Nothing is downloaded: every set is bundled or synthetic.

- :func:`digits` -- scikit-learn's handwritten digits (1797 images of 8x8 pixels, 10 classes,
  shipped inside scikit-learn), with a fixed stratified 80/20 split and pixels scaled to [0, 1].
- :func:`sequential_digits` -- the same split with each image as a sequence of 8 rows of 8 pixels
  (rows are the time steps of the recurrent models).
- :func:`gaussian_clusters` -- isotropic Gaussian classes with a chosen distance between means.
- :func:`two_cubes` -- Davari et al.'s two uniform cubes (their first experiment; docs/theory.md §5 R4), the second
  one shifted by ``offset * e1``.

Arrays returned by :func:`digits` and :func:`sequential_digits` are cached and read-only: copy
them (``X.copy()``) before editing in place.
"""
from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np

__all__ = [
    "Digits",
    "LabelledSet",
    "digits",
    "sequential_digits",
    "gaussian_clusters",
    "two_cubes",
    "DIGITS_TEST_FRACTION",
    "DIGITS_SPLIT_SEED",
]

#: Fraction of each class held out for the test split.
DIGITS_TEST_FRACTION = 0.2
#: Seed of the split. ``np.random.RandomState`` is used because its stream is frozen by NumPy's
#: compatibility policy, so the split is the same with every NumPy version and on every machine.
DIGITS_SPLIT_SEED = 0


class Digits(NamedTuple):
    """A fixed train/test split: ``X_*`` float32 features, ``y_*`` int64 class labels (0-9)."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray


class LabelledSet(NamedTuple):
    """A synthetic set: ``X`` (n, d) float64 points, ``y`` (n,) int64 labels."""

    X: np.ndarray
    y: np.ndarray


def _readonly(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a)
    a.setflags(write=False)
    return a


@functools.lru_cache(maxsize=1)
def digits_split_indices() -> tuple[np.ndarray, np.ndarray]:
    """Row indices (into ``sklearn.datasets.load_digits()``) of the train and test splits.

    Stratified: from each class, ``round(DIGITS_TEST_FRACTION * count)`` rows chosen by a seeded
    permutation go to the test split. Both index arrays are sorted.
    """
    from sklearn.datasets import load_digits

    y = load_digits().target
    rng = np.random.RandomState(DIGITS_SPLIT_SEED)
    test = []
    for c in range(10):
        idx = np.flatnonzero(y == c)
        k = int(round(DIGITS_TEST_FRACTION * idx.size))
        test.append(idx[rng.permutation(idx.size)[:k]])
    test_idx = np.sort(np.concatenate(test))
    train_idx = np.setdiff1d(np.arange(y.size), test_idx)
    return _readonly(train_idx), _readonly(test_idx)


@functools.lru_cache(maxsize=1)
def digits() -> Digits:
    """scikit-learn's handwritten digits with a fixed stratified split (1438 train, 359 test).

    Returns
    -------
    Digits
        ``X_train`` (1438, 64) and ``X_test`` (359, 64) float32 in [0, 1] (pixels / 16, rows
        of the 8x8 image concatenated), ``y_train`` and ``y_test`` int64 in 0..9. The arrays are
        read-only and shared between calls.
    """
    from sklearn.datasets import load_digits

    raw = load_digits()
    X = (raw.data / 16.0).astype(np.float32)
    y = raw.target.astype(np.int64)
    tr, te = digits_split_indices()
    return Digits(_readonly(X[tr]), _readonly(y[tr]), _readonly(X[te]), _readonly(y[te]))


@functools.lru_cache(maxsize=1)
def sequential_digits() -> Digits:
    """:func:`digits` with each image as a sequence: ``X_*`` has shape (n, 8, 8) = (n, time, pixels).

    Step t is the t-th row of the image, read top to bottom. Same split and labels as
    :func:`digits`; ``X.reshape(n, 64)`` gives back the flat rows.
    """
    d = digits()
    return Digits(
        _readonly(d.X_train.reshape(-1, 8, 8)),
        d.y_train,
        _readonly(d.X_test.reshape(-1, 8, 8)),
        d.y_test,
    )


def gaussian_clusters(
    n_per_class: int = 200,
    n_classes: int = 3,
    dim: int = 10,
    separation: float = 3.0,
    seed: int = 0,
) -> LabelledSet:
    """Isotropic Gaussian classes whose means are all ``separation`` apart.

    Class k is N(mu_k, I_dim) with mu_k = (separation / sqrt 2) q_k, where q_1..q_K are
    orthonormal directions drawn at random, so every pair of means is exactly ``separation``
    within-class standard deviations apart (needs ``n_classes <= dim``).

    Returns
    -------
    LabelledSet
        ``X`` (n_classes * n_per_class, dim) float64, ``y`` int64 in 0..n_classes-1, grouped by
        class.
    """
    if int(n_per_class) < 1:
        raise ValueError(f"n_per_class must be at least 1, got {n_per_class}.")
    if int(n_classes) < 1:
        raise ValueError(f"n_classes must be at least 1, got {n_classes}.")
    if int(n_classes) > int(dim):
        raise ValueError(
            f"n_classes ({n_classes}) must not exceed dim ({dim}): the class means lie on "
            "orthonormal directions. Increase dim or lower n_classes."
        )
    if not np.isfinite(separation) or separation < 0:
        raise ValueError(f"separation must be a finite number >= 0, got {separation}.")
    rng = np.random.RandomState(seed)
    q, _ = np.linalg.qr(rng.standard_normal((dim, n_classes)))
    means = (separation / np.sqrt(2.0)) * q.T  # (n_classes, dim)
    X = rng.standard_normal((n_classes * n_per_class, dim)) + np.repeat(means, n_per_class, axis=0)
    y = np.repeat(np.arange(n_classes, dtype=np.int64), n_per_class)
    return LabelledSet(X, y)


def two_cubes(
    n_per_cube: int = 500,
    dim: int = 100,
    offset: float = 1.1,
    seed: int = 0,
) -> LabelledSet:
    """Davari et al.'s two cubes: U[-0.5, 0.5]^dim and the same cube shifted by ``offset * e1``.

    The paper uses ``n_per_cube=10000, dim=1000``; the defaults here are smaller so pages stay
    fast. The cubes are linearly separable along e1 whenever ``offset > 1``.

    Returns
    -------
    LabelledSet
        ``X`` (2 * n_per_cube, dim) float64, ``y`` 0 for the first cube and 1 for the shifted one.
    """
    if int(n_per_cube) < 1:
        raise ValueError(f"n_per_cube must be at least 1, got {n_per_cube}.")
    if int(dim) < 1:
        raise ValueError(f"dim must be at least 1, got {dim}.")
    rng = np.random.RandomState(seed)
    X = rng.uniform(-0.5, 0.5, size=(2 * n_per_cube, dim))
    X[n_per_cube:, 0] += offset
    y = np.repeat(np.array([0, 1], dtype=np.int64), n_per_cube)
    return LabelledSet(X, y)
