"""What the "Specific and sensitive?" page shows (Ding, Denain & Steinhardt 2021; docs/theory.md §8.3):
one layer with principal components deleted, each measure against the functional cost and the seed
spread, and the figures.

The expensive part, every deletion of one layer under every measure with its functional score, is
cached per (network key, layer, functional score); the seed spread per (network key, layer). The
k slider only reads them.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from cka_core import MEASURES, RepresentationError
from cka_core.pitfalls import sensitivity
from cka_core.pitfalls.sensitivity import Deletion, Sweep
from cka_core.pitfalls.transforms import deleted_components, nonzero_spectrum

from ..frame import figures
from ..sources import models
from ..sources.probe import LinearProbe

NETWORK, LAYER = "mlp_seed0", "hidden2"
FUNCTIONALS = {"network": "The network's own accuracy", "probe": "A linear probe's accuracy"}
#: What the functional score is called in sentences.
FUNCTIONAL_NAMES = {"network": "the network's accuracy", "probe": "the probe's accuracy"}
WHICH = {"bottom": "Bottom-k: smallest variance", "top": "Top-k: largest variance"}
#: The zoo's networks that differ only in their training seed (Kornblith et al.'s retrained runs).
SEED_RUNS = ("mlp_seed0", "mlp_seed1", "mlp_seed2")
#: The bottom-k slider opens with every component but this many leading ones deleted.
KEPT_BY_DEFAULT = 4
MEASURE_LABELS = {m: MEASURES[m].label for m in sensitivity.COMPARED} | {
    "shape_metric": f"Shape metric (α = {sensitivity.OPTIONS['shape_metric']['alpha']:g})"}
#: The page's colour per measure: linear CKA keeps the app's, the others take class colours no role uses here.
MEASURE_COLOURS = {"linear_cka": figures.COLOURS["linear_cka"], "procrustes": figures.CLASS_COLOURS[5],
                   "pwcca": figures.CLASS_COLOURS[6], "shape_metric": figures.CLASS_COLOURS[4]}
#: Metric labels short enough for a quarter of the results column.
SHORT_LABELS = {"linear_cka": "Linear CKA", "procrustes": "Procrustes angle", "pwcca": "PWCCA",
                "shape_metric": "Shape metric"}
SCORE_LABELS = {"network": "Network accuracy", "probe": "Probe accuracy"}
SYMBOLS = {"bottom": "circle", "top": "triangle-up"}
#: Changes of the functional score below this (half a tenth of a point) read as none.
NO_CHANGE = 5e-4
#: A cost that this many deletions of one kind or more share is said to stack them in a column.
CROWDED = 5


def networks() -> list[str]:
    """Trained networks that can run on from an edited layer, the default first."""
    names = [n for n in models.names(trained=True) if models.get(n).run_from_layers]
    return sorted(names, key=lambda n: n != NETWORK)


def layers(name: str) -> list[str]:
    """The network's layers it can continue from (its own accuracy after an edit is defined there)."""
    network = models.get(name)
    return [layer for layer in network.layers if network.can_run_from(layer)]


def default_layer(name: str) -> str:
    options = layers(name)
    return LAYER if LAYER in options else options[0]


def seed_runs(name: str) -> list[str]:
    """The networks that differ from ``name``'s architecture only in the training seed (none outside SEED_RUNS)."""
    architecture = models.get(name).architecture
    return [run for run in SEED_RUNS if run != architecture] if architecture in SEED_RUNS else []


def grid_size(rank: int) -> int:
    """How many k a sweep tries: every one for layers of up to 65 components; fewer as an SVD of the
    layer grows (about 40 ms per deletion at 256 features, 190 ms at 1024, single-threaded)."""
    return 64 if rank <= 65 else 32 if rank <= 256 else 16


def k_options(rank: int) -> list[int]:
    return sensitivity.deletion_counts(rank, grid_size(rank))


def on_a_grid(rank: int) -> bool:
    """Whether the k tried skip some (a wide layer), rather than every k from 1 to rank - 1."""
    return len(k_options(rank)) < rank - 1


