"""ReSi's alignment and spectral measures (cka_core/measures/alignment.py, spectral.py): exact values on
pairs whose answer is known in closed form, GULP's ridge parameter and its CCA limit, the zero padding of
the narrower layer, the distances in the layers' own units at extreme scales, and invariances they do
not have (each visibly fails). The references and the declared invariances are checked for every measure
in test_measures.py."""
import itertools
import math

import numpy as np
import pytest

import cka_core
from cka_core import measures
from cka_core.errors import RepresentationError

from . import reference as ref
from .cka_testdata import correlated_pair


def _value(name, X, Y, **options):
    return cka_core.similarity(X, Y, name, **options)


# ----------------------------------------------------------------- exact values
@pytest.mark.parametrize("rho", [0.3, 0.8])
def test_known_values_on_a_whitened_pair(rho):
    """X, Y centred with X^T X = Y^T Y = I_d and X^T Y = rho I_d: every canonical correlation and every
    neuron's correlation with its partner is rho, the others 0."""
    d = 5
    X, Y = ref.whitened_pair(80, d, rho, np.random.default_rng(4))
    expected = {
        "orthogonal_procrustes": math.sqrt(2 - 2 * rho),          # unit norm: nuclear norm d rho / d
        "procrustes_size_and_shape": math.sqrt(2 * d - 2 * d * rho),
        "eigenspace_overlap": rho ** 2,                           # sum of d rho^2 over rank d
        "gulp": math.sqrt(2 * d * (1 - rho ** 2)),                # rank + rank - 2 sum rho^2
        "hard_correlation_match": rho,
        "soft_correlation_match": rho,
    }
    for name, value in expected.items():
        assert _value(name, X, Y) == pytest.approx(value, abs=1e-10), name


def test_orthogonal_procrustes_is_the_chord_of_the_procrustes_angle():
    """Both layers at unit norm: the residual after the best rotation is the chord 2 sin(theta / 2) of
    the angle theta = arccos ||X~^T Y~||_* between them."""
    X, Y = correlated_pair(np.random.default_rng(1), 60, 6, 4)
    theta = cka_core.similarity(X, Y, "procrustes")
    assert _value("orthogonal_procrustes", X, Y) == pytest.approx(2 * math.sin(theta / 2), abs=1e-12)


def test_size_and_shape_counts_scale_and_equals_the_normalised_distance_at_unit_norms():
    X, Y = correlated_pair(np.random.default_rng(2), 50, 5, 3)
    Xc, Yc = X - X.mean(0), Y - Y.mean(0)
    Xu, Yu = Xc / np.linalg.norm(Xc), Yc / np.linalg.norm(Yc)
    assert _value("procrustes_size_and_shape", Xu, Yu) == pytest.approx(_value("orthogonal_procrustes", X, Y),
                                                                         abs=1e-12)
    # A layer against twice itself: the best rotation is the identity, the residual ||X_c||.
    assert _value("procrustes_size_and_shape", X, 2 * X) == pytest.approx(np.linalg.norm(Xc), rel=1e-12)
    assert _value("orthogonal_procrustes", X, 2 * X) == pytest.approx(0.0, abs=1e-7)


def test_permutation_procrustes_undoes_a_shuffle_of_the_neurons_and_nothing_else():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((40, 6)) + 2.0
    assert _value("permutation_procrustes", X, X[:, rng.permutation(6)]) == 0.0
    # Not centred: a shift c of every entry leaves the residual ||c 1||_F = |c| sqrt(n d).
    assert _value("permutation_procrustes", X, X[:, ::-1] + 0.5) == pytest.approx(0.5 * math.sqrt(40 * 6), rel=1e-12)


def test_aligned_cosine_is_one_after_any_rotation_and_the_mean_cosine_without_one():
    rng = np.random.default_rng(4)
    X = rng.standard_normal((30, 4)) + 1.0
    assert _value("aligned_cosine", X, X @ ref.random_orthogonal(4, rng)) == pytest.approx(1.0, abs=1e-12)
    assert _value("aligned_cosine", X, -X) == pytest.approx(1.0, abs=1e-12)  # Q* = -I
    # One feature each: the best rotation is +-1, so the value is |mean of sign(x_i y_i)|.
    x, y = rng.standard_normal((30, 1)), rng.standard_normal((30, 1))
    signs = np.sign(x * y).ravel()
    assert _value("aligned_cosine", x, y) == pytest.approx(abs(signs.mean()), abs=1e-12)


