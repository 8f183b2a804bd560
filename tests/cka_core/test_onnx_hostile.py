"""Hostile ONNX files, in process: external data from every place a tensor can sit never reads a file
outside the upload (the secret in the working directory never comes out), legitimate external data
(in a .zip, beside a local path) gives the self-contained model's values, and sizes over the caps
are refused from the graph alone, quickly and without allocating them."""
from __future__ import annotations

import resource
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from cka_core import RepresentationError
from cka_core import models as own
from tests import model_files as mf
from tests.hostile import cases_onnx as cases

WHERE = ("relative", "absolute", "dotdot")
ONES = np.ones((4, 4), np.float32)


def _location(where: str, secret: Path) -> str:
    return {"relative": secret.name, "absolute": str(secret), "dotdot": f"../{secret.parent.name}/{secret.name}"}[where]


def _y(model) -> np.ndarray:
    """Layer y on the identity batch: the rows of W + T."""
    feed = model.feed(own.Examples(own.ARRAY, arrays={"x": np.eye(4, dtype=np.float32)}))
    return model.run(feed, ("y",))["y"]


def _refused(source, name: str, match: str) -> str:
    with pytest.raises(RepresentationError, match=match) as caught:
        own.load_model(source, name)
    message = str(caught.value)
    assert "\n" not in message and name.rsplit("/", 1)[-1] in message
    return message


@pytest.fixture
def secret(tmp_path, monkeypatch) -> Path:
    """A secret file in the server's working directory (where a relative location would land)."""
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "secret.bin"
    path.write_bytes(cases.SECRET.tobytes())
    return path


def test_the_trick_is_real(secret):
    """onnxruntime itself, given these bytes, reads the secret from the working directory."""
    import onnxruntime as ort

    model = cases.with_t("if branch", cases.SECRET, "secret.bin")
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    leaked = session.run(["y"], {"x": np.eye(4, dtype=np.float32)})[0]
    np.testing.assert_array_equal(leaked, np.eye(4) + cases.SECRET)


@pytest.mark.parametrize("where", WHERE)
@pytest.mark.parametrize("kind", cases.KINDS)
def test_an_uploaded_onnx_never_reads_external_data(kind, where, secret):
    data = cases.with_t(kind, cases.SECRET, _location(where, secret)).SerializeToString()
    message = _refused(data, "leak.onnx", "external files")
    assert "save_as_external_data=False" in message and ".zip" in message


@pytest.mark.parametrize("where", WHERE)
@pytest.mark.parametrize("kind", cases.KINDS)
def test_a_local_onnx_reads_only_inside_its_own_directory(kind, where, secret):
    directory = secret.parent / "model"
    directory.mkdir()
    path = directory / "leak.onnx"
    path.write_bytes(cases.with_t(kind, cases.SECRET, _location(where, secret)).SerializeToString())
    _refused(str(path), "leak.onnx", "not a file (beside|inside)")


@pytest.mark.parametrize("where", WHERE)
@pytest.mark.parametrize("kind", ["if branch", "function", "sparse"])
def test_a_zipped_onnx_reads_only_its_own_members(kind, where, secret):
    location = _location(where, secret)
    data = cases.zipped({"model/leak.onnx": cases.with_t(kind, cases.SECRET, location).SerializeToString(),
                         "secret.bin": b"\0" * 64})  # a member of that name, but not beside the model
    _refused(data, "leak.zip", "not a file beside|does not hold")


def test_a_symbolic_link_out_of_the_model_directory_is_refused(secret):
    directory = secret.parent / "model"
    directory.mkdir()
    (directory / "weights.bin").symlink_to(secret)
    (directory / "leak.onnx").write_bytes(cases.with_t("loop body", cases.SECRET, "weights.bin").SerializeToString())
    _refused(str(directory / "leak.onnx"), "leak.onnx", "not a file inside")
    _refused(str(directory), "leak.onnx", "not a file inside")


def test_a_range_outside_the_data_file_is_refused(tmp_path):
    members = cases.with_external_file(cases.with_t("initializer", ONES, None))
    model = __import__("onnx").load_model_from_string(members["model.onnx"])
    for entry in model.graph.initializer[0].external_data:
        if entry.key == "offset":
            entry.value = str(len(members["model.onnx.data"]) - 8)
    _refused(cases.zipped({"model.onnx": model.SerializeToString(), "model.onnx.data": members["model.onnx.data"]}),
             "short.zip", "which holds")


