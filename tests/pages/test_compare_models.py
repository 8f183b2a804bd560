"""Compare with your own models (AppTest): model files uploaded on both sides, the inputs both read,
the reduction and its effect, the pairing check, the export, the sidebar picking the loaded model,
and bad files refused with the page still usable."""
from __future__ import annotations

import base64
import json
import time

import numpy as np
import pytest

from cka_core import cka_matrix
from cka_core import models as own
from tests import model_files as mf
from tests.files import npz_bytes

from .apptest import metric, open_page, rerun

PAGE = "pages/compare.py"
MIME = "application/octet-stream"
SENTENCES = 40


def _chart(at, key: str) -> dict:
    for chart in at.get("plotly_chart"):
        if chart.proto.id.endswith(key):
            return json.loads(chart.proto.spec)
    raise AssertionError(f"no chart {key!r}; have {[c.proto.id for c in at.get('plotly_chart')]}")


def _z(trace) -> np.ndarray:
    z = trace["z"]
    if isinstance(z, dict):  # plotly's typed-array encoding
        return np.frombuffer(base64.b64decode(z["bdata"]), z["dtype"]).astype(float)
    return np.asarray(z, dtype=float)


def _heatmap(at) -> tuple[np.ndarray, list, list]:
    trace = next(t for t in _chart(at, "cmp_heatmap")["data"] if t["type"] == "heatmap")
    return _z(trace).reshape(len(trace["y"]), len(trace["x"])), list(trace["y"]), list(trace["x"])


@pytest.fixture(scope="module")
def models_at(downloads):
    directory = mf.bert_directory()
    at = open_page(PAGE, {"cmp_a_kind": "Your model", "cmp_b_kind": "Your model", "cmp_inputs_count": str(SENTENCES)})
    at.file_uploader(key="cmp_a_model_files").set_value(("bert.zip", mf.zipped(directory), MIME))
    at.file_uploader(key="cmp_b_model_files").set_value([("bert.onnx", mf.onnx_bytes(directory), MIME),
                                                         ("tokenizer.json", mf.tokenizer_json(directory), MIME)])
    return rerun(at)


def test_one_network_uploaded_as_a_directory_and_as_onnx_compares_as_itself(models_at):
    at = models_at
    assert not at.error, [e.value for e in at.error]
    values, rows, cols = _heatmap(at)
    assert rows == ["hidden_states.0", "hidden_states.1", "hidden_states.2"]
    assert cols == ["model.embeddings", "model.encoder.layer.0", "model.encoder.layer.1"]
    reps = own.represent(own.load_model(mf.bert_directory()), own.builtin_sentences(SENTENCES),
                         rows, "mean")
    np.testing.assert_allclose(values, cka_matrix(reps.layers), atol=1e-5)
    assert metric(at, "Examples") == SENTENCES
    lines = [m.value for m in at.markdown if "**Same inputs**" in m.value]
    assert lines and f"same {SENTENCES} examples" in lines[0] and "check_circle" in lines[0]


def test_the_effect_of_the_reduction_is_shown_for_every_one_that_applies(models_at):
    at = models_at
    spec = _chart(at, "cmp_reductions")
    titles = " ".join(a["text"] for a in spec["layout"]["annotations"])
    for label in ("Mean over tokens", "First token (CLS)", "Last token", "Every token as a row"):
        assert label in titles
    table = next(d.value for d in at.dataframe if "reduction" in d.value.columns)
    assert table["reduction"].tolist() == ["Mean over tokens", "First token (CLS)", "Last token", "Every token as a row"]
    assert table["max |Δ| vs chosen"].iloc[0] == 0.0 and table["max |Δ| vs chosen"].iloc[2] > 0.0
    assert "constant" in table["note"].iloc[1]  # the [CLS] embedding is the same vector for every text


def test_a_reduction_with_dependent_rows_warns_about_the_resampling(models_at):
    at = rerun(models_at.radio(key="cmp_reduction").set_value("Every token as a row"))
    assert any("not independent examples" in w.value for w in at.warning)
    assert metric(at, "Examples") > SENTENCES  # one row per real token
    rerun(at.radio(key="cmp_reduction").set_value("Mean over tokens"))


def test_the_export_records_the_models_the_inputs_and_the_reduction(models_at, downloads):
    at = models_at
    button = next(b for b in at.get("download_button") if b.proto.id.endswith("cmp_json"))
    doc = json.loads(downloads[button.proto.url])
    assert doc["source_a"]["format"] == "huggingface" and doc["source_b"]["format"] == "onnx"
    assert len(doc["source_a"]["sha256"]) == 64
    assert doc["source_a"]["inputs"]["sha256"] == own.builtin_sentences(SENTENCES).digest
    assert doc["source_b"]["reduction"] == "mean"


