"""cka_core.transforms: each transformation against its definition, and the invariances the
measures declare checked against every transformation that belongs to them."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cka_core import MEASURES, RepresentationError, linear_cka, similarity
from cka_core.pitfalls import transforms as T
from cka_core.measures import INVARIANCES

SETTINGS = settings(max_examples=25, deadline=None)


def _data(n: int = 80, d: int = 12, seed: int = 0, decay: float = 0.8) -> np.ndarray:
    """Gaussian data with a decaying spectrum and an offset, read-only like the app's arrays."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)) * decay ** np.arange(d) + 3.0
    x.setflags(write=False)
    return x


# ------------------------------------------------------------------ random matrices


@SETTINGS
@given(d=st.integers(1, 40), seed=st.integers(0, 2**16))
def test_haar_orthogonal_is_orthogonal(d, seed):
    q = T.haar_orthogonal(d, seed)
    assert q.shape == (d, d)
    np.testing.assert_allclose(q.T @ q, np.eye(d), atol=1e-12)
    np.testing.assert_array_equal(q, T.haar_orthogonal(d, seed))  # seeded


def test_haar_orthogonal_is_uniform_not_qr_biased():
    # Without the sign fix of Mezzadri (2007), diag(Q) is biased; Haar gives E[Q_ii] = 0.
    diag = np.array([np.diag(T.haar_orthogonal(3, s)) for s in range(400)])
    assert np.all(np.abs(diag.mean(axis=0)) < 0.1)
    assert not np.array_equal(T.haar_orthogonal(5, 0), T.haar_orthogonal(5, 1))


@SETTINGS
@given(d=st.integers(1, 40), log_kappa=st.floats(0.0, 4.0), seed=st.integers(0, 2**16))
def test_conditioned_matrix_has_condition_number_kappa(d, log_kappa, seed):
    kappa = 10.0**log_kappa
    m = T.conditioned_matrix(d, kappa, seed)
    sigma = np.linalg.svd(m, compute_uv=False)
    if d > 1:
        assert abs(np.linalg.cond(m) / kappa - 1) < 1e-8
        np.testing.assert_allclose(np.sort(sigma), np.logspace(0, np.log10(kappa), d), rtol=1e-8)
    else:
        np.testing.assert_allclose(sigma, [1.0])


def test_conditioned_matrix_kappa_one_is_orthogonal():
    m = T.conditioned_matrix(10, 1.0, 3)
    np.testing.assert_allclose(m.T @ m, np.eye(10), atol=1e-12)


@pytest.mark.parametrize("kappa", [0.5, 0.0, -2.0, float("nan"), float("inf")])
def test_conditioned_matrix_refuses_bad_kappa(kappa):
    with pytest.raises(RepresentationError, match="kappa|condition number"):
        T.conditioned_matrix(5, kappa)


def test_lognormal_scales():
    np.testing.assert_array_equal(T.lognormal_scales(7, 0.0), np.ones(7))
    s = T.lognormal_scales(20_000, 0.5, seed=1)
    assert np.all(s > 0)
    assert abs(np.log(s).std() - 0.5) < 0.01
    with pytest.raises(RepresentationError, match="spread"):
        T.lognormal_scales(3, -1.0)
    pairs = T.lognormal_scales(40_000, 1.0, seed=2).reshape(-1, 2)
    ratio = pairs.max(axis=1) / pairs.min(axis=1)
    assert abs(np.median(ratio) / T.median_scale_ratio(1.0) - 1) < 0.03
    assert T.median_scale_ratio(0.0) == 1.0


# ------------------------------------------------------------------ the transformations


def test_orthogonal_map_is_x_times_q_and_keeps_distances():
    x = _data()
    y, q = T.orthogonal_map(x, seed=4)
    np.testing.assert_allclose(y, x @ q)
    np.testing.assert_allclose(np.linalg.norm(y[0] - y[1]), np.linalg.norm(x[0] - x[1]))
    assert abs(linear_cka(x, y) - 1) < 1e-12


@SETTINGS
@given(a=st.floats(1e-3, 1e3))
def test_isotropic_scaling(a):
    x = _data()
    np.testing.assert_allclose(T.isotropic_scaling(x, a), a * x)
    assert abs(linear_cka(x, T.isotropic_scaling(x, a)) - 1) < 1e-12


@pytest.mark.parametrize("a", [0.0, -1.0, float("nan")])
def test_isotropic_scaling_refuses_non_positive_factor(a):
    with pytest.raises(RepresentationError, match="scale factor"):
        T.isotropic_scaling(_data(), a)


