"""Hostile Hugging Face directories: a config that asks for too much (10⁴ blocks, a 10¹² vocabulary,
a width or image size no batch fits, more parameters than the cap), weights that are pickles under
a safetensors name or behind an index, a tokenizer config that asks for custom classes; and the
legitimate tiny BERT beside them, as a directory and as a .zip, which must load."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from . import harness
from .harness import Built, Case


def _copy(tmp: Path, source: str = "bert") -> Path:
    """A fresh copy of one of tests/model_files.py's small real models, to be spoilt."""
    from tests import model_files

    directory = tmp / "model"
    shutil.copytree(model_files.bert_directory() if source == "bert" else model_files.resnet_directory(), directory)
    return directory


def _edit_json(path: Path, **changes) -> None:
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


def _config_case(name: str, expect: str, source: str = "bert", file: str = "config.json", **changes) -> Case:
    def build(tmp: Path) -> Built:
        directory = _copy(tmp, source)
        _edit_json(directory / file, **changes)
        return Built("model", (str(directory),))

    return Case(f"hf-{name}", build, expect)


def _index_to(shard: str, payload) -> Case:
    """model.safetensors replaced by an index whose weight_map names ``shard``, written by ``payload``."""
    def build(tmp: Path) -> Built:
        directory = _copy(tmp)
        (directory / "model.safetensors").unlink()
        (directory / "model.safetensors.index.json").write_text(json.dumps(
            {"metadata": {}, "weight_map": {"embeddings.word_embeddings.weight": shard}}))
        payload(directory, tmp)
        return Built("model", (str(directory),))

    return build


def _torch_load(path: Path) -> None:
    """torch.load with weights_only=False on the file's bytes (by path, torch would hand a
    .safetensors name to safetensors instead)."""
    import io

    import torch

    torch.load(io.BytesIO(path.read_bytes()), weights_only=False)


def _pickled_safetensors(tmp: Path) -> Built:
    directory = _copy(tmp)
    (directory / "model.safetensors").write_bytes(harness.canary_pickle(tmp))
    return Built("model", (str(directory),))


def _zipped(tmp: Path) -> Built:
    from tests import model_files

    path = tmp / "bert.zip"
    path.write_bytes(model_files.zipped(model_files.bert_directory()))
    return Built("model", (str(path),))


def _legit(tmp: Path) -> Built:
    return Built("model", (str(_copy(tmp)),))


PICKLE = r"pickle.*(arbitrary code|refused)"
CASES = [
    _config_case("ten-thousand-layers", r"num_hidden_layers = 10,000 layers.*CKA_MODEL_LAYERS",
                 num_hidden_layers=10_000),
    _config_case("vocabulary-of-10-12", r"vocab_size = 1,000,000,000,000.*CKA_MODEL_PARAMETERS",
                 vocab_size=10**12),
    _config_case("parameters-over-the-cap", r"parameters.*CKA_MODEL_PARAMETERS", vocab_size=400_000_000),
    _config_case("width-no-batch-fits", r"hidden states.*CKA_MODEL_ACTIVATION_MB", hidden_size=2_000_000,
                 intermediate_size=2_000_000),
    _config_case("attention-heads", r"attention scores.*CKA_MODEL_ACTIVATION_MB", num_attention_heads=65_536,
                 hidden_size=65_536),
    _config_case("image-size-no-batch-fits", r"CKA_MODEL_ACTIVATION_MB", source="resnet",
                 file="preprocessor_config.json", size={"height": 100_000, "width": 100_000}),
    _config_case("tokenizer-auto-map", r"tokenizer_config.json asks for remote code", file="tokenizer_config.json",
                 auto_map={"AutoTokenizer": ["tokenization_evil.EvilTokenizer", None]}),
    Case("hf-index-names-a-pickle-bin",
         _index_to("pytorch_model.bin", lambda d, tmp: (d / "pytorch_model.bin").write_bytes(
             harness.canary_pickle(tmp))), r"pytorch_model.bin.*not a \.safetensors file.*pickle",
         unsafe_load=lambda built: _torch_load(Path(built.args[0]) / "pytorch_model.bin")),
    Case("hf-index-names-outside", _index_to("../outside.safetensors", lambda d, tmp: shutil.copy(
        harness.ROOT / "sample_models" / "weights" / "mlp_seed0.safetensors", tmp / "outside.safetensors")),
         r"outside the model directory"),
    Case("hf-safetensors-holding-a-pickle", _pickled_safetensors, r"model.safetensors is a " + PICKLE,
         unsafe_load=lambda built: _torch_load(Path(built.args[0]) / "model.safetensors")),
    Case("hf-tiny-bert", _legit, None),
    Case("hf-tiny-bert-zip", _zipped, None),
]
