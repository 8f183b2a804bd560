"""What the Separability page shows (Davari et al. Cor. 4; docs/theory.md §3.5): cached helpers,
the page's view of one setting, and its figures.

Arrays are passed with a leading underscore (not hashed); the representation's key and small
parameters identify them, as in :mod:`ui.pitfalls.translation`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from cka_core import RepresentationError
from cka_core.pitfalls import directions, separability
from cka_core.pitfalls.separability import class_margins, normal_alignment
from cka_core.pitfalls.translation import translation_cka_from_terms, translation_cka_limit

from ..frame import figures
from ..frame.widgets import points_change
from ..sources import data, limits, models
from ..sources.probe import decision_normals, probe, probe_score, probe_scores
from . import translation as tr

DIRECTIONS = {  # code -> label; the label is what a shared URL holds (?sep_direction=Random)
    "orthogonal": "Orthogonal to every normal",
    "orthant": "Orthogonal and non-negative",
    "random": "Random",
}
CONTRAST = {"orthogonal": "random", "orthant": "random", "random": "orthogonal"}
SHORT = {"orthogonal": "orthogonal v", "orthant": "orthogonal, non-negative v", "random": "random v"}
GRID = tr.C_GRID                         # c in units of the RMS distance from the mean
ORTHANT_MAX_FEATURES = 20_000            # the non-negative direction is a linear programme over every feature
CURVE_SCORES = 4_000_000                 # probe scores held at once by the accuracy curve (32 MiB)
NETWORK_GRID = np.logspace(-2, 4, 25)   # coarser: the network runs once per value


@st.cache_data(max_entries=128)
def direction(rep_key: str, _rep: data.Representation, kind: str, seed: int) -> np.ndarray:
    """Unit translation direction: a random one, or one orthogonal to every probe normal."""
    if kind == "random":
        return tr.direction(rep_key, _rep, "random", seed)
    if kind == "orthogonal":
        W = normals(rep_key, _rep)
        if directions.null_space_dim(W) == 0:
            raise RepresentationError(
                f"the probe's {W.shape[0]} class normals span all {W.shape[1]} features, so no direction is "
                "orthogonal to every one of them; use a representation with more features than classes, "
                "or pick the random direction."
            )
        return tr.direction(rep_key, _rep, "probe_orthogonal", seed)
    if kind == "orthant":
        d = _rep.X.shape[1]
        if d > ORTHANT_MAX_FEATURES:
            raise RepresentationError(
                f"the non-negative direction solves a linear programme with one variable per feature (and a "
                f"d × d null-space basis): {d:,} features is over its limit of {ORTHANT_MAX_FEATURES:,}. Pick the "
                "plain orthogonal direction, or upload fewer features.")
        return separability.orthant_null_direction(normals(rep_key, _rep), seed, what="the linear probe")
    raise ValueError(f"unknown direction {kind!r}")


@st.cache_data(max_entries=64)
def normals(rep_key: str, _rep: data.Representation) -> np.ndarray:
    """The probe's class normals in the original feature space, (classes, d)."""
    return decision_normals(probe(rep_key, _rep))


@st.cache_resource(max_entries=16)  # not cache_data: 1M examples x 10 classes would be pickled and copied per rerun
def base_scores(rep_key: str, _rep: data.Representation) -> np.ndarray:
    """The probe's class scores on the original (test) representation, (n, classes); read-only."""
    scores = probe_scores(probe(rep_key, _rep), _rep.X)
    scores.setflags(write=False)
    return scores


