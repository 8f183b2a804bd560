"""Page sections that rerun alone (ui.frame.shell.live_section, st.fragment), in real Chromium: moving
a slider inside one reruns that section only (the server's run log shows a section run and no
full run), and the takeaway at the top of the page follows the new numbers. AppTest always reruns
the whole script, so only a browser can show either."""
from __future__ import annotations

import json
import re

import pytest
from playwright.sync_api import expect

from .conftest import wait_for_run

pytestmark = pytest.mark.e2e


def _runs(run_log) -> list[dict]:
    return [json.loads(line) for line in run_log.read_text().splitlines() if line.strip()] if run_log.exists() else []


def _move_slider(page, label: str, key: str) -> None:
    slider = page.get_by_test_id("stMain").get_by_test_id(re.compile("stSlider")).filter(has_text=label)
    slider.get_by_role("slider").first.focus()
    page.keyboard.press(key)


def _numbers(text: str) -> list[str]:
    return re.findall(r"\d+\.\d+|\d+", text)


def _watched(page, watch: str):
    """A metric's value by its label, a whole metric (label and value), or a caption by its beginning."""
    if watch.startswith("metric:"):
        return page.get_by_test_id("stMetric").filter(has_text=watch[7:]).first.get_by_test_id("stMetricValue")
    if watch.startswith("whole metric:"):
        return page.get_by_test_id("stMetric").filter(has_text=watch[13:]).first
    return page.get_by_test_id("stCaptionContainer").filter(has_text=re.compile("^" + re.escape(watch))).first


@pytest.mark.parametrize("url, label, section, watch, in_takeaway", [
    # the section holds the page's proof: the takeaway must follow it
    ("estimators?est_n=100&est_d=1000", "Features d", "null_bias_panel", "metric:Biased CKA", True),
    # sections below the lesson: the takeaway must stay as it is
    ("invariances?inv_transform=invertible", "Condition number κ", "one_transformation", "κ = ", False),
    ("invariances", "Partial whitening α", "distances_or_scores", "whole metric:Shape metric, α", False),
    ("neural_diversity", "Gain n", "gamma_family", "metric:γ(0)", False),
])
def test_a_slider_in_a_section_reruns_only_that_section(page, app_url, run_log, url, label, section, watch,
                                                        in_takeaway):
    page.goto(f"{app_url}/{url}")
    wait_for_run(page)
    lesson, shown = page.locator(".st-key-takeaway"), _watched(page, watch)
    lesson_before, shown_before = lesson.inner_text(), shown.inner_text()
    full_runs = [r for r in _runs(run_log) if "fragment" not in r]
    seen = len(_runs(run_log))
    _move_slider(page, label, "ArrowRight" if not in_takeaway else "ArrowLeft")
    expect(shown).not_to_have_text(shown_before, timeout=30_000)
    wait_for_run(page)
    after = _runs(run_log)[seen:]
    assert after and all(r.get("fragment") == section and r["outcome"] == "done" for r in after), after
    assert after[0]["page"] == url.split("?")[0]
    assert [r for r in _runs(run_log) if "fragment" not in r] == full_runs   # no full run
    expect(lesson.get_by_text("Takeaway.")).to_have_count(1)
    if in_takeaway:  # the sentence carries the proof's new number
        assert lesson.inner_text() != lesson_before
        assert f"{float(shown.inner_text()):.2f}" in _numbers(lesson.inner_text())
    else:
        assert lesson.inner_text() == lesson_before
    expect(page.get_by_test_id("stException")).to_have_count(0)
