"""Manipulate page: targets, training in the server's worker pool (start, live epochs, Stop keeping the best
network, a click elsewhere, waiting in line), the result and the session's networks."""
from __future__ import annotations

import time

import pytest

import sample_models
import ui.jobs
import ui.pitfalls.manipulate as man
from cka_core.pitfalls.manipulation import ManipulationSettings, manipulate
from ui.sources import models

from .apptest import metric, open_page, rerun

PAGE = "pages/manipulate.py"


@pytest.fixture(scope="module")
def at():
    return open_page(PAGE)


def test_default_shows_the_map_now_and_the_identity_target(at):
    assert metric(at, "Test accuracy now") == pytest.approx(0.972, abs=1e-3)
    assert metric(at, "Mean |M − target| now") > 0.8  # the MLP's layers are all alike
    assert metric(at, "Layers in the map") == 6
    assert len(at.get("plotly_chart")) == 1  # the map now and the target, side by side
    assert not at.button(key="man_train").disabled and at.button(key="man_stop").disabled


def test_all_ones_target_is_almost_there_already(at):
    rerun(at.radio(key="man_target").set_value(man.TARGETS["ones"]))
    assert metric(at, "Mean |M − target| now") < 0.15


def test_bad_targets_show_an_error_and_disable_training(at):
    rerun(at.radio(key="man_target").set_value(man.TARGETS["pair"]))
    at.selectbox(key="man_pair_j_mlp_deep").set_value("hidden1")
    rerun(at)
    assert any("two different layers" in e.value for e in at.error)
    assert at.button(key="man_train").disabled
    rerun(at.radio(key="man_target").set_value(man.TARGETS["match"]))
    at.selectbox(key="man_match_model").set_value("rnn_relu")  # 9 layers: 6 of them, evenly spaced
    rerun(at)
    assert not at.error and not at.button(key="man_train").disabled
    at.multiselect(key="man_layers_mlp_deep").set_value(["hidden2"])
    rerun(at)
    assert any("at least two layers" in e.value for e in at.error)
    at.multiselect(key="man_layers_mlp_deep").set_value(sample_models.layer_names("mlp_deep"))
    rerun(at.radio(key="man_target").set_value(man.TARGETS["identity"]))


def test_custom_target_starts_from_the_current_map():
    at = open_page(PAGE, {"man_target": man.TARGETS["custom"]})
    assert metric(at, "Mean |M − target| now") < 0.005  # only the rounding to 2 decimals


def test_train_to_the_end_shows_before_target_after_and_keeps_the_network():
    at = open_page(PAGE, {"man_target": man.TARGETS["pair"], "man_pair_value": "0.5", "man_epochs": "3"})
    rerun(at.button(key="man_train").click())  # the run follows the job to its end, then shows the result
    assert man.JOB_KEY not in at.session_state
    assert metric(at, "Test accuracy after") > 0.9
    outcome = at.session_state[man.RESULT_KEY]
    assert metric(at, "Mean |M − target| after") == pytest.approx(outcome.mean_abs_after, abs=5e-4)
    assert metric(at, "Test accuracy after") == pytest.approx(outcome.accuracy_after, abs=5e-4)
    assert outcome.target[0, -1] == 0.5 and outcome.layers[0] == "hidden1" and outcome.layers[-1] == "logits"
    assert len(at.get("plotly_chart")) == 3  # now | target, before | target | after, history
    stored = at.session_state[models.FINETUNED_STATE]
    (label, entry), = stored.items()
    assert label.startswith("mlp_deep → ") and entry["network"].architecture == "mlp_deep"
    model = sample_models.load("mlp_deep")
    model.load_state_dict(entry["state"])  # a plain state dict of the zoo architecture
    assert outcome.label == label and outcome.epochs_run == 3 and not outcome.stopped_early
    assert any(label in s.value for s in at.success)
    # The worker trained what the library trains in this process from the same settings, seed and data.
    d = sample_models.digits()
    here = manipulate(sample_models.load("mlp_deep"), outcome.layers, outcome.target, d.X_train, d.y_train,
                      ManipulationSettings(epochs=3), X_eval=d.X_test, y_eval=d.y_test)
    assert [h["map_loss"] for h in outcome.history] == pytest.approx([r.map_loss for r in here.history], rel=1e-5)
    assert outcome.best_epoch == here.best_epoch and outcome.accuracy_after == pytest.approx(here.accuracy_after)


def _wait_for(condition, seconds: float = 120.0) -> None:
    deadline = time.perf_counter() + seconds
    while not condition():
        assert time.perf_counter() < deadline, "timed out"
        time.sleep(0.05)


