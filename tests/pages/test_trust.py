"""The "Which measure to trust?" page: the zoo's scorecard (every measure × ReSi's six tests) sorts as
asked, its takeaway follows its numbers, a chosen cell shows the pairs behind it, and a user's own
group (uploaded .npz per model, or models loaded on Compare) goes through the tests that need only a
group, each group that cannot a clear error."""
from __future__ import annotations

import base64
import json
import re

import numpy as np
import pytest
from scipy.stats import rankdata

from cka_core import MEASURES
from cka_core.trust import candidate_measures
from tests.files import npz_bytes
from ui.sources import models
from ui.trust import card as tc

from .apptest import open_page, rerun, takeaway_text

PAGE = "pages/trust.py"
MIME = "application/octet-stream"
TESTS = list(tc.TEST_LABELS)


def _chart(at, key: str) -> dict:
    for chart in at.get("plotly_chart"):
        if chart.proto.id.endswith(key):
            return json.loads(chart.proto.spec)
    raise AssertionError(f"no chart {key!r}; have {[c.proto.id for c in at.get('plotly_chart')]}")


def _has_chart(at, key: str) -> bool:
    return any(c.proto.id.endswith(key) for c in at.get("plotly_chart"))


def _array(values) -> np.ndarray:
    if isinstance(values, dict):  # plotly's typed-array encoding
        return np.frombuffer(base64.b64decode(values["bdata"]), values["dtype"]).astype(float)
    return np.asarray([np.nan if v is None else v for v in np.ravel(values)], dtype=float)


def _scores(at, key: str = "trust_card") -> tuple[np.ndarray, list[str], list[str], list]:
    """(scores (measures, tests), row labels, column labels, hover texts) of the scorecard's left panel."""
    trace = _chart(at, key)["data"][0]
    rows, cols = list(trace["y"]), [c.replace("<br>", " ").replace("- ", "") for c in trace["x"]]
    return _array(trace["z"]).reshape(len(rows), len(cols)), rows, cols, trace["customdata"]


def _ranks(z: np.ndarray) -> np.ndarray:
    """Each measure's rank in each test (1 = best; scipy's average ranks of ties), NaN where it has no score."""
    ranks = np.full(z.shape, np.nan)
    for j in range(z.shape[1]):
        ok = np.isfinite(z[:, j])
        ranks[ok, j] = rankdata(-z[ok, j])
    return ranks


@pytest.fixture(scope="module")
def page():
    return open_page(PAGE)


def test_every_measure_on_every_test_with_its_interval_on_hover(page):
    z, rows, cols, hover = _scores(page)
    assert sorted(rows) == sorted(MEASURES[m].label for m in candidate_measures())
    assert cols == [tc.TEST_LABELS[t] for t in TESTS]
    assert np.isfinite(z).mean() > 0.9 and np.nanmin(z) >= -1 and np.nanmax(z) <= 1
    for i, row in enumerate(hover):
        for j, text in enumerate(row):
            if np.isfinite(z[i, j]):
                low, high = map(float, re.search(r"interval \[(-?[0-9.]+), (-?[0-9.]+)\]", text).groups())
                assert low <= z[i, j] + 5e-3 and z[i, j] - 5e-3 <= high, (rows[i], cols[j], text)
    # the ✓ grid beside it: each row's declared invariances, in the same row order
    marks = _chart(page, "trust_card")["data"][1]
    label_to_name = {MEASURES[m].label: m for m in candidate_measures()}
    from cka_core.measures.registry import INVARIANCES
    for row, ticks in zip(marks["y"], marks["text"]):
        assert [t == "✓" for t in ticks] == [inv in MEASURES[label_to_name[row]].invariances for inv in INVARIANCES]


def test_default_order_is_by_mean_rank(page):
    z, rows, _, _ = _scores(page)
    mean = np.nanmean(_ranks(z), axis=1)
    assert np.all(np.diff(mean) >= -1e-9), list(zip(rows, mean))


