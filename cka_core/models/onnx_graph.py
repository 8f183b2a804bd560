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
import hashlib
from pathlib import PurePosixPath

import numpy as np

from ..errors import RepresentationError
from ..io import caps
from . import reduction
from .base import default_layers, Feed, Layer, LoadedModel
from .inputs import ARRAY, Examples, IMAGE, TEXT
from .tokenizer import load_tokenizer, WordTokenizer
from .onnx_budget import (batch_symbols, check_activations, check_nodes, check_parameters, initializer_values,
                          _messages, value_types)
from .onnx_external import read_external, ArchiveFiles, DirectoryFiles

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
    check_parameters(messages, filename, limits)
    external = [m for m in messages if isinstance(m, onnx.TensorProto) and m.data_location == onnx.TensorProto.EXTERNAL]
    if external:
        read_external(external, filename, files, digest)
    try:
        model = onnx.shape_inference.infer_shapes(model, data_prop=True)
    except (onnx.shape_inference.InferenceError, RuntimeError, ValueError):
        pass  # the session still runs; layers without a known shape are simply not offered
    batch = batch_symbols(model.graph)
    types = value_types(model)
    check_nodes(model.graph.node, initializer_values(model.graph, {}), types, batch, filename, limits)
    for function in model.functions:
        check_nodes(function.node, {}, types, batch, filename, limits)
    check_activations(model, batch, filename, limits)
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


# ------------------------------------------------------------------ external data: only the model's own files


# ------------------------------------------------------------------ sizes: constant shapes, loops, known shapes


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
