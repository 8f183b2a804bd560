"""Architectures: shapes, structure, the adaptive controller, layer names firing once."""
import numpy as np
import pytest
import torch

import sample_models as sm
from sample_models import CNN, MLP, RNN, AdaptiveController, AdaptiveRNN, Gamma, build


def _hook_calls(model, names, X):
    """Order in which the named modules fire during one forward pass, with output shapes."""
    modules = dict(model.named_modules())
    calls = []
    handles = [modules[nm].register_forward_hook(lambda m, i, o, nm=nm: calls.append((nm, tuple(o.shape))))
               for nm in names]
    try:
        with torch.no_grad():
            out = model(X)
    finally:
        for h in handles:
            h.remove()
    return calls, out


@pytest.mark.parametrize("model", [
    MLP(), MLP(width=32, depth=5, activation="gamma_homogeneous"), MLP(activation="tanh"),
    MLP(activation="gamma_heterogeneous"), CNN(), RNN(), RNN(activation="gamma_heterogeneous"),
    AdaptiveRNN(hidden_size=12, controller_size=5),
])
def test_shapes_and_layer_names_fire_once_in_order(model):
    X = torch.rand(5, 64)
    names = sm.layer_names(model)
    calls, out = _hook_calls(model, names, X)
    assert out.shape == (5, 10)
    assert [c[0] for c in calls] == names  # each exactly once, in forward order
    assert names[-1] == "logits" and calls[-1][1] == (5, 10)


def test_mlp_structure_is_plain():
    m = MLP(width=16, depth=3)
    assert sm.layer_names(m) == ["hidden1", "hidden2", "hidden3", "logits"]
    assert isinstance(m.hidden2.linear, torch.nn.Linear) and isinstance(m.hidden2.act, torch.nn.ReLU)
    assert m.hidden1.linear.in_features == 64 and m.logits.out_features == 10


def test_relu_rescaling_across_layers_preserves_outputs():
    # the function-preserving edit the module docstring documents
    torch.manual_seed(0)
    m = MLP(width=16, depth=2)
    X = torch.rand(20, 64)
    with torch.no_grad():
        before = m(X)
        d = torch.rand(16) * 3 + 0.1
        m.hidden1.linear.weight.mul_(d[:, None])
        m.hidden1.linear.bias.mul_(d)
        m.hidden2.linear.weight.div_(d[None, :])
        after = m(X)
    torch.testing.assert_close(after, before, rtol=1e-5, atol=1e-5)


def test_rnn_reads_rows_in_order():
    torch.manual_seed(0)
    m = RNN(hidden_size=8)
    X = torch.rand(3, 64)
    with torch.no_grad():
        torch.testing.assert_close(m(X), m(X.reshape(3, 8, 8)))
        # changing only the last row changes the output, and only through the last step
        Y = X.clone()
        Y[:, 56:] += 1
        assert not torch.allclose(m(X), m(Y))
        states = {}
        for name, inp in (("X", X), ("Y", Y)):
            h = dict(m.named_modules())["step7"].register_forward_hook(
                lambda mod, i, o, name=name: states.__setitem__(name, o.clone()))
            m(inp)
            h.remove()
        torch.testing.assert_close(states["X"], states["Y"])  # step 7 has not read row 8 yet
    with pytest.raises(ValueError, match="shape"):
        m(torch.rand(3, 63))


def test_adaptive_controller_shapes():
    ctrl = AdaptiveController(size=6)
    a = torch.randn(4, 10)
    g0 = ctrl.initial_state(a)
    assert g0.shape == (4, 10, 6) and not g0.any()
    n, s, g = ctrl(a, g0)
    assert n.shape == (4, 10) and s.shape == (4, 10) and g.shape == (4, 10, 6)
    # one controller, shared weights: a neuron's (n, s) depends only on its own pre-activation
    n2, s2, _ = ctrl(a[:, :1].expand(4, 10), g0)
    torch.testing.assert_close(n2[:, 3], n[:, 0])
    torch.testing.assert_close(s2[:, 7], s[:, 0])


def test_adaptation_trace_shapes_and_ranges():
    torch.manual_seed(0)
    m = AdaptiveRNN(hidden_size=12, controller_size=5)
    X = np.random.default_rng(0).random((7, 64), dtype=np.float32)
    n, s = m.adaptation_trace(X)
    assert n.shape == (7, 8, 12) and s.shape == (7, 8, 12)
    assert n.dtype == np.float64
    assert n.min() >= 1e-3 and s.min() >= 0 and s.max() <= 1
    # the trace is the (n, s) the forward pass used: recompute the last hidden state from it
    seq = torch.from_numpy(X).reshape(7, 8, 8)
    h = torch.zeros(7, 12)
    with torch.no_grad():
        for t in range(8):
            a = m.input(seq[:, t]) + m.recurrent(h)
            h = sm.gamma(a, torch.from_numpy(n[:, t]).float(), torch.from_numpy(s[:, t]).float())
        torch.testing.assert_close(m.logits(h), m(torch.from_numpy(X)), rtol=1e-5, atol=1e-5)


