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
import itertools
import json
import math
import os
import re
import struct
import tempfile
from pathlib import Path

import numpy as np
import torch

from ..errors import RepresentationError
from ..io.safetensors_files import safetensors_header, SAFETENSORS_MAX_HEADER
from ..io.safezip import extract, open_archive
from ..io import caps
from . import reduction
from .base import Feed, Layer, LoadedModel
from .inputs import ARRAY, Examples, IMAGE, TEXT

PICKLED_WEIGHTS = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle", ".h5", ".msgpack")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "spiece.model", "sentencepiece.bpe.model")
PROCESSOR_FILES = ("preprocessor_config.json",)
MAX_MEMBERS = 2_000
MAX_TOKENS = 512
MAX_JSON_BYTES = 16 * 2**20  # a config, tokenizer config or index; a tokenizer.json is read by transformers
MAX_JSON_DEPTH = 32
#: Other JSON files of a directory that may name custom classes (auto_map) for transformers to import.
CUSTOM_CODE_FILES = ("tokenizer_config.json", "preprocessor_config.json", "processor_config.json")
BATCH = 16  # examples per forward pass the activation budget assumes
#: Config fields that count blocks: num_hidden_layers, n_layer, encoder_layers, depths [3, 4, 6, 3], ...
LAYER_KEY = re.compile(r"(^|_)(layers?|depths?)$")
WIDTH_KEYS = frozenset({"hidden_size", "intermediate_size", "d_model", "n_embd", "n_inner", "d_ff", "ffn_dim",
                        "encoder_ffn_dim", "decoder_ffn_dim", "embed_dim", "embedding_size", "hidden_sizes", "dim",
                        "hidden_dim", "d_inner", "d_kv"})
HEAD_KEYS = frozenset({"num_attention_heads", "n_head", "num_heads", "encoder_attention_heads",
                       "decoder_attention_heads", "num_key_value_heads"})
POSITION_KEYS = frozenset({"max_position_embeddings", "n_positions", "n_ctx", "max_source_positions"})
IMAGE_SIZE_KEYS = frozenset({"size", "crop_size", "height", "width", "shortest_edge", "longest_edge", "image_size"})


def quiet_transformers():
    """transformers with its logging at errors only and no progress bars (returned for use)."""
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    return transformers


def check_directory(directory: Path) -> dict:
    """The parsed config.json of a model directory, after the refusals listed in the module docstring
    and the budget (:func:`check_budget`): nothing the directory asks for is built before this."""
    config = _json_object(directory / "config.json", "config.json", required=(
        "a Hugging Face model directory holds config.json and model.safetensors (save it with "
        "model.save_pretrained(dir))"))
    _refuse_remote_code(config, directory.name, "config.json")
    for filename in CUSTOM_CODE_FILES:  # a tokenizer or processor can name custom classes as well
        if (directory / filename).is_file():
            _refuse_remote_code(_json_object(directory / filename, filename), directory.name, filename)
    stored = sum(_declared_values(path, directory.name) for path in weight_files(directory))
    check_budget(directory, config, stored)
    return config


def _json_object(path: Path, filename: str, required: str | None = None) -> dict:
    """The JSON object in ``path`` (bounded in size); ``required``: the fix when it is missing."""
    where = f"{path.parent.name}/{filename}"
    if not path.is_file():
        raise RepresentationError(f"{path.parent.name}: no {filename}; {required}.")
    if path.stat().st_size > MAX_JSON_BYTES:
        raise RepresentationError(f"{where} is {path.stat().st_size:,} bytes, over the {MAX_JSON_BYTES:,} a "
                                  "configuration needs; save it again with save_pretrained(dir).")
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        raise RepresentationError(f"{where} is not valid JSON ({str(error)[:200]}).") from None
    if not isinstance(value, dict):
        raise RepresentationError(f"{where} does not hold a configuration object.")
    return value


def _refuse_remote_code(config: dict, name: str, filename: str) -> None:
    if "auto_map" in config or config.get("trust_remote_code"):
        raise RepresentationError(
            f"{name}: its {filename} asks for remote code (auto_map: custom Python classes shipped with the "
            "model). Running that code is refused; use a model whose architecture is built into transformers, or "
            "export it to ONNX or torch.export and load that file.")


