"""The lower triangle of K = X X^T in half the multiply-adds: BLAS syrk, from the MKL inside torch.

torch has no syrk, and a triangle assembled from GEMM panels costs (B + 1) / (2B) of the full
product and runs below GEMM speed on narrow layers. torch's x86 CPU builds link MKL statically
into libtorch_cpu and export its Fortran-convention routine ``mkl_blas_?syrk`` (LP64 integers):
called through ctypes (which releases the GIL), it builds a 1000 x 1000 Gram of a 4096-wide
float32 layer in 15 ms against 27 ms for ``x @ x.T`` on 2 cores (benchmarks/README.md).

The symbol is not a documented interface, so it is used only after it reproduced
``torch.matmul`` on a probe in this process; anything else (CUDA tensors, ARM builds, a torch
without the symbol, a failed probe) gets ``None`` and the caller falls back to GEMM panels.
"""
from __future__ import annotations

import ctypes
import functools
from pathlib import Path

import torch

_ROUTINES = {torch.float32: ("mkl_blas_ssyrk", ctypes.c_float), torch.float64: ("mkl_blas_dsyrk", ctypes.c_double)}


def _load(dtype: torch.dtype):
    """The raw routine for ``dtype``, or None where this torch does not carry it."""
    name, _ = _ROUTINES[dtype]
    library = Path(torch.__file__).parent / "lib" / "libtorch_cpu.so"
    try:
        return getattr(ctypes.CDLL(str(library)), name)
    except (OSError, AttributeError):
        return None


def _call(routine, scalar, x: torch.Tensor, out: torch.Tensor) -> None:
    """out[i, j] = x_i . x_j for j <= i; the strict upper triangle of ``out`` is not touched.

    Row-major X (n x d) is column-major X^T (d x n, lda = d), so C = (X^T)^T X^T with
    trans='T'; the column-major upper triangle of C is the row-major lower triangle of ``out``.
    """
    n, d = x.shape
    by_ref = ctypes.byref
    routine(by_ref(ctypes.c_char(b"U")), by_ref(ctypes.c_char(b"T")), by_ref(ctypes.c_int(n)),
            by_ref(ctypes.c_int(d)), by_ref(scalar(1.0)), ctypes.c_void_p(x.data_ptr()),
            by_ref(ctypes.c_int(max(d, 1))), by_ref(scalar(0.0)), ctypes.c_void_p(out.data_ptr()),
            by_ref(ctypes.c_int(max(n, 1))))


@functools.cache
def _verified(dtype: torch.dtype):
    """The routine for ``dtype`` if it reproduces torch.matmul on a probe (odd shapes, a sentinel
    above the diagonal that must survive), else None."""
    routine = _load(dtype)
    if routine is None:
        return None
    scalar = _ROUTINES[dtype][1]
    probe = torch.randn(37, 53, dtype=dtype, generator=torch.Generator().manual_seed(0))
    out = torch.full((37, 37), 7.0, dtype=dtype)
    try:
        _call(routine, scalar, probe, out)
    except (OSError, ValueError):
        return None
    expected = torch.tril(probe @ probe.T) + torch.triu(torch.full_like(out, 7.0), diagonal=1)
    return routine if torch.allclose(out, expected, rtol=1e-5, atol=1e-4) else None


def syrk_lower(x: torch.Tensor, out: torch.Tensor) -> bool:
    """Write the lower triangle (diagonal included) of X X^T into ``out`` (n x n) with MKL's syrk.

    Returns False, writing nothing, where syrk is not available for these tensors; the strict
    upper triangle of ``out`` is never written.
    """
    usable = (x.device.type == "cpu" and x.dtype in _ROUTINES and out.dtype == x.dtype
              and x.is_contiguous() and out.is_contiguous() and x.shape[0] == out.shape[0] == out.shape[1])
    routine = _verified(x.dtype) if usable else None
    if routine is None:
        return False
    _call(routine, _ROUTINES[x.dtype][1], x, out)
    return True