@st.cache_data(max_entries=128)
def probe_curve(rep_key: str, _rep: data.Representation, cls: int, kind: str, seed: int, scale: float) -> np.ndarray:
    """Probe accuracy over GRID when class ``cls`` moves along the direction (exact: scores are affine in c)."""
    fitted = probe(rep_key, _rep)
    v = direction(rep_key, _rep, kind, seed)
    shift = normals(rep_key, _rep) @ v
    scores, moved = base_scores(rep_key, _rep), _rep.y == cls
    m, n = int(moved.sum()), moved.size
    if m * scores.shape[1] * GRID.size <= CURVE_SCORES:
        return separability.translated_accuracy(scores, _rep.y, fitted.classes_, moved, shift, GRID * scale)
    # translated_accuracy holds (len(c), moved rows, classes) scores: a class of 100,000 rows over the 241
    # distances would be 1.9 GB (and 7 s). Long representations: each moved row is correct on an interval
    # of c, found once from its scores; the unmoved rows are counted once.
    still = int(np.sum((fitted.classes_[np.argmax(scores, axis=1)] == _rep.y) & ~moved))
    column = np.searchsorted(fitted.classes_, _rep.y[moved])
    return (still + correct_counts(scores[moved], column, shift, GRID * scale)) / n


def correct_counts(scores: np.ndarray, column: np.ndarray, shift: np.ndarray, c: np.ndarray) -> np.ndarray:
    """How many rows keep argmax_k (scores[i, k] + c * shift[k]) == column[i], for each c, in
    O(m K + len(c) log m): row i is correct exactly on an interval of c. Every other class k needs
    c (shift[col] - shift[k]) > scores[i, k] - scores[i, col], a bound from below or above on c, with
    equality allowed when k comes after the true column (argmax keeps the first of tied maxima); a class
    with the same shift needs a lower score (or an equal one at a later column)."""
    m, K = scores.shape
    rows = np.arange(m)
    gap = shift[column][:, None] - shift[None, :]                 # (m, K): c * gap > delta is needed
    delta = scores - scores[rows, column][:, None]
    other = np.ones((m, K), dtype=bool)
    other[rows, column] = False
    later = np.arange(K)[None, :] > column[:, None]               # a tie with these columns still counts
    with np.errstate(divide="ignore", invalid="ignore"):
        bound = delta / gap
    below, above = other & (gap > 0), other & (gap < 0)
    lo = np.max(np.where(below, bound, -np.inf), axis=1)
    hi = np.min(np.where(above, bound, np.inf), axis=1)
    lo_open = np.any(below & ~later & (bound == lo[:, None]), axis=1)
    hi_open = np.any(above & ~later & (bound == hi[:, None]), axis=1)
    flat = other & (gap == 0)
    never = np.any(flat & ((delta > 0) | ((delta == 0) & ~later)), axis=1)
    live = ~never & ((lo < hi) | ((lo == hi) & ~lo_open & ~hi_open))

    def at_most(values: np.ndarray, side: str) -> np.ndarray:  # how many values lie below (or at) each c
        return np.searchsorted(np.sort(values), c, side=side)

    lower_ok = at_most(lo[live & lo_open], "left") + at_most(lo[live & ~lo_open], "right")
    upper_fails = at_most(hi[live & hi_open], "right") + at_most(hi[live & ~hi_open], "left")
    return lower_ok - upper_fails


@st.cache_data(max_entries=64)
def network_base(rep_key: str, _rep: data.Representation) -> float:
    """The network's accuracy continued from the unmoved representation (its own test accuracy)."""
    return tr.accuracy_from(_rep, _rep.X)


