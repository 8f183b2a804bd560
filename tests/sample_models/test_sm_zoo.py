"""The shipped zoo: names, loading, determinism, accuracy floors, run_from, gamma parameters."""
import hashlib
import json

import numpy as np
import pytest
import torch

import sample_models as sm
from sample_models.architectures import build
from sample_models.zoo import WEIGHTS_DIR, ZOO

REQUIRED = [
    "mlp_seed0", "mlp_seed1", "mlp_seed2", "mlp_wide", "mlp_deep", "mlp_deep_wide", "cnn", "mlp_untrained",
    "mlp_shuffled_labels", "mlp_gamma_homogeneous", "mlp_gamma_heterogeneous", "rnn_relu",
    "rnn_gamma_heterogeneous", "rnn_adaptive",
    *[f"pixel_rnn_{kind}{suffix}" for suffix in ("", "_seed2", "_seed3")
      for kind in ("relu", "gamma_homogeneous", "gamma_heterogeneous", "adaptive")],
]
PIXEL = [nm for nm in REQUIRED if nm.startswith("pixel_rnn")]
RECURRENT = ["rnn_relu", "rnn_gamma_heterogeneous", "rnn_adaptive", *PIXEL]
CONTROLS = ["mlp_untrained", "mlp_shuffled_labels"]
FEEDFORWARD = [nm for nm in REQUIRED if nm not in RECURRENT]


def _capture(model, names, X):
    """Outputs of the named modules on X (own forward hooks; each module fires once)."""
    modules = dict(model.named_modules())
    out = {}
    handles = [modules[nm].register_forward_hook(lambda m, i, o, nm=nm: out.__setitem__(nm, o.detach().clone()))
               for nm in names]
    try:
        with torch.no_grad():
            logits = model(torch.from_numpy(np.array(X)))
    finally:
        for h in handles:
            h.remove()
    return out, logits.numpy()


def test_available_names_and_descriptions():
    av = sm.available()
    assert len(av) >= 12
    assert set(REQUIRED) <= set(av)
    for name, desc in av.items():
        assert isinstance(desc, str) and 20 <= len(desc) <= 120 and "\n" not in desc, name


def test_load_unknown_name_lists_valid_names():
    with pytest.raises(ValueError) as err:
        sm.load("mlp_seed9")
    assert "mlp_seed9" in str(err.value) and "mlp_seed0" in str(err.value) and "rnn_adaptive" in str(err.value)
    with pytest.raises(ValueError):
        sm.layer_names("nope")


def test_load_is_deterministic_fresh_and_eval():
    X = torch.from_numpy(sm.digits().X_test.copy())
    for name in REQUIRED:
        a, b = sm.load(name), sm.load(name)
        assert a is not b and not a.training
        assert not any(p.requires_grad for p in a.parameters())
        sa, sb = a.state_dict(), b.state_dict()
        assert sa.keys() == sb.keys()
        assert all(torch.equal(sa[k], sb[k]) for k in sa)
        with torch.no_grad():
            assert torch.equal(a(X), b(X))
    # editing one copy does not leak into the next load
    m = sm.load("mlp_seed0")
    with torch.no_grad():
        m.hidden1.linear.weight.zero_()
    assert sm.load("mlp_seed0").hidden1.linear.weight.abs().sum() > 0


def test_weights_files_match_manifest_and_registry():
    man = json.loads((WEIGHTS_DIR / "manifest.json").read_text())
    assert list(man) == list(ZOO)
    total = 0
    for name, spec in ZOO.items():
        path = WEIGHTS_DIR / f"{name}.safetensors"
        total += path.stat().st_size
        assert hashlib.sha256(path.read_bytes()).hexdigest() == man[name]["sha256"], name
        assert man[name]["config"] == spec.config and man[name]["training"] == spec.training_dict()
    assert total < 5 * 2**20


def test_accuracy_floors_and_controls():
    d = sm.digits()
    for name in REQUIRED:
        acc = sm.accuracy(sm.predict(name, d.X_test), d.y_test)
        if name in CONTROLS:
            assert acc <= 0.2, (name, acc)
        elif name in PIXEL:
            # 64 steps of one pixel in a random order, learned from 1150 digits (a fifth held out): Geadah et
            # al.'s harder task, and their short Adam schedule; these land at 88-95 %
            assert acc >= 0.85, (name, acc)
        elif name in RECURRENT:
            assert acc >= 0.90, (name, acc)
        else:
            assert acc >= 0.93, (name, acc)
        assert acc == pytest.approx(sm.manifest()[name]["test_accuracy"], abs=1e-6)


def test_shuffled_label_model_memorised_its_labels():
    d = sm.digits()
    spec = ZOO["mlp_shuffled_labels"]
    y_shuffled = d.y_train[np.random.RandomState(spec.seed).permutation(d.y_train.size)]
    assert np.mean(y_shuffled == d.y_train) < 0.2
    logits = sm.predict("mlp_shuffled_labels", d.X_train)
    assert sm.accuracy(logits, y_shuffled) >= 0.99
    assert sm.accuracy(logits, d.y_train) <= 0.2


def test_untrained_model_is_mlp_seed0_at_initialisation():
    torch.manual_seed(ZOO["mlp_seed0"].seed)
    init = build(ZOO["mlp_seed0"].config).state_dict()
    shipped = sm.load("mlp_untrained").state_dict()
    assert all(torch.equal(init[k], shipped[k]) for k in init)
    assert not torch.equal(sm.load("mlp_seed0").hidden1.linear.weight, shipped["hidden1.linear.weight"])


