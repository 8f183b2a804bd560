"""The shared sidebar: every source kind reaches the pages, bad uploads are refused with a
clear message while the app keeps working."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from tests.files import npz_bytes as _npz
from tests.pages.apptest import finetuned, metric, open_page, rerun
from ui.frame import navigation

PAGE = "pages/outliers.py"


def _caption(at) -> str:
    return next(c.value for c in at.caption if c.value.startswith("Representation:"))


def test_synthetic_source_reaches_the_page():
    at = open_page(PAGE)
    rerun(at.radio(key="src_kind").set_value("Synthetic set"))
    rerun(at.slider(key="src_dim").set_value(20))
    assert "Gaussian clusters" in _caption(at) and "× 20 features" in _caption(at)
    rerun(at.selectbox(key="src_synth").set_value("Two cubes (Davari et al.)"))
    assert "Two cubes" in _caption(at)


def test_uploaded_npz_with_labels_is_used():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 6)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64)
    at = open_page(PAGE)
    rerun(at.radio(key="src_kind").set_value("Uploaded file"))
    at.file_uploader(key="src_upload").set_value(("acts.npz", _npz(hidden=X, labels=y), "application/octet-stream"))
    rerun(at)
    assert not at.error, [e.value for e in at.error]
    assert "acts.npz · hidden" in _caption(at) and "80 examples × 6 features" in _caption(at)
    assert 0.0 <= metric(at, "Linear probe accuracy") <= 1.0


def test_bad_uploads_show_an_error_and_the_page_still_works():
    bad_files = {
        "pickle.npy": _npy_with_pickle(),
        "nan.npz": _npz(h=np.array([[1.0, np.nan], [2.0, 3.0], [0.0, 1.0]])),
        "text.csv": b"a,b\n1,2\nx,4\n",
        "empty.npy": b"",
        "garbage.pt": b"\x00\x01not a checkpoint",
    }
    at = open_page(PAGE)
    rerun(at.radio(key="src_kind").set_value("Uploaded file"))
    for name, raw in bad_files.items():
        at.file_uploader(key="src_upload").set_value((name, raw, "application/octet-stream"))
        rerun(at)
        assert at.error, f"no error shown for {name}"
        assert name in at.error[0].value or "format" in at.error[0].value, at.error[0].value
        assert "mlp_seed0" in _caption(at)  # fell back to the default source; page still drawn
        assert at.metric, "page not drawn after a bad upload"


def _npy_with_pickle() -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    return buffer.getvalue()


def test_a_network_fine_tuned_in_this_session_can_be_picked_on_other_pages():
    at = open_page(PAGE)
    name = finetuned(at, "mlp_seed0")
    rerun(at)
    assert name in at.selectbox(key="src_model").options
    base_accuracy = metric(at, "Network accuracy")
    rerun(at.selectbox(key="src_model").set_value(name))
    assert name in _caption(at)
    # same weights as mlp_seed0: the network continued from its own layer gives the same accuracy
    assert metric(at, "Network accuracy") == base_accuracy
    rerun(at.selectbox(key="out_direction").set_value("Null space of the next layer"))
    assert not at.error


def test_the_representation_panel_says_where_it_is_not_used_and_keeps_its_choice():
    """Regression: the sidebar's Representation panel looked the same on pages that ignore it."""
    at = open_page(PAGE)
    rerun(at.selectbox(key="src_model").set_value("mlp_seed1"))
    for page in navigation.PAGES:
        at.switch_page(page.path)
        at = rerun(at)
        folded = [e for e in at.sidebar.expander if "not used on this page" in e.label]
        if page.uses_source:
            assert not folded and [h.value for h in at.sidebar.header] == ["Representation"], page.title
        else:
            assert len(folded) == 1 and not at.sidebar.header, page.title
            assert folded[0].selectbox(key="src_model").value == "mlp_seed1"  # the choice is kept, folded away
    at.switch_page(PAGE)
    at = rerun(at)
    assert at.selectbox(key="src_model").value == "mlp_seed1" and "mlp_seed1" in _caption(at)


def test_pages_that_read_the_representation_are_the_ones_marked_as_using_it():
    root = Path(__file__).resolve().parents[2]
    for page in navigation.PAGES:
        reads = "current_representation()" in (root / page.path).read_text()
        assert reads == page.uses_source, f"{page.path}: uses_source={page.uses_source} but reads it: {reads}"
