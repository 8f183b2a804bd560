"""Hostile zip archives: every trick that makes two zip readers (Python's zipfile, torch's miniz) see
different members, zip bombs in every compression method the product reads, unsafe member names,
nested archives, bytes before or after an archive, and the neighbouring text and header lies (a CSV
field over csv's limit, a safetensors header with a key given twice). Each code-running trick plants
a canary and names the careless loader that runs it. ``raw_zip`` and the .pt2 builders are shared
with tests/cka_core/test_safezip.py."""
from __future__ import annotations

import bz2
import functools
import io
import json
import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from . import harness
from .harness import Built, Case

# ----------------------------------------------------------------- a zip writer that lies on request


@dataclass(frozen=True)
class Entry:
    """One member as written: ``stored`` bytes, ``method``, and what the headers declare."""

    name: str
    stored: bytes
    method: int = 0
    crc: int = 0
    size: int = 0
    external_attr: int = 0o100644 << 16

    @staticmethod
    def of(name: str, content: bytes, method: int = 0) -> "Entry":
        """An honest member: ``content`` stored or compressed with ``method`` (0, 8 or 12)."""
        if method == 8:
            compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
            stored = compressor.compress(content) + compressor.flush()
        else:
            stored = bz2.compress(content) if method == 12 else content
        return Entry(name, stored, method, zlib.crc32(content), len(content))


def local(entry: Entry) -> bytes:
    name = entry.name.encode()
    return struct.pack("<4sHHHHHLLLHH", b"PK\x03\x04", 20, 0x800, entry.method, 0, 0x21, entry.crc,
                       len(entry.stored), entry.size, len(name), 0) + name + entry.stored


def central(entry: Entry, offset: int) -> bytes:
    name = entry.name.encode()
    return struct.pack("<4sHHHHHHLLLHHHHHLL", b"PK\x01\x02", 0x314, 20, 0x800, entry.method, 0, 0x21, entry.crc,
                       len(entry.stored), entry.size, len(name), 0, 0, 0, 0, entry.external_attr, offset) + name


def end(count: int, size: int, offset: int, comment: bytes = b"") -> bytes:
    return struct.pack("<4sHHHHLLH", b"PK\x05\x06", 0, 0, count, count, size, offset, len(comment)) + comment


def raw_zip(entries: list[Entry]) -> bytes:
    """The entries as one archive, exactly as given (duplicates, lies and all)."""
    body, offsets = b"", []
    for entry in entries:
        offsets.append(len(body))
        body += local(entry)
    directory = b"".join(central(e, o) for e, o in zip(entries, offsets))
    return body + directory + end(len(entries), len(directory), len(body))


def members_of(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {info.filename: archive.read(info) for info in archive.infolist()}


def duplicate(members: dict[str, bytes], evil: dict[str, bytes], pads: int = 0) -> bytes:
    """Trick (a): each name in ``evil`` twice, the evil content first, the honest one last (what zipfile
    shows). miniz finds a name by binary search in its sorted directory, so which of two equal names it
    takes depends on the other names: ``pads`` empty records tip it to the evil one."""
    prefix = next(iter(members)).split("/", 1)[0]
    entries = [Entry.of(name, evil[name]) for name in members if name in evil]
    entries += [Entry.of(name, content) for name, content in members.items()]
    return raw_zip(entries + [Entry.of(f"{prefix}/.data/pad{i}", b"") for i in range(pads)])


def two_directories(members: dict[str, bytes], evil: dict[str, bytes]) -> bytes:
    """Trick (b): the evil records after the honest ones, then a directory pointing to them (where the end
    record says the directory is: miniz reads it) and an honest directory right before the end record
    (where zipfile looks). Same names, so both directories have the same size."""
    honest = [Entry.of(name, content) for name, content in members.items()]
    body, offsets = b"", {}
    for entry in honest:
        offsets[entry.name] = len(body)
        body += local(entry)
    bad = {name: Entry.of(name, content) for name, content in evil.items()}
    bad_offsets = {}
    for name, entry in bad.items():
        bad_offsets[name] = len(body)
        body += local(entry)
    evil_directory = b"".join(central(bad.get(e.name, e), bad_offsets.get(e.name, offsets[e.name])) for e in honest)
    honest_directory = b"".join(central(e, offsets[e.name]) for e in honest)
    assert len(evil_directory) == len(honest_directory)
    return body + evil_directory + honest_directory + end(len(honest), len(honest_directory), len(body))


# ----------------------------------------------------------------- .pt2 files and their tricks

@functools.lru_cache(maxsize=None)
def pt2_bytes() -> bytes:
    """A real program from torch.export.save: Linear(8, 4) on (2, 8)."""
    import torch

    torch.manual_seed(0)
    program = torch.export.export(torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.ReLU()).eval(),
                                  (torch.randn(2, 8),))
    buffer = io.BytesIO()
    torch.export.save(program, buffer)
    return buffer.getvalue()


