"""Your own models (cka_core.models): the same network loaded three ways (Hugging Face, ONNX,
torch.export) gives the same activations and heatmap, every reduction is what its definition says,
and files that are not what they claim, or that would run code, are refused before anything runs."""
from __future__ import annotations

import io
import json
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from cka_core import RepresentationError, cka_matrix
from cka_core.cka.matrix import cka_matrix_or_nan
from cka_core import models as own
from cka_core.models import exported, reduction
from tests import model_files as mf

TOL = 1e-5


@pytest.fixture(scope="module")
def bert():
    directory = mf.bert_directory()
    tok = mf.tokenizer_json(directory)
    return {"hf": own.load_model(directory), "onnx": own.load_model(mf.onnx_bytes(directory), "bert.onnx", tokenizer=tok),
            "pt2": own.load_model(mf.pt2_bytes(directory), "bert.pt2", tokenizer=tok)}


@pytest.fixture(scope="module")
def resnet():
    directory = mf.resnet_directory()
    return {"hf": own.load_model(directory), "onnx": own.load_model(mf.onnx_bytes(directory), "resnet.onnx"),
            "pt2": own.load_model(mf.pt2_bytes(directory), "resnet.pt2")}


BERT_LAYERS = {"hf": ("hidden_states.0", "hidden_states.1", "hidden_states.2"),
               "onnx": ("model.embeddings", "model.encoder.layer.0", "model.encoder.layer.1"),
               "pt2": ("model.embeddings", "model.encoder.layer.0", "model.encoder.layer.1")}
RESNET_LAYERS = {"hf": ("hidden_states.0", "hidden_states.1", "hidden_states.2"),
                 "onnx": ("model.embedder", "model.encoder.stages.0", "model.encoder.stages.1"),
                 "pt2": ("model.embedder", "model.encoder.stages.0", "model.encoder.stages.1")}


def _stacked(reps) -> list[np.ndarray]:
    return list(reps.layers.values())


def test_three_formats_offer_the_module_layers_as_defaults(bert, resnet):
    assert bert["hf"].default_layers == BERT_LAYERS["hf"] and bert["hf"].input_kind == own.TEXT
    for fmt in ("onnx", "pt2"):
        assert bert[fmt].default_layers == BERT_LAYERS[fmt], fmt
        assert resnet[fmt].default_layers == RESNET_LAYERS[fmt], fmt
        assert bert[fmt].input_names == ("input_ids", "attention_mask")
    assert resnet["hf"].layer("hidden_states.2").kind == reduction.MAP and resnet["hf"].input_kind == own.IMAGE
    assert bert["pt2"].layer("model.encoder.layer.1").kind == reduction.TOKENS


@pytest.mark.parametrize("how", ["mean", "first", "last", "tokens"])
def test_the_same_bert_three_ways_gives_the_same_activations_and_heatmap(bert, how):
    examples = own.builtin_sentences(40)
    runs = {fmt: own.represent(model, examples, BERT_LAYERS[fmt], how, batch_size=16) for fmt, model in bert.items()}
    reference = _stacked(runs["hf"])
    for fmt in ("onnx", "pt2"):
        assert np.array_equal(runs[fmt].example_of_row, runs["hf"].example_of_row)
        for got, want in zip(_stacked(runs[fmt]), reference):
            assert np.abs(got - want).max() <= TOL * max(1.0, np.abs(want).max()), (fmt, how)
        # (with 'first' the embeddings layer is the same [CLS] vector for every text: constant, NaN)
        np.testing.assert_allclose(cka_matrix_or_nan(_stacked(runs[fmt]), debiased=True),
                                   cka_matrix_or_nan(reference, debiased=True), atol=TOL)