def test_correlation_match_brute_force_on_small_layers():
    """Hard: the best one-to-one matching found by trying every injective map of the narrower layer's
    neurons; soft: each neuron's best partner, both directions averaged."""
    rng = np.random.default_rng(5)
    X = rng.standard_normal((50, 3))
    Y = np.column_stack([X[:, 1] + 0.5 * rng.standard_normal(50), -X[:, 0] + rng.standard_normal(50),
                         rng.standard_normal(50), X[:, 2] * 0.3 + rng.standard_normal(50), rng.standard_normal(50)])
    C = np.corrcoef(X.T, Y.T)[:3, 3:]
    best = max(np.mean([C[i, j] for i, j in enumerate(p)]) for p in itertools.permutations(range(5), 3))
    assert _value("hard_correlation_match", X, Y) == pytest.approx(best, abs=1e-12)
    assert _value("hard_correlation_match", Y, X) == pytest.approx(best, abs=1e-12)
    soft = (C.max(axis=1).mean() + C.max(axis=0).mean()) / 2
    assert _value("soft_correlation_match", X, Y) == pytest.approx(soft, abs=1e-12)


def test_a_dead_unit_has_no_correlation_and_is_left_out():
    """A constant neuron correlates with nothing: the match is that of the layer without it, so a layer
    with dead units matches itself at 1 (ReSi gives a dead unit 0 with every neuron, which read 3/4 here,
    and the Compare page's self-comparison check would have reported a pairing bug)."""
    rng = np.random.default_rng(6)
    X = np.column_stack([rng.standard_normal((40, 3)), np.full(40, 2.5)])
    Y = X[:, :3] @ rng.standard_normal((3, 5)) + rng.standard_normal((40, 5))
    for name in ("hard_correlation_match", "soft_correlation_match"):
        assert _value(name, X, X) == pytest.approx(1.0, abs=1e-12), name
        assert _value(name, X, Y) == pytest.approx(_value(name, X[:, :3], Y), abs=1e-12), name
    from cka_core.stats import sanity
    assert sanity.self_diagonal({"x": X}, measure="hard_correlation_match").status == sanity.PASS


def test_eigenspace_overlap_is_blind_to_any_invertible_map_and_divides_by_the_larger_rank():
    rng = np.random.default_rng(7)
    X = rng.standard_normal((60, 6))
    M = ref.random_orthogonal(6, rng) * np.array([20.0, 5, 1, 1, 0.1, 0.01]) @ ref.random_orthogonal(6, rng)
    assert _value("eigenspace_overlap", X, X @ M) == pytest.approx(1.0, abs=1e-10)
    # Y spans 3 of X's 6 directions: overlap 3 / max(6, 3).
    assert _value("eigenspace_overlap", X, X[:, :3] @ rng.standard_normal((3, 3))) == pytest.approx(0.5, abs=1e-10)


def test_a_far_translation_of_a_layer_with_dead_units_adds_no_direction():
    """Centring a layer with dead units translated far leaves round-off (1e-13 of the largest singular
    value) in their directions; the rank-revealing SVD counts it as one more direction, which the eigenspace
    overlap (divided by the larger rank) and GULP at lam = 0 (rank + rank - ...) would count as a whole one.
    Only directions above the whitening floor count."""
    from cka_core.measures.view import LayerView

    rng = np.random.default_rng(18)
    X = np.maximum(rng.normal(size=(359, 20)) @ rng.normal(size=(20, 64)), 0).round(2)
    X[:, :9] = 0.0
    Y = X + 1e4 * rng.normal(size=64) / 8
    assert LayerView.of(Y).spectrum()[1].size > LayerView.of(X).spectrum()[1].size  # the premise
    assert _value("eigenspace_overlap", X, Y) == pytest.approx(1.0, abs=1e-12)
    assert _value("gulp", X, Y) == pytest.approx(0.0, abs=1e-9)


# ----------------------------------------------------------------- GULP and its ridge parameter
def test_gulp_at_lam_zero_is_the_cca_identity():
    """d_0^2 = rank_X + rank_Y - 2 sum_i rho_i^2 (the canonical correlations), for any widths."""
    for seed, (n, dx, dy) in enumerate([(60, 5, 3), (40, 3, 7), (20, 35, 12)]):
        X, Y = correlated_pair(np.random.default_rng(seed), n, dx, dy)
        rho = measures.canonical_correlations(X, Y)
        rx = np.linalg.matrix_rank(X - X.mean(0))
        ry = np.linalg.matrix_rank(Y - Y.mean(0))
        assert _value("gulp", X, Y) ** 2 == pytest.approx(rx + ry - 2 * np.sum(rho ** 2), abs=1e-9)


