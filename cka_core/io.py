"""Load representation files without ever unpickling them.

``load_representations(data, filename)`` reads .npy, .npz, .pt, .safetensors and .csv bytes
into a name -> array mapping (per-example shape kept), refusing pickles, oversized headers,
zip bombs, non-numeric or non-finite data with a ``RepresentationError`` that says how to fix it.
"""
from __future__ import annotations

import csv
import io
import warnings
import zipfile
from pathlib import Path

import numpy as np

from .errors import RepresentationError
from .validation import as_matrix

MAX_ELEMENTS = 2**28  # 268M values (1 GiB of float32): anything larger is refused before allocating
SUPPORTED = (".npy", ".npz", ".pt", ".pth", ".safetensors", ".csv")


def load_representations(data: bytes, filename: str) -> dict[str, np.ndarray]:
    """Parse the bytes of a representation file; the extension of ``filename`` picks the format.

    Returns a dict layer name -> float array of shape (n_examples, ...), in file order.
    A single-array format (.npy, .csv, a bare tensor in .pt) is named after the file stem.
    """
    suffix = Path(filename).suffix.lower()
    stem = Path(filename).stem or "layer"
    if suffix not in SUPPORTED:
        raise RepresentationError(
            f"{filename!r}: unknown format {suffix or '(no extension)'}; save activations as one of "
            f"{', '.join(SUPPORTED)}."
        )
    if not data:
        raise RepresentationError(f"{filename!r} is empty (0 bytes); upload the file again.")
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
    return {name: _checked(array, filename, name) for name, array in arrays.items()}


def _checked(array, filename: str, name: str) -> np.ndarray:
    array = np.asarray(array)
    if array.dtype.kind not in "biuf":
        raise RepresentationError(
            f"{filename!r}, array {name!r}: dtype {array.dtype} is not numeric; save float activations."
        )
    if array.ndim == 0:
        raise RepresentationError(
            f"{filename!r}, array {name!r} is a single number; save an array of shape (n_examples, ...)."
        )
    if array.ndim == 1:
        array = array.reshape(-1, 1)  # a file of one value per example
    as_matrix(array, f"{filename!r}, array {name!r}")  # finite, non-empty
    if array.dtype.kind != "f" or array.dtype.itemsize < 4:
        array = array.astype(np.float64 if array.dtype.itemsize > 4 else np.float32)
    return array


def _check_size(shape, filename: str, name: str) -> None:
    elements = int(np.prod(shape, dtype=np.float64)) if len(shape) else 1
    if elements > MAX_ELEMENTS:
        raise RepresentationError(
            f"{filename!r}, array {name!r} claims shape {tuple(shape)} ({elements:.3g} values), over the "
            f"{MAX_ELEMENTS:.3g} this tool loads; subsample examples or save fewer layers."
        )


def _npy_header(handle, filename: str, name: str):
    """Shape and dtype from an .npy header, read before any data is allocated."""
    try:
        version = np.lib.format.read_magic(handle)
        if version == (1, 0):
            shape, _fortran, dtype = np.lib.format.read_array_header_1_0(handle)
        elif version in ((2, 0), (3, 0)):
            shape, _fortran, dtype = np.lib.format.read_array_header_2_0(handle)
        else:
            raise ValueError(f"unsupported .npy version {version}")
    except ValueError as error:
        raise RepresentationError(
            f"{filename!r}{'' if name is None else f', array {name!r}'} is not a valid .npy array ({error}); "
            "save it with numpy.save."
        ) from None
    if dtype.hasobject or dtype.fields is not None:
        raise RepresentationError(
            f"{filename!r}{'' if name is None else f', array {name!r},'} holds Python objects or records (dtype {dtype}); such files need "
            "unpickling, which this tool never does. Save a plain float array (np.save(path, x.astype('float32')))."
        )
    return shape, dtype


def _read_npy(data: bytes, filename: str, stem: str) -> dict[str, np.ndarray]:
    handle = io.BytesIO(data)
    shape, dtype = _npy_header(handle, filename, None)
    _check_size(shape, filename, stem)
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) - handle.tell() < expected:
        raise RepresentationError(
            f"{filename!r} is truncated: its header promises {expected} bytes of data but only "
            f"{len(data) - handle.tell()} follow; upload the complete file."
        )
    handle.seek(0)
    try:
        return {stem: np.load(handle, allow_pickle=False)}
    except ValueError as error:
        raise RepresentationError(f"{filename!r} could not be read as .npy ({error}).") from None


