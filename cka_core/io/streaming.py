"""Layers read from disk in row blocks, and linear CKA over them with memory bounded by the
statistics plus one block (the whole file is never in memory).

What can be streamed: an ``.npy`` file (one layer), a directory of ``.npy`` files (one layer each,
named after the file), an ``.npz`` whose members are stored uncompressed (``np.savez``, not
``savez_compressed``), a ``.safetensors`` file, or a list of such files of the same layers (shards)
read in order as one long file (shards of one ``.npy`` layer, ``acts_0.npy, acts_1.npy``, are the
layer ``acts``). Blocks are read with positioned reads, not through a memory map: a map keeps every
page it touched resident, so a 1.6 GB file would cost 1.6 GB of memory by the end. Headers are parsed as :mod:`cka_core.io` parses them (no pickles,
sizes checked against the file), and a shard whose layers differ from the first is refused.

:func:`streamed_cka_matrix` feeds the blocks to one :class:`~cka_core.CKAAccumulator`: the result is
exactly the in-memory ``cka_matrix`` of the concatenated data (docs/theory.md §2.4).
"""
from __future__ import annotations

import dataclasses
import math
import mmap
import os
import re
import struct
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..cka.accumulator import CKAAccumulator
from ..errors import RepresentationError
from .weights import LABEL_KEYS
from .safetensors_files import safetensors_header, SAFETENSORS_MAX_HEADER
from .numpy_files import read_npy_header
from .safezip import open_archive, STORED
from .weights import refuse_weights

BLOCK_VALUES = 2**19  # values of one side per block (2 MiB as float32); its float64 copies are what a step adds
WIDE_BLOCK_ROWS = 2048
SAFETENSORS_DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32,
                      "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_}
Progress = Callable[[int, int, float], None]  # (examples read, total, seconds so far)


@dataclass(frozen=True)
class StoredLayer:
    """Where one layer's rows lie in one file: C-order rows of ``row_shape`` values of ``dtype``."""

    name: str
    path: Path
    offset: int
    rows: int
    row_shape: tuple[int, ...]
    dtype: np.dtype
    shape: tuple[int, ...]  # as the header declares it: () for a scalar, which open_layers refuses

    @property
    def row_bytes(self) -> int:
        return math.prod(self.row_shape) * self.dtype.itemsize

    def read(self, handle, start: int, stop: int) -> np.ndarray:
        """Rows start..stop-1 as an (rows, d) array."""
        count = (stop - start) * self.row_bytes
        buffer = np.empty(count, dtype=np.uint8)
        got = os.preadv(handle.fileno(), [memoryview(buffer)], self.offset + start * self.row_bytes)
        if got != count:
            raise RepresentationError(f"{self.path}: layer {self.name!r} ends early (truncated file).")
        return buffer.view(self.dtype).reshape(stop - start, -1)


def _check_span(path: Path, name: str, offset: int, size: int) -> None:
    if offset + size > path.stat().st_size:
        raise RepresentationError(f"{path}: layer {name!r} claims {size:,} bytes past the end of the file "
                                  "(truncated or corrupt); save it again.")


def _npy_layer(path: Path, name: str, handle, offset: int = 0) -> StoredLayer:
    handle.seek(offset)
    shape, fortran, dtype = read_npy_header(handle, str(path), name)
    if fortran and len(shape) > 1:
        raise RepresentationError(f"{path}: layer {name!r} is stored column by column (Fortran order), so its "
                                  "rows are not contiguous; save it with np.save(path, np.ascontiguousarray(x)).")
    start = handle.tell()
    layer = StoredLayer(name, path, start, shape[0] if shape else 0, tuple(shape[1:]) or (1,), dtype, tuple(shape))
    _check_span(path, name, start, layer.rows * layer.row_bytes)
    return layer


def _npz_layers(path: Path) -> list[StoredLayer]:
    """Each .npy member's rows where they lie in the file: the archive is validated by the strict reader
    over a memory map (nothing is read into memory), and only stored members can be read in blocks."""
    with path.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
        archive = open_archive(mapped, str(path), fix="save it again with np.savez (not savez_compressed)")
        layers = []
        for member in archive.members:
            if not member.name.endswith(".npy"):
                continue
            name = member.name[: -len(".npy")]
            if member.method != STORED:
                raise RepresentationError(f"{path}: array {name!r} is compressed, so its rows cannot be read in blocks; "
                                          "save it with np.savez (not savez_compressed), or as .npy files.")
            layer = _npy_layer(path, name, handle, member.data_offset)
            if layer.offset + math.prod(layer.shape) * layer.dtype.itemsize != member.data_offset + member.size:
                raise RepresentationError(f"{path}: array {name!r} holds more or fewer bytes than its header "
                                          "describes; save it again with np.savez.")
            layers.append(layer)
    return layers


