"""Manipulate page: targets, start / stop / resume of training, the result and the session's networks."""
from __future__ import annotations

import threading

import pytest

import sample_models
import ui.pitfalls.manipulate as man
from ui.jobs import Slots
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
    rerun(at.button(key="man_train").click())
    assert "man_job" not in at.session_state
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


def test_stop_keeps_the_best_so_far_and_a_rerun_resumes(monkeypatch):
    # One epoch per script run stands in for the browser interrupting the run with a click.
    monkeypatch.setattr(man, "EPOCHS_PER_RUN", 1)
    at = open_page(PAGE, {"man_epochs": "20"})
    rerun(at.button(key="man_train").click())
    job = at.session_state[man.JOB_KEY]
    assert job.run.epoch == 1
    assert at.button(key="man_train").disabled and not at.button(key="man_stop").disabled
    rerun(at)  # any other interaction: training resumes where it was
    assert at.session_state[man.JOB_KEY].run.epoch == 2
    rerun(at.button(key="man_stop").click())
    assert man.JOB_KEY not in at.session_state
    outcome = at.session_state[man.RESULT_KEY]
    assert outcome.stopped_early and outcome.epochs_run == 2 and outcome.best_epoch <= 2
    assert len(outcome.history) == 3
    assert metric(at, "Test accuracy after") > 0.9
    rerun(at)  # nothing restarts by itself
    assert man.JOB_KEY not in at.session_state and not at.button(key="man_train").disabled


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


def test_training_waits_for_a_free_server_slot_and_says_so(monkeypatch):
    """Trainings of all sessions share the server's slots: a job whose slot is taken waits (with a
    message) and trains once another session's epoch releases it."""
    slots = Slots(1)
    monkeypatch.setattr(man, "TRAINING_SLOTS", slots)
    monkeypatch.setattr(man, "SLOT_POLL_SECONDS", 0.05)
    monkeypatch.setattr(man, "EPOCHS_PER_RUN", 1)
    at = open_page(PAGE, {"man_epochs": "20"})
    slots.acquire()  # another session's epoch is running; it ends once the job has said it waits
    shown = []
    waiting = man.acquire_training_slot
    monkeypatch.setattr(man, "acquire_training_slot",
                        lambda slot: waiting(_Recorder(slot, shown, release=slots.release)))
    rerun(at.button(key="man_train").click())
    assert any("waiting for a free training slot" in text for text in shown)
    assert at.session_state[man.JOB_KEY].run.epoch == 1
    assert slots.acquire(blocking=False)  # the job gave its slot back after the epoch


class _Recorder:
    """A stand-in for the progress placeholder that records the waiting messages."""

    def __init__(self, slot, shown: list[str], release):
        self._slot, self._shown, self._release = slot, shown, release

    def info(self, text, **kwargs):
        self._shown.append(text)
        if len(self._shown) == 1:  # the other session's epoch ends after the first message, however slow the run
            threading.Timer(0.2, self._release).start()
        return self._slot.info(text, **kwargs)


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
