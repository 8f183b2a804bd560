"""`cka compare --model A --model B --inputs X`: models run on the same inputs, their layers reduced,
the heatmap and the export record the models, the inputs' digest and the reduction."""
from __future__ import annotations

import json

import numpy as np
import pytest

from cka_core.cli import main
from tests import model_files as mf


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli_models")
    directory = mf.bert_directory()
    (d / "bert.onnx").write_bytes(mf.onnx_bytes(directory))
    (d / "bert.pt2").write_bytes(mf.pt2_bytes(directory))
    (d / "tokenizer.json").write_bytes(mf.tokenizer_json(directory))
    (d / "texts.txt").write_text("\n".join(f"The old fisherman carried {k} wooden boxes." for k in range(30)))
    return d, directory


def _run(args, tmp_path, capsys) -> tuple[int, dict | None, str]:
    out = tmp_path / "heat.json"
    code = main(["compare", *map(str, args), "--out", str(out)])
    err = capsys.readouterr().err
    return code, json.loads(out.read_text()) if code == 0 else None, err


def test_one_network_as_a_directory_and_as_onnx_gives_the_same_heatmap(files, tmp_path, capsys):
    d, directory = files
    tok = d / "tokenizer.json"
    code, same, _ = _run(["--model", directory, "--model", directory, "--inputs", "builtin:sentences:60",
                          "--pool", "mean", "--debiased"], tmp_path, capsys)
    assert code == 0
    code, doc, err = _run(["--model", directory, "--model", d / "bert.onnx", "--tokenizer", tok, "--tokenizer", tok,
                           "--layers", "hidden_states.0,hidden_states.2", "--inputs", "builtin:sentences:60",
                           "--pool", "mean", "--debiased"], tmp_path, capsys)
    assert code == 2 and "has no layer 'hidden_states.0'" in err  # --layers names both models' layers
    code, doc, _ = _run(["--model", directory, "--model", d / "bert.onnx", "--tokenizer", tok, "--tokenizer", tok,
                         "--inputs", "builtin:sentences:60", "--pool", "mean", "--debiased"], tmp_path, capsys)
    assert code == 0
    assert doc["layers_a"] == ["hidden_states.0", "hidden_states.1", "hidden_states.2"]
    assert doc["layers_b"] == ["model.embeddings", "model.encoder.layer.0", "model.encoder.layer.1"]
    np.testing.assert_allclose(doc["values"], same["values"], atol=1e-5)
    assert doc["model_a"]["format"] == "huggingface" and doc["model_b"]["format"] == "onnx"
    assert doc["inputs"]["sha256"] == same["inputs"]["sha256"] and doc["inputs"]["n_examples"] == 60
    assert doc["reduction"] == "mean" and doc["rows"] == 60 and doc["debiased"] is True


def test_text_files_and_tokens_as_rows(files, tmp_path, capsys):
    d, directory = files
    code, doc, _ = _run(["--model", directory, "--model", d / "bert.pt2", "--tokenizer", d / "tokenizer.json",
                         "--tokenizer", d / "tokenizer.json", "--inputs", d / "texts.txt", "--pool", "tokens"],
                        tmp_path, capsys)
    assert code == 0 and doc["inputs"]["n_examples"] == 30 and doc["rows"] > 30  # one row per real token
    np.testing.assert_allclose(np.diag(doc["values"]), 1.0, atol=1e-5)  # the same network, layer by layer


@pytest.mark.parametrize(("args", "message"), [
    (["--model", "x"], "--model takes two models"),
    (["--model", "a", "--model", "b"], "--inputs is needed"),
    (["a.npz", "b.npz", "--pool", "mean"], "go with --model"),
    (["--model", "missing_dir", "--model", "missing_dir", "--inputs", "builtin:sentences"], "missing_dir: no such"),
    ([], "give two files of activations"),
])
def test_wrong_combinations_are_one_line_errors(args, message, capsys):
    assert main(["compare", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1
