"""Hugging Face ``transformers`` models: a local directory (or a .zip of one), weights in safetensors
only, no remote code; the hidden states of every layer, with the model's own tokenizer or image
processor.

What is refused before anything runs: a config that asks for remote code (``auto_map``), weights
that are not safetensors (``pytorch_model.bin`` and other pickles), a directory with neither a
tokenizer nor an image processor. A Hub id is read only when the caller allows the Hub (the app's
``CKA_ALLOW_HUB=1`` setting; off on a hosted demo, never in the tests).
"""
from __future__ import annotations

import hashlib
import inspect
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import torch

from ..errors import RepresentationError
from ..safezip import extract, open_archive
from . import reduction
from .base import Feed, Layer, LoadedModel
from .inputs import ARRAY, IMAGE, TEXT, Examples

SAFE_WEIGHTS = ("model.safetensors", "model.safetensors.index.json")
PICKLED_WEIGHTS = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle", ".h5", ".msgpack")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "spiece.model", "sentencepiece.bpe.model")
PROCESSOR_FILES = ("preprocessor_config.json",)
MAX_DIRECTORY_BYTES = 4 * 2**30
MAX_MEMBERS = 2_000
MAX_TOKENS = 512


def quiet_transformers():
    """transformers with its logging at errors only and no progress bars (returned for use)."""
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    return transformers


def check_directory(directory: Path) -> dict:
    """The parsed config.json of a model directory, after the refusals listed in the module docstring."""
    config_path = directory / "config.json"
    if not config_path.is_file():
        raise RepresentationError(f"{directory.name}: no config.json; a Hugging Face model directory holds "
                                  "config.json and model.safetensors (save it with model.save_pretrained(dir)).")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise RepresentationError(f"{directory.name}/config.json is not valid JSON ({error}).") from None
    if not isinstance(config, dict):
        raise RepresentationError(f"{directory.name}/config.json does not hold a configuration object.")
    if "auto_map" in config or config.get("trust_remote_code"):
        raise RepresentationError(
            f"{directory.name}: its config asks for remote code (auto_map: custom Python classes shipped with the "
            "model). Running that code is refused; use a model whose architecture is built into transformers, or "
            "export it to ONNX or torch.export and load that file.")
    names = {p.name for p in directory.iterdir()}
    if not names & set(SAFE_WEIGHTS):
        pickled = sorted(n for n in names if n.endswith(PICKLED_WEIGHTS))
        raise RepresentationError(
            f"{directory.name}: no model.safetensors. "
            + (f"{', '.join(pickled)} {'is a pickle' if len(pickled) == 1 else 'are pickles'}, which can run "
               "arbitrary code when loaded and is refused. " if pickled else "")
            + "Convert the weights: model.save_pretrained(dir, safe_serialization=True).")
    return config


def extract_zip(data: bytes, filename: str, into: Path) -> Path:
    """Unpack an uploaded .zip of a model directory into ``into`` with the strict reader (names checked:
    no absolute paths, no '..', no links, no duplicates; every member streamed to disk under the caps);
    returns the directory holding config.json."""
    archive = open_archive(data, filename, max_members=MAX_MEMBERS,
                           fix="zip the directory model.save_pretrained(dir) wrote with a standard zip tool")
    if sum(m.size for m in archive.members) > MAX_DIRECTORY_BYTES:
        raise RepresentationError(f"{filename} inflates to more than {MAX_DIRECTORY_BYTES // 2**30} GiB.")
    try:
        extract(archive, into)
    except OSError as error:
        raise RepresentationError(f"{filename} could not be unpacked ({type(error).__name__}: {error}).") from None
    configs = sorted(into.resolve().rglob("config.json"), key=lambda p: len(p.parts))
    if not configs:
        raise RepresentationError(f"{filename} holds no config.json: zip the model directory that "
                                  "model.save_pretrained(dir) wrote.")
    return configs[0].parent


def directory_digest(directory: Path) -> str:
    """SHA-256 over the files of a model directory (names and contents, sorted)."""
    h = hashlib.sha256()
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        h.update(str(path.relative_to(directory)).encode())
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