def default_k(which: str, options: list[int], rank: int) -> int:
    """The k the slider opens with (then kept when top-k and bottom-k are switched): top, the leading component
    alone; bottom, all but KEPT_BY_DEFAULT leading ones (the nearest option)."""
    target = 1 if which == "top" else rank - KEPT_BY_DEFAULT
    return min(options, key=lambda k: abs(k - target))


def _score(name: str, layer: str, functional: str) -> Callable[[np.ndarray], float]:
    """score(X_edited): accuracy on the test digits of the network run on from the edited layer, or of a
    linear probe fitted once on the original layer (train split)."""
    y_test, y_train = models.labels(name)
    if functional == "network":
        return lambda edited: models.accuracy(models.run_from(name, layer, edited), y_test)
    fitted = LinearProbe().fit(models.activations(name)["train"][layer], y_train)
    return lambda edited: fitted.score(edited, y_test)


@st.cache_data(max_entries=32, show_spinner="Deleting principal components and measuring every deletion…")
def sweep(key: str, name: str, layer: str, functional: str) -> Sweep:
    """Every top-k and bottom-k deletion of the layer (test digits) under each compared measure, with its score."""
    X = models.activations(name)["test"][layer]
    return sensitivity.deletion_sweep(X, _score(name, layer, functional), ks=k_options(components(name, layer)))


@st.cache_data(max_entries=32, show_spinner="Comparing with the networks retrained from other seeds…")
def seed_spread(key: str, name: str, layer: str) -> dict[str, dict[str, float]]:
    """Each measure between the layer and the same layer of each seed run (test digits); {} without seed runs."""
    runs = seed_runs(name)
    if not runs:
        return {}
    X = models.activations(name)["test"][layer]
    return sensitivity.seed_spread(X, {run: models.activations(run)["test"][layer] for run in runs})


@st.cache_data(max_entries=64)
def _rank(key: str, name: str, layer: str) -> int:
    return int(nonzero_spectrum(models.activations(name)["test"][layer])[0].size)


def components(name: str, layer: str) -> int:
    """How many directions of the layer (test digits) have non-zero variance: the components to delete."""
    return _rank(models.get(name).key, name, layer)


# ----------------------------------------------------------------------------- what the page shows
@dataclass(frozen=True)
class MeasureShown:
    """One measure at the chosen deletion and over every deletion."""

    name: str
    label: str
    value: float
    dissimilarity: float
    seeds: dict[str, float]          # seed run -> the measure's value between the layer and that run's
    seed_band: tuple[float, float] | None  # (smallest, largest) dissimilarity to a seed run
    verdict: str                     # where the deletion sits against the seed spread
    rho: float | None                # Ding's rank correlation with the accuracy drop (None: undefined)
    constant: bool                   # the measure reads the same for every deletion
    hidden: Deletion | None          # the costliest deletion it reads closer than every seed run
    hidden_drop: float | None


@dataclass(frozen=True)
class SensitivityView:
    name: str
    layer: str
    functional: str
    sweep: Sweep
    deletion: Deletion
    measures: list[MeasureShown]
    runs: list[str]
    deleted_variance: float          # share of the variance the chosen deletion removes
    deleted_squared: float           # share of sum lambda^2 (what linear CKA weighs) it removes

    @property
    def drop(self) -> float:
        return self.sweep.baseline - self.deletion.score

    def measure(self, name: str) -> MeasureShown:
        return next(m for m in self.measures if m.name == name)


def verdict(dissimilarity: float, band: tuple[float, float] | None) -> str:
    """Where a deletion sits against the seed spread, in a few words (a metric's chip)."""
    if band is None:
        return "no seed runs"
    if dissimilarity < band[0]:
        return "closer than seeds"
    return "within seed spread" if dissimilarity <= band[1] else "beyond seeds"


