"""Kernels, centring and HSIC, one equation per function (after Kornblith et al. 2019).

All functions take float64 tensors; callers centre features before forming any
product, which is what keeps float32 inputs with large offsets exact.
"""
from __future__ import annotations

import math

import torch

from .syrk import syrk_lower


def centre_features(x: torch.Tensor) -> torch.Tensor:
    """X_c = H X with H = I - 11^T/n, computed in float64 without forming H."""
    x64 = x.to(torch.float64)
    return x64 - x64.mean(dim=0, keepdim=True)


def scaled_to_unit(x: torch.Tensor) -> torch.Tensor:
    """x times the power of two that brings its largest magnitude into [1, 2).

    Exact (a power of two only changes exponents), and CKA and every measure beside it are
    invariant to it; it keeps the products of extreme-scale data (1e-25 in float32, 1e200 in
    float64) clear of underflow and overflow.
    """
    largest = float(x.abs().max()) if x.numel() else 0.0
    if largest == 0.0 or not math.isfinite(largest):
        return x
    exponent = -math.floor(math.log2(largest))
    # In two factors: 2**exponent itself may lie outside float32 (up to 2**149 for subnormal values).
    return x * 2.0 ** (exponent // 2) * 2.0 ** (exponent - exponent // 2)


def near_centred(x: torch.Tensor, dtype: torch.dtype, out: torch.Tensor | None = None) -> torch.Tensor:
    """X minus its column means, in ``dtype`` (written into ``out`` when given).

    The means are taken in ``dtype``: torch sums float32 by cascade summation, so they are off by
    about one rounding of the mean (1e-3 for offsets of 1e4), far below any spread float32 can
    still represent at that offset. That is what keeps float32 Grams free of cancellation; the
    tiny shift left is removed exactly by ``hsic_from_gram_sums``, which is shift-invariant. A
    float64 pass would cost more than the Gram itself; ``out`` spares a fresh allocation (and its
    page faults) per layer.
    """
    x = x.to(dtype)
    return torch.sub(x, x.mean(dim=0, keepdim=True), out=out)


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
    return rbf_from_squared(squared_distances(xc), sigma)


def rbf_from_squared(d: torch.Tensor, sigma: float, median_d: torch.Tensor | None = None) -> torch.Tensor:
    """:func:`gram_rbf` from the squared distances D (and their median, when it is known)."""
    scale = median(d) if median_d is None else median_d
    if float(scale) <= 0.0:
        # More than half of the pairs coincide: fall back to the mean distance so the kernel is defined.
        scale = d.mean()
    return torch.exp(-d / (2.0 * sigma**2 * scale))


def median(d: torch.Tensor) -> torch.Tensor:
    """Median of all entries by selection (kthvalue), not a full sort."""
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


def block_edges(n: int, min_rows: int = 256, max_blocks: int = 4) -> list[int]:
    """Row boundaries of the GEMM panels of ``gram_lower_triangle`` (one panel for small n)."""
    blocks = max(1, min(max_blocks, n // min_rows))
    return [round(n * i / blocks) for i in range(blocks + 1)]


def gram_lower_triangle(xc: torch.Tensor, out: torch.Tensor, zero_diagonal: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """The lower triangle of K = X X^T written into ``out`` (n x n, X's dtype, zero above the
    diagonal), then K 1 and diag K (both float64).

    K is symmetric, so <K, L> = 2 <tril K, tril L> - diag K . diag L; the triangle costs half the
    Gram's multiply-adds with BLAS syrk, (B + 1) / (2B) with B GEMM panels where syrk is not
    available. The diagonal is set to 0 in ``out`` when ``zero_diagonal`` (U-centring's K~), and
    the row sums then exclude it. They are the row plus the column sums of the triangle, read
    while it is still in cache, instead of two more passes over the (wider) features.
    """
    if not syrk_lower(xc, out):
        edges = block_edges(xc.shape[0])
        for a, b in zip(edges[:-1], edges[1:]):
            torch.matmul(xc[a:b], xc[:b].T, out=out[a:b, :b])
            out[a:b, a:b].tril_()
    diagonal = out.diagonal()
    norms = diagonal.to(torch.float64, copy=True)  # a copy even for float64: the diagonal may be zeroed next
    if zero_diagonal:
        diagonal.zero_()
    row_sums = (out.sum(dim=1) + out.sum(dim=0)).to(torch.float64)
    if not zero_diagonal:
        row_sums -= norms  # counted by both sums
    return row_sums, norms


DOT_CHUNK = 4096  # float32 partial sums over at most this many terms: ~1e-7 relative error each


def row_dots(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """A B^T in float64 accuracy, for long rows (vectorised Grams, 10^5..10^7 entries).

    float32 rows are multiplied in chunks of DOT_CHUNK columns, one small batched GEMM, and the
    chunk results summed in float64: one float32 dot over 10^6 terms would lose about three
    digits, converting the rows to float64 first costs more than the product.
    """
    if a.dtype == torch.float64:
        return a @ b.T
    width = a.shape[1]
    whole = width - width % DOT_CHUNK
    chunks = whole // DOT_CHUNK
    a_main = a[:, :whole].reshape(a.shape[0], chunks, DOT_CHUNK).transpose(0, 1)
    b_main = b[:, :whole].reshape(b.shape[0], chunks, DOT_CHUNK).transpose(0, 1)
    dots = torch.bmm(a_main, b_main.transpose(1, 2)).to(torch.float64).sum(dim=0)
    return dots + a[:, whole:].to(torch.float64) @ b[:, whole:].to(torch.float64).T


def hsic_from_gram_sums(dots: torch.Tensor, row_dots: torch.Tensor, totals: torch.Tensor, n: int,
                        debiased: bool) -> torch.Tensor:
    """HSIC for every pair of layers from sums of (uncentred) Gram matrices, never forming H.

    dots = tr(K_l K_m), row_dots = (K_l 1).(K_m 1), totals = 1^T K_l 1.
    Biased (Gretton et al. 2005): [tr(KL) - 2/n 1^T K L 1 + (1^T K 1)(1^T L 1)/n^2] / (n-1)^2.
    Unbiased (Song et al. 2012, K and L with zero diagonals):
    [tr(KL) + (1^T K 1)(1^T L 1)/((n-1)(n-2)) - 2/(n-2) 1^T K L 1] / (n(n-3)).
    """
    outer = torch.outer(totals, totals)
    if debiased:
        return (dots + outer / ((n - 1) * (n - 2)) - 2.0 * row_dots / (n - 2)) / (n * (n - 3))
    return (dots - 2.0 * row_dots / n + outer / n**2) / (n - 1) ** 2


def cka_from_hsic(hsic_xy: torch.Tensor, hsic_xx: torch.Tensor, hsic_yy: torch.Tensor) -> torch.Tensor:
    """CKA = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)) (Kornblith et al. eq. 4).

    Self terms are sums of squares (of centred or U-centred Grams), so they are never
    negative; the debiased cross term can be, which makes debiased CKA slightly negative
    for unrelated representations. It is reported as it is, never clamped.
    """
    return hsic_xy / (torch.sqrt(hsic_xx) * torch.sqrt(hsic_yy))  # no under/overflow of the product
