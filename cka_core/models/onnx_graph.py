"""ONNX models, run with onnxruntime on the CPU: any node's output can be a layer.

The graph is parsed as a protobuf (nothing executes) and judged whole (subgraphs of If, Loop and
Scan and local functions included) before a session is made, in :func:`_checked`: operators from
custom domains are refused (they need a compiled library: onnxruntime cannot run them, and loading
one would run its code); weights kept in external files are read only from the model's own files
(the .zip it came in, or its directory on this machine: :class:`ArchiveFiles`,
:class:`DirectoryFiles`) into the model itself, so that onnxruntime gets a self-contained model and
never opens a path (a .onnx that came alone must hold its weights); parameters, what constant
shapes would allocate, a Loop's constant trip count and every value whose shape is known are held
to :mod:`.caps`. What cannot be judged beforehand (a computed trip count) is bounded by the worker
process (:mod:`.worker`). A layer is exposed by adding its value to the graph's outputs.

Layers are named after the modules they come from when the exporter recorded them (torch's
exporter writes each node's module path as ``pkg.torch.onnx.name_scopes``): the output of module
``encoder.layer.0`` is the one value its nodes produce that nodes outside it read. Graphs without
that record offer every float value of rank 2 or more, by value name.
"""
from __future__ import annotations

import ast
import functools
import hashlib
import math
import os
import posixpath
from pathlib import Path, PurePosixPath, PureWindowsPath

import numpy as np

from ..errors import RepresentationError
from . import caps, reduction
from .base import Feed, Layer, LoadedModel, default_layers
from .inputs import ARRAY, IMAGE, TEXT, Examples
from .tokenizer import WordTokenizer, load_tokenizer

STANDARD_DOMAINS = ("", "ai.onnx", "ai.onnx.ml", "com.microsoft")
SCOPES = "pkg.torch.onnx.name_scopes"
FLOAT_TYPES = {1: np.float32, 10: np.float16, 11: np.float64, 16: np.float32}  # bfloat16 read as float32
NUMPY_TYPES = {1: np.float32, 6: np.int32, 7: np.int64, 9: np.bool_, 10: np.float16, 11: np.float64}


def _load_proto(data: bytes, filename: str):
    import onnx
    from google.protobuf.message import DecodeError

    try:
        model = onnx.load_model_from_string(data)
    except (DecodeError, ValueError, RuntimeError, TypeError) as error:
        raise RepresentationError(f"{filename} is not a readable ONNX model ({type(error).__name__}); it may be "
                                  "truncated. Export it again (torch.onnx.export(..., dynamo=True)).") from None
    if not model.graph.node or not model.graph.output:
        raise RepresentationError(f"{filename} is not an ONNX model with a graph (no nodes or no outputs); it may "
                                  "be truncated or another kind of file.")
    return model


def _messages(root, stop: tuple = ()):
    """Every protobuf message inside ``root``, itself first (an explicit stack: a hostile file may
    nest subgraphs deeply); the children of ``stop`` types are not visited. Walking the schema
    rather than naming fields finds a tensor or a node wherever ONNX lets one sit: initializers,
    sparse ones, node attributes, If/Loop/Scan bodies, local functions, training info. Only message
    fields are visited, so no tensor's bytes are copied."""
    stack = [root]
    while stack:
        message = stack.pop()
        yield message
        if isinstance(message, stop):
            continue
        for field in message.DESCRIPTOR.fields:
            if field.message_type is None:
                continue
            if field.is_repeated:
                stack.extend(reversed(getattr(message, field.name)))
            elif message.HasField(field.name):
                stack.append(getattr(message, field.name))


