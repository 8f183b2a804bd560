"""ONNX weights kept in external files: read only from the model's own files (the .zip it came in, or
its directory), checked against the bytes each tensor declares.
"""
from __future__ import annotations
import functools
import math
import os
import posixpath
from pathlib import Path, PurePosixPath, PureWindowsPath
import numpy as np
from ..errors import RepresentationError


EXTERNAL_FIX = ("save everything in one file: onnx.save(model, path, save_as_external_data=False), or upload a .zip "
                "of the .onnx with its data file")
#: Bits per value of the types numpy cannot size (packed two or four to a byte).
SUB_BYTE_BITS = {"INT4": 4, "UINT4": 4, "FLOAT4E2M1": 4, "INT2": 2, "UINT2": 2}


def read_external(tensors, filename: str, files, digest) -> None:
    """Each tensor's bytes read from ``files`` into the tensor itself (raw_data, data_location back
    to DEFAULT). ``files`` None: the model came alone, and nothing beside it may be read."""
    import onnx

    for tensor in tensors:
        if files is None:
            location = next((e.value for e in tensor.external_data if e.key == "location"), "")
            raise RepresentationError(f"{filename} keeps weights in external files ({tensor.name!r} in {location!r}), "
                                      f"which are not read from an uploaded .onnx; {EXTERNAL_FIX}.")
        location, offset, length = _external_reference(tensor, filename)
        expected = _expected_bytes(tensor, filename)
        if length is not None and length != expected:
            raise RepresentationError(f"{filename}: the tensor {tensor.name!r} claims {length:,} bytes of {location!r} "
                                      f"where its type and dims call for {expected:,}; {EXTERNAL_FIX}.")
        data = files.read(location, offset, expected)
        digest.update(location.encode() + b"\0" + data)  # the model is its graph and these bytes
        tensor.raw_data = data
        tensor.data_location = onnx.TensorProto.DEFAULT
        del tensor.external_data[:]


def _external_reference(tensor, filename: str) -> tuple[str, int, int | None]:
    """(location, offset, length) of an external tensor, the location a plain relative name (no
    absolute path, drive, '..' or backslash): it can only name a file beside the model."""
    entries = {entry.key: entry.value for entry in tensor.external_data}
    location = entries.get("location", "")
    parts = PurePosixPath(location).parts
    if (not location or "\\" in location or "\0" in location or location.startswith("/") or ".." in parts
            or PureWindowsPath(location).drive):
        raise RepresentationError(f"{filename}: the tensor {tensor.name!r} reads its weights from {location!r}, which "
                                  f"is not a file beside the model (refused: nothing outside the model is read); "
                                  f"{EXTERNAL_FIX}.")
    try:
        offset, length = int(entries.get("offset", 0)), int(entries["length"]) if "length" in entries else None
    except ValueError:
        offset, length = -1, None
    if offset < 0 or (length is not None and length < 0):
        raise RepresentationError(f"{filename}: the tensor {tensor.name!r} has a malformed offset or length in "
                                  f"{location!r}; {EXTERNAL_FIX}.")
    return posixpath.normpath(location), offset, length


def _expected_bytes(tensor, filename: str) -> int:
    """Bytes a tensor's type and dims call for; strings and unknown types have no fixed size, so
    they cannot be external here."""
    import onnx

    type_name = onnx.TensorProto.DataType.Name(tensor.data_type) if tensor.data_type in \
        onnx.TensorProto.DataType.values() else "UNDEFINED"
    count = math.prod(tensor.dims)
    if type_name in SUB_BYTE_BITS:
        return -(-count * SUB_BYTE_BITS[type_name] // 8)
    try:
        itemsize = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type)).itemsize
    except (KeyError, TypeError, ValueError):
        itemsize = 0
    if type_name in ("STRING", "UNDEFINED") or not itemsize:
        raise RepresentationError(f"{filename}: the tensor {tensor.name!r} of type {type_name} cannot be read from an "
                                  f"external file; {EXTERNAL_FIX}.")
    return count * itemsize


def _span(size: int, offset: int, length: int, location: str, filename: str) -> None:
    if offset + length > size:
        raise RepresentationError(f"{filename}: a tensor reads bytes {offset:,}-{offset + length:,} of {location!r}, "
                                  f"which holds {size:,}; the data file does not belong to this model. "
                                  f"{EXTERNAL_FIX[0].upper()}{EXTERNAL_FIX[1:]}.")


class ArchiveFiles:
    """The files beside a .onnx inside an uploaded archive, read from the archive in memory."""

    def __init__(self, archive, member: str, filename: str):
        self.archive, self.folder, self.member, self.filename = archive, posixpath.dirname(member), member, filename
        self._inflated = functools.cache(archive.read)  # one data file holds many tensors: inflate it once

    def read(self, location: str, offset: int, length: int) -> bytes:
        name = posixpath.join(self.folder, location)
        if name not in self.archive.names:
            raise RepresentationError(f"{self.filename}: {self.member} reads weights from {location!r}, which the "
                                      f"archive does not hold beside it; zip the .onnx with its data file.")
        data = self._inflated(name)
        _span(len(data), offset, length, location, self.filename)
        return data[offset:offset + length]


class DirectoryFiles:
    """The files beside a .onnx on this machine: only inside the model's own directory (symbolic
    links resolved first, so none leads out of it)."""

    def __init__(self, directory: Path, filename: str):
        self.root, self.filename = Path(directory).resolve(), filename

    def read(self, location: str, offset: int, length: int) -> bytes:
        path = (self.root / location).resolve()
        if self.root not in path.parents or not path.is_file():
            raise RepresentationError(f"{self.filename} reads weights from {location!r}, which is not a file inside "
                                      f"{self.root}; keep the data file beside the .onnx, or {EXTERNAL_FIX}.")
        with path.open("rb") as file:
            _span(os.fstat(file.fileno()).st_size, offset, length, location, self.filename)
            file.seek(offset)
            return file.read(length)
