"""Function-preserving edits (cka_core.edits): the edited networks compute the same logits, the edited
representation is what the formula says, CKA is not invariant to them, and bad input is refused."""
from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

import sample_models
from cka_core import RepresentationError, capture, cka_matrix, linear_cka
from cka_core.pitfalls import edits

from .cka_testdata import PROPERTY_FEW

RELU_MLPS = ["mlp_deep", "mlp_seed0", "mlp_wide"]
# float32 carries ~7 digits; logits reach ~57 on these networks, so the float32 network's own roundoff
# (float32 vs float64 forward pass of the *unedited* network) is ~1.6e-5 in absolute terms. The edits are
# held to 1e-5 of the largest logit in float32, and to 1e-10 absolute in float64.
F32_RELATIVE = 1e-5
F64_ABSOLUTE = 1e-10


@functools.lru_cache(maxsize=None)
def _model(name: str, dtype: str = "float32") -> nn.Module:
    return sample_models.load(name).to(getattr(torch, dtype))


def _X(dtype: str = "float32") -> np.ndarray:
    return np.asarray(sample_models.digits().X_test, dtype=dtype)


@functools.lru_cache(maxsize=None)
def _logits(name: str, dtype: str = "float32") -> np.ndarray:
    return sample_models.predict(_model(name, dtype), _X(dtype))


@functools.lru_cache(maxsize=None)
def _layers(name: str, dtype: str = "float32") -> dict[str, np.ndarray]:
    return capture(_model(name, dtype), _X(dtype), sample_models.layer_names(name))


def _assert_same_logits(edited: nn.Module, name: str, dtype: str = "float32") -> float:
    got = sample_models.predict(edited, _X(dtype)).astype(np.float64)
    want = _logits(name, dtype).astype(np.float64)
    change = float(np.max(np.abs(got - want)))
    tolerance = F32_RELATIVE * np.max(np.abs(want)) if dtype == "float32" else F64_ABSOLUTE
    assert change <= tolerance, (change, tolerance)
    assert np.array_equal(np.argmax(got, axis=1), np.argmax(want, axis=1))
    return change


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def _unchanged(model: nn.Module, before: dict[str, torch.Tensor]) -> bool:
    after = model.state_dict()
    hooks = any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())
    return set(after) == set(before) and all(torch.equal(after[k], before[k]) for k in before) and not hooks


def _hidden(name: str) -> list[str]:
    return [layer for layer in sample_models.layer_names(name) if layer != "logits"]


names = st.sampled_from(RELU_MLPS)
seeds = st.integers(0, 2**16)


# ------------------------------------------------------------------ (1) rescaling across a ReLU

@PROPERTY_FEW
@given(name=names, which=st.integers(0, 4), spread=st.floats(0.0, 3.0), seed=seeds)
def test_rescaling_keeps_logits_float32(name, which, spread, seed):
    layer = _hidden(name)[which % len(_hidden(name))]
    model = _model(name)
    before = _state(model)
    width = edits.linear_chain(model, layer).width(model)
    edited = edits.rescale_neurons(model, layer, edits.spread_scales(width, spread, seed))
    _assert_same_logits(edited, name)
    assert _unchanged(model, before)                        # the input network is never edited


@PROPERTY_FEW
@given(which=st.integers(0, 4), neuron=st.integers(0, 63), log_k=st.floats(-3.0, 3.0))
def test_one_neuron_rescaling_keeps_logits_float32_and_float64(which, neuron, log_k):
    layer = _hidden("mlp_deep")[which]
    scales = edits.one_neuron_scales(64, neuron, 10.0**log_k)
    _assert_same_logits(edits.rescale_neurons(_model("mlp_deep"), layer, scales), "mlp_deep")
    _assert_same_logits(edits.rescale_neurons(_model("mlp_deep", "float64"), layer, scales), "mlp_deep", "float64")


@PROPERTY_FEW
@given(which=st.integers(0, 4), spread=st.floats(0.0, 3.0), seed=seeds)
def test_rescaled_layer_is_original_times_d_and_others_unchanged(which, spread, seed):
    layer = _hidden("mlp_deep")[which]
    d = edits.spread_scales(64, spread, seed)
    edited = edits.rescale_neurons(_model("mlp_deep", "float64"), layer, d)
    got = capture(edited, _X("float64"), sample_models.layer_names("mlp_deep"))
    original = _layers("mlp_deep", "float64")
    for name, values in got.items():
        want = original[name] * d if name == layer else original[name]
        np.testing.assert_allclose(values, want, rtol=1e-10, atol=1e-10 * np.abs(want).max(), err_msg=name)


