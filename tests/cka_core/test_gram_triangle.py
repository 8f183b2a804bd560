"""The Gram triangle behind the Gram form of cka_matrix: MKL's syrk through ctypes and the GEMM-panel
fallback, each against a float64 X X^T, and cka_matrix with the fallback forced."""
import numpy as np
import pytest
import torch

import cka_core
from cka_core.cka import kernels
from cka_core.cka.syrk import syrk_lower

from . import reference as ref
from .cka_testdata import layers, with_offset_f32

SHAPES = [(1, 3), (5, 1), (37, 53), (300, 20), (600, 700), (1030, 64)]  # 1030 rows: 4 uneven panels


def _features(n: int, d: int, dtype: torch.dtype) -> torch.Tensor:
    return torch.randn(n, d, dtype=dtype, generator=torch.Generator().manual_seed(n * 1000 + d))


def test_syrk_is_used_where_torch_carries_mkl():
    """The fast path must not silently disappear (a torch upgrade renaming the symbol would only
    show as a 1.7x slower Gram form otherwise)."""
    x, out = _features(8, 5, torch.float32), torch.zeros(8, 8)
    assert syrk_lower(x, out) == torch.backends.mkl.is_available()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("n,d", SHAPES)
def test_syrk_writes_the_lower_triangle_only(n, d, dtype):
    x = _features(n, d, dtype)
    out = torch.full((n, n), 7.0, dtype=dtype)
    if not syrk_lower(x, out):
        pytest.fail("syrk is unavailable on this torch build")
    expected = (x.double() @ x.double().T).numpy()
    tol = 1e-4 if dtype == torch.float32 else 1e-10
    got = out.double().numpy()
    lower = np.tril(np.ones((n, n), dtype=bool))
    np.testing.assert_allclose(got[lower], expected[lower], rtol=tol, atol=tol * max(d, 1))
    assert np.all(got[~lower] == 7.0), "syrk wrote above the diagonal"


@pytest.mark.parametrize("case", ["strided rows", "int dtype", "out of another dtype", "out not square"])
def test_syrk_declines_what_it_cannot_take(case):
    x, out = _features(10, 6, torch.float32), torch.zeros(10, 10)
    if case == "strided rows":
        x = _features(20, 6, torch.float32)[::2]
    elif case == "int dtype":
        x, out = torch.ones(10, 6, dtype=torch.int32), torch.zeros(10, 10, dtype=torch.int32)
    elif case == "out of another dtype":
        out = torch.zeros(10, 10, dtype=torch.float64)
    else:
        out = torch.zeros(10, 9)
    before = out.clone()
    assert syrk_lower(x, out) is False
    assert torch.equal(out, before)


@pytest.fixture(params=["syrk", "gemm panels"])
def triangle_path(request, monkeypatch):
    if request.param == "gemm panels":
        monkeypatch.setattr(kernels, "syrk_lower", lambda x, out: False)
    return request.param


@pytest.mark.parametrize("zero_diagonal", [False, True])
@pytest.mark.parametrize("n,d", SHAPES)
def test_gram_lower_triangle_and_its_sums(n, d, zero_diagonal, triangle_path):
    x = _features(n, d, torch.float64)
    out = torch.zeros(n, n, dtype=torch.float64)
    row_sums, norms = kernels.gram_lower_triangle(x, out, zero_diagonal=zero_diagonal)
    k = (x @ x.T).numpy()
    diag = np.diag(k).copy()
    if zero_diagonal:
        np.fill_diagonal(k, 0.0)
    np.testing.assert_allclose(out.numpy(), np.tril(k), rtol=1e-12, atol=1e-10)
    np.testing.assert_allclose(row_sums.numpy(), k.sum(axis=1), rtol=1e-10, atol=1e-9)
    np.testing.assert_allclose(norms.numpy(), diag, rtol=1e-12)
    assert row_sums.dtype == norms.dtype == torch.float64


@pytest.mark.parametrize("debiased", [False, True], ids=["biased", "debiased"])
def test_cka_matrix_gram_form_on_either_path(debiased, triangle_path):
    """Wide layers (Gram form), float64 and float32 with offsets of 1e4, self and cross."""
    rng = np.random.default_rng(11)
    wide = layers(rng, 60, [400, 900, 30])
    np.testing.assert_allclose(cka_core.cka_matrix(wide, debiased=debiased),
                               ref.cka_matrix(wide, debiased=debiased), rtol=0, atol=1e-8)
    np.testing.assert_allclose(cka_core.cka_matrix(wide[:1], wide[1:], debiased=debiased),
                               ref.cka_matrix(wide[:1], wide[1:], debiased=debiased), rtol=0, atol=1e-8)
    as_f32 = [with_offset_f32(x) for x in wide]
    np.testing.assert_allclose(cka_core.cka_matrix(as_f32, debiased=debiased),
                               ref.cka_matrix([x.astype(np.float64) for x in as_f32], debiased=debiased),
                               rtol=0, atol=1e-5)