def _measure(m: str, found: Sweep, deletion: Deletion, seeds: dict[str, float]) -> MeasureShown:
    d, drops = found.dissimilarities(m), found.drops()
    gaps = sorted(sensitivity.dissimilarity(m, v) for v in seeds.values())
    band = (gaps[0], gaps[-1]) if gaps else None
    hidden = sensitivity.hidden_below_seed_spread(d, drops, sensitivity.seed_floor(m, seeds.values()))
    own = sensitivity.dissimilarity(m, deletion.values[m])
    return MeasureShown(m, MEASURE_LABELS[m], deletion.values[m], own, seeds, band, verdict(own, band),
                        sensitivity.rank_sensitivity(d, drops), sensitivity.is_constant(d),
                        None if hidden is None else found.deletions[hidden],
                        None if hidden is None else float(drops[hidden]))


def view(name: str, layer: str, functional: str, which: str, k: int) -> SensitivityView:
    """Everything the controls drive, from the cached sweep and seed spread."""
    key = models.get(name).key
    found = sweep(key, name, layer, functional)
    deletion = found.find(which, k)
    if deletion is None:
        why = next((reason for w, kk, reason in found.skipped if (w, kk) == (which, k)), "it is not on the grid of k")
        raise RepresentationError(f"The deletion of {deleted_text(which, k)} could not be measured: {why}. "
                                  "Pick another k.")
    spread = seed_spread(key, name, layer)
    measures = [_measure(m, found, deletion, spread.get(m, {})) for m in found.measures]
    return SensitivityView(name, layer, functional, found, deletion, measures, seed_runs(name),
                           sensitivity.deleted_variance(found.lambdas, k, which),
                           1.0 - deletion.closed_form_cka ** 2)  # CKA^2 = the kept share of sum lambda^2 (§8.3)


def deleted_text(which: str, k: int) -> str:
    """The deletion in words: 'the highest-variance principal component', 'the 10 lowest-variance principal
    components'."""
    side = "lowest" if which == "bottom" else "highest"
    return (f"the {side}-variance principal component" if k == 1 else
            f"the {k} {side}-variance principal components")


def points(drop: float | None) -> str:
    """An accuracy drop in percentage points, to the 0.1 shown."""
    return "—" if drop is None else f"{round(100 * drop, 1) + 0.0:.1f}"


def seed_text(shown: MeasureShown, digits: int = 3) -> str:
    """The seed runs' values of a measure, low to high ('0.947–0.956')."""
    values = sorted(shown.seeds.values())
    if not values:
        return "—"
    low, high = f"{values[0]:.{digits}f}", f"{values[-1]:.{digits}f}"
    return low if low == high else f"{low}–{high}"


def share(value: float) -> str:
    """A share with two decimals of a percent (shares of Σλ² of a bottom-k deletion are tiny)."""
    return f"{value:.2%}"


def measure_help(shown: MeasureShown) -> str:
    info = MEASURES[shown.name]
    seeds = "; ".join(f"{run}: {value:.4f}" for run, value in shown.seeds.items()) or "none for this network"
    return (f"{shown.label}: {info.description} Between the layer and the layer with the deletion; "
            f"{'higher' if info.higher_is_similar else 'lower'} = more similar. Same layer of the seed runs: {seeds}. "
            f"Dissimilarity on the chart's scale: {shown.dissimilarity:.4f}. ({info.reference})")


def notes(v: SensitivityView) -> list[str]:
    """What the page says beside the numbers: PWCCA's blindness (when it never moves), a missing seed spread."""
    said = []
    pwcca = v.measure("pwcca")
    if pwcca.constant:
        values = sorted({f"{d.values['pwcca']:.4f}" for d in v.sweep.deletions})
        said.append(f"**PWCCA reads {' to '.join(dict.fromkeys([values[0], values[-1]]))} for every one of the "
                    f"{len(v.sweep.deletions)} deletions** "
                    f"(and {seed_text(pwcca)} for the retrained seed runs). This is itself a finding: the edited "
                    "layer's centred column space lies inside the original's, so every canonical correlation that "
                    "exists is 1, and weighting them changes nothing. A measure built on canonical correlations cannot "
                    "see a deleted principal component at all, whatever it costs.")
    if not v.runs:
        said.append(f"{v.name} has no networks retrained from another seed in the zoo (only {', '.join(SEED_RUNS)} "
                    "are), so there is no seed spread to compare with: no bands on the chart and no deletion "
                    "counted as hidden below it.")
    return said