@pytest.mark.parametrize("test", ["Label randomisation", "Layer monotonicity", "Accuracy correlation"])
def test_sorting_by_a_test_puts_its_best_first(page, test):
    at = rerun(page.selectbox(key="trust_sort").set_value(test))
    z, rows, cols, _ = _scores(at)
    column = z[:, cols.index(test)]
    scored = column[np.isfinite(column)]
    assert np.all(np.diff(scored) <= 1e-12) and np.isfinite(column[: scored.size]).all()
    before, _, _, _ = _scores(rerun(at.selectbox(key="trust_sort").set_value(tc.SORT_LABELS[tc.MEAN_RANK])))
    assert not np.array_equal(np.nan_to_num(before), np.nan_to_num(z))  # the rows moved


def test_takeaway_names_leaders_and_laggards_from_the_scores(page):
    z, rows, _, hover = _scores(page)
    text = takeaway_text(page)
    ranks = _ranks(z)
    top = (ranks <= 3).sum(axis=1)
    best = top.max()
    leaders = [r for r, k in zip(rows, top) if k == best]
    assert f"**{leaders[0]}**" in text
    assert (f"in the top 3 of {best} of the 6 tests" in text) == (best < 6)
    assert ("in every one of the 6 tests" in text) == (best == 6)
    mean = np.nanmean(ranks, axis=1)
    assert f"**{rows[int(np.argmax(mean))]}**" in text and "rank lowest" in text
    # whether the leader's interval overlaps the runner-up's, test by test
    overlaps = []
    for j in range(z.shape[1]):
        order = np.argsort(-np.nan_to_num(z[:, j], nan=-np.inf))
        lo = float(re.search(r"interval \[(-?[0-9.]+),", hover[order[0]][j]).group(1))
        hi = float(re.search(r", (-?[0-9.]+)\]", hover[order[1]][j]).group(1))
        overlaps.append(lo <= hi)
    if all(overlaps):
        assert "In every test the leader's 95% interval overlaps" in text
    elif not any(overlaps):
        assert "is clear of the runner-up's" in text
    else:
        assert f"In {sum(overlaps)} of 6 tests" in text


def test_the_metrics_at_the_top_carry_the_takeaways_numbers(page):
    z, rows, _, _ = _scores(page)
    text = takeaway_text(page)
    ranks = _ranks(z)
    top, mean = (ranks <= 3).sum(axis=1), np.nanmean(ranks, axis=1)
    leader = next(m for m in page.metric if m.label.startswith("Top 3 most often: "))
    name = leader.label.removeprefix("Top 3 most often: ")
    assert leader.value == f"{top.max()} of 6 tests" and top[rows.index(name)] == top.max()
    assert f"**{name}**" in text
    lowest = next(m for m in page.metric if m.label.startswith("Lowest mean rank: "))
    assert lowest.label.endswith(rows[int(np.argmax(mean))])
    assert float(lowest.value.split()[0]) == pytest.approx(mean.max(), abs=0.05)
    overlaps = next(m for m in page.metric if m.label.startswith("Leader's interval")).value
    assert ("In every test" in text) == (overlaps == "in 6 of 6 tests")


@pytest.mark.parametrize(("test", "measure", "pairs"), [
    ("Accuracy correlation", "Linear CKA", 45),       # 10 seeds
    ("Output correlation", "RSA (Spearman of RDMs)", 45),
    ("Label randomisation", "Linear CKA", 105),       # 5 groups of 3
    ("Layer monotonicity", "Procrustes angle", 75),   # 5 deep networks, 6 layers each
])
def test_a_cell_shows_the_pairs_behind_it(page, test, measure, pairs):
    at = rerun(page.selectbox(key="trust_test").set_value(test))
    at = rerun(at.selectbox(key="trust_measure").set_value(measure))
    [table] = [d.value for d in at.dataframe]
    assert len(table) == pairs and table.columns[-1] == measure
    figure = _chart(at, "trust_pairs")
    assert sum(_array(t["y"]).size for t in figure["data"] if t["name"] != "mean over pairs") == pairs
    z, rows, cols, _ = _scores(at)
    main = at.metric[3]  # after the three of the takeaway
    assert main.label in tc.STATISTIC_LABELS.values()
    assert float(main.value) == pytest.approx(z[rows.index(measure), cols.index(test)], abs=6e-3)
    if test == "Label randomisation":
        assert {t["name"] for t in figure["data"]} == {"within a group", "between groups"}
        assert _array(figure["data"][0]["y"]).size == 15  # 5 groups × 3 pairs inside each