@st.cache_data(max_entries=64, show_spinner="Running the network on the moved representation…")
def network_curve(rep_key: str, _rep: data.Representation, cls: int, kind: str, seed: int, scale: float) -> np.ndarray:
    """The network's own accuracy over NETWORK_GRID when it continues from the moved representation.

    The moved copies for several c go through the network in one batch (one call per ~4M values):
    a forward pass per c costs ~15 ms of fixed overhead each."""
    v = direction(rep_key, _rep, kind, seed)
    mask = (_rep.y == cls).astype(np.float64)
    n, d = _rep.X.shape
    per_chunk = max(1, 4_000_000 // (n * d))
    result = []
    for start in range(0, NETWORK_GRID.size, per_chunk):
        cs = NETWORK_GRID[start:start + per_chunk]
        moved = _rep.X[None, :, :] + (cs[:, None, None] * scale) * np.outer(mask, v)[None, :, :]
        logits = models.run_from(_rep.model_name, _rep.layer, moved.reshape(-1, d)).reshape(cs.size, n, -1)
        result.extend(models.accuracy(logits[i], _rep.y) for i in range(cs.size))
    return np.asarray(result)


@st.cache_data(max_entries=64)
def view_axes(rep_key: str, _rep: data.Representation, cls: int, kind: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and an orthonormal 2-D basis (d, 2): the moved class's decision normal, then v
    (with its component along the normal removed; none is left for an orthogonal v)."""
    fitted = probe(rep_key, _rep)
    W = normals(rep_key, _rep)
    column = int(np.flatnonzero(fitted.classes_ == cls)[0])
    u = W[column]
    if not np.linalg.norm(u) > 0:
        u = np.zeros(W.shape[1])
        u[0] = 1.0
    u = u / np.linalg.norm(u)
    v = direction(rep_key, _rep, kind, seed)
    second = v - (u @ v) * u
    if not np.linalg.norm(second) > 1e-12:
        second = np.roll(u, 1)
        second -= (u @ second) * u
    second = second / np.linalg.norm(second)
    return _rep.X.mean(axis=0), np.stack([u, second], axis=1)


def curves_figure(grid: np.ndarray, cka: dict[str, np.ndarray], accuracy: dict[str, tuple[np.ndarray, np.ndarray]],
                  *, c: float, cka_now: float, limit: float, title: str) -> go.Figure:
    """CKA (top) and accuracy (bottom) against c on a shared log axis.

    ``cka`` maps a legend name to a curve over ``grid``; ``accuracy`` maps a legend name to its
    own (x, y) (the network's curve is coarser). The first entry of each is the chosen direction
    (solid), later ones are for contrast (dashed, then dotted). Built in one constructor call:
    incremental plotly edits (make_subplots, add_hline) cost several times more per rerun.
    """
    styles = [dict(dash="solid", width=2.5), dict(dash="dash", width=1.8), dict(dash="dot", width=2.2)]
    cka_colours = [figures.COLOURS["linear_cka"], figures.COLOURS["original"]]
    acc_colours = [figures.COLOURS["probe"], figures.COLOURS["original"], figures.COLOURS["accuracy"]]
    data = []
    for i, (name, y) in enumerate(cka.items()):
        data.append(dict(type="scatter", x=grid, y=y, mode="lines", name=name, xaxis="x", yaxis="y",
                         line=dict(color=cka_colours[min(i, 1)], **styles[min(i, 2)]),
                         hovertemplate=f"c=%{{x:.3g}}<br>{name}: %{{y:.4f}}<extra></extra>"))
    data.append(dict(type="scatter", x=[c], y=[cka_now], mode="markers", name="now", showlegend=False,
                     xaxis="x", yaxis="y", marker=dict(color=figures.COLOURS["current"], size=12),
                     hovertemplate="c=%{x:.3g}<br>CKA now: %{y:.4f}<extra></extra>"))
    for i, (name, (x, y)) in enumerate(accuracy.items()):
        data.append(dict(type="scatter", x=x, y=y, mode="lines", name=name, xaxis="x2", yaxis="y2",
                         line=dict(color=acc_colours[min(i, 2)], **styles[min(i, 2)]),
                         hovertemplate=f"c=%{{x:.3g}}<br>{name}: %{{y:.1%}}<extra></extra>"))
    current = dict(color=figures.COLOURS["current"], width=1, dash="dot")
    shapes = [
        dict(type="line", xref="x domain", x0=0, x1=1, yref="y", y0=limit, y1=limit,
             line=dict(color=figures.COLOURS["limit"], dash="dash")),
        dict(type="line", xref="x", x0=c, x1=c, yref="y domain", y0=0, y1=1, line=current),
        dict(type="line", xref="x2", x0=c, x1=c, yref="y2 domain", y0=0, y1=1, line=current),
    ]
    annotations = [
        dict(text=f"limit c → ∞ = {limit:.3f}", xref="x domain", x=0.01, yref="y", y=limit, yanchor="bottom",
             xanchor="left", showarrow=False, font=dict(color=figures.COLOURS["limit"])),
        dict(text="Linear CKA(X, X moved)", xref="paper", x=0.5, yref="paper", y=1.0, yanchor="bottom",
             showarrow=False, font=dict(size=13)),
        dict(text="Accuracy on the moved representation", xref="paper", x=0.5, yref="paper", y=0.42,
             yanchor="bottom", showarrow=False, font=dict(size=13)),
    ]
    layout = dict(
        figures.LAYOUT,
        height=580,
        title=dict(text=title, y=0.98, yanchor="top"),
        margin=dict(l=60, r=20, t=70, b=60),
        xaxis=dict(type="log", anchor="y", showticklabels=False, domain=[0, 1]),
        xaxis2=dict(type="log", anchor="y2", matches="x", domain=[0, 1],
                    title=dict(text="c (distance, in units of the RMS distance from the mean)")),
        yaxis=dict(domain=[0.5, 0.99], range=[0, 1.05], title=dict(text="CKA")),
        yaxis2=dict(domain=[0.0, 0.41], range=[0, 1.05], tickformat=".0%", title=dict(text="accuracy")),
        shapes=shapes,
        annotations=annotations,
        legend=dict(orientation="h", yanchor="top", y=-0.16, xanchor="left", x=0),
    )
    return go.Figure(data=data, layout=layout)


def view_figure(before: np.ndarray, after: np.ndarray, labels: np.ndarray, moved: np.ndarray, *, title: str,
                axis_titles: tuple[str, str], rows: np.ndarray | None = None) -> go.Figure:
    """Before / after panels of the 2-D view, one trace per class, the moved class outlined; the
    after panel also shows where the moved class started (faint crosses). One constructor call.
    ``rows``: the examples' rows in the file when the points are a subset (for the hover)."""
    groups = np.unique(labels)
    data = []
    for col, points in ((1, before), (2, after)):
        axes = dict(xaxis="x", yaxis="y") if col == 1 else dict(xaxis="x2", yaxis="y2")
        if col == 2:
            data.append(dict(type="scattergl", x=before[moved, 0], y=before[moved, 1], mode="markers",
                             name="moved class, before", showlegend=True, hoverinfo="skip", **axes,
                             marker=dict(symbol="x-thin", size=7, color="rgba(0,0,0,0.25)",
                                         line=dict(width=1, color="rgba(0,0,0,0.25)"))))
        for g in groups:
            idx = np.flatnonzero(labels == g)
            data.append(dict(
                type="scattergl", x=points[idx, 0], y=points[idx, 1], mode="markers", name=f"class {g}",
                legendgroup=str(g), showlegend=col == 1, **axes,
                marker=dict(size=np.where(moved[idx], 8, 5), color=figures.CLASS_COLOURS[int(g) % 10],
                            line=dict(width=np.where(moved[idx], 1.2, 0), color="black")),
                customdata=idx if rows is None else rows[idx],
                hovertemplate="example %{customdata}<br>(%{x:.3g}, %{y:.3g})<extra></extra>",
            ))
    subtitle = dict(xref="paper", yref="paper", y=1.0, yanchor="bottom", showarrow=False, font=dict(size=13))
    layout = dict(
        figures.LAYOUT,
        height=480,
        title=title,
        margin=dict(l=60, r=20, t=70, b=60),
        xaxis=dict(domain=[0, 0.46], anchor="y", title=dict(text=axis_titles[0])),
        yaxis=dict(anchor="x", title=dict(text=axis_titles[1])),
        xaxis2=dict(domain=[0.54, 1], anchor="y2", title=dict(text=axis_titles[0])),
        yaxis2=dict(anchor="x2", title=dict(text=axis_titles[1])),
        annotations=[dict(text="before", x=0.23, **subtitle), dict(text="after", x=0.77, **subtitle)],
        legend=dict(orientation="h", yanchor="top", y=-0.2, xanchor="left", x=0),
    )
    return go.Figure(data=data, layout=layout)


@st.cache_data(max_entries=128)
def limit(rep_key: str, _X: np.ndarray, cls: int, _mask: np.ndarray) -> float:
    """CKA as c -> infinity when class ``cls`` moves (any direction): rho(1-rho)||mu_k - mu_rest||^2/||Sigma||_F."""
    return translation_cka_limit(_X, _mask)


def classes(rep: data.Representation) -> list[int]:
    return [int(k) for k in np.unique(rep.y)]


@dataclass(frozen=True)
class Contrast:
    """The same class moved by the same c along the other kind of direction."""

    name: str            # "Random v" or "Orthogonal v"
    cka: float
    probe_accuracy: float


@dataclass(frozen=True)
class SeparabilityView:
    cls: int
    kind: str
    n: int
    moved_count: int
    moved_fraction: float
    cka: float
    limit: float
    probe_before: float
    probe_after: float
    margin_before: float
    margin_after: float
    score_change: float
    alignment: float                 # largest |cos(w_k, v)|
    network_before: float | None
    network_after: float | None
    network_at_largest_c: float | None
    contrast: Contrast | None
    curves: go.Figure
    view: go.Figure
    plot_note: str | None


#: Largest change of a probe score still called "unchanged" (float64 rounding of c·w_k·v).
SCORES_UNCHANGED = 1e-6


def takeaway(shown: SeparabilityView, c: float) -> str:
    """The page's lesson in one sentence, with the numbers of this setting."""
    moved = f"Moving class {shown.cls} ({shown.moved_count} of {shown.n} examples) by c = {c:.3g}"
    if shown.score_change < SCORES_UNCHANGED:
        probe = (f"the probe's scores change by at most {shown.score_change:.0e}, so its decisions and accuracy "
                 f"({100 * shown.probe_after:.1f}%) stay the same")
    elif round(100 * shown.probe_after, 1) == round(100 * shown.probe_before, 1):
        probe = (f"the probe's scores move by up to {shown.score_change:.2g}, but its accuracy stays at "
                 f"{100 * shown.probe_after:.1f}%")
    else:
        probe = f"the probe's accuracy goes from {100 * shown.probe_before:.1f}% to {100 * shown.probe_after:.1f}%"
    if shown.kind == "random":
        return f"{moved} along a random direction takes linear CKA to {shown.cka:.3f}, and {probe}."
    sentence = f"{moved} along a direction the probe ignores: {probe}, while linear CKA falls to {shown.cka:.3f}"
    if shown.network_before is None or shown.network_after is None:
        return sentence + "."
    points = points_change(shown.network_after, shown.network_before)
    if points == 0:
        return sentence + ", and the network's own accuracy does not change either."
    return sentence + (f". The network itself reads the moved direction (it is not in its next layer's null "
                       f"space): its accuracy changes by {points:+.1f} points.")


def view(rep: data.Representation, cls: int, kind: str, seed: int, c: float) -> SeparabilityView:
    """Every number and figure of the page for one setting; raises RepresentationError when the
    chosen direction does not exist for this representation."""
    X, n = rep.X, rep.X.shape[0]
    v = direction(rep.key, rep, kind, seed)
    contrast_kind = CONTRAST[kind]
    try:
        v_contrast = direction(rep.key, rep, contrast_kind, seed)
    except RepresentationError:
        v_contrast = None
    fitted = probe(rep.key, rep)
    mask = tr.moved_mask(rep.key, rep, "class", 0, 0.0, cls, 0)
    scale = tr.rms_scale(rep.key, X)
    terms = tr.terms(rep.key, X, mask, v, ("class", cls), ("separability", kind, seed))
    cka_now = translation_cka_from_terms(terms, c * scale)
    moved = tr.moved_by(X, mask, v, c, scale)
    scores_before, scores_after = base_scores(rep.key, rep), probe_scores(fitted, moved)
    network_before = network_after = network = None
    if tr.network_supported(rep):
        network_before, network_after = network_base(rep.key, rep), tr.accuracy_from(rep, moved)
        network = network_curve(rep.key, rep, cls, kind, seed, scale)
    cka_curves = {f"CKA, {SHORT[kind]}": translation_cka_from_terms(terms, GRID * scale)}
    accuracy_curves = {f"probe, {SHORT[kind]}": (GRID, probe_curve(rep.key, rep, cls, kind, seed, scale))}
    contrast = None
    if v_contrast is not None:
        contrast_terms = tr.terms(rep.key, X, mask, v_contrast, ("class", cls), ("separability", contrast_kind, seed))
        contrast = Contrast("Random v" if contrast_kind == "random" else "Orthogonal v",
                            translation_cka_from_terms(contrast_terms, c * scale),
                            probe_score(fitted, tr.moved_by(X, mask, v_contrast, c, scale), rep.y))
        cka_curves[f"CKA, {SHORT[contrast_kind]}"] = translation_cka_from_terms(contrast_terms, GRID * scale)
        accuracy_curves[f"probe, {SHORT[contrast_kind]}"] = (
            GRID, probe_curve(rep.key, rep, cls, contrast_kind, seed, scale))
    if network is not None:
        accuracy_curves[f"network, {SHORT[kind]}"] = (NETWORK_GRID, network)
    limit_value = limit(rep.key, X, cls, mask)
    shown = limits.plot_rows(n, keep=mask)  # at most limits.MAX_PLOT_POINTS points go to the browser
    mean, axes = view_axes(rep.key, rep, cls, kind, seed)
    orthogonal = kind != "random"
    return SeparabilityView(
        cls=cls, kind=kind, n=n, moved_count=int(mask.sum()), moved_fraction=float(mask.mean()), cka=cka_now,
        limit=limit_value, probe_before=probe_score(fitted, X, rep.y), probe_after=probe_score(fitted, moved, rep.y),
        margin_before=float(class_margins(scores_before, rep.y, fitted.classes_).min()),
        margin_after=float(class_margins(scores_after, rep.y, fitted.classes_).min()),
        score_change=float(np.abs(scores_after - scores_before).max()),
        alignment=normal_alignment(normals(rep.key, rep), v), network_before=network_before,
        network_after=network_after, network_at_largest_c=None if network is None else float(network[-1]),
        contrast=contrast,
        curves=curves_figure(GRID, cka_curves, accuracy_curves, c=c, cka_now=cka_now, limit=limit_value,
                             title=(f"Class {cls} moves along v: CKA falls, the probe does not notice" if orthogonal
                                    else f"Class {cls} moves along a random v: CKA falls, and the probe does notice")),
        view=view_figure(tr.projected(X[shown], mean, axes), tr.projected(moved[shown], mean, axes), rep.y[shown],
                         mask[shown], rows=shown if shown.size < n else None,
                         title=(f"Class {cls} slides along v and keeps every probe score" if orthogonal else
                                f"Class {cls} slides along a random v: it also moves along w<sub>{cls}</sub>, "
                                "across the boundaries"),
                         axis_titles=(f"along w<sub>{cls}</sub> (class {cls}'s decision normal)",
                                      "along v" if orthogonal else "along v (part ⟂ w)")),
        plot_note=limits.plot_caption(shown.size, n),
    )