class HuggingFaceModel(LoadedModel):
    """``AutoModel`` with ``output_hidden_states``: layers ``hidden_states.0`` (the embeddings) to
    ``hidden_states.L`` (the last block)."""

    format = "huggingface"

    def __init__(self, source: str | Path, *, allow_hub: bool = False, name: str | None = None):
        transformers = quiet_transformers()
        local = Path(source)
        if local.is_dir():
            check_directory(local)
            self.digest = directory_digest(local)
            where, options = str(local), {"local_files_only": True}
        elif allow_hub and isinstance(source, str) and "/" in source and not local.exists():
            where, options = source, {}
            self.digest = f"hub:{source}"
        else:
            raise RepresentationError(f"{source}: no such model directory"
                                      + ("" if allow_hub else " (Hub ids are off here; download the model and load "
                                                              "its directory)") + ".")
        self.name = name or Path(where).name
        try:
            self.model = transformers.AutoModel.from_pretrained(where, trust_remote_code=False, use_safetensors=True,
                                                                **options).eval()
        except (OSError, ValueError, KeyError, RuntimeError, TypeError) as error:
            raise RepresentationError(f"{self.name}: transformers could not load the model "
                                      f"({type(error).__name__}: {str(error).splitlines()[0][:300]}).") from None
        self.tokenizer = self.processor = None
        names = {p.name for p in local.iterdir()} if local.is_dir() else set()
        try:
            if names & set(TOKENIZER_FILES) or not local.is_dir():
                self.tokenizer = transformers.AutoTokenizer.from_pretrained(where, trust_remote_code=False, **options)
            elif names & set(PROCESSOR_FILES):
                self.processor = transformers.AutoImageProcessor.from_pretrained(where, trust_remote_code=False,
                                                                                 **options)
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise RepresentationError(f"{self.name}: its tokenizer or image processor could not be loaded "
                                      f"({type(error).__name__}: {str(error).splitlines()[0][:300]}).") from None
        if self.tokenizer is None and self.processor is None:
            raise RepresentationError(f"{self.name}: the directory has no tokenizer (tokenizer.json) and no image "
                                      "processor (preprocessor_config.json), so there is no way to turn texts or "
                                      "images into its inputs; add them (tokenizer.save_pretrained(dir)).")
        self.input_kind = TEXT if self.tokenizer is not None else IMAGE
        self.input_names = ("input_ids", "attention_mask") if self.tokenizer is not None else ("pixel_values",)
        self.accepted_inputs = tuple(inspect.signature(self.model.forward).parameters)
        probe = self._hidden_states(self.feed(_probe_examples(self.input_kind)))
        self.layers = tuple(Layer(f"hidden_states.{i}", tuple(h.shape[1:]),
                                  reduction.layer_kind(tuple(h.shape[1:]), self.input_kind))
                            for i, h in enumerate(probe))
        self.default_layers = tuple(layer.name for layer in self.layers)

    def feed(self, examples: Examples) -> Feed:
        if examples.kind == ARRAY:  # the model's own input tensors, by name (e.g. pixel_values, input_ids)
            unknown = [k for k in examples.arrays if k not in self.accepted_inputs]
            if unknown:
                raise RepresentationError(f"{self.name} has no input {unknown[0]!r}; its inputs are "
                                          f"{', '.join(self.accepted_inputs)}.")
            return Feed({k: torch.as_tensor(np.asarray(v)) for k, v in examples.arrays.items()},
                        examples.arrays.get("attention_mask"))
        if examples.kind != self.input_kind:
            raise RepresentationError(f"{self.name} reads {self.input_kind}s, not {examples.kind}s.")
        if self.tokenizer is not None:
            limit = min(MAX_TOKENS, getattr(self.tokenizer, "model_max_length", MAX_TOKENS) or MAX_TOKENS)
            batch = self.tokenizer(list(examples.texts), padding=True, truncation=True, max_length=limit,
                                   return_tensors="pt")
            mask = batch["attention_mask"].numpy()
            return Feed(dict(batch), mask)
        batch = self.processor(images=list(examples.images), return_tensors="pt")
        return Feed({"pixel_values": batch["pixel_values"]})

    def _hidden_states(self, feed: Feed):
        with torch.inference_mode():
            out = self.model(**feed.tensors, output_hidden_states=True)
        if getattr(out, "hidden_states", None) is None:
            raise RepresentationError(f"{self.name}: the model returned no hidden states.")
        return out.hidden_states

    def run(self, feed: Feed, layers: tuple[str, ...]) -> dict[str, np.ndarray]:
        states = self._hidden_states(feed)
        return {name: states[int(name.split(".")[1])].float().numpy() for name in layers}


def _probe_examples(kind: str) -> Examples:
    if kind == TEXT:
        return Examples(TEXT, texts=("probe",))
    return Examples(IMAGE, images=(np.zeros((32, 32, 3), dtype=np.uint8),))


def load_zip(data: bytes, filename: str, **options) -> HuggingFaceModel:
    """A model from an uploaded .zip of its directory (unpacked into a temporary directory that is
    removed once the model, tokenizer and processor are in memory)."""
    with tempfile.TemporaryDirectory(prefix="cka_hf_") as tmp:
        directory = extract_zip(data, filename, Path(tmp))
        return HuggingFaceModel(directory, name=Path(filename).stem, **options)


def hub_allowed() -> bool:
    """Whether Hub ids may be read (``CKA_ALLOW_HUB=1``); the default is no."""
    return os.environ.get("CKA_ALLOW_HUB", "0") == "1"