@pytest.mark.parametrize("kind", [k for k in cases.KINDS if k != "training info"])
def test_external_data_in_a_zip_or_beside_a_path_gives_the_embedded_values(kind, tmp_path):
    values = np.arange(16, dtype=np.float32).reshape(4, 4) / 7
    model = cases.with_t(kind, values, None)
    embedded = _y(own.load_model(model.SerializeToString(), "embedded.onnx"))
    members = cases.with_external_file(model)
    zipped = own.load_model(cases.zipped({f"m/{n}": d for n, d in members.items()}), "external.zip")
    (tmp_path / "m").mkdir()
    for name, data in members.items():
        (tmp_path / "m" / name).write_bytes(data)
    beside = own.load_model(str(tmp_path / "m" / "model.onnx"))
    in_directory = own.load_model(str(tmp_path / "m"))
    for loaded in (zipped, beside, in_directory):
        np.testing.assert_array_equal(_y(loaded), embedded)
    assert zipped.digest == beside.digest != own.load_model(cases.zipped({
        "model.onnx": members["model.onnx"], "model.onnx.data": b"\1" * len(members["model.onnx.data"])}),
        "other.zip").digest  # the weights are part of the model's identity


def test_a_real_exported_model_with_external_data_loads_from_a_zip(tmp_path):
    onnx = __import__("onnx")
    directory = mf.resnet_directory()
    plain = own.load_model(mf.onnx_bytes(directory), "resnet.onnx")
    members = cases.with_external_file(onnx.load_model_from_string(mf.onnx_bytes(directory)))
    assert len(mf.onnx_bytes(directory)) - len(members["model.onnx"]) > 20_000  # the weights really moved out
    zipped = own.load_model(cases.zipped(members), "resnet.zip")
    assert zipped.default_layers == plain.default_layers
    examples = own.Examples(own.ARRAY, arrays={"pixel_values": np.random.default_rng(0).random(
        (6, 3, 32, 32), dtype=np.float32)})
    for a, b in zip(own.represent(zipped, examples, plain.default_layers, "flatten").layers.values(),
                    own.represent(plain, examples, plain.default_layers, "flatten").layers.values()):
        np.testing.assert_array_equal(a, b)


def test_a_hugging_face_zip_still_goes_to_its_own_loader():
    data = cases.zipped({"m/config.json": b"{}", "m/model.onnx": b"not read"})
    with pytest.raises(RepresentationError) as caught:
        own.load_model(data, "hf.zip")
    assert "ONNX" not in str(caught.value)


@pytest.mark.parametrize("build, match", [
    (cases.constant_of_shape, r"'ConstantOfShape'.*2\.0 GiB.*CKA_MODEL_ACTIVATION_MB=1024"),
    (cases.constant_of_shape_in_branch, r"'ConstantOfShape'.*2\.0 GiB.*CKA_MODEL_ACTIVATION_MB"),
    (cases.constant_loop, r"'Loop'.*1,000,000,000,000 trips.*CKA_MODEL_LOOP_TRIPS=1000000"),
    (cases.undeclared_parameters, r"1,000,000,018 values.*CKA_MODEL_PARAMETERS"),
    (cases.huge_activation, r"'big'.*2\.0 GiB at batch 16 \(16 x 512 x 65536\).*CKA_MODEL_ACTIVATION_MB"),
], ids=lambda v: getattr(v, "__name__", ""))
def test_sizes_over_the_caps_are_refused_quickly_without_allocating(build, match):
    data = build().SerializeToString()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    start = time.perf_counter()
    _refused(data, "big.onnx", match)
    assert time.perf_counter() - start < 5
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before < 200 * 2**20


def test_the_caps_follow_the_environment(monkeypatch):
    monkeypatch.setenv("CKA_MODEL_LOOP_TRIPS", "2000000000000")
    monkeypatch.setenv("CKA_MODEL_ACTIVATION_MB", "4096")
    loop_ok = own.load_model(cases.constant_loop().SerializeToString(), "loop.onnx")  # loads; running is the worker's
    assert "y" in {layer.name for layer in loop_ok.layers}
    monkeypatch.setenv("CKA_MODEL_LOOP_TRIPS", "10")
    _refused(cases.constant_loop(100).SerializeToString(), "loop.onnx", "100 trips.*CKA_MODEL_LOOP_TRIPS=10")


@pytest.mark.parametrize("place", ["if branch", "function"])
def test_custom_operators_are_refused_in_subgraphs_and_functions(place):
    model = cases.with_t(place, ONES, None)
    graph = model.graph.node[1].attribute[0].g if place == "if branch" else model.functions[0]
    graph.node[0].domain, graph.node[0].op_type = "com.evil.ops", "Payload"
    _refused(model.SerializeToString(), "custom.onnx", "custom operator 'Payload' of domain 'com.evil.ops'")


def test_an_archive_of_two_graphs_is_not_guessed():
    data = cases.zipped({"a.onnx": b"x", "b.onnx": b"y"})
    with pytest.raises(RepresentationError):
        own.load_model(data, "two.zip")


def test_the_zip_case_of_the_suite_is_an_onnx_zip(tmp_path):
    built = next(c for c in cases.CASES if c.name == "onnx-zip-with-external-data-loads").build(tmp_path)
    names = zipfile.ZipFile(built.args[0]).namelist()
    assert sorted(names) == ["model/model.onnx", "model/model.onnx.data"]
