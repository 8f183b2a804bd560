"""CKA between two representations (one pair of layers)."""
from __future__ import annotations

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
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float)) or not 0 < sigma < float("inf"):
        raise RepresentationError(f"sigma must be a positive, finite number (a multiple of the median distance), not {sigma!r}.")
    return rbf_cka_of(*views(X, Y, debiased), float(sigma), debiased)


def rbf_cka_of(vx: LayerView, vy: LayerView, sigma: float = 1.0, debiased: bool = False) -> float:
    k, l = vx.rbf_kernel(sigma, debiased), vy.rbf_kernel(sigma, debiased)
    return float(cka_from_hsic((k * l).sum(), (k * k).sum(), (l * l).sum()))


def linear_cka_debiased(X, Y) -> float:
    """Linear CKA with the unbiased HSIC estimator: ``linear_cka(X, Y, debiased=True)``."""
    return linear_cka(X, Y, debiased=True)
