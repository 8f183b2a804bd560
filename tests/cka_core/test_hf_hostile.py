"""Hugging Face directories from a stranger, checked in this process (the hostile suite loads the
same cases in a subprocess, in the worker): every refusal is one RepresentationError naming the file
and the fix, comes before anything of the size asked for is built, and runs no code from the file."""
from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

import pytest

from cka_core import RepresentationError
from cka_core.models import load_model
from cka_core.models.huggingface import check_directory
from tests import model_files
from tests.hostile import cases_hf, harness


@pytest.mark.parametrize("case", cases_hf.CASES, ids=lambda case: case.name)
def test_each_hostile_directory_is_refused_in_one_line(case, tmp_path):
    built = case.build(tmp_path)
    path = Path(built.args[0])
    source = path if path.is_dir() else path.read_bytes()
    if case.expect is None:
        assert load_model(source, path.name).layers
        return
    start = time.perf_counter()
    with pytest.raises(RepresentationError) as info:
        load_model(source, path.name)
    message = str(info.value)
    assert re.search(case.expect, message, re.IGNORECASE) and "\n" not in message, message
    assert time.perf_counter() - start < 5, "refused only after building"
    assert not (tmp_path / harness.CANARY).exists()


def _bert(tmp_path: Path, **config) -> Path:
    directory = tmp_path / "bert"
    shutil.copytree(model_files.bert_directory(), directory)
    path = directory / "config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **config}))
    return directory


def test_ten_thousand_layers_are_refused_before_any_build(tmp_path):
    directory = _bert(tmp_path, num_hidden_layers=10_000)
    start = time.perf_counter()
    with pytest.raises(RepresentationError, match="num_hidden_layers = 10,000 layers, over the cap of 256"):
        check_directory(directory)
    assert time.perf_counter() - start < 0.5


def test_a_256_layer_config_is_counted_on_the_meta_device_quickly(tmp_path):
    """At the layer cap, the parameter count needs no memory and little time, and is the real one."""
    from cka_core.models.huggingface import _meta_parameters

    directory = _bert(tmp_path, num_hidden_layers=256)
    start = time.perf_counter()
    counted = _meta_parameters(directory)
    assert time.perf_counter() - start < 10
    real = model_files._quiet().AutoModel.from_pretrained(directory)
    assert counted == sum(t.numel() for t in [*real.parameters(), *real.buffers()])


@pytest.mark.parametrize("variable, value, expect", [
    ("CKA_MODEL_LAYERS", "1", "num_hidden_layers = 2 layers, over the cap of 1 .CKA_MODEL_LAYERS."),
    ("CKA_MODEL_PARAMETERS", "1000", "values, over the cap of 1,000 .CKA_MODEL_PARAMETERS."),
    ("CKA_MODEL_ACTIVATION_MB", "0.01", r"attention scores of 2 heads x 64\^2 positions.*0.5 MiB.*over the cap of 0.0 MiB .CKA_MODEL_ACTIVATION_MB"),
])
def test_the_caps_are_the_hosts(monkeypatch, variable, value, expect):
    monkeypatch.setenv(variable, value)
    with pytest.raises(RepresentationError, match=expect):
        check_directory(model_files.bert_directory())


def test_the_parameter_count_of_the_built_model_is_capped(monkeypatch, tmp_path):
    """Weights that declare few values do not hide a config that builds many."""
    directory = _bert(tmp_path, vocab_size=3_000_000)
    monkeypatch.setenv("CKA_MODEL_PARAMETERS", "50000000")
    with pytest.raises(RepresentationError, match="a model of 96,[0-9,]+ parameters, over the cap of 50,000,000"):
        check_directory(directory)


def test_sharded_safetensors_load_and_count(tmp_path):
    transformers = model_files._quiet()
    directory = tmp_path / "sharded"
    shutil.copytree(model_files.bert_directory(), directory)
    (directory / "model.safetensors").unlink()
    transformers.AutoModel.from_pretrained(model_files.bert_directory()).save_pretrained(directory,
                                                                                          max_shard_size="20KB")
    assert len(list(directory.glob("model-*.safetensors"))) > 1
    assert load_model(directory).layers


@pytest.mark.parametrize("spoil, expect", [
    (lambda d: (d / "model.safetensors").write_bytes((d / "model.safetensors").read_bytes()[:500]),
     "model.safetensors' is not a valid .safetensors file"),
    (lambda d: (d / "model.safetensors").write_bytes(b"PK\x03\x04" + bytes(40)),
     "not a valid .safetensors file"),
    (lambda d: (d / "model.safetensors.index.json").write_text("[]"), "does not hold a configuration object"),
    (lambda d: (d / "model.safetensors.index.json").write_text('{"weight_map": {"a": "/etc/passwd"}}'),
     "outside the model directory"),
    (lambda d: (d / "model.safetensors.index.json").write_text('{"weight_map": {"a": "missing.safetensors"}}'),
     "which is not in the directory"),
    (lambda d: (d / "config.json").write_text('{"model_type": "bert", "hidden_size": 33}'),
     "does not describe a model transformers can build"),
    (lambda d: (d / "config.json").write_text("[" * 100_000 + "]" * 100_000), "not valid JSON"),
])
def test_malformed_files_are_one_line_errors(tmp_path, spoil, expect):
    directory = _bert(tmp_path)
    spoil(directory)
    with pytest.raises(RepresentationError, match=expect) as info:
        load_model(directory)
    assert "\n" not in str(info.value)
