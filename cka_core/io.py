"""Load representation files without ever unpickling them.

``load_representations(data, filename)`` reads .npy, .npz, .pt, .safetensors and .csv bytes
into a name -> array mapping (per-example shape kept), refusing pickles, oversized headers,
zip bombs, non-numeric or non-finite data with a ``RepresentationError`` that says how to fix it.

Uploads are hostile input: every size a file claims is checked against the limits below before
anything of that size is allocated, and every parser failure becomes a ``RepresentationError``.
"""
from __future__ import annotations

import array
import csv
import io
import json
import math
import struct
import tokenize
import warnings
from collections.abc import Iterator
from contextvars import ContextVar
from pathlib import Path

import numpy as np

from .errors import RepresentationError
from .safezip import DEFLATED, STORED, Archive, open_archive
from .validation import as_matrix

MAX_ELEMENTS = 2**28  # 268M values: larger arrays are refused before allocating; a file unpacks to 8 B a value at most
MAX_ARRAYS = 1024  # layers per file; more would not fit a heatmap, and each adds a row of CKAs
MAX_CSV_COLUMNS = 2**17  # csv keeps one Python string per cell of a row: this bounds one row's memory
SUPPORTED = (".npy", ".npz", ".pt", ".pth", ".safetensors", ".csv")

_NPY_HEADER_WINDOW = 16 * 1024  # numpy refuses headers over 10,000 bytes: read no more to find one
_MAX_NDIM = 32  # numpy allows 64 dimensions; activations have a handful
_ZIP_SPARE_ENTRIES = 16  # torch.save adds a few records (data.pkl, version, byteorder...) to its tensors
_ZIP_SPARE_BYTES = 64 << 20  # ... and a pickle of the object tree: room for those next to the arrays
# The bound of the current load_representations call: a context variable, so concurrent sessions
# (threads) with different bounds cannot see each other's, without threading it through every reader.
_MAX_VALUES: ContextVar[int] = ContextVar("max_values", default=MAX_ELEMENTS)


def _max_values() -> int:
    return _MAX_VALUES.get()


def _max_bytes() -> int:
    return 8 * _MAX_VALUES.get()


def _bytes_text(n: int) -> str:
    return f"{n / 2**30:.0f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"


# numpy evaluates an .npy header with ast.literal_eval (after tokenising it when that fails):
# arbitrary header text fails in all of these ways.
_NPY_HEADER_ERRORS = (ValueError, SyntaxError, TypeError, RecursionError, MemoryError, tokenize.TokenError,
                      OverflowError)


def load_representations(data: bytes, filename: str, *, max_values: int = MAX_ELEMENTS) -> dict[str, np.ndarray]:
    """Parse the bytes of a representation file; the extension of ``filename`` picks the format.

    Returns a dict layer name -> float32 or float64 array of shape (n_examples, ...) with at least
    one example and one feature, all finite, in file order. A single-array format (.npy, .csv,
    a bare tensor in .pt) is named after the file stem.

    ``max_values`` (at most MAX_ELEMENTS) bounds the values of any one array and, at 8 bytes each,
    what the whole file may unpack to; both are checked against headers before allocating. A hosted
    app passes a lower bound than a local command line.
    """
    token = _MAX_VALUES.set(min(int(max_values), MAX_ELEMENTS))
    try:
        return _load(data, filename)
    finally:
        _MAX_VALUES.reset(token)


def _load(data: bytes, filename: str) -> dict[str, np.ndarray]:
    suffix = Path(filename).suffix.lower()
    stem = Path(filename).stem or "layer"
    if suffix not in SUPPORTED:
        raise RepresentationError(
            f"{filename!r}: unknown format {suffix or '(no extension)'}; save activations as one of "
            f"{', '.join(SUPPORTED)}."
        )
    if not data:
        raise RepresentationError(f"{filename!r} is empty (0 bytes); upload the file again.")
    data = data if isinstance(data, bytes) else bytes(data)  # bytearray, memoryview
    reader = {
        ".npy": _read_npy,
        ".npz": _read_npz,
        ".pt": _read_torch,
        ".pth": _read_torch,
        ".safetensors": _read_safetensors,
        ".csv": _read_csv,
    }[suffix]
    arrays = reader(data, filename, stem)
    if not arrays:
        raise RepresentationError(f"{filename!r} holds no arrays; save at least one (n_examples, ...) array.")
    _check_count(len(arrays), filename)
    # From shapes, before the per-array checks: a state_dict's scalar counter is not "a single number" to fix.
    refuse_weights(arrays, filename)
    # Before _checked copies anything: a .pt tensor may be a broadcast view far larger than its storage.
    _check_total(sum(array.size * 8 for array in arrays.values()), filename)
    return {name: _checked(array, filename, name) for name, array in arrays.items()}


