"""Arrays shared between sessions: one row per example, contiguous and read-only.

Whatever a cache hands to several sessions (captured layers, uploads, launch files) goes through
:func:`readonly_rows`, so no page can change another user's data in place.
"""
from __future__ import annotations

import numpy as np


def readonly_rows(array, dtype=np.float64) -> np.ndarray:
    """``array`` as an (n, d) matrix (extra axes flattened per example), contiguous and read-only.

    ``dtype=None`` keeps the array's own precision (the function-preserving edits compare float32
    and float64 networks); the default converts to float64, what the pages compute in.
    """
    array = np.asarray(array, dtype=dtype)
    rows = np.ascontiguousarray(array.reshape(array.shape[0], -1))
    rows.setflags(write=False)
    return rows


def readonly(array) -> np.ndarray:
    """``array`` contiguous and read-only, shape and dtype unchanged."""
    array = np.ascontiguousarray(array)
    array.setflags(write=False)
    return array


CHUNK_VALUES = 2**20  # row blocks of ~1M values (8 MiB): long representations are streamed, never copied whole


def row_blocks(X: np.ndarray):
    """Slices of consecutive rows of X holding about CHUNK_VALUES values each."""
    step = max(4, CHUNK_VALUES // max(X.shape[1], 1))
    return (slice(i, i + step) for i in range(0, X.shape[0], step))


def is_long(X: np.ndarray) -> bool:
    """Whether X is worth processing in row blocks (more than CHUNK_VALUES values)."""
    return X.shape[0] * X.shape[1] > CHUNK_VALUES