@pytest.mark.parametrize("how", ["avg_pool", "flatten", "positions"])
def test_the_same_resnet_three_ways_gives_the_same_activations(resnet, how):
    pixels = np.random.default_rng(0).random((10, 3, 32, 32)).astype(np.float32)
    examples = own.Examples(own.ARRAY, arrays={"pixel_values": pixels})
    # every position as a row needs layers with the same number of positions: the two 8 x 8 ones
    chosen = {fmt: names[:2] if how == "positions" else names for fmt, names in RESNET_LAYERS.items()}
    runs = {fmt: own.represent(model, examples, chosen[fmt], how, batch_size=4) for fmt, model in resnet.items()}
    for fmt in ("onnx", "pt2"):
        for got, want in zip(_stacked(runs[fmt]), _stacked(runs["hf"])):
            assert got.shape == want.shape and np.abs(got - want).max() <= TOL * max(1.0, np.abs(want).max())
    rows = runs["hf"].example_of_row
    assert rows.size == (10 * 8 * 8 if how == "positions" else 10)
    if how == "positions":
        with pytest.raises(RepresentationError, match="different numbers of rows per example"):
            own.represent(resnet["hf"], examples, RESNET_LAYERS["hf"], how)


def test_images_go_through_the_models_own_processor(resnet):
    files = mf.images(6)
    examples = own.read_images(files)
    processed = resnet["hf"].processor(images=list(examples.images), return_tensors="np")["pixel_values"]
    via_images = own.represent(resnet["hf"], examples, RESNET_LAYERS["hf"], "avg_pool")
    via_arrays = own.represent(resnet["onnx"], own.Examples(own.ARRAY, arrays={"pixel_values": processed}),
                               RESNET_LAYERS["onnx"], "avg_pool")
    for got, want in zip(_stacked(via_arrays), _stacked(via_images)):
        np.testing.assert_allclose(got, want, atol=TOL)
    assert examples.images[0].shape == (24, 40, 3)  # sorted by name, decoded as RGB


def test_a_model_compared_with_itself_has_a_diagonal_of_one(bert):
    reps = own.represent(bert["pt2"], own.builtin_sentences(30), BERT_LAYERS["pt2"], "mean")
    values = cka_matrix(reps.layers, reps.layers)
    np.testing.assert_allclose(np.diag(values), 1.0, atol=1e-10)


def test_a_batch_size_changes_nothing(bert):
    examples = own.builtin_sentences(25)
    one = own.represent(bert["onnx"], examples, BERT_LAYERS["onnx"], "mean", batch_size=25)
    many = own.represent(bert["onnx"], examples, BERT_LAYERS["onnx"], "mean", batch_size=4)
    for a, b in zip(_stacked(one), _stacked(many)):
        np.testing.assert_allclose(a, b, atol=1e-5)  # only the padding length differs between batches


def test_several_reductions_from_one_pass_are_each_the_single_pass(bert):
    examples = own.builtin_sentences(12)
    together = own.represent_all(bert["hf"], examples, BERT_LAYERS["hf"], ("mean", "last", "tokens"))
    for how, reps in together.items():
        alone = own.represent(bert["hf"], examples, BERT_LAYERS["hf"], how)
        for a, b in zip(_stacked(reps), _stacked(alone)):
            np.testing.assert_array_equal(a, b)


def test_progress_is_reported_and_a_stop_ends_the_run(bert):
    seen = []
    own.represent(bert["hf"], own.builtin_sentences(20), ("hidden_states.1",), "mean", batch_size=8,
                  progress=lambda done, total, seconds: seen.append((done, total)))
    assert seen == [(8, 20), (16, 20), (20, 20)]
    calls = iter([False, True])
    with pytest.raises(own.Stopped, match="stopped after 8 of 20"):
        own.represent(bert["hf"], own.builtin_sentences(20), ("hidden_states.1",), "mean", batch_size=8,
                      should_stop=lambda: next(calls))


# ------------------------------------------------------------------------------- reductions
def _reference_reduce(values: np.ndarray, how: str, mask: np.ndarray) -> np.ndarray:
    """The definitions, one example and one token at a time."""
    rows = []
    for i in range(values.shape[0]):
        real = [t for t in range(values.shape[1]) if mask[i, t]]
        if how == "mean":
            rows.append(sum(values[i, t] for t in real) / len(real))
        elif how == "first":
            rows.append(values[i, 0])
        elif how == "last":
            rows.append(values[i, real[-1]])
        else:
            rows.extend(values[i, t] for t in real)
    return np.array(rows)


