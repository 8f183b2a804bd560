"""Alignment measures from ReSi (Klabunde et al., ICLR 2025): distances after the best rotation or
permutation of one layer's features onto the other's, the mean cosine of examples after the best
rotation, and the correlation of matched neurons.

Conventions follow ReSi's (docs/theory.md §8.5): where the two layers differ in width, the narrower is
padded with zero columns; the orthogonal Procrustes distance is taken centred and at unit Frobenius
norm, the size-and-shape distance centred only, the permutation distance and the aligned cosine on the
layers as given. The Procrustes distances share the SVD of the cross product with the Procrustes angle
(:func:`.shape.procrustes_frames`).
"""
from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

from ..cka.linalg import thin_svd
from ..errors import RepresentationError
from .shape import aligned_frames, procrustes_frames, zero_padded
from .view import LayerView, views

#: A neuron whose spread across the examples is at most this fraction of its magnitude is constant
#: (the check of whole layers, ``check_not_constant``): centring leaves it round-off, not a signal.
CONSTANT_NEURON = 1e-12


# -------------------------------------------------------------------- Procrustes distances
def orthogonal_procrustes_of(vx: LayerView, vy: LayerView) -> float:
    """min_Q ||X~ - Y~ Q||_F over orthogonal Q, X~ and Y~ centred at unit Frobenius norm (Ding et al.
    2021's setup): sqrt(2 - 2 ||X~^T Y~||_*), taken as the norm of the residual itself, which is
    accurate near 0 where the formula's difference of two near-equal numbers is not."""
    fx, fy, _ = procrustes_frames(vx, vy)
    return float(np.linalg.norm(fx - fy))


def procrustes_size_and_shape_of(vx: LayerView, vy: LayerView) -> float:
    """min_Q ||X_c - Y_c Q||_F over orthogonal Q with X_c, Y_c centred but not rescaled (Williams et
    al. 2021's size-and-shape distance): sqrt(||X_c||^2 + ||Y_c||^2 - 2 ||X_c^T Y_c||_*). The best Q does
    not depend on the sizes, so it is the unit-norm layers' rotation with each side scaled back by its
    own norm."""
    fx, fy, _ = procrustes_frames(vx, vy)
    a, b = centred_norm(vx.raw), centred_norm(vy.raw)
    big = max(a, b)  # the residual in units of the larger norm: its squares stay clear of overflow
    return float(big * np.linalg.norm((a / big) * fx - (b / big) * fy))


def permutation_procrustes_of(vx: LayerView, vy: LayerView) -> float:
    """min_P ||X - Y P||_F over permutation matrices P of the (zero-padded) features, on the layers as
    given, neither centred nor rescaled (ReSi's convention). The best P maximises tr(X^T Y P), a linear
    assignment (Kuhn 1955)."""
    largest = max(float(np.abs(vx.raw).max()), float(np.abs(vy.raw).max()))
    exponent = int(np.frexp(largest)[1])  # one power of two for both sides: exact, keeps squares finite
    width = max(vx.raw.shape[1], vy.raw.shape[1])
    x, y = (zero_padded(np.ldexp(v.raw, -exponent), width) for v in (vx, vy))
    rows, cols = linear_sum_assignment(x.T @ y, maximize=True)
    return float(np.ldexp(np.linalg.norm(x[:, rows] - y[:, cols]), exponent))


def centred_norm(raw: np.ndarray) -> float:
    """||X - 1 mean(X)||_F in the layer's own units, taken at unit magnitude (no overflow at 1e200)."""
    centred = raw - raw.mean(axis=0)
    largest = float(np.abs(centred).max())
    return largest * float(np.linalg.norm(centred / largest)) if largest > 0 else 0.0


# -------------------------------------------------------------------- aligned cosine similarity
def aligned_cosine_of(vx: LayerView, vy: LayerView) -> float:
    """mean_i cos(x_i Q*, y_i) over the examples i, with Q* = argmin_Q ||X Q - Y||_F over orthogonal Q
    (the layers as given, zero-padded to one width; ReSi's convention). Examples that are the zero
    vector on either side have no cosine and are left out of the mean. Symmetric: the best rotation of
    Y onto X is Q*^T, which leaves every cosine as it is."""
    (x, x_rows), (y, y_rows) = _rows_as_given(vx), _rows_as_given(vy)
    live = np.any(x != 0, axis=1) & np.any(y != 0, axis=1)
    if not live.any():
        raise RepresentationError("aligned_cosine is undefined here: every example is the zero vector in X or in "
                                  "Y, so no cosine between them exists. Compare layers whose examples are not all "
                                  "zero.")
    fx, fy, _ = aligned_frames(x_rows, y_rows)
    cosines = np.sum(fx[live] * fy[live], axis=1) / (np.linalg.norm(x[live], axis=1) * np.linalg.norm(y[live], axis=1))
    return float(np.clip(cosines, -1.0, 1.0).mean())


