"""Compare page: the heatmap shows what the core computes, intervals and p-values come on a button
press, exports read back to the shown values, every bad upload is a clear st.error while the rest
of the page keeps working."""
from __future__ import annotations

import argparse
import base64
import csv
import io
import json

import numpy as np
import pandas as pd
import pytest
import torch
from streamlit import config as st_config

import sample_models
from cka_core import cka_matrix
from cka_core.stats import resampling as inference
from cka_core.cka.drilldown import pc_contributions
from cka_core.io.export import CELL_COLUMNS

from tests.files import npy_bytes as _npy, npz_bytes as _npz

from .apptest import metric, open_page, rerun, takeaway_text

PAGE = "pages/compare.py"
MIME = "application/octet-stream"


# --------------------------------------------------------------------------- helpers
def _array(value):
    if isinstance(value, dict) and "bdata" in value:
        flat = np.frombuffer(base64.b64decode(value["bdata"]), value["dtype"])
        shape = [int(s) for s in str(value.get("shape", flat.size)).split(",")]
        return flat.reshape(shape)
    return np.asarray(value)


def _chart(at, key: str) -> dict:
    for chart in at.get("plotly_chart"):
        if chart.proto.id.endswith(key):
            return json.loads(chart.proto.spec)
    raise AssertionError(f"no chart {key!r}")


def _heatmap(at, key: str = "cmp_heatmap"):
    trace = next(t for t in _chart(at, key)["data"] if t["type"] == "heatmap")
    return _array(trace["z"]).astype(float), list(trace["y"]), list(trace["x"]), trace


def _errors(at) -> list[str]:
    return [e.value for e in at.error]


def _lines(at, name: str) -> list[str]:
    return [m.value for m in at.markdown if f"**{name}" in m.value]


def _zoo(name: str) -> dict[str, np.ndarray]:
    data = sample_models.digits()
    from cka_core import capture

    acts = capture(sample_models.load(name), data.X_test, sample_models.layer_names(name))
    return {k: v.reshape(v.shape[0], -1).astype(np.float64) for k, v in acts.items()}


def _download(at, downloads, key: str) -> str:
    button = next(b for b in at.get("download_button") if b.proto.id.endswith(key))
    return downloads[button.proto.url].decode()


@pytest.fixture(scope="module")
def zoo_at(downloads):
    return open_page(PAGE)


# --------------------------------------------------------------------------- zoo models
def test_zoo_heatmap_is_the_core_matrix(zoo_at):
    at = zoo_at
    values, rows, cols, trace = _heatmap(at)
    a, b = _zoo("mlp_seed0"), _zoo("mlp_seed1")
    assert rows == list(a) and cols == list(b)
    np.testing.assert_allclose(values, cka_matrix(a, b), atol=1e-6)
    assert "A: %{y}" in trace["hovertemplate"] and "%{z:.4f}" in trace["hovertemplate"]
    assert metric(at, "Examples") == 359
    assert metric(at, "Best match") == pytest.approx(values.max(), abs=1e-4)
    assert not _errors(at)


def test_the_colour_scale_can_fit_the_values(zoo_at):
    """Regression: the scale was fixed at 0-1, so the zoo's 0.82-0.96 cells all looked alike."""
    at = zoo_at
    values, *_, trace = _heatmap(at)
    assert (trace["zmin"], trace["zmax"]) == (0.0, 1.0)
    at = rerun(at.toggle(key="cmp_fit_colours").set_value(True))
    values, *_, trace = _heatmap(at)
    assert (trace["zmin"], trace["zmax"]) == pytest.approx((values.min(), values.max()))
    assert values.min() > 0.8  # the case that needed it
    at = rerun(at.toggle(key="cmp_fit_colours").set_value(False))


def test_sanity_panel_passes_for_two_seeds(zoo_at):
    text = "\n".join(m.value for m in zoo_at.markdown)
    for name in ("Self-comparison diagonal", "Symmetry", "Sample pairing", "Width vs examples", "Random-init baseline"):
        assert any(name in line for line in _lines(zoo_at, name)), name
    assert ":red[" not in text and ":orange[" not in text  # no failure, no warning
    assert "mlp_untrained" in "\n".join(_lines(zoo_at, "Random-init baseline"))