# --------------------------------------------------------------------------- your own models
N, CLASSES = 60, 4


def _model(seed: int, noise: float, *, layers: int = 3, rows: int = N, logits: bool = True, labels=None) -> bytes:
    """A synthetic model on shared inputs: layers that drift away from the inputs, logits from the last."""
    rng = np.random.default_rng(seed)
    x = np.random.default_rng(0).normal(size=(rows, 6))
    arrays, h = {}, x
    for k in range(layers):
        h = np.tanh(h @ rng.normal(size=(h.shape[1], 8)) + noise * rng.normal(size=(rows, 8)))
        arrays[f"layer{k + 1}"] = h
    if logits:
        arrays["logits"] = h @ rng.normal(size=(8, CLASSES))
    if labels is not None:
        arrays["labels"] = labels
    return npz_bytes(**arrays)


def _labels(rows: int = N) -> np.ndarray:
    return np.arange(rows) % CLASSES


def _upload(files) -> object:
    at = open_page(PAGE)
    return rerun(at.file_uploader(key="trust_own_files").set_value([(name, data, MIME) for name, data in files]))


def _errors(at) -> str:
    return " ".join(e.value for e in at.error)


def test_an_upload_of_four_models_is_scored_on_the_three_group_tests():
    at = _upload([(f"m{k}.npz", _model(k, 0.1 * k, labels=_labels() if k == 0 else None)) for k in range(4)])
    assert not at.error, _errors(at)
    z, rows, cols, _ = _scores(at, "trust_own_card")
    assert cols == ["Accuracy correlation", "Output correlation", "Layer monotonicity"]
    assert len(rows) == len(candidate_measures()) and np.isfinite(z).sum() > 0.8 * z.size
    assert any("m0 (3 layers)" in c.value for c in at.caption)
    # every measure with a failed cell is listed with its reason, and only those
    failed = {rows[i] for i in range(len(rows)) if not np.isfinite(z[i]).all()}
    listed = {re.match(r"- \*\*(.+?)\*\* \(", m.value).group(1) for m in at.markdown if m.value.startswith("- **")}
    assert listed == failed
    # sorting applies to the own card too (a test it has)
    at = rerun(at.selectbox(key="trust_sort").set_value("Layer monotonicity"))
    z, _, cols, _ = _scores(at, "trust_own_card")
    column = z[:, 2][np.isfinite(z[:, 2])]
    assert np.all(np.diff(column) <= 1e-12)


@pytest.mark.parametrize(("files", "refused", "says"), [
    ([("a.npz", _model(0, 0.1, labels=_labels())), ("b.npz", _model(1, 0.2))],
     ["Accuracy correlation", "Output correlation"], "at least 3 models"),
    ([(f"m{k}.npz", _model(k, 0.1, logits=False, labels=_labels())) for k in range(3)],
     ["Accuracy correlation", "Output correlation"], "logits"),
    ([(f"m{k}.npz", _model(k, 0.1)) for k in range(3)], ["Accuracy correlation"], "labels"),
    ([(f"m{k}.npz", _model(k, 0.1, layers=2, labels=_labels())) for k in range(3)], ["Layer monotonicity"],
     "at least 3"),
    ([(f"m{k}.npz", _model(k, 0.1, rows=N - 5 if k == 0 else N, labels=None if k == 0 else _labels()))
      for k in range(3)], ["Accuracy correlation", "Output correlation"], "different numbers of examples"),
])
def test_a_group_that_cannot_go_through_a_test_is_an_error_there_and_the_rest_is_scored(files, refused, says):
    at = _upload(files)
    errors = [e.value for e in at.error]
    assert sorted(e.split("**")[1] for e in errors) == sorted(refused), errors
    assert all(says in e for e in errors), errors
    z, _, cols, _ = _scores(at, "trust_own_card")
    assert set(cols) == {tc.TEST_LABELS[t] for t in ("accuracy_correlation", "output_correlation",
                                                     "layer_monotonicity")} - set(refused)


