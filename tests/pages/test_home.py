"""Home page: explains CKA and links every pitfall page."""
from __future__ import annotations

from streamlit.testing.v1 import AppTest

from .apptest import ROOT


def test_home_renders_with_formula_and_links_to_every_pitfall_page():
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120).run()
    assert not at.exception
    assert "CKA" in at.title[0].value
    assert any("CKA" in latex.value for latex in at.get("latex"))
    links = [link.proto.page for link in at.get("page_link")]
    for page in ("outliers", "invariances", "separability", "function_preserving"):
        assert any(page in target for target in links), links
        assert (ROOT / "pages" / f"{page}.py").exists()
