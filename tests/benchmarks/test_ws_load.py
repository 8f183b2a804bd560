"""The protocol-level load generator (python -m benchmarks.ws_load) against a real `streamlit run
app.py` (benchmarks/load_test/server.py starts it, as for the browser load test): one simulated
student visits every page over the websocket, a slider move changes a metric, an upload through
the sidebar's "Uploaded file" source reaches the app, and a short run of three students reports
moves and no errors. No timing assertions: the machine's two cores are shared."""
from __future__ import annotations

import io
import random

import numpy as np
import pytest

from benchmarks.load_test.server import start_server
from benchmarks.ws_load import (SOURCE_LABEL, UPLOAD_OPTION, UPLOADER_LABEL, Behaviour, LoadConfig, StreamlitSession,
                                run_apart, run_ws_load, save)
from benchmarks.ws_load.widgets import state_value
from ui.frame.navigation import PAGES
from ui.sources.sidebar import KINDS

pytestmark = pytest.mark.slow

DONE = ("success", "fragment success")
TEXT_ONLY = {"", "theory"}  # Home and Derivations have no controls of their own
TIMEOUT = 120.0  # seconds a request may take: first visits compute the page's shared caches


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    server = start_server(tmp_path_factory.mktemp("ws_load") / "streamlit.log")
    yield server.url
    server.stop()


def _visit(url: str, steps):
    """Open a session on the default page, run ``steps(session)`` (a coroutine function), close."""
    async def go():
        session = StreamlitSession(url, TIMEOUT)
        try:
            first = await session.open("")
            return first, session, await steps(session)
        finally:
            await session.close()
    return run_apart(go())


def test_one_student_loads_every_page(app_url):
    async def tour(session):
        seen = {}
        for page in PAGES[1:]:
            result = await session.switch_page(page.url_path)
            seen[page.url_path] = (result, session.page, list(session.tree.widgets()), list(session.incidents))
        return seen

    first, session, seen = _visit(app_url, tour)
    assert first.outcome == "success" and not first.problems, first
    assert set(session.pages) == {page.url_path for page in PAGES}
    assert session.page_hash and session.main_hash and session.session_id
    for path, (result, shown, widgets, incidents) in seen.items():
        assert result.outcome in DONE and not result.problems and not incidents, (path, result, incidents)
        assert shown == path
        sidebar = [w for w in widgets if w.script_hash == session.main_hash]
        own = [w for w in widgets if w.script_hash != session.main_hash]
        assert any(w.kind == "radio" and w.label == SOURCE_LABEL for w in sidebar), path
        assert bool(own) == (path not in TEXT_ONLY), (path, [(w.kind, w.label) for w in own])
        assert all(w.id and w.label for w in own)


def test_slider_move_changes_a_metric(app_url):
    async def move(session):
        await session.switch_page("estimators")
        before = session.tree.metrics()
        slider = next(w for w in session.tree.widgets() if w.kind == "slider" and w.label == "Random draw")
        assert slider.fragment_id and slider.movable  # drawn inside an st.fragment: a fragment rerun
        state = slider.change(session.widget_state(slider), random.Random(3))
        result = await session.change(slider, state)
        return before, result, session.tree.metrics(), state_value(session.widget_state(slider)), state_value(state)

    _, _, (before, result, after, kept, sent) = _visit(app_url, move)
    assert result.outcome == "fragment success" and not result.problems, result
    assert kept == sent
    assert before.keys() == after.keys() and any(before[k] != after[k] for k in before), (before, after)


def test_a_job_counts_until_its_progress_shows_and_its_length_apart(app_url):
    """A click that starts a job (Compare's resampling) is answered when the job's progress shows; the
    run that follows the job to its result is recorded as the job's length, not as the move's latency."""
    async def click(session):
        await session.switch_page("compare")
        button = next(w for w in session.tree.widgets() if w.kind == "button" and w.label.startswith("Compute"))
        return await session.change(button, button.change(session.widget_state(button), random.Random(0)))

    _, _, result = _visit(app_url, click)
    assert result.outcome == "success" and not result.problems, result
    assert result.job is not None and 0 < result.latency < result.job, result


def test_upload_through_the_sidebar(app_url):
    assert KINDS["upload"] == UPLOAD_OPTION  # the labels the students look for are the app's
    buffer = io.BytesIO()
    np.save(buffer, np.random.default_rng(0).standard_normal((123, 7)).astype(np.float32))

    async def upload(session):
        await session.switch_page("outliers")
        source = next(w for w in session.tree.widgets() if w.kind == "radio" and w.label == SOURCE_LABEL)
        state = source.default_state()
        state.string_value = UPLOAD_OPTION
        chosen = await session.change(source, state)
        uploader = next(w for w in session.tree.widgets() if w.kind == "file_uploader" and w.label == UPLOADER_LABEL)
        result, put_seconds, failure = await session.upload(uploader, "tiny_acts.npy", buffer.getvalue())
        return chosen, result, put_seconds, failure, session.tree.texts(), session.tree.widgets()

    _, _, (chosen, result, put_seconds, failure, texts, widgets) = _visit(app_url, upload)
    assert chosen.outcome == "success" and not chosen.problems, chosen
    assert failure is None and put_seconds is not None, failure
    assert result.outcome == "success" and not result.problems, result
    assert any("tiny_acts.npy" in t and "123 examples × 7 features" in t for t in texts), texts
    assert any(w.kind == "selectbox" and "tiny_acts" in w.options for w in widgets)


def test_three_students_run_without_errors(app_url, tmp_path):
    config = LoadConfig(url=app_url, students=3, seconds=20, warmup=2, seed=1,
                        behaviour=Behaviour(think=1.0, timeout=TIMEOUT, uploads=0.1),
                        command="pytest tests/benchmarks/test_ws_load.py")
    report = run_ws_load(config, tmp_path)
    raw = save(report, tmp_path / "ws_load.md")
    print(report.text)
    summary = report.summary
    assert summary["requests"]["done"] > 0 and summary["all"]["p50"] is not None, report.text
    assert summary["error_count"] == 0 and summary["failed_students"] == 0, report.text
    assert summary["timeouts"] == 0 and summary["lost_sessions"] == 0 and summary["disconnects"] == 0, report.text
    assert report.ok and raw.exists() and (tmp_path / "ws_load.md").read_text().startswith("# Protocol-level")
    assert any(a not in ("load", "switch") for a in summary["by_action"]), report.text