# ----------------------------------------------------------------- validation in one place

def _checked(array, filename: str, name: str) -> np.ndarray:
    array = np.asarray(array)
    _check_numeric(array.dtype, filename, name)
    if array.ndim == 0:
        raise RepresentationError(
            f"{filename!r}, array {name!r} is a single number; save an array of shape (n_examples, ...)."
        )
    if array.ndim == 1:
        array = array.reshape(-1, 1)  # a file of one value per example
    # Native float32 or float64 only: torch takes neither big-endian nor long double arrays, and
    # ints, bools and float16 become floats. A long double too large for float64 becomes inf (refused).
    target = np.dtype(np.float64 if array.dtype.itemsize > 4 else np.float32)
    if array.dtype != target:
        with np.errstate(over="ignore"):
            array = array.astype(target)
    as_matrix(array, f"{filename!r}, array {name!r}")  # finite, non-empty
    return array


def _check_numeric(dtype: np.dtype, filename: str, name: str) -> None:
    if dtype.kind not in "biuf":
        raise RepresentationError(
            f"{filename!r}, array {name!r}: dtype {dtype} is not numeric; save float activations."
        )


def _check_size(shape, itemsize: int, filename: str, name: str) -> None:
    """An array's claimed shape, from a header, before anything of that size is allocated.

    Exact Python integers: a hostile header may claim dimensions that overflow int64 or float64.
    """
    elements = math.prod(shape)
    # Any one dimension too: (10**30, 0) holds no values, but no array can have that shape.
    limit = _max_values()
    if elements > limit or elements * itemsize > _max_bytes() or any(d > limit for d in shape):
        raise RepresentationError(
            f"{filename!r}, array {name!r} claims shape ({', '.join(_approx(d) for d in shape)}) "
            f"({_approx(elements)} values), over the limit of {limit:,} values "
            f"({_bytes_text(_max_bytes())}) this tool loads; subsample examples or save fewer layers."
        )


def _check_total(nbytes: int, filename: str) -> None:
    """All arrays of a file, counted at 8 bytes a value (what they may become as float64)."""
    if nbytes > _max_bytes():
        raise RepresentationError(
            f"{filename!r} unpacks to {_approx(nbytes)} bytes, over the {_bytes_text(_max_bytes())} this tool "
            "loads from one file; subsample examples or save fewer layers."
        )


def _check_count(count: int, filename: str) -> None:
    if count > MAX_ARRAYS:
        raise RepresentationError(
            f"{filename!r} holds {count} arrays, more than the {MAX_ARRAYS} layers this tool compares; "
            "save only the layers you want to compare."
        )


def _approx(n: int) -> str:
    """A count for a message: hostile headers may hold integers too long for str() or float()."""
    return str(n) if n < 10**15 else f"{n:.3g}" if n < 10**300 else f"~2^{n.bit_length() - 1}"


# ----------------------------------------------------------------- .npy and .npz

def _npy_header(handle, filename: str, name: str | None):
    """Shape, Fortran order and dtype from an .npy header, checked before any data is allocated."""
    where = f"{filename!r}" if name is None else f"{filename!r}, array {name!r},"
    try:
        version = np.lib.format.read_magic(handle)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(handle)
        elif version in ((2, 0), (3, 0)):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(handle)
        else:
            raise ValueError(f"unsupported .npy version {version}")
    except _NPY_HEADER_ERRORS as error:
        raise RepresentationError(
            f"{where} is not a valid .npy array ({str(error)[:160]}); save it with numpy.save."
        ) from None
    if dtype.hasobject or dtype.fields is not None or dtype.subdtype is not None:
        raise RepresentationError(
            f"{where} holds Python objects or records (dtype {dtype}); such files need unpickling, which "
            "this tool never does. Save a plain float array: np.save(path, x.astype('float32'), allow_pickle=False)."
        )
    _check_numeric(dtype, filename, name or Path(filename).stem)
    # numpy checks that the dims are ints; True, negative and astronomically large ones get through.
    if len(shape) > _MAX_NDIM or any(isinstance(d, bool) or d < 0 for d in shape):
        raise RepresentationError(f"{where} has an invalid shape in its header; save it again with numpy.save.")
    _check_size(shape, dtype.itemsize, filename, name or Path(filename).stem)
    return shape, fortran, dtype