def _read_npz(data: bytes, filename: str, stem: str) -> dict[str, np.ndarray]:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = [info for info in archive.infolist() if info.filename.endswith(".npy")]
    except (zipfile.BadZipFile, ValueError, OSError) as error:
        raise RepresentationError(f"{filename!r} is not a valid .npz archive ({error}); save it with numpy.savez.") from None
    total = 0
    arrays: dict[str, np.ndarray] = {}
    for info in members:
        name = info.filename[: -len(".npy")]
        # Zip bombs: trust neither the declared size nor the ratio; read at most what a valid array needs.
        with archive.open(info) as member:
            head = member.read(4096)
            header = io.BytesIO(head)
            shape, dtype = _npy_header(header, filename, name)
            _check_size(shape, filename, name)
            needed = header.tell() + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
            total += needed
            if total > MAX_ELEMENTS * 8:
                raise RepresentationError(f"{filename!r} holds more data than this tool loads; save fewer layers.")
            body = head + member.read(max(needed - len(head), 0) + 1)
        if len(body) != needed:
            raise RepresentationError(
                f"{filename!r}, array {name!r}: {len(body)} bytes stored where the header promises {needed}; "
                "the archive is truncated or corrupt."
            )
        try:
            arrays[name] = np.load(io.BytesIO(body), allow_pickle=False)
        except ValueError as error:
            raise RepresentationError(f"{filename!r}, array {name!r} could not be read ({error}).") from None
    return arrays


def _read_torch(data: bytes, filename: str, stem: str) -> dict[str, np.ndarray]:
    import pickle

    import torch

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns about odd pickle protocols in garbage bytes
            obj = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
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
    if isinstance(obj, torch.Tensor):
        obj = {stem: obj}
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise RepresentationError(
            f"{filename!r} holds a {type(obj).__name__}, not a tensor or a dict of tensors; "
            "save torch.save({'layer1': t1, 'layer2': t2}, path)."
        )
    for name, tensor in obj.items():
        _check_size(tuple(tensor.shape), filename, str(name))
    return {str(name): tensor.detach().float().numpy() if tensor.dtype in (torch.bfloat16, torch.float16) else tensor.detach().numpy() for name, tensor in obj.items()}


def _read_safetensors(data: bytes, filename: str, stem: str) -> dict[str, np.ndarray]:
    import torch
    from safetensors import SafetensorError
    from safetensors.torch import load

    try:
        tensors = load(data)
    except (SafetensorError, ValueError, RuntimeError, OverflowError) as error:
        raise RepresentationError(
            f"{filename!r} is not a valid .safetensors file ({str(error)[:160]}); save it with safetensors.torch.save_file."
        ) from None
    return {
        name: (t.float() if t.dtype in (torch.bfloat16, torch.float16) else t).numpy() for name, t in tensors.items()
    }


def _read_csv(data: bytes, filename: str, stem: str) -> dict[str, np.ndarray]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise RepresentationError(f"{filename!r} is not UTF-8 text; save the CSV as plain UTF-8.") from None
    rows = [row for row in csv.reader(io.StringIO(text)) if row and any(cell.strip() for cell in row)]
    if not rows:
        raise RepresentationError(f"{filename!r} has no rows; write one example per line, one feature per column.")
    has_header = not _is_numeric_row(rows[0])  # a header row of feature names
    rows = rows[1:] if has_header else rows
    width = len(rows[0]) if rows else 0
    values = []
    for line_number, row in enumerate(rows, start=2 if has_header else 1):
        if len(row) != width:
            raise RepresentationError(
                f"{filename!r}, line {line_number}: {len(row)} columns where earlier lines have {width}."
            )
        try:
            values.append([float(cell) for cell in row])
        except ValueError:
            bad = next(cell for cell in row if not _is_number(cell))
            raise RepresentationError(
                f"{filename!r}, line {line_number}: {bad[:40]!r} is not a number; every cell after the "
                "optional header row must be numeric."
            ) from None
    if not values:
        raise RepresentationError(f"{filename!r} has a header but no data rows.")
    _check_size((len(values), width), filename, stem)
    return {stem: np.asarray(values, dtype=np.float64)}


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _is_numeric_row(row: list[str]) -> bool:
    return all(_is_number(cell) for cell in row)