@pytest.mark.parametrize(("measure", "higher", "model_a"), [
    ("Linear CKA", True, "mlp_seed0"), ("RSA (Spearman of RDMs)", True, "mlp_seed0"),
    ("Procrustes angle", False, "mlp_seed0"), ("Shape metric (partial whitening)", False, "mlp_seed0"),
    # A untrained: B is replaced by its untrained twin, A's own weights, so the baseline is as close as can be
    ("Linear CKA", True, "mlp_untrained"), ("Procrustes angle", False, "mlp_untrained")])
def test_takeaway_and_baseline_check_read_the_measure_direction(measure, higher, model_a):
    """Regression: for the Procrustes angle (a distance) the takeaway said the untrained twin "still reads
    0.86" against 0.26, as if as similar, and the best cell was the largest angle's opposite only by luck of
    wording. The best cell is the largest similarity or the smallest distance, and the untrained twin is
    worded as further away / less similar, or as close / as similar, from the shown numbers."""
    at = open_page(PAGE, {"cmp_measure": measure, "cmp_a_model": model_a})
    values, rows, cols, _ = _heatmap(at)
    baseline, *_ = _heatmap(at, "cmp_baseline")
    i, j = np.unravel_index(np.argmax(values) if higher else np.argmin(values), values.shape)
    text = takeaway_text(at)
    best, untrained = f"{values[i, j]:.2f}", f"{baseline[i, j]:.2f}"
    closest = "most similar to" if higher else "closest to"
    assert f"{rows[i]} {closest} mlp_seed1's {cols[j]} ({'' if higher else 'smallest distance, '}{best})" in text
    beats = values[i, j] > baseline[i, j] if higher else values[i, j] < baseline[i, j]
    if beats:
        assert text.endswith(f"is {'less similar' if higher else 'further away'}: {untrained} against {best}.")
    else:
        assert f"is {'as similar or more' if higher else 'as close or closer'}: {untrained} against {best}, so this " \
               "similarity comes from the inputs" in text
    line = "\n".join(_lines(at, "Random-init baseline"))
    k = int(np.sum(values > baseline + 1e-9) if higher else np.sum(values < baseline - 1e-9))
    assert f"{k} of {values.size} cells are {'more similar' if higher else 'closer'} than" in line
    assert f"{'most similar' if higher else 'closest'} cell {rows[i]} ↔ {cols[j]}: {values[i, j]:.3f} against " \
           f"{baseline[i, j]:.3f}" in line
    assert ("Even the" in line) == (not beats)
    assert not _errors(at)


