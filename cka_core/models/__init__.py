"""Your own models: Hugging Face directories, ONNX graphs and torch.export programs, loaded without
running code from the file, run on inputs that belong to them (texts, images, arrays), their layers
reduced to representations.

>>> model = load_model("runs/bert_a")                      # a save_pretrained directory (or a .zip of it)
>>> examples = read_inputs("sentences.txt")                  # or builtin_sentences(500)
>>> reps = represent(model, examples, model.default_layers, "mean")
>>> cka_matrix(reps.layers, debiased=True)
"""
from __future__ import annotations

from pathlib import Path, PurePosixPath

from ..errors import RepresentationError
from .base import Layer, LoadedModel, represent, represent_all, Representations, Stopped
from .inputs import ARRAY, Examples, IMAGE, read_arrays, read_images, read_text_file, TEXT, texts
from .reduction import DEFAULTS, MAP, MAP_REDUCTIONS, REDUCTIONS, TOKEN_REDUCTIONS, TOKENS

__all__ = ["LoadedModel", "Layer", "Examples", "Representations", "Stopped", "represent", "represent_all", "load_model",
           "read_inputs", "read_images", "read_arrays", "read_text_file", "texts", "builtin_sentences", "reductions_for",
           "default_reduction", "TEXT", "IMAGE", "ARRAY", "MODEL_SUFFIXES", "IMAGE_SUFFIXES", "REDUCTIONS", "TOKEN_REDUCTIONS", "MAP_REDUCTIONS"]

MODEL_SUFFIXES = (".zip", ".onnx", ".pt2")
TEXT_SUFFIXES = (".txt", ".csv")
IMAGE_SUFFIXES = (".zip", ".png", ".jpg", ".jpeg")
ARRAY_SUFFIXES = (".npy", ".npz")
BUILTIN = "builtin:sentences"


def load_model(source, filename: str | None = None, *, tokenizer: bytes | None = None, allow_hub: bool = False,
               threads: int = 0, isolated: bool = False, worker=None) -> LoadedModel:
    """A model from a path (a Hugging Face directory or .zip of one, a .onnx or a .pt2 file), from
    bytes with their ``filename``, or from a Hub id when ``allow_hub``. ``tokenizer``: the bytes of a
    tokenizer.json for ONNX and torch.export language models.

    Every file is checked before it is loaded (no code from it runs; sizes within :mod:`.caps`).
    ``isolated``: load and run it in a worker process with a memory limit and a clock (what the app
    and the command line do with every model: a file from a stranger may still be slow or large in
    ways no check sees beforehand); close it with ``model.close()``. ``worker``: a
    :class:`~cka_core.models.worker.Worker` the caller started (implies ``isolated``), so that it can
    kill a load that is still running."""
    if isolated or worker is not None:
        from .worker import IsolatedModel

        return IsolatedModel(source, filename, tokenizer=tokenizer, allow_hub=allow_hub, threads=threads,
                             worker=worker)
    from .huggingface import HuggingFaceModel

    directory = None  # where a .onnx on this machine may read its external data
    if isinstance(source, (bytes, bytearray)):
        data, name = bytes(source), filename or "model"
    else:
        path = Path(source)
        if path.is_dir():
            graphs = sorted(path.glob("*.onnx"))
            if len(graphs) == 1 and not (path / "config.json").exists():  # one .onnx and its data files
                path, filename = graphs[0], filename and f"{filename}/{graphs[0].name}"
            else:
                return HuggingFaceModel(path, allow_hub=allow_hub)
        if not path.exists():
            if allow_hub and isinstance(source, str) and "/" in source and not source.endswith(MODEL_SUFFIXES):
                return HuggingFaceModel(source, allow_hub=True)
            hub_note = "" if allow_hub or Path(str(source)).suffix else (
                " (Hub ids are off here: download the model and load its directory, or set CKA_ALLOW_HUB=1 where "
                "the Hub is reachable)")
            raise RepresentationError(f"{source}: no such file or model directory{hub_note}.")
        data, name, directory = path.read_bytes(), filename or path.name, path.parent
    suffix = Path(name).suffix.lower()
    if suffix == ".zip":
        return _load_archive(data, name, tokenizer=tokenizer, threads=threads)
    if suffix == ".onnx":
        from .onnx_external import DirectoryFiles
        from .onnx_graph import OnnxModel

        files = DirectoryFiles(directory, name) if directory is not None else None
        return OnnxModel(data, name, tokenizer=tokenizer, threads=threads, files=files)
    if suffix == ".pt2":
        from .exported import ExportedModel

        return ExportedModel(data, name, tokenizer=tokenizer)
    raise RepresentationError(f"{name}: a model is a Hugging Face directory (or a .zip of it), a .onnx or a .pt2 "
                              f"file, not {suffix or 'a file without a suffix'}.")


