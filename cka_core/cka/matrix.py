"""Linear CKA between every pair of layers in one call: :func:`cka_matrix` runs one
:class:`~cka_core.cka.accumulator.CKAAccumulator` over every row; :func:`cka_matrix_or_nan` marks constant layers.
"""
from __future__ import annotations
import numpy as np
import torch
from ..errors import RepresentationError
from .kernels import scaled_to_unit
from .validation import as_layers, check_rows
from .memory import choose_form
from .layers import layer_layout
from .accumulator import checked_batch_size, cka_matrix_from_hsic, PrecisionLost, CKAAccumulator
from .layers import LayerLayout


def cka_matrix(layers_a, layers_b=None, *, debiased: bool = False, batch_size: int | None = None) -> np.ndarray:
    """Linear CKA between every layer of ``layers_a`` and every layer of ``layers_b``.

    Parameters
    ----------
    layers_a, layers_b : sequence of (n, ...) arrays or tensors, or a mapping name -> array
        Activations of the same n examples, in the same order. ``layers_b=None`` compares
        ``layers_a`` with itself. Extra dimensions are flattened per example. Tensors are
        computed on the device they live on.
    debiased : bool
        Unbiased HSIC (Song et al. 2012) in place of the biased estimator.
    batch_size : int or None
        Minibatch estimator of Nguyen et al. (2021) over consecutive batches of this size.

    Returns
    -------
    np.ndarray of shape (L_a, L_b), float64.
    """
    batch_size = checked_batch_size(batch_size, debiased)
    # With every row used (no batches, so no dropped short tail), the finiteness pass over the inputs
    # is deferred: a NaN or Inf reaches every HSIC of its layer, so sound HSIC values prove finite
    # inputs, and the inputs are scanned (for the message naming the layer) only when they are not.
    structure, unique = layer_layout(layers_a, layers_b, check_finite=batch_size is not None)
    n = check_rows(unique[0].shape[0], unique[0].shape[0], debiased)
    if batch_size is None and choose_form(structure, n, unique[0].device) == "grams":
        # One "minibatch" holding every row is exactly the full-data Gram-vector form.
        batch_size = n
    try:
        hsic = _hsic_of(structure, unique, debiased, batch_size)
    except PrecisionLost:
        hsic = None
    if hsic is None or not _sound(hsic):
        layer_layout(layers_a, layers_b)  # raises if an input holds NaN or Inf
        # Finite values whose products overflowed or underflowed: CKA does not change when a layer
        # is rescaled, and a power of two rescales exactly.
        hsic = _hsic_of(structure, [scaled_to_unit(t) for t in unique], debiased, batch_size)
    return cka_matrix_from_hsic(hsic, structure)


def _hsic_of(structure: LayerLayout, unique: list[torch.Tensor], debiased: bool, batch_size: int | None) -> torch.Tensor:
    accumulator = CKAAccumulator(debiased=debiased, batch_size=batch_size)
    return accumulator._ingest(structure, unique)._hsic()


def _sound(hsic: torch.Tensor) -> bool:
    """All HSIC values finite and every self term positive (what CKA's normalisation needs)."""
    return bool(torch.isfinite(hsic).all()) and bool((torch.diagonal(hsic) > 0).all())


def cka_matrix_or_nan(layers_a, layers_b=None, *, debiased: bool = False) -> np.ndarray:
    """:func:`cka_matrix`, with NaN in the cells of layers where CKA is undefined (a constant layer:
    0/0) instead of an error, for displays that show every other cell."""
    try:
        return cka_matrix(layers_a, layers_b, debiased=debiased)
    except RepresentationError:
        names_a, a = as_layers(layers_a, "layers_a")
        b = a if layers_b is None else as_layers(layers_b, "layers_b")[1]
        usable_a = [i for i, x in enumerate(a) if _varies(x)]
        usable_b = [j for j, y in enumerate(b) if _varies(y)]
        out = np.full((len(a), len(b)), np.nan)
        if usable_a and usable_b:
            out[np.ix_(usable_a, usable_b)] = cka_matrix([a[i] for i in usable_a], [b[j] for j in usable_b],
                                                         debiased=debiased)
        return out


def _varies(x: torch.Tensor) -> bool:
    try:
        cka_matrix([x], [x])
    except RepresentationError:
        return False
    return True
