"""The sweep: every network of a protocol x every grid amplitude of one perturbation setting (accuracy, CKA), and
what its numbers say: whether CKA ranks the networks' robustness as accuracy retained does.

Everything is keyed on small descriptors (perturbation kind and its settings). The amplitude slider moves on the
same grid the curves are computed on, so a new amplitude is a cache hit: one cold sweep per perturbation setting
(under a second), then milliseconds.
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import permutations

import numpy as np
import streamlit as st

import sample_models
from cka_core.cka.matrix import cka_matrix_or_nan
from sample_models import perturbations as pert

from ..sources import models
from .choices import ADAPTIVE, LABELS, NETWORK_SETS, grid, model


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
class NetworkNow:
    """One network at the chosen amplitude."""

    label: str
    clean: float
    accuracy: float
    cka: float | None              # None where undefined (a constant hidden layer)


def networks_now(s: Sweep, k: int) -> list[NetworkNow]:
    return [NetworkNow(LABELS[name], float(s.accuracy[i, 0]), float(s.accuracy[i, k]),
                       float(s.cka_self[i, k]) if np.isfinite(s.cka_self[i, k]) else None)
            for i, name in enumerate(s.names)]


def adaptive_index(s: Sweep) -> int:
    return next(i for i, name in enumerate(s.names) if name in ADAPTIVE.values())


def adaptive_predictions(s: Sweep, k: int, index: int) -> tuple[int, int]:
    """The adaptive RNN's answer on test digit ``index``, clean and under the perturbation."""
    aru = adaptive_index(s)
    return int(s.predictions[aru, 0, index]), int(s.predictions[aru, k, index])


@dataclass(frozen=True)
class Verdict:
    """Whether CKA(clean, perturbed) ranked the networks' robustness as accuracy retained does."""

    level: str                     # "success" | "warning" | "info" | "error"
    text: str
    agreement: pert.RankAgreement | None
    top_accuracy: str = "—"
    top_cka: str = "—"
    how: str = ""                  # "correctly", "largely correctly", ... for the page's takeaway
    resolution: str = ""           # how few values ρ and τ can take with these networks, and the pairs out of order


def _values(numbers) -> str:
    shown = [f"{v:.2g}".replace("-", "−") for v in numbers]
    return ", ".join(shown) if len(shown) <= 5 else f"{', '.join(shown[:3])}, …, {shown[-1]}"


def resolution(cka: np.ndarray, retained: np.ndarray) -> str:
    """Why ρ and τ repeat across settings: with n networks ranked they take only a few values, and which they
    take depends only on how many pairs of networks the two scores order differently."""
    n = cka.size
    pairs = n * (n - 1) // 2
    d2 = {int(np.sum((np.arange(n) - np.array(order)) ** 2)) for order in permutations(range(n))}
    rhos = sorted((1 - 6 * v / (n * (n * n - 1)) for v in d2), reverse=True)
    taus = [1 - 2 * d / pairs for d in range(pairs + 1)]
    upper = np.triu_indices(n, 1)
    order = (np.sign(np.subtract.outer(cka, cka)) * np.sign(np.subtract.outer(retained, retained)))[upper]
    against, tied = int(np.sum(order < 0)), int(np.sum(order == 0))
    return (f"With only {n} networks ranked, ρ can take just {len(rhos)} values ({_values(rhos)}) and τ just "
            f"{len(taus)} ({_values(taus)}) when no two tie, so many settings give the same numbers: they change "
            f"only when a pair of networks changes order. Here CKA orders {against} of the {pairs} pairs the other "
            f"way round from accuracy retained" + (f", and {tied} tie on one of the two" if tied else "") + ".")


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
    graded = round(rho, 6)  # one swap of neighbours among 4 is ρ = 0.8, which scipy returns as 0.7999…
    if exact:
        how, quality = "correctly", ("ranked the networks' robustness **correctly**: the order by CKA is exactly the "
                                     "order by accuracy retained")
    elif graded >= 0.8:
        how, quality = "largely correctly", "ranked the networks' robustness **largely but not exactly** correctly"
    elif graded >= 0.4:
        how, quality = "only partly correctly", "ranked the networks' robustness **only partly** correctly"
    elif graded > 0:
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
    good = exact or (graded >= 0.8 and agreement.tops_agree)
    return Verdict("success" if good else "warning", text, agreement, top_acc, top_cka, how,
                   resolution(cka[valid], retained[valid]))


def takeaway(result: Verdict, amplitude: float) -> str:
    """The page's lesson in one sentence, with the numbers of :func:`verdict` at ``amplitude``."""
    if not result.how:
        return ("Whether CKA between clean and perturbed hidden states ranks the networks' robustness shows once "
                "something is perturbed: raise the amplitude A below.")
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