@settings(max_examples=60, deadline=None)
@given(data=st.data(), how=st.sampled_from(["mean", "first", "last", "tokens"]))
def test_token_reductions_follow_their_definition(data, how):
    n, t, d = data.draw(st.integers(1, 5)), data.draw(st.integers(1, 6)), data.draw(st.integers(1, 4))
    values = data.draw(hnp.arrays(np.float64, (n, t, d), elements=st.floats(-10, 10)))
    lengths = data.draw(st.lists(st.integers(1, t), min_size=n, max_size=n))
    mask = np.array([[1] * k + [0] * (t - k) for k in lengths])
    np.testing.assert_allclose(reduction.reduce(values, how, mask), _reference_reduce(values, how, mask), atol=1e-12)
    assert reduction.rows_per_example(how, values.shape, mask).sum() == reduction.reduce(values, how, mask).shape[0]


@settings(max_examples=40, deadline=None)
@given(values=hnp.arrays(np.float64, hnp.array_shapes(min_dims=4, max_dims=4, max_side=4),
                         elements=st.floats(-10, 10)))
def test_map_reductions_follow_their_definition(values):
    n, c, h, w = values.shape
    np.testing.assert_array_equal(reduction.reduce(values, "flatten"), values.reshape(n, -1))
    np.testing.assert_allclose(reduction.reduce(values, "avg_pool"),
                               [[values[i, k].mean() for k in range(c)] for i in range(n)], atol=1e-12)
    positions = reduction.reduce(values, "positions")
    assert positions.shape == (n * h * w, c)
    np.testing.assert_array_equal(positions[(1 % n) * h * w + (h - 1) * w + (w - 1)], values[1 % n, :, h - 1, w - 1])


def test_a_reduction_that_does_not_apply_is_refused_with_the_ones_that_do():
    with pytest.raises(RepresentationError, match="'avg_pool' does not apply.*mean, first, last, tokens"):
        reduction.reduce(np.zeros((2, 3, 4)), "avg_pool")
    with pytest.raises(RepresentationError, match="unknown reduction 'median'"):
        reduction.reduce(np.zeros((2, 3, 4)), "median")


# ------------------------------------------------------------------------------- inputs
def test_text_inputs_from_txt_and_csv_and_their_digest(tmp_path):
    examples = own.read_inputs(b"first line\n\nsecond line\n", "a.txt")
    assert examples.texts == ("first line", "second line") and examples.kind == own.TEXT
    csv_examples = own.read_inputs(b"id,text,label\n1,first line,0\n2,second line,1\n", "a.csv")
    assert csv_examples.texts == examples.texts and csv_examples.labels.tolist() == [0, 1]
    assert csv_examples.digest == examples.digest  # the same texts in the same order
    swapped = own.read_inputs(b"second line\nfirst line\n", "b.txt")
    assert swapped.digest != examples.digest
    with pytest.raises(RepresentationError, match="not UTF-8"):
        own.read_inputs(b"\xff\xfe\x00bad", "c.txt")
    with pytest.raises(RepresentationError, match="whole numbers"):
        own.read_inputs(b"text,label\nhello,cat\n", "d.csv")
    assert own.read_inputs("builtin:sentences:30").texts == own.builtin_sentences(30).texts


def test_image_and_array_inputs_are_checked():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in mf.images(3):
            archive.writestr(f"pictures/{name}", data)
        archive.writestr("notes.txt", "not an image")
    examples = own.read_inputs(buffer.getvalue(), "pictures.zip")
    assert len(examples) == 3 and examples.kind == own.IMAGE
    with pytest.raises(RepresentationError, match="not a readable PNG or JPEG"):
        own.read_images([("broken.png", b"\x89PNG not really")])
    arrays = io.BytesIO()
    np.savez(arrays, input_ids=np.zeros((4, 5), np.int64), attention_mask=np.ones((3, 5), np.int64))
    with pytest.raises(RepresentationError, match="different numbers of examples"):
        own.read_inputs(arrays.getvalue(), "inputs.npz")


