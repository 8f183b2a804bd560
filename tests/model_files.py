"""Small real models built in the test run from configs (nothing is downloaded) and saved the three
ways the app loads: a Hugging Face directory (safetensors, with its tokenizer or image processor),
ONNX (torch's dynamo exporter) and torch.export (.pt2). Built once per test process."""
from __future__ import annotations

import functools
import io
import logging
import shutil
import tempfile
import warnings
import zipfile
from pathlib import Path

import numpy as np
import torch

from cka_core.models.huggingface import quiet_transformers
from sample_models import text

ROOT = Path(tempfile.mkdtemp(prefix="cka_model_files_"))
SEQ_MAX = 64


def _quiet():
    warnings.filterwarnings("ignore")
    logging.getLogger("torch").setLevel(logging.ERROR)
    return quiet_transformers()


class TextLastHidden(torch.nn.Module):
    """A Hugging Face language model returning a plain tensor (what ONNX and torch.export need): the
    module tree keeps it under ``model``, so layers are named ``model.encoder.layer.0``..."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask):
        return self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state


class ImageLastHidden(TextLastHidden):
    def forward(self, pixel_values):
        return self.model(pixel_values=pixel_values).last_hidden_state


@functools.lru_cache(maxsize=None)
def bert_directory(seed: int = 0, layers: int = 2) -> Path:
    """A tiny BERT (hidden 32, ``layers`` blocks) with random weights and the project's word tokenizer."""
    transformers = _quiet()
    torch.manual_seed(seed)
    config = transformers.BertConfig(vocab_size=len(text.vocabulary()), hidden_size=32, num_hidden_layers=layers,
                                     num_attention_heads=2, intermediate_size=64, max_position_embeddings=SEQ_MAX)
    path = ROOT / f"bert_{seed}_{layers}"
    transformers.BertModel(config).eval().save_pretrained(path)
    transformers.PreTrainedTokenizerFast(tokenizer_object=text.tokenizer(), unk_token="[UNK]", pad_token="[PAD]",
                                         cls_token="[CLS]", sep_token="[SEP]",
                                         mask_token="[MASK]").save_pretrained(path)
    return path


@functools.lru_cache(maxsize=None)
def resnet_directory(seed: int = 0) -> Path:
    """A tiny ResNet (two stages) with random weights and a ViT-style image processor to 32 x 32."""
    transformers = _quiet()
    torch.manual_seed(seed)
    config = transformers.ResNetConfig(num_channels=3, embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1],
                                       layer_type="basic")
    path = ROOT / f"resnet_{seed}"
    transformers.ResNetModel(config).eval().save_pretrained(path)
    transformers.ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(path)
    return path


def zipped(directory: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted(directory.rglob("*")):
            archive.write(path, f"{directory.name}/{path.relative_to(directory)}")
    return buffer.getvalue()


def _wrapped(directory: Path) -> TextLastHidden:
    transformers = _quiet()
    model = transformers.AutoModel.from_pretrained(directory).eval()
    return (TextLastHidden if (directory / "tokenizer.json").exists() else ImageLastHidden)(model).eval()


def _example(directory: Path) -> tuple[torch.Tensor, ...]:
    if (directory / "tokenizer.json").exists():
        encodings = text.tokenizer().encode_batch(text.sentences(4))
        return (torch.tensor([e.ids for e in encodings]), torch.tensor([e.attention_mask for e in encodings]))
    return (torch.rand(2, 3, 32, 32),)


def _dynamic(example) -> tuple:
    batch = torch.export.Dim("batch", max=4096)
    if len(example) == 2:
        seq = torch.export.Dim("seq", max=SEQ_MAX)
        return ({0: batch, 1: seq}, {0: batch, 1: seq})
    return ({0: batch},)


@functools.lru_cache(maxsize=None)
def onnx_bytes(directory: Path) -> bytes:
    """The model of ``directory`` exported with torch.onnx.export(dynamo=True), dynamic batch (and length)."""
    _quiet()
    example = _example(directory)
    names = ["input_ids", "attention_mask"] if len(example) == 2 else ["pixel_values"]
    dynamic = [{0: "batch", 1: "seq"}] * 2 if len(example) == 2 else [{0: "batch"}]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(_wrapped(directory), example, input_names=names, dynamo=True,
                                    dynamic_shapes=tuple(dynamic), verbose=False)
    path = ROOT / f"{directory.name}.onnx"
    program.save(str(path))
    return path.read_bytes()


@functools.lru_cache(maxsize=None)
def pt2_bytes(directory: Path) -> bytes:
    """The model of ``directory`` as a torch.export program (torch.export.save), dynamic batch (and length)."""
    _quiet()
    example = _example(directory)
    program = torch.export.export(_wrapped(directory), example, dynamic_shapes=_dynamic(example))
    buffer = io.BytesIO()
    torch.export.save(program, buffer)
    return buffer.getvalue()


def tokenizer_json(directory: Path) -> bytes:
    return (directory / "tokenizer.json").read_bytes()


def images(count: int = 12, seed: int = 0) -> list[tuple[str, bytes]]:
    """``count`` small random PNG images of different sizes, as (name, bytes)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        pixels = rng.integers(0, 256, (24 + 2 * i, 40 - i, 3), dtype=np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="PNG")
        out.append((f"img_{i:02d}.png", buffer.getvalue()))
    return out


def cleanup() -> None:
    shutil.rmtree(ROOT, ignore_errors=True)
