"""safetensors files: the JSON header checked against the file's size, then the tensors read in place.
"""
from __future__ import annotations
import json
import math
import struct
import numpy as np
from ..errors import RepresentationError
from .checks import check_count, count_text, MAX_NDIM
from .torch_files import check_tensor, tensor_to_numpy


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
        raise refuse(f"its header claims {count_text(length)} bytes")
    try:
        header = json.loads(bytes(data_or_head[8: 8 + length]).decode("utf-8"), object_pairs_hook=unique_keys)
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
        if not _whole_numbers(shape) or len(shape) > MAX_NDIM or not _whole_numbers(offsets) or len(offsets) != 2:
            raise refuse(f"tensor {name!r} has a malformed shape or data_offsets")
        begin, end = offsets
        if end - begin != math.prod(shape) * itemsize:
            raise refuse(f"tensor {name!r} has {count_text(max(end - begin, 0))} bytes for its shape {shape}")
        spans.append((begin, end, name))
    position = 0
    for begin, end, name in sorted(spans):
        if begin != position:
            raise refuse(f"tensor {name!r} overlaps another or leaves a gap before it")
        position = end
    if file_size is not None and 8 + length + position != file_size:
        raise refuse(f"its tensors end at byte {count_text(8 + length + position)} of {file_size:,}")
    return header


def unique_keys(pairs: list[tuple[str, object]]) -> dict:
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


def read_safetensors(data: bytes, filename: str, stem: str) -> dict[str, np.ndarray]:
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
    check_count(len(tensors), filename)
    for name, tensor in tensors.items():
        check_tensor(tensor, filename, name)
    return {name: tensor_to_numpy(tensor, filename, name) for name, tensor in tensors.items()}