def _array_from(buffer, shape, fortran: bool, dtype: np.dtype) -> np.ndarray:
    """The array over ``buffer`` (exactly its bytes), laid out as the .npy header says."""
    flat = np.frombuffer(buffer, dtype=dtype)
    return flat.reshape(shape[::-1]).transpose() if fortran else flat.reshape(shape)


def _read_npy(data: bytes, filename: str, stem: str) -> dict[str, np.ndarray]:
    handle = io.BytesIO(data)
    shape, fortran, dtype = _npy_header(handle, filename, None)
    start, expected = handle.tell(), math.prod(shape) * dtype.itemsize
    if len(data) - start < expected:
        raise RepresentationError(
            f"{filename!r} is truncated: its header promises {expected} bytes of data but only "
            f"{len(data) - start} follow; upload the complete file."
        )
    return {stem: _array_from(bytearray(memoryview(data)[start: start + expected]), shape, fortran, dtype)}


def _read_npz(data: bytes, filename: str, stem: str) -> dict[str, np.ndarray]:
    archive = _open_zip(data, filename, "save it with numpy.savez")
    members = [m for m in archive.members if m.name.endswith(".npy")]
    _check_count(len(members), filename)  # before reading any of them
    arrays: dict[str, np.ndarray] = {}
    total = 0
    for member in members:
        name = member.name[: -len(".npy")]
        # numpy only writes stored and deflated members; anything else is not an .npz numpy wrote.
        if member.method not in (STORED, DEFLATED):
            raise RepresentationError(
                f"{filename!r}, array {name!r} uses zip compression method {member.method}; "
                "save the archive with numpy.savez or numpy.savez_compressed."
            )
        array = _read_npz_member(archive.chunks(member.name), filename, name, _max_bytes() - total)
        total += array.size * 8
        arrays[name] = array
    return arrays


def _read_npz_member(chunks: Iterator[bytes], filename: str, name: str, room: int) -> np.ndarray:
    """One member's array from its inflated ``chunks``. Zip bombs: the reader already stops past the
    member's declared size; here only what the .npy header (checked against the limits) says the array
    needs is kept, plus one chunk to see that nothing follows. The buffer grows as data arrive, so a
    header's claim alone allocates nothing."""
    head = bytearray()
    for chunk in chunks:
        head += chunk
        if len(head) >= _NPY_HEADER_WINDOW:
            break
    header = io.BytesIO(head)
    shape, fortran, dtype = _npy_header(header, filename, name)
    needed = math.prod(shape) * dtype.itemsize
    if math.prod(shape) * 8 > room:  # counted as float64, as _check_total does: int8 and bool grow 8x
        raise RepresentationError(
            f"{filename!r} holds more than the {_bytes_text(_max_bytes())} of arrays this tool loads from one "
            "file; subsample examples or save fewer layers."
        )
    body = bytearray(memoryview(head)[header.tell():])
    for chunk in chunks:  # the same iterator: what follows the header window
        if len(body) > needed:
            break
        body += chunk  # bytearray grows in place (realloc), not by copying into a new buffer
    if len(body) != needed:
        raise RepresentationError(
            f"{filename!r}, array {name!r}: its header promises {needed} bytes of data but "
            f"{'fewer' if len(body) < needed else 'more'} are stored; the archive is truncated or corrupt, "
            "save it again with numpy.savez."
        )
    return _array_from(body, shape, fortran, dtype)


def _open_zip(data: bytes, filename: str, fix: str) -> Archive:
    """The archive, validated by the one strict reader, refusing more entries than any file of ours
    holds. No inflation ratio: each member is bounded by what its own header may claim."""
    return open_archive(data, filename, max_members=MAX_ARRAYS + _ZIP_SPARE_ENTRIES, max_ratio=None,
                        fix=f"{fix} (at most {MAX_ARRAYS} layers, only the layers you want to compare)")


