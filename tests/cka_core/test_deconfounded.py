"""Deconfounded CKA (Cui et al. 2022): values against an independent reference, the invariances it
declares (hypothesis), the cases where it is undefined, and its use through similarity_matrix and
the resampling functions (resamples keep each layer paired with its own inputs)."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import cka_core
from cka_core.stats.resampling import bootstrap, permutation_test
from cka_core.measures import similarity_matrix
from cka_core.measures.view import LayerView
from cka_core.measures.deconfounded import deconfounded_cka_of

from . import reference as ref
from .cka_testdata import PROPERTY_FEW, invariance_map, seeds


def confounded_triple(rng, n: int, d0: int, dx: int, dy: int):
    """Inputs and two layers that each mix a function of the inputs with their own features, so the
    inputs' Gram explains part, not all, of each layer's."""
    inputs = rng.standard_normal((n, d0)) * rng.uniform(0.5, 2.0, d0) + 1.0
    shared = rng.standard_normal((n, 2))
    X = np.maximum(inputs @ rng.standard_normal((d0, dx)), 0) + shared @ rng.standard_normal((2, dx))
    Y = np.tanh(inputs @ rng.standard_normal((d0, dy))) + shared @ rng.standard_normal((2, dy))
    return inputs, X + rng.uniform(-3, 3, dx), Y + 0.3 * rng.standard_normal((n, dy))


def dcka(X, Y, inputs):
    return cka_core.similarity(X, Y, "deconfounded_cka", inputs=inputs)


@pytest.mark.parametrize("n,d0,dx,dy", [(40, 5, 6, 4), (30, 8, 3, 9), (25, 3, 40, 30), (60, 12, 1, 2)])
def test_matches_the_independent_reference(n, d0, dx, dy):
    inputs, X, Y = confounded_triple(np.random.default_rng(n + dx), n, d0, dx, dy)
    assert dcka(X, Y, inputs) == pytest.approx(ref.deconfounded_cka(X, Y, inputs), abs=1e-9)


def test_registry_entry():
    info = cka_core.MEASURES["deconfounded_cka"]
    assert info.needs_inputs and info.higher_is_similar and info.symmetric
    assert info.value_range == (0.0, 1.0)
    assert info.invariances == {"orthogonal", "isotropic_scaling", "translation", "permutation"}
    assert not any(m.needs_inputs for name, m in cka_core.MEASURES.items() if name != "deconfounded_cka")


def test_the_input_similarity_no_longer_counts():
    """Two layers that share nothing but (different) linear functions of the inputs: CKA is well
    above dCKA. Shared features beyond the inputs then move dCKA several times more than CKA."""
    rng = np.random.default_rng(3)
    inputs = rng.standard_normal((150, 10))
    X = inputs @ rng.standard_normal((10, 20)) + 0.5 * rng.standard_normal((150, 20))
    Y = inputs @ rng.standard_normal((10, 20)) + 0.5 * rng.standard_normal((150, 20))
    common = 6 * rng.standard_normal((150, 3))
    assert cka_core.linear_cka(X, Y) > 0.6 and dcka(X, Y, inputs) < 0.3
    cka_gain = cka_core.linear_cka(np.hstack([X, common]), np.hstack([Y, common])) - cka_core.linear_cka(X, Y)
    dcka_gain = dcka(np.hstack([X, common]), np.hstack([Y, common]), inputs) - dcka(X, Y, inputs)
    assert dcka_gain > 0.4 and dcka_gain > 3 * cka_gain


@PROPERTY_FEW
@given(seed=seeds, kind=st.sampled_from(sorted(cka_core.MEASURES["deconfounded_cka"].invariances)),
       side=st.sampled_from(["X", "Y", "inputs"]))
def test_property_declared_invariances_hold(seed, kind, side):
    """Each declared invariance holds for either layer, and the same maps of the inputs change nothing
    (they scale the inputs' Gram, and the regression absorbs the scale)."""
    rng = np.random.default_rng(seed)
    inputs, X, Y = confounded_triple(rng, int(rng.integers(20, 45)), int(rng.integers(2, 8)),
                                     int(rng.integers(2, 8)), int(rng.integers(2, 8)))
    base = dcka(X, Y, inputs)
    moved = {"X": X, "Y": Y, "inputs": inputs}
    moved[side] = invariance_map(kind, moved[side], rng)
    assert dcka(moved["X"], moved["Y"], moved["inputs"]) == pytest.approx(base, abs=1e-7)


@PROPERTY_FEW
@given(seed=seeds)
def test_property_range_symmetry_and_self_similarity(seed):
    rng = np.random.default_rng(seed)
    inputs, X, Y = confounded_triple(rng, int(rng.integers(12, 40)), 3, int(rng.integers(1, 50)),
                                     int(rng.integers(1, 6)))
    value = dcka(X, Y, inputs)
    assert 0.0 <= value <= 1.0
    assert dcka(Y, X, inputs) == pytest.approx(value, abs=1e-12)
    assert dcka(X, X, inputs) == pytest.approx(1.0, abs=1e-9)


def test_a_layer_that_is_its_inputs_is_refused():
    """K = c K0 after a rotation, a scale and a shift: the residual is round-off, dCKA is 0/0."""
    rng = np.random.default_rng(1)
    inputs, _, Y = confounded_triple(rng, 30, 4, 3, 5)
    rotated = 3.0 * inputs @ ref.random_orthogonal(4, rng) + 5.0
    with pytest.raises(cka_core.RepresentationError, match="affine function of the inputs' Gram"):
        dcka(rotated, Y, inputs)


@pytest.mark.parametrize("options,match", [
    ({}, "deconfounded CKA needs inputs"),
    ({"inputs": np.ones((30, 3))}, "inputs.*constant|does not vary|same"),
    ({"inputs": np.zeros((29, 3)) + np.arange(29)[:, None]}, "inputs have 29 rows but the layers have 30"),
])
def test_bad_inputs_are_clear_errors(options, match):
    _, X, Y = confounded_triple(np.random.default_rng(2), 30, 3, 4, 4)
    with pytest.raises(cka_core.RepresentationError, match=match):
        similarity_matrix([X], [Y], measure="deconfounded_cka", **options)


def test_inputs_given_to_another_measure_are_refused():
    inputs, X, Y = confounded_triple(np.random.default_rng(2), 30, 3, 4, 4)
    for measure in ("linear_cka", "procrustes"):
        with pytest.raises(cka_core.RepresentationError, match="inputs apply to deconfounded CKA only"):
            similarity_matrix([X], [Y], measure=measure, inputs=inputs)


def test_matrix_matches_pair_by_pair():
    rng = np.random.default_rng(4)
    inputs, X, Y = confounded_triple(rng, 50, 6, 5, 7)
    _, Z, _ = confounded_triple(rng, 50, 6, 3, 2)
    layers = {"x": X, "y": Y, "z": Z}
    matrix = similarity_matrix(layers, measure="deconfounded_cka", inputs=inputs)
    for i, a in enumerate(layers.values()):
        for j, b in enumerate(layers.values()):
            assert matrix[i, j] == pytest.approx(ref.deconfounded_cka(a, b, inputs), abs=1e-9)


def test_resamples_regress_on_the_same_rows_of_the_inputs():
    """A bootstrap resample and a permuted view give the values of recomputing from scratch on those
    rows of the layers and of the inputs."""
    rng = np.random.default_rng(5)
    inputs, X, Y = confounded_triple(rng, 40, 5, 6, 4)
    vx, vy, vi = LayerView.of(X), LayerView.of(Y), LayerView.of(inputs, "inputs")
    deconfounded_cka_of(vx, vy, vi)  # fills the caches a permuted view reuses
    index = rng.integers(0, 40, 40)
    assert deconfounded_cka_of(vx.rows(index), vy.rows(index), vi) == pytest.approx(
        ref.deconfounded_cka(X[index], Y[index], inputs[index]), abs=1e-9)
    # Y shuffled together with its own inputs (the permutation test's null): Y's deconfounded Gram, reordered.
    perm = rng.permutation(40)
    expected = ref.cka_from_grams(ref.deconfounded_gram(X, inputs), ref.deconfounded_gram(Y[perm], inputs[perm]))
    assert deconfounded_cka_of(vx, vy.permuted(perm), vi) == pytest.approx(expected, abs=1e-9)


def test_bootstrap_and_permutation_test_run_on_it():
    rng = np.random.default_rng(6)
    inputs, X, Y = confounded_triple(rng, 40, 5, 6, 4)
    boot = bootstrap([X, Y], measure="deconfounded_cka", inputs=inputs, n_resamples=20)
    assert np.all(boot.low <= boot.values + 1e-12) and np.all(boot.values <= boot.high + 1e-12)
    perm = permutation_test([X], [Y], measure="deconfounded_cka", inputs=inputs, n_permutations=30)
    assert perm.values[0, 0] == pytest.approx(dcka(X, Y, inputs), abs=1e-12)
    assert 0 < perm.p_values[0, 0] <= 1