def weight_files(directory: Path) -> list[Path]:
    """The safetensors files a directory's weights are in: model.safetensors, or the shards its
    model.safetensors.index.json names (each a .safetensors file inside the directory)."""
    files = [directory / "model.safetensors"] if (directory / "model.safetensors").is_file() else []
    index = directory / "model.safetensors.index.json"
    if index.is_file():
        weight_map = _json_object(index, index.name).get("weight_map")
        if not isinstance(weight_map, dict) or not weight_map:
            raise RepresentationError(f"{directory.name}/{index.name} has no weight_map; save the model again "
                                      "with model.save_pretrained(dir).")
        files += [_shard(directory, value) for value in sorted(set(map(str, weight_map.values())))]
    if files:
        return files
    pickled = sorted(p.name for p in directory.iterdir() if p.name.endswith(PICKLED_WEIGHTS))
    raise RepresentationError(
        f"{directory.name}: no model.safetensors. "
        + (f"{', '.join(pickled)} {'is a pickle' if len(pickled) == 1 else 'are pickles'}, which can run "
           "arbitrary code when loaded and is refused. " if pickled else "")
        + "Convert the weights: model.save_pretrained(dir, safe_serialization=True).")


def _shard(directory: Path, name: str) -> Path:
    """One file named by an index's weight_map: a .safetensors file that exists inside ``directory``."""
    where = f"{directory.name}/model.safetensors.index.json"
    path = (directory / name).resolve()
    if Path(name).is_absolute() or ".." in Path(name).parts or directory.resolve() not in path.parents:
        raise RepresentationError(f"{where} names {name[:100]!r}, outside the model directory; an index may only "
                                  "name the .safetensors shards beside it.")
    if not name.endswith(".safetensors"):
        raise RepresentationError(f"{where} names {name[:100]!r}, which is not a .safetensors file (a .bin is a "
                                  "pickle, which can run arbitrary code when loaded); convert the weights: "
                                  "model.save_pretrained(dir, safe_serialization=True).")
    if not path.is_file():
        raise RepresentationError(f"{where} names {name[:100]!r}, which is not in the directory; add the shard or "
                                  "save the model again.")
    return path


def _declared_values(path: Path, name: str) -> int:
    """How many values a safetensors file declares, from its header parsed strictly before
    transformers opens it; a pickle (``torch.save``'s bytes or zip) under that name is refused."""
    with path.open("rb") as handle:
        head = handle.read(512)
        if len(head) >= 8:  # the header's length, then the header (safetensors_header bounds what it may claim)
            (length,) = struct.unpack_from("<Q", head)
            head += handle.read(max(0, 8 + min(length, SAFETENSORS_MAX_HEADER) - len(head)))
    where = f"{name}/{path.name}"
    if _is_pickle(head):
        raise RepresentationError(f"{where} is a pickle (torch.save's format), not safetensors: loading it can run "
                                  "arbitrary code, so it is refused. Convert the weights: "
                                  "model.save_pretrained(dir, safe_serialization=True).")
    header = safetensors_header(head, where, file_size=path.stat().st_size)
    return sum(math.prod(meta["shape"]) for key, meta in header.items() if key != "__metadata__")


def _is_pickle(head: bytes) -> bool:
    """Whether a file starts as a pickle does (protocol 2+) or as torch.save's zip around data.pkl."""
    if head[:1] == b"\x80":
        return True
    if head[:4] != b"PK\x03\x04" or len(head) < 30:
        return False
    (name_length,) = struct.unpack_from("<H", head, 26)
    return head[30:30 + name_length].endswith(b"data.pkl")


def check_budget(directory: Path, config: dict, stored: int) -> None:
    """Refuse, before anything is built, a model over the caps (:mod:`.caps`): more blocks than
    ``layers``; an integer in its config (a vocabulary, a width) or more values in its weights files
    (``stored``) or in the model its config builds (counted on the meta device, nothing allocated)
    than ``parameters``; one batch's largest activation over ``activation_bytes``."""
    limits, where = caps.current(), f"{directory.name}/config.json"
    numbers = list(_integers(config, where))
    stacks: dict[str, int] = {}
    for key, value in numbers:  # depths [3, 4, 6, 3] add up; num_hidden_layers is one count
        if LAYER_KEY.search(_leaf(key)):
            stacks[key.split("[")[0]] = stacks.get(key.split("[")[0], 0) + value
    for key, count in stacks.items():
        if count > limits.layers:
            raise _over(where, f"{_leaf(key)} = {count:,} layers", count, "layers", "use a model with fewer layers")
    for key, value in numbers:
        if value > limits.parameters:  # a size no tensor may have: refused before it reaches an allocator
            raise _over(where, f"{_leaf(key)} = {value:,}", value, "parameters", "use a model of a usual size")
    activation, what = _largest_activation(directory, config)
    if activation > limits.activation_bytes:
        raise _over(where, f"{what} on a batch of {BATCH}", activation, "activation_bytes",
                    "use a smaller model or fewer tokens or pixels")
    if stored > limits.parameters:
        raise _over(f"{directory.name}'s weights", f"{stored:,} values", stored, "parameters",
                    "use a smaller model")
    built = _meta_parameters(directory)
    if built > limits.parameters:
        raise _over(where, f"a model of {built:,} parameters", built, "parameters", "use a smaller model")


