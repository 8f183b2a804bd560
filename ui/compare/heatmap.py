"""What the Compare page computes from the two sides and the settings, each cached on digests and
layer names: the heatmap, its sanity checks and random-init baseline, the drill-down into one
cell, the reductions' effect for your own models, and the sentences and numbers shown about them."""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import streamlit as st

from cka_core import RepresentationError, cka_matrix
from cka_core.cka import drilldown
from cka_core.cka.matrix import cka_matrix_or_nan
from cka_core.measures import similarity_matrix
from cka_core.stats import sanity

from ..sources import models
from ..sources import own_models as own
from .controls import Settings
from .sides import Side, pair_arguments

DRILL_MAX_ROWS = 2000  # the drill-down's n x n Grams and SVDs stay fast
SCATTER_POINTS = 5000
CHEAP_MEASURES = {"linear_cka", "linear_cka_debiased"}
STATUS_ICONS = {sanity.PASS: ":material/check_circle:", sanity.WARN: ":material/warning:",
                sanity.FAIL: ":material/error:", sanity.INFO: ":material/info:"}


@st.cache_data(max_entries=64, show_spinner="Computing the heatmap…")
def heatmap_values(key_a: str, names_a: tuple, key_b: str, names_b: tuple, settings_key: tuple,
                   _a: dict, _b: dict, _settings: Settings) -> tuple[np.ndarray, float]:
    """(values, seconds it took): ``similarity_matrix`` of the chosen measure (a self-comparison
    when both sides are the same data, so symmetric work is done once)."""
    start = time.perf_counter()
    values = similarity_matrix(_a, None if key_a == key_b else _b, measure=_settings.measure, **_settings.options())
    return values, time.perf_counter() - start


@st.cache_data(max_entries=32, show_spinner="Computing the linear CKA references…")
def linear_references(key_a: str, names_a: tuple, key_b: str, names_b: tuple, _a: dict, _b: dict):
    """Biased and debiased linear CKA matrices (for the d ≫ n check), whatever the chosen measure."""
    other = None if key_a == key_b else _b
    return cka_matrix(_a, other), cka_matrix(_a, other, debiased=True)


@st.cache_data(max_entries=32, show_spinner="Running the sanity checks…")
def sanity_checks(key_a: str, names_a: tuple, key_b: str, names_b: tuple, settings_key: tuple,
                  _a: dict, _b: dict, _settings: Settings, _values: np.ndarray) -> list[sanity.Check]:
    """Self-diagonal, symmetry, sample pairing and d ≫ n checks (layer health is per side)."""
    options = _settings.options()
    checks = []
    for run in (
        lambda: sanity.self_diagonal(_a, measure=_settings.measure, **options),
        lambda: sanity.symmetry(_a, _b, _values, measure=_settings.measure, cells=_symmetry_cells(_settings, _values),
                                **options),
        lambda: sanity.pairing(_a, _b, same_source=key_a == key_b),
        lambda: sanity.high_dimension(_a, _b, *linear_references(key_a, names_a, key_b, names_b, _a, _b)),
    ):
        try:
            checks.append(run())
        except RepresentationError as error:
            checks.append(sanity.Check("Check could not run", sanity.INFO, str(error)))
    return checks


def _symmetry_cells(settings: Settings, values: np.ndarray):
    """All cells for the cheap linear-CKA measures; three cells for the others (each costs a full
    evaluation of the measure)."""
    if settings.measure in CHEAP_MEASURES and settings.batch_size is None:
        return None
    rows, cols = values.shape
    return [(i, min(i, cols - 1)) for i in range(min(rows, 3))]


@st.cache_data(max_entries=16, show_spinner="Comparing with the random-init baseline…")
def baseline_values(key_a: str, names_a: tuple, key_b: str, names_b: tuple, settings_key: tuple, replaced: str,
                    model: str, _a: dict, _b: dict, _settings: Settings):
    """The same heatmap with side ``replaced`` swapped for its random-init twin: (description, values)."""
    what, twin = models.untrained_twin(model)
    side = _a if replaced == "A" else _b
    twin = {k: twin[k] for k in side}
    a, b = (twin, _b) if replaced == "A" else (_a, twin)
    return what, similarity_matrix(a, b, measure=_settings.measure, **_settings.options())


def baseline_plan(a: Side, b: Side) -> tuple[str, str] | None:
    """(side to replace, network) for the random-init baseline, or None when no trained network is involved."""
    for side in (a, b):
        if side.model_name is not None and models.get(side.model_name).trained:
            return side.name, side.model_name
    return None


@dataclass(frozen=True)
class Drill:
    scatter: drilldown.GramScatter
    contributions: drilldown.PCContributions
    rows_used: int


