"""Which rows move and along which direction: the manipulations of the pitfall pages.

Each function returns a unit direction (or a boolean mask) and raises RepresentationError
when the request has no answer (e.g. a full-rank next layer has no null space).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..errors import RepresentationError
from ..cka.linalg import thin_svd


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def random_direction(dim: int, seed: int = 0) -> np.ndarray:
    """A uniformly random unit vector."""
    return _unit(np.random.default_rng(seed).standard_normal(dim))


def top_principal_direction(X: np.ndarray) -> np.ndarray:
    """The first principal axis of X (largest-variance direction), sign fixed for reproducibility."""
    xc = np.asarray(X, dtype=np.float64) - np.mean(X, axis=0)
    _, _, vt = thin_svd(xc)
    v = vt[0]
    return v if v[np.argmax(np.abs(v))] > 0 else -v


def _row_space(W: np.ndarray) -> np.ndarray:
    """Orthonormal basis (rank, d) of W's row space, from a thin SVD (O(out * d) memory, never d x d).

    Numerical rank: singular values above 1e-10 * max(shape) * the largest.
    """
    _, s, vt = np.linalg.svd(W, full_matrices=False)
    top = s[0] if s.size else 0.0
    return vt[: int((s > 1e-10 * max(W.shape) * top).sum())]


def null_space_dim(W: np.ndarray) -> int:
    """Dimension of {v : W v = 0} for W of shape (out, d)."""
    W = np.atleast_2d(np.asarray(W, dtype=np.float64))
    return W.shape[1] - _row_space(W).shape[0]


def project_to_null_space(W: np.ndarray, x: np.ndarray) -> np.ndarray:
    """x minus its component in W's row space: the nearest v to x with W v = 0."""
    return _off_rows(_row_space(np.atleast_2d(np.asarray(W, dtype=np.float64))), x)


def _off_rows(rows: np.ndarray, x: np.ndarray) -> np.ndarray:
    return x - rows.T @ (rows @ x)


def null_space_direction(W: np.ndarray, seed: int = 0, *, what: str = "the next layer") -> np.ndarray:
    """A random unit vector v with W v = 0: moving along it leaves W x unchanged.

    A seeded Gaussian vector projected off W's row space is Gaussian within the null space, so its
    direction is uniform there; 60,000 features need no 60,000 x 60,000 basis (29 GB).
    """
    W = np.atleast_2d(np.asarray(W, dtype=np.float64))
    rows = _row_space(W)  # one SVD for the check and every draw
    if rows.shape[0] == W.shape[1]:
        raise RepresentationError(
            f"{what} (weight {W.shape[0]}x{W.shape[1]}) has full column rank, so no direction leaves its "
            "output unchanged; pick a layer whose next layer has fewer outputs than inputs (e.g. the last "
            "hidden layer, read out by 10 logits)."
        )
    rng = np.random.default_rng(seed)
    while True:
        # A draw (almost) inside the row space leaves only round-off; it happens when W itself came
        # from the same seed, so draw again from the same stream.
        r = rng.standard_normal(W.shape[1])
        v = _off_rows(rows, r)
        if np.linalg.norm(v) > 1e-6 * np.linalg.norm(r):
            return _unit(v)


# Modules that only reshape or pass their input on (Dropout at inference): what they return is
# what they read, so the module reading their output reads the representation.
PASS_THROUGH = (nn.Identity, nn.Dropout, nn.Flatten, nn.Unflatten)


def readers(model: nn.Module, layer: str, example_input: torch.Tensor) -> list[tuple[str, nn.Module]]:
    """The modules that read the output of module ``layer`` in a forward pass of ``example_input``.

    Traced, not guessed from registration order: in a recurrent network the hidden state of an
    early step is read by the recurrent weights, not by the logits registered after it, and a
    representation followed by a ReLU is read by that ReLU. Reshapes (Flatten, Unflatten,
    Identity) are followed through to the modules that read their output.
    """
    modules = dict(model.named_modules())
    if layer not in modules:
        raise RepresentationError(f"{layer!r} is not a module of this model.")
    tracked: list[torch.Tensor] = []  # the layer's output, then the reshaped views of it
    found: dict[str, nn.Module] = {}

    def after_layer(module, inputs, output):
        if not tracked and isinstance(output, torch.Tensor):
            tracked.append(output)

    def before_leaf(name):
        def hook(module, inputs):
            if any(x is t for x in inputs for t in tracked) and name != layer:
                found.setdefault(name, module)
        return hook

    def after_pass_through(module, inputs, output):
        if any(x is t for x in inputs for t in tracked):
            tracked.append(output)

    handles = [modules[layer].register_forward_hook(after_layer)]
    try:
        for name, module in modules.items():
            if next(module.children(), None) is None and not name.startswith(layer + "."):
                handles.append(module.register_forward_pre_hook(before_leaf(name)))
                if isinstance(module, PASS_THROUGH):
                    handles.append(module.register_forward_hook(after_pass_through))
        with torch.no_grad():
            model(example_input)
    finally:
        for handle in handles:
            handle.remove()
    return [(name, module) for name, module in found.items() if not isinstance(module, PASS_THROUGH)]


def next_layer_weight(model: nn.Module, layer: str, example_input: torch.Tensor) -> np.ndarray:
    """Weight (out, d) of the fully connected layer(s) reading ``layer``'s output, stacked when
    several do: a direction in its null space leaves everything downstream unchanged."""
    reading = readers(model, layer, example_input)
    if not reading:
        raise RepresentationError(f"nothing reads the output of {layer!r}: it is the network's output.")
    not_linear = [f"{name} ({type(module).__name__})" for name, module in reading if not isinstance(module, nn.Linear)]
    if not_linear:
        raise RepresentationError(
            f"the output of {layer!r} is read by {', '.join(not_linear)}, not only by fully connected layers, "
            "so no null space leaves the network's function unchanged; pick a layer that a Linear layer reads "
            "(e.g. the last hidden layer, read by the logits)."
        )
    with torch.no_grad():
        return torch.cat([module.weight for _, module in reading]).detach().double().cpu().numpy()


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