@pytest.mark.parametrize("lam", [0.0, 0.1])
def test_gulp_resolves_a_tiny_change_at_a_large_rank(lam):
    """Near d = 0 the textbook form rank + rank - 2 sum rho^2 is a difference of near-equal sums of ~250
    terms, off by ~1e-13, which its square root reads as ~3e-7; the split into non-negative terms resolves
    a change of 1e-9, which moves GULP linearly: twice the change, twice the distance."""
    rng = np.random.default_rng(19)
    X, N = rng.normal(size=(300, 250)), rng.normal(size=(300, 250))
    once, twice = (_value("gulp", X, X + step * N, lam=lam) for step in (1e-9, 2e-9))
    assert 0 < once < 1e-7 and twice / once == pytest.approx(2.0, rel=1e-4)


@pytest.mark.parametrize("lam", [0.01, 0.2, 1.0])
def test_gulp_with_ridge_matches_the_reference_and_the_closed_form(lam):
    X, Y = correlated_pair(np.random.default_rng(8), 50, 5, 4)
    assert _value("gulp", X, Y, lam=lam) == pytest.approx(ref.gulp(X, Y, lam), abs=1e-9)
    # Whitened pair: covariance eigenvalues 1/d each, ridge shares w = 1 / (1 + d lam), so
    # d = sqrt(2 d (1 - rho^2)) w.
    d, rho = 5, 0.6
    A, B = ref.whitened_pair(80, d, rho, np.random.default_rng(9))
    assert _value("gulp", A, B, lam=lam) == pytest.approx(math.sqrt(2 * d * (1 - rho ** 2)) / (1 + d * lam), abs=1e-10)


def test_gulp_with_large_ridge_approaches_the_distance_of_the_linear_grams():
    """lam -> infinity: (X~^T X~ + lam)^-1 -> 1 / lam, so lam d_lam -> ||X~ X~^T - Y~ Y~^T||_F, the
    linear Gram matrices at unit trace: a large ridge weights directions by their variance, as CKA does."""
    X, Y = correlated_pair(np.random.default_rng(10), 40, 5, 3)
    Xc, Yc = X - X.mean(0), Y - Y.mean(0)
    Kx, Ky = Xc @ Xc.T / np.sum(Xc ** 2), Yc @ Yc.T / np.sum(Yc ** 2)
    lam = 1e5
    assert lam * _value("gulp", X, Y, lam=lam) == pytest.approx(np.linalg.norm(Kx - Ky), rel=1e-4)


def test_gulp_with_ridge_is_visibly_not_invariant_to_an_invertible_map():
    """lam = 0 whitens each layer (any invertible map drops out); lam > 0 keeps the spectrum's shape."""
    rng = np.random.default_rng(11)
    X, Y = correlated_pair(rng, 200, 6, 6)
    M = ref.random_orthogonal(6, rng) * np.array([10.0, 5, 1, 1, 0.3, 0.1]) @ ref.random_orthogonal(6, rng)
    assert _value("gulp", X @ M, Y) == pytest.approx(_value("gulp", X, Y), abs=1e-8)
    assert abs(_value("gulp", X @ M, Y, lam=0.1) - _value("gulp", X, Y, lam=0.1)) > 0.05


@pytest.mark.parametrize("lam", [-0.1, math.inf, math.nan])
def test_gulp_refuses_a_ridge_that_is_not_a_finite_non_negative_number(lam):
    X, Y = correlated_pair(np.random.default_rng(12), 30, 3, 3)
    with pytest.raises(RepresentationError, match="gulp: the ridge parameter lam"):
        _value("gulp", X, Y, lam=lam)


def test_gulp_declares_its_ridge_parameter():
    [lam] = cka_core.MEASURES["gulp"].parameters
    assert (lam.name, lam.default, lam.low, lam.high) == ("lam", 0.0, 0.0, 1.0)
    layers = {"a": correlated_pair(np.random.default_rng(13), 30, 4, 3)[0]}
    matrix = measures.similarity_matrix(layers, layers, measure="gulp", lam=0.5)
    assert matrix[0, 0] == pytest.approx(0.0, abs=1e-7)


# ----------------------------------------------------------------- unequal widths: the narrower side zero-padded
@pytest.mark.parametrize("name", ["orthogonal_procrustes", "procrustes_size_and_shape", "permutation_procrustes",
                                  "aligned_cosine", "eigenspace_overlap", "gulp"])
