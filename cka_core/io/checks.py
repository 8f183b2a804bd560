"""What a representation file may hold: the limits on values, bytes and arrays, and the checks every
reader applies before it allocates.
"""
from __future__ import annotations
import array
import math
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
import numpy as np
from ..errors import RepresentationError
from .safezip import Archive, open_archive
from ..cka.validation import as_matrix


MAX_ELEMENTS = 2**28  # 268M values: larger arrays are refused before allocating; a file unpacks to 8 B a value at most
MAX_ARRAYS = 1024  # layers per file; more would not fit a heatmap, and each adds a row of CKAs
MAX_CSV_COLUMNS = 2**17  # csv keeps one Python string per cell of a row: this bounds one row's memory
# The bound of the current load_representations call: a context variable, so concurrent sessions
# (threads) with different bounds cannot see each other's, without threading it through every reader.
_MAX_VALUES: ContextVar[int] = ContextVar("max_values", default=MAX_ELEMENTS)


def max_values() -> int:
    """The most values one array may hold in the current load (see :func:`limited_values`)."""
    return _MAX_VALUES.get()


@contextmanager
def limited_values(limit: int) -> Iterator[None]:
    """Within the block, and in this context only, :func:`max_values` is ``limit``."""
    token = _MAX_VALUES.set(limit)
    try:
        yield
    finally:
        _MAX_VALUES.reset(token)


def max_bytes() -> int:
    return 8 * _MAX_VALUES.get()


def bytes_text(n: int) -> str:
    return f"{n / 2**30:.0f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"


def checked_array(array, filename: str, name: str) -> np.ndarray:
    """One loaded array as it is returned: numeric, at least 2-D, native float32 or float64, finite and non-empty."""
    array = np.asarray(array)
    check_numeric(array.dtype, filename, name)
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


def check_numeric(dtype: np.dtype, filename: str, name: str) -> None:
    if dtype.kind not in "biuf":
        raise RepresentationError(
            f"{filename!r}, array {name!r}: dtype {dtype} is not numeric; save float activations."
        )


def check_size(shape, itemsize: int, filename: str, name: str) -> None:
    """An array's claimed shape, from a header, before anything of that size is allocated.

    Exact Python integers: a hostile header may claim dimensions that overflow int64 or float64.
    """
    elements = math.prod(shape)
    # Any one dimension too: (10**30, 0) holds no values, but no array can have that shape.
    limit = max_values()
    if elements > limit or elements * itemsize > max_bytes() or any(d > limit for d in shape):
        raise RepresentationError(
            f"{filename!r}, array {name!r} claims shape ({', '.join(count_text(d) for d in shape)}) "
            f"({count_text(elements)} values), over the limit of {limit:,} values "
            f"({bytes_text(max_bytes())}) this tool loads; subsample examples or save fewer layers."
        )


def check_total(nbytes: int, filename: str) -> None:
    """All arrays of a file, counted at 8 bytes a value (what they may become as float64)."""
    if nbytes > max_bytes():
        raise RepresentationError(
            f"{filename!r} unpacks to {count_text(nbytes)} bytes, over the {bytes_text(max_bytes())} this tool "
            "loads from one file; subsample examples or save fewer layers."
        )


def check_count(count: int, filename: str) -> None:
    if count > MAX_ARRAYS:
        raise RepresentationError(
            f"{filename!r} holds {count} arrays, more than the {MAX_ARRAYS} layers this tool compares; "
            "save only the layers you want to compare."
        )


def count_text(n: int) -> str:
    """A count for a message: hostile headers may hold integers too long for str() or float()."""
    return str(n) if n < 10**15 else f"{n:.3g}" if n < 10**300 else f"~2^{n.bit_length() - 1}"


def open_zip(data: bytes, filename: str, fix: str) -> Archive:
    """The archive, validated by the one strict reader, refusing more entries than any file of ours
    holds. No inflation ratio: each member is bounded by what its own header may claim."""
    return open_archive(data, filename, max_members=MAX_ARRAYS + _ZIP_SPARE_ENTRIES, max_ratio=None,
                        fix=f"{fix} (at most {MAX_ARRAYS} layers, only the layers you want to compare)")


_ZIP_SPARE_ENTRIES = 16  # torch.save adds a few records (data.pkl, version, byteorder...) to its tensors


MAX_NDIM = 32  # numpy allows 64 dimensions; activations have a handful