def _checked(model, filename: str, files, digest):
    """Everything judged before onnxruntime sees the model, in one place: operators it could only
    run from a compiled library, parameters and external data (read from ``files`` into the model,
    or refused where there are none), then, on the model with its shapes inferred, what constant
    shapes and loops would allocate and the size of every value whose shape is known. Returns that
    model: self-contained, so that the session never opens a path."""
    import onnx

    limits = caps.current()
    messages = list(_messages(model))
    _check_operators(model, messages, filename)
    _check_parameters(messages, filename, limits)
    external = [m for m in messages if isinstance(m, onnx.TensorProto) and m.data_location == onnx.TensorProto.EXTERNAL]
    if external:
        _read_external(external, filename, files, digest)
    try:
        model = onnx.shape_inference.infer_shapes(model, data_prop=True)
    except (onnx.shape_inference.InferenceError, RuntimeError, ValueError):
        pass  # the session still runs; layers without a known shape are simply not offered
    batch = _batch_symbols(model.graph)
    types = _value_types(model)
    _check_nodes(model.graph.node, _initializer_values(model.graph, {}), types, batch, filename, limits)
    for function in model.functions:
        _check_nodes(function.node, {}, types, batch, filename, limits)
    _check_activations(model, batch, filename, limits)
    return model


def _check_operators(model, messages, filename: str) -> None:
    import onnx

    local = {(f.domain, f.name) for f in model.functions}
    for node in messages:
        if isinstance(node, onnx.NodeProto) and node.domain not in STANDARD_DOMAINS \
                and (node.domain, node.op_type) not in local:
            raise RepresentationError(f"{filename} uses the custom operator {node.op_type!r} of domain {node.domain!r}, "
                                      "which onnxruntime does not implement without a compiled extension library "
                                      "(refused: loading one would run its code). Export with standard ONNX "
                                      "operators.")


def _refusal(filename: str, what: str, amount: str, cap: str, limits, fix: str) -> RepresentationError:
    """The one-line refusal of a size over a cap: what, how much, the cap and how to set it, the fix."""
    variable, unit = caps.ENVIRONMENT[cap]
    limit = getattr(limits, cap)
    shown = _bytes(limit) if unit > 1 else f"{limit:,}"
    return RepresentationError(f"{filename}: {what} {amount}, over the cap of {shown} ({variable}="
                               f"{limit / unit:.10g}); {fix}.")


def _bytes(count: int) -> str:
    return f"{count / 2**30:.1f} GiB" if count >= 2**30 else f"{count / 2**20:.1f} MiB"


def _check_parameters(messages, filename: str, limits) -> None:
    """Stored tensors (initializers, Constant values, in subgraphs and functions too; a sparse one
    also as the dense tensor onnxruntime makes of it), counted from their dims before any is read."""
    import onnx

    total = 0
    for tensor in messages:
        if isinstance(tensor, (onnx.TensorProto, onnx.SparseTensorProto)):
            if any(d < 0 for d in tensor.dims):
                raise RepresentationError(f"{filename}: a stored tensor has a negative dimension ({list(tensor.dims)}); "
                                          "the file is malformed. Export the model again.")
            total += math.prod(tensor.dims)
    if total > limits.parameters:
        raise _refusal(filename, "declares weights and constants of", f"{total:,} values", "parameters", limits,
                       "load a smaller model, or raise the cap where the host has the memory")


# ------------------------------------------------------------------ external data: only the model's own files

EXTERNAL_FIX = ("save everything in one file: onnx.save(model, path, save_as_external_data=False), or upload a .zip "
                "of the .onnx with its data file")
#: Bits per value of the types numpy cannot size (packed two or four to a byte).
SUB_BYTE_BITS = {"INT4": 4, "UINT4": 4, "FLOAT4E2M1": 4, "INT2": 2, "UINT2": 2}


def _read_external(tensors, filename: str, files, digest) -> None:
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


# ------------------------------------------------------------------ sizes: constant shapes, loops, known shapes

BATCH = 16          # the batch the app runs (ui.own_models.BATCH_SIZE), for a graph input's symbolic first dim
SEQUENCE = 512      # any other symbolic dim (a sequence length): the longest the app feeds
FOLDED = 64         # elements: shape tensors are short, and nothing larger is computed here
DEFAULT_ITEMSIZE = 4
ALLOCATION_FIX = ("export the model with smaller shapes, or raise the cap where the host has the memory")