@pytest.mark.parametrize(("files", "says"), [
    ([("m0.npz", npz_bytes(layer1=np.ones((N, 3)), layer2=np.eye(N)[:, :4], logits=np.ones((N - 1, 2)))),
      ("m1.npz", _model(1, 0.1)), ("m2.npz", _model(2, 0.1))], "different numbers of rows"),
    ([("m0.npz", _model(0, 0.1, labels=_labels())), ("m1.npz", npz_bytes(labels=_labels(), logits=np.ones((N, 2))))],
     "holds no layers"),
    ([("m0.npz", _model(0, 0.1, labels=_labels())), ("m1.npz", npz_bytes(layer=np.array([{"a": 1}] * N)))],
     "m1.npz"),
    ([(f"m{k}.npz", _model(k, 0.1, labels=np.roll(_labels(), k))) for k in range(3)], "labels in"),
])
def test_groups_no_test_can_take_are_one_clear_error_and_the_page_keeps_working(files, says):
    at = _upload(files)
    assert says in _errors(at), _errors(at)
    assert not _has_chart(at, "trust_own_card") and _has_chart(at, "trust_card")


def _loaded(name: str, inputs: str, *, logits: bool = True, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    x = np.random.default_rng(0).normal(size=(N, 6))
    h1 = np.tanh(x @ rng.normal(size=(6, 8)))
    h2 = np.tanh(h1 @ rng.normal(size=(8, 8)))
    h3 = np.tanh(h2 @ rng.normal(size=(8, 8)))
    layers = {"block.0": h1, "block.1": h2, "block.2": h3}
    if logits:
        layers["classifier.logits"] = h3 @ rng.normal(size=(8, CLASSES))
    network = models.Network(name, f"{models.LOADED}:{name}:{inputs}:mean", models.LOADED, "onnx model (your own)",
                             f"loaded-{name}", tuple(layers), (), True, False)
    return {"network": network, "layers": layers, "labels": _labels(), "inputs": f"{N} rows"}


def _with_loaded(entries: dict) -> object:
    at = open_page(PAGE)
    at.session_state[models.LOADED_STATE] = entries
    return rerun(at.radio(key="trust_own_source").set_value("Models loaded on Compare"))


def test_models_loaded_on_compare_are_scored_with_their_logits_layer():
    at = _with_loaded({f"net{k}": _loaded(f"net{k}", "same", seed=k) for k in range(3)})
    assert not at.error, _errors(at)
    assert at.multiselect(key="trust_own_loaded").value == ["net0", "net1", "net2"]
    _, _, cols, _ = _scores(at, "trust_own_card")
    assert len(cols) == 3
    assert any("net0 (3 layers)" in c.value for c in at.caption)  # the logits are not a layer


def test_models_loaded_on_different_inputs_or_without_logits_are_errors():
    at = _with_loaded({"a": _loaded("a", "one"), "b": _loaded("b", "one", seed=1), "c": _loaded("c", "two", seed=2)})
    assert "different inputs" in _errors(at)
    at = _with_loaded({f"n{k}": _loaded(f"n{k}", "same", logits=False, seed=k) for k in range(3)})
    assert "logits" in _errors(at) and _has_chart(at, "trust_own_card")  # layer monotonicity still runs


def _slow_group(seed: int) -> list[tuple[str, bytes]]:
    """Six models large enough that their card takes a few seconds (a click arrives while it runs);
    each seed new arrays, so that no pair value is cached already."""
    rng = np.random.default_rng(seed)
    x, y = rng.normal(size=(400, 32)), np.arange(400) % 10
    files = []
    for k in range(6):
        h, arrays = x, {}
        for layer in range(5):
            h = np.tanh(h @ rng.normal(size=(h.shape[1], 48)) / 4)
            arrays[f"layer{layer}"] = h
        files.append((f"slow{k}.npz", npz_bytes(**arrays, logits=h @ rng.normal(size=(48, 10)), labels=y)))
    return files


def test_a_click_elsewhere_while_the_card_is_computed_does_not_lose_it(monkeypatch):
    import ui.jobs
    from ui.trust import compute

    monkeypatch.setattr(ui.jobs, "FOLLOW_SECONDS", 0.0)  # the click arrives while the job runs
    at = _upload(_slow_group(7))
    job = at.session_state[compute.OWN]
    assert job.running and at.button(key=f"{compute.OWN}_stop") and not _has_chart(at, "trust_own_card")
    at = rerun(at.selectbox(key="trust_measure").set_value("RSA (Spearman of RDMs)"))  # a click elsewhere
    assert at.session_state[compute.OWN] is job
    job.thread.join(timeout=300)
    at = rerun(at)
    assert job.result is not None and _has_chart(at, "trust_own_card")


def test_stop_ends_the_job_and_the_button_computes_it_again(monkeypatch):
    import ui.jobs
    from ui.trust import compute

    monkeypatch.setattr(ui.jobs, "FOLLOW_SECONDS", 0.0)
    at = _upload(_slow_group(8))
    job = at.session_state[compute.OWN]
    at = rerun(at.button(key=f"{compute.OWN}_stop").click())
    job.thread.join(timeout=120)
    at = rerun(at)
    assert job.result is None and job.failure.startswith("Stopped (")
    assert any(w.value.startswith("Stopped (") for w in at.warning) and not _has_chart(at, "trust_own_card")
    at = rerun(at.button(key=f"{compute.OWN}_again").click())
    assert at.session_state[compute.OWN] is not job  # computed again


def test_the_scorecard_downloads_as_the_command_line_writes_it(page):
    """JSON with `cka trust`'s schema, {"tests": {test: {measure: {"score", "ci"}}}}, holding the numbers the
    heatmap shows, and a CSV with a row per test, measure and statistic."""
    buttons = {b.proto.label: b for b in page.get("download_button")}
    assert {"Scorecard as JSON", "Scorecard as CSV"} <= set(buttons)
    z, rows, cols, _ = _scores(page)
    label_to_name = {MEASURES[m].label: m for m in candidate_measures()}
    from ui.trust import compute
    card = json.loads(compute.zoo_card().to_json())
    assert list(card["tests"]) == TESTS
    for i, row in enumerate(rows):
        for j, test in enumerate(TESTS):
            cell = card["tests"][test][label_to_name[row]]
            if np.isfinite(z[i, j]):
                assert cell["score"] == pytest.approx(z[i, j], abs=1e-6) and len(cell["ci"]) == 2
    rows_of_csv = [line.split(",")[:2] for line in compute.zoo_card().to_csv().strip().splitlines()[1:]]
    assert {tuple(r) for r in rows_of_csv} == {(t, m) for t in TESTS for m in candidate_measures()}


def test_the_zoo_card_opens_at_once_when_shipped_and_is_computed_when_the_shipped_one_no_longer_holds(monkeypatch):
    """The shipped card (sample_models.zoo_scorecard) fills the server's store: no job, the card at once.
    When the code or weights changed since it was computed, the page computes it with progress and Stop."""
    import ui.jobs
    from ui.trust import compute

    monkeypatch.setattr(ui.jobs, "FOLLOW_SECONDS", 0.0)  # a job would still be running after the first run
    compute._zoo_store.clear()
    try:
        at = open_page(PAGE)
        assert compute.ZOO not in at.session_state and _has_chart(at, "trust_card")
        assert f"{compute.ZOO}_stop" not in [b.key for b in at.button]
        compute._zoo_store.clear()
        monkeypatch.setattr(compute.zoo, "shipped", lambda *args, **kwargs: None)
        at = open_page(PAGE)
        job = at.session_state[compute.ZOO]
        assert job.running and not _has_chart(at, "trust_card")
        at = rerun(at.button(key=f"{compute.ZOO}_stop").click())
        job.thread.join(timeout=120)
        assert job.result is None and job.failure.startswith("Stopped (")
    finally:
        compute._zoo_store.clear()
