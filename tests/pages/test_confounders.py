"""AppTest of the Confounders page: the chart's CKA and dCKA curves are the independent reference's
values on the zoo's layers, the takeaway follows them, any reference and partner set works (the
CNN against its freshly initialised twin), and a link restores the choices."""
from __future__ import annotations

import base64
import json
from urllib.parse import parse_qs

import numpy as np
import pytest
import torch

import sample_models
from cka_core import capture

from tests.cka_core import reference as ref

from .apptest import open_page, rerun, takeaway_text

PAGE = "pages/confounders.py"


def _zoo(name: str) -> dict[str, np.ndarray]:
    data = sample_models.digits()
    acts = capture(sample_models.load(name), data.X_test, sample_models.layer_names(name))
    return {k: np.asarray(v, dtype=np.float64).reshape(v.shape[0], -1) for k, v in acts.items()}


def _series(at, key: str = "con_curves") -> dict[str, np.ndarray]:
    chart = next(c for c in at.get("plotly_chart") if c.proto.id.endswith(key))
    out = {}
    for trace in json.loads(chart.proto.spec)["data"]:
        y = trace["y"]
        if isinstance(y, dict) and "bdata" in y:
            y = np.frombuffer(base64.b64decode(y["bdata"]), y["dtype"])
        out[trace["name"]] = np.asarray(y, dtype=float)
    return out


@pytest.fixture(scope="module")
def shared():
    return open_page(PAGE)


def test_default_curves_are_the_reference_values(shared):
    at = shared
    assert at.multiselect(key="con_partners").value == ["mlp_seed1", "mlp_untrained", "mlp_shuffled_labels"]
    series = _series(at)
    ours, pixels = _zoo("mlp_seed0"), sample_models.digits().X_test
    for partner in ("mlp_seed1", "mlp_untrained", "mlp_shuffled_labels"):
        theirs = _zoo(partner)
        np.testing.assert_allclose(series[f"{partner}: CKA"], [ref.linear_cka(ours[k], theirs[k]) for k in ours],
                                   atol=1e-6)
        np.testing.assert_allclose(series[f"{partner}: dCKA"],
                                   [ref.deconfounded_cka(ours[k], theirs[k], pixels) for k in ours], atol=1e-6)
    np.testing.assert_allclose(series["CKA with the pixels"], [ref.linear_cka(pixels, ours[k]) for k in ours],
                               atol=1e-6)
    # Cui et al.'s finding on the zoo: the pixels explain much of the untrained network's similarity
    # at the first layer, little of the retrained one's.
    untrained, seed = series["mlp_untrained: dCKA"][0] / series["mlp_untrained: CKA"][0], \
        series["mlp_seed1: dCKA"][0] / series["mlp_seed1: CKA"][0]
    assert untrained < 0.6 < 0.8 < seed


def test_takeaway_states_the_shown_numbers(shared):
    series = _series(shared)
    text = takeaway_text(shared)
    for name in ("mlp_untrained: CKA", "mlp_seed1: CKA", "mlp_untrained: dCKA", "mlp_seed1: dCKA"):
        assert f"{series[name][0]:.2f}" in text, (name, text)
    share = series["mlp_untrained: dCKA"][0] / series["mlp_seed1: dCKA"][0]
    assert f"{share:.0%}" in text and "most of what made it look similar was the inputs" in text


def test_metrics_and_compare_link(shared):
    labels = [m.label for m in shared.metric]
    assert labels == ["mlp_seed1 at hidden1: dCKA", "mlp_untrained at hidden1: dCKA",
                      "mlp_shuffled_labels at hidden1: dCKA"]
    link = next(p for p in shared.get("page_link") if "Compare" in p.proto.label)
    assert link.proto.page == "compare"
    assert parse_qs(link.proto.query_string) == {"cmp_a_model": ["mlp_seed0"], "cmp_b_model": ["mlp_seed1"],
                                                 "cmp_measure": ["Deconfounded CKA (dCKA)"]}