def _safetensors_layers(path: Path) -> list[StoredLayer]:
    with path.open("rb") as handle:
        head = handle.read(8)
        length = struct.unpack("<Q", head)[0] if len(head) == 8 else 0
        header = safetensors_header(head + handle.read(min(length, SAFETENSORS_MAX_HEADER)), str(path),
                                    file_size=path.stat().st_size)
    layers = []
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        dtype = SAFETENSORS_DTYPES.get(meta["dtype"])
        if dtype is None:
            raise RepresentationError(f"{path}: tensor {name!r} has an unsupported dtype; save float32 tensors.")
        shape, (begin, end) = meta["shape"], meta["data_offsets"]
        layer = StoredLayer(name, path, 8 + length + begin, shape[0] if shape else 0, tuple(shape[1:]) or (1,),
                            np.dtype(dtype), tuple(shape))
        _check_span(path, name, layer.offset, end - begin)
        layers.append(layer)
    return layers


def _file_layers(path: Path) -> list[StoredLayer]:
    if path.is_dir():
        files = sorted(path.glob("*.npy"))
        if not files:
            raise RepresentationError(f"{path}: a directory of layers holds one .npy file per layer; none found.")
        layers = []
        for file in files:
            with file.open("rb") as handle:
                layers.append(_npy_layer(file, file.stem, handle))
        return layers
    if not path.is_file():
        raise RepresentationError(f"{path}: no such file or directory (a missing shard?).")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        with path.open("rb") as handle:
            return [_npy_layer(path, path.stem, handle)]
    try:
        if suffix == ".npz":
            return _npz_layers(path)
        if suffix == ".safetensors":
            return _safetensors_layers(path)
    except (OSError, KeyError, ValueError, TypeError) as error:
        if isinstance(error, RepresentationError):
            raise
        raise RepresentationError(f"{path} could not be read ({type(error).__name__}: {error}).") from None
    raise RepresentationError(f"{path}: streaming reads .npy, a directory of .npy, .npz (uncompressed) and "
                              f".safetensors, not {suffix or 'a file without a suffix'}.")


def _natural(path: str):
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path)]


def shard_paths(spec: str) -> list[Path]:
    """The files of one side: a path, paths separated by commas (shards in that order), or a glob
    pattern (shards in natural order: shard_2 before shard_10)."""
    paths: list[Path] = []
    for part in (p.strip() for p in spec.split(",") if p.strip()):
        if any(ch in part for ch in "*?["):
            matched = sorted((str(p) for p in Path().glob(part) if p.is_file()) if not Path(part).is_absolute()
                             else (str(p) for p in Path("/").glob(part.lstrip("/"))), key=_natural)
            if not matched:
                raise RepresentationError(f"{part}: no file matches this pattern.")
            paths += [Path(p) for p in matched]
        else:
            paths.append(Path(part))
    if not paths:
        raise RepresentationError("no file given.")
    return paths


