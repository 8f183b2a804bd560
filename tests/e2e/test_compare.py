"""Compare page in real Chromium: two uploaded .npz files give a heatmap with their layer names;
the default zoo comparison computes intervals on a button press (the README screenshot)."""
from __future__ import annotations

import re

import numpy as np
import pytest
from playwright.sync_api import expect

from .conftest import save_screenshot, wait_for_run

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def npz_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("compare_e2e")
    rng = np.random.default_rng(0)
    z = rng.standard_normal((120, 3))
    np.savez(d / "model_a.npz", conv_early=(z @ rng.standard_normal((3, 2 * 4 * 4))).reshape(120, 2, 4, 4),
             dense_mid=z @ rng.standard_normal((3, 12)) + rng.standard_normal((120, 12)))
    np.savez(d / "model_b.npz", block_one=z @ rng.standard_normal((3, 9)) + 0.5 * rng.standard_normal((120, 9)),
             block_two=rng.standard_normal((120, 6)))
    return d / "model_a.npz", d / "model_b.npz"


def _choose_upload(page, side: int) -> None:
    radio = page.get_by_test_id("stRadio").filter(has_text="Upload files").nth(side)
    radio.get_by_text("Upload files").click()
    wait_for_run(page)


def test_upload_two_npz_files_and_see_the_heatmap(page, app_url, npz_files):
    page.goto(f"{app_url}/compare")
    wait_for_run(page)
    _choose_upload(page, 0)
    _choose_upload(page, 1)
    inputs = page.get_by_test_id("stFileUploaderDropzoneInput")
    expect(inputs).to_have_count(2)
    inputs.nth(0).set_input_files(str(npz_files[0]))
    wait_for_run(page)
    inputs.nth(1).set_input_files(str(npz_files[1]))
    wait_for_run(page)
    expect(page.get_by_test_id("stException")).to_have_count(0)
    expect(page.get_by_test_id("stAlertContentError")).to_have_count(0)
    heatmap = page.get_by_test_id("stPlotlyChart").first
    heatmap.locator(".main-svg").first.wait_for(timeout=30_000)
    for name in ("conv_early", "dense_mid", "block_one", "block_two"):
        expect(heatmap.locator("text", has_text=name).first).to_be_visible()
    expect(page.get_by_text("conv_early 2×4×4 → 32")).to_be_visible()  # the flattening is stated
    save_screenshot(page, "compare_upload")


def test_intervals_on_two_zoo_models(page, app_url):
    page.goto(f"{app_url}/compare")
    wait_for_run(page)
    page.get_by_role("button", name="Compute intervals and p-values").click()
    wait_for_run(page)
    expect(page.get_by_test_id("stMetric").filter(has_text="Cells beyond chance")).to_be_visible(timeout=60_000)
    expect(page.get_by_test_id("stException")).to_have_count(0)
    assert page.get_by_test_id("stPlotlyChart").count() >= 4  # heatmap, Gram scatter, spectra, contributions
    page.set_viewport_size({"width": 1400, "height": 1750})  # sources, metrics and the marked heatmap in one shot
    page.get_by_role("heading", name="Compare two models").scroll_into_view_if_needed()
    page.wait_for_timeout(500)
    save_screenshot(page, "compare")


def test_a_long_run_can_be_stopped(page, app_url):
    page.goto(f"{app_url}/compare")
    wait_for_run(page)
    page.get_by_text("Settings: bootstrap resamples").click()
    box = page.get_by_role("spinbutton", name="Bootstrap resamples")
    box.fill("2000")
    box.press("Enter")
    expect(page).to_have_url(re.compile(r"cmp_n_boot=2000"))  # the new count reached the server
    wait_for_run(page)
    page.get_by_role("button", name="Compute intervals and p-values").click()
    page.get_by_test_id("stProgress").wait_for(timeout=30_000)
    page.get_by_role("button", name="Stop computing").click()
    expect(page.get_by_text("nothing was stored")).to_be_visible(timeout=30_000)  # the job notices between resamples
    wait_for_run(page)
    expect(page.get_by_role("button", name="Compute intervals and p-values")).to_be_enabled()
    expect(page.get_by_test_id("stException")).to_have_count(0)


def test_a_run_goes_on_while_other_controls_are_used(page, app_url):
    """Regression: any click on the page restarted the script and lost the run."""
    page.goto(f"{app_url}/compare?cmp_n_boot=1500&cmp_n_perm=1500&cmp_seed=5")
    wait_for_run(page)
    page.get_by_role("button", name="Compute intervals and p-values").click()
    page.get_by_test_id("stProgress").wait_for(timeout=30_000)
    page.get_by_text("Fitted colours").click()  # a click elsewhere while the job runs
    expect(page).to_have_url(re.compile(r"cmp_fit_colours=true"))
    beyond = page.get_by_test_id("stMetric").filter(has_text="Cells beyond chance")
    expect(beyond).to_be_visible(timeout=180_000)
    expect(page.get_by_text("nothing was stored")).to_have_count(0)
    expect(page.get_by_test_id("stException")).to_have_count(0)
