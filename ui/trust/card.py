"""The scorecard as the page shows it: the order of the measures (by one test, or by mean rank), the
takeaway sentence computed from the scores and intervals, the heatmap with the measures' declared
invariances beside it, and the pairs behind one cell (a figure and a table)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots
from scipy.stats import rankdata

from cka_core import MEASURES
from cka_core.measures.registry import INVARIANCES
from cka_core.trust import TESTS, Cell, Scorecard

from ..frame import figures

MEAN_RANK = "mean_rank"
TEST_LABELS = {
    "accuracy_correlation": "Accuracy correlation",
    "output_correlation": "Output correlation",
    "label_randomization": "Label randomisation",
    "shortcut_affinity": "Shortcut affinity",
    "augmentation": "Augmentation",
    "layer_monotonicity": "Layer monotonicity",
}
SORT_LABELS = {MEAN_RANK: "Mean rank over the tests", **TEST_LABELS}
#: What each test's pairs are measured against (the x axis of the pairs figure, the table's column).
TRUTH_LABELS = {
    "accuracy_correlation": "|accuracy difference|",
    "output_correlation": "output difference (JSD, bits)",
    "label_randomization": "same group",
    "shortcut_affinity": "same group",
    "augmentation": "same group",
    "layer_monotonicity": "layer distance",
}
STATISTIC_LABELS = {
    "spearman_accuracy": "Spearman ρ with |accuracy difference|",
    "spearman_jsd": "Spearman ρ with output JSD",
    "spearman_disagreement": "Spearman ρ with disagreement",
    "auprc": "AUPRC (mean over groups)",
    "spearman": "Spearman ρ with layer distance",
    "violation_rate": "Violation rate (lower is better)",
}
INVARIANCE_LABELS = {"orthogonal": "ortho-<br>gonal", "isotropic_scaling": "isotropic<br>scaling",
                     "invertible_linear": "invertible<br>linear", "translation": "trans-<br>lation",
                     "permutation": "permu-<br>tation"}
TOP = 3  # "top 3": the measures the takeaway names as leaders of a test


def label(measure: str) -> str:
    return MEASURES[measure].label


def _short(test: str) -> str:
    """A test's label on two lines (the heatmap's columns are narrow)."""
    return TEST_LABELS[test].replace(" ", "<br>", 1) if " " in TEST_LABELS[test] else "Augmen-<br>tation"


# ------------------------------------------------------------------------------ ranks and order
def ranks(card: Scorecard) -> dict[str, dict[str, float]]:
    """{test: {measure: rank}}, 1 the best (highest score) of the measures that have a score there;
    tied scores share their average rank. Every test's main statistic is better when higher."""
    out = {}
    for test in card.tests:
        scored = [m for m in card.measures if card.cell(test, m).error is None]
        if scored:
            r = rankdata([-card.cell(test, m).score for m in scored], method="average")
            out[test] = dict(zip(scored, r.tolist()))
        else:
            out[test] = {}
    return out


def mean_ranks(card: Scorecard) -> dict[str, float | None]:
    """Each measure's rank averaged over the tests where it has a score (None where it has none)."""
    by_test = ranks(card)
    out = {}
    for m in card.measures:
        mine = [by_test[t][m] for t in card.tests if m in by_test[t]]
        out[m] = float(np.mean(mine)) if mine else None
    return out


def order(card: Scorecard, sort_by: str) -> list[str]:
    """The measures, best first: by one test's score, or by mean rank; measures without a value last
    (in the registry's order)."""
    if sort_by in card.tests:
        key = {m: -card.cell(sort_by, m).score for m in card.measures if card.cell(sort_by, m).error is None}
    else:
        key = {m: r for m, r in mean_ranks(card).items() if r is not None}
    return sorted(key, key=lambda m: key[m]) + [m for m in card.measures if m not in key]


def sort_key(card: Scorecard, sort_by: str) -> str:
    """``sort_by`` where the card has that test, else mean rank (an own group runs three tests)."""
    return sort_by if sort_by in card.tests else MEAN_RANK


# ------------------------------------------------------------------------------ the takeaway
def _names(measures: list[str]) -> str:
    shown = [f"**{label(m)}**" for m in measures]
    return shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + " and " + shown[-1]


def leader_overlaps(card: Scorecard) -> dict[str, bool]:
    """{test: whether the best measure's interval overlaps the runner-up's}, for tests with two scores."""
    out = {}
    for test in card.tests:
        scored = sorted((card.cell(test, m) for m in card.measures if card.cell(test, m).error is None),
                        key=lambda c: -c.score)
        if len(scored) >= 2:
            out[test] = scored[0].ci[0] <= scored[1].ci[1]
    return out


