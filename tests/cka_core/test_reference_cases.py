"""The published / derived reference cases R1-R11 of docs/theory.md §5, within their stated
tolerances (sampled cases: +-0.01 unless the table gives fewer digits). R12 (Kornblith's CIFAR
sanity check) needs trained networks and lives with the sample models, not here."""
import numpy as np
import pytest

import cka_core

from . import reference as ref


def _exactly_isotropic(n, d, rng):
    """Centred X with X^T X = n I exactly: empirical Sigma = I, so the derived formulas hold
    exactly, not just in expectation."""
    Z = rng.standard_normal((n, d))
    Z -= Z.mean(0)
    Q, _ = np.linalg.qr(Z)
    return Q * np.sqrt(n)


def test_r1_exact_invariances():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((80, 12)) * rng.uniform(0.5, 2, 12) + 4.0
    Q = ref.random_orthogonal(12, rng)
    for Y in (X @ Q, 3.7 * X, X + rng.standard_normal(12), np.hstack([X, X])):
        assert cka_core.linear_cka(X, Y) == pytest.approx(1.0, abs=1e-12)


def test_r2_unbiased_and_minibatch_self_similarity_is_one():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((90, 7))
    assert cka_core.linear_cka(X, X, debiased=True) == pytest.approx(1.0, abs=1e-12)
    M = cka_core.cka_matrix([X, X @ ref.random_orthogonal(7, rng)], debiased=True, batch_size=16)
    np.testing.assert_allclose(M, 1.0, atol=1e-12)


def test_r3_two_clusters_translated_orthogonally():
    rng = np.random.default_rng(0)
    A = rng.standard_normal((1000, 50))
    B = rng.standard_normal((1000, 50))
    B[:, 0] += 3.0
    X = np.vstack([A, B])
    moved = np.arange(2000) >= 1000
    e2 = np.zeros(50)
    e2[1] = 1.0
    curve = cka_core.translation_cka(X, moved, e2, np.array([1.0, 5.0, 10.0, 100.0]))
    np.testing.assert_allclose(curve, [0.996, 0.817, 0.525, 0.300], atol=0.01)
    limit = cka_core.translation_cka_limit(X, moved)
    assert limit == pytest.approx(0.2976, abs=0.01)
    assert limit == pytest.approx(0.25 * 9 / np.sqrt(3.25**2 + 49), abs=0.02)   # population
    # the limit does not depend on v, and the other cluster moving gives the same limit
    v = rng.standard_normal(50)
    assert cka_core.translation_cka(X, moved, v, 1e7) == pytest.approx(limit, abs=1e-4)
    assert cka_core.translation_cka_limit(X, ~moved) == pytest.approx(limit, abs=1e-12)


