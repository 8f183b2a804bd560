"""The differentiable minibatch CKA map: the same numbers as cka_core, correct gradients, safe edges."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import sample_models
from cka_core import RepresentationError, capture, cka_matrix
from cka_core.cka.differentiable import hsic1_matrix, log_cosh, map_loss, minibatch_cka_map, u_centred_gram


def _layers(seed: int, n: int, widths, offset: float = 0.0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(n, 5, generator=g, dtype=torch.float64)
    out = []
    for w in widths:  # related layers: a shared part plus noise, so CKA is neither 0 nor 1
        mix = torch.randn(5, w, generator=g, dtype=torch.float64)
        out.append(base @ mix + 0.7 * torch.randn(n, w, generator=g, dtype=torch.float64) + offset)
    return out


@pytest.mark.parametrize("n,widths,offset", [(6, (3, 2), 0.0), (40, (3, 17, 64), 0.0), (128, (64, 64, 10), 50.0),
                                             (30, (200, 5), 1e3)])
def test_matches_full_data_debiased_cka_of_the_batch(n, widths, offset):
    layers = _layers(n, n, widths, offset)
    ours = minibatch_cka_map(layers).numpy()
    reference = cka_matrix(layers, debiased=True, batch_size=None)
    np.testing.assert_allclose(ours, reference, rtol=0, atol=1e-8)


def test_matches_on_real_activations_of_a_zoo_network():
    model = sample_models.load("mlp_deep")
    names = sample_models.layer_names(model)
    x = sample_models.digits().X_train[:128]
    acts = capture(model, x, names)
    layers = [torch.from_numpy(np.asarray(acts[k], dtype=np.float64)) for k in names]
    np.testing.assert_allclose(minibatch_cka_map(layers).numpy(), cka_matrix(layers, debiased=True), atol=1e-8)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(4, 24), w1=st.integers(1, 12), w2=st.integers(1, 12), seed=st.integers(0, 10_000))
def test_property_symmetric_unit_diagonal_and_equal_to_reference(n, w1, w2, seed):
    layers = _layers(seed, n, (w1, w2))
    ours = minibatch_cka_map(layers)
    assert torch.allclose(ours, ours.T)
    assert torch.allclose(torch.diagonal(ours), torch.ones(2, dtype=torch.float64))
    np.testing.assert_allclose(ours.numpy(), cka_matrix(layers, debiased=True), atol=1e-8)


def test_gradients_are_correct():
    layers = [t.requires_grad_(True) for t in _layers(1, 7, (3, 4, 2))]
    assert torch.autograd.gradcheck(lambda *xs: minibatch_cka_map(list(xs)), layers, eps=1e-6, atol=1e-6)
    target = torch.eye(3, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda *xs: map_loss(minibatch_cka_map(list(xs)), target), layers)


def test_u_centred_gram_is_the_unbiased_hsic_building_block():
    x = _layers(2, 9, (4,))[0]
    k = u_centred_gram(x)
    assert torch.allclose(torch.diagonal(k), torch.zeros(9, dtype=torch.float64))
    # U-centred Grams have zero row sums, and ignore a translation of the features
    assert torch.allclose(k.sum(dim=1), torch.zeros(9, dtype=torch.float64), atol=1e-10)
    assert torch.allclose(u_centred_gram(x + 1e3), k, atol=1e-8)


def test_float32_input_with_offset_is_computed_in_float64():
    layers = _layers(3, 64, (16, 16), offset=0.0)
    shifted32 = [(t + 1e4).float() for t in layers]
    reference = cka_matrix([t.double() for t in shifted32], debiased=True)  # the same float32 values, exactly
    np.testing.assert_allclose(minibatch_cka_map(shifted32).numpy(), reference, atol=1e-6)


def test_constant_layer_gives_zero_similarity_and_finite_gradients():
    layers = _layers(4, 10, (3,))
    constant = torch.full((10, 3), 2.5, dtype=torch.float64, requires_grad=True)
    varying = layers[0].requires_grad_(True)
    m = minibatch_cka_map([varying, constant])
    assert torch.isfinite(m).all() and float(m[0, 1].detach()) == 0.0
    map_loss(m, torch.eye(2, dtype=torch.float64)).backward()
    assert torch.isfinite(varying.grad).all() and torch.isfinite(constant.grad).all()


def test_too_few_rows_and_mismatched_layers_are_refused():
    with pytest.raises(RepresentationError, match="at least 4"):
        minibatch_cka_map([torch.randn(3, 2), torch.randn(3, 2)])
    with pytest.raises(RepresentationError, match="same batch"):
        hsic1_matrix([torch.randn(8, 2), torch.randn(9, 2)])
    with pytest.raises(RepresentationError, match="shape"):
        map_loss(torch.eye(3), torch.eye(2))


def test_log_cosh_is_stable():
    x = torch.tensor([-1e4, -30.0, -1.0, 0.0, 0.5, 30.0, 1e4], dtype=torch.float64)
    y = log_cosh(x)
    assert torch.isfinite(y).all()
    moderate = x.abs() <= 30
    np.testing.assert_allclose(y[moderate].numpy(), np.log(np.cosh(x[moderate].numpy())), rtol=1e-12, atol=1e-14)
    assert float(y[0]) == pytest.approx(1e4 - np.log(2.0))