# ----------------------------------------------------------------- .pt and .safetensors

def _read_torch(data: bytes, filename: str, stem: str) -> dict[str, np.ndarray]:
    import torch

    if data[:4] == b"PK\x03\x04":  # what torch.load checks to pick its zip reader over the legacy format
        _check_torch_archive(data, filename)
    obj = _torch_load(data, filename)
    if isinstance(obj, torch.Tensor):
        obj = {stem: obj}
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise RepresentationError(
            f"{filename!r} holds a {type(obj).__name__}, not a tensor or a dict of tensors; "
            "save torch.save({'layer1': t1, 'layer2': t2}, path)."
        )
    tensors = {_key_name(key, index): tensor for index, (key, tensor) in enumerate(obj.items())}
    _check_count(len(tensors), filename)
    for name, tensor in tensors.items():
        _check_tensor(tensor, filename, name)
    # Before any conversion copies them: a small file can hold broadcast views of huge shape.
    _check_total(sum(t.numel() * 8 for t in tensors.values()), filename)
    return {name: _tensor_to_numpy(tensor, filename, name) for name, tensor in tensors.items()}


def _torch_load(data: bytes, filename: str):
    import pickle

    import torch

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns about odd pickle protocols in garbage bytes
            return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 -- untrusted bytes: torch's parser fails in many ways
        # torch's own message suggests loading with full unpickling "if you trust the source": never on uploads.
        reason = (
            "it holds pickled Python objects other than tensors, which are never unpickled here"
            if isinstance(error, pickle.UnpicklingError)
            else "it is not a readable torch.save file"
        )
        raise RepresentationError(
            f"{filename!r} was refused: {reason}. Save a tensor or a dict name -> tensor with torch.save, "
            "or use .safetensors."
        ) from None


def _key_name(key, index: int) -> str:
    try:
        return str(key)
    except (ValueError, RecursionError):  # an int too long to print, a deeply nested tuple
        return f"layer {index}"


def _check_torch_archive(data: bytes, filename: str) -> None:
    """Validate a torch.save zip before torch's own reader (miniz) sees it, and bound what it allocates.

    The strict reader accepts only an archive every zip reader reads alike (one directory, no duplicate
    names, no stray bytes), so torch reads exactly the members checked here; and, as torch allocates
    each record at its declared uncompressed size before inflating into it, the declared sizes are
    summed first. Every member is read through (capped) so that no stream torch inflates can lie.
    """
    fix = "save it with torch.save, or use .safetensors"
    archive = _open_zip(data, filename, fix)
    declared = sum(member.size for member in archive.members)
    if declared > _max_bytes() + _ZIP_SPARE_BYTES:
        raise RepresentationError(
            f"{filename!r} declares {_approx(declared)} bytes of tensor data, over the "
            f"{_bytes_text(_max_bytes())} this tool loads from one file; subsample examples or save fewer layers."
        )
    for member in archive.members:
        for _ in archive.chunks(member.name):
            pass


def _check_tensor(tensor, filename: str, name: str) -> None:
    """A plain dense CPU tensor of real numbers and allowed size (weights_only also rebuilds sparse,
    quantized, nested and meta tensors, which have no numpy counterpart)."""
    import torch

    if tensor.is_nested or tensor.layout != torch.strided or tensor.is_quantized or tensor.device.type != "cpu":
        kind = "nested" if tensor.is_nested else "quantized" if tensor.is_quantized else (
            "sparse" if tensor.layout != torch.strided else f"{tensor.device.type}-device")
        raise RepresentationError(
            f"{filename!r}, array {name!r} is a {kind} tensor; save a dense float tensor "
            "(t.to_dense().dequantize().float().cpu() as applies)."
        )
    if tensor.is_complex():
        raise RepresentationError(
            f"{filename!r}, array {name!r}: dtype {tensor.dtype} is not real; save float activations."
        )
    _check_size(tuple(tensor.shape), tensor.element_size(), filename, name)


