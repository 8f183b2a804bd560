"""Function-preserving edits page: every control keeps the network's outputs and moves CKA the way the
theory says (rescaling, null-space translation, invertible maps; Davari et al. 2023)."""
from __future__ import annotations

import numpy as np
import pytest

from .apptest import metric, open_page, rerun

PAGE = "pages/function_preserving.py"
EDIT = {"rescale": "Rescale neurons across the ReLU", "translate": "Translate in the next layer's null space",
        "invertible": "Invertible map, inverse in the next layer"}
LOGIT_TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def at():
    return open_page(PAGE)


def _setup(at, edit: str = "rescale", *, layer: str = "hidden5", precision: str = "float64",
           mode: str = "Random spread"):
    """Put the shared AppTest in a known state, whatever an earlier test left behind."""
    at.radio(key="fp_precision").set_value(precision)
    at.selectbox(key="fp_layer_mlp_deep").set_value(layer)
    at.radio(key="fp_edit").set_value(EDIT[edit])
    rerun(at)
    if edit == "rescale":
        rerun(at.radio(key="fp_scale_mode").set_value(mode))
    return at


def _state(at) -> tuple[float, float, float, float]:
    """(largest logit change, accuracy before, accuracy after, CKA(original, edited layer))."""
    return (metric(at, "Largest logit change"), metric(at, "Accuracy (original)"), metric(at, "Accuracy (edited)"),
            metric(at, "Linear CKA"))


def _sweep(at, key: str, values) -> list[float]:
    """Move slider ``key`` through ``values``; at each step the network must be unchanged. Returns the CKAs."""
    ckas = []
    for value in values:
        rerun(at.slider(key=key).set_value(value))
        change, before, after, cka = _state(at)
        assert change < LOGIT_TOLERANCE, (key, value, change)
        assert after == before, (key, value, before, after)
        assert not at.error, [e.value for e in at.error]
        ckas.append(cka)
    return ckas


def _decreasing(values) -> bool:
    return all(a > b for a, b in zip(values, values[1:]))


def test_default_view_renders_everything():
    at = open_page(PAGE)
    assert at.selectbox(key="fp_model").value == "mlp_deep"
    assert at.selectbox(key="fp_layer_mlp_deep").value == "hidden5"
    assert at.radio(key="fp_edit").value == EDIT["rescale"]
    change, before, after, cka = _state(at)
    assert change < 1e-9                                  # float64 by default: exact up to roundoff
    assert before == after and 0.9 < before <= 1.0
    assert 0.0 < cka < 1.0
    charts = at.get("plotly_chart")
    assert len(charts) == 4                               # per-layer bars + before / after / difference maps
    theory = next(box for box in at.expander if box.label == "Theory")
    assert any("ReLU" in node.value for node in theory.get("latex"))


def test_spread_lowers_cka_and_keeps_outputs(at):
    _setup(at)
    ckas = _sweep(at, "fp_spread", [0.0, 0.5, 1.0, 2.0, 3.0])
    assert ckas[0] == pytest.approx(1.0, abs=1e-9)        # d = 1: nothing changed
    assert _decreasing(ckas), ckas


def test_seed_and_layer_keep_outputs(at):
    _setup(at)
    _sweep(at, "fp_seed", [3, 7, 0])
    for layer in ("hidden1", "hidden3", "hidden5"):
        rerun(at.selectbox(key="fp_layer_mlp_deep").set_value(layer))
        change, before, after, cka = _state(at)
        assert change < LOGIT_TOLERANCE and before == after and cka < 1.0


def test_one_neuron_times_k(at):
    _setup(at, mode="One neuron × k")
    assert metric(at, "Largest logit change") < LOGIT_TOLERANCE
    ckas = _sweep(at, "fp_log_k", [0.0, 1.0, 2.0, 3.0])
    assert ckas[0] == pytest.approx(1.0, abs=1e-9) and _decreasing(ckas), ckas
    assert not at.info                                    # the default neuron is a live one
    _sweep(at, "fp_neuron_w64", [5, 40])


def test_invertible_map_kappa(at):
    _setup(at, "invertible")
    ckas = _sweep(at, "fp_log_kappa", [0.0, 1.0, 2.0, 4.0, 6.0])
    assert ckas[0] == pytest.approx(1.0, abs=1e-9)        # kappa = 1: an orthogonal map, CKA invariant
    assert _decreasing(ckas), ckas
    _sweep(at, "fp_seed", [4, 0])


def test_null_space_translation(at):
    _setup(at, "translate")
    ckas = _sweep(at, "fp_log_c", [-2.0, 0.0, 1.0, 3.0])
    assert ckas[0] > 0.99 and _decreasing(ckas) and ckas[-1] < 0.1, ckas
    fractions = _sweep(at, "fp_fraction", [0.05, 0.5, 1.0])
    assert fractions[-1] == pytest.approx(1.0, abs=1e-9)  # every example moved: a constant shift, CKA ignores it