def _load_archive(data: bytes, name: str, *, tokenizer: bytes | None, threads: int) -> LoadedModel:
    """A model .zip: one .onnx with its external-data files (read from the archive in memory, never
    unpacked), or else a Hugging Face directory (a config.json beside its weights)."""
    from ..io.safezip import open_archive
    from .huggingface import load_zip, MAX_MEMBERS

    archive = open_archive(data, name, max_members=MAX_MEMBERS,
                           fix="zip the model's directory (save_pretrained, or the .onnx with its data file) with a "
                               "standard zip tool")
    graphs = [member for member in archive.names if member.lower().endswith(".onnx")]
    if len(graphs) == 1 and not any(PurePosixPath(member).name == "config.json" for member in archive.names):
        from .onnx_external import ArchiveFiles
        from .onnx_graph import OnnxModel

        return OnnxModel(archive.read(graphs[0]), name, tokenizer=tokenizer, threads=threads,
                         files=ArchiveFiles(archive, graphs[0], name))
    return load_zip(data, name, allow_hub=False)


def builtin_sentences(count: int = 500) -> Examples:
    """The project's own English sentences (sample_models.text): the default text inputs."""
    from sample_models.text import sentences

    return texts(sentences(count), f"{count} built-in sentences")


def read_inputs(source, filename: str | None = None) -> Examples:
    """Examples from a path or bytes: .txt/.csv (texts), .png/.jpg or a .zip of them or a directory
    (images), .npy/.npz (arrays), or "builtin:sentences[:N]"."""
    if isinstance(source, str) and source.startswith(BUILTIN):
        count = source[len(BUILTIN):].lstrip(":")
        return builtin_sentences(int(count) if count.isdigit() else 500)
    if isinstance(source, (bytes, bytearray)):
        data, name = bytes(source), filename or "inputs"
    else:
        path = Path(source)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
            return read_images([(str(p.relative_to(path)), p.read_bytes()) for p in files], path.name)
        if not path.is_file():
            raise RepresentationError(f"{source}: no such file or folder of inputs.")
        data, name = path.read_bytes(), filename or path.name
    suffix = Path(name).suffix.lower()
    if suffix in TEXT_SUFFIXES:
        return read_text_file(data, name)
    if suffix in ARRAY_SUFFIXES:
        return read_arrays(data, name)
    if suffix in IMAGE_SUFFIXES:
        return read_images([(name, data)], name)
    raise RepresentationError(f"{name}: inputs are texts (.txt, .csv), images (.png, .jpg, or a .zip or folder of "
                              f"them) or arrays (.npy, .npz), not {suffix or 'a file without a suffix'}.")


def reductions_for(model: LoadedModel, layers) -> dict[str, str]:
    """The reductions that apply to ``layers`` of ``model`` (code -> label): token ones, map ones, or none."""
    kinds = {model.layer(name).kind for name in layers}
    return {**(TOKEN_REDUCTIONS if TOKENS in kinds else {}), **(MAP_REDUCTIONS if MAP in kinds else {})}


def default_reduction(model: LoadedModel, layers) -> str:
    """Mean over tokens for token layers, global average pooling for feature maps, else flatten."""
    kinds = {model.layer(name).kind for name in layers}
    return DEFAULTS[TOKENS] if TOKENS in kinds else DEFAULTS[MAP] if MAP in kinds else "flatten"
