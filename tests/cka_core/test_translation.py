"""Davari et al.'s subset translation: the closed form against brute-force CKA (the reference),
the c -> infinity limit, and its properties (docs/theory.md §3, §5 R6)."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import cka_core

from . import reference as ref
from .cka_testdata import PROPERTY, seeds

C_VALUES = np.array([0.0, 1e-3, 0.01, 0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 100.0, 1e3, 1e4,
                     -1e-3, -0.7, -3.0, -50.0, -1e4])


def _problem(seed, n=None, d=None, offset=True):
    rng = np.random.default_rng(seed)
    n = n or int(rng.integers(6, 60))
    d = d or int(rng.integers(1, 12))
    X = rng.standard_normal((n, d)) * rng.uniform(0.3, 3, d)
    if offset:
        X += rng.uniform(-5, 5, d)                      # the general form needs no centring
    moved = rng.random(n) < rng.uniform(0.05, 0.95)
    if moved.all() or not moved.any():
        moved[0] = not moved[0]
    direction = rng.standard_normal(d) * rng.uniform(0.1, 10)   # deliberately not unit length
    return X, moved, direction


@pytest.mark.parametrize("seed", range(6))
def test_closed_form_matches_brute_force_for_many_c(seed):
    X, moved, v = _problem(seed)
    got = cka_core.translation_cka(X, moved, v, C_VALUES)
    assert isinstance(got, np.ndarray) and got.shape == C_VALUES.shape
    expected = np.array([ref.translation_cka(X, moved, v, c) for c in C_VALUES])
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9)
    assert got[0] == pytest.approx(1.0, abs=1e-12)                # c = 0: nothing moved
    # scalar c gives a float equal to the array entry
    for i in (1, 7, 14):
        scalar = cka_core.translation_cka(X, moved, v, float(C_VALUES[i]))
        assert isinstance(scalar, float)
        assert scalar == pytest.approx(got[i], abs=1e-12)


def test_array_c_keeps_its_shape():
    X, moved, v = _problem(11)
    c = np.linspace(-20, 20, 12).reshape(3, 4)
    got = cka_core.translation_cka(X, moved, v, c)
    assert isinstance(got, np.ndarray) and got.shape == (3, 4)
    for idx in np.ndindex(3, 4):
        assert got[idx] == pytest.approx(ref.translation_cka(X, moved, v, c[idx]), abs=1e-9)


@pytest.mark.parametrize("seed", range(4))
def test_limit_matches_brute_force_at_huge_c_for_any_direction(seed):
    """The limit (general form) equals brute-force CKA at c = 1e6 to 5 decimals, and it does not
    depend on the direction (three random directions, plus the closed form at c = 1e8)."""
    X, moved, _ = _problem(100 + seed)
    limit = cka_core.translation_cka_limit(X, moved)
    assert isinstance(limit, float)
    assert limit == pytest.approx(ref.translation_limit(X, moved), abs=1e-10)
    rng = np.random.default_rng(seed)
    for _ in range(3):
        v = rng.standard_normal(X.shape[1])
        assert ref.translation_cka(X, moved, v, 1e6) == pytest.approx(limit, abs=1e-5)
        assert cka_core.translation_cka(X, moved, v, 1e8) == pytest.approx(limit, abs=1e-5)


def test_limit_is_cka_with_the_membership_indicator():
    X, moved, _ = _problem(7)
    t = moved.astype(float)[:, None]
    assert cka_core.translation_cka_limit(X, moved) == pytest.approx(ref.linear_cka(X, t), abs=1e-10)
    assert cka_core.translation_cka_limit(X, moved) == pytest.approx(cka_core.linear_cka(X, t), abs=1e-10)


@PROPERTY
@given(seeds, st.floats(-1e3, 1e3), st.floats(0.01, 100))
def test_property_closed_form(seed, c, scale):
    """For random X (uncentred), masks, directions and c: closed form == brute force; the length of
    `direction` does not matter; moving the complement by -c is the same (a global translation);
    the limit is symmetric in which subset moves."""
    X, moved, v = _problem(seed)
    got = cka_core.translation_cka(X, moved, v, c)
    assert got == pytest.approx(ref.translation_cka(X, moved, v, c), abs=1e-9)
    assert cka_core.translation_cka(X, moved, scale * v, c) == pytest.approx(got, abs=1e-10)
    assert cka_core.translation_cka(X, ~moved, v, -c) == pytest.approx(got, abs=1e-9)
    assert cka_core.translation_cka_limit(X, ~moved) == pytest.approx(
        cka_core.translation_cka_limit(X, moved), abs=1e-12)
    assert -1e-12 <= got <= 1 + 1e-12


@PROPERTY
@given(seeds)
def test_property_theorem1_equals_general_limit(seed):
    """R6: for centred X, Gamma(rho) ||mu_S||^2 sqrt(PR(X)) / E||x||^2 (S = the subset that stays,
    rho = |S| / n, any rho thanks to Cor. 2) equals the general limit."""
    X, moved, _ = _problem(seed, offset=False)
    X = X - X.mean(0)
    stay = ~moved
    rho = stay.mean()
    mu_s = X[stay].mean(0)
    lam = np.linalg.eigvalsh(X.T @ X / len(X))
    pr = lam.sum() ** 2 / (lam**2).sum()
    theorem1 = rho / (1 - rho) * (mu_s @ mu_s) * np.sqrt(pr) / np.mean(np.sum(X**2, axis=1))
    assert cka_core.translation_cka_limit(X, moved) == pytest.approx(theorem1, rel=1e-9, abs=1e-12)


def test_all_or_nothing_moved_is_a_global_translation():
    X, _, v = _problem(3)
    c = np.array([0.0, 1.0, 1e3])
    for mask in (np.ones(len(X), bool), np.zeros(len(X), bool)):
        np.testing.assert_allclose(cka_core.translation_cka(X, mask, v, c), 1.0, atol=1e-10)
        # nothing moves relative to anything else: CKA is 1 for every c, so the limit is 1 (the
        # formula's 0/0 may also be refused as bad input -- but never 0 or NaN)
        try:
            limit = cka_core.translation_cka_limit(X, mask)
        except cka_core.RepresentationError:
            continue
        assert limit == pytest.approx(1.0, abs=1e-10)


def test_translation_orthogonal_to_separating_normal_keeps_separability_but_drops_cka():
    """Cor. 4 in miniature: two separable clusters, one moved along a direction orthogonal to the
    separating normal e1: the e1 coordinate (hence any e1 classifier) is unchanged, CKA falls."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 20))
    X[100:, 0] += 3.0
    moved = np.arange(200) >= 100
    v = np.zeros(20)
    v[1] = 1.0
    assert ref.translated(X, moved, v, 50.0)[:, 0] == pytest.approx(X[:, 0])
    assert cka_core.translation_cka(X, moved, v, 50.0) < 0.5
    assert cka_core.translation_cka_limit(X, moved) < 0.5