def skipped_note(found: Sweep) -> str:
    listed = "; ".join(f"{which} {k}: {why}" for which, k, why in found.skipped)
    return (f"{len(found.skipped)} deletion(s) could not be measured and are left out of the chart and the table "
            f"({listed}).")


def seeds_caption(v: SensitivityView) -> str:
    """The seed spread of every measure in one line, the context of the metrics above it."""
    if not v.runs:
        return f"No network retrained from another seed to compare {v.name} with."
    values = " · ".join(f"{SHORT_LABELS[m.name]} {seed_text(m)}" for m in v.measures)
    return f"Same layer of {' and '.join(v.runs)}, retrained from other seeds: {values}."


def _hides(shown: MeasureShown, who: str) -> str:
    if shown.hidden_drop is None or shown.hidden_drop < NO_CHANGE:
        return f"{who} hides no accuracy drop"
    return f"{who} hides accuracy drops of up to {points(shown.hidden_drop)} points"


def takeaway(v: SensitivityView) -> str:
    """The page's lesson in one sentence, with the numbers of the current deletion and of the whole sweep."""
    d, cka = v.deletion, v.measure("linear_cka")
    score_name = FUNCTIONAL_NAMES[v.functional]
    moved = abs(v.drop) >= NO_CHANGE
    effect = (f"takes {score_name} from {v.sweep.baseline:.1%} to {d.score:.1%}" if moved
              else f"leaves {score_name} at {d.score:.1%}")
    head = (f"Deleting {deleted_text(d.which, d.k)} of {v.layer}'s {v.sweep.rank} "
            f"({v.deleted_variance:.2%} of the variance) {effect}")
    if cka.seed_band is None:
        return (f"{head}, and linear CKA reads {cka.value:.3f} (this network has no retrained seed runs to set it "
                f"against); over all {len(v.sweep.deletions)} deletions its rank correlation with the accuracy drop "
                f"is {'undefined' if cka.rho is None else f'ρ = {cka.rho:.2f}'}.")
    closer = cka.dissimilarity < cka.seed_band[0]
    where = ("closer to the original than the same layer of a network retrained from another seed"
             if closer else "further from the original than the same layer of a retrained network")
    pwcca = v.measure("pwcca")
    tail = f"; PWCCA reads {pwcca.value:.3f} for every deletion" if pwcca.constant else ""
    return (f"{head}, {'yet' if moved and closer else 'and'} linear CKA reads {cka.value:.3f}, {where} "
            f"({seed_text(cka)}). Over all {len(v.sweep.deletions)} deletions, {_hides(cka, 'linear CKA')} below that "
            f"seed spread and {_hides(v.measure('procrustes'), 'the Procrustes angle')}{tail}.")


def hidden_text(shown: MeasureShown) -> str:
    """Which deletion a measure hides below the seed spread, in words."""
    if shown.seed_band is None:
        return "no seed spread"
    if shown.hidden is None:
        return "none below it"
    if shown.hidden_drop < NO_CHANGE:
        return "none costly"
    return f"{shown.hidden.which} {shown.hidden.k}"


def rho_text(shown: MeasureShown) -> str:
    if shown.rho is not None:
        return f"{shown.rho:.2f}"
    return "undefined: never moves" if shown.constant else "undefined: accuracy constant"


def table_frame(v: SensitivityView) -> pd.DataFrame:
    """Per measure: the seed spread, Ding's rank correlation and the largest drop hidden below the spread."""
    return pd.DataFrame({
        "measure": [m.label for m in v.measures],
        "seed runs": [seed_text(m) for m in v.measures],
        "ρ with the drop": [rho_text(m) for m in v.measures],
        "largest hidden drop (points)": [points(m.hidden_drop) for m in v.measures],
        "hidden deletion": [hidden_text(m) for m in v.measures],
    })


