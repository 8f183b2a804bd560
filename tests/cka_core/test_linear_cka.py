"""linear_cka against the literal float64 reference, and its invariance properties."""
import numpy as np
import pytest
import torch
from hypothesis import assume, given
from hypothesis import strategies as st

import cka_core

from . import reference as ref
from .cka_testdata import PROPERTY, correlated_pair, pairs, scales, seeds, with_offset_f32

SHAPES = [
    (10, 3, 4),     # small, n > d
    (6, 40, 25),    # n < d (Gram regime)
    (200, 7, 3),    # n >> d
    (30, 1, 1),     # d = 1 on both sides
    (25, 1, 9),     # d = 1 on one side
    (4, 3, 2),      # n = 4: the smallest n the debiased estimator allows
    (50, 600, 2),   # wide vs narrow
]


@pytest.mark.parametrize("debiased", [False, True], ids=["biased", "debiased"])
@pytest.mark.parametrize("n,dx,dy", SHAPES)
def test_matches_reference_float64(n, dx, dy, debiased):
    X, Y = correlated_pair(np.random.default_rng(n * 1000 + dx * 10 + dy), n, dx, dy)
    expected = ref.linear_cka(X, Y, debiased)
    assert np.isfinite(expected)
    got = cka_core.linear_cka(X, Y, debiased=debiased)
    assert isinstance(got, float)
    assert got == pytest.approx(expected, abs=1e-8)


@pytest.mark.parametrize("debiased", [False, True], ids=["biased", "debiased"])
@pytest.mark.parametrize("n,d", [(40, 5), (12, 200), (300, 30)])
def test_float32_with_large_offset(n, d, debiased):
    """float32 input with 1e4 added to every entry: compare with the reference computed on the
    float64 version of the SAME float32 values (so only the core's own arithmetic is tested)."""
    X, Y = correlated_pair(np.random.default_rng(7 + n), n, d, d + 1, offset=0.0)
    X32, Y32 = with_offset_f32(X), with_offset_f32(Y)
    expected = ref.linear_cka(X32.astype(np.float64), Y32.astype(np.float64), debiased)
    got = cka_core.linear_cka(X32, Y32, debiased=debiased)
    assert got == pytest.approx(expected, abs=1e-5)
    got_t = cka_core.linear_cka(torch.from_numpy(X32), torch.from_numpy(Y32), debiased=debiased)
    assert got_t == pytest.approx(expected, abs=1e-5)


@pytest.mark.parametrize("debiased", [False, True], ids=["biased", "debiased"])
def test_torch_input(debiased):
    X, Y = correlated_pair(np.random.default_rng(3), 30, 6, 4)
    expected = ref.linear_cka(X, Y, debiased)
    assert cka_core.linear_cka(torch.from_numpy(X), torch.from_numpy(Y),
                               debiased=debiased) == pytest.approx(expected, abs=1e-8)
    # Tensors straight out of a model carry autograd history; that must not matter.
    Xg = torch.from_numpy(X).requires_grad_(True)
    assert cka_core.linear_cka(Xg * 1.0, Y, debiased=debiased) == pytest.approx(expected, abs=1e-8)
    # float32 tensors, mixed with numpy
    expected32 = ref.linear_cka(X.astype(np.float32), Y, debiased)
    assert cka_core.linear_cka(torch.from_numpy(X.astype(np.float32)), Y,
                               debiased=debiased) == pytest.approx(expected32, abs=1e-6)


def test_more_than_two_dims_flattened_per_example():
    rng = np.random.default_rng(11)
    X = rng.standard_normal((20, 3, 4, 2))
    Y = X.reshape(20, -1)[:, :10] @ rng.standard_normal((10, 6)) + rng.standard_normal((20, 6))
    Y = Y.reshape(20, 2, 3)
    expected = ref.linear_cka(X.reshape(20, -1), Y.reshape(20, -1))
    assert cka_core.linear_cka(X, Y) == pytest.approx(expected, abs=1e-10)
    assert cka_core.linear_cka(torch.from_numpy(X), Y) == pytest.approx(expected, abs=1e-10)


def test_biased_is_in_unit_interval_and_below_one_for_different_data():
    X, Y = correlated_pair(np.random.default_rng(5), 50, 8, 8)
    v = cka_core.linear_cka(X, Y)
    assert 0.0 < v < 0.999


