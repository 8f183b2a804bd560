"""Cached computations and figures of the Neural diversity page (Geadah et al.; docs/theory.md §10).

Everything is keyed on small descriptors (perturbation kind and its settings); the zoo models come
from the registry (:func:`ui.sources.models.module`) and are never edited (perturbations run on private copies). The
amplitude slider moves on the same grid the curves are computed on, so a new amplitude is a cache
hit: one cold sweep per perturbation setting (under a second), then milliseconds.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
import streamlit as st
from plotly.subplots import make_subplots

import sample_models
from cka_core.cka.matrix import cka_matrix_or_nan
from sample_models import perturbations as pert
from sample_models.zoo import PIXEL_RNN_SEEDS

from .frame import figures
from .frame.widgets import percent
from .sources import models

# The two sets of networks whose robustness is compared: how they read the digit -> label.
PROTOCOLS = {
    "pixels": "Geadah et al.'s protocol: pixel by pixel, 64 steps",
    "rows": "The zoo's networks: row by row, 8 steps (and MLPs)",
}
# The networks of each protocol, in display order: code -> short label.
NETWORK_SETS = {
    "pixels": {
        "pixel_rnn_relu": "RNN ReLU",
        "pixel_rnn_gamma_homogeneous": "RNN γ homog.",
        "pixel_rnn_gamma_heterogeneous": "RNN γ heterog.",
        "pixel_rnn_adaptive": "RNN adaptive",
    },
    "rows": {
        "mlp_seed0": "MLP ReLU",
        "mlp_gamma_homogeneous": "MLP γ homog.",
        "mlp_gamma_heterogeneous": "MLP γ heterog.",
        "rnn_relu": "RNN ReLU",
        "rnn_gamma_heterogeneous": "RNN γ heterog.",
        "rnn_adaptive": "RNN adaptive",
    },
}
# Section 2's networks (the zoo's, with their learned (n, s)).
NETWORKS = NETWORK_SETS["rows"]
ADAPTIVE = {"pixels": "pixel_rnn_adaptive", "rows": "rnn_adaptive"}
NETWORKS_CAPTION = {
    "pixels": "RNNs of 64 units reading one pixel per step in a fixed random order, as Geadah et al.'s read psMNIST, "
              "with their initialisation and training (Adam, learning rate cut on a validation plateau).",
    "rows": "Dashed: MLPs (the same change applied along the image rows, the drive on the first hidden layer); solid: "
            "RNNs reading one row per step.",
}
_COLOURS = {"ReLU": "#8c564b", "γ homog.": "#1f77b4", "γ heterog.": "#2ca02c", "adaptive": "#d62728"}
LABELS = {name: label for networks in NETWORK_SETS.values() for name, label in networks.items()}
NETWORK_COLOURS = {name: ("#7f7f7f" if label == "MLP ReLU" else _COLOURS[label.split(" ", 1)[1]])
                   for name, label in LABELS.items()}
NETWORK_DASH = {name: ("dash" if name.startswith("mlp") else "solid") for name in LABELS}

PERTURBATIONS = {
    "sin_gain": "Gain modulation 1 + A·sin(2πf·t/T)",
    "noise": "Gaussian noise (std A)",
    "drive": "Step drive +A on pre-activations",
    "noisy_drive": "Noisy drive N(A, 0.4A) on pre-activations",
}
# The amplitude slider of each kind: (max, step, default). Its values are the grid of the curves.
AMPLITUDES = {
    "sin_gain": (1.0, 0.1, 0.5),   # Geadah et al. test at A = 0.5, f = 1
    "noise": (0.5, 0.05, 0.2),     # pixels are in [0, 1]
    "drive": (2.0, 0.2, 1.0),      # Geadah et al. add +1
    "noisy_drive": (6.0, 0.5, 5.0),  # Geadah et al.'s noise: N(5, 2)
}

# gamma presets: code -> (label, n, s)
PRESETS = {
    "custom": ("Custom", None, None),
    "softplus": ("Softplus-like", 1.0, 0.0),
    "sigmoid": ("Sigmoid-like", 1.0, 1.0),
    "relu": ("ReLU-like", 20.0, 0.0),
    "init": ("As initialised", 6.0, 0.5),
}


def grid(kind: str) -> np.ndarray:
    """Amplitudes of the curves: 0 to the slider's maximum in the slider's steps."""
    top, step, _ = AMPLITUDES[kind]
    return np.round(np.arange(0.0, top + step / 2, step), 10)


def snap(kind: str, amplitude: float) -> int:
    """Index of the grid amplitude nearest to ``amplitude``."""
    return int(np.argmin(np.abs(grid(kind) - amplitude)))


def model(name: str):
    return models.module(name)


def test_count() -> int:
    """How many test digits there are (the digit slider's range)."""
    return len(models.digits().y_test)


def last_test_index() -> int:
    return test_count() - 1


def test_label(index: int) -> int:
    return int(models.digits().y_test[index])


def adaptive_units(protocol: str) -> list[int]:
    """The adaptive RNN's units, for the unit picker."""
    return list(range(model(ADAPTIVE[protocol]).hidden_size))


def preset_values(label: str) -> tuple[float | None, float | None]:
    """(n, s) of the preset shown as ``label`` (None for Custom)."""
    _, n, s = next(values for values in PRESETS.values() if values[0] == label)
    return n, s


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


@dataclass(frozen=True)
class NetworkNow:
    """One network at the chosen amplitude."""

    label: str
    clean: float
    accuracy: float
    cka: float | None              # None where undefined (a constant hidden layer)


def networks_now(s: "Sweep", k: int) -> list[NetworkNow]:
    return [NetworkNow(LABELS[name], float(s.accuracy[i, 0]), float(s.accuracy[i, k]),
                       float(s.cka_self[i, k]) if np.isfinite(s.cka_self[i, k]) else None)
            for i, name in enumerate(s.names)]


def _adaptive_index(s: "Sweep") -> int:
    return next(i for i, name in enumerate(s.names) if name in ADAPTIVE.values())


def adaptive_predictions(s: "Sweep", k: int, index: int) -> tuple[int, int]:
    """The adaptive RNN's answer on test digit ``index``, clean and under the perturbation."""
    aru = _adaptive_index(s)
    return int(s.predictions[aru, 0, index]), int(s.predictions[aru, k, index])


def kind_settings(kind: str, frequency: float, seed: int, window: tuple[int, int]) -> tuple[float, int, tuple[int, int]]:
    """(frequency, seed, window) with the settings of the other kinds at their defaults, so that
    moving a disabled slider does not recompute (only the chosen kind's settings key the cache)."""
    return (float(frequency) if kind == "sin_gain" else 1.0, int(seed) if kind in ("noise", "noisy_drive") else 0,
            (int(window[0]), int(window[1])) if kind in pert.DRIVES else (1, pert.EIGHTHS))


# --- the sweep: every network x every amplitude ---------------------------------------------------


@dataclass(frozen=True)
class Sweep:
    """Accuracy and CKA of every network (axis 0, in the order of ``names``) at every grid amplitude.

    accuracy: (networks, k). cka_self: (networks, k), CKA between a network's hidden states on
    clean and on perturbed inputs (NaN where undefined: a constant layer). cka_between: (k, networks,
    networks), CKA between networks' hidden states on the perturbed inputs (index 0 is clean).
    constant: (networks, k) bool, the hidden layer is constant across examples. predictions:
    (networks, k, test digits) predicted classes.
    """

    names: tuple[str, ...]
    amplitudes: np.ndarray
    accuracy: np.ndarray
    cka_self: np.ndarray
    cka_between: np.ndarray
    constant: np.ndarray
    predictions: np.ndarray


@st.cache_data(max_entries=24, show_spinner="Running every network over the amplitude grid…")
def sweep(protocol: str, kind: str, frequency: float, seed: int, window: tuple[int, int]) -> Sweep:
    """The protocol's networks on the 359 test digits at every grid amplitude of one perturbation setting."""
    spec = pert.Perturbation(kind, frequency=frequency, seed=seed, window=window)
    digits = sample_models.digits()
    amps = grid(kind)
    names = list(NETWORK_SETS[protocol])
    acc = np.zeros((len(names), amps.size))
    predictions = np.zeros((len(names), amps.size, digits.y_test.size), dtype=np.int8)
    hidden = []
    for i, name in enumerate(names):
        out = pert.run_perturbed(model(name), digits.X_test, spec, amps)
        predictions[i] = np.argmax(out.logits, axis=2)
        acc[i] = np.mean(predictions[i] == digits.y_test[None, :], axis=1)
        hidden.append(out.hidden.astype(np.float64))
    constant = np.array([[models.is_constant(h[k]) for k in range(amps.size)] for h in hidden])
    cka_self = np.full((len(names), amps.size), np.nan)
    cka_between = np.full((amps.size, len(names), len(names)), np.nan)
    for k in range(amps.size):
        ok = [i for i in range(len(names)) if not constant[i, k]]
        if ok:
            cka_between[k][np.ix_(ok, ok)] = cka_matrix_or_nan([hidden[i][k] for i in ok], None)
        both = [i for i in ok if not constant[i, 0]]
        if k == 0:
            cka_self[both, 0] = 1.0
        elif both:
            cka_self[both, k] = np.diag(cka_matrix_or_nan([hidden[i][0] for i in both], [hidden[i][k] for i in both]))
    return Sweep(tuple(names), amps, acc, cka_self, cka_between, constant, predictions)


@dataclass(frozen=True)
class Verdict:
    """Whether CKA(clean, perturbed) ranked the networks' robustness as accuracy retained does."""

    level: str                     # "success" | "warning" | "info" | "error"
    text: str
    agreement: pert.RankAgreement | None
    top_accuracy: str = "—"
    top_cka: str = "—"
    how: str = ""                  # "correctly", "largely correctly", ... for the page's takeaway


def verdict(s: Sweep, k: int) -> Verdict:
    """The plain statement of section 4, computed from the numbers at grid amplitude ``k``."""
    names = s.names
    amplitude = float(s.amplitudes[k])
    cka = s.cka_self[:, k]
    retained = s.accuracy[:, k] / s.accuracy[:, 0]
    valid = np.flatnonzero(np.isfinite(cka))
    if k == 0:
        return Verdict("info", "At A = 0 nothing is perturbed: every CKA is 1 and every network keeps all its "
                               "accuracy. Raise the amplitude.", None)
    if valid.size < 2:
        return Verdict("error", "Fewer than two networks have a defined CKA at this amplitude, so there is nothing "
                                "to rank; lower the amplitude.", None)
    agreement = pert.rank_agreement(cka[valid], retained[valid])
    top_acc = " / ".join(LABELS[names[valid[i]]] for i in agreement.top_b)
    top_cka = " / ".join(LABELS[names[valid[i]]] for i in agreement.top_a)
    if agreement.spearman is None:
        what = "every network retained the same accuracy" if np.ptp(retained[valid]) == 0 else "every CKA is the same"
        return Verdict("info", f"There is nothing to rank at A = {amplitude:g}: {what}.", agreement, top_acc, top_cka)
    rho, tau = agreement.spearman, agreement.kendall
    exact = tau >= 1.0 - 1e-9
    if exact:
        how, quality = "correctly", ("ranked the networks' robustness **correctly**: the order by CKA is exactly the "
                                     "order by accuracy retained")
    elif rho >= 0.8:
        how, quality = "largely correctly", "ranked the networks' robustness **largely but not exactly** correctly"
    elif rho >= 0.4:
        how, quality = "only partly correctly", "ranked the networks' robustness **only partly** correctly"
    elif rho > 0:
        how, quality = "poorly", ("ranked the networks' robustness **poorly**: its order barely follows accuracy "
                                  "retained")
    else:
        how, quality = "wrongly", "ranked the networks' robustness **wrongly**: its order runs against accuracy retained"
    if agreement.tops_agree:
        tops = f"and the network it calls most robust (**{top_cka}**) is the one that kept the most accuracy"
    else:
        tops = (f"and the network it calls most robust (**{top_cka}**) is not the one that kept the most accuracy "
                f"(**{top_acc}**)")
    text = (f"On these {valid.size} networks at A = {amplitude:g}, CKA {quality} (Spearman ρ = {rho:.2f}, "
            f"Kendall τ = {tau:.2f}), {tops}.")
    n_test = s.predictions.shape[2]
    lost = np.rint((s.accuracy[valid, 0] - s.accuracy[valid, k]) * n_test)
    if np.ptp(lost) <= 5:
        text += (f" Caution: the networks' losses differ by at most {int(np.ptp(lost))} of the {n_test} test digits, "
                 "so the order by accuracy is itself fragile here.")
    good = exact or (rho >= 0.8 and agreement.tops_agree)
    return Verdict("success" if good else "warning", text, agreement, top_acc, top_cka, how)


def _rank(retained: np.ndarray, index: int) -> int:
    """Network ``index``'s rank by accuracy retained: 1 + how many networks kept more (ties share a rank)."""
    return 1 + int(np.count_nonzero(retained > retained[index]))


def adaptive_rank(s: Sweep, k: int) -> tuple[int, float]:
    """(rank of the adaptive RNN by accuracy retained at amplitude ``k``, 1 = most robust; its
    accuracy change in points)."""
    aru = _adaptive_index(s)
    return _rank(s.accuracy[:, k] / s.accuracy[:, 0], aru), 100 * float(s.accuracy[aru, k] - s.accuracy[aru, 0])


def standing(s: Sweep, k: int) -> str:
    """Where the adaptive RNN ranks by accuracy retained at amplitude ``k``, against the paper."""
    rank, points = adaptive_rank(s, k)
    n = len(s.names)
    where = ("the most robust, as in the paper" if rank == 1 else
             "the least robust, the opposite of the paper" if rank == n else
             f"number {rank} of {n}, not the most robust as in the paper")
    return f"the adaptive RNN is {where} ({points:+.1f} points of accuracy)"


def pixel_networks(seed: int) -> list[str]:
    """The networks of Geadah et al.'s protocol trained from ``seed`` (NETWORK_SETS["pixels"] is seed 1's)."""
    return [name if seed == 1 else f"{name}_seed{seed}" for name in NETWORK_SETS["pixels"]]


@dataclass(frozen=True)
class SeedRobustness:
    """The networks of Geadah et al.'s protocol over their training seeds, at one perturbation and amplitude.

    ranks: the adaptive RNN's rank (1 = most robust) by accuracy retained among each seed's networks.
    mean_retained: each network's accuracy retained averaged over the seeds (NETWORK_SETS["pixels"] order).
    mean_rank: the adaptive RNN's rank by that average.
    """

    ranks: tuple[int, ...]
    mean_retained: tuple[float, ...]
    mean_rank: int


def _adaptive_rank(retained: np.ndarray) -> int:
    """The adaptive RNN's :func:`_rank` among one seed's pixel networks (it is listed last)."""
    return _rank(retained, -1)


def _retained(names: list[str], spec: pert.Perturbation, amplitude: float) -> np.ndarray:
    """Accuracy retained (perturbed / clean) of each network on the test digits."""
    digits = sample_models.digits()
    curves = np.array([pert.accuracy_curve(model(name), digits.X_test, digits.y_test, spec, [0.0, amplitude])
                       for name in names])
    return curves[:, 1] / curves[:, 0]


def _seed_robustness(spec: pert.Perturbation, amplitude: float) -> SeedRobustness:
    retained = [_retained(pixel_networks(training_seed), spec, amplitude) for training_seed in PIXEL_RNN_SEEDS]
    mean = np.mean(retained, axis=0)
    return SeedRobustness(tuple(_adaptive_rank(r) for r in retained), tuple(float(v) for v in mean),
                          _adaptive_rank(mean))


@st.cache_data(max_entries=64, show_spinner="Running the other training seeds…")
def seed_robustness(kind: str, frequency: float, seed: int, window: tuple[int, int], k: int) -> SeedRobustness:
    """The protocol's networks of every training seed on the test digits, clean and at grid amplitude ``k``."""
    spec = pert.Perturbation(kind, frequency=frequency, seed=seed, window=window)
    return _seed_robustness(spec, float(grid(kind)[k]))


# Geadah et al.'s test settings, scaled to the digits: (label, perturbation, amplitude, what the paper reports).
PAPER_SETTINGS = (
    ("Gain 1 + 0.5 sin(2πt/T)", pert.Perturbation("sin_gain", frequency=1.0), 0.5, "adaptive most robust"),
    ("Drive +1 on eighths 3–4", pert.Perturbation("drive", window=(3, 4)), 1.0, "adaptive most robust"),
    ("Noisy drive N(5, 2) on eighths 3–4", pert.Perturbation("noisy_drive", window=(3, 4)), 5.0,
     "adaptive most robust"),
    ("Input noise of std 0.2", pert.Perturbation("noise"), 0.2, "not tested"),
)


@dataclass(frozen=True)
class Score:
    """The adaptive RNNs at one of the paper's test settings."""

    label: str
    paper: str
    seeds: SeedRobustness          # Geadah et al.'s protocol, over the training seeds
    zoo_rank: int                  # among the zoo's row-by-row networks
    zoo_count: int


@st.cache_data(max_entries=1, show_spinner="Scoring the adaptive RNNs at the paper's settings…")
def scorecard() -> list[Score]:
    """Per test setting of the paper: the adaptive RNN's rank by accuracy retained, in each training seed of their
    protocol, averaged over the seeds, and among the zoo's row-by-row networks (1 = most robust)."""
    scores = []
    rows = list(NETWORK_SETS["rows"])
    for label, spec, amplitude, paper in PAPER_SETTINGS:
        zoo = _retained(rows, spec, amplitude)
        zoo_rank = _rank(zoo, rows.index(ADAPTIVE["rows"]))
        scores.append(Score(label, paper, _seed_robustness(spec, amplitude), zoo_rank, len(rows)))
    return scores


def scorecard_rows(scores: list[Score]) -> list[dict[str, str]]:
    n = len(NETWORK_SETS["pixels"])
    return [{"Perturbation": score.label, "Paper": score.paper,
             "Pixels, per seed": f"{', '.join(map(str, score.seeds.ranks))} of {n}",
             "Pixels, seed mean": f"{score.seeds.mean_rank} of {n} ({percent(score.seeds.mean_retained[-1])} kept, "
                                  f"best other {percent(max(score.seeds.mean_retained[:-1]))})",
             "Zoo, rows": f"{score.zoo_rank} of {score.zoo_count}"} for score in scores]


def scorecard_verdict(scores: list[Score]) -> str:
    """What the scorecard says about the paper's claim, in one sentence."""
    tested = [score for score in scores if score.paper == PAPER_SETTINGS[0][3]]
    named = {score.label: "the " + score.label[0].lower() + score.label[1:] for score in tested}
    held = [named[score.label] for score in tested if score.seeds.mean_rank == 1]
    failed = [named[score.label] for score in tested if score.seeds.mean_rank != 1]
    zoo_last = [named[score.label] for score in tested if score.zoo_rank == score.zoo_count]
    parts = []
    if held:
        parts.append(f"with their protocol the adaptive RNN is the most robust on average over the seeds under "
                     f"{' and '.join(held)}, as the paper reports")
    if failed:
        parts.append(f"{'but not' if held else 'it is not'} under {' and '.join(failed)}")
    text = "; ".join(parts) if parts else "the paper's settings are not scored"
    if zoo_last:
        text += f"; the zoo's row-by-row adaptive RNN is the least robust of its set under {' and '.join(zoo_last)}"
    return text[0].upper() + text[1:] + "."


def paper_comparison(pixels: Sweep, rows: Sweep, k: int, seeds: SeedRobustness | None) -> str:
    """How the adaptive RNN of each protocol fares against Geadah et al.'s finding, at amplitude ``k``; ``seeds``:
    the protocol's networks over their training seeds (:func:`seed_robustness`; None at k = 0)."""
    if k == 0 or seeds is None:
        return ("Geadah et al. found the adaptive networks the most robust to shifts in the input statistics; raise "
                "the amplitude in section 3 to see whether they are here.")
    n = len(pixels.names)
    most = sum(rank == 1 for rank in seeds.ranks)
    on_average = ("the most robust" if seeds.mean_rank == 1 else
                  f"number {seeds.mean_rank} of {n}")
    return (f"Geadah et al. found the adaptive networks the most robust. At A = {pixels.amplitudes[k]:g}, with their "
            f"protocol (the digits read pixel by pixel, 64 steps; their initialisation and training), in the run "
            f"shown below (training seed 1) {standing(pixels, k)}. Over {len(seeds.ranks)} training seeds it is the "
            f"most robust of the {n} in **{most} of {len(seeds.ranks)}** (ranks {', '.join(map(str, seeds.ranks))}) and **{on_average}** by "
            f"accuracy retained averaged over the seeds ({percent(seeds.mean_retained[-1])} against "
            f"{', '.join(percent(v) for v in seeds.mean_retained[:-1])} for "
            f"{', '.join(list(NETWORK_SETS['pixels'].values())[:-1])}). Among the zoo's networks, which read the "
            f"digit row by row in 8 steps, {standing(rows, k)}.")


def takeaway(result: Verdict, amplitude: float) -> str:
    """The page's lesson in one sentence, with the numbers of :func:`verdict` at ``amplitude``."""
    if not result.how:
        return ("Whether CKA between clean and perturbed hidden states ranks the networks' robustness shows once "
                "something is perturbed: raise the amplitude in section 3.")
    return (f"CKA between clean and perturbed hidden states ranks these networks' robustness {result.how} (Spearman "
            f"ρ = {result.agreement.spearman:.2f} at A = {amplitude:g}; most robust by CKA: {result.top_cka}, by "
            f"accuracy kept: {result.top_accuracy}).")


def rank_over_amplitudes(s: Sweep) -> tuple[np.ndarray, np.ndarray]:
    """Spearman and Kendall of CKA vs accuracy retained at every grid amplitude (NaN where undefined)."""
    rhos, taus = np.full(s.amplitudes.size, np.nan), np.full(s.amplitudes.size, np.nan)
    for j in range(1, s.amplitudes.size):
        ok = np.isfinite(s.cka_self[:, j])
        if ok.sum() >= 2:
            r = pert.rank_agreement(s.cka_self[ok, j], s.accuracy[ok, j] / s.accuracy[ok, 0])
            rhos[j] = np.nan if r.spearman is None else r.spearman
            taus[j] = np.nan if r.kendall is None else r.kendall
    return rhos, taus


# --- learned (n, s) -------------------------------------------------------------------------------


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


def _clean_digit_trace(protocol: str, index: int) -> tuple[np.ndarray, np.ndarray]:
    return digit_trace(protocol, index, "sin_gain", 0.0, 1.0, 0, (1, pert.EIGHTHS))


def trace_summary(protocol: str, index: int, kind: str, amplitude: float, frequency: float, seed: int,
                  window: tuple[int, int]) -> dict[str, float]:
    """How much digit ``index``'s adaptive units move: mean |n_{t+1} - n_t| (clean), the fraction of
    (unit, step) pairs with s outside (0, 1) (clean; clipped there, or past it in the unclamped units of
    Geadah et al.'s protocol), mean |n_t(perturbed) - n_t(clean)|."""
    n0, s0 = _clean_digit_trace(protocol, index)
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


# --- figures ---
# figures.LAYOUT's look, with its template attached as a ready dict: plotly re-validating the template
# is about half the cost of building a small figure, and these are rebuilt whenever the amplitude moves.
_LAYOUT = {k: v for k, v in figures.LAYOUT.items() if k != "template"}
_TEMPLATE = pio.templates[figures.LAYOUT["template"]].to_plotly_json()


def _apply_template(fig: go.Figure) -> go.Figure:
    fig.layout._validate = False
    try:
        fig.layout.template = _TEMPLATE
    finally:
        fig.layout._validate = True
    return fig


def heatmap_figure(values: np.ndarray, labels: list[str], title: str) -> go.Figure:
    """Network x network CKA, annotated, NaN cells (undefined CKA) left blank."""
    text = np.where(np.isfinite(values), np.char.mod("%.2f", np.nan_to_num(values)), "n/a")
    fig = go.Figure(go.Heatmap(
        z=values, x=labels, y=labels, zmin=0.0, zmax=1.0, colorscale=figures.HEATMAP_SCALE, colorbar=dict(title="CKA"),
        text=text, texttemplate="%{text}",
        hovertemplate="%{y}<br>%{x}<br>CKA = %{z:.4f}<extra></extra>"))
    fig.update_layout(title=title, **{**_LAYOUT, "height": 420, "margin": dict(l=110, r=20, t=50, b=90)})
    fig.update_yaxes(autorange="reversed")
    _apply_template(fig)
    return fig


def gamma_figure(x: np.ndarray, curves: dict[str, np.ndarray], n: float, s: float) -> go.Figure:
    fig = make_subplots(rows=1, cols=2, subplot_titles=("γ(x; n, s)", "derivatives"), horizontal_spacing=0.1)
    fig.add_trace(go.Scatter(x=x, y=np.maximum(x, 0), name="ReLU (reference)", line=dict(color="#bbbbbb", dash="dot"),
                             hovertemplate="x=%{x:.2f}<br>ReLU=%{y:.3f}<extra></extra>"), row=1, col=1)
    fig.add_trace(go.Scatter(x=x, y=curves["gamma"], name="γ", line=dict(color=figures.COLOURS["linear_cka"], width=3),
                             hovertemplate="x=%{x:.2f}<br>γ=%{y:.4f}<extra></extra>"), row=1, col=1)
    for key, label, colour in (("dx", "∂γ/∂x", "#ff7f0e"), ("dn", "∂γ/∂n", "#9467bd"), ("ds", "∂γ/∂s", "#2ca02c")):
        fig.add_trace(go.Scatter(x=x, y=curves[key], name=label, line=dict(color=colour, width=3 if key == "dx" else 1.5),
                                 visible=True if key == "dx" else "legendonly",
                                 hovertemplate=f"x=%{{x:.2f}}<br>{label}=%{{y:.4f}}<extra></extra>"), row=1, col=2)
    fig.update_layout(title=f"γ with gain n = {n:g}, saturation s = {s:g}", **_LAYOUT)
    _apply_template(fig)
    fig.update_xaxes(title_text="pre-activation x")
    return fig


def diversity_figure(groups: dict[str, dict[str, np.ndarray]]) -> go.Figure:
    fig = make_subplots(rows=1, cols=3, column_widths=[0.44, 0.28, 0.28], horizontal_spacing=0.07,
                        subplot_titles=("n vs s, one point per neuron", "gain n (heterogeneous)", "saturation s (heterogeneous)"))
    palette = ["#1f77b4", "#aec7e8", "#2ca02c", "#98df8a", "#17becf", "#9467bd", "#d62728"]
    fig.add_shape(type="line", x0=0.5, x1=0.5, y0=5.0, y1=7.0, line=dict(color="black", width=4), row=1, col=1)
    fig.add_annotation(x=0.5, y=7.0, text="start", showarrow=False, yshift=10, row=1, col=1)
    for i, (label, g) in enumerate(groups.items()):
        colour = palette[i % len(palette)]
        homogeneous = np.ptp(g["n"]) == 0 and np.ptp(g["s"]) == 0
        fig.add_trace(go.Scatter(
            x=g["s"], y=g["n"], mode="markers", name=label, legendgroup=label,
            marker=dict(color=colour, size=14 if homogeneous else 7, symbol="diamond" if homogeneous else "circle",
                        line=dict(width=0.5, color="white")),
            customdata=np.arange(g["n"].size),
            hovertemplate=f"{label}<br>neuron %{{customdata}}<br>s=%{{x:.3f}}<br>n=%{{y:.3f}}<extra></extra>",
        ), row=1, col=1)
        for col, key in (() if homogeneous else ((2, "n"), (3, "s"))):
            fig.add_trace(go.Histogram(x=g[key], name=label, legendgroup=label, showlegend=False, opacity=0.6,
                                       marker_color=colour, nbinsx=20,
                                       hovertemplate=f"{label}<br>{key} in %{{x}}<br>%{{y}} neurons<extra></extra>"),
                          row=1, col=col)
    fig.update_layout(barmode="overlay", title="Learned gain and saturation of every neuron",
                      **{**_LAYOUT, "height": 430})
    _apply_template(fig)
    fig.update_layout(legend=dict(orientation="h", y=-0.22))
    fig.update_xaxes(title_text="saturation s", range=[-0.05, 1.05], row=1, col=1)
    fig.update_yaxes(title_text="gain n", row=1, col=1)
    fig.update_xaxes(title_text="n", row=1, col=2)
    fig.update_xaxes(title_text="s", row=1, col=3)
    fig.update_yaxes(title_text="neurons", row=1, col=2)
    return fig


def amplitude_figure(names: tuple[str, ...], amps: np.ndarray, values: np.ndarray, current: int, *, title: str,
                     y_title: str, y_range: tuple[float, float] | None = None) -> go.Figure:
    """One line per network against amplitude, the current amplitude marked."""
    fig = go.Figure()
    for i, name in enumerate(names):
        fig.add_trace(go.Scatter(
            x=amps, y=values[i], mode="lines+markers", name=LABELS[name],
            line=dict(color=NETWORK_COLOURS[name], dash=NETWORK_DASH[name]), marker=dict(size=5),
            hovertemplate=f"{LABELS[name]}<br>A=%{{x:.2f}}<br>{y_title}=%{{y:.4f}}<extra></extra>"))
    fig.add_vline(x=float(amps[current]), line=dict(color=figures.COLOURS["current"], width=2),
                  annotation_text=f"A = {amps[current]:g}", annotation_position="top")
    fig.update_layout(title=title, xaxis_title="amplitude A", yaxis_title=y_title, **_LAYOUT)
    _apply_template(fig)
    fig.update_layout(legend=dict(orientation="h", y=-0.25))
    if y_range is not None:
        fig.update_yaxes(range=list(y_range))
    return fig


def cka_vs_retained(names: tuple[str, ...], cka: np.ndarray, retained: np.ndarray) -> go.Figure:
    fig = go.Figure()
    for i, name in enumerate(names):
        if not np.isfinite(cka[i]):
            continue
        fig.add_trace(go.Scatter(
            x=[cka[i]], y=[retained[i]], mode="markers+text", name=LABELS[name], text=[LABELS[name]],
            textposition="top center", marker=dict(size=13, color=NETWORK_COLOURS[name]), showlegend=False,
            hovertemplate=f"{LABELS[name]}<br>CKA=%{{x:.4f}}<br>accuracy retained=%{{y:.4f}}<extra></extra>"))
    fig.update_layout(title="Does more similar mean more robust?", xaxis_title="CKA(clean, perturbed)",
                      yaxis_title="accuracy retained (perturbed / clean)", **_LAYOUT)
    finite = cka[np.isfinite(cka)]
    if finite.size:
        span = max(float(np.ptp(finite)), 0.02)
        fig.update_xaxes(range=[float(finite.min()) - 0.25 * span, float(finite.max()) + 0.25 * span])
        span_y = max(float(np.ptp(retained[np.isfinite(cka)])), 0.02)
        fig.update_yaxes(range=[float(retained[np.isfinite(cka)].min()) - 0.15 * span_y,
                                float(retained[np.isfinite(cka)].max()) + 0.2 * span_y])
    _apply_template(fig)
    return fig


def rank_curve(amps: np.ndarray, rho: np.ndarray, tau: np.ndarray, current: int) -> go.Figure:
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=amps, y=rho, mode="lines+markers", name="Spearman ρ", line=dict(color="#1f77b4"),
                             hovertemplate="A=%{x:.2f}<br>ρ=%{y:.3f}<extra></extra>"))
    fig.add_trace(go.Scatter(x=amps, y=tau, mode="lines+markers", name="Kendall τ", line=dict(color="#17becf", dash="dash"),
                             hovertemplate="A=%{x:.2f}<br>τ=%{y:.3f}<extra></extra>"))
    fig.add_hline(y=0.0, line=dict(color="#999999", width=1))
    fig.add_vline(x=float(amps[current]), line=dict(color=figures.COLOURS["current"], width=2))
    fig.update_layout(title="Rank agreement of CKA with accuracy retained, per amplitude", xaxis_title="amplitude A",
                      yaxis_title="rank correlation", **_LAYOUT)
    _apply_template(fig)
    fig.update_yaxes(range=[-1.05, 1.05])
    return fig