# ------------------------------------------------------------------------------- refused files
def _bert_zip(**changes) -> bytes:
    """The tiny BERT's directory zipped, with files replaced (None deletes)."""
    directory = mf.bert_directory()
    files = {p.name: p.read_bytes() for p in directory.iterdir()}
    files.update(changes)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in files.items():
            if data is not None:
                archive.writestr(f"bert/{name}", data)
    return buffer.getvalue()


class _Payload:
    """A pickle that would create a file when loaded: it must never be loaded."""

    marker = Path("/tmp/cka_models_pickle_ran")

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _malicious_pickle() -> bytes:
    _Payload.marker.unlink(missing_ok=True)
    return pickle.dumps(_Payload())


def test_a_zip_holding_a_pickle_instead_of_safetensors_is_refused_unloaded():
    data = _bert_zip(**{"model.safetensors": None, "pytorch_model.bin": _malicious_pickle()})
    with pytest.raises(RepresentationError, match="no model.safetensors.*pytorch_model.bin is a pickle"):
        own.load_model(data, "bert.zip")
    assert not _Payload.marker.exists()


def test_a_config_that_asks_for_remote_code_is_refused():
    config = json.loads((mf.bert_directory() / "config.json").read_text())
    config["auto_map"] = {"AutoModel": "modeling_evil.EvilModel"}
    data = _bert_zip(**{"config.json": json.dumps(config).encode(), "modeling_evil.py": b"raise SystemExit"})
    with pytest.raises(RepresentationError, match="asks for remote code"):
        own.load_model(data, "bert.zip")


def test_a_zip_member_that_leaves_the_archive_is_refused(tmp_path):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("../escaped.txt", "x")
    with pytest.raises(RepresentationError, match="points outside the archive"):
        own.load_model(buffer.getvalue(), "evil.zip")
    with pytest.raises(RepresentationError, match="not a readable .zip"):
        own.load_model(b"PK\x03\x04 truncated", "broken.zip")