def test_intervals_p_values_and_exports(zoo_at, downloads):
    at = zoo_at
    at.number_input(key="cmp_n_boot").set_value(40)
    at.number_input(key="cmp_n_perm").set_value(30)
    at = rerun(at)
    assert any("Not computed" in c.value for c in at.caption)
    rerun(at.button(key="cmp_run").click())
    shown, rows, cols, trace = _heatmap(at)
    custom = _array(trace["customdata"]).astype(float)  # low, high, p, null mean, null sd, adjusted p per cell
    assert custom.shape == (*shown.shape, 6)
    assert (custom[..., 0] <= shown + 1e-12).all() and (shown <= custom[..., 1] + 1e-12).all()
    assert np.allclose(custom[..., 2], 1 / 31)                  # trained layers: every cell beats all 30 shuffles
    assert metric_text(at, "Cells beyond chance") == f"{shown.size} of {shown.size}"
    assert any("✕" not in t for row in trace["text"] for t in row)

    doc = json.loads(_download(at, downloads, "cmp_json"))
    np.testing.assert_allclose(doc["values"], shown, atol=1e-12)
    np.testing.assert_allclose(doc["ci_low"], custom[..., 0], atol=1e-12)
    np.testing.assert_allclose(doc["p_values"], custom[..., 2], atol=1e-12)
    assert doc["layers_a"] == rows and doc["layers_b"] == cols
    assert doc["measure"] == "linear_cka" and doc["bootstrap"]["n_resamples"] == 40
    assert doc["permutations"]["n_permutations"] == 30 and doc["source_a"]["model"] == "mlp_seed0"

    text = _download(at, downloads, "cmp_csv")
    frame = pd.read_csv(io.StringIO(text))  # as is: the settings are in the JSON, not in comment lines
    assert tuple(frame.columns) == CELL_COLUMNS and len(frame) == shown.size
    table = list(csv.DictReader(io.StringIO(text)))
    np.testing.assert_allclose([float(r["value"]) for r in table], shown.ravel(), atol=1e-12)
    np.testing.assert_allclose([float(r["ci_high"]) for r in table], custom[..., 1].ravel(), atol=1e-12)

    # the same settings are served from the per-session store: no second run, button disabled
    at = rerun(at)
    assert at.button(key="cmp_run").disabled

    # Correcting for the 16 cells re-marks them without resampling. Every raw p is 1/31 (the floor of 30
    # shuffles): Holm multiplies the smallest by 16, so nothing can pass, and the page says how many
    # permutations it would take; Benjamini-Hochberg keeps every cell.
    at.selectbox(key="cmp_p_adjust").set_value("Holm (family-wise error rate)")
    at = rerun(at)
    assert at.button(key="cmp_run").disabled
    custom = _array(_heatmap(at)[3]["customdata"]).astype(float)
    np.testing.assert_allclose(custom[..., 5], 16 / 31)
    assert metric_text(at, "Cells beyond chance") == f"0 of {shown.size}"
    assert any("Use at least 319 permutations" in w.value for w in at.warning)
    doc = json.loads(_download(at, downloads, "cmp_json"))
    np.testing.assert_allclose(doc["p_values_adjusted"], 16 / 31)
    assert doc["permutations"]["p_adjustment"] == "Holm (family-wise error rate)" and all(map(all, doc["not_above_null"]))
    at.selectbox(key="cmp_p_adjust").set_value("Benjamini–Hochberg (false discovery rate)")
    at = rerun(at)
    np.testing.assert_allclose(_array(_heatmap(at)[3]["customdata"]).astype(float)[..., 5], 1 / 31)
    assert metric_text(at, "Cells beyond chance") == f"{shown.size} of {shown.size}" and not at.warning


def test_a_click_elsewhere_while_resampling_does_not_lose_the_run(monkeypatch):
    """Regression: any click restarted the script and with it the run; now the run is a job of its
    own and a later run of the page picks up its result."""
    import ui.compare.inference
    import ui.jobs

    monkeypatch.setattr(ui.jobs, "FOLLOW_SECONDS", 0.0)  # the click arrives while the job runs
    at = open_page(PAGE, {"cmp_n_boot": "60", "cmp_n_perm": "60", "cmp_seed": "3"})
    at = rerun(at.button(key="cmp_run").click())
    job = at.session_state[ui.compare.inference.JOB_KEY]
    assert at.button(key="cmp_run").disabled and at.button(key="cmp_stop")  # running, and it says so
    at = rerun(at.toggle(key="cmp_fit_colours").set_value(True))       # a click elsewhere
    at = rerun(at.selectbox(key="cmp_p_adjust").set_value("Benjamini–Hochberg (false discovery rate)"))
    job.thread.join(timeout=120)
    at = rerun(at)
    assert not job.running and job.result is not None
    values, _, _, trace = _heatmap(at)
    custom = _array(trace["customdata"]).astype(float)
    a, b = _zoo("mlp_seed0"), _zoo("mlp_seed1")
    boot = inference.bootstrap(a, b, measure="linear_cka", n_resamples=60, seed=3)
    np.testing.assert_allclose(custom[..., 0], boot.low, atol=1e-12)     # the job's numbers, same seed
    np.testing.assert_allclose(custom[..., 1], boot.high, atol=1e-12)
    assert at.button(key="cmp_run").disabled and metric_text(at, "Cells beyond chance").endswith("of 16")


