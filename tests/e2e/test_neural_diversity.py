"""Neural diversity page in real Chromium: loads without an exception box, draws its charts, and the
amplitude slider moves the accuracies and the URL."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from .conftest import save_screenshot, wait_for_run

pytestmark = pytest.mark.e2e


def _metric(page, label: str) -> str:
    metric = page.get_by_test_id("stMetric").filter(has_text=label).first
    return metric.get_by_test_id("stMetricValue").inner_text()


def test_page_loads_draws_and_reacts(page, app_url):
    page.goto(f"{app_url}/neural_diversity")
    wait_for_run(page, timeout=90_000)
    expect(page.get_by_test_id("stException")).to_have_count(0)
    expect(page.get_by_test_id("stHeading").first).to_be_visible()
    charts = page.locator("[data-testid='stPlotlyChart']")
    page.locator("[data-testid='stPlotlyChart'] .main-svg").first.wait_for(timeout=30_000)
    assert charts.count() >= 9
    save_screenshot(page, "neural_diversity")
    for i in range(charts.count()):  # every chart, scrolled into view, is drawn
        charts.nth(i).scroll_into_view_if_needed()
        charts.nth(i).locator(".main-svg").first.wait_for(timeout=15_000)

    before = _metric(page, "RNN adaptive · accuracy")
    slider = page.get_by_test_id("stSlider").filter(has_text="Gain modulation amplitude").get_by_role("slider")
    slider.focus()
    for _ in range(3):  # 0.5 -> 0.8
        slider.press("ArrowRight")
    wait_for_run(page)
    expect(page).to_have_url(re.compile(r"nd_amp_sin=0\.8"))
    expect(page.get_by_test_id("stException")).to_have_count(0)
    after = _metric(page, "RNN adaptive · accuracy")
    assert float(after.rstrip("%")) < float(before.rstrip("%")) - 5, (before, after)


def test_deep_link_opens_the_drive(page, app_url):
    page.goto(f"{app_url}/neural_diversity?nd_kind=Step+drive+%2BA+on+pre-activations&nd_amp_drive=0.4")
    wait_for_run(page, timeout=90_000)
    expect(page.get_by_test_id("stException")).to_have_count(0)
    expect(page.get_by_test_id("stRadio").filter(has_text="Perturbation")
           .get_by_role("radio", name="Step drive +A on pre-activations")).to_be_checked()
    assert "0.40" in page.get_by_test_id("stSliderThumbValue").all_inner_texts()


def test_the_controls_open_in_view_next_to_the_answer(page, app_url):
    """Issue 25: at 1400 x 900 the controls that drive the takeaway sat ~3,000 px below it. As the page opens,
    the networks, the perturbation and its amplitude are on screen beside the proof, and only the chosen
    perturbation's settings are there (no greyed-out slider)."""
    page.set_viewport_size({"width": 1400, "height": 900})
    page.goto(f"{app_url}/neural_diversity")
    wait_for_run(page, timeout=120_000)
    proof = page.locator(".st-key-proof").bounding_box()
    for control in (page.get_by_test_id("stRadio").filter(has_text="Networks"),
                    page.get_by_test_id("stRadio").filter(has_text="Perturbation"),
                    page.get_by_test_id("stSlider").filter(has_text="Gain modulation amplitude A")):
        box = control.bounding_box()
        assert 0 <= box["y"] and box["y"] + box["height"] <= 900, box
        assert box["x"] + box["width"] <= proof["x"]  # beside the proof, on its left
    sliders = page.get_by_test_id("stMain").get_by_test_id("stSlider")
    assert sliders.filter(has_text="Noise standard deviation").count() == 0
    expect(page.locator("[data-testid='stSlider'] [data-disabled='true']")).to_have_count(0)
