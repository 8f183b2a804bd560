"""capture(): forward hooks by module name, detached copies, reused modules, batching, cleanup."""
import numpy as np
import pytest
import torch
from torch import nn

import cka_core


def _all_hooks(model):
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


class Reused(nn.Module):
    """The same nn.Linear applied twice in one forward."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 4)
        self.act = nn.Tanh()
        self.head = nn.Linear(4, 2)

    def forward(self, x):
        return self.head(self.lin(self.act(self.lin(x))))


class Recorder(nn.Module):
    """Identity that records the batch sizes it sees and whether autograd was on."""

    def __init__(self):
        super().__init__()
        self.sizes = []
        self.grad_enabled = []

    def forward(self, x):
        self.sizes.append(x.shape[0])
        self.grad_enabled.append(torch.is_grad_enabled())
        return x


def _inputs(n, d, seed=0):
    return torch.from_numpy(np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32))


def test_reused_module_recorded_per_call():
    torch.manual_seed(0)
    model = Reused()
    x = _inputs(10, 4)
    out = cka_core.capture(model, x, ["lin", "head"])
    assert set(out) == {"lin[0]", "lin[1]", "head"}
    with torch.no_grad():
        first = model.lin(x)
        second = model.lin(torch.tanh(first))
        head = model.head(second)
    np.testing.assert_allclose(out["lin[0]"], first.numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(out["lin[1]"], second.numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(out["head"], head.numpy(), rtol=1e-6, atol=1e-6)
    assert not np.allclose(out["lin[0]"], out["lin[1]"])
    assert _all_hooks(model) == 0


def test_inplace_relu_cannot_corrupt_the_captured_linear():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(3, 6), nn.ReLU(inplace=True), nn.Linear(6, 2))
    x = _inputs(50, 3, seed=1)
    out = cka_core.capture(model, x, ["0", "1"])
    with torch.no_grad():
        pre = x @ model[0].weight.T + model[0].bias
    assert (out["0"] < 0).any(), "the in-place ReLU overwrote the captured pre-activation"
    np.testing.assert_allclose(out["0"], pre.numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(out["1"], np.maximum(pre.numpy(), 0), rtol=1e-6, atol=1e-6)


def test_captured_arrays_are_independent_copies():
    model = nn.Sequential(nn.Identity(), nn.Linear(3, 3))
    x = _inputs(5, 3)
    out = cka_core.capture(model, x, ["0"])
    x.mul_(0)   # the identity's output aliases the input tensor; the capture must not follow it
    assert np.abs(out["0"]).sum() > 0


def test_batches_in_order_no_grad_and_shapes():
    torch.manual_seed(2)
    rec = Recorder()
    conv = nn.Conv2d(2, 3, 3, padding=1)
    model = nn.Sequential(rec, conv, nn.Flatten(), nn.Linear(3 * 5 * 5, 4))
    x = torch.randn(23, 2, 5, 5)
    out = cka_core.capture(model, x, ["1", "3"], batch_size=5)
    assert rec.sizes == [5, 5, 5, 5, 3]
    assert rec.grad_enabled and not any(rec.grad_enabled)
    assert out["1"].shape == (23, 3, 5, 5)            # per-example shape kept, not flattened
    assert out["3"].shape == (23, 4)
    assert out["1"].dtype == np.float32 and out["3"].dtype == np.float32
    with torch.no_grad():
        full = model(x)
        conv_full = conv(x)
    np.testing.assert_allclose(out["3"], full.numpy(), rtol=1e-5, atol=1e-5)  # row i <-> input i
    np.testing.assert_allclose(out["1"], conv_full.numpy(), rtol=1e-5, atol=1e-5)
    assert all(isinstance(v, np.ndarray) for v in out.values())


def test_reused_module_across_batches_keeps_call_order():
    torch.manual_seed(3)
    model = Reused()
    x = _inputs(11, 4, seed=3)
    out = cka_core.capture(model, x, ["lin"], batch_size=4)
    with torch.no_grad():
        first = model.lin(x)
        second = model.lin(torch.tanh(first))
    np.testing.assert_allclose(out["lin[0]"], first.numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(out["lin[1]"], second.numpy(), rtol=1e-6, atol=1e-6)


def test_all_leaf_modules_by_default():
    model = nn.Sequential(nn.Linear(3, 5), nn.ReLU(), nn.Sequential(nn.Linear(5, 4), nn.Tanh()))
    out = cka_core.capture(model, _inputs(7, 3))
    assert set(out) == {"0", "1", "2.0", "2.1"}
    assert all(v.shape[0] == 7 for v in out.values())
    reused = cka_core.capture(Reused(), _inputs(6, 4))
    assert set(reused) == {"lin[0]", "lin[1]", "act", "head"}


class Boom(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3, 3)
        self.unused = nn.Linear(3, 3)

    def forward(self, x):
        self.lin(x)
        raise RuntimeError("boom")


def test_hooks_removed_even_when_forward_raises():
    model = Boom()
    with pytest.raises(Exception):
        cka_core.capture(model, _inputs(4, 3), ["lin"])
    assert _all_hooks(model) == 0
    with pytest.raises(Exception):
        cka_core.capture(model, _inputs(4, 3))
    assert _all_hooks(model) == 0


def test_unknown_layer_lists_valid_names_and_removes_hooks():
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU())
    with pytest.raises(cka_core.RepresentationError) as info:
        cka_core.capture(model, _inputs(4, 3), ["0", "encoder.fc9"])
    message = str(info.value)
    assert "encoder.fc9" in message and "0" in message and "1" in message
    assert _all_hooks(model) == 0


def test_layer_that_never_fires_is_an_error():
    class Skips(nn.Module):
        def __init__(self):
            super().__init__()
            self.used = nn.Linear(3, 3)
            self.unused = nn.Linear(3, 3)

        def forward(self, x):
            return self.used(x)

    model = Skips()
    with pytest.raises(cka_core.RepresentationError, match="unused"):
        cka_core.capture(model, _inputs(4, 3), ["used", "unused"])
    assert _all_hooks(model) == 0


@pytest.mark.parametrize("training", [True, False])
def test_train_eval_mode_restored_and_weights_untouched(training):
    model = nn.Sequential(nn.Linear(3, 4), nn.Dropout(0.5), nn.BatchNorm1d(4))
    model.train(training)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    cka_core.capture(model, _inputs(16, 3), ["0", "2"], batch_size=8)
    assert model.training is training
    assert all(m.training is training for m in model.modules())
    assert all(p.grad is None for p in model.parameters())
    if not training:   # in eval mode nothing at all may change (BatchNorm statistics included)
        after = model.state_dict()
        for k, v in before.items():
            assert torch.equal(v, after[k]), k


def test_captured_layers_feed_cka_matrix():
    torch.manual_seed(4)
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 3))
    acts = cka_core.capture(model, _inputs(64, 6, seed=4), ["0", "2", "4"])
    M = cka_core.cka_matrix(acts)
    assert M.shape == (3, 3)
    assert cka_core.layer_labels(acts) == ["0", "2", "4"]
    np.testing.assert_allclose(np.diag(M), 1.0, atol=1e-6)
