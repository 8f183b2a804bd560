"""Why one cell of a linear-CKA heatmap has its value.

Three views of a pair of representations X (n, d_x) and Y (n, d_y) of the same examples:

* the entries of the two centred Gram matrices K = X_c X_c^T and L = Y_c Y_c^T against each other:
  linear CKA is the cosine between K and L seen as vectors of R^{n^2} (:func:`gram_scatter`);
* both eigenspectra: the eigenvalues lambda of K (= squared singular values of X_c), i.e. the
  variance along each principal component times n (:func:`eigenspectrum`);
* the eigen form of CKA (docs/theory.md §1.4), which splits the value into principal-component pairs
  (:func:`pc_contributions`)::

      CKA = sum_ij  lambda_X^i lambda_Y^j <u_X^i, u_Y^j>^2 / sqrt(sum_i (lambda_X^i)^2 sum_j (lambda_Y^j)^2)

  with u the unit eigenvectors of K and L. Every term is >= 0, so the matrix of terms says which
  pairs of components carry the value; the squared eigenvalues make high-variance components dominate.

All of it is the *biased* linear CKA of Kornblith et al. (2019); pure numpy in float64, features
centred before any product.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import RepresentationError
from .linalg import thin_svd
from .validation import as_matrix, check_rows

__all__ = [
    "GramScatter",
    "PCContributions",
    "centred",
    "centred_gram",
    "eigenspectrum",
    "participation_ratio",
    "pc_contributions",
    "gram_scatter",
]


def centred(X, name: str = "X") -> np.ndarray:
    """X_c = H X in float64 (validated, flattened per example)."""
    x = as_matrix(X, name).to("cpu").numpy().astype(np.float64, copy=False)
    xc = x - x.mean(axis=0, keepdims=True)
    scale = max(float(np.abs(x).max()), 1.0)
    if float(np.abs(xc).max()) <= 1e-12 * scale:
        raise RepresentationError(
            f"{name} is constant across examples (zero variance after centring), so CKA is undefined (0/0); "
            "pick another layer."
        )
    return xc


def centred_gram(X) -> np.ndarray:
    """K = X_c X_c^T, the centred linear Gram matrix (n, n)."""
    xc = centred(X)
    return xc @ xc.T


def _svd(xc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Left singular vectors and singular values of X_c, numerical rank only (descending)."""
    u, s, _ = thin_svd(xc)
    if s.size == 0 or s[0] == 0.0:
        return u[:, :0], s[:0]
    rank = int((s > s[0] * max(xc.shape) * np.finfo(np.float64).eps).sum())
    return u[:, :rank], s[:rank]


def eigenspectrum(X) -> np.ndarray:
    """Non-zero eigenvalues of K = X_c X_c^T in descending order (squared singular values of X_c;
    the eigenvalues of the covariance times n)."""
    return _svd(centred(X))[1] ** 2


def participation_ratio(eigenvalues: np.ndarray) -> float:
    """PR = (sum lambda)^2 / sum lambda^2: the effective number of dimensions (1 .. rank)."""
    lam = np.asarray(eigenvalues, dtype=np.float64)
    return float(lam.sum() ** 2 / np.sum(lam**2))


@dataclass(frozen=True)
class PCContributions:
    """The eigen form of linear CKA for one pair of representations.

    ``matrix[i, j]`` is the share of CKA carried by principal component i of X with component j
    of Y (components in decreasing order of variance); ``matrix.sum() == cka``.
    """

    matrix: np.ndarray
    eigenvalues_x: np.ndarray
    eigenvalues_y: np.ndarray
    cka: float

    def top(self, k: int) -> np.ndarray:
        """The (k, k) block of the leading components (smaller if a side has lower rank)."""
        return self.matrix[:k, :k]

    def top_sum(self, k: int) -> float:
        return float(self.top(k).sum())

    def leading_pairs(self, count: int = 5) -> list[tuple[int, int, float]]:
        """The ``count`` largest terms as (i, j, value), 0-based component indices."""
        flat = np.argsort(self.matrix, axis=None)[::-1][:count]
        rows, cols = np.unravel_index(flat, self.matrix.shape)
        return [(int(i), int(j), float(self.matrix[i, j])) for i, j in zip(rows, cols)]


def pc_contributions(X, Y) -> PCContributions:
    """Split linear CKA(X, Y) into principal-component pairs (eigen form, Kornblith et al. 2019).

    ``matrix[i, j] = lambda_X^i lambda_Y^j <u_X^i, u_Y^j>^2 / sqrt(sum lambda_X^2 sum lambda_Y^2)``
    where lambda, u are the eigenvalues and unit eigenvectors of the centred Gram matrices; the
    terms are non-negative and sum to linear CKA. Cost: one thin SVD per side, O(n d min(n, d)).
    """
    xc, yc = centred(X, "X"), centred(Y, "Y")
    check_rows(xc.shape[0], yc.shape[0], debiased=False)
    ux, sx = _svd(xc)
    uy, sy = _svd(yc)
    lam_x, lam_y = sx**2, sy**2
    overlap = ux.T @ uy  # <u_X^i, u_Y^j>
    norm = np.sqrt(np.sum(lam_x**2) * np.sum(lam_y**2))
    matrix = lam_x[:, None] * lam_y[None, :] * overlap**2 / norm
    return PCContributions(matrix, lam_x, lam_y, float(matrix.sum()))


@dataclass(frozen=True)
class GramScatter:
    """Entries (i <= j) of the two centred Gram matrices, each divided by its Frobenius norm, so
    that linear CKA is the cosine between the full vectors; subsampled for plotting."""

    k: np.ndarray
    l: np.ndarray
    rows: np.ndarray
    cols: np.ndarray
    n_entries: int  # how many entries i <= j exist (before subsampling)
    cka: float

    @property
    def diagonal(self) -> np.ndarray:
        return self.rows == self.cols


def gram_scatter(X, Y, *, max_points: int = 5000, seed: int = 0) -> GramScatter:
    """The entries K_ij, L_ij (i <= j) of the normalised centred Grams, at most ``max_points``
    of them (uniform without replacement, seeded), and linear CKA = <K, L> / (|K| |L|)."""
    if max_points < 1:
        raise RepresentationError(f"max_points must be at least 1, not {max_points!r}.")
    xc, yc = centred(X, "X"), centred(Y, "Y")
    n = check_rows(xc.shape[0], yc.shape[0], debiased=False)
    k, l = xc @ xc.T, yc @ yc.T
    k /= np.linalg.norm(k)
    l /= np.linalg.norm(l)
    cka = float(np.sum(k * l))
    rows, cols = np.triu_indices(n)
    total = rows.size
    if total > max_points:
        pick = np.sort(np.random.default_rng(seed).choice(total, size=max_points, replace=False))
        rows, cols = rows[pick], cols[pick]
    return GramScatter(k[rows, cols], l[rows, cols], rows, cols, total, cka)
