"""Geadah et al.'s input-statistics shifts on the zoo's networks (sample_models.perturbations)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import sample_models
from sample_models import perturbations as P

NETWORKS = ["mlp_seed0", "mlp_gamma_homogeneous", "mlp_gamma_heterogeneous",
            "rnn_relu", "rnn_gamma_heterogeneous", "rnn_adaptive", "pixel_rnn_gamma_heterogeneous", "pixel_rnn_adaptive"]
SPECS = [P.Perturbation("sin_gain", frequency=1.5), P.Perturbation("noise", seed=4),
         P.Perturbation("drive", window=(2, 5)), P.Perturbation("noisy_drive", seed=3, window=(2, 5))]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny matrices: threads only fight over a small host's cores (as app.py does)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def data():
    return sample_models.digits()


@pytest.fixture(scope="module")
def models():
    return {name: sample_models.load(name) for name in NETWORKS}


# --- amplitude 0 is the clean network, exactly ----------------------------------------------------


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.kind)
def test_amplitude_zero_gives_the_clean_logits_bit_for_bit(models, data, spec):
    for name, model in models.items():
        clean = sample_models.predict(model, data.X_test)
        out = P.run_perturbed(model, data.X_test, spec, [0.0])
        assert np.array_equal(out.logits[0], clean), name
        assert sample_models.accuracy(out.logits[0], data.y_test) == sample_models.accuracy(clean, data.y_test)
        acc = P.accuracy_curve(model, data.X_test, data.y_test, spec, [0.0, 0.0])
        assert acc[0] == acc[1] == sample_models.accuracy(clean, data.y_test)


def test_input_perturbations_at_zero_return_the_input_unchanged(data):
    X = data.X_test
    assert np.array_equal(P.sin_gain(X, 0.0, 3.0), X)
    assert np.array_equal(P.gaussian_noise(X, 0.0, seed=7), X)
    for spec in SPECS:
        assert np.array_equal(P.perturb_inputs(X, spec, 0.0), X)


def test_the_shared_model_is_never_touched(models, data):
    model = models["rnn_adaptive"]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    P.run_perturbed(model, data.X_test[:20], P.Perturbation("drive", window=(1, 8)), [0.0, 1.5])
    P.adaptation_trace(model, data.X_test[:5], P.Perturbation("drive"), 1.0)
    assert all(not m._forward_hooks for m in model.modules())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


# --- each perturbation does what its formula says --------------------------------------------------


def test_sin_gain_multiplies_each_row_by_its_factor(data):
    X = data.X_test[:10]
    A, f = 0.7, 2.0
    out = P.sin_gain(X, A, f)
    factors = 1 + A * np.sin(2 * np.pi * f * np.arange(8) / 8)
    assert np.allclose(out.reshape(10, 8, 8), X.reshape(10, 8, 8) * factors[None, :, None].astype(np.float32))
    assert np.all(out[X == 0] == 0)  # the paper modulates the non-zero inputs: zeros stay zeros
    assert np.allclose(P.sin_gain_factors(A, f), factors)


def test_noise_is_a_fixed_pattern_scaled_by_its_amplitude(data):
    X = data.X_test
    a, b = P.gaussian_noise(X, 0.2, seed=3), P.gaussian_noise(X, 0.4, seed=3)
    assert np.array_equal(a, P.gaussian_noise(X, 0.2, seed=3))
    assert np.allclose(b - X, 2 * (a - X), atol=1e-6)
    assert abs(float(np.std(a - X)) - 0.2) < 0.01
    assert not np.array_equal(a, P.gaussian_noise(X, 0.2, seed=4))
    with pytest.raises(ValueError, match="standard deviation"):
        P.gaussian_noise(X, -0.1)


def _manual_rnn_relu(model, X, A, window):
    """h_t = relu(U x_t + b + W h_{t-1} + A 1[t in window]) written out, logits from h_8."""
    seq = torch.tensor(X).reshape(len(X), 8, 8)
    h = torch.zeros(len(X), model.hidden_size)
    with torch.no_grad():
        for t in range(1, 9):
            a = model.input(seq[:, t - 1]) + model.recurrent(h) + (A if window[0] <= t <= window[1] else 0.0)
            h = torch.relu(a)
        return model.logits(h).numpy(), h.numpy()


@pytest.mark.parametrize("window", [(1, 8), (3, 6), (8, 8)])
def test_rnn_step_drive_is_added_to_the_recurrent_pre_activation_in_its_window(models, data, window):
    model = models["rnn_relu"]
    X = data.X_test[:50]
    out = P.run_perturbed(model, X, P.Perturbation("drive", window=window), [0.8])
    logits, h = _manual_rnn_relu(model, X, 0.8, window)
    # float32 over 8 recurrent steps: round-off is relative to the largest value (|logits| reach ~55,
    # so 1.6e-5 apart on some CPUs), while a misplaced drive of 0.8 moves them by O(1)
    assert np.allclose(out.logits[0], logits, rtol=0, atol=1e-6 * np.abs(logits).max())
    assert np.allclose(out.hidden[0], h, rtol=0, atol=1e-6 * np.abs(h).max())


def test_mlp_step_drive_is_added_to_the_first_hidden_pre_activation(models, data):
    model = models["mlp_gamma_heterogeneous"]
    X = torch.tensor(data.X_test[:50])
    with torch.no_grad():
        z = model.hidden1.act(model.hidden1.linear(X) + 0.6)
        for block in (model.hidden2, model.hidden3):
            z = block(z)
        expected_hidden, expected = z.numpy(), model.logits(z).numpy()
    out = P.run_perturbed(model, data.X_test[:50], P.Perturbation("drive"), [0.6])
    assert np.allclose(out.logits[0], expected, atol=1e-5)
    assert np.allclose(out.hidden[0], expected_hidden, atol=1e-6)


def test_mlp_sin_gain_is_the_rnn_sin_gain_on_the_image_rows(models, data):
    """The same perturbed input reaches both kinds of network."""
    X = data.X_test[:30]
    spec = P.Perturbation("sin_gain", frequency=1.0)
    for name in ("mlp_seed0", "rnn_relu"):
        out = P.run_perturbed(models[name], X, spec, [0.5])
        assert np.array_equal(out.logits[0], sample_models.predict(models[name], P.sin_gain(X, 0.5, 1.0)))


def test_hidden_is_the_final_state_or_last_hidden_layer(models, data):
    from cka_core import capture

    X = data.X_test[:40]
    for name, layer in (("rnn_adaptive", "step8"), ("mlp_gamma_homogeneous", "hidden3")):
        out = P.run_perturbed(models[name], X, P.Perturbation("noise"), [0.0])
        assert np.allclose(out.hidden[0], capture(models[name], X, [layer])[layer].reshape(40, -1))


def test_adaptation_trace_rows_match_the_full_run(models, data):
    model, X = models["rnn_adaptive"], data.X_test[:60]
    spec = P.Perturbation("noise", seed=2)
    n_all, s_all = P.adaptation_trace(model, X, spec, 0.3)
    n_one, s_one = P.adaptation_trace(model, X, spec, 0.3, rows=[17])
    assert np.allclose(n_one[0], n_all[17], atol=1e-5) and np.allclose(s_one[0], s_all[17], atol=1e-6)
    n0, _ = P.adaptation_trace(model, X, spec, 0.0)
    assert np.array_equal(n0, model.adaptation_trace(X)[0])


# --- accuracy falls with amplitude (in expectation) ---------------------------------------------------

TOL = 0.02  # near chance an extra digit or two may come back right by luck


def _non_increasing(curve):
    return bool(np.all(np.diff(curve) <= TOL))


def test_accuracy_is_non_increasing_in_amplitude_on_every_zoo_network(models, data):
    grids = {"sin_gain": [0.0, 0.25, 0.5, 0.75, 1.0], "noise": [0.0, 0.1, 0.2, 0.3, 0.5],
             "drive": [0.0, 0.5, 1.0, 1.5, 2.0]}
    for name, model in models.items():
        curves = {
            "noise": np.mean([P.accuracy_curve(model, data.X_test, data.y_test, P.Perturbation("noise", seed=s),
                                               grids["noise"]) for s in range(3)], axis=0),
            "sin_gain": P.accuracy_curve(model, data.X_test, data.y_test, P.Perturbation("sin_gain"), grids["sin_gain"]),
            "drive": P.accuracy_curve(model, data.X_test, data.y_test, P.Perturbation("drive", window=(3, 6)),
                                      grids["drive"]),
        }
        for kind, curve in curves.items():
            assert _non_increasing(curve), (name, kind, curve)
            assert curve[-1] < curve[0] - 0.2, (name, kind, curve)  # the largest amplitude really hurts


# --- gamma and rank agreement ---------------------------------------------------------------------


@pytest.mark.parametrize("n,s", [(1.0, 0.0), (6.0, 0.5), (20.0, 1.0), (0.3, 0.8)])
def test_gamma_curve_matches_the_module_and_autograd(n, s):
    x = torch.linspace(-4, 4, 81, dtype=torch.float64, requires_grad=True)
    nn_ = torch.tensor(n, dtype=torch.float64, requires_grad=True)
    ss = torch.tensor(s, dtype=torch.float64, requires_grad=True)
    y = sample_models.gamma(x, nn_, ss)
    dx, dn, ds = (torch.autograd.grad(y.sum(), v, retain_graph=True)[0] for v in (x, nn_, ss))
    curves = P.gamma_curve(x.detach().numpy(), n, s)
    assert np.allclose(curves["gamma"], y.detach().numpy(), atol=1e-12)
    assert np.allclose(curves["dx"], dx.numpy(), atol=1e-10)
    assert np.isclose(curves["dn"].sum(), dn.item(), atol=1e-8)  # scalar n: grad sums over x
    assert np.isclose(curves["ds"].sum(), ds.item(), atol=1e-8)
    assert np.isclose(P.gamma_curve(0.0, n, s)["gamma"], (1 - s) * np.log(2) / n + s / 2)


def test_rank_agreement():
    up = P.rank_agreement([0.1, 0.5, 0.9], [0.2, 0.3, 0.8])
    assert up.spearman == pytest.approx(1.0) and up.kendall == pytest.approx(1.0) and up.tops_agree
    down = P.rank_agreement([0.1, 0.5, 0.9], [0.8, 0.3, 0.2])
    assert down.spearman == pytest.approx(-1.0) and not down.tops_agree
    flat = P.rank_agreement([0.5, 0.5, 0.5], [0.1, 0.2, 0.3])
    assert flat.spearman is None and flat.kendall is None and flat.top_a == (0, 1, 2)
    with pytest.raises(ValueError):
        P.rank_agreement([1.0], [1.0])


def test_bad_specs_are_refused(models):
    with pytest.raises(ValueError, match="kind"):
        P.Perturbation("blur")
    with pytest.raises(ValueError, match="window"):
        P.Perturbation("drive", window=(5, 2))
    with pytest.raises(ValueError, match="RNNs and MLPs"):
        P.sites(sample_models.load("cnn"))
    with pytest.raises(ValueError, match="adapt"):
        P.adaptation_trace(models["rnn_relu"], np.zeros((1, 64), np.float32), P.Perturbation("noise"), 0.1)


def _manual_pixel_rnn_relu(model, X, gain, drive):
    """h_t = relu(U gain_t x_{order[t]} + b + W h_{t-1} + drive_t) over the 64 pixel steps, written out."""
    order = np.random.RandomState(1).permutation(64)  # the zoo's permutation_seed
    assert np.array_equal(order, model.reading_order.numpy())
    X = torch.tensor(X)
    h = torch.zeros(len(X), model.hidden_size)
    with torch.no_grad():
        for t in range(64):
            x = X[:, order[t]].unsqueeze(1) * gain[t]
            h = torch.relu(model.input(x) + model.recurrent(h) + drive[t])
        return model.logits(h).numpy()


def test_pixel_rnn_sin_gain_follows_the_reading_order_and_the_drive_its_eighths(data):
    """Geadah et al.'s protocol: the pixel read at step t gets 1 + A sin(2 pi f t / 64); a drive on eighths 3-4
    covers steps 17-32 (1-based), their 200-400 of 784 scaled."""
    model = sample_models.load("pixel_rnn_relu")
    X = data.X_test[:40]
    t = np.arange(64)
    gain = 1 + 0.5 * np.sin(2 * np.pi * 2.0 * t / 64)
    out = P.run_perturbed(model, X, P.Perturbation("sin_gain", frequency=2.0), [0.5])
    expected = _manual_pixel_rnn_relu(model, X, gain.astype(np.float32), np.zeros(64))
    assert np.allclose(out.logits[0], expected, rtol=0, atol=1e-5 * np.abs(expected).max())
    drive = np.where((t >= 16) & (t <= 31), 0.7, 0.0).astype(np.float32)
    assert np.array_equal(P.drive_mask(64, (3, 4)).numpy(), drive / np.float32(0.7))
    out = P.run_perturbed(model, X, P.Perturbation("drive", window=(3, 4)), [0.7])
    expected = _manual_pixel_rnn_relu(model, X, np.ones(64, np.float32), drive)
    assert np.allclose(out.logits[0], expected, rtol=0, atol=1e-5 * np.abs(expected).max())
    assert np.array_equal(P.drive_mask(8, (3, 4)).numpy(), [0, 0, 1, 1, 0, 0, 0, 0])  # 8 steps: the steps themselves


def test_noisy_drive_is_the_drive_plus_a_fixed_pattern_of_variance_0_4_a(data):
    """Geadah et al.'s noise, N(5, 2) on the pre-activations in the window at A = 5: the step drive plus
    sqrt(0.4 A) z, z one standard-normal value per digit, step and unit from the seed; a run on some rows gets
    their rows of the pattern."""
    model = sample_models.load("pixel_rnn_relu")
    X = data.X_test[:40]
    z = P.noise_pattern((40, 64, model.hidden_size), seed=7)
    window = P.drive_mask(64, (3, 4)).numpy()
    order = model.reading_order.numpy()
    t = torch.tensor(X)
    h = torch.zeros(40, model.hidden_size)
    with torch.no_grad():
        for step in range(64):
            drive = torch.from_numpy(window[step] * (5.0 + np.float32(np.sqrt(2.0)) * z[:, step]))
            h = torch.relu(model.input(t[:, order[step]].unsqueeze(1)) + model.recurrent(h) + drive)
        expected = model.logits(h).numpy()
    out = P.run_perturbed(model, X, P.Perturbation("noisy_drive", seed=7, window=(3, 4)), [5.0])
    assert np.allclose(out.logits[0], expected, rtol=0, atol=1e-5 * np.abs(expected).max())
    other = P.run_perturbed(model, X, P.Perturbation("noisy_drive", seed=8, window=(3, 4)), [5.0])
    assert not np.allclose(other.logits[0], out.logits[0])
    aru = sample_models.load("pixel_rnn_adaptive")
    spec = P.Perturbation("noisy_drive", seed=7, window=(3, 4))
    full = P.adaptation_trace(aru, X, spec, 5.0)
    some = P.adaptation_trace(aru, X, spec, 5.0, rows=[3, 17])
    # float32 over 64 steps on batches of 2 and of 40: round-off, not a misplaced pattern (that moves n by O(1))
    assert np.abs(some[0] - full[0][[3, 17]]).max() < 1e-3 and np.abs(some[1] - full[1][[3, 17]]).max() < 1e-3