def test_stop_ends_a_running_job_and_nothing_is_stored(monkeypatch):
    import ui.compare.inference
    import ui.jobs

    monkeypatch.setattr(ui.jobs, "FOLLOW_SECONDS", 0.0)
    at = open_page(PAGE, {"cmp_n_boot": "2000", "cmp_n_perm": "2000", "cmp_seed": "4"})
    at = rerun(at.button(key="cmp_run").click())
    job = at.session_state[ui.compare.inference.JOB_KEY]
    at = rerun(at.button(key="cmp_stop").click())
    job.thread.join(timeout=60)
    at = rerun(at)
    assert job.result is None and job.failure.startswith("Stopped (")
    assert any(w.value.startswith("Stopped (") and "nothing was stored" in w.value for w in at.warning)
    assert not at.button(key="cmp_run").disabled


def test_a_job_that_ends_in_the_middle_of_a_run_still_shows_its_outcome(monkeypatch):
    """Regression (seen in the load test after a Stop): the job was still running when the page
    collected at its top and ended before the page drew the run button; the page then showed
    neither the progress nor 'nothing was stored', only 'Not computed' (the job left uncollected)."""
    import ui.compare.inference
    import ui.jobs

    monkeypatch.setattr(ui.jobs, "FOLLOW_SECONDS", 0.0)
    at = open_page(PAGE, {"cmp_n_boot": "2000", "cmp_n_perm": "2000", "cmp_seed": "5"})
    at = rerun(at.button(key="cmp_run").click())
    job = at.session_state[ui.compare.inference.JOB_KEY]
    collect = ui.compare.inference.collect_job

    def collect_then_the_job_ends() -> None:
        collect()
        if job.running:   # still running when collected: it ends right after, within the same run
            job.stop()
            job.thread.join(timeout=60)

    monkeypatch.setattr(ui.compare.inference, "collect_job", collect_then_the_job_ends)
    assert job.running
    at = rerun(at.toggle(key="cmp_fit_colours").set_value(True))  # any click that reruns the page
    assert not job.running and ui.compare.inference.JOB_KEY not in at.session_state
    assert any(w.value.startswith("Stopped (") and "nothing was stored" in w.value for w in at.warning)
    assert not at.button(key="cmp_run").disabled


def test_a_run_past_the_time_limit_gives_up_cleanly(zoo_at, monkeypatch):
    import ui.compare.inference

    monkeypatch.setattr(ui.compare.inference, "TIME_LIMIT_S", 0.0)
    at = rerun(zoo_at.number_input(key="cmp_seed").set_value(1))
    at = rerun(at.button(key="cmp_run").click())
    assert any("Gave up after" in w.value and "nothing was stored" in w.value for w in at.warning)
    assert not at.button(key="cmp_run").disabled
    rerun(at.number_input(key="cmp_seed").set_value(0))


def metric_text(at, label: str) -> str:
    return next(m.value for m in at.metric if m.label.startswith(label))


def test_drilldown_decomposes_the_chosen_cell(zoo_at):
    at = zoo_at
    at.selectbox(key=next(s.key for s in at.selectbox if s.key.startswith("cmp_dd_a"))).set_value("hidden2")
    at.selectbox(key=next(s.key for s in at.selectbox if s.key.startswith("cmp_dd_b"))).set_value("hidden3")
    at = rerun(at)
    a, b = _zoo("mlp_seed0"), _zoo("mlp_seed1")
    expected = pc_contributions(a["hidden2"], b["hidden3"])
    assert metric(at, "Linear CKA, biased (higher = more similar)") == pytest.approx(expected.cka, abs=1e-4)
    block, _, _, _ = _heatmap(at, "cmp_dd_contrib")
    np.testing.assert_allclose(block, expected.top(8), atol=1e-6)
    scatter = _chart(at, "cmp_dd_scatter")
    assert sum(len(_array(t["x"])) for t in scatter["data"]) == 5000  # 359 * 360 / 2 entries, subsampled


@pytest.mark.parametrize(("measure", "label"), [("Procrustes angle", "Heatmap: Procrustes angle (lower = closer)"),
                                              ("RSA (Spearman of RDMs)",
                                               "Heatmap: RSA (Spearman of RDMs) (higher = more similar)")])