def pt2_members() -> dict[str, bytes]:
    return members_of(pt2_bytes())


def _named(members: dict[str, bytes], suffix: str) -> str:
    return next(name for name in members if name.endswith(suffix))


def pickled_weights(members: dict[str, bytes], directory: Path) -> dict[str, bytes]:
    """The weights config marking weight_0 as pickled, and weight_0 a canary pickle (torch.load with
    weights_only=False unpickles it)."""
    name = _named(members, "model_weights_config.json")
    config = json.loads(members[name])
    for meta in config["config"].values():
        if meta["path_name"] == "weight_0":
            meta["use_pickle"] = True
    return {name: json.dumps(config).encode(),
            _named(members, "data/weights/weight_0"): harness.canary_pickle(directory)}


def pickled_inputs(members: dict[str, bytes], directory: Path) -> dict[str, bytes]:
    """Example inputs that fail weights_only, so torch.export.load retries with a full unpickler."""
    import torch

    buffer = io.BytesIO()
    torch.save(harness.Canary(directory), buffer)
    return {_named(members, "sample_inputs/model.pt"): buffer.getvalue()}


def pickled_weights_beside(members: dict[str, bytes], directory: Path) -> tuple[dict[str, bytes], dict[str, bytes]]:
    """For trick (a) on the weights: (the members plus weight_9, a canary pickle no honest config names;
    a weights config that marks weight_0's tensor as pickled in weight_9)."""
    name = _named(members, "model_weights_config.json")
    config = json.loads(members[name])
    for meta in config["config"].values():
        if meta["path_name"] == "weight_0":
            meta.update(use_pickle=True, path_name="weight_9")
    extra = {name.replace("model_weights_config.json", "weight_9"): harness.canary_pickle(directory)}
    return {**members, **extra}, {name: json.dumps(config).encode()}


def stride0_inputs(members: dict[str, bytes]) -> dict[str, bytes]:
    """Example inputs of shape (2e7, 8) stored as 8 floats (a stride-0 view): 640 MB once run on."""
    import torch

    buffer = io.BytesIO()
    torch.save(((torch.ones(1, 8).expand(2 * 10**7, 8),), {}), buffer)
    return {_named(members, "sample_inputs/model.pt"): buffer.getvalue()}


def _export_load(built: Built) -> None:
    import torch

    torch.export.load(built.args[0])


def _np_load_pickle(built: Built) -> None:
    import numpy as np

    np.load(built.args[0], allow_pickle=True)


# ----------------------------------------------------------------- bombs