def test_the_loaded_model_can_be_picked_in_the_sidebar_for_the_pitfall_pages(models_at):
    at = models_at
    name = "bert (huggingface)"
    assert name in at.selectbox(key="src_model").options
    at.switch_page("pages/outliers.py")
    at.selectbox(key="src_model").set_value(name)
    at = rerun(at)
    assert not at.error, [e.value for e in at.error]
    assert any(f"{name} · hidden_states.0" in c.value and f"{SENTENCES} examples" in c.value for c in at.caption)
    assert "Null space of the next layer" not in at.selectbox(key="out_direction").options
    assert 0.0 <= metric(at, "Linear CKA") <= 1.0
    assert next(m for m in at.metric if m.label.startswith("Network accuracy")).value == "—"
    at.switch_page(PAGE)
    rerun(at)


@pytest.mark.parametrize(("files", "message"), [
    ([("weights.pt2", b"not a zip", MIME)], "'weights.pt2' is refused: it is not a readable .zip archive"),
    ([("model.zip", mf.zipped(mf.bert_directory())[:200], MIME)], "not a readable .zip"),
    ([("a.onnx", b"x", MIME), ("b.onnx", b"y", MIME)], "upload one model file"),
])
def test_a_bad_model_file_is_a_clear_error_and_the_page_keeps_working(files, message):
    at = open_page(PAGE, {"cmp_a_kind": "Your model"})
    at = rerun(at.file_uploader(key="cmp_a_model_files").set_value(files))
    assert any(message in e.value for e in at.error), [e.value for e in at.error]
    assert not at.exception
    at = rerun(at.radio(key="cmp_a_kind").set_value("Sample model"))
    assert not at.error and metric(at, "Examples") == 359


def test_a_state_dict_uploaded_as_activations_is_refused():
    import sample_models

    state = {k: v.numpy() for k, v in sample_models.load("mlp_seed0").state_dict().items()}
    at = open_page(PAGE, {"cmp_a_kind": "Upload files"})
    at = rerun(at.file_uploader(key="cmp_a_upload").set_value(("weights.npz", npz_bytes(**state), MIME)))
    assert any("looks like a model's weights" in e.value for e in at.error), [e.value for e in at.error]


def test_inputs_that_make_every_layer_constant_are_an_error_that_says_so():
    # numbers are not in the word tokenizer's vocabulary: every text becomes the same tokens
    texts = "\n".join(f"the old fisherman carried {k} boxes" for k in range(20)).encode()
    at = open_page(PAGE, {"cmp_a_kind": "Your model"})
    at = rerun(at.file_uploader(key="cmp_a_model_files").set_value(("bert.zip", mf.zipped(mf.bert_directory()), MIME)))
    at = rerun(at.radio(key="cmp_inputs_source").set_value("Upload inputs"))
    at = rerun(at.file_uploader(key="cmp_inputs_files").set_value(("numbers.txt", texts, MIME)))
    assert any("Every layer of side A is constant across these inputs" in e.value for e in at.error)
    assert not at.exception


def test_models_named_at_launch_are_offered_and_hub_ids_only_where_allowed(monkeypatch):
    import ui.sources.own_models

    directory = mf.bert_directory()
    monkeypatch.setattr(ui.sources.own_models, "launch_models", lambda: [directory])
    monkeypatch.delenv("CKA_ALLOW_HUB", raising=False)
    at = open_page(PAGE, {"cmp_a_kind": "Your model", "cmp_b_kind": "Your model"})
    assert at.radio(key="cmp_a_model_source").options == ["Upload", "Launch model"]  # no Hub id by default
    at.radio(key="cmp_a_model_source").set_value("Launch model")
    at.radio(key="cmp_b_model_source").set_value("Launch model")
    at = rerun(at)
    assert not at.error, [e.value for e in at.error]
    values, rows, cols = _heatmap(at)
    np.testing.assert_allclose(np.diag(values), 1.0, atol=1e-9)  # the same model on both sides
    monkeypatch.setenv("CKA_ALLOW_HUB", "1")
    at = rerun(at)
    assert "Hub id" in at.radio(key="cmp_a_model_source").options