@pytest.mark.parametrize("spread", [0.1, 0.5, 1.0, 2.0, 3.0])
def test_cka_of_the_rescaled_layer_falls_below_one(spread):
    H = _layers("mlp_deep", "float64")["hidden3"]
    d = edits.spread_scales(64, spread, 0)
    assert linear_cka(H, H * d) < 1.0 - 1e-4
    assert linear_cka(H, H * 7.5) == pytest.approx(1.0, abs=1e-12)   # isotropic scaling: invariant


def test_cka_falls_monotonically_with_the_spread():
    H = _layers("mlp_deep", "float64")["hidden5"]
    values = [linear_cka(H, H * edits.spread_scales(64, s, 0)) for s in (0.0, 0.5, 1.0, 2.0, 3.0)]
    assert values[0] == pytest.approx(1.0, abs=1e-12)
    assert all(a > b for a, b in zip(values, values[1:])), values


def test_dead_neurons_do_not_matter():
    H = _layers("mlp_deep", "float64")["hidden5"]
    dead = int(np.flatnonzero(np.ptp(H, axis=0) == 0)[0])
    edited = edits.rescale_neurons(_model("mlp_deep", "float64"), "hidden5", edits.one_neuron_scales(64, dead, 1e3))
    got = capture(edited, _X("float64"), ["hidden5"])["hidden5"]
    assert linear_cka(H, got) == pytest.approx(1.0, abs=1e-12)


# ------------------------------------------------------------------ (3) invertible map + inverse

@PROPERTY_FEW
@given(name=names, which=st.integers(0, 4), log_kappa=st.floats(0.0, 2.0), seed=seeds)
def test_invertible_map_keeps_logits_float32(name, which, log_kappa, seed):
    layer = _hidden(name)[which % len(_hidden(name))]
    model = _model(name)
    before = _state(model)
    width = edits.linear_chain(model, layer).width(model)
    edited, _ = edits.invertible_map_edit(model, layer, edits.random_invertible_map(width, 10.0**log_kappa, seed))
    _assert_same_logits(edited, name)
    assert _unchanged(model, before)


@PROPERTY_FEW
@given(which=st.integers(0, 4), log_kappa=st.floats(0.0, 6.0), seed=seeds)
def test_invertible_map_keeps_logits_float64_and_maps_the_layer(which, log_kappa, seed):
    layer = _hidden("mlp_deep")[which]
    M = edits.random_invertible_map(64, 10.0**log_kappa, seed)
    edited, represent = edits.invertible_map_edit(_model("mlp_deep", "float64"), layer, M)
    tolerance = 1e-12 * 10.0**log_kappa * 100      # float64 roundoff, amplified by the condition number
    got = sample_models.predict(edited, _X("float64"))
    assert np.max(np.abs(got - _logits("mlp_deep", "float64"))) <= max(tolerance, F64_ABSOLUTE)
    H = _layers("mlp_deep", "float64")[layer]
    captured = capture(edited, _X("float64"), [layer])[layer]
    np.testing.assert_allclose(captured, H @ M, atol=1e-12 * np.abs(H @ M).max())
    np.testing.assert_allclose(represent(H), H @ M, atol=1e-12 * np.abs(H @ M).max())


def test_random_invertible_map_has_the_requested_condition_number():
    for kappa in (1.0, 10.0, 1e3, 1e6):
        M = edits.random_invertible_map(64, kappa, 3)
        assert np.linalg.cond(M) == pytest.approx(kappa, rel=1e-6)
        assert np.sum(M**2) == pytest.approx(64.0)
    Q = edits.random_invertible_map(64, 1.0, 0)
    np.testing.assert_allclose(Q.T @ Q, np.eye(64), atol=1e-12)


def test_cka_falls_with_the_condition_number_and_is_one_for_orthogonal_maps():
    H = _layers("mlp_deep", "float64")["hidden4"]
    values = [linear_cka(H, H @ edits.random_invertible_map(64, k, 0)) for k in (1.0, 10.0, 100.0, 1e4, 1e6)]
    assert values[0] == pytest.approx(1.0, abs=1e-10)
    assert all(a > b for a, b in zip(values, values[1:])), values


def test_invertible_map_on_a_non_sequential_layer_shape():
    """A conv block read through Flatten by a Linear: the map acts on the flattened output."""
    model = _model("cnn")
    M = edits.random_invertible_map(512, 10.0, 0)
    edited, _ = edits.invertible_map_edit(model, "conv2", M)
    _assert_same_logits(edited, "cnn")


# ------------------------------------------------------------------ (2) null-space translation

