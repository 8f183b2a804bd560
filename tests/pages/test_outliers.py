"""Outliers page: every control moves what the theory says it moves."""
from __future__ import annotations

import numpy as np
import pytest

import sample_models
from cka_core import capture, translation_cka_limit

from .apptest import metric, open_page, rerun

PAGE = "pages/outliers.py"


@pytest.fixture(scope="module")
def at():
    return open_page(PAGE)


def test_cka_falls_as_c_grows_along_a_random_direction(at):
    values = []
    for log_c in (-1.0, 0.5, 1.0, 1.5, 2.5):
        at.slider(key="out_log_c").set_value(log_c)
        values.append(metric(rerun(at), "Linear CKA"))
    assert all(a > b for a, b in zip(values, values[1:])), values
    assert values[0] > 0.999 and values[-1] < 0.05


def test_limit_metric_is_the_theorem_value(at):
    rerun(at.radio(key="out_what").set_value("Random fraction"))
    at.slider(key="out_fraction").set_value(0.2)
    at.slider(key="out_log_c").set_value(4.0)
    rerun(at)
    shown_limit = metric(at, "Limit as c")
    assert abs(metric(at, "Linear CKA") - shown_limit) < 5e-3
    model = sample_models.load("mlp_seed0")
    X = capture(model, sample_models.digits().X_test, ["hidden3"])["hidden3"]
    mask = np.zeros(X.shape[0], bool)
    mask[np.random.default_rng(0).choice(X.shape[0], size=round(0.2 * X.shape[0]), replace=False)] = True
    assert abs(translation_cka_limit(X, mask) - shown_limit) < 1e-4


def test_null_space_translation_keeps_the_network_exactly(at):
    at.radio(key="out_what").set_value("Random fraction")
    at.selectbox(key="out_direction").set_value("Null space of the next layer")
    accuracies, ckas = [], []
    for log_c in (0.0, 2.0, 4.0):
        at.slider(key="out_log_c").set_value(log_c)
        rerun(at)
        accuracies.append(metric(at, "Network accuracy"))
        ckas.append(metric(at, "Linear CKA"))
    assert len(set(accuracies)) == 1
    assert ckas[-1] < 0.2 < 0.9 < ckas[0]


def test_decision_orthogonal_direction_keeps_the_probe(at):
    rerun(at.radio(key="out_what").set_value("One class"))
    at.selectbox(key="out_class").set_value(3)
    at.selectbox(key="out_direction").set_value("Orthogonal to the decision normals")
    at.slider(key="out_log_c").set_value(-2.0)
    base = metric(rerun(at), "Linear probe accuracy")
    at.slider(key="out_log_c").set_value(4.0)
    rerun(at)
    assert metric(at, "Linear probe accuracy") == base
    assert metric(at, "Linear CKA") < 0.5


def test_deep_link_restores_the_controls():
    at = open_page(PAGE, {"out_what": "Random fraction", "out_fraction": "0.3", "out_log_c": "1.5"})
    assert at.radio(key="out_what").value == "Random fraction"
    assert at.slider(key="out_fraction").value == pytest.approx(0.3)
    assert at.slider(key="out_log_c").value == pytest.approx(1.5)


def test_pca_view_has_the_moved_points(at):
    charts = at.get("plotly_chart")
    assert len(charts) >= 2


def test_a_recurrent_layer_the_network_cannot_continue_from_shows_no_network_accuracy():
    # rnn_adaptive continues only from its final state: on step3 the page must draw without it
    at = open_page("pages/outliers.py", {"src_model": "rnn_adaptive", "src_layer_rnn_adaptive": "step3"})
    assert not at.error, [e.value for e in at.error]
    assert 0.0 <= metric(at, "Linear CKA") <= 1.0
    assert next(m for m in at.metric if m.label.startswith("Network accuracy")).value == "—"


def test_a_null_space_direction_is_offered_only_where_the_next_layer_has_one():
    """Regression: on hidden1 (read by a full-rank 64 x 64 layer) picking "Null space of the next layer"
    replaced every metric and plot with an error; now the option is left out and the page says why."""
    at = open_page(PAGE, {"src_layer_mlp_seed0": "hidden1"})
    assert "Null space of the next layer" not in at.selectbox(key="out_direction").options
    assert any("Null space of the next layer" in c.value and "hidden2.linear" in c.value for c in at.caption)
    assert not at.error and metric(at, "Linear CKA") > 0.99
    at.selectbox(key="src_layer_mlp_seed0").set_value("hidden3")
    rerun(at)
    assert "Null space of the next layer" in at.selectbox(key="out_direction").options
    assert not any("is not offered" in c.value for c in at.caption)


def test_a_link_to_a_direction_that_does_not_apply_falls_back_with_a_notice():
    at = open_page(PAGE, {"src_layer_mlp_seed0": "hidden1", "out_direction": "Null space of the next layer"})
    assert not at.error, [e.value for e in at.error]
    assert at.selectbox(key="out_direction").value == "Random"
    assert any("out_direction" in w.value for w in at.warning)