def _numpy(op: str, attrs: dict, values: list):
    """The output of one simple op on constant inputs (the arithmetic shapes are built with)."""
    import onnx

    first = values[0]
    if op == "Identity":
        return first
    if op == "Cast":
        return first.astype(onnx.helper.tensor_dtype_to_np_dtype(attrs["to"]))
    if op == "Concat":
        return np.concatenate([np.atleast_1d(v) for v in values], attrs.get("axis", 0))
    if op in ("Unsqueeze", "Squeeze"):
        axes = attrs.get("axes", values[1] if len(values) > 1 else None)
        if op == "Squeeze":
            return np.squeeze(first, tuple(int(a) for a in np.atleast_1d(axes))) if axes is not None else np.squeeze(first)
        return np.expand_dims(first, tuple(int(a) for a in np.atleast_1d(axes)))
    if op == "Gather":
        return np.take(first, values[1], axis=attrs.get("axis", 0))
    if op == "Div" and first.dtype.kind in "iu":
        return np.floor_divide(first, values[1])
    return {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.divide, "Max": np.maximum,
            "Min": np.minimum}[op](*values)


SIMPLE_OPS = ("Identity", "Cast", "Concat", "Unsqueeze", "Squeeze", "Gather", "Add", "Sub", "Mul", "Div", "Max", "Min")


def _small(array) -> np.ndarray | None:
    return array if array is not None and np.size(array) <= FOLDED else None


def _tensor_value(tensor) -> np.ndarray | None:
    """A stored tensor's values when it is small (a shape, a count), else None (never read)."""
    from onnx import numpy_helper

    if math.prod(tensor.dims) > FOLDED:
        return None
    try:
        return numpy_helper.to_array(tensor)
    except Exception:  # noqa: BLE001 - a malformed tensor is simply not a known constant
        return None


def _constant_value(node) -> np.ndarray | None:
    """The value of a Constant node, when small."""
    import onnx

    for attribute in node.attribute:
        if attribute.ref_attr_name:
            return None  # a function's parameter: not known here
        value = onnx.helper.get_attribute_value(attribute)
        if attribute.name == "value":
            return _tensor_value(value)
        if attribute.name in ("value_int", "value_float", "value_ints", "value_floats"):
            return _small(np.array(value, np.int64 if "int" in attribute.name else np.float32))
    return None


def _folded(node, known: dict) -> np.ndarray | None:
    """A node's output as a small constant, if it is one (Constant, or a simple op on constants)."""
    import onnx

    if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
        return _constant_value(node)
    values = [known.get(name) for name in node.input]
    if node.op_type not in SIMPLE_OPS or node.domain not in ("", "ai.onnx") or not values \
            or any(v is None for v in values):
        return None
    try:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        with np.errstate(all="ignore"):  # int64 wraps as it does in onnxruntime
            return _small(np.asarray(_numpy(node.op_type, attrs, values)))
    except Exception:  # noqa: BLE001 - anything odd is simply not a known constant
        return None


def _initializer_values(graph, outer: dict) -> dict:
    """Known small constants in a graph: the outer scope's, then its own initializers."""
    known = dict(outer)
    for tensor in graph.initializer:
        value = _tensor_value(tensor)
        if value is not None:
            known[tensor.name] = value
    return known


