"""Compare with your own models in real Chromium: a Hugging Face directory (zipped) on one side, an
ONNX graph of another network with its tokenizer on the other, a text file of inputs; the heatmap
names both models' layers, and a second reduction redraws it."""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

from sample_models import text
from tests import model_files as mf

from .conftest import save_screenshot, wait_for_run

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def model_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("models_e2e")
    (d / "bert_a.zip").write_bytes(mf.zipped(mf.bert_directory(0)))
    other = mf.bert_directory(1)
    (d / "bert_b.onnx").write_bytes(mf.onnx_bytes(other))
    (d / "tokenizer.json").write_bytes(mf.tokenizer_json(other))
    (d / "texts.txt").write_text("\n".join(text.sentences(40, seed=7)))
    return d


def test_upload_two_models_and_their_inputs_and_read_the_heatmap(page, app_url, model_files):
    page.goto(f"{app_url}/compare?cmp_a_kind=Your+model&cmp_b_kind=Your+model")
    wait_for_run(page)
    uploads = page.get_by_test_id("stFileUploaderDropzoneInput")
    expect(uploads).to_have_count(2)
    uploads.nth(0).set_input_files(str(model_files / "bert_a.zip"))
    wait_for_run(page, timeout=120_000)
    uploads.nth(1).set_input_files([str(model_files / "bert_b.onnx"), str(model_files / "tokenizer.json")])
    wait_for_run(page, timeout=120_000)
    page.get_by_test_id("stRadio").filter(has_text="Built-in sentences").get_by_text("Upload inputs").click()
    wait_for_run(page)
    page.get_by_test_id("stFileUploaderDropzoneInput").last.set_input_files(str(model_files / "texts.txt"))
    wait_for_run(page, timeout=120_000)
    expect(page.get_by_test_id("stException")).to_have_count(0)
    assert page.get_by_test_id("stAlertContentError").all_inner_texts() == []
    heatmap = page.get_by_test_id("stPlotlyChart").first
    heatmap.locator(".main-svg").first.wait_for(timeout=60_000)
    for name in ("hidden_states.2", "model.encoder.layer.1"):
        expect(heatmap.locator("text", has_text=name).first).to_be_visible()
    expect(page.get_by_test_id("stMetric").filter(has_text="Examples")).to_contain_text("40")
    expect(page.get_by_text("Same inputs")).to_be_visible()
    save_screenshot(page, "compare_models")
    page.get_by_test_id("stRadio").filter(has_text="Each layer becomes rows by").get_by_text("Last token").click()
    wait_for_run(page, timeout=120_000)
    expect(page.get_by_test_id("stAlertContentError")).to_have_count(0)
    expect(heatmap.locator("text", has_text="hidden_states.2").first).to_be_visible()
