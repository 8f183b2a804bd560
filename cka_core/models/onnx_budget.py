"""What an ONNX graph would cost, judged before it runs: its parameters, what constant shapes would
allocate and every value whose shape is known, held to the caps.
"""
from __future__ import annotations
import ast
import math
import numpy as np
from ..errors import RepresentationError
from ..io import caps


def _refusal(filename: str, what: str, amount: str, cap: str, limits, fix: str) -> RepresentationError:
    """The one-line refusal of a size over a cap: what, how much, the cap and how to set it, the fix."""
    variable, unit = caps.ENVIRONMENT[cap]
    limit = getattr(limits, cap)
    shown = _bytes(limit) if unit > 1 else f"{limit:,}"
    return RepresentationError(f"{filename}: {what} {amount}, over the cap of {shown} ({variable}="
                               f"{limit / unit:.10g}); {fix}.")


def _bytes(count: int) -> str:
    return f"{count / 2**30:.1f} GiB" if count >= 2**30 else f"{count / 2**20:.1f} MiB"


def check_parameters(messages, filename: str, limits) -> None:
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


BATCH = 16          # the batch the app runs (ui.sources.own_models.BATCH_SIZE), for a graph input's symbolic first dim
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


def initializer_values(graph, outer: dict) -> dict:
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


def check_nodes(nodes, known: dict, types: dict, batch: set, filename: str, limits) -> None:
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
                check_nodes(graph.node, initializer_values(graph, known), types, batch, filename, limits)
        value = _folded(node, known) if len(node.output) == 1 else None
        if value is not None:
            known[node.output[0]] = value


def value_types(model) -> dict:
    """Each value's (inferred) type, over the graph and its subgraphs."""
    import onnx

    types = {}
    for graph in _messages(model.graph):
        if isinstance(graph, onnx.GraphProto):
            types.update({v.name: v.type for v in [*graph.input, *graph.value_info, *graph.output]})
    return types


def batch_symbols(graph) -> set:
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


def check_activations(model, batch: set, filename: str, limits) -> None:
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
