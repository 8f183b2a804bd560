"""Hostile ONNX files: external data that reaches outside the upload (from every place a tensor can
sit), sizes that only the graph's constants reveal, loops that never end; with their legitimate
neighbours (a plain .onnx, a .zip of a .onnx with its data file), which must load.

The builders are shared with tests/cka_core/test_onnx_hostile.py: a tiny graph y = x @ (W + T),
x of shape (batch, 4), where each hostile kind puts T (a 4 x 4 float tensor) in a different place.
A leaked T would come out in the values of layer y.
"""
from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np

from . import harness

SECRET = (np.arange(16, dtype=np.float32) + 1000.5).reshape(4, 4)  # bytes no layer may ever show
OPSET = 18
LOCAL = "local.functions"


def onnx_modules():
    import onnx
    from onnx import helper, numpy_helper

    return onnx, helper, numpy_helper


def data_tensor(name: str, values: np.ndarray, location: str | None):
    """``values`` as a tensor: stored in the file, or (``location``) in an external file at offset 0."""
    onnx, _, numpy_helper = onnx_modules()
    tensor = numpy_helper.from_array(values, name)
    if location is not None:
        tensor.ClearField("raw_data")
        tensor.data_location = onnx.TensorProto.EXTERNAL
        for key, value in (("location", location), ("offset", "0"), ("length", str(values.nbytes))):
            entry = tensor.external_data.add()
            entry.key, entry.value = key, value
    return tensor


def tiny_model(nodes=(), initializers=(), *, functions=(), sparse=(), opsets=(), x_dims=("batch", 4)):
    """y = x @ (W + T) with W = identity, T whatever ``nodes``/``initializers`` make of it."""
    onnx, helper, numpy_helper = onnx_modules()
    graph = helper.make_graph(
        [*nodes, helper.make_node("Add", ["W", "T"], ["WT"]), helper.make_node("MatMul", ["x", "WT"], ["y"])],
        "tiny", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, list(x_dims))],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["batch", 4])],
        [numpy_helper.from_array(np.eye(4, dtype=np.float32), "W"), *initializers], sparse_initializer=list(sparse))
    model = helper.make_model(graph, functions=list(functions), opset_imports=[
        helper.make_opsetid("", OPSET), *(helper.make_opsetid(domain, 1) for domain in opsets)])
    model.ir_version = 10
    return model


def _constant(output: str, tensor):
    return onnx_modules()[1].make_node("Constant", [], [output], value=tensor)


def _branch(name: str, nodes, output: str):
    onnx, helper, _ = onnx_modules()
    return helper.make_graph(nodes, name, [], [helper.make_tensor_value_info(output, onnx.TensorProto.FLOAT, [4, 4])])