def _tensor_to_numpy(tensor, filename: str, name: str) -> np.ndarray:
    import torch

    tensor = tensor.detach().resolve_conj().resolve_neg()
    if tensor.is_floating_point() and tensor.dtype not in (torch.float32, torch.float64):
        tensor = tensor.float()  # bfloat16 and float8 have no numpy dtype
    elif tensor.untyped_storage().nbytes() > 2 * tensor.numel() * tensor.element_size():
        tensor = tensor.clone()  # a small view would keep its whole (possibly huge) storage alive
    try:
        return tensor.numpy()
    except (TypeError, RuntimeError):
        raise RepresentationError(
            f"{filename!r}, array {name!r}: dtype {tensor.dtype} has no numpy equivalent; save float32 tensors."
        ) from None


#: Bytes per value of each safetensors dtype this tool can be handed (sub-byte ones are refused).
SAFETENSORS_ITEMSIZE = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "F8_E8M0": 1, "I16": 2, "U16": 2,
                        "F16": 2, "BF16": 2, "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8, "C64": 8}
SAFETENSORS_MAX_HEADER = 100 * 2**20  # safetensors' own limit on the header
_SAFETENSORS_FIX = "save it with safetensors.torch.save_file (float32 tensors)"


def safetensors_header(data_or_head: bytes, filename: str, *, file_size: int | None = None) -> dict:
    """The header of a .safetensors file, parsed strictly before safetensors or numpy sees it.

    ``data_or_head``: the file, or at least its first 8 + header-length bytes. Refused with a
    RepresentationError naming the file: a header length out of bounds, JSON that is not UTF-8 or not
    an object, duplicate keys at any level (parsers disagree on which one wins), entries other than
    ``dtype``/``shape``/``data_offsets``, unknown dtypes, shapes that are not lists of non-negative
    integers, byte ranges that do not match their shape or do not tile the data exactly, and (given
    ``file_size``) data that does not end at the end of the file. Returns the header as parsed,
    ``__metadata__`` (a str -> str map) included."""
    def refuse(why: str) -> RepresentationError:
        return RepresentationError(f"{filename!r} is not a valid .safetensors file ({why}); {_SAFETENSORS_FIX}.")

    if len(data_or_head) < 8:
        raise refuse("shorter than its 8-byte header length")
    (length,) = struct.unpack_from("<Q", data_or_head)
    if not 2 <= length <= SAFETENSORS_MAX_HEADER or len(data_or_head) < 8 + length or (
            file_size is not None and 8 + length > file_size):
        raise refuse(f"its header claims {_approx(length)} bytes")
    try:
        header = json.loads(bytes(data_or_head[8: 8 + length]).decode("utf-8"), object_pairs_hook=_unique_keys)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError, ValueError) as error:
        raise refuse(f"its header is not valid JSON: {str(error)[:120]}") from None
    if not isinstance(header, dict):
        raise refuse("its header is not a JSON object")
    metadata = header.get("__metadata__", {})
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise refuse("its __metadata__ is not a map of strings")
    spans = []
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        if not isinstance(meta, dict) or set(meta) != {"dtype", "shape", "data_offsets"}:
            raise refuse(f"tensor {name!r} is not described by dtype, shape and data_offsets alone")
        itemsize, shape, offsets = SAFETENSORS_ITEMSIZE.get(meta["dtype"]), meta["shape"], meta["data_offsets"]
        if itemsize is None:
            raise refuse(f"tensor {name!r} has the unsupported dtype {str(meta['dtype'])[:20]!r}")
        if not _whole_numbers(shape) or len(shape) > _MAX_NDIM or not _whole_numbers(offsets) or len(offsets) != 2:
            raise refuse(f"tensor {name!r} has a malformed shape or data_offsets")
        begin, end = offsets
        if end - begin != math.prod(shape) * itemsize:
            raise refuse(f"tensor {name!r} has {_approx(max(end - begin, 0))} bytes for its shape {shape}")
        spans.append((begin, end, name))
    position = 0
    for begin, end, name in sorted(spans):
        if begin != position:
            raise refuse(f"tensor {name!r} overlaps another or leaves a gap before it")
        position = end
    if file_size is not None and 8 + length + position != file_size:
        raise refuse(f"its tensors end at byte {_approx(8 + length + position)} of {file_size:,}")
    return header


