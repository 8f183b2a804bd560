"""A hostile model upload in real Chromium: a .pt2 whose zip shows torch a pickled weight (the
duplicate-name trick, with a canary) is refused with one error box naming the file, nothing runs,
and the same side then loads a real model: the app stays usable."""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests import model_files as mf
from tests.hostile import harness
from tests.hostile.cases_archives import duplicate, pickled_weights_beside, pt2_members

from .conftest import save_screenshot, wait_for_run

pytestmark = pytest.mark.e2e


def test_a_pt2_that_would_run_code_is_refused_and_the_page_stays_usable(page, app_url, tmp_path):
    evil = tmp_path / "upload.pt2"
    evil.write_bytes(duplicate(*pickled_weights_beside(pt2_members(), tmp_path)))
    page.goto(f"{app_url}/compare?cmp_a_kind=Your+model")
    wait_for_run(page)
    page.get_by_test_id("stFileUploaderDropzoneInput").first.set_input_files(str(evil))
    wait_for_run(page, timeout=120_000)
    errors = page.get_by_test_id("stAlertContentError")
    expect(errors.first).to_contain_text("upload.pt2", timeout=120_000)
    expect(errors.first).to_contain_text("two members are named alike")
    expect(page.get_by_test_id("stException")).to_have_count(0)
    assert not (tmp_path / harness.CANARY).exists(), "the file's code ran"
    save_screenshot(page, "hostile_upload")
    (tmp_path / "bert.zip").write_bytes(mf.zipped(mf.bert_directory()))
    expect(page.get_by_text("Loading upload.pt2")).to_have_count(0)  # the load's line and Stop are gone
    expect(page.get_by_role("button", name="Stop loading")).to_have_count(0)
    page.get_by_role("button", name="Remove upload.pt2").click()
    wait_for_run(page)
    page.get_by_test_id("stFileUploaderDropzoneInput").first.set_input_files(str(tmp_path / "bert.zip"))
    wait_for_run(page, timeout=120_000)
    expect(page.get_by_text("bert — huggingface").first).to_be_visible(timeout=120_000)
    expect(page.get_by_text("hidden_states.2").first).to_be_visible()  # its layers, ready to compare
    for name in ("upload.pt2", "bert"):  # (side B's sample model reads other examples: that error is expected)
        expect(page.get_by_test_id("stAlertContentError").filter(has_text=name)).to_have_count(0)