def trace_figure(result: dict[str, np.ndarray], neurons: list[int], show_perturbed: bool, clamped: bool) -> go.Figure:
    """``result``: n_clean, s_clean, n_pert, s_pert, each (steps, units) for one digit. ``clamped``: s lies in
    [0, 1] (the zoo's units; Geadah et al.'s are unclamped)."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("gain n<sub>t</sub>", "saturation s<sub>t</sub>"), horizontal_spacing=0.08)
    steps = np.arange(1, result["n_clean"].shape[0] + 1)
    palette = figures.CLASS_COLOURS
    for j, unit in enumerate(neurons):
        colour = palette[j % len(palette)]
        for col, key in ((1, "n"), (2, "s")):
            fig.add_trace(go.Scatter(
                x=steps, y=result[f"{key}_clean"][:, unit], mode="lines+markers" if steps.size <= 16 else "lines",
                name=f"unit {unit}",
                legendgroup=str(unit), showlegend=col == 1, line=dict(color=colour),
                hovertemplate=f"unit {unit}, clean<br>step %{{x}}<br>{key}=%{{y:.3f}}<extra></extra>"), row=1, col=col)
            if show_perturbed:
                fig.add_trace(go.Scatter(
                    x=steps, y=result[f"{key}_pert"][:, unit], mode="lines", name=f"unit {unit} perturbed",
                    legendgroup=str(unit), showlegend=False, line=dict(color=colour, dash="dot"),
                    hovertemplate=f"unit {unit}, perturbed<br>step %{{x}}<br>{key}=%{{y:.3f}}<extra></extra>"),
                    row=1, col=col)
    fig.update_layout(title="Adaptive units: gain and saturation at each step (dotted: perturbed input)",
                      **_LAYOUT)
    _apply_template(fig)
    rows = steps.size == 8
    fig.update_xaxes(title_text="time step t (image row)" if rows else "time step t (one pixel each)",
                     dtick=1 if rows else 8)
    if clamped:
        fig.update_yaxes(range=[-0.05, 1.05], row=1, col=2)
    return fig


def digit_figure(image: np.ndarray, image_pert: np.ndarray, step_of_pixel: np.ndarray) -> go.Figure:
    """The clean and the perturbed digit side by side; ``step_of_pixel`` (8, 8): the step (1-based) that reads
    each pixel (its row for the row-by-row networks)."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("clean", "perturbed"), horizontal_spacing=0.08)
    lo, hi = float(min(image.min(), image_pert.min(), 0.0)), float(max(image.max(), image_pert.max(), 1.0))
    for col, img in ((1, image), (2, image_pert)):
        fig.add_trace(go.Heatmap(z=img, zmin=lo, zmax=hi, colorscale="Greys", showscale=False,
                                 y=np.arange(1, 9), x=np.arange(1, 9), customdata=step_of_pixel,
                                 hovertemplate="row %{y}, column %{x}, read at step %{customdata}"
                                               "<br>pixel %{z:.3f}<extra></extra>"),
                      row=1, col=col)
        fig.update_yaxes(range=[8.5, 0.5], scaleanchor=f"x{'' if col == 1 else 2}", constrain="domain",
                         tickvals=[1, 4, 8], showticklabels=col == 1, row=1, col=col)
        fig.update_xaxes(range=[0.5, 8.5], constrain="domain", showticklabels=False, row=1, col=col)
    title = "The input; row t is step t" if step_of_pixel.max() == 8 else "The input (hover: each pixel's step)"
    fig.update_layout(title=title, **{**_LAYOUT, "height": 230,
                                                              "margin": dict(l=30, r=5, t=60, b=5)})
    _apply_template(fig)
    return fig