def _rows_as_given(view: LayerView) -> tuple[np.ndarray, np.ndarray]:
    """The layer as given at unit magnitude, and the same in coordinates of its row space
    (:func:`_rows_in_own_basis`); per layer, computed once for all the pairs it is in."""
    def compute():
        x = _unit_magnitude(view.raw)
        return x, _rows_in_own_basis(x)
    return view._cached("rows_as_given", compute)


def _unit_magnitude(raw: np.ndarray) -> np.ndarray:
    """raw times the power of two that brings its largest magnitude into [0.5, 1) (exact)."""
    return np.ldexp(raw, -int(np.frexp(float(np.abs(raw).max()))[1]))


def _rows_in_own_basis(x: np.ndarray) -> np.ndarray:
    """X in coordinates of its row space, U diag(s) for X = U diag(s) V^T, when it has more features than
    examples: the rows keep their lengths and inner products and the best rotation drops V, so the
    Procrustes problem is n x n instead of d x d."""
    if x.shape[1] <= x.shape[0]:
        return x
    u, s, _ = thin_svd(x)
    return u * s


# -------------------------------------------------------------------- correlation match (Li et al. 2015)
def neuron_correlations(vx: LayerView, vy: LayerView) -> np.ndarray:
    """Pearson correlations across the examples of every neuron (column) of X that varies with every
    neuron of Y that varies. A constant neuron (a dead unit) has no correlation with anything and is
    left out. ReSi gives it 0 with every neuron (the cosine of a zero vector), so there a layer with dead
    units matches itself below 1, and the self-comparison check would report a pairing bug."""
    return _live_standardised(vx.raw).T @ _live_standardised(vy.raw)


def _live_standardised(raw: np.ndarray) -> np.ndarray:
    """The columns that vary, each centred at unit Euclidean norm. A layer that passed the view's check
    has at least one: its largest spread is above the same fraction of its largest magnitude."""
    centred = raw - raw.mean(axis=0)
    spread = np.abs(centred).max(axis=0)
    live = spread > CONSTANT_NEURON * np.abs(raw).max(axis=0)
    scaled = centred[:, live] / spread[live]  # at unit magnitude first: no overflow in the norms
    return scaled / np.linalg.norm(scaled, axis=0)


def hard_correlation_match_of(vx: LayerView, vy: LayerView) -> float:
    """Mean correlation of the neurons matched one to one so as to maximise the summed correlation
    (Li et al. 2015's bipartite matching, a linear assignment): as many pairs as the narrower layer
    has neurons that vary, the extra neurons of the wider layer unmatched."""
    correlations = neuron_correlations(vx, vy)
    rows, cols = linear_sum_assignment(correlations, maximize=True)
    return float(correlations[rows, cols].mean())


def soft_correlation_match_of(vx: LayerView, vy: LayerView) -> float:
    """(mean_i max_j c_ij + mean_j max_i c_ij) / 2: each neuron's best correlate on the other side, with no
    one-to-one constraint, averaged over both directions to make it symmetric (ReSi's convention)."""
    correlations = neuron_correlations(vx, vy)
    return float((correlations.max(axis=1).mean() + correlations.max(axis=0).mean()) / 2)


# -------------------------------------------------------------------- on arrays
def orthogonal_procrustes(X, Y) -> float:
    """Orthogonal Procrustes distance (Ding et al. 2021; Klabunde et al. 2025): min_Q ||X~ - Y~ Q||_F =
    sqrt(2 - 2 ||X~^T Y~||_*) for X~, Y~ centred at unit Frobenius norm; 0 (same shape) to sqrt(2)."""
    return orthogonal_procrustes_of(*views(X, Y))


def procrustes_size_and_shape(X, Y) -> float:
    """Procrustes size-and-shape distance (Williams et al. 2021): min_Q ||X_c - Y_c Q||_F over orthogonal
    Q with X_c, Y_c centred but not rescaled, in the layers' own units (no upper bound)."""
    return procrustes_size_and_shape_of(*views(X, Y))


def permutation_procrustes(X, Y) -> float:
    """Permutation Procrustes distance (Klabunde et al. 2025): min_P ||X - Y P||_F over permutations P of
    the features, the narrower layer zero-padded, on the layers as given (no upper bound)."""
    return permutation_procrustes_of(*views(X, Y))


def aligned_cosine(X, Y) -> float:
    """Aligned cosine similarity (Hamilton et al. 2016; Klabunde et al. 2025): the mean cosine between
    each example of X Q* and of Y after the best rotation Q* of X onto Y (orthogonal Procrustes)."""
    return aligned_cosine_of(*views(X, Y))


def hard_correlation_match(X, Y) -> float:
    """Hard correlation match (Li et al. 2015): mean correlation of one-to-one matched neurons."""
    return hard_correlation_match_of(*views(X, Y))


def soft_correlation_match(X, Y) -> float:
    """Soft correlation match (Li et al. 2015): mean correlation of each neuron with its best correlate
    on the other side, averaged over both directions."""
    return soft_correlation_match_of(*views(X, Y))