def top_counts(card: Scorecard) -> dict[str, int]:
    """How many tests rank each measure among the best :data:`TOP`."""
    by_test = ranks(card)
    return {m: sum(1 for t in card.tests if by_test[t].get(m, np.inf) <= TOP) for m in card.measures}


def takeaway(card: Scorecard, confidence: float) -> str:
    """Which measures lead (top 3 in every test, or in the most), which rank lowest, and whether the
    leaders' intervals overlap: every word from the card's numbers."""
    tests = [t for t in card.tests if ranks(card)[t]]
    if not tests or len(card.measures) < 2:
        return "No measure has a score in any test here, so none can be ranked: see the errors below."
    T = len(tests)
    counts = top_counts(card)
    best = max(counts.values())
    leaders = [m for m in order(card, MEAN_RANK) if counts[m] == best]
    if best == T:
        lead = (f"{_names(leaders[:3])} {'is' if len(leaders) == 1 else 'are'} among the top {TOP} of all "
                f"{len(card.measures)} measures in every one of the {T} tests")
    elif best == 0:
        lead = f"No measure reaches the top {TOP} of any test"
    else:
        lead = (f"No measure is in the top {TOP} of every test; {_names(leaders[:3])} come{'s' if len(leaders) == 1 else ''} "
                f"closest, in the top {TOP} of {best} of the {T} tests")
    means = mean_ranks(card)
    ranked = [m for m in order(card, MEAN_RANK) if means[m] is not None]
    low = ranked[-2:] if len(ranked) >= 4 else ranked[-1:]
    low_text = (f"{_names(low)} rank lowest overall (mean rank "
                + " and ".join(f"{means[m]:.1f}" for m in low) + f" of {len(ranked)})")
    overlaps = leader_overlaps(card)
    n_over = sum(overlaps.values())
    level = f"{confidence:.0%}"
    if not overlaps:
        interval_text = ""
    elif n_over == len(overlaps):
        interval_text = (f" In every test the leader's {level} interval overlaps the runner-up's: another draw of "
                         "seeds could change who leads.")
    elif n_over == 0:
        interval_text = f" In every test the leader's {level} interval is clear of the runner-up's."
    else:
        interval_text = (f" In {n_over} of {len(overlaps)} tests the leader's {level} interval overlaps the runner-up's, "
                         "so the lead there is not settled.")
    return f"{lead}; {low_text}.{interval_text}"


def summary(card: Scorecard) -> list[tuple[str, str, str]]:
    """The takeaway's numbers as (label, value, help) for three metrics: the measure most often in the
    top 3, the one with the lowest mean rank, and in how many tests the leader's lead is unsettled."""
    counts, means = top_counts(card), mean_ranks(card)
    ranked = [m for m in order(card, MEAN_RANK) if means[m] is not None]
    tests = [t for t in card.tests if ranks(card)[t]]
    if not ranked or not tests:
        return []
    leader = max(ranked, key=lambda m: (counts[m], -ranked.index(m)))
    overlaps = leader_overlaps(card)
    return [
        (f"Top {TOP} most often: {label(leader)}", f"{counts[leader]} of {len(tests)} tests",
         f"Tests in which {label(leader)} is among the {TOP} best measures (ties by mean rank)."),
        (f"Lowest mean rank: {label(ranked[-1])}", f"{means[ranked[-1]]:.1f} of {len(ranked)}",
         "Its rank in each test (1 = best), averaged over the tests where it has a score."),
        ("Leader's interval overlaps the runner-up's", f"in {sum(overlaps.values())} of {len(overlaps)} tests",
         "Tests where the best measure's interval reaches the second best's: the lead is not settled."),
    ]


# ------------------------------------------------------------------------------ the heatmap
def _cell_text(c: Cell) -> tuple[float, str, str]:
    """(colour value, text in the cell, hover line) of one cell."""
    if c.error is not None:
        return np.nan, "failed", "failed: " + (c.error if len(c.error) < 160 else c.error[:157] + "…")
    return c.score, f"{c.score:.2f}", f"{c.score:.3f}, interval [{c.ci[0]:.3f}, {c.ci[1]:.3f}]"


def _outline(fig: go.Figure, x: tuple[float, float], y: tuple[float, float], colour: str, width: float) -> None:
    fig.add_shape(type="rect", xref="x", yref="y", x0=x[0], x1=x[1], y0=y[0], y1=y[1], layer="above",
                  line=dict(color=colour, width=width), fillcolor="rgba(0,0,0,0)")