@st.cache_data(max_entries=16, show_spinner="Decomposing the cell…")
def drill(key_a: str, layer_a: str, key_b: str, layer_b: str, _x: np.ndarray, _y: np.ndarray) -> Drill:
    n = _x.shape[0]
    if n > DRILL_MAX_ROWS:
        index = np.unique(np.linspace(0, n - 1, DRILL_MAX_ROWS).round().astype(np.int64))
        _x, _y = _x[index], _y[index]
    return Drill(drilldown.gram_scatter(_x, _y, max_points=SCATTER_POINTS), drilldown.pc_contributions(_x, _y),
                 _x.shape[0])


@dataclass(frozen=True)
class ReductionEffect:
    """The same two models and layers under another reduction: its linear CKA map and how far it is
    from the chosen one's."""

    how: str
    label: str
    values: np.ndarray | None
    max_change: float | None
    mean_change: float | None
    note: str | None = None


def reduction_effects(runs_a: dict, runs_b: dict, chosen: str, options: dict[str, str],
                      debiased: bool) -> list[ReductionEffect]:
    """Linear CKA between the two models' layers under every reduction that was run, against the chosen
    one (rows must pair up: under 'tokens' two tokenizers that split texts differently do not)."""
    maps = {}
    for how in runs_a:
        if how in runs_b and own.same_rows([runs_a[how], runs_b[how]]):
            maps[how] = cka_matrix_or_nan(runs_a[how].layers, runs_b[how].layers, debiased=debiased)
    reference = maps.get(chosen)
    effects = []
    for how in runs_a:
        values = maps.get(how)
        if values is None:
            effects.append(ReductionEffect(how, options.get(how, how), None, None, None,
                                           "the two models' rows do not pair up (different tokens)"))
            continue
        change = np.abs(values - reference) if reference is not None else None
        defined = change is not None and bool(np.isfinite(change).any())
        effects.append(ReductionEffect(how, options.get(how, how), values,
                                       float(np.nanmax(change)) if defined else None,
                                       float(np.nanmean(change)) if defined else None,
                                       "a layer is constant under it (CKA 0/0), e.g. the first token is the same "
                                       "[CLS] vector for every text at the embeddings" if np.isnan(values).any() else None))
    return effects


def best_cell(values: np.ndarray, settings: Settings) -> tuple[int, int]:
    """(row, column) of the most similar pair of layers under the chosen measure."""
    return sanity.most_similar_cell(values, settings.measure)


def takeaway(values: np.ndarray, a: Side, b: Side, settings: Settings) -> str:
    """The page's lesson in one sentence: the best cell, and what the same cell reads with a trained
    side replaced by its untrained twin (when a zoo network is involved), worded in the measure's
    direction (a similarity's highest value, a distance's smallest)."""
    words = sanity.direction(settings.measure)
    i, j = best_cell(values, settings)
    value = float(values[i, j])
    best = (f"{settings.label} finds {a.label}'s {a.names[i]} {words.most} to {b.label}'s {b.names[j]} "
            f"({words.best_value}{value:.2f})")
    plan = baseline_plan(a, b)
    if plan is None:
        return best + "; whether such a value is beyond chance, the intervals, p-values and checks below decide."
    replaced, model = plan
    try:
        what, baseline = baseline_values(*pair_arguments(a, b), settings.key, replaced, model, a.layers, b.layers,
                                         settings)
    except RepresentationError:
        return best + "."
    untrained = float(baseline[i, j])
    against = f"{untrained:.2f} against {value:.2f}"
    if sanity.more_similar(value, untrained, settings.measure):
        return (f"{best}, but a value needs its baseline: with side {replaced} replaced by {what} the same cell is "
                f"{words.less}: {against}.")
    return (f"{best}, but a value needs its baseline: with side {replaced} replaced by {what} the same cell is "
            f"{words.as_much}: {against}, so this similarity comes from the inputs, not from training.")


def milliseconds(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def top_pairs_share(contrib: drilldown.PCContributions, k: int) -> str:
    """Share of linear CKA carried by the k x k leading principal-component pairs."""
    return f"{contrib.top_sum(k) / contrib.cka:.1%}" if contrib.cka > 0 else "—"


def pc_pair(pair: tuple[int, int, float]) -> str:
    """'PC1 × PC2' for a (row, column, value) term of the eigen form (0-based indices)."""
    return f"PC{pair[0] + 1} × PC{pair[1] + 1}"


def participation_ratios(contrib: drilldown.PCContributions) -> str:
    return (f"{drilldown.participation_ratio(contrib.eigenvalues_x):.1f}, "
            f"{drilldown.participation_ratio(contrib.eigenvalues_y):.1f}")


def value_at(values: np.ndarray, a: Side, b: Side, layer_a: str, layer_b: str) -> float:
    return float(values[a.names.index(layer_a), b.names.index(layer_b)])


def check_line(check: sanity.Check) -> None:
    """One sanity check as a line: status icon, name, message."""
    icon = STATUS_ICONS[check.status]
    colour = {sanity.PASS: "green", sanity.WARN: "orange", sanity.FAIL: "red", sanity.INFO: "blue"}[check.status]
    st.markdown(f":{colour}[{icon} **{check.name}**] — {check.message}")
