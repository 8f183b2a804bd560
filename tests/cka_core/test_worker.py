"""The worker process a model runs in: the same values as in-process, nothing but JSON and plain
arrays cross back, a clock and a memory limit that end what a file hides, Stop, and no orphans."""
from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from cka_core import RepresentationError, models
from cka_core.models import worker
from tests import model_files as mf

SENTENCES = 24


def _onnx_with_input_driven(op: str) -> bytes:
    """A graph that reads a number from its input: a Loop running that many trips, or a
    ConstantOfShape of that many floats. Its shapes are all known-small to a static check."""
    import onnx
    from onnx import TensorProto as T
    from onnx import helper as h

    count = [h.make_node("ReduceMax", ["x"], ["top"], keepdims=0), h.make_node("Cast", ["top"], ["n"], to=T.INT64)]
    if op == "loop":
        body = h.make_graph(
            [h.make_node("Identity", ["v_in"], ["v_out"]), h.make_node("Identity", ["cond_in"], ["cond_out"])], "body",
            [h.make_tensor_value_info("i", T.INT64, []), h.make_tensor_value_info("cond_in", T.BOOL, []),
             h.make_tensor_value_info("v_in", T.FLOAT, ["N", 4])],
            [h.make_tensor_value_info("cond_out", T.BOOL, []), h.make_tensor_value_info("v_out", T.FLOAT, ["N", 4])])
        nodes = count + [h.make_node("Constant", [], ["yes"], value=h.make_tensor("yes", T.BOOL, [], [True])),
                         h.make_node("Loop", ["n", "yes", "x"], ["hidden"], body=body)]
        initializers = []
    else:
        nodes = count + [h.make_node("Unsqueeze", ["n", "axis"], ["shape"]),
                         h.make_node("ConstantOfShape", ["shape"], ["z"], value=h.make_tensor("one", T.FLOAT, [1], [1.0])),
                         h.make_node("ReduceSum", ["z"], ["total"], keepdims=1), h.make_node("Add", ["x", "total"], ["hidden"])]
        initializers = [h.make_tensor("axis", T.INT64, [1], [0])]
    nodes.append(h.make_node("Relu", ["hidden"], ["out"]))
    graph = h.make_graph(nodes, op, [h.make_tensor_value_info("x", T.FLOAT, ["N", 4])],
                         [h.make_tensor_value_info("out", T.FLOAT, ["N", 4])], initializer=initializers)
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def _arrays(value: float, n: int = 4) -> models.Examples:
    return models.Examples(models.ARRAY, arrays={"x": np.full((n, 4), value, np.float32)}, source="x")


@pytest.mark.parametrize("kind", ["huggingface", "onnx", "pt2"])
def test_isolated_models_give_the_in_process_values(kind):
    directory = mf.bert_directory()
    if kind == "huggingface":
        data, name, tokenizer = directory, directory.name, None
    else:
        data = mf.onnx_bytes(directory) if kind == "onnx" else mf.pt2_bytes(directory)
        name, tokenizer = f"bert.{kind}", mf.tokenizer_json(directory)
    local = models.load_model(data, name, tokenizer=tokenizer)
    isolated = models.load_model(data, name, tokenizer=tokenizer, isolated=True)
    try:
        assert (isolated.name, isolated.format, isolated.digest, isolated.input_kind) == (
            local.name, local.format, local.digest, local.input_kind)
        assert isolated.layers == local.layers and isolated.default_layers == local.default_layers
        examples = models.builtin_sentences(SENTENCES)
        layers = local.default_layers[:3]
        for how in ("mean", "tokens"):
            a = models.represent(local, examples, layers, how, batch_size=8)
            b = models.represent(isolated, examples, layers, how, batch_size=8)
            np.testing.assert_array_equal(a.example_of_row, b.example_of_row)
            for name in layers:
                np.testing.assert_array_equal(a.layers[name], b.layers[name])
    finally:
        isolated.close()
    assert not isolated.worker.alive