def test_drilldown_labels_each_value_with_its_measure_and_direction(measure, label):
    """Regression: the drill-down showed linear CKA beside a heatmap of angles, the labels cut off at the
    direction, so 0.96 and 0.26 read as the same kind of number. Each value's label names its measure and
    which way is similar, in columns wide enough to show it whole."""
    at = open_page(PAGE, {"cmp_measure": measure})
    values, rows, cols, _ = _heatmap(at)
    layer_a = next(s for s in at.selectbox if s.key.startswith("cmp_dd_a")).value
    layer_b = next(s for s in at.selectbox if s.key.startswith("cmp_dd_b")).value
    assert metric(at, label) == pytest.approx(values[rows.index(layer_a), cols.index(layer_b)], abs=1e-4)
    expected = cka_matrix(_zoo("mlp_seed0"), _zoo("mlp_seed1"))[rows.index(layer_a), cols.index(layer_b)]
    assert metric(at, "Linear CKA, biased (higher = more similar)") == pytest.approx(expected, abs=1e-4)
    assert all(len(m.label) <= 60 for m in at.metric)  # half the page's width holds about 60 characters


def test_the_layer_boxes_wrap_every_chosen_layer():
    """Regression: in their columns the layer boxes kept the chips in one row, so side B's 15 layers of
    mlp_deep_wide showed as 'hidden1 … hidde'."""
    at = open_page(PAGE, {"cmp_b_model": "mlp_deep_wide"})
    boxes = {box.key: box for box in at.multiselect}
    assert len(boxes["cmp_b_layers_mlp_deep_wide"].value) == 15
    assert all(box.proto.wrap for box in boxes.values())


def test_other_estimators_and_measures(zoo_at):
    at = zoo_at
    a, b = _zoo("mlp_seed0"), _zoo("mlp_seed1")
    rerun(at.radio(key="cmp_estimator").set_value("Debiased"))
    np.testing.assert_allclose(_heatmap(at)[0], cka_matrix(a, b, debiased=True), atol=1e-6)
    rerun(at.radio(key="cmp_estimator").set_value("Minibatch"))
    rerun(at.slider(key="cmp_batch").set_value(64))
    np.testing.assert_allclose(_heatmap(at)[0], cka_matrix(a, b, debiased=True, batch_size=64), atol=1e-6)
    rerun(at.selectbox(key="cmp_measure").set_value("Procrustes angle"))
    values, _, _, trace = _heatmap(at)
    assert trace.get("reversescale") is True and values.min() >= 0
    assert not _errors(at)


def test_deconfounded_cka_regresses_out_the_pixels_or_a_layer_of_a(zoo_at, downloads):
    """dCKA on two zoo networks regresses out the digits' pixels by default (the core's matrix with
    inputs=X_test); choosing a layer of A regresses that out and drops it from A's rows."""
    from cka_core.measures import similarity_matrix

    at = zoo_at
    rerun(at.selectbox(key="cmp_measure").set_value("Deconfounded CKA (dCKA)"))
    a, b = _zoo("mlp_seed0"), _zoo("mlp_seed1")
    inputs = sample_models.digits().X_test
    values, rows, _, _ = _heatmap(at)
    np.testing.assert_allclose(values, similarity_matrix(a, b, measure="deconfounded_cka", inputs=inputs), atol=1e-9)
    assert rows == list(a) and not _errors(at)
    assert at.selectbox(key="cmp_confounder").value == "the digits' pixels"
    rerun(at.selectbox(key="cmp_confounder").set_value("layer hidden1 of A"))
    values, rows, _, _ = _heatmap(at)
    assert rows == ["hidden2", "hidden3", "logits"]
    np.testing.assert_allclose(values, similarity_matrix({k: a[k] for k in rows}, b, measure="deconfounded_cka",
                                                         inputs=a["hidden1"]), atol=1e-9)
    doc = json.loads(_download(at, downloads, "cmp_json"))
    assert doc["measure"] == "deconfounded_cka" and doc["confounder"] == "layer hidden1 of A" and "inputs" not in doc
    assert not _errors(at)
    rerun(at.selectbox(key="cmp_confounder").set_value("the digits' pixels"))