@dataclass(frozen=True)
class StreamedLayers:
    """The layers of one side over one or more shards: names, per-example shapes, total rows."""

    shards: tuple[tuple[StoredLayer, ...], ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(layer.name for layer in self.shards[0])

    @property
    def rows(self) -> int:
        return sum(shard[0].rows for shard in self.shards)

    def blocks(self, rows_per_block: int, start: int = 0, stop: int | None = None) -> Iterator[list[np.ndarray]]:
        """Consecutive row blocks of rows start..stop-1 (of all shards in order, as one long file):
        one (rows, d) array per layer. A block does not cross a shard boundary."""
        stop = self.rows if stop is None else stop
        offset = 0
        for shard in self.shards:
            first, last = max(start, offset) - offset, min(stop, offset + shard[0].rows) - offset
            offset += shard[0].rows
            if first >= last:
                continue
            handles = {layer.path: layer.path.open("rb") for layer in shard}
            try:
                for begin in range(first, last, rows_per_block):
                    end = min(last, begin + rows_per_block)
                    yield [layer.read(handles[layer.path], begin, end) for layer in shard]
            finally:
                for handle in handles.values():
                    handle.close()


def open_layers(spec: str | os.PathLike) -> StreamedLayers:
    """The layers of one side (see :func:`shard_paths`), checked: every layer of a shard has the same
    rows, every shard the same layers (names, per-example shapes, dtypes) as the first. Arrays named
    as labels (``labels``, ``y``, ``targets``) are left out."""
    paths = shard_paths(str(spec))
    lone_arrays = len(paths) > 1 and all(p.is_file() and p.suffix.lower() == ".npy" for p in paths)
    shards = []
    for path in paths:
        layers = tuple(layer for layer in _file_layers(path) if layer.name not in LABEL_KEYS)
        if lone_arrays:  # one layer cut into files x_0.npy, x_1.npy, ...: named x, not after each file
            layers = (dataclasses.replace(layers[0], name=_shared_stem(paths)),)
        if not layers:
            raise RepresentationError(f"{path} holds no layers.")
        refuse_weights({l.name: l.shape for l in layers}, str(path))  # judged from headers alone, scalars too
        scalar = next((layer for layer in layers if not layer.shape), None)
        if scalar is not None:
            raise RepresentationError(f"{path}: layer {scalar.name!r} is a scalar; save one row per example.")
        rows = {layer.rows for layer in layers}
        if len(rows) > 1:
            raise RepresentationError(f"{path}: its layers have different numbers of rows "
                                      f"({', '.join(f'{l.name}: {l.rows}' for l in layers)}).")
        if shards:
            first = shards[0]
            described = [(l.name, l.row_shape, l.dtype.str) for l in layers]
            expected = [(l.name, l.row_shape, l.dtype.str) for l in first]
            if described != expected:
                raise RepresentationError(
                    f"shard {path} does not hold the same layers as {first[0].path}: "
                    f"{_difference(expected, described)}. Every shard needs the same layers, widths and dtype.")
        shards.append(layers)
    return StreamedLayers(tuple(shards))


def _shared_stem(paths: list[Path]) -> str:
    """The name the files of one sharded layer share: ``acts_0.npy, acts_1.npy`` -> ``acts``."""
    stem = re.sub(r"[_\-. ]+\d*$", "", os.path.commonprefix([p.stem for p in paths]))
    return stem or paths[0].stem


def _difference(expected, described) -> str:
    names_e, names_d = [e[0] for e in expected], [d[0] for d in described]
    if names_e != names_d:
        return f"layers {names_d} instead of {names_e}"
    for (name, shape_e, dtype_e), (_, shape_d, dtype_d) in zip(expected, described):
        if shape_e != shape_d:
            return f"layer {name!r} has shape {shape_d} per example instead of {shape_e}"
        if dtype_e != dtype_d:
            return f"layer {name!r} has dtype {np.dtype(dtype_d)} instead of {np.dtype(dtype_e)}"
    return "a different layout"


def block_rows(*sides: StreamedLayers) -> int:
    """Rows per block: about BLOCK_VALUES values of each side, but at least as many rows as the
    layers are wide (up to WIDE_BLOCK_ROWS): every block costs O(width^2) work besides its products
    (adding the cross-products into the statistics), which fewer rows would not pay for."""
    width = max(sum(math.prod(l.row_shape) for l in side.shards[0]) for side in sides)
    return max(64, BLOCK_VALUES // max(width, 1), min(width, WIDE_BLOCK_ROWS))


def streamed_cka_matrix(a: StreamedLayers, b: StreamedLayers | None = None, *, debiased: bool = False,
                        batch_size: int | None = None, progress: Progress | None = None) -> np.ndarray:
    """Linear CKA between every layer of ``a`` and of ``b`` (``None``: a self-comparison), reading
    both in row blocks: exactly the ``cka_matrix`` of the whole data, in the memory of the
    statistics plus one block. With ``batch_size``, Nguyen et al.'s minibatch estimator over
    consecutive batches (a block is a whole number of batches, so they are those of one pass)."""
    accumulator = CKAAccumulator(debiased=debiased, batch_size=batch_size)
    return stream_into(accumulator, a, b, progress=progress).result()


def stream_into(accumulator: CKAAccumulator, a: StreamedLayers, b: StreamedLayers | None = None, *, start: int = 0,
                stop: int | None = None, progress: Progress | None = None) -> CKAAccumulator:
    """Feed rows start..stop-1 of both sides to ``accumulator`` in row blocks (one rank's share of
    a distributed run, or everything); ``progress`` hears (rows done, rows in the range, seconds)."""
    if b is not None and a.rows != b.rows:
        raise RepresentationError(f"side A has {a.rows:,} examples but side B has {b.rows:,}; both need one row per "
                                  "example, the same examples in the same order.")
    stop = a.rows if stop is None else stop
    batch_size = accumulator.batch_size
    step = block_rows(a) if b is None else block_rows(a, b)
    if batch_size is not None:
        step = max(batch_size, step // batch_size * batch_size)
    total, done, began = stop - start, 0, time.perf_counter()
    blocks_b = None if b is None else _rows(b, step, start, stop)
    for block_a in _rows(a, step, start, stop):
        if blocks_b is None:
            accumulator.update(dict(zip(a.names, block_a)))
        else:
            accumulator.update(dict(zip(a.names, block_a)), dict(zip(b.names, next(blocks_b))))
        done += block_a[0].shape[0]
        if progress is not None:
            progress(done, total, time.perf_counter() - began)
    return accumulator


def _rows(side: StreamedLayers, step: int, start: int, stop: int) -> Iterator[list[np.ndarray]]:
    """Blocks of exactly ``step`` rows across shard boundaries (the last may be shorter), so both sides
    stay aligned whatever their shards and batches of the minibatch estimator are never split."""
    pending: list[list[np.ndarray]] = []
    count = 0
    for block in side.blocks(step, start, stop):
        pending.append(block)
        count += block[0].shape[0]
        while count >= step:
            merged = pending[0] if len(pending) == 1 else [np.concatenate(parts) for parts in zip(*pending)]
            yield [m[:step] for m in merged]
            rest = [m[step:] for m in merged]
            count -= step
            pending = [rest] if count else []
    if count:
        yield pending[0] if len(pending) == 1 else [np.concatenate(parts) for parts in zip(*pending)]