def _slow_loads(monkeypatch, seconds: float):
    """Every model load takes ``seconds`` longer; returns the list of loads that finished."""
    import ui.sources.own_models

    finished, real = [], own.load_model

    def slow(*args, **kwargs):
        time.sleep(seconds)
        model = real(*args, **kwargs)
        finished.append(model)
        return model

    monkeypatch.setattr(ui.sources.own_models.own, "load_model", slow)
    return finished


def test_a_slow_load_shows_its_time_and_a_stop_that_keeps_nothing(monkeypatch):
    """While a model loads, the side shows the time so far and Stop; Stop ends the wait at once and
    kills the load's worker process, nothing is kept, and 'Load it again' loads it."""
    import ui.jobs
    import ui.sources.own_models

    _slow_loads(monkeypatch, 1.5)
    monkeypatch.setattr(ui.jobs, "FOLLOW_SECONDS", 0)  # a click restarts the script while it loads
    at = open_page(PAGE, {"cmp_a_kind": "Your model"})
    at = rerun(at.file_uploader(key="cmp_a_model_files").set_value(("bert.zip", mf.zipped(mf.bert_directory()), MIME)))
    assert any("Loading bert.zip" in c.value for c in at.caption)
    job = at.session_state[ui.sources.own_models.LOADS_STATE]["A"]
    at = rerun(at.button(key="own_stop_load_a").click())
    assert any("Stopped loading bert.zip; nothing was kept" in w.value for w in at.warning)
    job.thread.join(timeout=30)
    assert not job.thread.is_alive() and not job.worker.alive  # the worker was killed, so the load ended
    assert job.result is None
    at = rerun(at)  # the abandoned load has ended: still stopped, nothing kept
    assert any("Stopped loading" in w.value for w in at.warning)
    assert not at.session_state[ui.sources.own_models.LOADED_MODELS]
    monkeypatch.setattr(ui.jobs, "FOLLOW_SECONDS", None)
    at = rerun(at.button(key="own_load_again_a").click())
    assert not at.warning and not any("load" in e.value.lower() for e in at.error)
    assert any("**bert** — huggingface" in c.value for c in at.caption)


def test_loads_of_all_sessions_take_turns_and_a_waiting_load_says_so(monkeypatch):
    """Model loads are bounded per server (each in a process of its own): a load that finds every turn taken
    waits without starting a process, says its place, and loads once a turn is free; Stop there keeps nothing."""
    import ui.jobs
    import ui.sources.own_models as own_models

    turns = ui.jobs.Slots(1)
    monkeypatch.setattr(own_models, "LOAD_TURNS", turns)
    monkeypatch.setattr(ui.jobs, "FOLLOW_SECONDS", 0)
    assert turns.acquire()  # another session's load holds the one turn
    at = open_page(PAGE, {"cmp_a_kind": "Your model"})
    at = rerun(at.file_uploader(key="cmp_a_model_files").set_value(("bert.zip", mf.zipped(mf.bert_directory()), MIME)))
    job = at.session_state[own_models.LOADS_STATE]["A"]
    deadline = time.perf_counter() + 30
    while job.waiting is None and time.perf_counter() < deadline:
        time.sleep(0.05)
    at = rerun(at)
    assert any("Waiting for the server's model loader: next in line" in c.value for c in at.caption)
    assert job.worker is None and job.running  # no process while it waits
    turns.release()
    monkeypatch.setattr(ui.jobs, "FOLLOW_SECONDS", None)
    at = rerun(at)
    assert job.result is not None and any("**bert** — huggingface" in c.value for c in at.caption)
    assert turns.acquire(blocking=False)  # the load gave its turn back
    turns.release()


def test_a_click_elsewhere_while_loading_does_not_restart_the_load(monkeypatch):
    import ui.jobs
    import ui.sources.own_models

    finished = _slow_loads(monkeypatch, 1.0)
    monkeypatch.setattr(ui.jobs, "FOLLOW_SECONDS", 0)
    at = open_page(PAGE, {"cmp_a_kind": "Your model"})
    at = rerun(at.file_uploader(key="cmp_a_model_files").set_value(("bert.zip", mf.zipped(mf.bert_directory()), MIME)))
    job = at.session_state[ui.sources.own_models.LOADS_STATE]["A"]
    at = rerun(at.radio(key="cmp_b_kind").set_value("Upload files"))  # a click elsewhere mid-load
    assert at.session_state[ui.sources.own_models.LOADS_STATE]["A"] is job  # the same load, not a new one
    monkeypatch.setattr(ui.jobs, "FOLLOW_SECONDS", None)
    at = rerun(at)
    assert len(finished) == 1 and not at.error
    assert any("**bert** — huggingface" in c.value for c in at.caption)