def test_shipped_adaptive_unit_adapts_over_time():
    m = sm.load("rnn_adaptive")
    d = sm.digits()
    n, s = m.adaptation_trace(d.X_test)
    assert n.shape == (359, 8, 64)
    # per neuron and example, (n, s) change along the sequence
    assert n.std(axis=1).mean() > 0.1
    assert s.std(axis=1).mean() > 0.01
    assert (np.abs(np.diff(n, axis=1)) > 1e-4).mean() > 0.5
    # and they differ between neurons at the same step
    assert n.std(axis=2).mean() > 0.1


def test_build_configs_and_errors():
    assert isinstance(build({"kind": "cnn", "channels": [4, 8], "fc": 16}), CNN)
    assert isinstance(build({"kind": "adaptive_rnn", "hidden_size": 4}), AdaptiveRNN)
    m = build({"kind": "mlp", "width": 8, "depth": 2, "activation": "gamma_homogeneous"})
    assert sum(isinstance(x, Gamma) for x in m.modules()) == 2
    with pytest.raises(ValueError, match="kind"):
        build({"kind": "transformer"})
    with pytest.raises(ValueError, match="activation"):
        MLP(activation="gelu")


def test_henaff_initialisation_is_a_block_of_rotations():
    torch.manual_seed(3)
    W = sm.architectures.henaff_orthogonal(7).double()
    torch.testing.assert_close(W @ W.T, torch.eye(7, dtype=torch.float64), atol=1e-6, rtol=0)
    for i in range(0, 6, 2):  # 2x2 rotation blocks by angles in [-pi, 0]; the odd unit left alone
        c, s = W[i, i], W[i, i + 1]
        assert torch.isclose(W[i + 1, i + 1], c, atol=1e-6) and torch.isclose(W[i + 1, i], -s, atol=1e-6)
        assert s <= 1e-6  # sin(theta) <= 0 for theta in [-pi, 0]
    assert W[6, 6] == pytest.approx(1.0) and torch.count_nonzero(W.abs() > 1e-7) == 3 * 4 + 1


def test_pixel_rnn_reads_one_pixel_per_step_in_its_fixed_order():
    torch.manual_seed(0)
    m = RNN(hidden_size=6, steps=64, input_size=1, permutation_seed=5)
    order = np.random.RandomState(5).permutation(64)
    assert np.array_equal(m.reading_order.numpy(), order)
    assert np.array_equal(m.step_of_feature()[order], np.arange(64))  # pixel order[t] is read at step t
    assert np.array_equal(RNN().step_of_feature(), np.arange(64) // 8)  # row by row: the pixel's row
    X = torch.rand(4, 64)
    h = torch.zeros(4, 6)
    with torch.no_grad():
        for t in range(64):
            h = torch.relu(m.input(X[:, order[t]].unsqueeze(1)) + m.recurrent(h))
        torch.testing.assert_close(m(X), m.logits(h))
    assert "reading_order" not in m.state_dict()  # rebuilt from the config, not stored with the weights


def test_geadah_initialisation_and_unclamped_units():
    torch.manual_seed(0)
    rnn = RNN(hidden_size=10, activation="gamma_heterogeneous", init="geadah")
    assert not rnn.act.clamp and torch.all(rnn.act.s == 0)
    n0 = rnn.act.n.detach()
    assert torch.all(n0 == n0[0]) and 5 <= float(n0[0]) <= 7  # one draw for every unit
    W = rnn.recurrent.weight.double()
    torch.testing.assert_close(W @ W.T, torch.eye(10, dtype=torch.float64), atol=1e-6, rtol=0)
    aru = AdaptiveRNN(hidden_size=5, controller_size=4, init="geadah")
    assert aru.controller.readout_s.bias.item() == 0.0 and 5 <= aru.controller.readout_n.bias.item() <= 7
    with torch.no_grad():
        aru.controller.readout_s.bias.fill_(-2.0)  # s far below 0 and n below 1e-3 pass through unclamped
        aru.controller.readout_n.bias.fill_(-1.0)
    n, s = aru.adaptation_trace(np.random.default_rng(0).random((3, 64), dtype=np.float32))
    assert s.max() < 0 and n.max() < 0
    with pytest.raises(ValueError, match="init"):
        RNN(init="xavier")
