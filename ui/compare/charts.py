"""The Compare page's figures: the layer x layer heatmap (values, intervals and p-values on hover,
marks on cells not beyond chance), the drill-down's Gram scatter, spectra and component pairs, the
random-init baseline, and the linear CKA map under each reduction."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from cka_core.cka import drilldown
from cka_core.measures import colour_range

from ..frame import figures
from .controls import Settings
from .heatmap import ReductionEffect
from .inference import Inference
from .sides import Side

def _z_range(settings: Settings, values: np.ndarray, fitted: bool = False) -> tuple[float, float]:
    """The colour scale: the measure's range, or (``fitted``) the values' own, so that 0.82 and 0.96
    do not look alike."""
    finite = values[np.isfinite(values)]
    if fitted and finite.size:
        low, high = float(finite.min()), float(finite.max())
        return (low, high) if high > low else (low - 0.5, high + 0.5)
    low, high = colour_range(settings.measure, values)  # an unbounded distance: up to the data's largest value
    if low < 0:  # debiased CKA, RSA: show the data's range, not down to -1
        low = min(0.0, float(np.floor(values.min() * 10) / 10))
    return low, high


def heatmap_figure(values: np.ndarray, a: Side, b: Side, settings: Settings, result: Inference | None,
                   *, title: str | None = None, fitted: bool = False) -> go.Figure:
    """The layer x layer heatmap: values written in the cells, exact values, intervals and
    p-values on hover, ✕ on cells not above the null."""
    info = settings.info
    fig = figures.heatmap(values, list(b.names), list(a.names), title=title or f"{settings.label} · {a.n} examples",
                          z_range=_z_range(settings, values, fitted), x_title=f"B: {b.label}", y_title=f"A: {a.label}",
                          colour_title=short_label(settings))
    hover = f"A: %{{y}}<br>B: %{{x}}<br>{short_label(settings)} = %{{z:.4f}}"
    if result is not None:
        boot, perm = result.bootstrap, result.permutation
        custom = np.stack([boot.low, boot.high, perm.p_values, perm.null_mean, perm.null_std, result.p_adjusted],
                          axis=-1)
        hover += (f"<br>{boot.confidence:.0%} interval [%{{customdata[0]:.4f}}, %{{customdata[1]:.4f}}]"
                  "<br>p = %{customdata[2]:.4f}" + ("" if result.p_adjustment == "none" else
                                                     f" ({result.p_adjustment}: %{{customdata[5]:.4f}})")
                  + "<br>null %{customdata[3]:.4f} ± %{customdata[4]:.4f}")
        text = np.array([[f"{v:.2f}" + (" ✕" if f else "") for v, f in zip(row, frow)]
                         for row, frow in zip(values, result.flagged)])
        fig.update_traces(customdata=custom, text=text, texttemplate="%{text}" if values.size <= 144 else None)
        if values.size > 144 and result.flagged.any():
            ys, xs = np.nonzero(result.flagged)
            fig.add_trace(go.Scatter(x=[b.names[j] for j in xs], y=[a.names[i] for i in ys], mode="markers",
                                     marker=dict(symbol="x-thin-open", size=8, color="red"), name="not above null",
                                     hoverinfo="skip", showlegend=False))
    fig.update_traces(hovertemplate=hover + "<extra></extra>", selector=dict(type="heatmap"))
    if not info.higher_is_similar:
        fig.update_traces(reversescale=True, selector=dict(type="heatmap"))
    fig.update_xaxes(type="category", tickangle=-30, automargin=True)
    fig.update_yaxes(type="category", automargin=True, title_standoff=12)
    height = int(min(900, max(380, 110 + 34 * len(a.names))))
    fig.update_layout(height=height)
    return fig


def short_label(settings: Settings) -> str:
    return {"linear_cka": "CKA", "linear_cka_debiased": "CKA (debiased)", "rbf_cka": "RBF CKA",
            "procrustes": "angle (rad)", "shape_metric": "shape distance (rad)",
            "linear_regression": "R²"}.get(settings.measure, settings.info.label)


def gram_scatter_figure(scatter: drilldown.GramScatter, a_name: str, b_name: str) -> go.Figure:
    fig = go.Figure()
    for mask, name, colour in ((~scatter.diagonal, "off-diagonal (i < j)", figures.COLOURS["linear_cka"]),
                               (scatter.diagonal, "diagonal (i = i)", figures.COLOURS["current"])):
        if mask.any():
            fig.add_trace(go.Scattergl(
                x=scatter.k[mask].astype(np.float32), y=scatter.l[mask].astype(np.float32), mode="markers", name=name,
                marker=dict(size=4, color=colour, opacity=0.6),
                customdata=np.stack([scatter.rows[mask], scatter.cols[mask]], axis=1),
                hovertemplate="examples %{customdata[0]}, %{customdata[1]}<br>K = %{x:.3g}<br>L = %{y:.3g}<extra></extra>"))
    shown = f"{scatter.k.size} of {scatter.n_entries}" if scatter.k.size < scatter.n_entries else f"all {scatter.n_entries}"
    fig.update_layout(title=dict(text=f"Centred Gram entries: cosine = linear CKA = {scatter.cka:.3f}",
                                 subtitle=dict(text=f"{shown} entries i ≤ j, each Gram ÷ its norm")),
                      xaxis_title=f"K of A: {a_name} (÷ ‖K‖)", yaxis_title=f"L of B: {b_name} (÷ ‖L‖)",
                      **{**figures.LAYOUT, "height": 400}, legend=dict(orientation="h", y=-0.25))
    return fig


def spectra_figure(contrib: drilldown.PCContributions, a_name: str, b_name: str, show: int = 40) -> go.Figure:
    fig = go.Figure()
    for lam, name, colour in ((contrib.eigenvalues_x, f"A: {a_name}", figures.COLOURS["linear_cka"]),
                              (contrib.eigenvalues_y, f"B: {b_name}", figures.COLOURS["rbf_cka"])):
        share = lam / lam.sum()
        k = np.arange(1, min(show, lam.size) + 1)
        pr = drilldown.participation_ratio(lam)
        fig.add_trace(go.Scatter(x=k, y=share[: k.size], mode="lines+markers", name=f"{name} (PR {pr:.1f})",
                                 line=dict(color=colour), hovertemplate="PC %{x}: %{y:.2%} of the variance<extra></extra>"))
    fig.update_layout(title="Eigenspectra (share of variance per principal component)", xaxis_title="principal component",
                      yaxis_title="share of variance", **{**figures.LAYOUT, "height": 400},
                      legend=dict(orientation="h", y=-0.25))
    fig.update_yaxes(type="log")
    return fig


def contributions_figure(contrib: drilldown.PCContributions, k: int) -> go.Figure:
    block = contrib.top(k)
    labels_a = [f"PC{i + 1}" for i in range(block.shape[0])]
    labels_b = [f"PC{j + 1}" for j in range(block.shape[1])]
    share = block.sum() / contrib.cka if contrib.cka > 0 else 0.0
    fig = figures.heatmap(block, labels_b, labels_a, z_range=(0.0, float(max(block.max(), 1e-12))),
                          title=f"Top {block.shape[0]} × {block.shape[1]} PC pairs: {block.sum():.3f} of CKA "
                                f"{contrib.cka:.3f} ({share:.1%})",
                          x_title="principal component of B", y_title="principal component of A",
                          colour_title="share of CKA", text_format=".3f")
    fig.update_layout(height=400)
    return fig


def baseline_figure(values: np.ndarray, a: Side, b: Side, settings: Settings, replaced: str) -> go.Figure:
    title = f"Same comparison with {replaced} replaced by its random-init twin"
    return heatmap_figure(values, a, b, settings, None, title=title)


def reduction_figure(effects: list[ReductionEffect], names_a: list[str], names_b: list[str]) -> go.Figure:
    """Small multiples: the linear CKA map under each reduction, on one colour scale."""
    shown = [e for e in effects if e.values is not None]
    titles = [e.label if e.max_change is None or e.max_change == 0 else f"{e.label}<br>max |Δ| {e.max_change:.2f}"
              for e in shown]
    fig = make_subplots(rows=1, cols=max(1, len(shown)), subplot_titles=titles, horizontal_spacing=0.05)
    for col, effect in enumerate(shown, start=1):
        fig.add_trace(go.Heatmap(z=effect.values, x=names_b, y=names_a, coloraxis="coloraxis",
                                 hovertemplate=f"{effect.label}<br>A: %{{y}}<br>B: %{{x}}<br>CKA = %{{z:.4f}}"
                                               "<extra></extra>"), row=1, col=col)
        fig.update_yaxes(autorange="reversed", showticklabels=col == 1, row=1, col=col)
        fig.update_xaxes(showticklabels=False, row=1, col=col)
    fig.update_annotations(font=dict(size=12))
    fig.update_layout(**{**figures.LAYOUT, "height": 340, "margin": dict(l=110, r=20, t=80, b=20)},
                      coloraxis=dict(colorscale=figures.HEATMAP_SCALE, cmin=0.0, cmax=1.0,
                                     colorbar=dict(title="CKA", thickness=12)))
    return fig