def sweep_frame(found: Sweep) -> pd.DataFrame:
    """The values behind the chart, one row per deletion."""
    frame = pd.DataFrame(found.rows()).rename(columns={**MEASURE_LABELS, "closed_form_cka": "linear CKA, closed form"})
    return frame.rename(columns={"score": "accuracy", "drop": "accuracy drop"})


# ----------------------------------------------------------------------------- figures
def _hover(label: str) -> str:
    return (f"{label}<br>%{{customdata[0]}} %{{customdata[1]}} deleted<br>accuracy drop %{{x:.1f}} points"
            "<br>dissimilarity %{y:.4f} (value %{customdata[2]:.4f})<extra></extra>")


def stacked(found: Sweep) -> list[tuple[str, float, int]]:
    """(top or bottom, cost in points, how many deletions) of every cost that CROWDED or more deletions of one
    kind share (to 0.1 point): those deletions stack in one column of the chart."""
    drops, found_which = np.round(100 * found.drops(), 1), np.array([d.which for d in found.deletions])
    said = []
    for which in ("bottom", "top"):
        costs, counts = np.unique(drops[found_which == which], return_counts=True)
        said += [(which, float(c), int(n)) for c, n in zip(costs, counts) if n >= CROWDED]
    return said


def stacked_text(v: SensitivityView) -> str:
    """Why the chart's points stand in columns, in numbers ('' when none do)."""
    kinds = {w: sum(d.which == w for d in v.sweep.deletions) for w in ("bottom", "top")}
    parts = [f"{count} of the {kinds[which]} {which}-k deletions "
             + ("cost nothing" if cost == 0 else f"cost {cost:.1f} points")
             for which, cost, count in stacked(v.sweep)]
    if not parts:
        return ""
    return (f"{' and '.join(parts)} ({FUNCTIONAL_NAMES[v.functional]} moves in steps of one test digit, and it "
            "cannot fall below chance): they stand in a column, one point above the other.")


# The four panels of the deletions chart, in the order of the measures: (x domain, y domain).
_PANELS = (((0.0, 0.46), (0.6, 1.0)), ((0.54, 1.0), (0.6, 1.0)), ((0.0, 0.46), (0.0, 0.4)), ((0.54, 1.0), (0.0, 0.4)))