def test_same_model_on_both_sides(zoo_at):
    at = zoo_at
    rerun(at.selectbox(key="cmp_measure").set_value("Linear CKA"))
    at.radio(key="cmp_estimator").set_value("Biased")
    rerun(at.selectbox(key="cmp_b_model").set_value("mlp_seed0"))
    values = _heatmap(at)[0]
    np.testing.assert_allclose(np.diag(values), 1.0, atol=1e-9)
    assert "same data" in "\n".join(_lines(at, "Sample pairing"))


# --------------------------------------------------------------------------- uploads
@pytest.fixture(scope="module")
def upload_at(downloads):
    at = open_page(PAGE)
    at.radio(key="cmp_a_kind").set_value("Upload files")
    at.radio(key="cmp_b_kind").set_value("Upload files")
    return rerun(at)


def test_upload_vs_upload(upload_at):
    at = upload_at
    rng = np.random.default_rng(0)
    z = rng.standard_normal((80, 3))
    conv = (z @ rng.standard_normal((3, 2 * 3 * 3))).reshape(80, 2, 3, 3) + 0.3 * rng.standard_normal((80, 2, 3, 3))
    fc = z @ rng.standard_normal((3, 7)) + 0.5 * rng.standard_normal((80, 7))
    other1, other2 = z @ rng.standard_normal((3, 5)) + rng.standard_normal((80, 5)), rng.standard_normal((80, 4))
    at.file_uploader(key="cmp_a_upload").set_value(("model_a.npz", _npz(conv=conv, fc=fc, labels=np.arange(80)), MIME))
    at.file_uploader(key="cmp_b_upload").set_value([("first.npy", _npy(other1), MIME), ("second.npy", _npy(other2), MIME)])
    at = rerun(at)
    assert not _errors(at), _errors(at)
    values, rows, cols, _ = _heatmap(at)
    assert rows == ["conv", "fc"] and cols == ["first", "second"]          # labels dropped, one layer per file
    np.testing.assert_allclose(values, cka_matrix({"conv": conv, "fc": fc}, {"f": other1, "s": other2}), atol=1e-9)
    assert any("Flattened per example" in c.value and "conv 2×3×3 → 18" in c.value for c in at.caption)
    assert metric(at, "Examples") == 80


def test_a_large_file_given_at_launch(tmp_path, monkeypatch, downloads):
    import ui.compare.sides

    rng = np.random.default_rng(1)
    path = tmp_path / "big.npz"
    np.savez(path, early=rng.standard_normal((359, 6)), late=rng.standard_normal((359, 3)))
    monkeypatch.setattr(ui.compare.sides, "launch_files", lambda: [path])
    at = open_page(PAGE)
    rerun(at.radio(key="cmp_a_kind").set_value("Launch file"))
    values, rows, _, _ = _heatmap(at)
    assert rows == ["early", "late"] and values.shape == (2, 4)             # against the default zoo model
    assert any("big.npz" in c.value for c in at.caption)


def _pickled_npy() -> bytes:
    return _npy(np.array([{"a": 1}, None], dtype=object), allow_pickle=True)


def _pickled_pt() -> bytes:
    buffer = io.BytesIO()
    torch.save({"layer": torch.ones(3, 2), "config": argparse.Namespace(lr=0.1)}, buffer)  # needs full unpickling
    return buffer.getvalue()


ROWS = np.random.default_rng(2).standard_normal((50, 4))
BAD = {
    "wrong format": ([("acts.txt", b"1 2 3\n4 5 6\n", "text/plain")], "unknown format"),
    "not an archive": ([("acts.npz", b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, MIME)], "not a readable .zip archive"),
    "pickle in npy": ([("acts.npy", _pickled_npy(), MIME)], "unpickling"),
    "pickle in pt": ([("acts.pt", _pickled_pt(), MIME)], "never unpickled"),
    "NaN": ([("acts.npz", _npz(h=np.where(ROWS > 1.5, np.nan, ROWS)), MIME)], "NaN"),
    "rows differ across files": ([("a.npy", _npy(ROWS), MIME), ("b.npy", _npy(ROWS[:40]), MIME)], "different numbers"),
    "one example": ([("acts.npy", _npy(ROWS[:1]), MIME)], "only 1 example"),
    "text in CSV": ([("acts.csv", b"f1,f2\n1,2\n3,hello\n", "text/csv")], "not a number"),
    "empty file": ([("acts.npz", b"", MIME)], "empty"),
    "labels only": ([("acts.npz", _npz(labels=np.arange(50)), MIME)], "only holds labels"),
}