def test_anisotropic_scaling_is_diagonal():
    x = _data()
    y, s = T.anisotropic_scaling(x, 1.0, seed=2)
    np.testing.assert_allclose(y, x @ np.diag(s))
    np.testing.assert_array_equal(T.anisotropic_scaling(x, 0.0)[0], x)


def test_one_feature_scaling_scales_exactly_one_varying_feature():
    x = np.array(_data(d=6))
    x[:, 2] = 5.0  # a dead unit: never the one chosen
    for seed in range(20):
        y, s = T.one_feature_scaling(x, 7.0, seed)
        changed = np.flatnonzero(s != 1.0)
        assert changed.size == 1 and changed[0] != 2 and s[changed[0]] == 7.0
        np.testing.assert_allclose(y, x * s)
    with pytest.raises(RepresentationError, match="constant"):
        T.one_feature_scaling(np.ones((5, 3)), 2.0)


def test_one_feature_scaling_matches_r9_on_isotropic_data():
    # notes R9: (a^2 + d - 1) / (sqrt(d) sqrt(a^4 + d - 1)); d = 100, a = 10 -> 0.198
    d, a = 100, 10.0
    x = np.random.default_rng(0).standard_normal((20_000, d))
    y, _ = T.one_feature_scaling(x, a, seed=0)
    expected = (a**2 + d - 1) / (np.sqrt(d) * np.sqrt(a**4 + d - 1))
    assert abs(linear_cka(x, y) - expected) < 0.01


def test_invertible_map_is_x_times_m():
    x = _data()
    y, m = T.invertible_map(x, 100.0, seed=5)
    np.testing.assert_allclose(y, x @ m)
    assert abs(np.linalg.cond(m) / 100.0 - 1) < 1e-8


@SETTINGS
@given(d=st.integers(1, 30), seed=st.integers(0, 2**16))
def test_feature_permutation_is_a_permutation(d, seed):
    x = _data(n=10, d=d)
    y, perm = T.feature_permutation(x, seed)
    np.testing.assert_array_equal(np.sort(perm), np.arange(d))
    np.testing.assert_array_equal(y, x[:, perm])
    p = np.eye(d)[:, perm]  # the same map as a matrix: orthogonal with 0/1 entries
    np.testing.assert_array_equal(y, x @ p)


@SETTINGS
@given(c=st.floats(0.0, 1e3), seed=st.integers(0, 100))
def test_translation_shifts_every_row_by_the_same_vector(c, seed):
    x = _data()
    y, b = T.translation(x, c, seed)
    np.testing.assert_allclose(y - x, np.broadcast_to(b, x.shape), atol=1e-9 * (1 + c))
    rms = np.sqrt(np.mean(np.sum((x - x.mean(0)) ** 2, axis=1)))
    assert np.isclose(np.linalg.norm(b), c * rms)


def test_gaussian_noise_has_the_stated_std():
    x = _data(n=4000, d=20)
    y, std = T.gaussian_noise(x, 0.5, seed=1)
    rms_feature_std = np.sqrt(np.mean(x.var(axis=0)))
    assert np.isclose(std, 0.5 * rms_feature_std)
    assert abs((y - x).std() / std - 1) < 0.02
    np.testing.assert_array_equal(T.gaussian_noise(x, 0.0)[0], x)
    with pytest.raises(RepresentationError, match="same point"):
        T.gaussian_noise(np.ones((5, 3)), 0.1)


@SETTINGS
@given(n=st.integers(5, 60), d=st.integers(1, 15), data=st.data(), seed=st.integers(0, 1000))
def test_top_k_projection_matches_r8(n, d, data, seed):
    x = _data(n=n, d=d, seed=seed)
    k = data.draw(st.integers(1, d))
    y, lambdas = T.top_k_projection(x, k)
    assert abs(linear_cka(x, y) - T.top_k_cka(lambdas, k)) < 1e-9
    xc = x - x.mean(0)
    np.testing.assert_allclose(np.sort(lambdas), np.sort(np.linalg.eigvalsh(xc.T @ xc / n))[-lambdas.size:],
                               atol=1e-9 * lambdas.max())
    np.testing.assert_allclose(y.mean(0), x.mean(0), atol=1e-9 * (1 + np.abs(x).max()))