@PROPERTY_FEW
@given(name=names, fraction=st.floats(0.01, 1.0), c=st.floats(-100.0, 100.0), seed=seeds)
def test_null_space_translation_keeps_logits(name, fraction, c, seed):
    layer = _hidden(name)[-1]
    model = _model(name, "float64")
    H = _layers(name, "float64")[layer]
    moved = np.random.default_rng(seed).random(H.shape[0]) < fraction
    edited, v = edits.null_space_translation(model, layer, H, moved, c, seed)
    assert np.linalg.norm(v) == pytest.approx(1.0)
    assert np.max(np.abs(edits._reader_weight(model, layer) @ v)) < 1e-12
    np.testing.assert_allclose(edited[~moved], H[~moved], rtol=0, atol=0)
    np.testing.assert_allclose(edited[moved], H[moved] + c * v, atol=1e-12 * max(1.0, abs(c)))
    # The network continued from the edited layer (capture_edited swaps the layer's output in).
    # (sample_models.run_from is checked in float32 below: in float64 it trips over a float32 probe.)
    layers = edits.capture_edited(model, _X("float64"), sample_models.layer_names(name), {layer: edited})
    np.testing.assert_allclose(layers[layer], edited, rtol=0, atol=0)
    assert np.max(np.abs(layers["logits"] - _logits(name, "float64"))) <= 1e-12 * max(1.0, abs(c)) * 100


def test_null_space_translation_float32_and_cka_falls_with_c():
    model, H = _model("mlp_deep"), _layers("mlp_deep")["hidden5"]
    moved = np.zeros(H.shape[0], bool)
    moved[::5] = True
    typical = np.sqrt(np.mean(np.sum((H - H.mean(axis=0)) ** 2, axis=1)))
    values = []
    for c in (0.1, 1.0, 10.0, 100.0):
        edited, _ = edits.null_space_translation(model, "hidden5", H, moved, c * typical)
        got = sample_models.run_from(model, "hidden5", edited)
        assert np.max(np.abs(got - _logits("mlp_deep"))) <= F32_RELATIVE * np.abs(_logits("mlp_deep")).max()
        values.append(linear_cka(H, edited))
    assert all(a > b for a, b in zip(values, values[1:])) and values[-1] < 0.1, values


def test_capture_edited_leaves_the_model_alone():
    model = _model("mlp_deep", "float64")
    before = _state(model)
    H = _layers("mlp_deep", "float64")["hidden5"]
    got = edits.capture_edited(model, _X("float64"), ["hidden5", "logits"], {"hidden5": H + 1.0}, batch_size=50)
    np.testing.assert_allclose(got["hidden5"], H + 1.0)      # replaced batch by batch, rows kept in order
    assert _unchanged(model, before)


# ------------------------------------------------------------------ CKA maps

def test_model_cka_map_is_the_cka_matrix_of_every_layer():
    names_, values = edits.model_cka_map(_model("mlp_deep", "float64"), _X("float64"))
    assert names_ == sample_models.layer_names("mlp_deep")
    np.testing.assert_allclose(values, cka_matrix(_layers("mlp_deep", "float64")), atol=1e-12)
    np.testing.assert_allclose(np.diag(values), 1.0, atol=1e-12)
    np.testing.assert_allclose(values, values.T, atol=1e-12)


def test_rescaling_changes_only_the_edited_row_of_the_map():
    model = _model("mlp_deep", "float64")
    edited = edits.rescale_neurons(model, "hidden2", edits.spread_scales(64, 2.0, 1))
    _, before = edits.model_cka_map(model, _X("float64"))
    _, after = edits.model_cka_map(edited, _X("float64"))
    diff = np.abs(after - before) > 1e-9
    assert diff[1].any()
    diff[1, :] = diff[:, 1] = False
    assert not diff.any()


# ------------------------------------------------------------------ generic chains and errors

def test_generic_sequential_chain():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.Linear(7, 6), nn.LeakyReLU(0.1), nn.Linear(6, 3),
                        nn.Tanh(), nn.Linear(3, 2)).double()
    X = torch.randn(40, 5, dtype=torch.float64)
    want = net(X)
    for layer, width in (("1", 7), ("3", 6)):
        edited = edits.rescale_neurons(net, layer, edits.spread_scales(width, 1.5, 2))
        assert torch.allclose(edited(X), want, atol=1e-12)
    for layer, width in (("1", 7), ("3", 6), ("5", 3)):
        edited, _ = edits.invertible_map_edit(net, layer, edits.random_invertible_map(width, 30.0, 1))
        assert torch.allclose(edited(X), want, atol=1e-10)
    with pytest.raises(RepresentationError, match="Tanh.*not positively homogeneous"):
        edits.rescale_neurons(net, "5", np.ones(3))