def with_t(kind: str, values: np.ndarray, location: str | None):
    """The tiny model with T = ``values`` kept in place ``kind`` (external at ``location`` if given)."""
    onnx, helper, numpy_helper = onnx_modules()
    tensor = data_tensor("T_data", values, location)
    zeros = numpy_helper.from_array(np.zeros((4, 4), np.float32), "zeros")
    if kind == "initializer":
        tensor.name = "T"
        return tiny_model(initializers=[tensor])
    if kind == "attribute":
        return tiny_model([_constant("T", tensor)])
    if kind == "sparse":
        indices = numpy_helper.from_array(np.arange(16, dtype=np.int64), "T_indices")
        return tiny_model(sparse=[helper.make_sparse_tensor(
            data_tensor("T", values.ravel(), location), indices, [4, 4])])
    if kind == "sparse attribute":
        indices = numpy_helper.from_array(np.arange(16, dtype=np.int64), "T_indices")
        sparse = helper.make_sparse_tensor(data_tensor("T_values", values.ravel(), location), indices, [4, 4])
        return tiny_model([helper.make_node("Constant", [], ["T"], sparse_value=sparse)])
    if kind == "if branch":
        return tiny_model([
            _constant("cond", numpy_helper.from_array(np.array(True))),
            helper.make_node("If", ["cond"], ["T"], then_branch=_branch("then", [_constant("t_then", tensor)], "t_then"),
                             else_branch=_branch("else", [_constant("t_else", zeros)], "t_else"))])
    if kind == "loop body":
        body = helper.make_graph(
            [_constant("c", tensor), helper.make_node("Add", ["v", "c"], ["v_out"]),
             helper.make_node("Identity", ["cond_in"], ["cond_out"])], "body",
            [helper.make_tensor_value_info("i", onnx.TensorProto.INT64, []),
             helper.make_tensor_value_info("cond_in", onnx.TensorProto.BOOL, []),
             helper.make_tensor_value_info("v", onnx.TensorProto.FLOAT, [4, 4])],
            [helper.make_tensor_value_info("cond_out", onnx.TensorProto.BOOL, []),
             helper.make_tensor_value_info("v_out", onnx.TensorProto.FLOAT, [4, 4])])
        return tiny_model([
            _constant("trips", numpy_helper.from_array(np.array(1, np.int64))),
            _constant("go", numpy_helper.from_array(np.array(True))), _constant("v0", zeros),
            helper.make_node("Loop", ["trips", "go", "v0"], ["T"], body=body)])
    if kind == "function":
        function = helper.make_function(LOCAL, "Weights", [], ["out"], [_constant("out", tensor)],
                                        [helper.make_opsetid("", OPSET)])
        return tiny_model([helper.make_node("Weights", [], ["T"], domain=LOCAL)], functions=[function],
                          opsets=[LOCAL])
    if kind == "training info":
        model = tiny_model([_constant("T", numpy_helper.from_array(values, "T_value"))])
        training = model.training_info.add()
        training.initialization.CopyFrom(helper.make_graph([], "init", [], [], [tensor]))
        return model
    raise ValueError(kind)


KINDS = ("initializer", "attribute", "sparse", "sparse attribute", "if branch", "loop body", "function",
         "training info")