def test_unequal_widths_are_the_narrower_layer_zero_padded(name):
    X, Y = correlated_pair(np.random.default_rng(14), 40, 6, 3)
    padded = np.hstack([Y, np.zeros((40, 3))])
    assert _value(name, X, Y) == pytest.approx(_value(name, X, padded), abs=1e-10)


def test_permutation_procrustes_brute_force_with_padding():
    """min over every permutation of the padded width (ReSi's convention: the narrower layer gets zero
    columns, and an unmatched neuron of the wider layer is compared with one of them)."""
    rng = np.random.default_rng(15)
    X, Y = rng.standard_normal((20, 4)) + 1.0, rng.standard_normal((20, 2))
    Yp = np.hstack([Y, np.zeros((20, 2))])
    best = min(np.linalg.norm(X - Yp[:, list(p)]) for p in itertools.permutations(range(4)))
    assert _value("permutation_procrustes", X, Y) == pytest.approx(best, abs=1e-12)
    assert _value("permutation_procrustes", Y, X) == pytest.approx(best, abs=1e-12)


# ----------------------------------------------------------------- distances in the layers' own units
@pytest.mark.parametrize("scale,dtype", [(1e19, np.float32), (1e-25, np.float32), (1e-40, np.float32),
                                         (1e200, np.float64), (1e-200, np.float64)])
@pytest.mark.parametrize("name", ["procrustes_size_and_shape", "permutation_procrustes"])
def test_distances_in_own_units_scale_with_the_data_without_overflow(name, scale, dtype):
    """Scaling both layers by s scales these distances by s; their squares overflow or underflow at
    these scales, which must not show (no inf, no 0, no NaN)."""
    X, Y = correlated_pair(np.random.default_rng(16), 50, 5, 4)
    Xs, Ys = (X * scale).astype(dtype), (Y * scale).astype(dtype)
    expected = _value(name, Xs.astype(np.float64) / scale, Ys.astype(np.float64) / scale) * scale
    with np.errstate(all="raise"):
        got = _value(name, Xs, Ys)
    assert got == pytest.approx(expected, rel=1e-6 if dtype == np.float32 else 1e-12)


# ----------------------------------------------------------------- invariances they do not have
@pytest.mark.parametrize("name,kind,why", [
    ("permutation_procrustes", "orthogonal", "matches single neurons"),
    ("permutation_procrustes", "translation", "the layers are not centred"),
    ("permutation_procrustes", "isotropic_scaling", "in the layers' own units"),
    ("procrustes_size_and_shape", "isotropic_scaling", "in the layers' own units"),
    ("aligned_cosine", "translation", "the layers are not centred: a shift changes every angle"),
    ("hard_correlation_match", "orthogonal", "a rotation mixes the neurons it matches"),
    ("soft_correlation_match", "orthogonal", "a rotation mixes the neurons it matches"),
    ("orthogonal_procrustes", "invertible_linear", "a stretch changes the shape"),
])
def test_an_invariance_it_does_not_declare_visibly_fails(name, kind, why):
    assert kind not in cka_core.MEASURES[name].invariances
    rng = np.random.default_rng(17)
    X, Y = correlated_pair(rng, 100, 5, 5)
    maps = {"orthogonal": lambda Z: Z @ ref.random_orthogonal(5, rng), "translation": lambda Z: Z + 5.0,
            "isotropic_scaling": lambda Z: 3.0 * Z,
            "invertible_linear": lambda Z: Z @ np.diag([10.0, 3, 1, 0.3, 0.1])}
    assert abs(_value(name, maps[kind](X), Y) - _value(name, X, Y)) > 0.01, why


# ----------------------------------------------------------------- input it cannot take
def test_aligned_cosine_without_one_example_nonzero_on_both_sides_is_a_clear_error():
    X = np.array([[0.0], [0.0], [1.0], [2.0]])
    Y = np.array([[1.0], [3.0], [0.0], [0.0]])
    with pytest.raises(RepresentationError, match="aligned_cosine is undefined here"):
        _value("aligned_cosine", X, Y)
    # Rows zero on one side only are left out of the mean: here one example of three counts.
    X2, Y2 = np.array([[0.0], [1.0], [2.0]]), np.array([[1.0], [0.0], [-4.0]])
    assert _value("aligned_cosine", X2, Y2) == pytest.approx(1.0)