def test_a_truncated_or_wrong_onnx_file_is_refused():
    data = mf.onnx_bytes(mf.bert_directory())
    with pytest.raises(RepresentationError, match="not a readable ONNX model|not an ONNX model with a graph"):
        own.load_model(data[: len(data) // 3], "half.onnx")
    with pytest.raises(RepresentationError, match="not a readable ONNX model|not an ONNX model with a graph"):
        own.load_model(b"definitely not protobuf \xff" * 10, "text.onnx")


def _onnx_with(node_change) -> bytes:
    import onnx

    model = onnx.load_model_from_string(mf.onnx_bytes(mf.resnet_directory()))
    node_change(model)
    return model.SerializeToString()


def test_an_onnx_graph_with_a_custom_operator_is_refused():
    def custom(model):
        model.graph.node[3].domain = "com.evil.ops"

    with pytest.raises(RepresentationError, match="custom operator .* domain 'com.evil.ops'"):
        own.load_model(_onnx_with(custom), "custom.onnx")


def test_an_onnx_graph_with_weights_in_external_files_is_refused():
    import onnx

    def external(model):
        tensor = model.graph.initializer[0]
        tensor.data_location = onnx.TensorProto.EXTERNAL
        entry = tensor.external_data.add()
        entry.key, entry.value = "location", "../../etc/passwd"

    with pytest.raises(RepresentationError, match="external files"):
        own.load_model(_onnx_with(external), "external.onnx")


def _pt2_with(edit) -> bytes:
    """The tiny ResNet's .pt2 with its members edited: edit(name -> bytes) returns the new members."""
    source = zipfile.ZipFile(io.BytesIO(mf.pt2_bytes(mf.resnet_directory())))
    members = {info.filename: source.read(info) for info in source.infolist()}
    members = edit(members)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _program_edit(change):
    def edit(members):
        name = next(n for n in members if n.endswith("models/model.json"))
        program = json.loads(members[name])
        change(program)
        members[name] = json.dumps(program).encode()
        return members
    return edit


def _pt2_cases():
    def pickled_weight(members):
        name = next(n for n in members if n.endswith("model_weights_config.json"))
        config = json.loads(members[name])
        first = next(iter(config["config"]))
        config["config"][first]["use_pickle"] = True
        members[name] = json.dumps(config).encode()
        return members

    def aoti(members):
        prefix = next(iter(members)).split("/")[0]
        members[f"{prefix}/data/aotinductor/model/model.so"] = b"\x7fELF"
        return members

    def bad_sample_inputs(members):
        name = next(n for n in members if n.endswith("sample_inputs/model.pt"))
        members[name] = _malicious_pickle()
        return members

    def os_target(program):
        program["graph_module"]["graph"]["nodes"][0]["target"] = "torch.os.system"

    def guard(program):
        program["guards_code"] = ["__import__('os').system('touch /tmp/cka_models_pickle_ran')"]

    def sympy_eval(program):
        program["range_constraints"] = {"s0": {"min_val": 0, "max_val": 10}}
        program["graph_module"]["graph"]["sym_int_values"] = {
            "s0": {"as_expr": {"expr_str": "__import__('os').system('touch /tmp/cka_models_pickle_ran')"}}}

    return {
        "not a zip": (lambda m: m, b"plainly not a zip archive"),
        "pickled weight": (pickled_weight, None),
        "compiled library": (aoti, None),
        "pickled example inputs": (bad_sample_inputs, None),
        "operator outside aten": (_program_edit(os_target), None),
        "guard code": (_program_edit(guard), None),
        "symbolic expression": (_program_edit(sympy_eval), None),
    }


@pytest.mark.parametrize("case", list(_pt2_cases()))
def test_a_pt2_that_would_run_code_or_will_not_load_is_refused_before_torch_loads_it(case, monkeypatch):
    edit, raw = _pt2_cases()[case]
    data = raw if raw is not None else _pt2_with(edit)
    _Payload.marker.unlink(missing_ok=True)
    monkeypatch.setattr(torch.export, "load", lambda *a, **k: pytest.fail("torch.export.load was reached"))
    with pytest.raises(RepresentationError, match="refused|not a torch.export archive"):
        own.load_model(data, f"{case}.pt2")
    assert not _Payload.marker.exists()


def test_the_checks_accept_what_torch_export_writes():
    exported.check_archive(mf.pt2_bytes(mf.bert_directory()), "bert.pt2")  # guards and symbolic shapes included
    assert exported._safe_guard("L['attention_mask'].size()[1] == L['input_ids'].size()[1]")
    assert not exported._safe_guard("L['x'].size()[0] == __import__('os').getpid()")
    assert exported._safe_expression("Mul(Integer(32), Symbol('s53', positive=True, integer=True))")
    assert not exported._safe_expression("Symbol('s0').__class__")
    assert not exported._safe_expression("Integer(eval('1'))")


def test_a_hub_id_is_refused_unless_the_hub_is_allowed():
    with pytest.raises(RepresentationError, match="Hub ids are off here"):
        own.load_model("bert-base-uncased", allow_hub=False)


def test_a_model_that_does_not_match_its_inputs_says_so(bert, resnet):
    with pytest.raises(RepresentationError, match="reads texts, not images"):
        own.represent(bert["hf"], own.read_images(mf.images(2)), BERT_LAYERS["hf"], "mean")
    onnx_without_tokenizer = own.load_model(mf.onnx_bytes(mf.bert_directory()), "bert.onnx")
    with pytest.raises(RepresentationError, match="give its tokenizer.json"):
        own.represent(onnx_without_tokenizer, own.builtin_sentences(4), BERT_LAYERS["onnx"], "mean")
    with pytest.raises(RepresentationError, match="has no layer 'encoder.nope'"):
        own.represent(resnet["pt2"], own.read_images(mf.images(2)), ("encoder.nope",), "avg_pool")