def test_the_compare_link_opens_compare_with_dcka():
    at = open_page("pages/compare.py", {"cmp_a_model": "mlp_seed0", "cmp_b_model": "mlp_seed1",
                                         "cmp_measure": "Deconfounded CKA (dCKA)"})
    assert at.selectbox(key="cmp_measure").value == "Deconfounded CKA (dCKA)" and not at.error
    assert at.selectbox(key="cmp_confounder").value == "the digits' pixels"


def test_a_cnn_against_its_fresh_untrained_twin():
    at = open_page(PAGE, {"con_reference": "cnn"})
    assert at.multiselect(key="con_partners").value == ["untrained twin"]
    torch.manual_seed(sample_models.ZOO["cnn"].seed)
    twin = sample_models.build(sample_models.ZOO["cnn"].config).eval()
    ours = _zoo("cnn")
    theirs = {k: np.asarray(v, dtype=np.float64).reshape(v.shape[0], -1)
              for k, v in capture(twin, sample_models.digits().X_test, list(ours)).items()}
    series = _series(at)
    np.testing.assert_allclose(series["untrained twin: dCKA"],
                               [ref.deconfounded_cka(ours[k], theirs[k], sample_models.digits().X_test) for k in ours],
                               atol=1e-6)
    assert "untrained twin" in takeaway_text(at) and not at.error


def test_no_partner_is_an_info_not_an_error(shared):
    at = rerun(shared.multiselect(key="con_partners").set_value([]))
    assert any("Pick at least one network" in i.value for i in at.info) and not at.error
    rerun(at.multiselect(key="con_partners").set_value(["mlp_seed1", "mlp_untrained",
                                                                   "mlp_shuffled_labels"]))


def test_the_layer_control_moves_the_metrics_and_the_takeaway(shared):
    at = rerun(shared.selectbox(key="con_layer").set_value("hidden3"))
    series = _series(at)
    assert [m.label for m in at.metric][0] == "mlp_seed1 at hidden3: dCKA"
    assert at.metric[0].value == f"{series['mlp_seed1: dCKA'][2]:.3f}"
    text = takeaway_text(at)
    assert "At hidden3," in text
    assert f"{series['mlp_untrained: dCKA'][2]:.2f}" in text
    rerun(at.selectbox(key="con_layer").set_value("hidden1"))


def test_networks_with_a_layer_every_digit_leaves_the_same_are_not_offered(shared):
    """The pixel-by-pixel RNNs' first steps are constant over the test digits (CKA 0/0 there, which the load test
    once hit as an error box); they are left out of the references, every other trained network with a partner
    is offered."""
    options = shared.selectbox(key="con_reference").options
    assert not any(name.startswith("pixel_rnn") for name in options)
    assert {"mlp_seed0", "mlp_deep_wide", "cnn", "rnn_adaptive"} <= set(options)
    for name in ("pixel_rnn_relu", "pixel_rnn_adaptive"):
        first = _zoo(name)["step1"]
        assert np.ptp(first, axis=0).max() == 0  # why: the same state for every digit


def _colours(at) -> dict[str, str]:
    """Each partner's line colour in the chart (its CKA and dCKA lines share it)."""
    chart = next(c for c in at.get("plotly_chart") if c.proto.id.endswith("con_curves"))
    colours: dict[str, set] = {}
    for trace in json.loads(chart.proto.spec)["data"]:
        if ": " in trace["name"] and trace["name"] != "CKA with the pixels":
            colours.setdefault(trace["name"].split(": ")[0], set()).add(trace["line"]["color"])
    assert all(len(c) == 1 for c in colours.values()), colours
    return {partner: c.pop() for partner, c in colours.items()}


