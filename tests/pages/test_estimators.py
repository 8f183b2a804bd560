"""Estimators page: each panel shows the effect its theory predicts, and bad cases stay usable."""
from __future__ import annotations

import numpy as np
import pytest

from cka_core import linear_cka
from ui.pitfalls import estimators as est

from .apptest import finetuned, metric, open_page, rerun

PAGE = "pages/estimators.py"


@pytest.fixture(scope="module")
def at():
    return open_page(PAGE)


def test_every_panel_draws(at):
    assert len(at.get("plotly_chart")) == 4
    assert len(at.expander) >= 4  # one Theory box per panel


def test_null_bias_matches_d_over_d_plus_n(at):
    # default n = 100, d = 1000: biased ~ 0.91 for independent data, debiased ~ 0 (notes R10)
    assert metric(at, "Biased CKA") == pytest.approx(metric(at, "Expected d / (d + n − 1)"), abs=0.02)
    assert metric(at, "Expected d / (d + n − 1)") == pytest.approx(1000 / 1099, abs=1e-4)
    assert abs(metric(at, "Debiased CKA")) < 0.03
    at.select_slider(key="est_n").set_value(500)
    at.select_slider(key="est_d").set_value(50)
    rerun(at)
    assert metric(at, "Biased CKA") == pytest.approx(50 / 549, abs=0.02)
    assert abs(metric(at, "Debiased CKA")) < 0.03


def test_minibatch_debiased_is_stable_biased_is_not(at):
    at.slider(key="est_batch").set_value(8)
    rerun(at)
    text = next(m.value for m in at.metric if m.label.startswith("Full data"))
    full_debiased, full_biased = (float(v) for v in text.split(" / "))
    mb_debiased, mb_biased = metric(at, "Minibatch CKA, debiased"), metric(at, "Minibatch CKA, biased")
    assert abs(mb_debiased - full_debiased) < 0.05
    assert abs(mb_biased - full_biased) > 2 * abs(mb_debiased - full_debiased)


def test_float32_cancellation_grows_with_the_offset(at):
    at.slider(key="est_log_offset").set_value(0.0)
    rerun(at)
    assert abs(metric(at, "Uncentred float32 Gram") - metric(at, "Reference")) < 1e-4
    assert not at.error
    at.slider(key="est_log_offset").set_value(4.0)
    rerun(at)
    assert abs(metric(at, "Uncentred float32 Gram") - metric(at, "Reference")) > 0.1
    assert abs(metric(at, "cka_core (centred in float64)") - metric(at, "Reference")) < 1e-4
    assert any("round-off" in e.value for e in at.error)  # shown as an error, page still usable
    assert len(at.get("plotly_chart")) == 4


def test_rbf_bandwidth_limits(at):
    at.slider(key="est_log_sigma").set_value(-2.0)
    rerun(at)
    assert metric(at, "RBF CKA(X, Y)") > 0.99
    assert metric(at, "RBF CKA(X, random noise)") > 0.99  # anything looks identical
    at.slider(key="est_log_sigma").set_value(2.0)
    rerun(at)
    assert metric(at, "RBF CKA(X, Y)") == pytest.approx(metric(at, "Linear CKA(X, Y)"), abs=2e-3)


def test_a_source_without_layers_compares_two_layers_of_a_zoo_model():
    at = open_page(PAGE, {"src_kind": "Synthetic set"})
    assert any("no other layers" in i.value for i in at.info)
    assert len(at.get("plotly_chart")) == 4
    at.selectbox(key="est_y_mlp_seed0").set_value("hidden1")
    at.selectbox(key="est_x_mlp_seed0").set_value("hidden1")
    rerun(at)
    assert metric(at, "Linear CKA(X, Y)") == pytest.approx(1.0)


def test_deep_link_restores_the_controls():
    at = open_page(PAGE, {"est_n": "50", "est_d": "5000", "est_log_sigma": "-1.0"})
    assert at.select_slider(key="est_n").value == 50 and at.select_slider(key="est_d").value == 5000
    assert at.slider(key="est_log_sigma").value == pytest.approx(-1.0)
    assert metric(at, "Biased CKA") > 0.98  # notes R10: (n, d) = (50, 5000) -> 0.99


def test_uncentred_float32_estimator_is_wrong_only_with_an_offset():
    rng = np.random.default_rng(0)
    X = rng.random((200, 30))
    Y = X @ rng.standard_normal((30, 20)) + 0.5 * rng.random((200, 20))
    reference = linear_cka(X, Y)
    assert est.uncentred_float32_cka(X, Y) == pytest.approx(reference, abs=1e-4)
    assert abs(est.uncentred_float32_cka(X + 1e4, Y + 1e4) - reference) > 0.05
    x32, y32 = est.with_offset(X, 1e4), est.with_offset(Y, 1e4)
    exact = linear_cka(x32.astype(np.float64), y32.astype(np.float64))  # the same float32 values in float64
    assert linear_cka(x32, y32) == pytest.approx(exact, abs=1e-5)  # DESIGN: 1e-5 for float32 input
    assert abs(est.uncentred_float32_cka(x32, y32) - exact) > 0.05


def test_a_network_fine_tuned_in_this_session_gets_every_section():
    """Regression: with a fine-tuned network in the sidebar the page said "Unknown sample model" and
    drew no section after the first (it asked sample_models about a network it did not know)."""
    at = open_page("pages/estimators.py")
    name = finetuned(at, "mlp_deep")
    rerun(at)
    rerun(at.selectbox(key="src_model").set_value(name))
    assert not at.error, [e.value for e in at.error]
    assert [t.label for t in at.tabs][1:] == ["2 · Minibatch CKA and the batch size", "3 · float32 cancellation",
                                              "4 · RBF bandwidth"]
    shown = [m.label for m in at.metric]
    assert all(any(m.startswith(label) for m in shown) for label in
               ["Minibatch CKA, debiased", "Uncentred float32 Gram", "RBF CKA(X, random noise)"]), shown
    other = at.selectbox(key="est_other_mlp_deep")
    assert "hidden3" not in other.options and "hidden1" in other.options  # the sidebar holds hidden3
    assert any(name in c.value for c in at.caption)
