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


def test_the_takeaway_says_what_the_network_and_its_layer_are():
    """Regression: the takeaway named mlp_deep and hidden5 without saying what they are. Both are described
    from the zoo's own records (its description, its layer names, the digits it was trained on), so the
    sentence follows the registry instead of drifting from it."""
    import sample_models

    from .apptest import takeaway_text

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120).run()
    text = takeaway_text(at)
    described = sample_models.ZOO["mlp_deep"].description.split(":")[0]
    training = len(sample_models.digits().y_train)
    assert f"mlp_deep ({described}, trained on the {training} training digits)" in text
    hidden = [name for name in sample_models.layer_names("mlp_deep") if name.startswith("hidden")]
    assert f"{hidden[-1]} (its {len(hidden)}th and last hidden layer) are rescaled" in text
    shown = next(m for m in at.metric if m.label == f"Linear CKA of {hidden[-1]}")
    assert f"linear CKA between {hidden[-1]} before and after is {shown.value}" in text


def test_layers_are_placed_among_the_hidden_layers():
    from ui.pitfalls import edits

    assert edits.layer_about("mlp_deep", "hidden1") == "hidden1 (its 1st hidden layer)"
    assert edits.layer_about("mlp_deep", "hidden2") == "hidden2 (its 2nd hidden layer)"
    assert edits.layer_about("mlp_deep", "hidden3") == "hidden3 (its 3rd hidden layer)"
    assert edits.layer_about("mlp_deep_wide", "hidden11") == "hidden11 (its 11th hidden layer)"
    assert edits.layer_about("mlp_deep_wide", "hidden14") == "hidden14 (its 14th and last hidden layer)"
