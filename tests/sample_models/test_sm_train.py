"""Deterministic retraining and the `python -m sample_models.train` entry point."""
import dataclasses
import hashlib
import json

import numpy as np
import pytest
import torch

import sample_models as sm
from sample_models.train import _stratified_fifth, main, train_model
from sample_models.zoo import WEIGHTS_DIR, ZOO


@pytest.fixture
def one_thread():
    # as `python -m sample_models.train` does; two threads on a busy 2-core machine crawl
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_training_is_deterministic(one_thread):
    spec = dataclasses.replace(ZOO["rnn_adaptive"], epochs=1)
    a, ma = train_model(spec)
    b, mb = train_model(spec)
    sa, sb = a.state_dict(), b.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert ma == mb
    # training moved the weights away from the initialisation
    torch.manual_seed(spec.seed)
    init = sm.build(spec.config).state_dict()
    assert not torch.equal(init["recurrent.weight"], sa["recurrent.weight"])


def test_cli_writes_weights_and_manifest(tmp_path, capsys):
    threads = torch.get_num_threads()
    assert main(["--out", str(tmp_path), "mlp_untrained"]) == 0
    assert torch.get_num_threads() == threads  # global torch settings restored
    printed = capsys.readouterr().out
    assert "mlp_untrained" in printed and "test acc" in printed
    man = json.loads((tmp_path / "manifest.json").read_text())
    assert list(man) == ["mlp_untrained"]
    entry = man["mlp_untrained"]
    assert entry["config"] == ZOO["mlp_untrained"].config and entry["role"] == "control"
    # an untrained model is rebuilt bit for bit: same bytes as the shipped file
    data = (tmp_path / "mlp_untrained.safetensors").read_bytes()
    assert hashlib.sha256(data).hexdigest() == entry["sha256"]
    assert data == (WEIGHTS_DIR / "mlp_untrained.safetensors").read_bytes()
    assert entry["test_accuracy"] == pytest.approx(sm.manifest()["mlp_untrained"]["test_accuracy"])


def test_cli_rejects_unknown_names(capsys):
    with pytest.raises(SystemExit):
        main(["--out", "/nonexistent", "mlp_seed9"])
    assert "mlp_seed0" in capsys.readouterr().err


def test_geadah_protocol_holds_out_a_stratified_fifth_and_is_deterministic(one_thread):
    y = sm.digits().y_train
    fit, held = _stratified_fifth(y, seed=1)
    assert np.intersect1d(fit, held).size == 0 and np.union1d(fit, held).size == y.size
    for c in range(10):
        assert np.count_nonzero(y[held] == c) == round(0.2 * np.count_nonzero(y == c))
    assert not np.array_equal(held, _stratified_fifth(y, seed=2)[1])
    spec = dataclasses.replace(ZOO["pixel_rnn_relu"], epochs=2)
    a, ma = train_model(spec)
    b, mb = train_model(spec)
    assert all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items()) and ma == mb
    assert ZOO["pixel_rnn_relu"].training_dict()["schedule"] == "plateau"
    assert "schedule" not in ZOO["mlp_seed0"].training_dict()  # the one-cycle models' records are unchanged
