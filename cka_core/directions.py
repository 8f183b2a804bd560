"""Which rows move and along which direction: the manipulations of the pitfall pages.

Each function returns a unit direction (or a boolean mask) and raises RepresentationError
when the request has no answer (e.g. a full-rank next layer has no null space).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .errors import RepresentationError


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def random_direction(dim: int, seed: int = 0) -> np.ndarray:
    """A uniformly random unit vector."""
    return _unit(np.random.default_rng(seed).standard_normal(dim))


def top_principal_direction(X: np.ndarray) -> np.ndarray:
    """The first principal axis of X (largest-variance direction), sign fixed for reproducibility."""
    xc = np.asarray(X, dtype=np.float64) - np.mean(X, axis=0)
    _, _, vt = np.linalg.svd(xc, full_matrices=False)
    v = vt[0]
    return v if v[np.argmax(np.abs(v))] > 0 else -v


def null_space_basis(W: np.ndarray, tol: float = 1e-10) -> np.ndarray:
    """Orthonormal basis (d, k) of {v : W v = 0} for W of shape (out, d)."""
    W = np.atleast_2d(np.asarray(W, dtype=np.float64))
    _, s, vt = np.linalg.svd(W, full_matrices=True)
    rank = int((s > tol * max(W.shape) * (s[0] if s.size else 0.0)).sum())
    return vt[rank:].T


def null_space_direction(W: np.ndarray, seed: int = 0, *, what: str = "the next layer") -> np.ndarray:
    """A random unit vector v with W v = 0: moving along it leaves W x unchanged."""
    basis = null_space_basis(W)
    if basis.shape[1] == 0:
        raise RepresentationError(
            f"{what} (weight {W.shape[0]}x{W.shape[1]}) has full column rank, so no direction leaves its "
            "output unchanged; pick a layer whose next layer has fewer outputs than inputs (e.g. the last "
            "hidden layer, read out by 10 logits)."
        )
    coefficients = np.random.default_rng(seed).standard_normal(basis.shape[1])
    return _unit(basis @ coefficients)


def next_linear(model: nn.Module, layer: str) -> nn.Linear:
    """The first nn.Linear registered after module ``layer`` (its own submodules excluded).

    For sequential models (the zoo's MLPs) this is the layer that reads ``layer``'s output.
    """
    names = [name for name, _ in model.named_modules()]
    if layer not in names:
        raise RepresentationError(f"{layer!r} is not a module of this model.")
    modules = dict(model.named_modules())
    for name in names[names.index(layer) + 1 :]:
        if name.startswith(layer + "."):
            continue
        if isinstance(modules[name], nn.Linear):
            return modules[name]
    raise RepresentationError(f"no linear layer follows {layer!r}: it is the network's output.")


def next_layer_weight(model: nn.Module, layer: str) -> np.ndarray:
    """Weight matrix (out, d) of the linear layer that reads ``layer``'s output."""
    with torch.no_grad():
        return next_linear(model, layer).weight.detach().double().cpu().numpy()


def moved_one_point(n: int, index: int) -> np.ndarray:
    """Mask with a single moved example (Davari et al. Cor. 3)."""
    if not 0 <= index < n:
        raise RepresentationError(f"example index {index} is out of range 0..{n - 1}.")
    mask = np.zeros(n, dtype=bool)
    mask[index] = True
    return mask


def moved_random_fraction(n: int, fraction: float, seed: int = 0) -> np.ndarray:
    """Mask with round(fraction * n) examples chosen at random (at least one)."""
    if not 0 < fraction <= 1:
        raise RepresentationError(f"fraction must be in (0, 1], not {fraction}.")
    count = max(1, int(round(fraction * n)))
    mask = np.zeros(n, dtype=bool)
    mask[np.random.default_rng(seed).choice(n, size=count, replace=False)] = True
    return mask


def moved_class(labels: np.ndarray, cls: int) -> np.ndarray:
    """Mask of every example of one class (Davari et al. Cor. 4)."""
    mask = np.asarray(labels) == cls
    if not mask.any():
        raise RepresentationError(f"no example has class {cls}.")
    return mask