def test_the_worker_caps_its_address_space(monkeypatch):
    monkeypatch.setenv("CKA_MODEL_MEMORY_MB", "512")
    model = models.load_model(_onnx_with_input_driven("memory"), "memory.onnx", isolated=True)
    try:
        limits = open(f"/proc/{model.worker.process.pid}/limits").read()
        line = next(l for l in limits.splitlines() if l.startswith("Max address space"))
        limit = int(line.split()[3])
        status = open(f"/proc/{model.worker.process.pid}/status").read()
        size = int(next(l for l in status.splitlines() if l.startswith("VmSize")).split()[1]) * 1024
        assert 512 * 2**20 < limit - 0 and limit < size + 600 * 2**20  # start-up + the cap, not unlimited
        assert models.represent(model, _arrays(3.0), ("out",), "flatten").layers["out"].shape == (4, 4)
        with pytest.raises(RepresentationError, match="memory|allocate"):
            models.represent(model, _arrays(1e10), ("out",), "flatten")  # 40 GB of ones
    finally:
        model.close()


def test_a_forward_pass_past_its_clock_is_stopped_with_a_clear_message(monkeypatch):
    monkeypatch.setenv("CKA_MODEL_FORWARD_SECONDS", "3")
    model = models.load_model(_onnx_with_input_driven("loop"), "loop.onnx", isolated=True)
    try:
        assert models.represent(model, _arrays(5.0), ("out",), "flatten").layers["out"].shape == (4, 4)
        started = time.perf_counter()
        with pytest.raises(RepresentationError, match=r"more than 3 s.*too slow.*CKA_MODEL_FORWARD_SECONDS"):
            models.represent(model, _arrays(1e12), ("out",), "flatten")
        assert time.perf_counter() - started < 15
        assert not model.worker.alive  # killed, not left spinning
        with pytest.raises(RepresentationError, match="ended; load the model again"):
            models.represent(model, _arrays(5.0), ("out",), "flatten")
    finally:
        model.close()


def test_kill_stops_a_load_that_is_running():
    started = worker.Worker(threads=1)
    import threading

    errors = []

    def load():
        try:
            models.load_model(mf.bert_directory(), isolated=True, worker=started)
        except RepresentationError as error:
            errors.append(str(error))

    thread = threading.Thread(target=load)
    thread.start()
    time.sleep(0.5)
    started.kill()
    thread.join(timeout=20)
    assert not thread.is_alive() and errors and "stopped" in errors[0]


def test_a_reply_holding_a_pickle_is_refused():
    """Even a worker a file took over cannot send the server a pickle: replies are read with
    allow_pickle=False, and a refused reply ends the worker."""
    objects = np.empty(1, dtype=object)
    objects[0] = {"a": 1}
    packed = io.BytesIO()
    np.savez(packed, evil=objects, allow_pickle=True)
    head = b"{}"
    message = worker._LENGTH.pack(len(head)) + head + worker._LENGTH.pack(packed.tell()) + packed.getvalue()
    with pytest.raises(ValueError, match="allow_pickle"):
        worker.decode(message)


def test_messages_round_trip():
    header = {"op": "feed", "texts": ["a", "b"], "n": 3}
    arrays = {"x": np.arange(6, dtype=np.float32).reshape(2, 3), "m": np.ones((2, 5), np.int64)}
    got_header, got_arrays, blob = worker.decode(worker.encode(header, arrays, b"model bytes"))
    assert got_header == header and blob == b"model bytes"
    for name in arrays:
        np.testing.assert_array_equal(got_arrays[name], arrays[name])
    examples = models.Examples(models.IMAGE, images=(np.zeros((3, 4, 3), np.uint8), np.ones((2, 2, 3), np.uint8)))
    back = worker.examples_from(*worker.decode(worker.encode(*worker.examples_message(examples)))[:2])
    assert back.kind == models.IMAGE and all(np.array_equal(a, b) for a, b in zip(back.images, examples.images))


def test_the_worker_ends_with_its_parent(tmp_path):
    script = textwrap.dedent("""
        import sys
        from cka_core.models.worker import Worker
        w = Worker(threads=1)
        print(w.process.pid, flush=True)
        import os
        os._exit(0)   # no cleanup: as if the server were killed
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                         cwd=os.getcwd()).stdout
    pid = int(out.split()[0])
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    os.kill(pid, 9)
    pytest.fail("the worker outlived its parent")
