"""The neurons' own activation curves: the γ(x; n, s) family, the (n, s) the zoo's networks learned, and the
adaptive RNN's units, whose (n, s) change at every step of a digit."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import streamlit as st

import sample_models
from sample_models import perturbations as pert

from .choices import ADAPTIVE, NETWORKS, model


@dataclass(frozen=True)
class GammaSummary:
    at_zero: float
    slope_at_zero: float
    max_slope: float
    at_four: float


def gamma_summary(n: float, s: float) -> GammaSummary:
    """γ(0), ∂γ/∂x at 0, the largest slope on [-4, 4] and γ(4) for the chosen (n, s)."""
    curves = pert.gamma_curve(np.linspace(-4.0, 4.0, 401), n, s)
    zero = pert.gamma_curve(0.0, n, s)
    return GammaSummary(float(zero["gamma"]), float(zero["dx"]), float(curves["dx"].max()), float(curves["gamma"][-1]))


@dataclass(frozen=True)
class DiversitySummary:
    mlp_spread_s: float           # std of s across neurons, mean over the heterogeneous MLP's layers
    rnn_spread_s: float
    rnn_spread_n: float
    adaptive_spread_mean_s: float


def diversity_summary() -> DiversitySummary:
    """How different the trained neurons' (n, s) became (standard deviations across neurons)."""
    groups = learned_parameters()
    het_mlp = [g for g in groups.values() if g["network"] == "mlp_gamma_heterogeneous"]
    rnn_het = next(g for g in groups.values() if g["network"] == "rnn_gamma_heterogeneous")
    aru = next(g for g in groups.values() if g["network"] == "rnn_adaptive")
    return DiversitySummary(float(np.mean([np.std(g["s"]) for g in het_mlp])), float(np.std(rnn_het["s"])),
                            float(np.std(rnn_het["n"])), float(np.std(aru["s"])))


def adaptive_units(protocol: str) -> list[int]:
    """The adaptive RNN's units, for the unit picker."""
    return list(range(model(ADAPTIVE[protocol]).hidden_size))


@st.cache_data(max_entries=2, show_spinner="Reading the learned gains and saturations…")
def learned_parameters() -> dict[str, dict[str, np.ndarray]]:
    """Per group (network · layer): n and s of every neuron. The adaptive RNN's (n, s) change at
    every step: its entries are each neuron's mean over the 8 steps and the test digits."""
    groups: dict[str, dict[str, np.ndarray]] = {}
    for name in ("mlp_gamma_homogeneous", "mlp_gamma_heterogeneous", "rnn_gamma_heterogeneous"):
        for layer, (n, s) in sample_models.gamma_parameters(model(name)).items():
            label = NETWORKS[name] + ("" if layer == "act" else f" · {layer}")
            groups[label] = {"n": n, "s": s, "network": name}
    n_t, s_t = clean_adaptive_trace("rows")
    groups[NETWORKS["rnn_adaptive"] + " · mean over steps"] = {
        "n": n_t.mean(axis=(0, 1)), "s": s_t.mean(axis=(0, 1)), "network": "rnn_adaptive"}
    return groups


@st.cache_data(max_entries=4, show_spinner=False)
def clean_adaptive_trace(protocol: str) -> tuple[np.ndarray, np.ndarray]:
    """The protocol's adaptive RNN's per-step (n, s) on the clean test digits, each (digits, steps, units) float32."""
    n_t, s_t = model(ADAPTIVE[protocol]).adaptation_trace(sample_models.digits().X_test)
    return n_t.astype(np.float32), s_t.astype(np.float32)


@st.cache_data(max_entries=256, show_spinner=False)
def digit_trace(protocol: str, index: int, kind: str, amplitude: float, frequency: float, seed: int,
                window: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The adaptive RNN's per-step (n, s) on test digit ``index`` under a perturbation, each (steps, units)."""
    spec = pert.Perturbation(kind, frequency=frequency, seed=seed, window=window)
    n_t, s_t = pert.adaptation_trace(model(ADAPTIVE[protocol]), sample_models.digits().X_test, spec, amplitude,
                                     rows=[index])
    return n_t[0], s_t[0]


def clean_digit_trace(protocol: str, index: int) -> tuple[np.ndarray, np.ndarray]:
    return digit_trace(protocol, index, "sin_gain", 0.0, 1.0, 0, (1, pert.EIGHTHS))


def trace_summary(protocol: str, index: int, kind: str, amplitude: float, frequency: float, seed: int,
                  window: tuple[int, int]) -> dict[str, float]:
    """How much digit ``index``'s adaptive units move: mean |n_{t+1} - n_t| (clean), the fraction of
    (unit, step) pairs with s outside (0, 1) (clean; clipped there, or past it in the unclamped units of
    Geadah et al.'s protocol), mean |n_t(perturbed) - n_t(clean)|."""
    n0, s0 = clean_digit_trace(protocol, index)
    n1, _ = digit_trace(protocol, index, kind, amplitude, frequency, seed, window)
    return {"gain_change": float(np.abs(np.diff(n0, axis=0)).mean()),
            "clipped": float(np.mean((s0 <= 0) | (s0 >= 1))),
            "gain_shift": float(np.abs(n1 - n0).mean())}


@st.cache_data(max_entries=4, show_spinner=False)
def most_adaptive_units(protocol: str, count: int) -> list[int]:
    """The adaptive RNN's units whose gain moves most from step to step (mean over the test digits)."""
    n_t, _ = clean_adaptive_trace(protocol)
    movement = np.abs(np.diff(n_t, axis=1)).mean(axis=(0, 1))
    return sorted(int(u) for u in np.argsort(movement)[::-1][:count])


def perturbed_digit(protocol: str, index: int, kind: str, amplitude: float, frequency: float, seed: int,
                    window: tuple[int, int]) -> np.ndarray:
    """Test digit ``index`` as the protocol's networks see it (8 x 8; the drive leaves the input unchanged)."""
    X = sample_models.digits().X_test
    spec = pert.Perturbation(kind, frequency=frequency, seed=seed, window=window)
    step_of_feature = pert.sites(model(ADAPTIVE[protocol])).step_of_feature
    return pert.perturb_inputs(X, spec, amplitude, step_of_feature)[index].reshape(8, 8)