def test_r4_two_cubes():
    """Full size (n = 20k, d = 1000): the closed form needs one d x d product."""
    rng = np.random.default_rng(0)
    n, d = 20000, 1000
    X = rng.uniform(-0.5, 0.5, (n, d))
    X[n // 2:, 0] += 1.1
    moved = np.arange(n) >= n // 2
    v = rng.standard_normal(d)
    curve = cka_core.translation_cka(X, moved, v, np.array([1.0, 5.0, 10.0, 20.0, 50.0]))
    np.testing.assert_allclose(curve, [0.993, 0.479, 0.217, 0.139, 0.116], atol=0.01)
    limit = cka_core.translation_cka_limit(X, moved)
    assert limit == pytest.approx(0.112, abs=0.01)
    assert limit == pytest.approx(0.3025 / np.sqrt((1 / 12 + 0.3025) ** 2 + 999 / 144), abs=0.01)


def test_r5_single_outlier():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((1000, 100))
    moved = np.zeros(1000, bool)
    moved[0] = True
    v = rng.standard_normal(100)
    curve = cka_core.translation_cka(X, moved, v, np.array([10.0, 100.0, 1000.0]))
    assert curve[0] == pytest.approx(0.999, abs=0.01)
    assert curve[1] == pytest.approx(0.70, abs=0.02)
    assert curve[2] == pytest.approx(0.020, abs=0.01)
    limit = cka_core.translation_cka_limit(X, moved)
    assert limit == pytest.approx(0.0101, abs=0.002)
    assert limit == pytest.approx(np.sqrt(100) / 1000, abs=0.002)


def test_r6_theorem1_vs_general_limit_vs_brute_force():
    rng = np.random.default_rng(6)
    X = rng.standard_normal((300, 8)) @ rng.standard_normal((8, 8))
    X -= X.mean(0)
    moved = rng.random(300) < 0.3
    stay = ~moved
    rho = stay.mean()
    mu = X[stay].mean(0)
    lam = np.linalg.eigvalsh(X.T @ X / 300)
    theorem1 = rho / (1 - rho) * (mu @ mu) * np.sqrt(lam.sum() ** 2 / (lam**2).sum()) / np.mean(
        np.sum(X**2, 1))
    limit = cka_core.translation_cka_limit(X, moved)
    assert limit == pytest.approx(theorem1, abs=1e-14, rel=1e-12)
    assert ref.translation_cka(X, moved, rng.standard_normal(8), 1e6) == pytest.approx(limit, abs=1e-5)


def test_r7_random_invertible_map_isotropic():
    """sqrt(d / (2d + 1)) for isotropic X, n >> d; in general [1 + (1 + PR)/d]^(-1/2)."""
    rng = np.random.default_rng(7)
    d = 50
    X = rng.standard_normal((20000, d))
    vals = [cka_core.linear_cka(X, X @ (rng.standard_normal((d, d)) * 3.0)) for _ in range(4)]
    assert np.mean(vals) == pytest.approx(np.sqrt(d / (2 * d + 1)), abs=0.01)
    assert np.sqrt(d / (2 * d + 1)) == pytest.approx(0.707, abs=0.01)
    Xa = rng.standard_normal((20000, 30)) * np.linspace(0.2, 2, 30)
    lam = np.linalg.eigvalsh(np.cov(Xa.T))
    pr = lam.sum() ** 2 / (lam**2).sum()
    vals = [cka_core.linear_cka(Xa, Xa @ rng.standard_normal((30, 30))) for _ in range(6)]
    assert np.mean(vals) == pytest.approx((1 + (1 + pr) / 30) ** -0.5, abs=0.02)


def test_r7_paper_grid_on_two_cubes_reduced():
    """Paper's grid (n = 20k, d = 500; 0.716 / 0.091 / 0.046 for sigma >> mu / mu = sigma /
    mu >> sigma), here at n = 8000 (biased CKA is inflated a little at smaller n), tol 0.015."""
    rng = np.random.default_rng(8)
    n, d = 8000, 500
    X = rng.uniform(-0.5, 0.5, (n, d))
    X[n // 2:, 0] += 1.1
    for (mu, sigma), expected in [((1.0, 5000.0), 0.716), ((1.0, 1.0), 0.091), ((5000.0, 1.0), 0.046)]:
        M = mu + sigma * rng.standard_normal((d, d))
        assert cka_core.linear_cka(X, X @ M) == pytest.approx(expected, abs=0.015)


def test_r8_top_k_pc_projection():
    rng = np.random.default_rng(9)
    # exact identity with the empirical eigenvalues, any spectrum
    X = rng.standard_normal((400, 20)) * np.geomspace(3, 0.1, 20) @ ref.random_orthogonal(20, rng)
    Xc = X - X.mean(0)
    lam, V = np.linalg.eigh(Xc.T @ Xc)
    lam, V = lam[::-1], V[:, ::-1]
    for k in (1, 3, 10):
        proj = X @ V[:, :k] @ V[:, :k].T
        expected = np.sqrt(np.sum(lam[:k] ** 2) / np.sum(lam**2))
        assert cka_core.linear_cka(X, proj) == pytest.approx(expected, abs=1e-10)
    # the table's isotropic d = 100 values
    Xi = _exactly_isotropic(2000, 100, rng)
    for k, expected in [(1, 0.10), (10, 0.316), (50, 0.707)]:
        assert cka_core.linear_cka(Xi, Xi[:, :k]) == pytest.approx(expected, abs=1e-3)


def test_r9_one_axis_scaled():
    rng = np.random.default_rng(10)
    d = 100

    def formula(a):
        return (a * a + d - 1) / (np.sqrt(d) * np.sqrt(a**4 + d - 1))

    Xi = _exactly_isotropic(2000, d, rng)
    for a, expected in [(10.0, 0.198), (100.0, 0.101), (1e4, 1 / np.sqrt(d))]:
        D = np.ones(d)
        D[0] = a
        got = cka_core.linear_cka(Xi, Xi * D)
        assert got == pytest.approx(formula(a), abs=1e-9)       # exact for exactly isotropic data
        assert got == pytest.approx(expected, abs=1e-3)
    # population formula on sampled Gaussian data, large n
    X = rng.standard_normal((20000, d))
    for a in (10.0, 100.0):
        D = np.ones(d)
        D[0] = a
        assert cka_core.linear_cka(X, X * D) == pytest.approx(formula(a), abs=0.02)


@pytest.mark.parametrize("n,d,expected", [(100, 1000, 0.91), (50, 5000, 0.99), (1000, 100, 0.09)])
def test_r10_null_bias(n, d, expected):
    """Independent Gaussians: biased ~ d / (d + n - 1); debiased ~ 0 (mean over seeds < 0.03)."""
    biased, debiased = [], []
    for seed in range(3):
        rng = np.random.default_rng(seed)
        X, Y = rng.standard_normal((n, d)), rng.standard_normal((n, d))
        biased.append(cka_core.linear_cka(X, Y))
        debiased.append(cka_core.linear_cka(X, Y, debiased=True))
    assert np.mean(biased) == pytest.approx(expected, abs=0.01)
    assert np.mean(biased) == pytest.approx(d / (d + n - 1), abs=0.01)
    assert abs(np.mean(debiased)) < 0.03


def test_r11_rbf_bandwidth_limits():
    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((300, 20)), rng.standard_normal((300, 20))
    assert cka_core.rbf_cka(X, Y, sigma=0.05) == pytest.approx(1.000, abs=1e-3)
    assert cka_core.rbf_cka(X, Y, sigma=0.2) == pytest.approx(0.999, abs=1e-3)
    assert cka_core.rbf_cka(X, Y, sigma=1e3) == pytest.approx(cka_core.linear_cka(X, Y), abs=1e-5)
