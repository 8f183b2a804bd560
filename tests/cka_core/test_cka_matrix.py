"""cka_matrix (full and minibatch, biased and debiased) against the literal reference.

The core picks between a feature-space form (narrow layers, D <~ n) and a Gram form (wide layers,
D >> n); the shapes below put every case on one side of that crossover or the other, and one case
mixes both within a single call.
"""
import numpy as np
import pytest
import torch

import cka_core

from . import reference as ref
from .cka_testdata import layers, with_offset_f32

DEB = pytest.mark.parametrize("debiased", [False, True], ids=["biased", "debiased"])


def _check(got, expected, tol=1e-8):
    got = np.asarray(got)
    assert isinstance(got, np.ndarray)
    assert got.shape == expected.shape
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, expected, rtol=0, atol=tol)


CASES = {
    "narrow_n600": (600, [3, 20, 1, 12]),        # feature-space regime: D = 36 << n
    "wide_n50": (50, [500, 800, 1200]),          # Gram regime: D = 2500 >> n
    "mixed_n80": (80, [2, 300, 1000, 7]),        # both in one call
    "tiny_n5": (5, [1, 4, 9]),                   # n = 5, one feature layer
}


@DEB
@pytest.mark.parametrize("case", list(CASES))
def test_self_comparison_matches_reference(case, debiased):
    n, widths = CASES[case]
    L = layers(np.random.default_rng(len(widths) * n), n, widths)
    expected = ref.cka_matrix(L, debiased=debiased)
    got = cka_core.cka_matrix(L, debiased=debiased)
    _check(got, expected)
    np.testing.assert_allclose(got, got.T, atol=1e-12)
    np.testing.assert_allclose(np.diag(got), 1.0, atol=1e-10)
    # off-diagonal values are non-trivial, so the comparison means something
    off = expected[~np.eye(len(widths), dtype=bool)]
    assert np.all(np.abs(off - 1) > 1e-3)


@DEB
@pytest.mark.parametrize("n,wa,wb", [(600, [4, 15, 9], [20, 2]), (50, [700, 30], [900, 550, 3, 600]),
                                     (40, [5], [6, 7])])
def test_cross_comparison_matches_reference(n, wa, wb, debiased):
    rng = np.random.default_rng(n + len(wa) + 10 * len(wb))
    both = layers(rng, n, wa + wb)
    A, B = both[:len(wa)], both[len(wa):]
    got = cka_core.cka_matrix(A, B, debiased=debiased)
    _check(got, ref.cka_matrix(A, B, debiased=debiased))
    assert got.shape == (len(wa), len(wb))
    # swapping the arguments transposes the matrix
    np.testing.assert_allclose(cka_core.cka_matrix(B, A, debiased=debiased), got.T, atol=1e-10)


@DEB
def test_explicit_same_layers_equals_self_comparison(debiased):
    L = layers(np.random.default_rng(1), 30, [5, 40, 8])
    np.testing.assert_allclose(cka_core.cka_matrix(L, L, debiased=debiased),
                               cka_core.cka_matrix(L, debiased=debiased), atol=1e-10)


@DEB
def test_float32_large_offset(debiased):
    """float32 layers with 1e4 added everywhere, in both regimes, vs the reference on the float64
    version of the same float32 values."""
    rng = np.random.default_rng(2)
    for n, widths in [(400, [3, 10, 17]), (40, [300, 900])]:
        L32 = [with_offset_f32(x) for x in layers(rng, n, widths)]
        expected = ref.cka_matrix([x.astype(np.float64) for x in L32], debiased=debiased)
        _check(cka_core.cka_matrix(L32, debiased=debiased), expected, tol=1e-5)
        _check(cka_core.cka_matrix([torch.from_numpy(x) for x in L32], debiased=debiased),
               expected, tol=1e-5)


@DEB
def test_torch_and_dict_and_multidim_layers(debiased):
    rng = np.random.default_rng(3)
    n = 24
    conv = rng.standard_normal((n, 4, 3, 3))                       # (n, C, H, W)
    fc = conv.reshape(n, -1)[:, :10] @ rng.standard_normal((10, 8)) + rng.standard_normal((n, 8))
    out32 = (np.tanh(fc) @ rng.standard_normal((8, 3))).astype(np.float32)
    flat = [conv.reshape(n, -1), fc, out32.astype(np.float64)]
    expected = ref.cka_matrix(flat, debiased=debiased)
    mapping = {"conv": torch.from_numpy(conv), "fc": fc, "out": torch.from_numpy(out32)}
    got = cka_core.cka_matrix(mapping, debiased=debiased)
    _check(got, expected, tol=1e-6)
    assert cka_core.layer_labels(mapping) == ["conv", "fc", "out"]
    assert cka_core.layer_labels(flat) == ["layer 0", "layer 1", "layer 2"]
    # cross comparison mapping vs sequence, and a tensor requiring grad
    B = [torch.from_numpy(fc).requires_grad_(True)]
    _check(cka_core.cka_matrix(mapping, B, debiased=debiased), expected[:, [1]], tol=1e-6)


