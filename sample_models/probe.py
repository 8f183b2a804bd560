"""A fast, deterministic linear probe: closed-form ridge regression to one-hot targets.

Features are standardised with the training mean and standard deviation (constant features are
set to 0), a ridge regression onto the centred one-hot labels is solved in closed form -- in the
d x d primal when d <= n, in the n x n dual otherwise -- and the predicted class is the argmax.
No iterations, no random state: the same inputs always give the same answer, in a few
milliseconds for the digits sizes.
"""
from __future__ import annotations

import numpy as np

__all__ = ["LinearProbe", "probe_accuracy"]


def _as_2d(Z, name: str) -> np.ndarray:
    if hasattr(Z, "detach"):
        Z = Z.detach().cpu().numpy()
    Z = np.asarray(Z)
    if Z.dtype == object or not np.issubdtype(Z.dtype, np.number):
        raise ValueError(f"{name} must be a numeric array, got dtype {Z.dtype}.")
    if Z.ndim < 1:
        raise ValueError(f"{name} must have one row per example, got a scalar.")
    Z = Z.reshape(Z.shape[0], -1).astype(np.float64, copy=False)
    if not np.isfinite(Z).all():
        raise ValueError(f"{name} contains NaN or Inf; remove or replace those values first.")
    return Z


def _as_labels(y, n: int, name: str) -> np.ndarray:
    if hasattr(y, "detach"):
        y = y.detach().cpu().numpy()
    y = np.asarray(y).reshape(-1)
    if y.shape[0] != n:
        raise ValueError(f"{name} has {y.shape[0]} labels but the features have {n} rows.")
    return y


class LinearProbe:
    """Ridge-regression classifier on standardised features.

    Parameters
    ----------
    ridge : float
        Regularisation relative to the number of training rows: the penalty is
        ``ridge * n_train * ||W||^2`` on standardised features (default 1e-3).
    """

    def __init__(self, ridge: float = 1e-3):
        if not ridge > 0:
            raise ValueError(f"ridge must be positive, got {ridge}.")
        self.ridge = float(ridge)

    def fit(self, Z, y) -> "LinearProbe":
        Z = _as_2d(Z, "Z_train")
        y = _as_labels(y, Z.shape[0], "y_train")
        n, d = Z.shape
        if n < 2:
            raise ValueError("Z_train needs at least 2 rows to fit a probe.")
        self.classes_, yi = np.unique(y, return_inverse=True)
        self.mean_ = Z.mean(axis=0)
        std = Z.std(axis=0)
        # A feature is constant when its spread is at the rounding level of its mean.
        varies = std > 1e-12 * np.abs(self.mean_)
        self.scale_ = np.where(varies, 1.0 / np.where(varies, std, 1.0), 0.0)
        Zs = (Z - self.mean_) * self.scale_
        Y = np.zeros((n, self.classes_.size))
        Y[np.arange(n), yi] = 1.0
        self.intercept_ = Y.mean(axis=0)
        Yc = Y - self.intercept_
        lam = self.ridge * n
        import scipy.linalg  # imported here: keeps `import sample_models` light

        if d <= n:
            A = Zs.T @ Zs
            A.flat[:: d + 1] += lam
            W = scipy.linalg.solve(A, Zs.T @ Yc, assume_a="pos", check_finite=False)
        else:
            K = Zs @ Zs.T
            K.flat[:: n + 1] += lam
            W = Zs.T @ scipy.linalg.solve(K, Yc, assume_a="pos", check_finite=False)
        self.coef_ = W  # (d, n_classes) on standardised features
        return self

    def decision_function(self, Z) -> np.ndarray:
        Z = _as_2d(Z, "Z")
        if Z.shape[1] != self.mean_.shape[0]:
            raise ValueError(
                f"Z has {Z.shape[1]} features but the probe was fitted on {self.mean_.shape[0]}."
            )
        return ((Z - self.mean_) * self.scale_) @ self.coef_ + self.intercept_

    def predict(self, Z) -> np.ndarray:
        return self.classes_[np.argmax(self.decision_function(Z), axis=1)]

    def score(self, Z, y) -> float:
        pred = self.predict(Z)
        y = _as_labels(y, pred.shape[0], "y")
        return float(np.mean(pred == y))


def probe_accuracy(Z_train, y_train, Z_test, y_test, *, ridge: float = 1e-3) -> float:
    """Test accuracy of a :class:`LinearProbe` fitted on ``(Z_train, y_train)``.

    ``Z_*`` are (n, ...) arrays or tensors, flattened per example. Deterministic; about a
    millisecond for (1438, 64) training features on one core.
    """
    return LinearProbe(ridge).fit(Z_train, y_train).score(Z_test, y_test)
