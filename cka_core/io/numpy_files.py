"""numpy files: .npy (one array, header parsed without executing it) and .npz (a zip of .npy arrays,
read through the strict zip reader).
"""
from __future__ import annotations
import array
import io
import math
import tokenize
from collections.abc import Iterator
from pathlib import Path
import numpy as np
from ..errors import RepresentationError
from .safezip import DEFLATED, STORED
from .checks import bytes_text, check_count, check_numeric, check_size, max_bytes, MAX_NDIM, open_zip


_NPY_HEADER_WINDOW = 16 * 1024  # numpy refuses headers over 10,000 bytes: read no more to find one
# numpy evaluates an .npy header with ast.literal_eval (after tokenising it when that fails):
# arbitrary header text fails in all of these ways.
_NPY_HEADER_ERRORS = (ValueError, SyntaxError, TypeError, RecursionError, MemoryError, tokenize.TokenError,
                      OverflowError)


def read_npy_header(handle, filename: str, name: str | None):
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
    check_numeric(dtype, filename, name or Path(filename).stem)
    # numpy checks that the dims are ints; True, negative and astronomically large ones get through.
    if len(shape) > MAX_NDIM or any(isinstance(d, bool) or d < 0 for d in shape):
        raise RepresentationError(f"{where} has an invalid shape in its header; save it again with numpy.save.")
    check_size(shape, dtype.itemsize, filename, name or Path(filename).stem)
    return shape, fortran, dtype


def _array_from(buffer, shape, fortran: bool, dtype: np.dtype) -> np.ndarray:
    """The array over ``buffer`` (exactly its bytes), laid out as the .npy header says."""
    flat = np.frombuffer(buffer, dtype=dtype)
    return flat.reshape(shape[::-1]).transpose() if fortran else flat.reshape(shape)


def read_npy(data: bytes, filename: str, stem: str) -> dict[str, np.ndarray]:
    handle = io.BytesIO(data)
    shape, fortran, dtype = read_npy_header(handle, filename, None)
    start, expected = handle.tell(), math.prod(shape) * dtype.itemsize
    if len(data) - start < expected:
        raise RepresentationError(
            f"{filename!r} is truncated: its header promises {expected} bytes of data but only "
            f"{len(data) - start} follow; upload the complete file."
        )
    return {stem: _array_from(bytearray(memoryview(data)[start: start + expected]), shape, fortran, dtype)}


def read_npz(data: bytes, filename: str, stem: str) -> dict[str, np.ndarray]:
    archive = open_zip(data, filename, "save it with numpy.savez")
    members = [m for m in archive.members if m.name.endswith(".npy")]
    check_count(len(members), filename)  # before reading any of them
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
        array = _read_npz_member(archive.chunks(member.name), filename, name, max_bytes() - total)
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
    shape, fortran, dtype = read_npy_header(header, filename, name)
    needed = math.prod(shape) * dtype.itemsize
    if math.prod(shape) * 8 > room:  # counted as float64, as check_total does: int8 and bool grow 8x
        raise RepresentationError(
            f"{filename!r} holds more than the {bytes_text(max_bytes())} of arrays this tool loads from one "
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
