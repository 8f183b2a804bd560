"""The registry of networks (ui.sources.models): zoo and fine-tuned networks behind one interface, keys
that name the weights, flags that say what each supports."""
from __future__ import annotations

import pytest
import torch
from streamlit.testing.v1 import AppTest

import sample_models
from cka_core import RepresentationError
from ui.sources import models


def test_every_zoo_network_is_registered_with_its_layers_and_flags():
    assert models.zoo_names() == list(sample_models.available())
    for name in models.zoo_names():
        network = models.get(name)
        assert network.key == f"zoo:{name}" and network.kind == models.ZOO and network.architecture == name
        assert list(network.layers) == sample_models.layer_names(name)
        assert list(network.run_from_layers) == sample_models.run_from_layers(name)
        assert network.trained == (sample_models.ZOO[name].role == "trained")
    relu = {n for n in models.zoo_names() if models.get(n).relu_mlp}
    assert relu == {"mlp_seed0", "mlp_seed1", "mlp_seed2", "mlp_wide", "mlp_deep", "mlp_deep_wide", "mlp_untrained",
                    "mlp_shuffled_labels"}
    assert not models.get("rnn_relu").can_run_from("step3") and models.get("rnn_relu").can_run_from("step8")


def test_an_unknown_network_is_refused_with_the_names_there_are():
    with pytest.raises(RepresentationError, match="no network called 'mlp_nope'.*mlp_seed0"):
        models.get("mlp_nope")


def test_the_null_space_of_the_next_layer_exists_only_where_the_reader_has_fewer_outputs():
    weight, reason = models.next_layer_null_space("mlp_seed0", "hidden3")
    assert reason is None and weight.shape == (10, 64)
    weight, reason = models.next_layer_null_space("mlp_seed0", "hidden1")
    assert weight is None and "hidden2.linear" in reason and "full column rank" in reason
    weight, reason = models.next_layer_null_space("cnn", "conv1")
    assert weight is None and "Conv2d" in reason
    weight, reason = models.next_layer_null_space("rnn_relu", "step3")
    assert weight is None and reason  # read by the 64 x 64 recurrent weight


def test_the_untrained_twin_has_the_architecture_and_not_the_training():
    what, layers = models.untrained_twin("mlp_seed1")
    assert "mlp_untrained" in what and set(layers) == set(sample_models.layer_names("mlp_seed1"))
    what, layers = models.untrained_twin("cnn")
    assert "fresh cnn" in what and layers["conv1"].shape == (359, 16 * 8 * 8)
    assert not layers["conv1"].flags.writeable


def test_fine_tuned_networks_are_registered_for_the_session_keyed_on_their_weights():
    def script():
        import numpy as np
        import streamlit as st
        import torch

        import sample_models
        from ui.sources import models

        net = sample_models.load("mlp_seed0")
        first = models.register_finetuned(net, "mlp_seed0", "Identity", 0.97)
        with torch.no_grad():
            net.logits.bias += 1.0  # other weights: another network, another key
        second = models.register_finetuned(net, "mlp_seed0", "Identity", 0.96)
        rebuilt = models.module(second)
        same = all(torch.equal(a, b) for a, b in zip(rebuilt.state_dict().values(), net.state_dict().values()))
        acts = models.activations(second)
        zoo = models.activations("mlp_seed0")
        st.write(f"names={models.finetuned_names() == [first, second]} keys={models.get(first).key != models.get(second).key} "
                 f"same={same} grad={any(p.requires_grad for p in rebuilt.parameters())} "
                 f"shapes={(acts['test']['hidden1'].shape, acts['train']['logits'].shape)} "
                 f"hidden_equal={np.array_equal(acts['test']['hidden3'], zoo['test']['hidden3'])} "
                 f"logits_moved={not np.array_equal(acts['test']['logits'], zoo['test']['logits'])} "
                 f"readonly={not acts['test']['hidden1'].flags.writeable} "
                 f"relu={models.get(second).relu_mlp} in_relu={second in models.names(relu_mlp=True)} "
                 f"not_trainable={second not in models.names(finetuned=False)} "
                 f"accuracy={models.test_accuracy(first) == models.test_accuracy('mlp_seed0')}")
        for k in range(models.MAX_FINETUNED):
            with torch.no_grad():
                net.logits.bias += 1.0
            models.register_finetuned(net, "mlp_seed0", f"Ones {k}", 0.9)
        st.write(f"kept={len(models.finetuned_names())} oldest_dropped={first not in models.finetuned_names()}")

    at = AppTest.from_function(script, default_timeout=60).run()
    assert not at.exception, [e.message for e in at.exception]
    text = " ".join(m.value for m in at.markdown)
    for expected in ("names=True", "keys=True", "same=True", "grad=False", "shapes=((359, 64), (1438, 10))",
                     "hidden_equal=True", "logits_moved=True", "readonly=True", "relu=True", "in_relu=True",
                     "not_trainable=True", "accuracy=True", f"kept={models.MAX_FINETUNED}", "oldest_dropped=True"):
        assert expected in text, (expected, text)


