"""Fine-tuning toward a target CKA map: Algorithm 1, model selection, data discipline, and a reduced
but real run that reaches its target while keeping test accuracy."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import sample_models
from cka_core import RepresentationError
from cka_core.pitfalls.manipulation import (ManipulationSettings, MapManipulator, check_target, identity_target,
                                            manipulate, off_diagonal_mean_abs, ones_target, pair_target,
                                            stratified_split, update_lambda)

# A reduced setting that fits CI: three of the 6-layer MLP's layers, 60 instead of 150 epochs
# (everything else as in the app's default run), a few seconds on one core.
REDUCED_LAYERS = ("hidden1", "hidden3", "logits")
REDUCED = ManipulationSettings(epochs=60, warmup_epochs=6)


def test_lambda_follows_algorithm_1_on_a_scripted_accuracy_sequence():
    original, eta = 0.95, 1.0
    accuracies = [0.95, 0.93, 0.945, 0.9405, 0.90, 0.96, 0.935]
    # drops (points): 0, 2, 0.5, 0.95, 5, -1, 1.5   -> up, down, up, up, down, up, down
    expected, lam = [], 500.0
    for factor in (1 / 0.8, 0.8, 1 / 0.8, 1 / 0.8, 0.8, 1 / 0.8, 0.8):
        lam *= factor
        expected.append(lam)
    lam, got = 500.0, []
    for acc in accuracies:
        lam = update_lambda(lam, original, acc, eta)
        got.append(lam)
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    # exactly eta points lower is "not more than eta": lambda grows
    assert update_lambda(10.0, 0.9, 0.89, 1.0) == pytest.approx(12.5)


def test_targets_and_their_validation():
    np.testing.assert_array_equal(identity_target(3), np.eye(3))
    np.testing.assert_array_equal(ones_target(2), np.ones((2, 2)))
    current = np.array([[1.0, 0.3, 0.2], [0.3, 1.0, 0.4], [0.2, 0.4, 1.0]])
    t = pair_target(current, 0, 2, 0.9)
    assert t[0, 2] == t[2, 0] == 0.9 and t[0, 1] == 0.3
    assert current[0, 2] == 0.2  # the current map is not modified
    for bad, message in ((np.ones((2, 3)), "shape"), (np.array([[1, 0.2], [0.3, 1]]), "symmetric"),
                         (np.array([[0.5, 0.2], [0.2, 1]]), "diagonal"), (np.array([[1, 2.0], [2.0, 1]]), "range"),
                         (np.array([[1, np.nan], [np.nan, 1]]), "NaN")):
        with pytest.raises(RepresentationError, match=message):
            check_target(bad, 2)
    assert off_diagonal_mean_abs(np.eye(3), ones_target(3)) == 1.0


def test_settings_are_validated():
    with pytest.raises(ValueError, match="batch_size"):
        ManipulationSettings(batch_size=3)
    with pytest.raises(ValueError, match="temperature"):
        ManipulationSettings(temperature=0)


def test_validation_split_is_stratified_disjoint_and_seeded():
    y = np.repeat(np.arange(4), [10, 20, 30, 40])
    fit, val = stratified_split(y, 0.2, seed=3)
    assert np.intersect1d(fit, val).size == 0 and np.union1d(fit, val).size == y.size
    assert [int(np.sum(y[val] == c)) for c in range(4)] == [2, 4, 6, 8]
    again = stratified_split(y, 0.2, seed=3)
    np.testing.assert_array_equal(val, again[1])


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """As in the app (app.py): tiny matrices, so extra threads only fight over the cores (on a busy
    2-core machine a 1-second run takes a minute with the default thread count)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def digits():
    return sample_models.digits()


@pytest.fixture(scope="module")
def reduced_run(digits):
    """The reduced identity run (a few seconds), with every epoch record seen by the callback."""
    model = sample_models.load("mlp_deep")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    seen = []
    result = manipulate(model, REDUCED_LAYERS, identity_target(3), digits.X_train, digits.y_train, REDUCED,
                        callback=lambda record, run: seen.append(record), X_eval=digits.X_test, y_eval=digits.y_test)
    return model, before, result, seen