def test_translation_after_a_full_rank_layer_explains_itself(at):
    _setup(at, "translate", layer="hidden2")
    assert any("full column rank" in node.value for node in at.info)
    assert not at.error
    assert metric(at, "Model accuracy") > 0.9
    assert len(at.get("plotly_chart")) == 1               # the original map is still shown
    rerun(at.selectbox(key="fp_layer_mlp_deep").set_value("hidden5"))
    assert not at.info and metric(at, "Largest logit change") < LOGIT_TOLERANCE


def test_float32_is_exact_enough_until_kappa_is_huge(at):
    _setup(at, precision="float32")
    assert metric(at, "Largest logit change") < LOGIT_TOLERANCE
    rerun(at.radio(key="fp_edit").set_value(EDIT["invertible"]))
    rerun(at.slider(key="fp_log_kappa").set_value(1.0))
    assert metric(at, "Largest logit change") < LOGIT_TOLERANCE
    rerun(at.slider(key="fp_log_kappa").set_value(6.0))   # float32 roundoff times kappa = 1e6
    assert metric(at, "Largest logit change") > 1e-3
    assert at.error or at.warning                         # shown as a bad case, page still usable
    assert not at.exception
    rerun(at.radio(key="fp_precision").set_value("float64"))
    assert metric(at, "Largest logit change") < LOGIT_TOLERANCE and not at.error and not at.warning


@pytest.mark.parametrize("name", ["mlp_seed0", "mlp_wide"])
def test_other_networks(name):
    at = open_page(PAGE, {"fp_model": name, "fp_spread": "2"})
    layers = at.selectbox(key=f"fp_layer_{name}")
    assert layers.value == "hidden3" and len(layers.options) == 3
    change, before, after, cka = _state(at)
    assert change < LOGIT_TOLERANCE and before == after and cka < 0.95
    assert len(at.get("plotly_chart")) == 4


def test_url_restores_the_controls():
    at = open_page(PAGE, {"fp_edit": EDIT["invertible"], "fp_log_kappa": "3", "fp_seed": "5",
                          "fp_layer_mlp_deep": "hidden2"})
    assert at.radio(key="fp_edit").value == EDIT["invertible"]
    assert at.slider(key="fp_log_kappa").value == pytest.approx(3.0)
    assert at.slider(key="fp_seed").value == 5
    assert at.selectbox(key="fp_layer_mlp_deep").value == "hidden2"
    assert "hidden2" in " ".join(m.label for m in at.metric)
    assert metric(at, "Largest logit change") < LOGIT_TOLERANCE


def test_maps_on_the_page_are_the_networks_maps(at):
    """The 'before' heatmap is the CKA map of the zoo network; the edited one differs only in the
    edited layer's row and column."""
    import base64
    import json

    _setup(at, layer="hidden3")
    specs = {spec["layout"]["title"]["text"]: spec
             for spec in (json.loads(chart.proto.spec) for chart in at.get("plotly_chart"))}

    def z(spec):
        values = spec["data"][0]["z"]
        if isinstance(values, dict):
            return np.frombuffer(base64.b64decode(values["bdata"]), values["dtype"]).reshape(
                [int(v) for v in str(values["shape"]).split(",")])
        return np.asarray(values, dtype=float)

    import sample_models
    from cka_core import capture, cka_matrix

    model = sample_models.load("mlp_deep").double()
    layers = capture(model, sample_models.digits().X_test.astype(np.float64), sample_models.layer_names(model))
    before, after = z(specs["mlp_deep: CKA map, original"]), z(specs["mlp_deep: CKA map, edited"])
    np.testing.assert_allclose(z(specs["CKA map: edited − original"]), after - before, atol=1e-9)
    np.testing.assert_allclose(before, cka_matrix(layers), atol=1e-9)
    changed = np.abs(after - before) > 1e-9
    index = list(layers).index("hidden3")
    assert changed[index].any()
    changed[index, :] = changed[:, index] = False
    assert not changed.any()


def test_a_network_fine_tuned_in_this_session_can_be_edited():
    """Regression: the Manipulate page said a fine-tuned network "can be picked on the other pages",
    but this page offered only the zoo's ReLU MLPs."""
    from .apptest import finetuned

    at = open_page(PAGE)
    zoo = _state(at)
    name = finetuned(at, "mlp_deep")
    rerun(at)
    assert name in at.selectbox(key="fp_model").options
    assert "mlp_untrained" not in at.selectbox(key="fp_model").options  # trained networks only
    rerun(at.selectbox(key="fp_model").set_value(name))
    assert not at.error, [e.value for e in at.error]
    assert _state(at) == zoo  # the zoo's weights under another name: the same edit, the same numbers