def scorecard_figure(card: Scorecard, measures: list[str], confidence: float, title: str,
                     sorted_by: str | None = None, chosen: tuple[str, str] | None = None) -> go.Figure:
    """Rows: measures in the given order; left, the tests' scores (colour from -1 to 1, the interval on
    hover), the column they are sorted by and the chosen (test, measure) cell outlined; right, the
    invariances each measure declares (✓)."""
    by_test = ranks(card)
    tests = card.tests
    z = np.full((len(measures), len(tests)), np.nan)
    text, hover = [], []
    for i, m in enumerate(measures):
        text.append([])
        hover.append([])
        for j, t in enumerate(tests):
            value, shown, line = _cell_text(card.cell(t, m))
            z[i, j] = value
            text[i].append(shown)
            rank = f"<br>rank {by_test[t][m]:g} of {len(by_test[t])}" if m in by_test[t] else ""
            statistic = next(iter(card.cell(t, m).statistics), None)
            hover[i].append(f"<b>{label(m)}</b> · {TEST_LABELS[t]}<br>{STATISTIC_LABELS.get(statistic, 'score')}: "
                            f"{line}{rank}<br>({confidence:.0%} model-bootstrap interval)")
    rows = [label(m) for m in measures]
    fig = make_subplots(rows=1, cols=2, shared_yaxes=True, column_widths=[len(tests), 0.8 * len(INVARIANCES)],
                        horizontal_spacing=0.02, subplot_titles=("Score in each test (higher is better)",
                                                                 "Declared invariances"))
    fig.add_trace(go.Heatmap(z=z, x=[_short(t) for t in tests], y=rows, zmin=-1, zmax=1, colorscale="RdBu",
                             text=text, texttemplate="%{text}", customdata=hover, hovertemplate="%{customdata}<extra></extra>",
                             hoverongaps=True, colorbar=dict(title="score", x=1.01, xanchor="left", len=min(1.0, 400 / (170 + 26 * len(measures))),
                                                             y=1, yanchor="top", thickness=12)), row=1, col=1)
    declared = np.array([[inv in MEASURES[m].invariances for inv in INVARIANCES] for m in measures], dtype=float)
    marks = [["✓" if d else "" for d in row] for row in declared]
    inv_hover = [[f"{label(m)}: {'declares invariance to' if d else 'not invariant to'} "
                  f"{INVARIANCE_LABELS[inv].replace('<br>', ' ')} maps" for inv, d in zip(INVARIANCES, row)]
                 for m, row in zip(measures, declared)]
    fig.add_trace(go.Heatmap(z=declared, x=[INVARIANCE_LABELS[i] for i in INVARIANCES], y=rows, zmin=0, zmax=1,
                             colorscale=[[0, "#f7f7f7"], [1, "#c7e9c0"]], showscale=False, text=marks,
                             texttemplate="%{text}", customdata=inv_hover, hovertemplate="%{customdata}<extra></extra>",
                             xgap=1, ygap=1), row=1, col=2)
    fig.update_yaxes(autorange="reversed", row=1, col=1)
    if sorted_by in tests:
        j = tests.index(sorted_by)
        _outline(fig, (j - 0.5, j + 0.5), (-0.5, len(measures) - 0.5), "#ff7f0e", 2.5)
    if chosen is not None and chosen[0] in tests and chosen[1] in measures:
        i, j = measures.index(chosen[1]), tests.index(chosen[0])
        _outline(fig, (j - 0.5, j + 0.5), (i - 0.5, i + 0.5), "#000000", 2.5)
    fig.update_xaxes(side="top", tickangle=0, tickfont=dict(size=11))
    fig.update_layout(title=dict(text=title, y=0.995, yanchor="top"), height=170 + 26 * len(measures),
                      margin=dict(l=10, r=10, t=120, b=10), uirevision="keep")
    for annotation in fig.layout.annotations:  # the panels' titles sit above their top tick labels
        annotation.update(y=1.0, yshift=62, font=dict(size=13))
    return fig


# ------------------------------------------------------------------------------ one cell's pairs
@dataclass(frozen=True)
class CellView:
    """One cell: its statistics (name, score, interval), the pairs figure and the pairs table."""

    cell: Cell
    statistics: list[tuple[str, float, tuple[float, float]]]
    figure: go.Figure | None
    table: pd.DataFrame | None
    number_columns: tuple[str, ...] = ()  # the table's numeric columns (the page formats them)


def _model(name: str) -> str:
    return name.split(":", 1)[0]