def zipped(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def with_external_file(model) -> dict[str, bytes]:
    """``model`` with every tensor moved to one external file, as onnx.save writes it: name -> bytes."""
    import tempfile

    onnx = onnx_modules()[0]
    with tempfile.TemporaryDirectory() as tmp:
        onnx.save(model, f"{tmp}/model.onnx", save_as_external_data=True, all_tensors_to_one_file=True,
                  location="model.onnx.data", size_threshold=0)
        return {path.name: path.read_bytes() for path in Path(tmp).iterdir()}


# ------------------------------------------------------------------ graphs too large, or never ending

def shape_constant(name: str, dims) -> object:
    return _constant(name, onnx_modules()[2].from_array(np.array(dims, np.int64)))


def constant_of_shape(dims=(512, 1024, 1024)):
    """A ConstantOfShape of 2 GiB (float32) whose shape is a constant built by Concat."""
    helper = onnx_modules()[1]
    return tiny_model([shape_constant("head", dims[:1]), shape_constant("tail", dims[1:]),
                       helper.make_node("Concat", ["head", "tail"], ["shape"], axis=0),
                       helper.make_node("ConstantOfShape", ["shape"], ["big"]),
                       helper.make_node("ReduceSum", ["big"], ["T_sum"], keepdims=0),
                       helper.make_node("Expand", ["T_sum", "four"], ["T"]), shape_constant("four", [4, 4])])


def constant_of_shape_in_branch(dims=(512, 1024, 1024)):
    """The same allocation inside an If branch, its shape from the outer graph."""
    helper, numpy_helper = onnx_modules()[1:]
    branch = _branch("then", [helper.make_node("ConstantOfShape", ["shape"], ["big"]),
                              helper.make_node("ReduceSum", ["big"], ["total"], keepdims=0),
                              helper.make_node("Expand", ["total", "four"], ["t_then"])], "t_then")
    zeros = _constant("t_else", numpy_helper.from_array(np.zeros((4, 4), np.float32)))
    return tiny_model([shape_constant("shape", dims), shape_constant("four", [4, 4]),
                       _constant("cond", numpy_helper.from_array(np.array(True))),
                       helper.make_node("If", ["cond"], ["T"], then_branch=branch,
                                        else_branch=_branch("else", [zeros], "t_else"))])


def _loop(trips_input: str, nodes=()):
    """T = a Loop adding one to a 4 x 4 zero matrix ``trips_input`` times."""
    onnx, helper, numpy_helper = onnx_modules()
    body = helper.make_graph(
        [_constant("one", numpy_helper.from_array(np.ones((4, 4), np.float32))),
         helper.make_node("Add", ["v", "one"], ["v_out"]), helper.make_node("Identity", ["cond_in"], ["cond_out"])],
        "body", [helper.make_tensor_value_info("i", onnx.TensorProto.INT64, []),
                 helper.make_tensor_value_info("cond_in", onnx.TensorProto.BOOL, []),
                 helper.make_tensor_value_info("v", onnx.TensorProto.FLOAT, [4, 4])],
        [helper.make_tensor_value_info("cond_out", onnx.TensorProto.BOOL, []),
         helper.make_tensor_value_info("v_out", onnx.TensorProto.FLOAT, [4, 4])])
    return tiny_model([*nodes, _constant("go", numpy_helper.from_array(np.array(True))),
                       _constant("v0", numpy_helper.from_array(np.zeros((4, 4), np.float32))),
                       helper.make_node("Loop", [trips_input, "go", "v0"], ["T"], body=body)])


def constant_loop(trips: int = 10**12):
    return _loop("trips", [_constant("trips", onnx_modules()[2].from_array(np.array(trips, np.int64)))])


def dynamic_loop():
    """A Loop whose trip count is computed from the input (10^12 times the batch): only a clock ends it."""
    onnx, helper, numpy_helper = onnx_modules()
    return _loop("trips", [helper.make_node("Shape", ["x"], ["x_shape"], start=0, end=1),
                           helper.make_node("ReduceSum", ["x_shape"], ["batch_size"], keepdims=0),
                           _constant("tera", numpy_helper.from_array(np.array(10**12, np.int64))),
                           helper.make_node("Mul", ["batch_size", "tera"], ["trips"])])


def undeclared_parameters():
    """An initializer of 10^9 float32 values declared in its dims, not stored."""
    onnx, helper, _ = onnx_modules()
    huge = onnx.TensorProto(name="huge", data_type=onnx.TensorProto.FLOAT, dims=[10**9])
    return tiny_model([helper.make_node("ReduceSum", ["huge"], ["total"], keepdims=0),
                       helper.make_node("Expand", ["total", "four"], ["T"]), shape_constant("four", [4, 4])], [huge])


def huge_activation():
    """x broadcast to (batch, 512, 65536) float32: 2 GiB at the app's batch of 16, a shape only
    shape inference knows (the batch comes from the input)."""
    helper = onnx_modules()[1]
    return tiny_model([helper.make_node("Shape", ["x"], ["batch_size"], end=1), shape_constant("tail", [512, 65536]),
                       helper.make_node("Concat", ["batch_size", "tail"], ["shape"], axis=0),
                       shape_constant("one", [1]), helper.make_node("ReduceSum", ["x", "one"], ["x2"], keepdims=1),
                       shape_constant("two", [2]), helper.make_node("Unsqueeze", ["x2", "two"], ["x3"]),
                       helper.make_node("Expand", ["x3", "shape"], ["big"]),
                       helper.make_node("ReduceSum", ["big"], ["total"], keepdims=0),
                       helper.make_node("Expand", ["total", "four"], ["T"]), shape_constant("four", [4, 4])])


# ------------------------------------------------------------------ the suite's cases

def _secret_beside(tmp: Path) -> Path:
    """The secret in a file the server could reach (the suite runs the loader in the repository root)."""
    path = tmp / "secret.bin"
    path.write_bytes(SECRET.tobytes())
    return path


def _model_file(tmp: Path, model, name: str = "model.onnx") -> Path:
    path = tmp / name
    path.write_bytes(model.SerializeToString())
    return path


def _leak(kind: str, where: str):
    def build(tmp: Path) -> harness.Built:
        secret = _secret_beside(tmp)
        location = {"absolute": str(secret), "dotdot": f"../{tmp.name}/secret.bin",
                    "relative": "secret.bin"}[where]
        return harness.Built("model", (str(_model_file(tmp, with_t(kind, SECRET, location))),))
    return build


def _zip_with_data(tmp: Path) -> harness.Built:
    members = with_external_file(with_t("if branch", np.ones((4, 4), np.float32), None))
    path = tmp / "model.zip"
    path.write_bytes(zipped({f"model/{name}": data for name, data in members.items()}))
    return harness.Built("model", (str(path),))


def _zip_reaching_out(tmp: Path) -> harness.Built:
    _secret_beside(tmp)
    path = tmp / "model.zip"
    path.write_bytes(zipped({"model.onnx": with_t("loop body", SECRET, "../secret.bin").SerializeToString()}))
    return harness.Built("model", (str(path),))


def _directory_with_link(tmp: Path) -> harness.Built:
    """A model directory whose data file is a symbolic link to a file outside it."""
    secret = _secret_beside(tmp)
    directory = tmp / "model"
    directory.mkdir()
    (directory / "weights.bin").symlink_to(secret)
    _model_file(directory, with_t("function", SECRET, "weights.bin"))
    return harness.Built("model", (str(directory),))


def _plain(tmp: Path) -> harness.Built:
    return harness.Built("model", (str(_model_file(tmp, with_t("sparse", np.ones((4, 4), np.float32), None))),))


def custom_operator(where: str):
    """T made by an operator of a custom domain (running it would need a compiled extension library,
    whose loading runs its code): at the top level, or inside an If branch."""
    helper, numpy_helper = onnx_modules()[1:]
    custom = helper.make_node("Evil", ["W"], ["T" if where == "top" else "t_then"], domain="com.evil.ops")
    if where == "top":
        return tiny_model([custom], opsets=["com.evil.ops"])
    zeros = _constant("t_else", numpy_helper.from_array(np.zeros((4, 4), np.float32)))
    return tiny_model([_constant("cond", numpy_helper.from_array(np.array(True))),
                       helper.make_node("If", ["cond"], ["T"], then_branch=_branch("then", [custom], "t_then"),
                                        else_branch=_branch("else", [zeros], "t_else"))], opsets=["com.evil.ops"])


def _built(model_builder):
    return lambda tmp: harness.Built("model", (str(_model_file(tmp, model_builder())),))


def _hanging(tmp: Path) -> harness.Built:
    inputs = tmp / "inputs.npz"
    np.savez(inputs, x=np.ones((4, 4), np.float32))
    return harness.Built("model-run", (str(_model_file(tmp, dynamic_loop())), str(inputs)))


OUTSIDE = r"external files|not a file (beside|inside)|does not hold"
CASES = [
    *(harness.Case(f"onnx-external-{kind.replace(' ', '-')}-{where}", _leak(kind, where), OUTSIDE)
      for kind in KINDS for where in ("relative", "absolute", "dotdot")),
    harness.Case("onnx-zip-external-outside-archive", _zip_reaching_out, OUTSIDE),
    harness.Case("onnx-directory-data-file-is-a-link-out", _directory_with_link, OUTSIDE),
    harness.Case("onnx-constant-of-shape-2gb", _built(constant_of_shape), r"ConstantOfShape.*CKA_MODEL_ACTIVATION_MB"),
    harness.Case("onnx-constant-of-shape-2gb-in-if-branch", _built(constant_of_shape_in_branch),
                 r"ConstantOfShape.*CKA_MODEL_ACTIVATION_MB"),
    harness.Case("onnx-loop-1e12-trips", _built(constant_loop), r"Loop.*CKA_MODEL_LOOP_TRIPS"),
    harness.Case("onnx-1e9-parameters-declared-not-stored", _built(undeclared_parameters), r"CKA_MODEL_PARAMETERS"),
    harness.Case("onnx-input-of-2gb-per-batch", _built(huge_activation), r"CKA_MODEL_ACTIVATION_MB"),
    harness.Case("onnx-loop-computed-trip-count-hangs", _hanging, r"too slow|seconds"),
    harness.Case("onnx-custom-operator", _built(lambda: custom_operator("top")), r"custom operator 'Evil'"),
    harness.Case("onnx-custom-operator-in-if-branch", _built(lambda: custom_operator("branch")),
                 r"custom operator 'Evil'"),
    harness.Case("onnx-plain-file-loads", _plain, None),
    harness.Case("onnx-zip-with-external-data-loads", _zip_with_data, None),
]
