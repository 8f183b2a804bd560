"""rbf_cka against the literal reference (Kornblith's gram_rbf bandwidth), and its properties."""
import numpy as np
import pytest
import torch
from hypothesis import assume, given
from hypothesis import strategies as st

import cka_core

from . import reference as ref
from .cka_testdata import PROPERTY_FEW, correlated_pair, pairs, scales, seeds, with_offset_f32


@pytest.mark.parametrize("debiased", [False, True], ids=["biased", "debiased"])
@pytest.mark.parametrize("sigma", [0.3, 1.0, 2.5])
@pytest.mark.parametrize("n,dx,dy", [(12, 3, 5), (6, 50, 20), (80, 1, 4), (5, 2, 2), (150, 10, 10)])
def test_matches_reference(n, dx, dy, sigma, debiased):
    X, Y = correlated_pair(np.random.default_rng(n + 31 * dx + dy), n, dx, dy)
    expected = ref.rbf_cka(X, Y, sigma, debiased)
    assert np.isfinite(expected)
    got = cka_core.rbf_cka(X, Y, sigma=sigma, debiased=debiased)
    assert isinstance(got, float)
    assert got == pytest.approx(expected, abs=1e-8)


@pytest.mark.parametrize("debiased", [False, True], ids=["biased", "debiased"])
def test_a_sweep_over_bandwidths_matches_the_reference_at_each(debiased):
    """rbf_cka_curve (the Estimators page's bandwidth curve: distances once, one kernel pair at a time)."""
    from cka_core.measures.cka import rbf_cka_curve

    X, Y = correlated_pair(np.random.default_rng(5), 40, 6, 9)
    sigmas = [0.3, 1.0, 2.5]
    np.testing.assert_allclose(rbf_cka_curve(X, Y, sigmas, debiased=debiased),
                               [ref.rbf_cka(X, Y, s, debiased) for s in sigmas], atol=1e-8)
    sweep = [0.05, 0.3, 1.0, 100.0]  # the page's range reaches far out: one pair at a time, as rbf_cka computes it
    np.testing.assert_allclose(rbf_cka_curve(X, Y, sweep, debiased=debiased),
                               [cka_core.rbf_cka(X, Y, sigma=s, debiased=debiased) for s in sweep], rtol=1e-12)
    with pytest.raises(cka_core.RepresentationError, match="sigma must be a positive"):
        rbf_cka_curve(X, Y, [1.0, 0.0])


def _rbf_gram_offdiag_median(X, sigma):
    D = ref.squared_distances(X)
    med = np.median(D[~np.eye(len(D), dtype=bool)])
    return np.exp(-D / (2 * sigma**2 * med))


def _rbf_gram_median_distance(X, sigma):
    D = ref.squared_distances(X)
    med = np.median(np.sqrt(D[~np.eye(len(D), dtype=bool)]))
    return np.exp(-D / (2 * sigma**2 * med**2))


def test_bandwidth_convention_is_discriminated():
    """Small n, where the n zeros on the diagonal shift the median: the core must follow the
    'median of all n^2 squared distances' convention, and the data are chosen so that the two
    plausible alternatives (off-diagonal median; median distance squared) give visibly different
    values, i.e. this comparison can catch the wrong convention."""
    rng = np.random.default_rng(2)
    X = rng.standard_normal((5, 3)) * [1, 4, 0.2]
    Y = rng.standard_normal((5, 2)) ** 3
    expected = ref.rbf_cka(X, Y, 0.5)
    alt1 = ref.cka_from_grams(_rbf_gram_offdiag_median(X, 0.5), _rbf_gram_offdiag_median(Y, 0.5))
    alt2 = ref.cka_from_grams(_rbf_gram_median_distance(X, 0.5), _rbf_gram_median_distance(Y, 0.5))
    assert abs(alt1 - expected) > 1e-3 and abs(alt2 - expected) > 1e-3
    assert cka_core.rbf_cka(X, Y, sigma=0.5) == pytest.approx(expected, abs=1e-8)


@pytest.mark.parametrize("debiased", [False, True], ids=["biased", "debiased"])
def test_float32_with_large_offset_and_torch(debiased):
    X, Y = correlated_pair(np.random.default_rng(9), 60, 6, 3, offset=0.0)
    X32, Y32 = with_offset_f32(X), with_offset_f32(Y)
    expected = ref.rbf_cka(X32.astype(np.float64), Y32.astype(np.float64), 1.0, debiased)
    assert cka_core.rbf_cka(X32, Y32, debiased=debiased) == pytest.approx(expected, abs=1e-5)
    assert cka_core.rbf_cka(torch.from_numpy(X32), torch.from_numpy(Y32),
                            debiased=debiased) == pytest.approx(expected, abs=1e-5)
    exp64 = ref.rbf_cka(X, Y, 1.0, debiased)
    assert cka_core.rbf_cka(torch.from_numpy(X).requires_grad_(True), torch.from_numpy(Y),
                            debiased=debiased) == pytest.approx(exp64, abs=1e-8)


def test_more_than_two_dims_flattened():
    rng = np.random.default_rng(4)
    X = rng.standard_normal((15, 2, 3))
    Y = np.tanh(X) + 0.3 * rng.standard_normal((15, 2, 3))
    assert cka_core.rbf_cka(X, Y, sigma=0.8) == pytest.approx(
        ref.rbf_cka(X.reshape(15, -1), Y.reshape(15, -1), 0.8), abs=1e-8)


# ----------------------------------------------------------------- hypothesis properties

@PROPERTY_FEW
@given(pairs(min_n=6, max_n=30), st.sampled_from([0.5, 1.0, 2.0]), st.booleans())
def test_property_matches_reference(xy, sigma, debiased):
    X, Y = xy
    expected = ref.rbf_cka(X, Y, sigma, debiased)
    assume(np.isfinite(expected))
    assert cka_core.rbf_cka(X, Y, sigma=sigma, debiased=debiased) == pytest.approx(expected, abs=1e-8)


@PROPERTY_FEW
@given(pairs(min_n=6, max_n=30), seeds, scales, scales)
def test_property_invariances(xy, seed, a, b):
    """RBF CKA with a median-relative bandwidth is invariant to orthogonal maps, isotropic scaling
    (the bandwidth scales along) and translation; it is symmetric and CKA(X, X) = 1."""
    X, Y = xy
    rng = np.random.default_rng(seed)
    base = cka_core.rbf_cka(X, Y)
    Xt = a * X @ ref.random_orthogonal(X.shape[1], rng) + rng.uniform(-50, 50, X.shape[1])
    Yt = b * Y @ ref.random_orthogonal(Y.shape[1], rng) + rng.uniform(-50, 50, Y.shape[1])
    assert cka_core.rbf_cka(Xt, Yt) == pytest.approx(base, abs=1e-7)
    assert cka_core.rbf_cka(Y, X) == pytest.approx(base, abs=1e-10)
    assert cka_core.rbf_cka(X, X) == pytest.approx(1.0, abs=1e-10)
    assert cka_core.rbf_cka(X, X, debiased=True) == pytest.approx(1.0, abs=1e-10)
    assert -1e-12 <= base <= 1 + 1e-12