def test_a_fine_tuned_name_is_unique_and_says_where_it_came_from():
    net = sample_models.load("mlp_deep")
    name, entry = models.finetuned_entry(net, "mlp_deep", "Identity", 0.95)
    assert name.startswith("mlp_deep → identity #") and entry["network"].key == f"finetuned:{models.weights_digest(net)}"
    assert "95.0%" in entry["network"].description
    with torch.no_grad():
        net.logits.bias += 1.0
    assert models.finetuned_entry(net, "mlp_deep", "Identity", 0.95)[0] != name


def test_constant_layers_are_the_layers_every_digit_leaves_the_same():
    """Brute force: capture every layer and look for columns that never change. The pixel-by-pixel RNNs'
    first steps read pixels blank in every test digit; every other zoo network varies everywhere."""
    import numpy as np

    from cka_core import capture

    X = sample_models.digits().X_test
    for name in ("pixel_rnn_relu", "pixel_rnn_adaptive_seed2", "rnn_relu", "mlp_deep_wide", "cnn"):
        reps = capture(sample_models.load(name), X, layers=sample_models.layer_names(name))
        brute = tuple(layer for layer, values in reps.items()
                      if np.ptp(np.asarray(values, dtype=np.float64).reshape(len(X), -1), axis=0).max() == 0)
        assert models.constant_layers(name) == brute, name
    assert models.constant_layers("pixel_rnn_relu")[:1] == ("step1",)  # pixel 24 is blank in every digit
    assert models.is_constant(np.full((5, 3), 1.0828954, dtype=np.float32))  # float32 mean round-off is not spread
    assert not models.is_constant(np.array([[0.0], [1e-3]]))


def test_activations_capture_each_split_on_first_read_and_hand_out_exact_float64(monkeypatch):
    """A class's server listed the whole zoo and held every network's layers on both splits in float64
    (840 MB; a 64-step RNN alone 60 MB). A split is now captured when a layer of it is first read, kept at
    the network's precision, and handed out as the exact float64 widening, read-only."""
    import numpy as np
    from ui.sources.data import model_source, representation

    models._zoo_test_split.clear()
    models._zoo_train_split.clear()
    captured = []
    real = models.capture_rows
    monkeypatch.setattr(models, "capture_rows", lambda net, X, layers, dtype=np.float64: captured.append(
        (len(X), dtype)) or real(net, X, layers, dtype))
    acts = models.activations("mlp_seed0")
    assert list(acts["test"]) == list(models.get("mlp_seed0").layers) and not captured  # names only: no capture
    rep = representation(model_source("mlp_seed0", "hidden2"))
    assert captured == [(len(models.digits().X_test), None)]  # the test split only, at the network's precision
    hidden2 = acts["test"]["hidden2"]
    assert hidden2.dtype == np.float64 and not hidden2.flags.writeable
    expected = real(models.module("mlp_seed0"), models.digits().X_test, ["hidden2"])["hidden2"]
    assert np.array_equal(hidden2, expected) and np.array_equal(rep.X, expected)
    assert rep.X_train.shape[0] == len(models.digits().X_train)  # read now, for a probe
    assert captured[-1] == (len(models.digits().X_train), None) and len(captured) == 2
    assert np.array_equal(rep.y_train, models.digits().y_train)
