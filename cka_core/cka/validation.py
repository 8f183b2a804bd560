"""Input validation in one place: every public entry point turns its inputs into
flattened ``(n, d)`` torch tensors here, and every message names the argument.
"""
from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence

import numpy as np
import torch

from ..errors import RepresentationError

MIN_ROWS_BIASED = 2
MIN_ROWS_DEBIASED = 4  # the U-statistic divides by n(n-3) and (n-1)(n-2)


def min_rows(debiased: bool) -> int:
    return MIN_ROWS_DEBIASED if debiased else MIN_ROWS_BIASED


def as_matrix(x, name: str = "X", *, check_finite: bool = True) -> torch.Tensor:
    """Return ``x`` as a finite, real ``(n, d)`` tensor, flattening extra dims per example.

    numpy arrays are wrapped without a copy; torch tensors stay on their device.
    ``check_finite=False`` skips the one pass over the values, for a caller whose result shows any
    NaN or Inf anyway and that calls again with the check when it does (``cka_matrix``).
    """
    if isinstance(x, torch.Tensor):
        t = x.detach()
    elif isinstance(x, np.ndarray) or np.isscalar(x) or isinstance(x, (list, tuple)):
        arr = np.asarray(x) if not isinstance(x, np.ndarray) else x
        if arr.dtype.kind not in "biuf":
            raise RepresentationError(
                f"{name} has dtype {arr.dtype}, which is not numeric; pass a float array "
                "(object, string and complex arrays are refused)."
            )
        t = numpy_view(arr)
    else:
        raise RepresentationError(
            f"{name} is a {type(x).__name__}; pass a numpy array or a torch tensor of shape (n_examples, ...)."
        )
    if t.is_complex() or not (t.is_floating_point() or t.dtype in _INT_DTYPES):
        raise RepresentationError(f"{name} has dtype {t.dtype}; pass real floating-point values.")
    if t.ndim == 0 or (np.isscalar(x) and not isinstance(x, (list, tuple))):
        raise RepresentationError(f"{name} is a scalar; pass an array of shape (n_examples, n_features).")
    if t.ndim == 1:
        raise RepresentationError(
            f"{name} is 1-D (shape {tuple(t.shape)}), so it is unclear whether it holds one example or one "
            f"feature; pass {name}.reshape(-1, 1) for one feature per example."
        )
    if t.numel() == 0:
        raise RepresentationError(
            f"{name} is empty (shape {tuple(t.shape)}); it needs at least one feature and "
            f"{MIN_ROWS_BIASED} examples."
        )
    t = t.reshape(t.shape[0], -1)
    if not t.is_floating_point():
        t = t.to(torch.float64)
    # One reduction first (cheap); count the bad entries only when it is not finite (an overflowing
    # sum of finite values falls through to the exact check).
    if check_finite and not bool(torch.isfinite(t.sum())) and not bool(torch.isfinite(t).all()):
        bad = int((~torch.isfinite(t)).sum())
        raise RepresentationError(
            f"{name} contains {bad} NaN or infinite value(s); remove or impute them before comparing "
            "(a NaN usually means the network diverged or a hook captured an uninitialised buffer)."
        )
    return t


def numpy_view(arr: np.ndarray) -> torch.Tensor:
    """A tensor sharing the array's memory. Read-only arrays (e.g. cached by the app) are fine:
    the core never writes to its inputs, so torch's warning about them does not apply."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(np.ascontiguousarray(arr))


_INT_DTYPES = {torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64, torch.bool}


def as_layers(layers, name: str, *, check_finite: bool = True) -> tuple[list[str], list[torch.Tensor]]:
    """Names and ``(n, d)`` tensors of a layer collection.

    Accepts a name -> array mapping (names kept for labels), a sequence of arrays,
    or a single array (one layer).
    """
    if isinstance(layers, Mapping):
        names = [str(k) for k in layers.keys()]
        items = list(layers.values())
    elif isinstance(layers, (np.ndarray, torch.Tensor)):
        names, items = ["layer 0"], [layers]
    elif isinstance(layers, Sequence) and not isinstance(layers, (str, bytes)):
        items = list(layers)
        names = [f"layer {i}" for i in range(len(items))]
    else:
        raise RepresentationError(
            f"{name} is a {type(layers).__name__}; pass a list of (n, ...) arrays or a dict name -> array."
        )
    if not items:
        raise RepresentationError(f"{name} holds no layers; pass at least one (n, ...) array.")
    tensors = [as_matrix(x, f"{name}[{n!r}]", check_finite=check_finite) for n, x in zip(names, items)]
    n_rows = {t.shape[0] for t in tensors}
    if len(n_rows) > 1:
        detail = ", ".join(f"{n}: {t.shape[0]}" for n, t in zip(names, tensors))
        raise RepresentationError(
            f"the layers of {name} have different numbers of examples ({detail}); every layer must "
            "hold one row per example, in the same order."
        )
    return names, tensors


def check_rows(n_a: int, n_b: int, debiased: bool, what_a: str = "X", what_b: str = "Y") -> int:
    """Both sides hold the same examples, and enough of them for the estimator."""
    if n_a != n_b:
        raise RepresentationError(
            f"{what_a} has {n_a} examples but {what_b} has {n_b}; CKA compares the same examples "
            "seen by two representations, so both need one row per example in the same order."
        )
    need = min_rows(debiased)
    if n_a < need:
        estimator = "debiased" if debiased else "biased"
        raise RepresentationError(
            f"{n_a} example(s) are too few for {estimator} CKA, which needs at least {need}; "
            "pass more examples."
        )
    return n_a


def check_not_constant(centred: torch.Tensor, raw: torch.Tensor, name: str) -> None:
    """A layer that is constant across examples has no centred Gram: CKA would be 0/0."""
    scale = float(raw.abs().max()) if raw.numel() else 0.0
    spread = float(centred.abs().max()) if centred.numel() else 0.0
    if spread <= 1e-12 * scale:  # relative: values of 1e-25 that vary are not constant
        raise RepresentationError(
            f"{name} is constant across examples (zero variance after centring), so CKA is undefined "
            "(0/0). Drop this layer, or check that its hook captured real activations."
        )


def layer_labels(layers) -> list[str]:
    """Display names of a layer collection: mapping keys, or 'layer 0', 'layer 1', ..."""
    return as_layers(layers, "layers")[0]