def _allocation(node, known: dict, types: dict, batch: set) -> int | None:
    """Elements an op forms from constant shape inputs (None when they are not known here):
    ConstantOfShape, Expand, Tile, Range, Resize/Upsample, and the random ops' ``shape``.
    (Reshape never holds more than its input, which is sized on its own.)"""
    import onnx

    op = node.op_type
    inputs = [known.get(name) if name else None for name in node.input]

    def count(array) -> int | None:
        sizes = np.asarray(array, dtype=np.float64).ravel()
        return math.prod(int(s) for s in sizes) if np.all(np.isfinite(sizes)) and np.all(sizes >= 0) else None

    def elements(name) -> int:
        estimate = _estimate(types.get(name), batch)
        return estimate if estimate is not None else 1

    if op == "ConstantOfShape" and inputs and inputs[0] is not None:
        return count(inputs[0])
    if op == "Expand" and len(inputs) > 1 and inputs[1] is not None:
        return count(inputs[1])
    if op == "Tile" and len(inputs) > 1 and inputs[1] is not None:
        repeats = count(inputs[1])
        return None if repeats is None else repeats * elements(node.input[0])
    if op == "Range" and len(inputs) == 3 and all(v is not None and np.size(v) == 1 for v in inputs):
        start, limit, delta = (float(np.asarray(v).ravel()[0]) for v in inputs)
        return count([max(0.0, math.ceil((limit - start) / delta))]) if delta and math.isfinite(limit - start) else None
    if op in ("Resize", "Upsample"):
        sizes = inputs[3] if op == "Resize" and len(inputs) > 3 else None
        scales = inputs[2] if op == "Resize" and len(inputs) > 2 else inputs[1] if len(inputs) > 1 else None
        if sizes is not None and np.size(sizes):
            return count(sizes)
        shape = _dims(types.get(node.input[0]), batch)
        if scales is not None and shape is not None and np.size(scales) == len(shape):
            return count(np.floor(np.asarray(shape, np.float64) * np.ravel(scales).astype(np.float64)))
    if op in ("RandomNormal", "RandomUniform"):
        shape = [a for a in node.attribute if a.name == "shape"]
        return count(onnx.helper.get_attribute_value(shape[0])) if shape else None
    return None


def _node_label(node) -> str:
    return f"the {node.op_type!r} node {node.name or (node.output[0] if node.output else '')!r}"


def _check_nodes(nodes, known: dict, types: dict, batch: set, filename: str, limits) -> None:
    """What each node would form from constant shapes, and each Loop's constant trip count, against
    the caps; subgraphs see their outer scope's constants, functions only their own."""
    for node in nodes:
        where = _node_label(node)
        elements = _allocation(node, known, types, batch)
        if elements is not None:
            size = elements * _itemsize(types.get(node.output[0]) if node.output else None)
            if size > limits.activation_bytes:
                raise _refusal(filename, f"{where} would allocate", f"{_bytes(size)} ({elements:,} values)",
                               "activation_bytes", limits, ALLOCATION_FIX)
        trips = known.get(node.input[0]) if node.op_type == "Loop" and node.input else None
        if trips is not None and np.size(trips) == 1 and np.issubdtype(np.asarray(trips).dtype, np.integer):
            trips = int(np.asarray(trips).ravel()[0])
            if trips > limits.loop_trips:
                raise _refusal(filename, f"{where} would run", f"{trips:,} trips", "loop_trips", limits,
                               "export the loop with a smaller trip count, or raise the cap")
        for attribute in node.attribute:
            for graph in [attribute.g] if attribute.HasField("g") else list(attribute.graphs):
                _check_nodes(graph.node, _initializer_values(graph, known), types, batch, filename, limits)
        value = _folded(node, known) if len(node.output) == 1 else None
        if value is not None:
            known[node.output[0]] = value


def _value_types(model) -> dict:
    """Each value's (inferred) type, over the graph and its subgraphs."""
    import onnx

    types = {}
    for graph in _messages(model.graph):
        if isinstance(graph, onnx.GraphProto):
            types.update({v.name: v.type for v in [*graph.input, *graph.value_info, *graph.output]})
    return types


def _batch_symbols(graph) -> set:
    initializers = {t.name for t in graph.initializer}
    return {i.type.tensor_type.shape.dim[0].dim_param for i in graph.input if i.name not in initializers
            and i.type.HasField("tensor_type") and i.type.tensor_type.shape.dim
            and i.type.tensor_type.shape.dim[0].dim_param}