def cell_view(card: Scorecard, test: str, measure: str) -> CellView:
    c = card.cell(test, measure)
    if c.error is not None:
        return CellView(c, [], None, None)
    stats = [(STATISTIC_LABELS.get(k, k), s.score, s.ci) for k, s in c.statistics.items()]
    info = MEASURES[measure]
    y_title = f"{info.label} ({'higher' if info.higher_is_similar else 'lower'} = more similar)"
    a = [p.a for p in c.pairs]
    b = [p.b for p in c.pairs]
    truth = np.array([p.truth for p in c.pairs])
    value = np.array([p.value for p in c.pairs])
    names = [f"{x} – {y}" for x, y in zip(a, b)]
    fig = go.Figure()
    main = f"{stats[0][0]} = {stats[0][1]:.3f}"
    if test in ("label_randomization", "shortcut_affinity", "augmentation"):
        for flag, where, colour in ((1.0, "within a group", figures.COLOURS["accuracy"]),
                                    (0.0, "between groups", figures.COLOURS["original"])):
            idx = np.flatnonzero(truth == flag)
            fig.add_trace(go.Box(y=value[idx], x=[where] * idx.size, name=where, boxpoints="all", jitter=0.4,
                                 pointpos=0, marker=dict(color=colour, size=6), line=dict(color=colour),
                                 customdata=[names[i] for i in idx],
                                 hovertemplate="%{customdata}<br>value %{y:.4f}<extra></extra>"))
        x_title = "pair of models"
        shown_truth = np.where(truth == 1.0, "yes", "no")
    elif test == "layer_monotonicity":
        models = list(dict.fromkeys(_model(x) for x in a))
        for model in models:
            idx = [i for i, x in enumerate(a) if _model(x) == model]
            fig.add_trace(go.Scatter(x=truth[idx], y=value[idx], mode="markers", name=model,
                                     marker=dict(color=figures.network_colour(model, models), size=7, opacity=0.8),
                                     customdata=[names[i] for i in idx],
                                     hovertemplate="%{customdata}<br>layer distance %{x:g}<br>value %{y:.4f}"
                                                   "<extra></extra>"))
        distances = np.unique(truth)
        fig.add_trace(go.Scatter(x=distances, y=[value[truth == k].mean() for k in distances], mode="lines",
                                 name="mean over pairs", line=dict(color="black", width=2),
                                 hovertemplate="layer distance %{x:g}<br>mean %{y:.4f}<extra></extra>"))
        x_title = "distance in layers"
        shown_truth = truth.astype(np.int64)
    else:
        fig.add_trace(go.Scatter(x=truth, y=value, mode="markers", name="pairs of models", customdata=names,
                                 marker=dict(color=figures.COLOURS["linear_cka"], size=8),
                                 hovertemplate="%{customdata}<br>" + TRUTH_LABELS[test] + " %{x:.4f}<br>value %{y:.4f}"
                                               "<extra></extra>"))
        x_title = TRUTH_LABELS[test]
        shown_truth = truth
    fig.update_layout(title=f"{info.label} · {TEST_LABELS[test]}: {main}", xaxis_title=x_title, yaxis_title=y_title,
                      showlegend=test == "layer_monotonicity", **figures.LAYOUT)
    table = pd.DataFrame({"A": a, "B": b, TRUTH_LABELS[test]: shown_truth, info.label: value})
    numeric = tuple(k for k in table.columns[2:] if table[k].dtype.kind == "f")
    return CellView(c, stats, fig, table, numeric)


# ------------------------------------------------------------------------------ the page's view
@dataclass(frozen=True)
class Setting:
    """The page's controls: the order of the rows, and the cell whose pairs are shown."""

    sort_by: str = MEAN_RANK
    test: str = "accuracy_correlation"
    measure: str = "linear_cka"


@dataclass(frozen=True)
class View:
    """Everything the page draws from one scorecard at one setting."""

    order: list[str]
    figure: go.Figure
    sentence: str
    cell: CellView | None
    summary: list[tuple[str, str, str]]
    failures: list[str]


def failures(card: Scorecard) -> list[str]:
    """Why each measure that has no score in some test has none, one line per measure (its first failure)."""
    out = {}
    for test in card.tests:
        for m in card.measures:
            error = card.cell(test, m).error
            if error is not None and m not in out:
                out[m] = f"**{label(m)}** ({TEST_LABELS[test]}): {error}"
    return list(out.values())


def view(card: Scorecard, setting: Setting, confidence: float, title: str, with_cell: bool = True) -> View:
    """The rows' order, the heatmap, the takeaway and (where the card has it, and ``with_cell``) the
    chosen cell, outlined on the heatmap."""
    by = sort_key(card, setting.sort_by)
    rows = order(card, by)
    chosen = (setting.test, setting.measure) if with_cell else None
    shown = cell_view(card, *chosen) if chosen and chosen[0] in card.tests and chosen[1] in card.measures else None
    figure = scorecard_figure(card, rows, confidence, title, by, chosen)
    return View(rows, figure, takeaway(card, confidence), shown, summary(card), failures(card))
