"""Geadah et al.'s claim checked: is the adaptive RNN the most robust, at the paper's test settings and at the
chosen perturbation, over the training seeds of their protocol and among the zoo's networks?"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import streamlit as st

import sample_models
from sample_models import perturbations as pert
from sample_models.zoo import PIXEL_RNN_SEEDS

from ..frame.widgets import percent
from .choices import ADAPTIVE, NETWORK_SETS, grid, kind_settings, model
from .sweeps import Sweep, sweep


def _rank(retained: np.ndarray, index: int) -> int:
    """Network ``index``'s rank by accuracy retained: 1 + how many networks kept more (ties share a rank)."""
    return 1 + int(np.count_nonzero(retained > retained[index]))


def standing(protocol: str, clean: np.ndarray, now: np.ndarray) -> str:
    """Where the protocol's adaptive RNN ranks by accuracy retained, against the paper; ``clean``, ``now``: the
    accuracy of each of the protocol's networks (NETWORK_SETS order), clean and perturbed."""
    aru = list(NETWORK_SETS[protocol]).index(ADAPTIVE[protocol])
    rank, points = _rank(now / clean, aru), 100 * float(now[aru] - clean[aru])
    n = clean.size
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


@st.cache_data(max_entries=512, show_spinner=False)
def _accuracy(name: str, kind: str, frequency: float, seed: int, window: tuple[int, int], amplitude: float) -> float:
    """Test accuracy of network ``name`` under one perturbation setting at one amplitude."""
    digits = sample_models.digits()
    spec = pert.Perturbation(kind, frequency=frequency, seed=seed, window=window)
    return float(pert.accuracy_curve(model(name), digits.X_test, digits.y_test, spec, [amplitude])[0])


def accuracy(name: str, spec: pert.Perturbation, amplitude: float) -> float:
    """:func:`_accuracy`, keyed so that every perturbation shares one clean run (A = 0 changes nothing) and the
    settings a kind ignores never split the cache: the scorecard, the seeds' check at the chosen setting and
    every revisited amplitude reuse each network's runs."""
    if amplitude == 0.0:
        spec = pert.Perturbation("sin_gain")
    return _accuracy(name, spec.kind, *kind_settings(spec.kind, spec.frequency, spec.seed, spec.window),
                     float(amplitude))


def _retained(names: list[str], spec: pert.Perturbation, amplitude: float) -> np.ndarray:
    """Accuracy retained (perturbed / clean) of each network on the test digits."""
    return np.array([accuracy(name, spec, amplitude) / accuracy(name, spec, 0.0) for name in names])


def _over_seeds(retained: list[np.ndarray]) -> SeedRobustness:
    """``retained``: accuracy retained of each training seed's pixel networks."""
    mean = np.mean(retained, axis=0)
    return SeedRobustness(tuple(_adaptive_rank(r) for r in retained), tuple(float(v) for v in mean),
                          _adaptive_rank(mean))


def _seed_robustness(spec: pert.Perturbation, amplitude: float) -> SeedRobustness:
    return _over_seeds([_retained(pixel_networks(training_seed), spec, amplitude)
                        for training_seed in PIXEL_RNN_SEEDS])


def _clean_and_now(protocol: str, shown: Sweep, spec: pert.Perturbation, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The accuracy of each of the protocol's networks, clean and at grid amplitude ``k``: read off the page's
    sweep when it is this protocol's (already run over the whole grid), else one run of each network."""
    if shown.names == tuple(NETWORK_SETS[protocol]):
        return shown.accuracy[:, 0], shown.accuracy[:, k]
    amplitude = float(grid(spec.kind)[k])
    return tuple(np.array([accuracy(name, spec, a) for name in NETWORK_SETS[protocol]]) for a in (0.0, amplitude))


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


@st.cache_data(max_entries=64, show_spinner="Running the other training seeds…")
def paper_comparison(protocol: str, kind: str, frequency: float, seed: int, window: tuple[int, int], k: int) -> str:
    """How the adaptive RNN of each protocol fares against Geadah et al.'s finding at grid amplitude ``k``, in
    the run shown (``protocol``'s sweep, the page's) and over the training seeds of their protocol. A move of
    the amplitude runs only the networks the page has not run yet, once each."""
    if k == 0:
        return ("Geadah et al. found the adaptive networks the most robust to shifts in the input statistics; raise "
                "the amplitude A at the top of the page to see whether they are here.")
    spec = pert.Perturbation(kind, frequency=frequency, seed=seed, window=window)
    shown = sweep(protocol, kind, frequency, seed, window)
    pixels, rows = (_clean_and_now(p, shown, spec, k) for p in ("pixels", "rows"))
    amplitude = float(grid(kind)[k])
    seeds = _over_seeds([pixels[1] / pixels[0] if training_seed == 1 else
                         _retained(pixel_networks(training_seed), spec, amplitude)
                         for training_seed in PIXEL_RNN_SEEDS])
    n = len(NETWORK_SETS["pixels"])
    most = sum(rank == 1 for rank in seeds.ranks)
    on_average = ("the most robust" if seeds.mean_rank == 1 else
                  f"number {seeds.mean_rank} of {n}")
    return (f"Geadah et al. found the adaptive networks the most robust. At A = {amplitude:g}, with their "
            f"protocol (the digits read pixel by pixel, 64 steps; their initialisation and training), in the run "
            f"shown below (training seed 1) {standing('pixels', *pixels)}. Over {len(seeds.ranks)} training seeds it "
            f"is the most robust of the {n} in **{most} of {len(seeds.ranks)}** (ranks "
            f"{', '.join(map(str, seeds.ranks))}) and **{on_average}** by "
            f"accuracy retained averaged over the seeds ({percent(seeds.mean_retained[-1])} against "
            f"{', '.join(percent(v) for v in seeds.mean_retained[:-1])} for "
            f"{', '.join(list(NETWORK_SETS['pixels'].values())[:-1])}). Among the zoo's networks, which read the "
            f"digit row by row in 8 steps, {standing('rows', *rows)}.")