@pytest.mark.parametrize("scales, message", [
    (np.r_[0.0, np.ones(63)], "not positive"),
    (np.r_[-2.0, np.ones(63)], "not positive"),
    (np.r_[np.nan, np.ones(63)], "NaN or infinite"),
    (np.r_[np.inf, np.ones(63)], "NaN or infinite"),
    (np.ones(10), r"shape \(64,\)"),
])
def test_rescaling_refuses_bad_scales(scales, message):
    with pytest.raises(RepresentationError, match=message):
        edits.rescale_neurons(_model("mlp_deep"), "hidden2", scales)


@pytest.mark.parametrize("M, message", [
    (np.zeros((64, 64)), "singular"),
    (np.diag(np.r_[np.ones(63), 0.0]), "singular"),
    (np.diag(np.r_[np.ones(63), 1e-14]), "singular"),
    (np.ones((64, 64)), "singular"),
    (np.eye(10), r"\(64, 64\)"),
    (np.full((64, 64), np.nan), "NaN"),
])
def test_invertible_map_refuses_singular_or_misshapen_matrices(M, message):
    with pytest.raises(RepresentationError, match=message):
        edits.invertible_map_edit(_model("mlp_deep"), "hidden2", M)


@pytest.mark.parametrize("layer, message", [
    ("hidden9", "not a module"),
    ("", "not a module"),
    ("logits", "network's output"),
    ("hidden2.linear", "goes through 'hidden2.act'"),
])
def test_edits_refuse_wrong_layers(layer, message):
    model = _model("mlp_deep")
    with pytest.raises(RepresentationError, match=message):
        edits.rescale_neurons(model, layer, np.ones(64))
    with pytest.raises(RepresentationError, match=message):
        edits.invertible_map_edit(model, layer, np.eye(64))


def test_edits_refuse_networks_they_cannot_compensate():
    with pytest.raises(RepresentationError, match="not positively homogeneous"):
        edits.rescale_neurons(_model("mlp_gamma_heterogeneous"), "hidden1", np.ones(64))
    with pytest.raises(RepresentationError, match="not a sequential network"):
        edits.rescale_neurons(_model("rnn_relu"), "step8", np.ones(64))
    with pytest.raises(RepresentationError, match="Conv2d"):
        edits.invertible_map_edit(_model("cnn"), "conv1", np.eye(1024))
    with pytest.raises(RepresentationError, match="not computed by a Linear"):
        edits.rescale_neurons(_model("cnn"), "conv2", np.ones(512))
    with pytest.raises(RepresentationError, match="nn.Module"):
        edits.rescale_neurons(np.eye(3), "0", np.ones(3))


def test_translation_needs_a_null_space_and_good_input():
    model, H = _model("mlp_deep"), _layers("mlp_deep")
    mask = np.zeros(H["hidden2"].shape[0], bool)
    mask[:3] = True
    assert not edits.has_null_space(model, "hidden2") and edits.has_null_space(model, "hidden5")
    with pytest.raises(RepresentationError, match="full column rank"):
        edits.null_space_translation(model, "hidden2", H["hidden2"], mask, 1.0)
    with pytest.raises(RepresentationError, match="boolean mask"):
        edits.null_space_translation(model, "hidden5", H["hidden5"], mask[:-1], 1.0)
    with pytest.raises(RepresentationError, match="boolean mask"):
        edits.null_space_translation(model, "hidden5", H["hidden5"], mask.astype(int), 1.0)
    with pytest.raises(RepresentationError, match="shape"):
        edits.null_space_translation(model, "hidden5", H["hidden5"][:, :10], mask, 1.0)
    with pytest.raises(RepresentationError, match="finite"):
        edits.null_space_translation(model, "hidden5", H["hidden5"], mask, np.inf)
    with pytest.raises(RepresentationError, match="rows"):
        edits.capture_edited(model, _X(), ["logits"], {"hidden5": H["hidden5"][:10]})


@pytest.mark.parametrize("call, message", [
    (lambda: edits.spread_scales(64, -1.0), "spread"),
    (lambda: edits.spread_scales(0, 1.0), "width"),
    (lambda: edits.one_neuron_scales(64, 64, 2.0), "out of range"),
    (lambda: edits.one_neuron_scales(64, 0, 0.0), "positive"),
    (lambda: edits.one_neuron_scales(64, 0, -3.0), "positive"),
    (lambda: edits.random_invertible_map(64, 0.5), ">= 1"),
    (lambda: edits.random_invertible_map(64, 1e15), "singular"),
    (lambda: edits.model_cka_map(nn.Linear(3, 3), np.zeros((4, 3), np.float32)), "layer_names"),
])
def test_helpers_refuse_bad_parameters(call, message):
    with pytest.raises(RepresentationError, match=message):
        call()