def test_layer_names_of_the_zoo():
    assert sm.layer_names("mlp_seed0") == ["hidden1", "hidden2", "hidden3", "logits"]
    assert sm.layer_names("mlp_deep") == ["hidden1", "hidden2", "hidden3", "hidden4", "hidden5", "logits"]
    assert sm.layer_names("cnn") == ["conv1", "conv2", "fc1", "logits"]
    assert sm.layer_names("rnn_adaptive") == [f"step{t}" for t in range(1, 9)] + ["logits"]
    X = sm.digits().X_test[:50]
    for name in REQUIRED:
        model = sm.load(name)
        names = sm.layer_names(model)
        calls = []
        modules = dict(model.named_modules())
        hs = [modules[nm].register_forward_hook(lambda m, i, o, nm=nm: calls.append(nm)) for nm in names]
        with torch.no_grad():
            model(torch.from_numpy(X.copy()))
        for h in hs:
            h.remove()
        assert calls == names, name
    with pytest.raises(ValueError, match="not a sample model"):
        sm.layer_names(torch.nn.Linear(2, 2))


@pytest.mark.parametrize("name", REQUIRED)
def test_run_from_reproduces_the_model(name):
    model = sm.load(name)
    X = sm.digits().X_test
    layers = sm.run_from_layers(model)
    reps, logits = _capture(model, layers, X)
    if name in RECURRENT:
        assert layers == [f"step{model.steps}", "logits"]
    else:
        assert layers == sm.layer_names(model)
    for layer in layers:
        flat = reps[layer].reshape(len(X), -1).numpy()
        out = sm.run_from(model, layer, flat)
        assert out.shape == (len(X), 10) and out.dtype == np.float32
        np.testing.assert_allclose(out, logits, rtol=0, atol=1e-5)
        # float64 numpy and shaped tensors are accepted too
        np.testing.assert_allclose(sm.run_from(name, layer, flat.astype(np.float64)), logits, atol=1e-5)
        np.testing.assert_allclose(sm.run_from(model, layer, reps[layer]), logits, atol=1e-5)


def test_run_from_an_edited_representation_changes_the_function():
    model = sm.load("cnn")
    d = sm.digits()
    reps, logits = _capture(model, ["conv2", "fc1"], d.X_test)
    acc = sm.accuracy(logits, d.y_test)
    z = reps["fc1"].numpy().copy()
    z[:, : z.shape[1] // 2] = 0
    edited = sm.run_from(model, "fc1", z)
    assert not np.allclose(edited, logits)
    # run_from works per example: permuting the examples permutes the logits
    perm = np.random.default_rng(0).permutation(len(d.X_test))
    np.testing.assert_allclose(sm.run_from(model, "conv2", reps["conv2"].numpy()[perm]), logits[perm], atol=1e-5)
    # destroying the representation drops accuracy to about chance
    noise = np.random.default_rng(1).random(reps["conv2"].shape, dtype=np.float32)
    assert sm.accuracy(sm.run_from(model, "conv2", noise), d.y_test) < acc - 0.5


def test_run_from_pre_activation_and_errors():
    model = sm.load("mlp_seed0")
    X = sm.digits().X_test
    reps, logits = _capture(model, ["hidden2.linear"], X)
    np.testing.assert_allclose(sm.run_from(model, "hidden2.linear", reps["hidden2.linear"].numpy()), logits, atol=1e-5)
    with pytest.raises(ValueError, match="hidden1, hidden2, hidden3, logits"):
        sm.run_from(model, "hidden7", reps["hidden2.linear"].numpy())
    with pytest.raises(ValueError, match="64 values per example"):
        sm.run_from(model, "hidden2", np.zeros((5, 63), np.float32))
    rnn = sm.load("rnn_relu")
    with pytest.raises(ValueError, match="step8, logits"):
        sm.run_from(rnn, "step3", np.zeros((5, 64), np.float32))


def test_gamma_parameters():
    assert sm.gamma_parameters("mlp_seed0") == {}
    hom = sm.gamma_parameters("mlp_gamma_homogeneous")
    het = sm.gamma_parameters("mlp_gamma_heterogeneous")
    rnn = sm.gamma_parameters("rnn_gamma_heterogeneous")
    assert list(hom) == list(het) == ["hidden1", "hidden2", "hidden3"]
    assert list(rnn) == ["act"]
    for params, per_neuron in ((hom, False), (het, True), (rnn, True)):
        for n, s in params.values():
            assert n.shape == s.shape == (64,)
            assert n.min() >= 1e-3 and s.min() >= 0 and s.max() <= 1
            assert (np.unique(n).size > 1) == per_neuron
    # the values are the ones the forward pass uses
    m = sm.load("mlp_gamma_heterogeneous")
    n, s = het["hidden2"]
    x = torch.linspace(-1, 1, 64)[None]
    torch.testing.assert_close(m.hidden2.act(x), sm.gamma(x, torch.from_numpy(n).float(), torch.from_numpy(s).float()))


def test_layer_names_work_with_cka_core_capture():
    from cka_core import capture

    d = sm.digits()
    for name in ["mlp_deep", "cnn", "rnn_adaptive"]:
        model = sm.load(name)
        names = sm.layer_names(model)
        reps = capture(model, d.X_test, layers=names, batch_size=100)
        assert list(reps) == names  # no "name[k]" keys: every layer fired once per forward
        logits = sm.predict(model, d.X_test)
        np.testing.assert_allclose(reps["logits"], logits, atol=1e-5)
        for layer in sm.run_from_layers(model):
            np.testing.assert_allclose(sm.run_from(model, layer, reps[layer]), logits, atol=1e-5)
