"""Differentiable minibatch CKA in torch: the map a network can be trained towards.

Davari et al. (ICLR 2023, §4.3, Eq. 3) fine-tune a network so that the CKA map between its
layers, measured on each training batch with the unbiased HSIC estimator, approaches a target.
These functions compute that map with autograd intact:

1. per layer, the U-centred Gram matrix of the batch (Székely and Rizzo 2014), built from
   features centred first (so large activation offsets cost no precision);
2. all unbiased HSIC values at once, HSIC1 = G Gᵀ / (n(n-3)), where row l of G is layer l's
   flattened U-centred Gram (one matrix product, as in Nguyen et al. 2021);
3. the ratio CKA_lm = HSIC1_lm / sqrt(HSIC1_ll HSIC1_mm), with the denominator kept away from 0.

On a batch of float64 activations the result equals ``cka_matrix(layers, debiased=True)``
(the exact full-data debiased CKA of that batch) to round-off.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from ..errors import RepresentationError

#: Relative floor of the self-HSIC terms: a layer whose U-centred Gram is (numerically) zero
#: -- a constant or dead layer on this batch -- gets CKA 0 with every other layer instead of
#: 0/0, and the square root never sees 0 (whose gradient is infinite).
RELATIVE_FLOOR = 1e-12


def _check_rows(n: int) -> None:
    if n < 4:
        raise RepresentationError(
            f"the unbiased HSIC needs at least 4 examples per batch, got {n}; use a larger batch."
        )


def _centred_gram(x: torch.Tensor, dtype: torch.dtype | None) -> torch.Tensor:
    """K = X_c X_cᵀ with the features centred first (in ``dtype``)."""
    x = x.reshape(x.shape[0], -1)
    if dtype is not None:
        x = x.to(dtype)
    xc = x - x.mean(dim=0, keepdim=True)
    return xc @ xc.T


def u_centre(k: torch.Tensor) -> torch.Tensor:
    """U-centring of one (n, n) or a stack (..., n, n) of Gram matrices, differentiably.

    Off the diagonal K~_ij = K_ij - r_i/(n-2) - r_j/(n-2) + s/((n-1)(n-2)), where r are the row
    sums and s the total of K with its diagonal zeroed; the diagonal of K~ is 0.
    """
    n = k.shape[-1]
    _check_rows(n)
    off_diagonal = 1.0 - torch.eye(n, dtype=k.dtype, device=k.device)
    k = k * off_diagonal
    rows = k.sum(dim=-1)
    total = rows.sum(dim=-1)
    k = (k - rows[..., :, None] / (n - 2) - rows[..., None, :] / (n - 2)
         + (total / ((n - 1) * (n - 2)))[..., None, None])
    return k * off_diagonal


def u_centred_gram(x: torch.Tensor, dtype: torch.dtype | None = torch.float64) -> torch.Tensor:
    """U-centred linear Gram matrix K~ of a batch (Székely and Rizzo 2014), differentiably.

    With K = X_c X_cᵀ (features centred first; U-centring ignores the mean, but centring keeps
    float32 inputs with large offsets exact), sum(K~ * L~) / (n(n-3)) is the unbiased HSIC of
    Song et al. (2012).

    Parameters
    ----------
    x : tensor of shape (n, ...), n >= 4
        One layer's activations on the batch; extra dimensions are flattened per example.
    dtype : torch dtype or None
        Precision of the computation (float64 by default; None keeps the input's dtype).
    """
    _check_rows(x.shape[0])
    return u_centre(_centred_gram(x, dtype))


def hsic1_matrix(layers: Sequence[torch.Tensor], dtype: torch.dtype | None = torch.float64) -> torch.Tensor:
    """Unbiased HSIC (Song et al. 2012) between every pair of layers of one batch, (L, L).

    The layers' Grams are U-centred together as one (L, n, n) stack, then one product of the
    flattened stack gives every value: HSIC1 = G Gᵀ / (n (n - 3)).
    """
    if len(layers) == 0:
        raise RepresentationError("pass at least one layer.")
    n = layers[0].shape[0]
    if any(t.shape[0] != n for t in layers):
        raise RepresentationError(
            f"every layer needs one row per example of the same batch; got row counts {[t.shape[0] for t in layers]}."
        )
    _check_rows(n)
    g = u_centre(torch.stack([_centred_gram(t, dtype) for t in layers])).reshape(len(layers), -1)
    return (g @ g.T) / (n * (n - 3))


def cka_from_hsic_matrix(hsic: torch.Tensor) -> torch.Tensor:
    """CKA_lm = HSIC_lm / sqrt(HSIC_ll HSIC_mm), with the self terms floored at
    ``RELATIVE_FLOOR`` times the largest one (never 0/0, finite gradients)."""
    diag = torch.diagonal(hsic)
    floor = RELATIVE_FLOOR * diag.detach().abs().max() + torch.finfo(hsic.dtype).tiny
    norms = torch.sqrt(diag.clamp_min(floor))
    return hsic / (norms[:, None] * norms[None, :])


def minibatch_cka_map(layers: Sequence[torch.Tensor], dtype: torch.dtype | None = torch.float64) -> torch.Tensor:
    """Debiased linear CKA between every pair of ``layers`` on one batch, differentiable.

    ``layers`` are the (n, ...) activations of the same n examples. Returns an (L, L) tensor
    (in ``dtype``, float64 by default) whose gradient flows back into every layer. This is the
    per-batch map M_theta of Davari et al.'s Eq. 3; averaged over batches as separate HSIC
    sums it becomes Nguyen et al.'s minibatch estimator.
    """
    return cka_from_hsic_matrix(hsic1_matrix(layers, dtype))


def log_cosh(x: torch.Tensor) -> torch.Tensor:
    """log(cosh(x)), overflow-free: |x| + log(1 + exp(-2|x|)) - log 2."""
    a = x.abs()
    return a + torch.nn.functional.softplus(-2.0 * a) - math.log(2.0)


def map_loss(cka_map: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Davari et al.'s map loss: mean over all L x L entries of log cosh(M - M_target)."""
    if cka_map.shape != target.shape:
        raise RepresentationError(
            f"the target map has shape {tuple(target.shape)} but the CKA map has shape {tuple(cka_map.shape)}; "
            "give one target entry per pair of chosen layers."
        )
    return log_cosh(cka_map - target.to(cka_map)).mean()