@functools.lru_cache(maxsize=None)
def bzip2_zeros(size: int = 256 << 20) -> bytes:
    """``size`` zero bytes as one bzip2 stream (a few hundred bytes; built once per process)."""
    compressor, block = bz2.BZ2Compressor(9), bytes(16 << 20)
    return b"".join(compressor.compress(block) for _ in range(size // len(block))) + compressor.flush()


@functools.lru_cache(maxsize=None)
def deflate_zeros(size: int = 1 << 30) -> bytes:
    compressor, block = zlib.compressobj(9, zlib.DEFLATED, -15), bytes(16 << 20)
    return b"".join(compressor.compress(block) for _ in range(size // len(block))) + compressor.flush()


def bzip2_bomb(name: str) -> bytes:
    """A bzip2 member declaring 10 bytes that inflates to 256 MiB (zipfile inflates it whole per read)."""
    return raw_zip([Entry(name, bzip2_zeros(), 12, zlib.crc32(bytes(10)), 10)])


def _png() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 30, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def _pt2_bomb() -> bytes:
    """The program's JSON as a bzip2 member declaring 10 bytes (the old check read it with zipfile)."""
    members = pt2_members()
    name = _named(members, "models/model.json")
    return raw_zip([Entry.of(n, c) for n, c in members.items() if n != name]
                   + [Entry(name, bzip2_zeros(), 12, zlib.crc32(bytes(10)), 10)])


# ----------------------------------------------------------------- the cases

def _write(directory: Path, name: str, data: bytes, via: str) -> Built:
    path = directory / name
    path.write_bytes(data)
    return Built(via, (str(path),))


def calling(target: str) -> dict[str, bytes]:
    """The program's model.json with its first operator replaced by ``target`` (torch resolves a
    target by attribute lookup, so a name outside ATen reaches Python)."""
    name = next(n for n in pt2_members() if n.endswith("models/model.json"))
    text = pt2_members()[name].decode()
    return {name: text.replace('"torch.ops.aten.linear.default"', json.dumps(target), 1).encode()}


def _pt2_case(name: str, make, expect: str | None, unsafe=None) -> Case:
    return Case(name, lambda d: _write(d, f"{name}.pt2", make(d), "model"), expect, unsafe)


def _npz() -> bytes:
    import numpy as np

    buffer = io.BytesIO()
    np.savez(buffer, layer1=np.random.default_rng(0).normal(size=(20, 6)).astype(np.float32),
             layer2=np.random.default_rng(1).normal(size=(20, 3)).astype(np.float32))
    return buffer.getvalue()


def _pt() -> bytes:
    import torch

    buffer = io.BytesIO()
    torch.save({"layer1": torch.randn(20, 6), "layer2": torch.randn(20, 3)}, buffer)
    return buffer.getvalue()


def _model_zip(entries: list[Entry]) -> bytes:
    return raw_zip([Entry.of("bert/config.json", b'{"model_type": "bert"}')] + entries)


def _safetensors_duplicate_keys() -> bytes:
    header = (b'{"a": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}, '
              b'"a": {"dtype": "F32", "shape": [4, 1], "data_offsets": [0, 16]}}')
    return struct.pack("<Q", len(header)) + header + bytes(16)


TWO = r"two members are named alike"
STRAY = r"central directory|bytes before|bytes after|end record"

CASES: list[Case] = [
    # (a) one name twice, the pickle first (torch's reader takes it), the honest one last (zipfile's).
    _pt2_case("pt2_duplicate_weights_member", lambda d: duplicate(*pickled_weights_beside(pt2_members(), d)),
              TWO, _export_load),
    _pt2_case("pt2_duplicate_inputs_member", lambda d: duplicate(pt2_members(), pickled_inputs(pt2_members(), d), 4),
              TWO, _export_load),
    # (b) two central directories: torch follows the end record's offset to the evil one.
    _pt2_case("pt2_second_directory_weights",
              lambda d: two_directories(pt2_members(), pickled_weights(pt2_members(), d)), STRAY, _export_load),
    _pt2_case("pt2_second_directory_inputs",
              lambda d: two_directories(pt2_members(), pickled_inputs(pt2_members(), d)), STRAY, _export_load),
    _pt2_case("pt2_pickled_weights", lambda d: raw_zip([Entry.of(n, c) for n, c in {
        **pt2_members(), **pickled_weights(pt2_members(), d)}.items()]), r"pickle", _export_load),
    _pt2_case("pt2_pickled_inputs", lambda d: raw_zip([Entry.of(n, c) for n, c in {
        **pt2_members(), **pickled_inputs(pt2_members(), d)}.items()]), r"example inputs", _export_load),
    _pt2_case("pt2_stride0_inputs", lambda d: raw_zip([Entry.of(n, c) for n, c in {
        **pt2_members(), **stride0_inputs(pt2_members())}.items()]), r"stride-0|larger than the data"),
    _pt2_case("pt2_bzip2_bomb", lambda d: _pt2_bomb(), r"inflates past|zip bomb"),
    _pt2_case("pt2_trailing_data", lambda d: pt2_bytes() + b"\x00" * 64, r"end record"),
    _pt2_case("pt2_operator_outside_aten", lambda d: raw_zip([Entry.of(n, c) for n, c in {
        **pt2_members(), **calling("builtins.exec")}.items()]), r"calls 'builtins.exec', which is not an ATen operator"),
    _pt2_case("pt2_custom_torch_op", lambda d: raw_zip([Entry.of(n, c) for n, c in {
        **pt2_members(), **calling("torch.ops.evil.system.default")}.items()]), r"not an ATen operator"),
    _pt2_case("pt2_real", lambda d: pt2_bytes(), None),
    Case("images_zip_bzip2_bomb", lambda d: _write(d, "pictures.zip", bzip2_bomb("a.png"), "inputs"),
         r"inflates past|zip bomb"),
    Case("images_zip_nested_archive_ignored", lambda d: _write(d, "pictures.zip", raw_zip([
        Entry.of("pictures/a.png", _png()), Entry("pictures/inner.zip", bzip2_bomb("b.png"), 0,
                                                  zlib.crc32(bzip2_bomb("b.png")), len(bzip2_bomb("b.png")))]),
        "inputs"), None),
    Case("model_zip_deflate_1gib_declared", lambda d: _write(d, "bert.zip", _model_zip([
        Entry("bert/model.safetensors", deflate_zeros(), 8, zlib.crc32(b""), 1 << 30)]), "model"),
        r"zip bomb|declares"),
    Case("model_zip_slip", lambda d: _write(d, "bert.zip", _model_zip([Entry.of("../escaped.txt", b"x")]), "model"),
         r"outside the archive"),
    Case("model_zip_absolute_member", lambda d: _write(d, "bert.zip", _model_zip([Entry.of("/tmp/cka_abs", b"x")]),
                                                        "model"), r"outside the archive"),
    Case("model_zip_symlink_member", lambda d: _write(d, "bert.zip", _model_zip([
        Entry("bert/model.safetensors", b"/etc/passwd", 0, zlib.crc32(b"/etc/passwd"), 11, 0o120777 << 16)]),
        "model"), r"link"),
    Case("npz_prepended_pickle", lambda d: _write(d, "layers.npz", harness.canary_pickle(d) + _npz(),
                                                 "representations"), STRAY, _np_load_pickle),
    Case("npz_trailing_data", lambda d: _write(d, "layers.npz", _npz() + b"junk", "representations"), r"end record"),
    Case("csv_inputs_field_over_csv_limit", lambda d: _write(
        d, "texts.csv", b'text\n"' + b"word " * 40_000 + b'"\n', "inputs"), r"line 2"),
    Case("safetensors_duplicate_keys", lambda d: _write(d, "layers.safetensors", _safetensors_duplicate_keys(),
                                                       "representations"), r"twice"),
    Case("npz_real", lambda d: _write(d, "layers.npz", _npz(), "representations"), None),
    Case("pt_real", lambda d: _write(d, "layers.pt", _pt(), "representations"), None),
]