def test_reduced_run_reaches_identity_and_keeps_test_accuracy(reduced_run):
    _, _, result, _ = reduced_run
    assert result.best_epoch > 0
    assert result.mean_abs_error_before > 0.7          # the layers start out very alike
    assert result.mean_abs_error_after <= 0.1, result.map_after
    assert 100 * (result.accuracy_before - result.accuracy_after) <= 1.0
    assert result.evaluation == "evaluation set"
    # the maps are full-data debiased CKA of the returned network on the test split
    from cka_core.pitfalls.manipulation import evaluation_map
    np.testing.assert_allclose(result.map_after, evaluation_map(result.model, sample_models.digits().X_test,
                                                                REDUCED_LAYERS), atol=1e-12)


def test_reduced_run_reaches_all_ones_and_keeps_test_accuracy(digits):
    result = manipulate(sample_models.load("mlp_deep"), REDUCED_LAYERS, ones_target(3), digits.X_train,
                        digits.y_train, ManipulationSettings(epochs=30, warmup_epochs=3),
                        X_eval=digits.X_test, y_eval=digits.y_test)
    assert result.mean_abs_error_after <= 0.05 < result.mean_abs_error_before
    assert 100 * (result.accuracy_before - result.accuracy_after) <= 1.0


def test_reduced_run_history_selection_and_lambda(reduced_run):
    _, _, result, seen = reduced_run
    history = result.history
    assert [r.epoch for r in history] == list(range(REDUCED.epochs + 1)) and seen == history
    # lambda: each epoch's value follows Algorithm 1 from the previous epoch's validation accuracy
    original = history[0].val_accuracy
    for prev, now in zip(history[1:], history[2:]):
        assert now.lam == pytest.approx(update_lambda(prev.lam, original, prev.val_accuracy, REDUCED.eta))
    # the kept network: lowest validation map loss among epochs within the tolerance
    eligible = [r for r in history if r.accuracy_drop <= REDUCED.eta]
    assert result.best_epoch == min(eligible, key=lambda r: r.map_loss).epoch
    assert not result.stopped_early


def test_the_original_network_is_untouched(reduced_run):
    model, before, result, _ = reduced_run
    for name, value in model.state_dict().items():
        assert torch.equal(value, before[name])
    assert not any(p.requires_grad for p in model.parameters())
    assert not any(p.requires_grad for p in result.model.parameters()) and not result.model.training
    assert not any(m._forward_hooks for m in result.model.modules())


def test_callback_returning_false_stops_with_the_best_so_far(digits):
    calls = []

    def stop_after_two(record, run):
        calls.append(record.epoch)
        return record.epoch < 2

    result = manipulate(sample_models.load("mlp_seed0"), ("hidden1", "logits"), identity_target(2),
                        digits.X_train, digits.y_train, ManipulationSettings(epochs=10),
                        callback=stop_after_two)
    assert calls == [0, 1, 2] and len(result.history) == 3
    assert result.stopped_early and result.best_epoch <= 2
    assert result.evaluation == "validation split" and result.accuracy_after is not None


def test_epoch_zero_is_the_original_so_a_stop_at_once_returns_it(digits):
    run = MapManipulator(sample_models.load("mlp_seed0"), ("hidden1", "hidden2"), ones_target(2),
                         digits.X_train, digits.y_train, ManipulationSettings(epochs=5))
    run.stop()
    assert run.done
    result = run.result()
    assert result.best_epoch == 0 and result.stopped_early
    np.testing.assert_allclose(result.map_after, result.map_before)


def test_bad_inputs_are_refused(digits):
    model = sample_models.load("mlp_seed0")
    with pytest.raises(RepresentationError, match="at least two layers"):
        MapManipulator(model, ("hidden1",), np.eye(1), digits.X_train, digits.y_train)
    with pytest.raises(RepresentationError, match="unknown"):
        MapManipulator(model, ("hidden1", "nope"), np.eye(2), digits.X_train, digits.y_train)
    with pytest.raises(RepresentationError, match="labels"):
        MapManipulator(model, ("hidden1", "logits"), np.eye(2), digits.X_train, digits.y_train[:-1])