# --- cached charts: the figures are shared, read-only objects (st.plotly_chart only reads them) ---------
# Building a plotly figure costs tens of milliseconds; every chart is keyed on its small descriptor so a
# revisited slider value is a cache hit.


@st.cache_resource(max_entries=64, show_spinner=False)
def gamma_chart(n: float, s: float) -> go.Figure:
    x = np.linspace(-4.0, 4.0, 401)
    return gamma_figure(x, pert.gamma_curve(x, n, s), n, s)


@st.cache_resource(max_entries=1, show_spinner=False)
def diversity_chart() -> go.Figure:
    return diversity_figure(learned_parameters())


@st.cache_resource(max_entries=64, show_spinner=False)
def accuracy_chart(protocol: str, kind: str, frequency: float, seed: int, window: tuple[int, int], k: int) -> go.Figure:
    s = sweep(protocol, kind, frequency, seed, window)
    return amplitude_figure(s.names, s.amplitudes, s.accuracy, k, title=f"Test accuracy vs amplitude — {PERTURBATIONS[kind]}",
                            y_title="test accuracy", y_range=(0.0, 1.02))


@st.cache_resource(max_entries=64, show_spinner=False)
def cka_chart(protocol: str, kind: str, frequency: float, seed: int, window: tuple[int, int], k: int) -> go.Figure:
    s = sweep(protocol, kind, frequency, seed, window)
    return amplitude_figure(s.names, s.amplitudes, s.cka_self, k, title="CKA(clean, perturbed hidden state) vs amplitude",
                            y_title="linear CKA", y_range=(0.0, 1.02))