def _symbolic(expression: str, batch: set) -> int | None:
    """A symbolic dim as the app runs it: the batch symbol BATCH, any other symbol SEQUENCE, and
    the exporter's arithmetic on them (``2*seq``, ``Min(64, seq)``); None for ONNX's anonymous
    ``unk__`` dims (unknown, not judged)."""
    if expression in batch:
        return BATCH
    if expression.startswith("unk__"):
        return None
    try:
        tree = ast.parse(expression, mode="eval").body
    except SyntaxError:
        return SEQUENCE
    operators = {ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b, ast.Mult: lambda a, b: a * b,
                 ast.FloorDiv: lambda a, b: a // b if b else None, ast.Div: lambda a, b: a // b if b else None}

    def value(node):
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return node.value
        if isinstance(node, ast.Name):
            return BATCH if node.id in batch else SEQUENCE
        if isinstance(node, ast.BinOp) and type(node.op) in operators:
            left, right = value(node.left), value(node.right)
            return None if left is None or right is None else operators[type(node.op)](left, right)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("Min", "Max") \
                and node.args and not node.keywords:
            args = [value(a) for a in node.args]
            return None if None in args else (min if node.func.id == "Min" else max)(args)
        return SEQUENCE

    result = value(tree)
    return result if result is None or result >= 0 else None


def _dims(value_type, batch: set) -> list[int] | None:
    """A value's dims as the app runs it, None unless every one is known or symbolic."""
    if value_type is None or not value_type.HasField("tensor_type") or not value_type.tensor_type.HasField("shape"):
        return None
    dims = []
    for dim in value_type.tensor_type.shape.dim:
        size = dim.dim_value if dim.HasField("dim_value") else _symbolic(dim.dim_param, batch) \
            if dim.HasField("dim_param") else None
        if size is None or size < 0:
            return None
        dims.append(size)
    return dims


def _estimate(value_type, batch: set) -> int | None:
    dims = _dims(value_type, batch)
    return None if dims is None else math.prod(dims)


def _itemsize(value_type) -> int:
    import onnx

    try:
        return np.dtype(onnx.helper.tensor_dtype_to_np_dtype(value_type.tensor_type.elem_type)).itemsize
    except (AttributeError, KeyError, TypeError, ValueError):
        return DEFAULT_ITEMSIZE


def _check_activations(model, batch: set, filename: str, limits) -> None:
    """Every value whose shape is known (in the graph and its subgraphs), at the app's batch and
    the longest sequence, against the activation cap."""
    import onnx

    for graph in _messages(model.graph):
        if not isinstance(graph, onnx.GraphProto):
            continue
        weights = {t.name for t in graph.initializer} | {n.output[0] for n in graph.node
                                                         if n.op_type == "Constant" and n.output}
        for value in [*graph.input, *graph.value_info, *graph.output]:
            if value.name in weights:
                continue  # counted with the parameters
            elements = _estimate(value.type, batch)
            size = None if elements is None else elements * _itemsize(value.type)
            if size is not None and size > limits.activation_bytes:
                producer = next((n for n in graph.node if value.name in n.output), None)
                by = f" (made by {_node_label(producer)})" if producer is not None else ""
                raise _refusal(filename, f"the value {value.name!r}{by} would take",
                               f"{_bytes(size)} at batch {BATCH} ({' x '.join(map(str, _dims(value.type, batch)))})",
                               "activation_bytes", limits, ALLOCATION_FIX)


def _scopes(node) -> list[str]:
    for prop in node.metadata_props:
        if prop.key == SCOPES and len(prop.value) < 10_000:
            try:
                value = ast.literal_eval(prop.value)
            except (ValueError, SyntaxError):
                return []
            if isinstance(value, list) and all(isinstance(v, str) for v in value):
                return value[1:-1]  # '' (the root) first, the op's own name last
    return []


def module_outputs(graph, types: dict) -> dict[str, str]:
    """Module path -> its output: of the float values its nodes produce that nodes outside it read
    (or that the graph returns), the one produced last. (An exporter's optimiser may let a later
    block reuse a mask or shape computed in an earlier one; those leave the block too, earlier.)"""
    scopes = [set(_scopes(node)) for node in graph.node]
    producer = {out: i for i, node in enumerate(graph.node) for out in node.output}
    readers: dict[str, list[int]] = {}
    for i, node in enumerate(graph.node):
        for value in node.input:
            readers.setdefault(value, []).append(i)
    graph_outputs = {o.name for o in graph.output}
    order: dict[str, None] = {}
    for node in graph.node:
        for path in _scopes(node):
            order.setdefault(path, None)
    found = {}
    for path in order:
        leaving = [(i, value) for value, i in producer.items() if path in scopes[i] and _is_float(types.get(value))
                   and (value in graph_outputs or any(path not in scopes[j] for j in readers.get(value, ())))]
        if leaving:
            found[path] = max(leaving)[1]
    return found


def _is_float(value_type) -> bool:
    return value_type is not None and value_type.HasField("tensor_type") and \
        value_type.tensor_type.elem_type in FLOAT_TYPES


class OnnxModel(LoadedModel):
    format = "onnx"

    def __init__(self, data: bytes, filename: str, *, tokenizer: bytes | None = None, threads: int = 0,
                 files: ArchiveFiles | DirectoryFiles | None = None):
        """``files``: where the model's external data may be read (the archive it came in, or its
        directory on this machine); None for a file that came alone, which must hold its weights."""
        self.name = PurePosixPath(filename).name.removesuffix(".onnx").removesuffix(".zip")
        digest = hashlib.sha256(data + (tokenizer or b""))
        proto = _checked(_load_proto(data, filename), filename, files, digest)
        self.digest = digest.hexdigest()
        self.proto, self.threads, self._sessions = proto, threads, {}
        initializers = {t.name for t in proto.graph.initializer}
        self.graph_inputs = [i for i in proto.graph.input if i.name not in initializers]
        self.input_names = tuple(i.name for i in self.graph_inputs)
        self.tokenizer: WordTokenizer | None = load_tokenizer(tokenizer, filename) if tokenizer else None
        self.input_kind = TEXT if self.tokenizer else IMAGE if self._image_input() else ARRAY
        types = {v.name: v.type for v in [*proto.graph.value_info, *proto.graph.output]}
        named = module_outputs(proto.graph, types)
        values = named if named else {out: out for node in proto.graph.node for out in node.output}
        layers = []
        for name, value in values.items():
            shape = _shape(types.get(value))
            if shape is not None and len(shape) >= 2 and types[value].tensor_type.elem_type in FLOAT_TYPES:
                layers.append(Layer(name, shape[1:], reduction.layer_kind(shape[1:], self.input_kind)))
        if not layers:
            raise RepresentationError(f"{filename}: no node output has a known float shape, so there is no layer "
                                      "to compare; run onnx.shape_inference on the model before saving it.")
        self.layers = tuple(layers)
        self._values = {layer.name: values[layer.name] for layer in layers}
        self.default_layers = default_layers(self.layers) if named else tuple(l.name for l in layers[-12:])
        self._check_session(filename)

    def _image_input(self) -> bool:
        if len(self.graph_inputs) != 1:
            return False
        shape = _shape(self.graph_inputs[0].type)
        return (shape is not None and len(shape) == 4 and shape[1] in (1, 3) and shape[2] > 0 and shape[3] > 0
                and self.graph_inputs[0].type.tensor_type.elem_type in FLOAT_TYPES)

    def _check_session(self, filename: str) -> None:
        """Make the session for the default layers now: onnxruntime refuses what it cannot run here
        (an operator it does not implement), and building the session is part of loading, not of
        the first batch."""
        self._session(self.default_layers)

    def _session(self, layers: tuple[str, ...]):
        import onnx
        import onnxruntime as ort

        key = tuple(sorted(layers))
        if key not in self._sessions:
            self._sessions.clear()  # one session at a time: each holds a copy of the weights
            proto = onnx.ModelProto()
            proto.CopyFrom(self.proto)
            present = {o.name for o in proto.graph.output}
            kept = {v.name: v for v in proto.graph.value_info}
            for name in key:
                value = self._values[name]
                if value not in present:
                    proto.graph.output.append(kept[value] if value in kept else onnx.helper.make_empty_tensor_value_info(value))
            options = ort.SessionOptions()
            options.intra_op_num_threads = self.threads
            options.inter_op_num_threads = 1
            options.log_severity_level = 3
            try:
                self._sessions[key] = ort.InferenceSession(proto.SerializeToString(), options,
                                                           providers=["CPUExecutionProvider"])
            except Exception as error:  # noqa: BLE001
                raise RepresentationError(f"onnxruntime cannot run {self.name}: "
                                          f"{str(error).splitlines()[0][:300]}") from None
        return self._sessions[key]

    def feed(self, examples: Examples) -> Feed:
        if examples.kind == TEXT and self.tokenizer is not None:
            ids, mask = self.tokenizer.encode(list(examples.texts))
            tensors = {}
            for graph_input in self.graph_inputs:
                dtype = NUMPY_TYPES.get(graph_input.type.tensor_type.elem_type, np.int64)
                if graph_input.name == "input_ids":
                    tensors["input_ids"] = ids.astype(dtype)
                elif graph_input.name == "attention_mask":
                    tensors["attention_mask"] = mask.astype(dtype)
                elif graph_input.name == "token_type_ids":
                    tensors["token_type_ids"] = np.zeros_like(ids, dtype=dtype)
                else:
                    raise RepresentationError(f"{self.name} has an input {graph_input.name!r} that a tokenizer does "
                                              "not give; pass the inputs as arrays (.npz) instead.")
            return Feed(tensors, mask)
        if examples.kind == IMAGE and self.input_kind == IMAGE:
            _, channels, height, width = _shape(self.graph_inputs[0].type)
            return Feed({self.input_names[0]: images_as_tensor(examples.images, channels, height, width)})
        if examples.kind == ARRAY:
            return Feed(_array_feed(examples, self.graph_inputs, self.name),
                        examples.arrays.get("attention_mask"))
        raise RepresentationError(f"{self.name} reads {self.input_kind}s"
                                  + (" (give its tokenizer.json with the model)" if self.input_kind == ARRAY else "")
                                  + f", not {examples.kind}s.")

    def run(self, feed: Feed, layers: tuple[str, ...]) -> dict[str, np.ndarray]:
        session = self._session(layers)
        wanted = [self._values[name] for name in layers]
        try:
            outputs = session.run(wanted, feed.tensors)
        except Exception as error:  # noqa: BLE001
            raise RepresentationError(f"{self.name} failed on these inputs: {str(error).splitlines()[0][:300]}") from None
        return {name: np.asarray(out, dtype=np.float32) for name, out in zip(layers, outputs)}


def _shape(value_type) -> tuple[int, ...] | None:
    """Static dims, -1 for symbolic ones; None without a known rank."""
    if value_type is None or not value_type.HasField("tensor_type") or not value_type.tensor_type.HasField("shape"):
        return None
    return tuple(d.dim_value if d.HasField("dim_value") else -1 for d in value_type.tensor_type.shape.dim)


def images_as_tensor(images, channels: int, height: int, width: int) -> np.ndarray:
    """Images resized to height x width (bilinear), scaled to [0, 1], RGB or grey: (n, c, h, w) float32.
    Models that expect their own normalisation should be exported with it, or fed arrays."""
    from PIL import Image

    out = np.empty((len(images), channels, height, width), dtype=np.float32)
    for i, image in enumerate(images):
        picture = Image.fromarray(image).convert("RGB" if channels == 3 else "L").resize((width, height),
                                                                                          Image.Resampling.BILINEAR)
        pixels = np.asarray(picture, dtype=np.float32) / 255.0
        out[i] = pixels.transpose(2, 0, 1) if channels == 3 else pixels[None]
    return out


def _array_feed(examples: Examples, graph_inputs, name: str) -> dict[str, np.ndarray]:
    arrays = dict(examples.arrays)
    if len(graph_inputs) == 1 and len(arrays) == 1:
        arrays = {graph_inputs[0].name: next(iter(arrays.values()))}
    missing = [i.name for i in graph_inputs if i.name not in arrays]
    if missing:
        raise RepresentationError(f"{name} needs the inputs {', '.join(i.name for i in graph_inputs)}; the arrays "
                                  f"lack {', '.join(missing)} (save them under these names in the .npz).")
    return {i.name: np.asarray(arrays[i.name], dtype=NUMPY_TYPES.get(i.type.tensor_type.elem_type, np.float32))
            for i in graph_inputs}
