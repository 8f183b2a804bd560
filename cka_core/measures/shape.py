"""The shape family: the Procrustes angle and the shape metric with partial whitening (Williams et al.
2021), distances between layers up to rotation.
"""
from __future__ import annotations
import numpy as np
from ..cka.linalg import thin_svd
from ..errors import RepresentationError
from .view import LayerView, views


def unit_coordinates(view: LayerView) -> np.ndarray:
    """The centred layer at unit Frobenius norm, X~ (n x d); for a layer wider than it has examples, its
    principal coordinates U diag(s) instead (X~ = U diag(s) V^T without V^T, n x rank from the cached
    ``spectrum``). Both have the same rows' lengths and inner products, so the same Procrustes problem
    and nuclear norms (V drops out of both), on at most n columns."""
    if view.xc.shape[1] <= view.n:
        return view.xc / np.linalg.norm(view.xc)
    u, s = view.spectrum()
    return u * s


def procrustes_nuclear_norm(vx: LayerView, vy: LayerView) -> float:
    """||X~^T Y~||_*, the sum of the singular values of the cross product of :func:`unit_coordinates`."""
    return float(thin_svd(unit_coordinates(vx).T @ unit_coordinates(vy), compute_uv=False).sum())


def procrustes_frames(vx: LayerView, vy: LayerView) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Both layers' :func:`unit_coordinates` turned by :func:`aligned_frames`: (X~ W, Y~ Z, sigma), with
    ||X~ W - Y~ Z||_F the orthogonal Procrustes distance and sum(sigma) the nuclear norm
    ||X~^T Y~||_* of :func:`procrustes_nuclear_norm`."""
    return aligned_frames(unit_coordinates(vx), unit_coordinates(vy))


def aligned_frames(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """x and y (same rows) zero-padded to one width and each turned by its side of the SVD
    x^T y = W diag(sigma) Z^T: (x W, y Z, sigma). The best rotation of one onto the other,
    Q* = argmin_Q ||x Q - y||_F = W Z^T (Schonemann 1966), is then the identity: row i of x Q* against
    row i of y is row i of x W against row i of y Z, and sum(sigma) = ||x^T y||_*."""
    width = max(x.shape[1], y.shape[1])
    x, y = zero_padded(x, width), zero_padded(y, width)
    w, sigma, zt = thin_svd(x.T @ y)
    return x @ w, y @ zt.T, sigma


def zero_padded(x: np.ndarray, width: int) -> np.ndarray:
    """x with zero columns appended up to ``width`` (ReSi's convention for layers of unequal width)."""
    return np.pad(x, ((0, 0), (0, width - x.shape[1])))


def procrustes_angle_of(vx: LayerView, vy: LayerView) -> float:
    """arccos ||X~^T Y~||_* with X~, Y~ centred and scaled to unit Frobenius norm."""
    return float(np.arccos(np.clip(procrustes_nuclear_norm(vx, vy), -1.0, 1.0)))


#: Whitening gives every direction of the column space the weight 1 - alpha however small its
#: variance, so a direction that is only round-off (what centring a far-translated copy leaves in
#: the null directions of a layer with dead units, ~1e-12 of the largest singular value) would count
#: as much as a real one. Directions below this fraction of the largest singular value do not count.
WHITENING_FLOOR = 1e-8


def above_whitening_floor(u: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The directions of a spectrum (U, s) above :data:`WHITENING_FLOOR`: those a measure that weighs every
    direction alike (whitening, a rank) may count."""
    keep = s > WHITENING_FLOOR * s[0]
    return u[:, keep], s[keep]


def partial_whitening_weights(s: np.ndarray, alpha: float) -> np.ndarray:
    """Singular values of the partially whitened layer, a_i = alpha s_i + (1 - alpha) (Williams et
    al. 2021, eq. 6 on the column space: X (alpha I + (1 - alpha) (X^T X)^(-1/2)) = U diag(a) V^T for
    X = U diag(s) V^T), with X scaled so that its singular values have root mean square 1: then
    alpha s_i and 1 - alpha are on one scale, and alpha = 0.5 sits midway whatever the data's units.
    alpha = 1 keeps the layer, alpha = 0 whitens it."""
    return alpha * s / np.sqrt(np.mean(s ** 2)) + (1.0 - alpha)


def shape_distance_of(vx: LayerView, vy: LayerView, alpha: float = 0.5) -> float:
    """Angular shape distance with partial whitening (Williams et al. 2021, eqs. 4 and 6):
    arccos(||phi(X)^T phi(Y)||_* / (||phi(X)||_F ||phi(Y)||_F)) with phi(X) = U_x diag(a_x) V_x^T,
    i.e. arccos(||diag(a_x) U_x^T U_y diag(a_y)||_* / (||a_x|| ||a_y||)) (V_x, V_y drop out of the
    nuclear norm). alpha = 1: the Procrustes angle; alpha = 0: arccos of the summed canonical
    correlations over sqrt(rank_x rank_y) (mean CCA at equal ranks)."""
    if not 0.0 <= alpha <= 1.0:
        raise RepresentationError(f"alpha must be in [0, 1] (0: whitened, CCA; 1: Procrustes), got {alpha!r}.")
    (ux, sx), (uy, sy) = (above_whitening_floor(*v.spectrum()) for v in (vx, vy))
    ax, ay = partial_whitening_weights(sx, alpha), partial_whitening_weights(sy, alpha)
    nuclear = float(np.linalg.svd(ax[:, None] * (ux.T @ uy) * ay[None, :], compute_uv=False).sum())
    return float(np.arccos(np.clip(nuclear / (np.linalg.norm(ax) * np.linalg.norm(ay)), -1.0, 1.0)))


def procrustes_angle(X, Y) -> float:
    """Angular orthogonal-Procrustes distance (Williams et al. 2021; Ding et al. 2021):
    arccos ||X~^T Y~||_* with X~, Y~ centred and scaled to unit Frobenius norm; 0 = same shape."""
    return procrustes_angle_of(*views(X, Y))


def shape_distance(X, Y, alpha: float = 0.5) -> float:
    """Generalized shape metric (Williams et al. 2021): the angular Procrustes distance between the
    two layers after partial whitening with ``alpha`` (1: the Procrustes angle, 0: whitened, the
    angle of mean CCA). A metric for every alpha: each layer is mapped on its own, then compared
    by an angle between shapes, so the triangle inequality holds (docs/theory.md §8.1)."""
    return shape_distance_of(*views(X, Y), alpha)