def test_debiased_removes_the_small_n_inflation():
    """R10 in matrix form: independent wide layers look similar to biased CKA, not to debiased."""
    rng = np.random.default_rng(4)
    L = [rng.standard_normal((60, 2000)) for _ in range(3)]
    biased = cka_core.cka_matrix(L)
    debiased = cka_core.cka_matrix(L, debiased=True)
    off = ~np.eye(3, dtype=bool)
    assert np.all(biased[off] > 0.9)
    assert np.all(np.abs(debiased[off]) < 0.1)


def test_reference_matrix_agrees_with_the_literal_pairwise_reference():
    """Guard for the reference itself: its cached matrix form equals the literal tr(KHLH) and
    Song et al. formulas pair by pair."""
    L = layers(np.random.default_rng(9), 9, [2, 13, 4])
    for debiased in (False, True):
        M = ref.cka_matrix(L, debiased=debiased)
        for i, x in enumerate(L):
            for j, y in enumerate(L):
                assert M[i, j] == pytest.approx(ref.linear_cka(x, y, debiased), abs=1e-12)


# ----------------------------------------------------------------- minibatch estimator

def _heterogeneous_layers(n, widths, seed):
    """Layers whose scale and coupling change along the rows, so that the sum-then-ratio estimator,
    the mean of per-batch CKA and a size-weighted mean all give visibly different numbers."""
    rng = np.random.default_rng(seed)
    L = layers(rng, n, widths)
    ramp = np.linspace(0.2, 5.0, n)[:, None]
    return [x * ramp ** (i % 2 + 1) + rng.standard_normal(x.shape) * (i + 1) * 0.3
            for i, x in enumerate(L)]


def _mean_of_batch_cka(X, Y, b, debiased):
    vals = [ref.cka_from_grams(ref.linear_gram(X[s]), ref.linear_gram(Y[s]), debiased)
            for s in ref.batch_slices(len(X), b, debiased)]
    return float(np.mean(vals))


def _size_weighted(X, Y, b, debiased):
    h = ref.hsic1 if debiased else ref.hsic0
    kl = kk = ll = 0.0
    for s in ref.batch_slices(len(X), b, debiased):
        K, L = ref.linear_gram(X[s]), ref.linear_gram(Y[s])
        w = s.stop - s.start
        kl, kk, ll = kl + w * h(K, L), kk + w * h(K, K), ll + w * h(L, L)
    return kl / np.sqrt(kk * ll)


MINIBATCH = [
    (103, 20, [3, 8, 5]),     # trailing 3 rows: kept (biased), dropped (debiased)
    (104, 20, [3, 8, 5]),     # trailing 4 rows: kept by both
    (101, 20, [6, 2]),        # trailing 1 row: dropped by both
    (60, 16, [700, 5, 300]),  # wide layers inside each batch (Gram form), trailing 12 rows
    (30, 64, [4, 9]),         # batch larger than n: one batch = the full estimator
    (12, 4, [3, 30]),         # batches of exactly 4 rows
]


@DEB
@pytest.mark.parametrize("n,b,widths", MINIBATCH)
def test_minibatch_matches_reference(n, b, widths, debiased):
    L = _heterogeneous_layers(n, widths, seed=n + b)
    expected = ref.cka_matrix(L, debiased=debiased, batch_size=b)
    got = cka_core.cka_matrix(L, debiased=debiased, batch_size=b)
    _check(got, expected)
    np.testing.assert_allclose(np.diag(got), 1.0, atol=1e-10)   # R2
    np.testing.assert_allclose(got, got.T, atol=1e-12)
    if b >= n:
        _check(got, ref.cka_matrix(L, debiased=debiased))
    else:
        # the data discriminate the published estimator from two plausible wrong ones
        X, Y = ref.as_f64(L[0]), ref.as_f64(L[1])
        right = ref.minibatch_cka(X, Y, b, debiased)
        assert abs(right - _mean_of_batch_cka(X, Y, b, debiased)) > 1e-4
        sizes = {s.stop - s.start for s in ref.batch_slices(n, b, debiased)}
        if len(sizes) > 1:   # a short trailing batch is kept: sum != size-weighted mean
            assert abs(right - _size_weighted(X, Y, b, debiased)) > 1e-6


@DEB
def test_minibatch_cross_and_dict(debiased):
    L = _heterogeneous_layers(90, [4, 12, 250, 6, 9], seed=5)
    A = {"a0": L[0], "a1": torch.from_numpy(L[1]), "a2": L[2]}
    B = [L[3], L[4]]
    got = cka_core.cka_matrix(A, B, debiased=debiased, batch_size=25)
    _check(got, ref.cka_matrix(list(A.values()), B, debiased=debiased, batch_size=25))


def test_minibatch_debiased_is_close_to_full_debiased():
    """Nguyen et al.: with the unbiased HSIC the minibatch estimate hardly depends on batch size."""
    rng = np.random.default_rng(6)
    L = layers(rng, 1200, [20, 40, 10])
    full = cka_core.cka_matrix(L, debiased=True)
    for b in (100, 300):
        np.testing.assert_allclose(cka_core.cka_matrix(L, debiased=True, batch_size=b), full, atol=0.05)
