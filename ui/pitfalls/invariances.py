"""What the Invariances page shows: every measure between X and T(X), the measure x
transformation table (docs/theory.md §1.4, §5, §8); which dissimilarities are distances is
:mod:`.triangles`.

Keyed on the representation's key and small scalars (the arrays are passed with a leading
underscore, not hashed). Results are small dicts of floats and short arrays, never T(X) itself.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from cka_core import MEASURES, RepresentationError
from cka_core.measures import movement  # one scale for every measure: share of the way to unrelated
from cka_core.measures import is_unbounded, unrelated_baseline
from cka_core.pitfalls import transforms
from cka_core.measures import INVERTIBLE, parameter_defaults, similarities_of_views
from cka_core.measures.view import LayerView

from ..frame import figures
from ..sources import data, limits

SHORT = {"orthogonal": "Orthogonal", "isotropic": "Isotropic", "anisotropic": "Anisotropic",
         "one_feature": "One feature", "invertible": "Invertible", "permutation": "Permutation",
         "translation": "Translation", "noise": "Noise", "top_k": "Top-k PCs"}
TINY_CHANGE = 5e-5  # a metric that moved less than this is shown as unchanged
MAX_ROWS = limits.SUBSET_ROWS  # the O(n^2) measures (RBF CKA, RSA) stay fast
MAX_FEATURES = limits.SUBSET_FEATURES  # the dense d x d maps (orthogonal, invertible) stay fast
INVARIANCE_TOL = 1e-6  # a declared invariance that moves more than this is a bug

# The fixed, moderate strengths of the measure x transformation table (seed 0 throughout).
TABLE_STRENGTHS = {
    "orthogonal": None,
    "isotropic": 10.0,
    "anisotropic": 1.0,
    "one_feature": 10.0,
    "invertible": 100.0,
    "permutation": None,
    "translation": 10.0,
    "noise": 0.3,
    "top_k": "d/4",
}
TABLE_SEED = 0
#: Representations whose table (and the numbers it is read against) a server keeps: every sidebar source of
#: the zoo that is not a pixel RNN's step (84; a 1,024-wide conv layer's table takes 10 s), so that a warm-up
#: leaves them all computed. Each entry is a few kB.
SOURCES_KEPT = 128


def table_strength(name: str, d: int) -> float | None:
    """The table's strength for ``name`` on a representation with d features."""
    value = TABLE_STRENGTHS[name]
    if value == "d/4":
        return float(max(1, d // 4))
    return value


def strength_text(name: str, strength: float | None) -> str:
    info = transforms.TRANSFORMATIONS[name]
    if info.strength is None:
        return f"seed {TABLE_SEED}"
    if name == "top_k":
        return f"k = {int(strength)}"
    return f"{info.strength.split()[-1]} = {strength:g}"


def _evenly_spaced(n: int, limit: int) -> np.ndarray:
    """Deterministic subsample: ``limit`` indices spread evenly over 0..n-1 (first and last kept)."""
    return np.unique(np.linspace(0, n - 1, limit).round().astype(np.int64))


@st.cache_resource(max_entries=16)
def working_matrix(rep_key: str, _rep: data.Representation) -> tuple[np.ndarray, str | None]:
    """The representation the page works on: at most MAX_ROWS rows and MAX_FEATURES features, evenly
    spaced (so wide or long uploads stay fast), read-only; plus a note saying what was kept."""
    X = _rep.X
    n, d = X.shape
    notes = []
    if n > MAX_ROWS:
        X = X[_evenly_spaced(n, MAX_ROWS)]
        notes.append(f"{X.shape[0]} of the {n} examples")
    if d > MAX_FEATURES:
        X = X[:, _evenly_spaced(d, MAX_FEATURES)]
        notes.append(f"{X.shape[1]} of the {d} features")
    X = np.ascontiguousarray(X, dtype=np.float64)
    X.setflags(write=False)
    note = None
    if notes:
        note = (f"To keep every slider fast, this page uses {' and '.join(notes)} (evenly spaced, the same every "
                "time); every measure compares this subset with its own transformation.")
    return X, note


#: The measures of one representation against its transformation: all but dCKA, which needs the
#: inputs the layer was computed from (the Confounders page shows it on the zoo's networks), and those
#: that compare two networks' class outputs (``on_outputs``), not a hidden layer.
ONE_LAYER_MEASURES = tuple(m for m, info in MEASURES.items() if not info.needs_inputs and not info.on_outputs)


@st.cache_resource(max_entries=8)
def layer_view(rep_key: str, _X: np.ndarray) -> LayerView:
    """The working matrix as every measure sees it, its per-layer work (distances, bases, neighbours) kept
    for all measures and transformations (it is the same X in every comparison of this page)."""
    return LayerView.of(_X, "X")


def _all_measures(rep_key: str, X: np.ndarray, Y: np.ndarray | None, measures=ONE_LAYER_MEASURES
                  ) -> tuple[dict[str, float], dict[str, str]]:
    """Every measure between X (its view shared, :func:`layer_view`) and Y (None: X itself) at its declared
    defaults; a side no measure can take (constant) is every measure's error."""
    try:
        vx = layer_view(rep_key, X)
        vy = vx if Y is None else LayerView.of(Y, "Y")
    except RepresentationError as error:
        return {}, {name: str(error) for name in measures}
    return similarities_of_views(vx, vy, measures)


#: Singular values of the centred layer in this band below the largest are neither clearly directions nor
#: clearly round-off: a measure that counts the layer's directions (eigenspace overlap, GULP, the CCA family)
#: sets a threshold there, and an invertible map, which rescales directions, can move one across it.
RANK_BAND = (1e-12, 1e-6)


@st.cache_data(max_entries=SOURCES_KEPT)
def rank_note(rep_key: str, _X: np.ndarray) -> str | None:
    """None when the layer's rank is clear; else why its invariances to invertible linear maps are shown but
    not checked (a pixel RNN's saturated steps have singular values from 1 down to 1e-12 of the largest)."""
    s = np.linalg.svd(_X - _X.mean(axis=0), compute_uv=False)
    relative = s / s[0]
    unclear = relative[(relative > RANK_BAND[0]) & (relative < RANK_BAND[1])]
    if unclear.size == 0:
        return None
    return (f"This layer's rank is not clear: {unclear.size} of its directions have {unclear.max():.0e} to "
            f"{unclear.min():.0e} of the largest one's spread, between certain directions and round-off. Measures that "
            "count directions must draw a line there, and an invertible linear map (anisotropic scaling, a general "
            "invertible map) rescales directions across it, so those invariances are shown but not checked here.")


def checked(measure: str, transformation: str, rank_clear: bool) -> bool:
    """Whether ``measure``'s declared invariance to ``transformation`` is held to :data:`INVARIANCE_TOL`: always,
    but where only the invertible-linear class covers it and the layer's rank is not clear (:func:`rank_note`)."""
    invariances = MEASURES[measure].invariances
    return rank_clear or transforms.declared_invariant(invariances - {INVERTIBLE}, transformation)


@st.cache_data(max_entries=SOURCES_KEPT)
def identity_values(rep_key: str, _X: np.ndarray) -> tuple[dict[str, float], dict[str, str]]:
    """m(X, X) for every measure (the reference each movement is measured from), and any errors."""
    return _all_measures(rep_key, _X, None)


@st.cache_data(max_entries=SOURCES_KEPT)
def unrelated_values(rep_key: str, _X: np.ndarray) -> tuple[dict[str, float], dict[str, str]]:
    """For each distance with no upper bound, its value between X and unrelated noise of X's shape and
    spread: the "unrelated" end its movement is read against (``measures.unrelated_baseline``), and any
    errors."""
    values, errors = {}, {}
    for name in ONE_LAYER_MEASURES:
        if is_unbounded(name):
            try:
                values[name] = unrelated_baseline(_X, name, **parameter_defaults(name))
            except RepresentationError as error:
                errors[name] = str(error)
    return values, errors


def _movement(m: str, value: float, reference: float, unrelated: dict[str, float]) -> float:
    """``movement`` of measure m, NaN for a distance with no upper bound whose baseline failed."""
    if is_unbounded(m) and m not in unrelated:
        return float("nan")
    return movement(m, value, reference, unrelated.get(m))


def _range_text(low: float, high: float, unrelated: float | None) -> str:
    if math.isfinite(high):
        return f"Range {low:g} to {high:.3g}"
    against = "" if unrelated is None else f" ({unrelated:.4g} here)"
    return (f"Range {low:g} to ∞ (no upper bound: a movement of 1 is as far as X is from unrelated noise of its "
            f"shape and spread{against})")


#: Transformations that keep every bit of information in X (an inverse exists), unlike noise and PC deletion.
LOSSLESS = ("orthogonal", "isotropic", "anisotropic", "one_feature", "invertible", "permutation", "translation")


def takeaway(table: dict) -> str:
    """The page's lesson in one sentence, with the numbers of the table (this representation)."""
    bugs = int(np.count_nonzero(table["violation"]))
    held = ("every declared invariance holds (✓ cells stay at 0)" if bugs == 0 else
            f"{bugs} declared invariance(s) moved (⚠: a bug)")
    row = table["measures"].index("linear_cka")
    moves = sorted(((table["movement"][row, j], t) for j, t in enumerate(table["transformations"])
                    if t in LOSSLESS and not table["declared"][row, j] and np.isfinite(table["movement"][row, j])),
                   reverse=True)[:2]
    if not moves:
        return f"Each measure ignores what it declares: {held}."
    named = " and ".join(f"{value:.2f} under {transforms.TRANSFORMATIONS[t].label.lower()}" for value, t in moves)
    return (f"Each measure ignores exactly what it declares — {held} — and nothing more: linear CKA moves {named}, "
            "maps that keep every bit of information in X.")


def variance_shares(X: np.ndarray, top: int = 40) -> np.ndarray:
    """Share of the total variance carried by each of the ``top`` leading principal components."""
    lambdas = transforms.covariance_eigenvalues(X)
    total = lambdas.sum()
    return (lambdas / total)[:top] if total > 0 else np.zeros(min(top, lambdas.size))


@st.cache_data(max_entries=256)
def panel(rep_key: str, _X: np.ndarray, name: str, strength: float | None, seed: int) -> dict:
    """Every measure between X and T(X) for one transformation, strength and seed, with the
    variance spectra of both and (for PC deletion) the exact prediction of linear CKA."""
    Y = transforms.transform(_X, name, strength, seed)
    values, errors = _all_measures(rep_key, _X, Y)
    result = {"values": values, "errors": errors, "shares_x": variance_shares(_X), "shares_y": variance_shares(Y)}
    if name == "top_k":
        result["prediction"] = transforms.top_k_cka(transforms.covariance_eigenvalues(_X), int(strength))
    return result


@st.cache_data(max_entries=SOURCES_KEPT, show_spinner="Computing the measure × transformation table…")
def table(rep_key: str, _X: np.ndarray) -> dict:
    """The measure x transformation table at the fixed strengths of TABLE_STRENGTHS.

    movement[i, j]: |m_i(X, T_j(X)) - m_i(X, X)| / span of m_i (see movement); declared[i, j]: measure i declares an
    invariance class that contains T_j; violation[i, j]: declared and moved more than INVARIANCE_TOL
    (raw difference). Cells whose measure failed hold NaN (their message is in ``errors``), and so do the
    columns of transformations that cannot be applied (their message is in ``failed``).
    """
    return _table(rep_key, _X)


def _table(rep_key: str, _X: np.ndarray) -> dict:
    measures, names = list(ONE_LAYER_MEASURES), list(transforms.TRANSFORMATIONS)
    reference, ref_errors = identity_values(rep_key, _X)
    note = rank_note(rep_key, _X)
    clear = note is None
    unrelated, unrelated_errors = unrelated_values(rep_key, _X)
    shape = (len(measures), len(names))
    values, moved = np.full(shape, np.nan), np.full(shape, np.nan)
    declared = np.zeros(shape, dtype=bool)
    violation = np.zeros(shape, dtype=bool)
    errors: dict[str, str] = dict(ref_errors)
    failed: dict[str, str] = {}
    d = _X.shape[1]
    for j, t in enumerate(names):
        for i, m in enumerate(measures):
            declared[i, j] = transforms.declared_invariant(MEASURES[m].invariances, t)
        try:
            Y = transforms.transform(_X, t, table_strength(t, d), TABLE_SEED)
        except RepresentationError as error:
            failed[t] = str(error)
            continue
        row, row_errors = _all_measures(rep_key, _X, Y, [m for m in measures if m not in errors])
        errors.update(row_errors)
        for i, m in enumerate(measures):
            if m not in row:
                continue
            values[i, j] = row[m]
            moved[i, j] = _movement(m, values[i, j], reference[m], unrelated)
            violation[i, j] = (declared[i, j] and checked(m, t, clear)
                               and abs(values[i, j] - reference[m]) > INVARIANCE_TOL)
    errors.update({m: why for m, why in unrelated_errors.items() if m not in errors})
    return {"measures": measures, "transformations": names, "values": values, "movement": moved,
            "declared": declared, "violation": violation, "reference": reference, "errors": errors,
            "failed": failed, "rank_note": note,
            "strengths": {t: strength_text(t, table_strength(t, d)) for t in names}}



DECLARED_COLOUR, OTHER_COLOUR = figures.COLOURS["original"], figures.COLOURS["linear_cka"]


def movement_bars(labels: list[str], values: list[float], declared: list[bool], *, title: str) -> go.Figure:
    """Horizontal bars of |m(X, T(X)) - m(X, X)| / span per measure (see movement), grey where the measure declares
    invariance to T (the bar must be empty), blue elsewhere. (A candidate for ui.frame.figures.)"""
    top = max(0.05, 1.25 * max(values, default=0.0))
    fig = go.Figure(go.Bar(
        x=values, y=labels, orientation="h", marker_color=[DECLARED_COLOUR if d else OTHER_COLOUR for d in declared],
        text=[f"{v:.3f}" + (" ✓" if d else "") for v, d in zip(values, declared)], textposition="outside",
        cliponaxis=False, hovertemplate="%{y}: %{x:.3e}<extra></extra>",
    ))
    fig.update_layout(title=title, xaxis_title="|m(X, T(X)) − m(X, X)| / span",
                      **{**figures.LAYOUT, "height": rows_height(len(labels))})
    fig.update_xaxes(range=[0, top])
    fig.update_yaxes(autorange="reversed", automargin=True, tickmode="array", tickvals=labels)  # every label
    return fig


TABLE_HEIGHT = 470


def rows_height(rows: int, per_row: int = 24, frame: int = 130) -> int:
    """A figure's height that gives each of ``rows`` measures a readable row (plotly hides every other
    label once they would overlap: at 430 px, 27 measures lost half their names)."""
    return max(430, frame + per_row * rows)


def default_components(d: int) -> int:
    """The Top-k slider's default: a quarter of the features."""
    return max(1, d // 4)


def spans_everything(X: np.ndarray) -> bool:
    """With d >= n - 1 the centred representation spans every direction the examples allow."""
    n, d = X.shape
    return d >= n - 1


@dataclass(frozen=True)
class MeasureShown:
    """One measure's metric on the page."""

    label: str
    value: float | None
    delta: str | None
    tiny: bool              # moved less than TINY_CHANGE: shown as unchanged
    higher_is_similar: bool
    declared: bool          # declares invariance to the transformation
    help: str


@dataclass(frozen=True)
class PanelView:
    measures: list[MeasureShown]
    errors: dict[str, str]                  # measure -> why it cannot be computed
    prediction: float | None                # linear CKA predicted in closed form (top-k only)
    broken: list[str]                       # measures that declare invariance but moved
    bars: go.Figure
    spectrum: go.Figure


def panel_view(rep_key: str, X: np.ndarray, name: str, strength: float | None, seed: int) -> PanelView:
    """Everything the controls drive; raises RepresentationError when T cannot be applied."""
    reference, reference_errors = identity_values(rep_key, X)
    unrelated, unrelated_errors = unrelated_values(rep_key, X)
    result = panel(rep_key, X, name, strength, seed)
    values, errors = result["values"], {**unrelated_errors, **reference_errors, **result["errors"]}
    declared = {m: transforms.declared_invariant(MEASURES[m].invariances, name) for m in ONE_LAYER_MEASURES}
    moved = {m: _movement(m, values[m], reference[m], unrelated) for m in ONE_LAYER_MEASURES
             if m in values and m in reference}
    moved = {m: share for m, share in moved.items() if np.isfinite(share)}  # no baseline, no scale
    shown = []
    for m in ONE_LAYER_MEASURES:
        measure = MEASURES[m]
        low, high = measure.value_range
        tail = (f" {_range_text(low, high, unrelated.get(m))}, "
                f"{'higher' if measure.higher_is_similar else 'lower'} = more similar; "
                f"identical inputs give {'—' if reference.get(m) is None else f'{reference[m]:.4f}'}.")
        if m not in values or m not in reference:
            shown.append(MeasureShown(measure.label, None, None, True, measure.higher_is_similar, declared[m],
                                      errors.get(m, "")))
            continue
        change = values[m] - reference[m]
        tiny = abs(change) < TINY_CHANGE
        shown.append(MeasureShown(measure.label, values[m], "0.0000" if tiny else f"{change:+.4f}", tiny,
                                  measure.higher_is_similar, declared[m],
                                  f"{measure.description}{tail} ({measure.reference})"))
    clear = rank_note(rep_key, X) is None
    broken = [MEASURES[m].label for m in moved
              if declared[m] and checked(m, name, clear) and abs(values[m] - reference[m]) > INVARIANCE_TOL]
    order = [m for m in ONE_LAYER_MEASURES if m in moved]
    bars = movement_bars([MEASURES[m].label for m in order], [moved[m] for m in order], [declared[m] for m in order],
                         title=f"How far each measure moved: {SHORT[name]}")
    return PanelView(shown, errors, result.get("prediction"), broken, bars,
                     spectrum_figure(result["shares_x"], result["shares_y"]))


def spectrum_figure(shares_x: np.ndarray, shares_y: np.ndarray) -> go.Figure:
    """Share of variance per principal component of X and of T(X), log scale."""
    pcs = np.arange(1, shares_x.size + 1)
    fig = figures.curve(pcs, {"X": np.where(shares_x > 1e-12, shares_x, np.nan),
                              "T(X)": np.where(shares_y[: pcs.size] > 1e-12, shares_y[: pcs.size], np.nan)},
                        title="Share of variance per principal component", x_title="principal component",
                        y_title="share of the total variance")
    fig.update_yaxes(type="log", exponentformat="power", dtick=1)
    fig.update_traces(line=dict(color=figures.COLOURS["original"], width=4), selector=dict(name="X"))
    fig.update_traces(line=dict(color=figures.COLOURS["current"], dash="dash"), mode="lines+markers",
                      marker=dict(size=4), selector=dict(name="T(X)"))
    return fig


def table_labels(table: dict) -> tuple[list[str], list[str]]:
    """(transformation column labels with their strength, measure row labels)."""
    return ([f"{SHORT[t]}<br>{table['strengths'][t]}" for t in table["transformations"]],
            [MEASURES[m].label for m in table["measures"]])


def table_figure(table: dict) -> go.Figure:
    """The measure x transformation table as an annotated heatmap (✓ declared, ⚠ violated)."""
    t_labels, m_labels = table_labels(table)
    moved = table["movement"]
    text = [[("—" if np.isnan(moved[i, j]) else f"{moved[i, j]:.3f}")
             + (" ✓" if table["declared"][i, j] else "") + (" ⚠" if table["violation"][i, j] else "")
             for j in range(moved.shape[1])] for i in range(moved.shape[0])]
    fig = figures.heatmap(np.nan_to_num(moved, nan=0.0), t_labels, m_labels,
                          title="How far each measure moves from its value for identical inputs (share of the way to unrelated)",
                          z_range=(0.0, 1.0), x_title="transformation", y_title="measure", colour_title="|Δ| / span")
    fig.update_traces(text=text, texttemplate="%{text}", customdata=table["values"],
                      hovertemplate="%{y} under %{x}<br>|Δ| / span = %{z:.2e}<br>value = %{customdata:.6f}<extra></extra>")
    # The table is the takeaway's evidence and must end within the first screen (900 px): with 27 measures the rows
    # get small type instead of height, and every measure keeps its name (plotly hid every other one).
    fig.update_layout(height=TABLE_HEIGHT, margin=dict(l=60, r=20, t=40, b=50))
    fig.update_traces(textfont=dict(size=8))
    fig.update_xaxes(tickangle=0, side="bottom")
    fig.update_yaxes(tickmode="array", tickvals=m_labels, tickfont=dict(size=9))
    return fig


def violations(table: dict) -> list[str]:
    """"<measure> under <transformation>" for every declared invariance that moved."""
    _, m_labels = table_labels(table)
    return [f"{m_labels[i]} under {transforms.TRANSFORMATIONS[table['transformations'][j]].label}"
            for i, j in zip(*np.nonzero(table["violation"]))]


def table_frame(table: dict) -> pd.DataFrame:
    """The values behind the table, with m(X, X) first."""
    t_labels, m_labels = table_labels(table)
    frame = pd.DataFrame(table["values"], index=m_labels, columns=[label.replace("<br>", " · ") for label in t_labels])
    frame.insert(0, "m(X, X)", [table["reference"].get(m, np.nan) for m in table["measures"]])
    return frame