def deletions_figure(v: SensitivityView) -> go.Figure:
    """Each measure's dissimilarity against the accuracy drop over every deletion, one panel per measure (axes
    shared), so that where many deletions cost the same no measure's points hide another's: circles bottom-k,
    triangles top-k, the measure's seed spread as a band of its colour, the chosen deletion ringed. Built in one
    constructor call, as ui.pitfalls.separability's curves."""
    found, drops = v.sweep, 100 * v.sweep.drops()
    data, shapes, titles, axes = [], [], [], {}
    for n, (shown, (x_domain, y_domain)) in enumerate(zip(v.measures, _PANELS), start=1):
        x, y = ("x", "y") if n == 1 else (f"x{n}", f"y{n}")
        colour, d = MEASURE_COLOURS[shown.name], found.dissimilarities(shown.name)
        for which in ("bottom", "top"):
            rows = [i for i, deletion in enumerate(found.deletions) if deletion.which == which]
            custom = [[which, found.deletions[i].k, found.deletions[i].values[shown.name]] for i in rows]
            data.append(dict(type="scatter", x=drops[rows], y=d[rows], xaxis=x, yaxis=y, mode="markers",
                             name=shown.label, showlegend=False, customdata=custom,
                             marker=dict(color=colour, size=7, symbol=SYMBOLS[which], opacity=0.7),
                             hovertemplate=_hover(shown.label)))
        if shown.seed_band is not None:
            low, high = shown.seed_band
            shapes.append(dict(type="rect", xref=f"{x} domain", x0=0, x1=1, yref=y, y0=low,
                               y1=max(high, low + 0.004), fillcolor=colour, opacity=0.3, line=dict(width=0),
                               layer="below"))
        data.append(dict(type="scatter", x=[100 * v.drop], y=[shown.dissimilarity], xaxis=x, yaxis=y,
                         mode="markers", showlegend=False,
                         marker=dict(color="rgba(0,0,0,0)", size=15,
                                     line=dict(color=figures.COLOURS["current"], width=3)),
                         hovertemplate=f"{shown.label}: this deletion<extra></extra>"))
        titles.append(dict(text=shown.label, x=sum(x_domain) / 2, y=y_domain[1], xref="paper", yref="paper",
                           xanchor="center", yanchor="bottom", showarrow=False, font=dict(color=colour, size=13)))
        bottom_row, left_column = y_domain[0] == 0.0, x_domain[0] == 0.0
        axes[x.replace("x", "xaxis")] = dict(domain=list(x_domain), anchor=y, matches=None if n == 1 else "x",
                                             showticklabels=bottom_row, title=dict(
            text=f"drop of {FUNCTIONAL_NAMES[v.functional]} (points)" if bottom_row else ""))
        axes[y.replace("y", "yaxis")] = dict(domain=list(y_domain), anchor=x, range=[-0.02, 1.02],
                                             matches=None if n == 1 else "y", showticklabels=left_column,
                                             title=dict(text="dissimilarity" if left_column else ""))
    for which in ("bottom", "top"):  # legend entries for the two marker shapes
        data.append(dict(type="scatter", x=[None], y=[None], mode="markers", name=f"{which}-k",
                         marker=dict(color=figures.COLOURS["original"], symbol=SYMBOLS[which], size=8)))
    layout = {**figures.LAYOUT, "height": 560, "margin": dict(l=60, r=20, t=60, b=60)}
    return go.Figure(dict(data=data, layout=dict(
        title=f"Every deletion of {v.layer}: how far each measure moves vs what it costs", shapes=shapes,
        annotations=titles, legend=dict(orientation="h", y=-0.12), **axes, **layout)))


def spectrum_figure(v: SensitivityView) -> go.Figure:
    """Share of the variance (lambda_i / sum lambda) and of sum lambda^2 (linear CKA's weight) per principal
    component, log scale, the deleted components marked."""
    lam = v.sweep.lambdas
    pcs = np.arange(1, lam.size + 1)
    deleted = np.zeros(lam.size, dtype=bool)
    deleted[deleted_components(v.deletion.which, v.deletion.k, lam.size)] = True
    variance, squared = "share of the variance λᵢ/Σλ", "share of Σλ² (linear CKA's weight)"
    fig = figures.curve(pcs, {variance: lam / lam.sum(), squared: lam**2 / np.sum(lam**2)},
                        title=f"{v.layer}: " + ("the deleted component (red) carries" if v.deletion.k == 1 else
                                                  f"the {v.deletion.k} deleted components (red) carry") +
                              f" {v.deleted_variance:.2%} of the variance, {v.deleted_squared:.2%} of Σλ²",
                        x_title="principal component", y_title="share")
    fig.update_traces(line=dict(color=figures.COLOURS["original"]), selector=dict(name=variance))
    fig.update_traces(line=dict(color=figures.COLOURS["linear_cka"]), selector=dict(name=squared))
    for y in (lam / lam.sum(), lam**2 / np.sum(lam**2)):
        fig.add_trace(go.Scatter(x=pcs[deleted], y=y[deleted], mode="markers", showlegend=False,
                                 marker=dict(color=figures.COLOURS["moved"], size=6),
                                 hovertemplate="component %{x} (deleted): %{y:.2e}<extra></extra>"))
    fig.update_yaxes(type="log", exponentformat="power")
    fig.update_layout(legend=dict(orientation="h", y=-0.2), margin=dict(l=60, r=20, t=50, b=80), height=400)
    return fig
