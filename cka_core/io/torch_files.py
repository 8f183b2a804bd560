"""torch files (.pt, .pth): tensors loaded with ``weights_only``, after their zip is checked, never
unpickled as arbitrary objects.
"""
from __future__ import annotations
import array
import io
import warnings
import numpy as np
from ..errors import RepresentationError
from .checks import bytes_text, check_count, check_size, check_total, count_text, max_bytes, open_zip


_ZIP_SPARE_BYTES = 64 << 20  # ... and a pickle of the object tree: room for those next to the arrays


def read_torch(data: bytes, filename: str, stem: str) -> dict[str, np.ndarray]:
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
    check_count(len(tensors), filename)
    for name, tensor in tensors.items():
        check_tensor(tensor, filename, name)
    # Before any conversion copies them: a small file can hold broadcast views of huge shape.
    check_total(sum(t.numel() * 8 for t in tensors.values()), filename)
    return {name: tensor_to_numpy(tensor, filename, name) for name, tensor in tensors.items()}


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
    archive = open_zip(data, filename, fix)
    declared = sum(member.size for member in archive.members)
    if declared > max_bytes() + _ZIP_SPARE_BYTES:
        raise RepresentationError(
            f"{filename!r} declares {count_text(declared)} bytes of tensor data, over the "
            f"{bytes_text(max_bytes())} this tool loads from one file; subsample examples or save fewer layers."
        )
    for member in archive.members:
        for _ in archive.chunks(member.name):
            pass


def check_tensor(tensor, filename: str, name: str) -> None:
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
    check_size(tuple(tensor.shape), tensor.element_size(), filename, name)


def tensor_to_numpy(tensor, filename: str, name: str) -> np.ndarray:
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
