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
from pathlib import Path

import numpy as np

from ..errors import RepresentationError
from .checks import check_count, check_total, checked_array, limited_values, MAX_ELEMENTS
from .csv_files import read_csv
from .numpy_files import read_npy, read_npz
from .safetensors_files import read_safetensors
from .torch_files import read_torch
from .weights import refuse_weights

SUPPORTED = (".npy", ".npz", ".pt", ".pth", ".safetensors", ".csv")


def load_representations(data: bytes, filename: str, *, max_values: int = MAX_ELEMENTS) -> dict[str, np.ndarray]:
    """Parse the bytes of a representation file; the extension of ``filename`` picks the format.

    Returns a dict layer name -> float32 or float64 array of shape (n_examples, ...) with at least
    one example and one feature, all finite, in file order. A single-array format (.npy, .csv,
    a bare tensor in .pt) is named after the file stem.

    ``max_values`` (at most MAX_ELEMENTS) bounds the values of any one array and, at 8 bytes each,
    what the whole file may unpack to; both are checked against headers before allocating. A hosted
    app passes a lower bound than a local command line.
    """
    with limited_values(min(int(max_values), MAX_ELEMENTS)):
        return _load(data, filename)


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
        ".npy": read_npy,
        ".npz": read_npz,
        ".pt": read_torch,
        ".pth": read_torch,
        ".safetensors": read_safetensors,
        ".csv": read_csv,
    }[suffix]
    arrays = reader(data, filename, stem)
    if not arrays:
        raise RepresentationError(f"{filename!r} holds no arrays; save at least one (n_examples, ...) array.")
    check_count(len(arrays), filename)
    # From shapes, before the per-array checks: a state_dict's scalar counter is not "a single number" to fix.
    refuse_weights(arrays, filename)
    # Before checked_array copies anything: a .pt tensor may be a broadcast view far larger than its storage.
    check_total(sum(array.size * 8 for array in arrays.values()), filename)
    return {name: checked_array(array, filename, name) for name, array in arrays.items()}