def test_stop_keeps_the_best_so_far_and_a_click_elsewhere_does_not_end_the_training(monkeypatch):
    monkeypatch.setattr(ui.jobs, "FOLLOW_SECONDS", 0.0)  # each click arrives while the job runs
    at = open_page(PAGE, {"man_epochs": "200"})
    rerun(at.button(key="man_train").click())
    job = at.session_state[man.JOB_KEY]
    assert at.button(key="man_train").disabled and not at.button(key="man_stop").disabled
    _wait_for(lambda: len(job.rows) >= 2)  # the original and one epoch, reported live
    rerun(at.radio(key="man_target").set_value(man.TARGETS["ones"]))  # a click elsewhere
    assert at.session_state[man.JOB_KEY] is job and job.running
    records, best = man.from_rows(job.rows)
    assert [r.epoch for r in records] == list(range(len(records))) and 0 <= best < len(records)
    assert "epoch" in job.stage and "of 200" in job.stage
    rerun(at.button(key="man_stop").click())
    job.thread.join(timeout=120)
    rerun(at)
    assert man.JOB_KEY not in at.session_state and job.failure is None
    outcome = at.session_state[man.RESULT_KEY]
    assert outcome.stopped_early and 1 <= outcome.epochs_run < 200 and outcome.best_epoch <= outcome.epochs_run
    assert len(outcome.history) == outcome.epochs_run + 1 and len(job.rows) >= len(records)
    assert [h["map_loss"] for h in outcome.history[:len(records)]] == [r.map_loss for r in records]  # the live rows
    assert metric(at, "Test accuracy after") > 0.9
    rerun(at)  # nothing restarts by itself
    assert man.JOB_KEY not in at.session_state and not at.button(key="man_train").disabled


def test_training_waits_in_line_for_the_servers_worker_and_says_so(monkeypatch):
    """Trainings of all sessions share the server's worker pool: a job that finds every worker busy waits,
    says its place, and can be stopped there (nothing to keep)."""
    pool = ui.jobs.WorkerPool(1)
    monkeypatch.setattr(ui.jobs, "POOL", pool)
    monkeypatch.setattr(ui.jobs, "FOLLOW_SECONDS", 0.0)
    assert pool.slots.acquire()  # another session's job holds the one worker
    at = open_page(PAGE, {"man_epochs": "200"})
    rerun(at.button(key="man_train").click())
    job = at.session_state[man.JOB_KEY]
    _wait_for(lambda: job.waiting is not None)
    rerun(at)
    assert any("Waiting for the server's worker: next in line" in c.value for c in at.caption)
    rerun(at.button(key="man_stop").click())
    job.thread.join(timeout=30)
    rerun(at)
    assert job.result is None and man.RESULT_KEY not in at.session_state
    assert any("Stopped before the first epoch" in w.value for w in at.warning)
    pool.slots.release()
    rerun(at.button(key="man_train").click())  # the worker is free now: the next one trains
    job = at.session_state[man.JOB_KEY]
    _wait_for(lambda: len(job.rows) >= 2)
    rerun(at.button(key="man_stop").click())
    job.thread.join(timeout=120)
    rerun(at)
    assert at.session_state[man.RESULT_KEY].stopped_early and not at.warning


def test_match_target_offers_only_networks_with_enough_layers_and_its_default_works():
    """Regression: the default 'match' network (mlp_wide, 4 layers) against mlp_deep's 6 chosen layers
    showed an error and disabled Train."""
    at = open_page(PAGE, {"man_target": man.TARGETS["match"]})
    assert not at.error, [e.value for e in at.error]
    assert not at.button(key="man_train").disabled
    options = at.selectbox(key="man_match_model").options
    assert options and "mlp_wide" not in options and "cnn" not in options  # 4 layers each
    assert all(len(sample_models.layer_names(name)) >= 6 for name in options)
    assert any("mlp_wide" in c.value and "fewer" in c.value for c in at.caption)
    at.multiselect(key="man_layers_mlp_deep").set_value(["hidden1", "hidden3", "hidden5", "logits"])
    rerun(at)
    assert "mlp_wide" in at.selectbox(key="man_match_model").options  # 4 layers are enough now
    rerun(at.selectbox(key="man_match_model").set_value("mlp_wide"))
    assert not at.error and not at.button(key="man_train").disabled


def test_deep_link_restores_the_controls():
    at = open_page(PAGE, {"man_target": man.TARGETS["ones"], "man_epochs": "40", "man_lr": "0.001"})
    assert at.radio(key="man_target").value == man.TARGETS["ones"]
    assert at.slider(key="man_epochs").value == 40
    assert at.select_slider(key="man_lr").value == pytest.approx(1e-3)


def test_a_pixel_rnn_map_leaves_its_constant_first_steps_out():
    """A pixel-by-pixel RNN's first steps read only pixels blank in every digit: a map holding them is 0/0
    (the class load test met 'layer 0 is constant' here). They are neither offered nor in the default map,
    nor in a 'match' target built from such a network."""
    constant = models.constant_layers("pixel_rnn_relu")
    assert constant  # the premise: the RNN has such steps
    at = open_page(PAGE)
    rerun(at.selectbox(key="man_model").set_value("pixel_rnn_relu"))
    assert not at.error and not at.exception
    offered = at.multiselect(key="man_layers_pixel_rnn_relu").options
    assert offered and not set(constant) & set(offered)
    assert metric(at, "Layers in the map") == len(models.varying_layers("pixel_rnn_relu"))
    assert any("Left out" in c.value and constant[0] in c.value for c in at.caption)
    target, picked = man.match_target("pixel_rnn_relu", 6)
    assert not set(constant) & set(picked) and target.shape == (6, 6) and not (target != target).any()
