"""CKA between two representations (one pair of layers)."""
from __future__ import annotations

import numpy as np

from ..cka.matrix import cka_matrix
from ..errors import RepresentationError
from .view import views
from ..cka.kernels import cka_from_hsic
from .view import LayerView


def linear_cka(X, Y, *, debiased: bool = False) -> float:
    """Linear CKA (Kornblith et al. 2019, eq. 5): ||Y_c^T X_c||_F^2 / (||X_c^T X_c||_F ||Y_c^T Y_c||_F).

    ``debiased=True`` replaces HSIC by the unbiased estimator of Song et al. (2012).
    The cheaper exact form (feature space or Gram) is chosen from the shapes.
    """
    return float(cka_matrix({"X": X}, {"Y": Y}, debiased=debiased)[0, 0])


def rbf_cka(X, Y, *, sigma: float = 1.0, debiased: bool = False) -> float:
    """CKA with Gaussian kernels, bandwidth ``sigma`` times the median pairwise distance.

    Kornblith et al.'s convention: bw^2 = sigma^2 * median of all n^2 squared distances,
    computed for X and for Y separately.
    """
    return rbf_cka_of(*views(X, Y, debiased), _checked_sigma(sigma), debiased)


def rbf_cka_curve(X, Y, sigmas, *, debiased: bool = False) -> np.ndarray:
    """:func:`rbf_cka` at each bandwidth of ``sigmas``: each layer's distances and their median are computed
    once for all of them, and one pair of kernels is held at a time (a kept kernel per bandwidth would cost
    n^2 values each)."""
    vx, vy = views(X, Y, debiased)
    return np.array([_cka_of_kernels(vx.rbf_kernel(s, debiased, keep=False), vy.rbf_kernel(s, debiased, keep=False))
                     for s in map(_checked_sigma, sigmas)])


def _checked_sigma(sigma) -> float:
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float)) or not 0 < sigma < float("inf"):
        raise RepresentationError(f"sigma must be a positive, finite number (a multiple of the median distance), not {sigma!r}.")
    return float(sigma)


def rbf_cka_of(vx: LayerView, vy: LayerView, sigma: float = 1.0, debiased: bool = False) -> float:
    return _cka_of_kernels(vx.rbf_kernel(sigma, debiased), vy.rbf_kernel(sigma, debiased))


def _cka_of_kernels(k, l) -> float:
    """CKA from two centred (or U-centred) kernels: <K, L> / (||K|| ||L||)."""
    return float(cka_from_hsic((k * l).sum(), (k * k).sum(), (l * l).sum()))


def linear_cka_debiased(X, Y) -> float:
    """Linear CKA with the unbiased HSIC estimator: ``linear_cka(X, Y, debiased=True)``."""
    return linear_cka(X, Y, debiased=True)
