"""Closed form of linear CKA under subset translation (Davari et al. 2023, Thm 1, general form).

X' = X + c * t v^T, where t is the 0/1 indicator of the moved rows and v a unit direction.
With X_c = H X, t_c = H t, A = X_c^T X_c, a = X_c^T t_c and T = ||t_c||^2 = n rho (1 - rho):

    CKA(c) = (||A||^2 + 2c v^T A a + c^2 ||a||^2)
             / (||A|| sqrt(||A||^2 + 4c v^T A a + c^2 (2||a||^2 + 2(a.v)^2 + 2T v^T A v)
                           + 4c^3 T (a.v) + c^4 T^2))

and CKA -> ||a||^2 / (T ||A||) = rho (1 - rho) ||mu_moved - mu_rest||^2 / ||Sigma||_F as c -> inf,
whatever v is (docs/theory.md §3). One O(n d min(n, d)) pass gives six scalars; every
value of c then costs O(1), so a page can draw the whole curve at once.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import RepresentationError
from ..cka.kernels import centre_features
from ..cka.validation import as_matrix, check_not_constant, check_rows


@dataclass(frozen=True)
class TranslationTerms:
    """The scalars of the closed form: ||A||_F, v^T A a, ||a||^2, a.v, v^T A v, T."""

    norm_a: float
    v_a_a: float
    a_sq: float
    a_v: float
    v_a_v: float
    t: float

    @property
    def limit(self) -> float:
        """lim_{c -> inf} CKA(c) = ||a||^2 / (T ||A||); 1.0 when no row or every row moves (T = 0)."""
        return _limit(self.a_sq, self.t, self.norm_a)


def _limit(a_sq: float, t: float, norm_a: float) -> float:
    return a_sq / (t * norm_a) if t > 0 else 1.0


def _moved_mask(moved, n: int) -> np.ndarray:
    mask = np.asarray(moved.cpu() if isinstance(moved, torch.Tensor) else moved)
    if mask.dtype != bool or mask.shape != (n,):
        raise RepresentationError(
            f"moved must be a boolean mask with one entry per example (shape ({n},)), "
            f"got dtype {mask.dtype} and shape {mask.shape}."
        )
    return mask


def _column(direction):
    """A direction given as a flat vector, as a (d, 1) column for validation."""
    return direction.reshape(-1, 1) if isinstance(direction, torch.Tensor) else np.asarray(direction).reshape(-1, 1)


def _gram_norm(xc: torch.Tensor) -> float:
    """||X_c^T X_c||_F, through the smaller of the d x d and n x n products (equal norms)."""
    product = xc.T @ xc if xc.shape[1] <= xc.shape[0] else xc @ xc.T
    return float(torch.linalg.matrix_norm(product))


def translation_terms(X, moved, direction) -> TranslationTerms:
    """One pass over X: the six scalars the closed form needs."""
    x = as_matrix(X, "X")
    n = check_rows(x.shape[0], x.shape[0], debiased=False)
    xc = centre_features(x)
    check_not_constant(xc, x, "X")
    mask = _moved_mask(moved, n)
    v = as_matrix(_column(direction), "direction").to(device=xc.device, dtype=torch.float64).reshape(-1)
    if v.shape[0] != xc.shape[1]:
        raise RepresentationError(f"direction has {v.shape[0]} entries but X has {xc.shape[1]} features.")
    v_norm = float(torch.linalg.vector_norm(v))
    if not v_norm > 0:
        raise RepresentationError("direction is the zero vector; pass a non-zero direction to translate along.")
    v = v / v_norm
    t = torch.from_numpy(mask.astype(np.float64)).to(xc.device)
    t_c = t - t.mean()
    a = xc.T @ t_c
    xv = xc @ v
    return TranslationTerms(
        norm_a=_gram_norm(xc),
        v_a_a=float(xv @ (xc @ a)),
        a_sq=float(a @ a),
        a_v=float(a @ v),
        v_a_v=float(xv @ xv),
        t=float(t_c @ t_c),
    )


def translation_cka_from_terms(terms: TranslationTerms, c):
    """CKA(c) from the precomputed scalars; c a scalar or an array."""
    c_arr = np.asarray(c, dtype=np.float64)
    if not np.all(np.isfinite(c_arr)):
        raise RepresentationError("c must be finite; use translation_cka_limit for c -> infinity.")
    a2 = terms.norm_a**2
    numerator = a2 + 2 * c_arr * terms.v_a_a + c_arr**2 * terms.a_sq
    inside = (
        a2
        + 4 * c_arr * terms.v_a_a
        + c_arr**2 * (2 * terms.a_sq + 2 * terms.a_v**2 + 2 * terms.t * terms.v_a_v)
        + 4 * c_arr**3 * terms.t * terms.a_v
        + c_arr**4 * terms.t**2
    )
    value = numerator / (terms.norm_a * np.sqrt(np.maximum(inside, 0.0)))
    return float(value) if np.ndim(c) == 0 else value


def translation_cka(X, moved, direction, c):
    """Linear CKA between X and X with rows ``moved`` translated by c * direction / ||direction||.

    ``c`` may be a scalar (returns a float) or an array (returns an array of the same shape).
    """
    return translation_cka_from_terms(translation_terms(X, moved, direction), c)


def translation_cka_limit(X, moved) -> float:
    """lim_{c -> inf} of translation_cka: rho (1 - rho) ||mu_moved - mu_rest||^2 / ||Sigma||_F.

    Equal to linear CKA between X and the membership indicator of the moved rows; it does
    not depend on the direction. 1.0 when no row or every row moves (a global translation).
    """
    x = as_matrix(X, "X")
    n = check_rows(x.shape[0], x.shape[0], debiased=False)
    xc = centre_features(x)
    check_not_constant(xc, x, "X")
    mask = _moved_mask(moved, n)
    if mask.all() or not mask.any():
        return 1.0
    t = torch.from_numpy(mask.astype(np.float64)).to(xc.device)
    t_c = t - t.mean()
    a = xc.T @ t_c
    return _limit(float(a @ a), float(t_c @ t_c), _gram_norm(xc))