@st.cache_resource(max_entries=64, show_spinner=False)
def scatter_chart(protocol: str, kind: str, frequency: float, seed: int, window: tuple[int, int], k: int) -> go.Figure:
    s = sweep(protocol, kind, frequency, seed, window)
    return cka_vs_retained(s.names, s.cka_self[:, k], s.accuracy[:, k] / s.accuracy[:, 0])


@st.cache_resource(max_entries=64, show_spinner=False)
def rank_chart(protocol: str, kind: str, frequency: float, seed: int, window: tuple[int, int], k: int) -> go.Figure:
    s = sweep(protocol, kind, frequency, seed, window)
    rhos, taus = rank_over_amplitudes(s)
    return rank_curve(s.amplitudes, rhos, taus, k)


@st.cache_resource(max_entries=64, show_spinner=False)
def between_chart(protocol: str, kind: str, frequency: float, seed: int, window: tuple[int, int], k: int) -> go.Figure:
    s = sweep(protocol, kind, frequency, seed, window)
    labels = [LABELS[name] for name in s.names]
    title = "CKA between the networks' hidden states, " + ("clean digits" if k == 0 else f"A = {s.amplitudes[k]:g}")
    return heatmap_figure(s.cka_between[k], labels, title)


@st.cache_resource(max_entries=128, show_spinner=False)
def trace_chart(protocol: str, index: int, units: tuple[int, ...], kind: str, amplitude: float, frequency: float,
                seed: int, window: tuple[int, int]) -> go.Figure:
    """amplitude 0: the clean trace only."""
    n0, s0 = _clean_digit_trace(protocol, index)
    n1, s1 = digit_trace(protocol, index, kind, amplitude, frequency, seed, window)
    result = {"n_clean": n0, "s_clean": s0, "n_pert": n1, "s_pert": s1}
    return trace_figure(result, list(units), amplitude != 0.0, model(ADAPTIVE[protocol]).init == "torch")


@st.cache_resource(max_entries=128, show_spinner=False)
def digit_chart(protocol: str, index: int, kind: str, amplitude: float, frequency: float, seed: int,
                window: tuple[int, int]) -> go.Figure:
    clean = sample_models.digits().X_test[index].reshape(8, 8)
    step_of_pixel = pert.sites(model(ADAPTIVE[protocol])).step_of_feature.reshape(8, 8) + 1
    return digit_figure(clean, perturbed_digit(protocol, index, kind, amplitude, frequency, seed, window), step_of_pixel)
