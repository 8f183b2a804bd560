"""Statistic-difference measures (as in ReSi, Klabunde et al. 2025): one summary number per layer,
compared by absolute difference. The statistics describe the layer as given (``LayerView.raw``):
where it sits, how large it is, how its examples spread, so most of them are not invariant to a
translation or a change of scale; each is computed once per layer and kept by its view.
"""
from __future__ import annotations

import numpy as np
import torch

from ..cka.kernels import scaled_to_unit
from ..errors import RepresentationError
from .view import LayerView, measure_views


def magnitude(view: LayerView) -> float:
    """m(X) = ||(1/n) sum_i x_i||: the length of the mean example (ReSi's magnitude)."""
    return view._cached("magnitude", lambda: float(np.linalg.norm(view.raw.mean(axis=0))))


def concentricity(view: LayerView) -> float:
    """c(X) = (1/n) sum_i cos(x_i, x_bar), x_bar the mean example (ReSi's concentricity)."""
    def compute():
        directions = view.row_directions("concentricity_difference")
        rows = scaled_to_unit(torch.from_numpy(view.raw)).numpy()  # x_bar's direction, clear of under/overflow
        mean = rows.mean(axis=0)
        if np.linalg.norm(mean) <= 1e-12 * np.linalg.norm(rows, axis=1).mean():
            raise RepresentationError(
                f"concentricity_difference: the mean example of {view.name} is zero (a centred layer?), so the "
                "cosine to it is undefined; pass the layer uncentred, as the network produced it.")
        return float(np.mean(directions @ (mean / np.linalg.norm(mean))))
    return view._cached("concentricity", compute)


def uniformity(view: LayerView, t: float) -> float:
    """u(X) = log((1/n^2) sum_ij exp(-t ||x_i - x_j||^2)) over all n^2 pairs, the diagonal included, on the
    rows as given (Wang & Isola 2020, without their normalisation to the unit sphere, as in ReSi).
    In [-log n, 0]: the n diagonal terms are exp(0) = 1, so the sum never underflows to log 0."""
    def compute():
        scaled = view.distances() / view.unit_scale()
        with np.errstate(over="ignore", under="ignore"):  # far pairs add exp(-inf) = 0, as they should
            return float(np.log(np.exp(-t * (scaled * scaled)).sum()) - 2.0 * np.log(view.n))
    return view._cached(("uniformity", t), compute)


def magnitude_difference_of(vx: LayerView, vy: LayerView) -> float:
    """|m(X) - m(Y)|, m the length of the mean example, not normalised (ReSi)."""
    return abs(magnitude(vx) - magnitude(vy))


def concentricity_difference_of(vx: LayerView, vy: LayerView) -> float:
    """|c(X) - c(Y)|, c the mean cosine similarity of the examples to the mean example (ReSi)."""
    return abs(concentricity(vx) - concentricity(vy))


def uniformity_difference_of(vx: LayerView, vy: LayerView, t: float = 2.0) -> float:
    """|u(X) - u(Y)|, u the uniformity log E exp(-t ||x_i - x_j||^2) (Wang & Isola 2020; ReSi, t = 2)."""
    if not t > 0:
        raise RepresentationError(f"uniformity_difference: t must be positive (ReSi and Wang & Isola use 2), "
                                  f"got {t!r}.")
    return abs(uniformity(vx, float(t)) - uniformity(vy, float(t)))


def magnitude_difference(X, Y) -> float:
    """Difference of the lengths of the two layers' mean examples; 0 = equally far from the origin."""
    return magnitude_difference_of(*measure_views(X, Y, "magnitude_difference"))


def concentricity_difference(X, Y) -> float:
    """Difference of the two layers' mean cosine similarity of the examples to their mean example."""
    return concentricity_difference_of(*measure_views(X, Y, "concentricity_difference"))


def uniformity_difference(X, Y, t: float = 2.0) -> float:
    """Difference of the two layers' uniformity log E exp(-t ||x_i - x_j||^2) (Wang & Isola 2020)."""
    return uniformity_difference_of(*measure_views(X, Y, "uniformity_difference"), t)
