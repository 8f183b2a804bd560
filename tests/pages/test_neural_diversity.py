"""Neural diversity page: the controls move what they say, the numbers are the core's numbers."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr

import sample_models
from cka_core import linear_cka
from sample_models import perturbations as P

from .apptest import metric, open_page, rerun

PAGE = "pages/neural_diversity.py"
LABELS = {  # page label -> zoo model
    "MLP ReLU": "mlp_seed0",
    "MLP γ homog.": "mlp_gamma_homogeneous",
    "MLP γ heterog.": "mlp_gamma_heterogeneous",
    "RNN ReLU": "rnn_relu",
    "RNN γ heterog.": "rnn_gamma_heterogeneous",
    "RNN adaptive": "rnn_adaptive",
}


@pytest.fixture(scope="module")
def at():
    return open_page(PAGE)


def _core(spec: P.Perturbation, amplitude: float):
    """Accuracy (clean, perturbed) and CKA(clean, perturbed) of every network, from the core directly."""
    data = sample_models.digits()
    out = {}
    for label, name in LABELS.items():
        run = P.run_perturbed(sample_models.load(name), data.X_test, spec, [0.0, amplitude])
        acc = [sample_models.accuracy(logits, data.y_test) for logits in run.logits]
        out[label] = (acc[0], acc[1], linear_cka(run.hidden[0], run.hidden[1]))
    return out


def test_every_section_draws(at):
    assert len(at.get("plotly_chart")) >= 9
    assert [h.value for h in at.header][:5] == [
        "1 · The γ(x; n, s) family", "2 · How diverse the trained neurons became",
        "3 · Robustness to shifts in the input statistics", "4 · What CKA says about robustness",
        "5 · Adaptive units along one digit"]
    assert len(at.expander) >= 4  # the Theory boxes (and the sidebar's)
    assert not at.error


def test_default_numbers_are_the_core_numbers_and_the_verdict_follows_them(at):
    """Default: gain modulation A = 0.5, f = 1 (Geadah et al.'s test setting)."""
    core = _core(P.Perturbation("sin_gain", frequency=1.0), 0.5)
    for label, (clean, now, cka) in core.items():
        assert metric(at, f"{label} · accuracy") == pytest.approx(now, abs=6e-4)
        assert metric(at, f"{label} · CKA") == pytest.approx(cka, abs=6e-5)
    ckas = [v[2] for v in core.values()]
    retained = [v[1] / v[0] for v in core.values()]
    assert metric(at, "Spearman ρ") == pytest.approx(spearmanr(ckas, retained).statistic, abs=6e-4)
    statement = (at.success or at.warning)[0].value
    best = max(core, key=lambda k: core[k][1] / core[k][0])
    assert "at A = 0.5" in statement and best in statement


def test_amplitude_zero_is_the_clean_network(at):
    at.slider(key="nd_amp_sin").set_value(0.0)
    rerun(at)
    data = sample_models.digits()
    for label, name in LABELS.items():
        clean = sample_models.accuracy(sample_models.predict(sample_models.load(name), data.X_test), data.y_test)
        assert metric(at, f"{label} · accuracy") == pytest.approx(clean, abs=6e-4)
        assert metric(at, f"{label} · CKA") == 1.0
    assert any("nothing is perturbed" in i.value for i in at.info)
    at.slider(key="nd_amp_sin").set_value(0.5)
    rerun(at)


def test_noise_and_drive_controls_reach_the_core(at):
    rerun(at.radio(key="nd_kind").set_value("Gaussian noise (std A)"))  # its sliders are enabled after the rerun
    at.slider(key="nd_amp_noise").set_value(0.3)
    at.slider(key="nd_seed").set_value(2)
    rerun(at)
    core = _core(P.Perturbation("noise", seed=2), 0.3)
    assert metric(at, "RNN adaptive · accuracy") == pytest.approx(core["RNN adaptive"][1], abs=6e-4)
    assert metric(at, "MLP ReLU · CKA") == pytest.approx(core["MLP ReLU"][2], abs=6e-5)

    rerun(at.radio(key="nd_kind").set_value("Step drive +A on pre-activations"))
    at.slider(key="nd_amp_drive").set_value(1.0)
    at.slider(key="nd_window").set_value((8, 8))
    rerun(at)
    core = _core(P.Perturbation("drive", window=(8, 8)), 1.0)
    for label in ("RNN ReLU", "MLP γ heterog."):
        assert metric(at, f"{label} · accuracy") == pytest.approx(core[label][1], abs=6e-4)
    at.radio(key="nd_kind").set_value("Gain modulation 1 + A·sin(2πf·t/T)")
    rerun(at)


def test_presets_set_the_sliders_and_moving_a_slider_makes_it_custom(at):
    at.selectbox(key="nd_preset").set_value("ReLU-like")
    rerun(at)
    assert at.slider(key="nd_gain").value == 20.0 and at.slider(key="nd_saturation").value == 0.0
    assert metric(at, "Slope at 0") == pytest.approx(0.5, abs=1e-3)  # (1 - s)/2 + s n/4
    at.selectbox(key="nd_preset").set_value("Sigmoid-like")
    rerun(at)
    assert metric(at, "γ(0)") == pytest.approx(0.5, abs=1e-3)
    at.slider(key="nd_gain").set_value(4.0)
    rerun(at)
    assert at.selectbox(key="nd_preset").value == "Custom"
    assert metric(at, "Slope at 0") == pytest.approx(1.0, abs=1e-3)


def test_adaptive_trace_controls_and_the_empty_selection(at):
    at.slider(key="nd_digit").set_value(42)
    rerun(at)
    assert metric(at, "Label") == sample_models.digits().y_test[42]
    at.multiselect(key="nd_units").set_value([])
    rerun(at)
    assert any("at least one unit" in e.value for e in at.error)
    assert len(at.get("plotly_chart")) >= 8  # the rest of the page is still there
    at.multiselect(key="nd_units").set_value([0, 5])
    rerun(at)
    assert not at.error


def test_deep_link_restores_the_controls():
    at = open_page(PAGE, {"nd_kind": "Gaussian noise (std A)", "nd_amp_noise": "0.1", "nd_digit": "7",
                          "nd_gain": "2.5"})
    assert at.radio(key="nd_kind").value == "Gaussian noise (std A)"
    assert at.slider(key="nd_amp_noise").value == pytest.approx(0.1)
    assert at.slider(key="nd_digit").value == 7
    assert at.slider(key="nd_gain").value == pytest.approx(2.5)


def test_verdict_reports_bad_cases_instead_of_failing():
    from ui.neural_diversity import NETWORKS, Sweep, verdict

    m, k = len(NETWORKS), 3
    acc = np.tile(np.array([0.9, 0.8, 0.7]), (m, 1))
    cka = np.full((m, k), np.nan)
    cka[:, 0] = 1.0
    cka[0, 1:] = 0.5  # only one network with a defined CKA
    s = Sweep(np.array([0.0, 0.5, 1.0]), acc, cka, np.full((k, m, m), np.nan), ~np.isfinite(cka),
              np.zeros((m, k, 3), np.int8))
    assert verdict(s, 1).level == "error"
    assert verdict(s, 0).level == "info"
    cka[:, 1] = np.linspace(0.2, 0.9, m)  # every CKA defined, every network kept the same accuracy
    assert verdict(s, 1).level == "info" and "same accuracy" in verdict(s, 1).text
    acc[:, 1] = np.linspace(0.3, 0.8, m)  # the order by CKA is the order by accuracy retained
    good = verdict(s, 1)
    assert good.level == "success" and "**correctly**" in good.text
    acc[:, 1] = acc[::-1, 1]
    bad = verdict(s, 1)
    assert bad.level == "warning" and "**wrongly**" in bad.text and bad.agreement.spearman == pytest.approx(-1.0)