def test_top_k_projection_r8_isotropic_values():
    # notes R8: isotropic d = 100, k = 1, 10, 50 -> 0.10, 0.316, 0.707. An exactly isotropic X
    # (orthonormal, centred columns) gives these values exactly.
    z = np.random.default_rng(0).standard_normal((1000, 100))
    x, _ = np.linalg.qr(z - z.mean(0))
    for k, expected in [(1, 0.1), (10, np.sqrt(0.1)), (50, np.sqrt(0.5))]:
        y, lambdas = T.top_k_projection(x, k)
        assert abs(linear_cka(x, y) - expected) < 1e-9
        assert abs(T.top_k_cka(lambdas, k) - expected) < 1e-9


def test_top_k_projection_keeps_everything_at_full_rank():
    x = _data()
    np.testing.assert_allclose(T.top_k_projection(x, x.shape[1])[0], x, atol=1e-10)


@pytest.mark.parametrize("k", [0, 13, 100, 2.5])
def test_top_k_projection_refuses_bad_k(k):
    with pytest.raises(RepresentationError, match="between 1 and 12"):
        T.top_k_projection(_data(d=12), k)


def test_inputs_are_validated():
    with pytest.raises(RepresentationError, match="NaN"):
        T.orthogonal_map(np.array([[1.0, np.nan], [0.0, 1.0]]))
    with pytest.raises(RepresentationError, match="not numeric"):
        T.feature_permutation(np.array([["a", "b"]], dtype=object))
    assert T.isotropic_scaling(np.arange(5.0).reshape(-1, 1), 2.0).shape == (5, 1)  # one feature is fine


# ------------------------------------------------------------------ registry and declared invariances


def test_registry_is_consistent():
    for name, info in T.TRANSFORMATIONS.items():
        assert info.name == name
        assert info.belongs_to <= set(INVARIANCES)
    with pytest.raises(RepresentationError, match="unknown transformation"):
        T.transform(_data(), "shear")
    with pytest.raises(RepresentationError, match="needs a strength"):
        T.transform(_data(), "isotropic")


STRENGTHS = {"orthogonal": None, "isotropic": 10.0, "anisotropic": 1.0, "one_feature": 10.0, "invertible": 100.0,
             "permutation": None, "translation": 10.0, "noise": 0.3, "top_k": 3}


@pytest.mark.parametrize("name", list(T.TRANSFORMATIONS))
def test_every_transformation_is_seeded_keeps_rows_and_never_writes(name):
    x = _data()
    y = T.transform(x, name, STRENGTHS[name], seed=1)
    assert y.shape == x.shape and y.dtype == np.float64
    np.testing.assert_array_equal(y, T.transform(x, name, STRENGTHS[name], seed=1))
    assert not x.flags.writeable  # read-only input was accepted, not copied into


@pytest.mark.parametrize("name", [t for t in T.TRANSFORMATIONS if T.TRANSFORMATIONS[t].belongs_to])
@pytest.mark.parametrize("seed", [0, 7])
def test_declared_invariances_hold(name, seed):
    """The contract behind the page's ✓ cells: a declared invariance never moves by more than 1e-6."""
    x = _data(n=60, d=10, seed=seed)
    strength = {"isotropic": 1e-3 if seed else 1e3, "translation": 1e3}.get(name, STRENGTHS[name])
    y = T.transform(x, name, strength, seed)
    # dCKA's inputs: a non-linear function of a few features, so part (not all) of x is explained.
    inputs = np.tanh(2 * x[:, :3] - 6.0)
    for m, info in MEASURES.items():
        if T.declared_invariant(info.invariances, name):
            options = {"inputs": inputs} if info.needs_inputs else {}
            if info.needs_labels:  # x read as the logits of 12 classes, with true classes in turn
                options["labels"] = np.arange(x.shape[0]) % x.shape[1]
            assert abs(similarity(x, y, m, **options) - similarity(x, x, m, **options)) <= 1e-6, (m, name)


def test_declared_invariant_uses_class_inclusion():
    # a permutation is an orthogonal map; PWCCA declares permutations but not rotations
    assert T.declared_invariant({"orthogonal"}, "permutation")
    assert T.declared_invariant({"permutation"}, "permutation")
    assert not T.declared_invariant({"permutation"}, "orthogonal")
    assert T.declared_invariant({"invertible_linear"}, "anisotropic")
    assert not T.declared_invariant(set(INVARIANCES), "noise")
    assert not T.declared_invariant(set(INVARIANCES), "top_k")


def test_measures_that_promise_nothing_do_move():
    # sanity of the demonstration: linear CKA moves under an ill-conditioned map, noise and PC deletion
    x = _data(n=200, d=10)
    for name, strength in [("invertible", 1e3), ("noise", 1.0), ("top_k", 1), ("one_feature", 100.0)]:
        assert linear_cka(x, T.transform(x, name, strength, 0)) < 0.99, name