def _unique_keys(pairs: list[tuple[str, object]]) -> dict:
    """A JSON object, refusing a key given twice (json.loads keeps the last, Rust's serde the first)."""
    result = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"the key {key[:80]!r} appears twice")
        result[key] = value
    return result


def _whole_numbers(values) -> bool:
    return isinstance(values, list) and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0
                                            for v in values)


def _read_safetensors(data: bytes, filename: str, stem: str) -> dict[str, np.ndarray]:
    from safetensors import SafetensorError
    from safetensors.torch import load

    safetensors_header(data, filename, file_size=len(data))
    try:
        tensors = load(data)
    except (SafetensorError, ValueError, RuntimeError, OverflowError, KeyError, TypeError) as error:
        # KeyError: a dtype this safetensors parses but cannot map to torch (e.g. F8_E8M0).
        raise RepresentationError(
            f"{filename!r} is not a valid .safetensors file ({str(error)[:160]}); save it with "
            "safetensors.torch.save_file (float32 tensors)."
        ) from None
    _check_count(len(tensors), filename)
    for name, tensor in tensors.items():
        _check_tensor(tensor, filename, name)
    return {name: _tensor_to_numpy(tensor, filename, name) for name, tensor in tensors.items()}


# ----------------------------------------------------------------- .csv

def _read_csv(data: bytes, filename: str, stem: str) -> dict[str, np.ndarray]:
    """Rows are parsed one at a time into one flat float64 buffer: 8 bytes per value, where every value
    takes at least 2 bytes of the file, and no Python object per cell outlives its row."""
    text = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8-sig", newline="")
    reader = csv.reader(_bounded_lines(text, filename))
    values = array.array("d")
    width = n_rows = 0
    header_seen = False
    try:
        for row in reader:
            if len(row) != width:  # the first row, a blank line, or a ragged row: the common path skips this
                if not any(cell.strip() for cell in row):
                    continue
                if n_rows:
                    raise RepresentationError(
                        f"{filename!r}, line {reader.line_num}: {len(row)} columns where earlier lines have {width}."
                    )
                if not header_seen and not _is_numeric_row(row):
                    header_seen = True  # a header row of feature names
                    continue
                width = len(row)
            try:
                values.extend(map(float, row))
            except ValueError:
                if not any(cell.strip() for cell in row):
                    continue  # blank cells only: the first one failed, so nothing was appended
                bad = next(cell for cell in row if not _is_number(cell))
                raise RepresentationError(
                    f"{filename!r}, line {reader.line_num}: {bad[:40]!r} is not a number; every cell after the "
                    "optional header row must be numeric."
                ) from None
            n_rows += 1
            if len(values) > _max_values():
                _check_size((n_rows, width), 8, filename, stem)
    except UnicodeDecodeError:
        raise RepresentationError(f"{filename!r} is not UTF-8 text; save the CSV as plain UTF-8.") from None
    except csv.Error as error:  # a field over csv's size limit, a stray quote after a quoted field...
        raise RepresentationError(
            f"{filename!r}, line {reader.line_num}: not readable as CSV ({error}); write plain numbers "
            "separated by commas, one example per line."
        ) from None
    if not n_rows:
        raise RepresentationError(
            f"{filename!r} has {'a header but ' if header_seen else ''}no data rows; write one example per line, "
            "one feature per column."
        )
    return {stem: np.frombuffer(values, dtype=np.float64).reshape(n_rows, width)}


def _bounded_lines(text, filename: str):
    """The file's lines, refusing one with more than MAX_CSV_COLUMNS cells before csv splits it
    (quoted commas count too: the bound only errs on the safe side)."""
    for line in text:
        if line.count(",") >= MAX_CSV_COLUMNS:
            raise RepresentationError(
                f"{filename!r} has a line of more than {MAX_CSV_COLUMNS} columns; save such wide activations "
                "as .npy or .safetensors."
            )
        yield line


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _is_numeric_row(row: list[str]) -> bool:
    return all(_is_number(cell) for cell in row)


# Arrays that are a model's weights, not activations: judged in one place (cka_core.weights).
from .weights import LABEL_KEYS, WEIGHT_NAME, activation_layers, refuse_weights, weights_reason  # noqa: E402,F401
