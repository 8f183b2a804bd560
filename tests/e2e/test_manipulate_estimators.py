"""The Manipulate and Estimators pages in real Chromium: they load and draw, and training can be
started and stopped from the browser (Stop interrupts the running script and keeps the best so far)."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from .conftest import save_screenshot, wait_for_run

pytestmark = pytest.mark.e2e


def _charts_drawn(page, at_least: int) -> None:
    page.locator("[data-testid='stPlotlyChart'] .main-svg").first.wait_for(timeout=30_000)
    assert page.locator("[data-testid='stPlotlyChart']").count() >= at_least


def test_estimators_page_loads_and_draws(page, app_url):
    page.goto(f"{app_url}/estimators")
    wait_for_run(page)
    expect(page.get_by_test_id("stException")).to_have_count(0)
    expect(page.get_by_test_id("stHeading").first).to_be_visible()
    _charts_drawn(page, 4)
    expect(page.get_by_test_id("stMetric").filter(has_text="Biased CKA").first).to_be_visible()
    save_screenshot(page, "estimators")


def test_manipulate_train_and_stop_in_the_browser(page, app_url):
    page.goto(f"{app_url}/manipulate?man_epochs=200")
    wait_for_run(page)
    expect(page.get_by_test_id("stException")).to_have_count(0)
    _charts_drawn(page, 1)
    main = page.get_by_test_id("stMainBlockContainer")  # the header has its own "Stop" (the script's)
    main.get_by_role("button", name="Train").click()
    progress = page.get_by_test_id("stProgress")
    expect(progress).to_contain_text(re.compile(r"epoch ([3-9]|\d\d+) of 200"), timeout=90_000)  # training, live
    assert page.locator("[data-testid='stPlotlyChart']").count() >= 2  # the maps and the live curves
    main.get_by_role("button", name="Stop").click()
    expect(page.get_by_text(re.compile(r"stopped early after \d+ of 200 epochs"))).to_be_visible(timeout=60_000)
    wait_for_run(page)
    expect(page.get_by_test_id("stException")).to_have_count(0)
    expect(page.get_by_test_id("stMetric").filter(has_text="Test accuracy after")).to_be_visible()
    assert page.locator("[data-testid='stPlotlyChart']").count() >= 3  # now | target, before | target | after, history
    expect(main.get_by_role("button", name="Train")).to_be_enabled()
    save_screenshot(page, "manipulate")
