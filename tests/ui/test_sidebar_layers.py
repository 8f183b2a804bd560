"""The sidebar offers only layers that vary across the test digits: an RNN's first steps read pixels
blank in every digit, and every page would say CKA is 0/0 there (found by the protocol load test)."""
from __future__ import annotations

from tests.pages.apptest import open_page, rerun
from ui.sources import models


def test_a_pixel_rnn_offers_only_layers_that_vary_and_says_which_it_left_out():
    at = open_page("pages/outliers.py")
    at = rerun(at.selectbox(key="src_model").set_value("pixel_rnn_relu"))
    constant = models.constant_layers("pixel_rnn_relu")
    assert constant  # the premise: its first steps are constant
    offered = at.selectbox(key="src_layer_pixel_rnn_relu").options
    assert offered and not set(offered) & set(constant)
    assert set(offered) | set(constant) == set(models.get("pixel_rnn_relu").layers)
    assert any(constant[0] in c.value and "Left out" in c.value for c in at.sidebar.caption)
    assert not at.error, [e.value for e in at.error]


def test_the_triangle_section_leaves_an_rnns_constant_steps_out():
    """Found by the protocol load test: Invariances tested every layer of the sidebar's network for the
    triangle inequality, an RNN's constant first steps included, and showed a 0/0 error."""
    at = open_page("pages/invariances.py")
    at = rerun(at.selectbox(key="src_model").set_value("pixel_rnn_adaptive"))
    assert not at.error, [e.value for e in at.error]


def test_estimators_offers_no_constant_layer_for_x_or_y():
    """Found by the protocol load test in CI: with a synthetic source, Estimators' sample-model pair
    offered an RNN's constant first step as X, and its panels showed a 0/0 error."""
    at = open_page("pages/estimators.py", {"src_kind": "Synthetic set"})
    at = rerun(at.selectbox(key="est_model").set_value("pixel_rnn_relu"))
    constant = set(models.constant_layers("pixel_rnn_relu"))
    for key in ("est_x_pixel_rnn_relu", "est_y_pixel_rnn_relu"):
        assert not constant & set(at.selectbox(key=key).options)
    assert not at.error, [e.value for e in at.error]
    at = open_page("pages/estimators.py")
    at = rerun(at.selectbox(key="src_model").set_value("pixel_rnn_relu"))
    assert not constant & set(at.selectbox(key="est_other_pixel_rnn_relu").options)
    assert not at.error, [e.value for e in at.error]