def test_every_bad_upload_is_a_clear_error_and_the_page_keeps_working(upload_at):
    at = upload_at
    at.file_uploader(key="cmp_b_upload").set_value(("b.npy", _npy(ROWS @ np.ones((4, 3)) + ROWS[:, :3]), MIME))
    for name, (files, words) in BAD.items():
        at = rerun(at.file_uploader(key="cmp_a_upload").set_value(files))
        errors = _errors(at)
        assert len(errors) == 1 and words in errors[0], (name, errors)
        assert any("b.npy" in c.value for c in at.caption), name           # side B still loaded and described
        assert any(e.label == "Theory" for e in at.expander), name          # and the rest of the page drawn
    at = rerun(at.file_uploader(key="cmp_a_upload").set_value(("ok.npy", _npy(ROWS), MIME)))
    assert not _errors(at) and _heatmap(at)[0].shape == (1, 1)               # a good file recovers


def test_rows_mismatched_between_sides_and_a_constant_layer(upload_at):
    at = upload_at
    at.file_uploader(key="cmp_b_upload").set_value(("b.npy", _npy(ROWS[:30]), MIME))
    at = rerun(at.file_uploader(key="cmp_a_upload").set_value(("a.npz", _npz(x=ROWS, flat=np.ones((50, 3))), MIME)))
    assert any("Side A has 50 examples but side B has 30" in e for e in _errors(at))
    assert any("Left out" in w.value and "flat" in w.value for w in at.warning)
    at = rerun(at.file_uploader(key="cmp_b_upload").set_value(("b.npy", _npy(ROWS[:, :2] * 3), MIME)))
    assert not _errors(at)
    assert _heatmap(at)[1] == ["x"]
    assert any("flat" in line and ":red[" in line for line in _lines(at, "Constant or empty layers (A)"))


def test_a_file_over_the_upload_limit(upload_at):
    at = upload_at
    before = st_config.get_option("server.maxUploadSize")
    st_config.set_option("server.maxUploadSize", 1)
    try:
        big = _npy(np.zeros((1200, 200)))                                 # 1.9 MB
        at = rerun(at.file_uploader(key="cmp_a_upload").set_value(("big.npy", big, MIME)))
    finally:
        st_config.set_option("server.maxUploadSize", before)
    errors = _errors(at)
    assert len(errors) == 1 and "over this server's 1 MB upload limit" in errors[0] and "--reps" in errors[0]


def test_a_link_restores_models_and_estimator(downloads):
    at = open_page(PAGE, {"cmp_b_model": "mlp_wide", "cmp_estimator": "Debiased"})
    assert at.selectbox(key="cmp_b_model").value == "mlp_wide"
    assert at.radio(key="cmp_estimator").value == "Debiased"
    values, _, cols, _ = _heatmap(at)
    np.testing.assert_allclose(values, cka_matrix(_zoo("mlp_seed0"), _zoo("mlp_wide"), debiased=True), atol=1e-6)


def test_a_network_fine_tuned_in_this_session_is_offered_on_both_sides():
    """Regression: the Manipulate page said a fine-tuned network "can be picked on the other pages",
    but Compare offered only the zoo."""
    from .apptest import finetuned

    at = open_page(PAGE)
    name = finetuned(at, "mlp_seed1")  # the zoo's weights: its heatmap must be mlp_seed1's
    rerun(at)
    assert name in at.selectbox(key="cmp_b_model").options and name in at.selectbox(key="cmp_a_model").options
    before, _, _, _ = _heatmap(at)
    rerun(at.selectbox(key="cmp_b_model").set_value(name))
    assert not _errors(at)
    after, rows, cols, trace = _heatmap(at)
    np.testing.assert_allclose(after, before, atol=1e-12)
    assert name in trace["colorbar"]["title"]["text"] or any(name in c.value for c in at.caption)
    assert "mlp_untrained" in "\n".join(_lines(at, "Random-init baseline"))  # its architecture's twin