# ----------------------------------------------------------------- hypothesis properties (R1, R2)

@PROPERTY
@given(pairs(min_n=8), st.booleans())
def test_property_matches_reference(xy, debiased):
    X, Y = xy
    expected = ref.linear_cka(X, Y, debiased)
    assume(np.isfinite(expected))
    assert cka_core.linear_cka(X, Y, debiased=debiased) == pytest.approx(expected, abs=1e-8)


@PROPERTY
@given(pairs(min_n=8), seeds, st.booleans())
def test_property_orthogonal_invariance(xy, seed, debiased):
    X, Y = xy
    rng = np.random.default_rng(seed)
    Qx = ref.random_orthogonal(X.shape[1], rng)
    Qy = ref.random_orthogonal(Y.shape[1], rng)
    base = cka_core.linear_cka(X, Y, debiased=debiased)
    assert cka_core.linear_cka(X @ Qx, Y @ Qy, debiased=debiased) == pytest.approx(base, abs=1e-8)


@PROPERTY
@given(pairs(min_n=8), scales, scales, st.booleans())
def test_property_isotropic_scaling_invariance(xy, a, b, debiased):
    X, Y = xy
    base = cka_core.linear_cka(X, Y, debiased=debiased)
    assert cka_core.linear_cka(a * X, b * Y, debiased=debiased) == pytest.approx(base, abs=1e-8)


@PROPERTY
@given(pairs(min_n=8), seeds, st.booleans())
def test_property_translation_invariance(xy, seed, debiased):
    X, Y = xy
    rng = np.random.default_rng(seed)
    base = cka_core.linear_cka(X, Y, debiased=debiased)
    Xt = X + rng.uniform(-100, 100, X.shape[1])
    Yt = Y + rng.uniform(-100, 100, Y.shape[1])
    assert cka_core.linear_cka(Xt, Yt, debiased=debiased) == pytest.approx(base, abs=1e-8)


@PROPERTY
@given(pairs(min_n=8), st.booleans())
def test_property_symmetry(xy, debiased):
    X, Y = xy
    assert cka_core.linear_cka(X, Y, debiased=debiased) == pytest.approx(
        cka_core.linear_cka(Y, X, debiased=debiased), abs=1e-10)


@PROPERTY
@given(pairs(min_n=5), st.booleans())
def test_property_self_similarity_is_one(xy, debiased):
    """R1/R2: CKA(X, X) = 1 and CKA(X, [X, X]) = 1, biased and debiased."""
    X, _ = xy
    assert cka_core.linear_cka(X, X, debiased=debiased) == pytest.approx(1.0, abs=1e-10)
    assert cka_core.linear_cka(X, np.hstack([X, X]), debiased=debiased) == pytest.approx(1.0, abs=1e-10)


@PROPERTY
@given(pairs(min_n=5))
def test_property_biased_range(xy):
    X, Y = xy
    v = cka_core.linear_cka(X, Y)
    assert -1e-12 <= v <= 1 + 1e-12


@PROPERTY
@given(pairs(min_n=8, max_d=10), seeds)
def test_property_anisotropic_scaling_matches_reference(xy, seed):
    """Anisotropic scaling is NOT an invariance: the core follows the reference exactly, and the
    value visibly moves away from 1 when one column is scaled by 30."""
    X, _ = xy
    assume(X.shape[1] >= 2)
    rng = np.random.default_rng(seed)
    D = rng.uniform(0.1, 10.0, X.shape[1])
    assert cka_core.linear_cka(X, X * D) == pytest.approx(ref.linear_cka(X, X * D), abs=1e-8)
    # a single boosted column dominates (docs/theory.md §5, R9): with equalised columns CKA drops clearly
    Xs = (X - X.mean(0)) / X.std(0)
    D1 = np.ones(X.shape[1])
    D1[0] = 30.0
    assert cka_core.linear_cka(Xs, Xs * D1) < 0.99


def test_invertible_linear_map_is_not_an_invariance():
    """R7 direction: a random invertible map changes linear CKA visibly."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((500, 20))
    M = rng.standard_normal((20, 20))
    assert abs(np.linalg.det(M)) > 1e-3
    assert cka_core.linear_cka(X, X @ M) < 0.9