def _over(where: str, asks: str, value: int, cap: str, fix: str) -> RepresentationError:
    """The one message of a refusal by a cap: what the file asks, the cap, its variable, the fix."""
    variable, unit = caps.ENVIRONMENT[cap]
    limit = getattr(caps.current(), cap)
    amount = f" ({value / unit:,.1f} MiB)" if unit == caps.MiB else ""
    cap_text = f"{limit / unit:,.1f} MiB" if unit == caps.MiB else f"{limit:,}"
    return RepresentationError(f"{where} asks for {asks}{amount}, over the cap of {cap_text} ({variable}): {fix}, "
                               f"or have the host raise {variable}.")


def _integers(value, key: str, depth: int = 0):
    """Every integer in a parsed JSON value, with its dotted path (a list's items as ``key[i]``)."""
    if depth > MAX_JSON_DEPTH:
        raise RepresentationError(f"{key} is nested deeper than any configuration; save it again with "
                                  "save_pretrained(dir).")
    if isinstance(value, bool):
        return
    if isinstance(value, int):
        yield key, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _integers(v, f"{key}.{k}", depth + 1)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _integers(v, f"{key}[{i}]", depth + 1)


def _leaf(key: str) -> str:
    """The field name of a dotted path: ``cfg.json.text_config.hidden_sizes[2]`` -> ``hidden_sizes``."""
    return key.split("[")[0].rsplit(".", 1)[-1]


def _largest_activation(directory: Path, config: dict) -> tuple[int, str]:
    """Bytes (float32) of the largest tensor one batch of :data:`BATCH` forms, estimated from the
    config's sizes (the widest hidden state, attention scores) and the inputs: up to MAX_TOKENS
    tokens of text (fewer if its positions are fewer), or its processor's image size cut into
    patches (a CNN's feature maps taken at a quarter of the side, where its stem puts them)."""
    fields = {}
    for key, value in _integers(config, "config.json"):
        fields[_leaf(key)] = max(value, fields.get(_leaf(key), 0))
    width = max((v for k, v in fields.items() if k in WIDTH_KEYS), default=1)
    heads = max((v for k, v in fields.items() if k in HEAD_KEYS), default=0)  # a CNN attends nowhere
    if any((directory / name).is_file() for name in TOKENIZER_FILES):
        tokens = min([MAX_TOKENS] + [v for k, v in fields.items() if k in POSITION_KEYS])
        pixels = 0
    else:
        processor = directory / PROCESSOR_FILES[0]
        sizes = list(_integers(_json_object(processor, processor.name), processor.name)) if processor.is_file() else []
        side = max([fields.get("image_size", 0)] + [v for k, v in sizes if _leaf(k) in IMAGE_SIZE_KEYS])
        patch = fields.get("patch_size", 0)
        tokens = (side // patch) ** 2 + 1 if patch else (side // 4) ** 2
        pixels = BATCH * fields.get("num_channels", 3) * side * side * 4
    candidates = [(BATCH * tokens * width * 4, f"hidden states of {tokens:,} positions x {width:,} features"),
                  (BATCH * heads * tokens * tokens * 4, f"attention scores of {heads:,} heads x {tokens:,}^2 positions"),
                  (pixels, "its input pixels")]
    return max(candidates)


def _meta_parameters(directory: Path) -> int:
    """Parameters and buffers of the model the config describes, built on the meta device (shapes
    only, nothing allocated: ~1 s for 256 BERT blocks, which is why the layer count is capped first)."""
    transformers = quiet_transformers()
    try:
        config = transformers.AutoConfig.from_pretrained(directory, local_files_only=True, trust_remote_code=False)
        with torch.device("meta"):
            model = transformers.AutoModel.from_config(config, trust_remote_code=False)
    except (OSError, ValueError, KeyError, TypeError, AttributeError, IndexError, RuntimeError, ZeroDivisionError,
            OverflowError) as error:
        raise RepresentationError(f"{directory.name}/config.json does not describe a model transformers can build "
                                  f"({type(error).__name__}: {str(error).splitlines()[0][:300] if str(error) else ''}"
                                  "); save it again with model.save_pretrained(dir).") from None
    return sum(t.numel() for t in itertools.chain(model.parameters(), model.buffers()))


def extract_zip(data: bytes, filename: str, into: Path) -> Path:
    """Unpack an uploaded .zip of a model directory into ``into`` with the strict reader (names checked:
    no absolute paths, no '..', no links, no duplicates; every member streamed to disk under the caps);
    returns the directory holding config.json."""
    archive = open_archive(data, filename, max_members=MAX_MEMBERS,
                           fix="zip the directory model.save_pretrained(dir) wrote with a standard zip tool")
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