def test_each_network_keeps_its_colour_whatever_else_is_shown():
    """Issue 25: line colours went by a partner's place in the list, so they moved when the partners or the
    reference changed. Every partner keeps one colour across runs and choices, and no two share one."""
    at = open_page(PAGE)
    seen: dict[str, str] = {}
    for reference, partners in (("mlp_seed0", ["mlp_seed1", "mlp_untrained", "mlp_shuffled_labels"]),
                                ("mlp_seed0", ["mlp_shuffled_labels", "mlp_seed2", "mlp_seed1"]),
                                ("mlp_wide", ["mlp_seed0", "untrained twin", "mlp_untrained", "mlp_seed1"]),
                                ("mlp_seed1", ["mlp_gamma_heterogeneous", "mlp_seed0", "mlp_wide", "mlp_seed2"])):
        rerun(at.selectbox(key="con_reference").set_value(reference))
        rerun(at.multiselect(key="con_partners").set_value(partners))
        colours = _colours(at)
        assert sorted(colours) == sorted(partners)
        assert len(set(colours.values())) == len(colours), colours  # one colour each in a chart
        for partner, colour in colours.items():
            assert seen.setdefault(partner, colour) == colour, (reference, partner, seen[partner], colour)
    assert len(set(seen.values())) == len(seen)


def test_changing_the_reference_keeps_the_choices_that_still_fit():
    """Issue 25: mlp_seed0 -> mlp_wide at layer logits reset the layer and dropped the trained partner. The layer
    and the partners stay wherever the new reference has them; what cannot stay is said, with the reason."""
    at = open_page(PAGE)
    rerun(at.selectbox(key="con_layer").set_value("logits"))
    partners = ["mlp_seed1", "mlp_untrained", "mlp_shuffled_labels"]
    rerun(at.selectbox(key="con_reference").set_value("mlp_wide"))
    assert at.selectbox(key="con_layer").value == "logits" and at.multiselect(key="con_partners").value == partners
    assert [m.label for m in at.metric][0] == "mlp_seed1 at logits: dCKA" and "At logits," in takeaway_text(at)
    assert not at.info  # nothing changed, nothing to say
    series, ours = _series(at), _zoo("mlp_wide")
    np.testing.assert_allclose(series["mlp_seed1: CKA"][-1], ref.linear_cka(ours["logits"], _zoo("mlp_seed1")["logits"]),
                               atol=1e-6)

    rerun(at.selectbox(key="con_reference").set_value("mlp_seed1"))  # a partner becomes the reference
    assert at.multiselect(key="con_partners").value == ["mlp_wide", "mlp_untrained", "mlp_shuffled_labels"]
    [note] = [i.value for i in at.info]
    assert "mlp_seed1 is now the reference, so mlp_wide takes its place among the partners" in note

    rerun(at.selectbox(key="con_reference").set_value("cnn"))  # none of them has the CNN's layers
    assert at.selectbox(key="con_layer").value == "logits"
    assert at.multiselect(key="con_partners").value == ["untrained twin"]
    [note] = [i.value for i in at.info]
    assert "mlp_wide, mlp_untrained and mlp_shuffled_labels do not have cnn's layers" in note
    assert "showing its default partner, untrained twin" in note and not at.error

    rerun(at.selectbox(key="con_layer").set_value("conv2"))
    assert not at.info  # said once, on the change
    rerun(at.selectbox(key="con_reference").set_value("rnn_relu"))  # no conv2 there
    assert at.selectbox(key="con_layer").value == "step1"
    assert at.multiselect(key="con_partners").value == ["untrained twin"]
    [note] = [i.value for i in at.info]
    assert "rnn_relu has no layer conv2, so the numbers read step1" in note
    assert [m.label for m in at.metric][0] == "untrained twin at step1: dCKA"


def test_the_untrained_twin_becomes_the_zoos_untrained_network():
    from ui.pitfalls import confounders as con

    layer, partners, note = con.carried_over("mlp_wide", "mlp_seed0", "hidden2", ["untrained twin", "mlp_seed0"])
    assert layer == "hidden2" and partners == ["mlp_untrained", "mlp_wide"]
    assert "the untrained twin of mlp_seed0 is the zoo's mlp_untrained" in note
    assert "mlp_seed0 is now the reference, so mlp_wide takes its place" in note
    assert con.carried_over("mlp_seed0", "mlp_seed2", "hidden1", ["mlp_seed1"]) == ("hidden1", ["mlp_seed1"], "")
