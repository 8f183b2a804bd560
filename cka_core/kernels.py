"""Kernels, centring and HSIC, one equation per function (after Kornblith et al. 2019).

All functions take float64 tensors; callers centre features before forming any
product, which is what keeps float32 inputs with large offsets exact.
"""
from __future__ import annotations

import torch


def centre_features(x: torch.Tensor) -> torch.Tensor:
    """X_c = H X with H = I - 11^T/n, computed in float64 without forming H."""
    x64 = x.to(torch.float64)
    return x64 - x64.mean(dim=0, keepdim=True)


def gram_linear(xc: torch.Tensor) -> torch.Tensor:
    """Linear kernel K = X X^T (of centred features, so K is already double-centred)."""
    return xc @ xc.T


def squared_distances(xc: torch.Tensor) -> torch.Tensor:
    """D_ij = ||x_i - x_j||^2, clipped at 0 against round-off."""
    sq_norms = (xc * xc).sum(dim=1)
    d = sq_norms[:, None] + sq_norms[None, :] - 2.0 * (xc @ xc.T)
    d.fill_diagonal_(0.0)
    return d.clamp_min_(0.0)


def gram_rbf(xc: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian kernel exp(-D_ij / (2 bw^2)), bw = sigma * sqrt(median of all n^2 entries of D).

    This is the bandwidth convention of Kornblith et al.'s reference ``gram_rbf(x, threshold)``.
    """
    d = squared_distances(xc)
    median = torch.quantile(d.flatten(), 0.5, interpolation="midpoint") if d.numel() <= 16_000_000 else _median(d)
    if float(median) <= 0.0:
        # More than half of the pairs coincide: fall back to the mean distance so the kernel is defined.
        median = d.mean()
    return torch.exp(-d / (2.0 * sigma**2 * median))


def _median(d: torch.Tensor) -> torch.Tensor:
    """Median of a large tensor (torch.quantile refuses more than 2^24 elements)."""
    flat = d.flatten()
    k = flat.numel()
    lo = torch.kthvalue(flat, (k + 1) // 2).values
    hi = torch.kthvalue(flat, k // 2 + 1).values
    return (lo + hi) / 2


def centre_gram(k: torch.Tensor) -> torch.Tensor:
    """Double centring H K H, in O(n^2) without forming H."""
    row = k.mean(dim=0, keepdim=True)
    col = k.mean(dim=1, keepdim=True)
    return k - row - col + k.mean()


def u_centre_gram(k: torch.Tensor) -> torch.Tensor:
    """U-centring of Szekely and Rizzo (2014), zero diagonal.

    For U-centred K~ and L~, sum(K~ * L~) / (n (n - 3)) is the unbiased HSIC estimator of
    Song et al. (2012); the normalisation cancels in CKA.
    """
    n = k.shape[0]
    k = k.clone()
    k.fill_diagonal_(0.0)
    row_sums = k.sum(dim=0)
    total = row_sums.sum()
    k -= row_sums[None, :] / (n - 2)
    k -= row_sums[:, None] / (n - 2)
    k += total / ((n - 1) * (n - 2))
    k.fill_diagonal_(0.0)
    return k


def cka_from_hsic(hsic_xy: torch.Tensor, hsic_xx: torch.Tensor, hsic_yy: torch.Tensor) -> torch.Tensor:
    """CKA = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)) (Kornblith et al. eq. 4).

    Self terms are sums of squares (of centred or U-centred Grams), so they are never
    negative; the debiased cross term can be, which makes debiased CKA slightly negative
    for unrelated representations. It is reported as it is, never clamped.
    """
    return hsic_xy / torch.sqrt(hsic_xx * hsic_yy)
