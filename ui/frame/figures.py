"""Plotly figure builders with one palette, readable axes and hover values."""
from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
import streamlit as st

# One colour per role, used on every page.
COLOURS = {
    "linear_cka": "#1f77b4",
    "linear_cka_debiased": "#17becf",
    "rbf_cka": "#9467bd",
    "accuracy": "#2ca02c",
    "probe": "#bcbd22",
    "limit": "#d62728",
    "current": "#ff7f0e",
    "original": "#7f7f7f",
    "moved": "#d62728",
}
CLASS_COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]
#: Lines that stand for networks: the class colours but grey, which charts keep for references (the inputs).
NETWORK_PALETTE = tuple(c for c in CLASS_COLOURS if c != COLOURS["original"])
HEATMAP_SCALE = "Viridis"
LAYOUT = dict(margin=dict(l=60, r=20, t=50, b=50), height=380, uirevision="keep")
# Plotly validates and copies a template for every figure that names one (or takes the default): about
# 85 % of building a small figure (21 ms against 3 ms). Figures are built without one, and :func:`chart`
# attaches plotly_white when it draws them, as a dict made once and not validated again.
pio.templates.default = None
TEMPLATE = pio.templates["plotly_white"].to_plotly_json()


def curve(x: np.ndarray, series: dict[str, np.ndarray], *, title: str, x_title: str, y_title: str,
          log_x: bool = False, marker: tuple[float, dict[str, float]] | None = None,
          hlines: dict[str, float] | None = None, y_range: tuple[float, float] | None = None) -> go.Figure:
    """Line chart of several series against x, with an optional marker at the current x and
    horizontal reference lines (e.g. a theoretical limit)."""
    fig = go.Figure()
    for name, y in series.items():
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines", name=name, line=dict(color=COLOURS.get(_key(name))),
                                 hovertemplate=f"{x_title}=%{{x:.3g}}<br>{name}=%{{y:.4f}}<extra></extra>"))
    for name, value in (hlines or {}).items():
        fig.add_hline(y=value, line=dict(color=COLOURS["limit"], dash="dash"), annotation_text=f"{name} = {value:.3f}",
                      annotation_position="bottom right")
    if marker is not None:
        x0, values = marker
        for name, value in values.items():
            fig.add_trace(go.Scatter(x=[x0], y=[value], mode="markers", name=f"{name} (now)", showlegend=False,
                                     marker=dict(color=COLOURS["current"], size=12, symbol="circle"),
                                     hovertemplate=f"{x_title}=%{{x:.3g}}<br>{name}=%{{y:.4f}}<extra>current</extra>"))
    fig.update_layout(title=title, xaxis_title=x_title, yaxis_title=y_title, **LAYOUT)
    if log_x:
        fig.update_xaxes(type="log")
    if y_range is not None:
        fig.update_yaxes(range=list(y_range))
    return fig


def network_colour(name: str, family: Sequence[str] = ()) -> str:
    """One colour per network, the same in every run whatever else is drawn: its place in ``family`` (the
    networks that can share a chart, in a fixed order: as many as the palette holds get a colour each), else a
    stable hash of the name (Python's own ``hash`` changes from run to run)."""
    index = list(family).index(name) if name in family else zlib.crc32(name.encode())
    return NETWORK_PALETTE[index % len(NETWORK_PALETTE)]


def _key(label: str) -> str:
    return {"Linear CKA": "linear_cka", "Debiased CKA": "linear_cka_debiased", "RBF CKA": "rbf_cka"}.get(label, label)


def scatter_pair(before: np.ndarray, after: np.ndarray, labels: np.ndarray | None, moved: np.ndarray,
                 *, title: str, axis_titles: tuple[str, str] = ("PC 1", "PC 2")) -> go.Figure:
    """Two panels (before / after) of 2-D points, coloured by class, moved points outlined."""
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, subplot_titles=("before", "after"), horizontal_spacing=0.08)
    groups = np.unique(labels) if labels is not None else np.array([0])
    for col, points in ((1, before), (2, after)):
        for g in groups:
            idx = np.flatnonzero(labels == g) if labels is not None else np.arange(points.shape[0])
            fig.add_trace(
                go.Scattergl(
                    x=points[idx, 0], y=points[idx, 1], mode="markers", name=f"class {g}" if labels is not None else "points",
                    legendgroup=str(g), showlegend=col == 1,
                    marker=dict(size=np.where(moved[idx], 9, 5), color=CLASS_COLOURS[int(g) % 10],
                                line=dict(width=np.where(moved[idx], 1.5, 0), color="black")),
                    customdata=np.stack([idx, moved[idx]], axis=1),
                    hovertemplate="example %{customdata[0]}<br>(%{x:.3g}, %{y:.3g})<extra></extra>",
                ),
                row=1, col=col,
            )
    fig.update_layout(title=title, **{**LAYOUT, "height": 400})
    for col in (1, 2):
        fig.update_xaxes(title_text=axis_titles[0], row=1, col=col)
        fig.update_yaxes(title_text=axis_titles[1], row=1, col=col)
    return fig


def heatmap(values: np.ndarray, x_labels: list[str], y_labels: list[str], *, title: str,
            z_range: tuple[float, float] = (0.0, 1.0), x_title: str = "", y_title: str = "",
            colour_title: str = "CKA", text_format: str = ".2f") -> go.Figure:
    """Annotated heatmap with layer names on both axes and exact values on hover."""
    fig = go.Figure(go.Heatmap(
        z=values, x=x_labels, y=y_labels, zmin=z_range[0], zmax=z_range[1], colorscale=HEATMAP_SCALE,
        colorbar=dict(title=colour_title), texttemplate=f"%{{z:{text_format}}}" if values.size <= 144 else None,
        hovertemplate=f"{y_title or 'row'}: %{{y}}<br>{x_title or 'column'}: %{{x}}<br>{colour_title} = %{{z:.4f}}<extra></extra>",
    ))
    fig.update_layout(title=title, xaxis_title=x_title, yaxis_title=y_title, **{**LAYOUT, "height": 420})
    fig.update_yaxes(autorange="reversed")
    return fig


def bars(labels: list[str], values: list[float], *, title: str, y_title: str,
         colours: list[str] | None = None, y_range: tuple[float, float] | None = None) -> go.Figure:
    """Bar chart with the value written on each bar."""
    fig = go.Figure(go.Bar(x=labels, y=values, marker_color=colours, text=[f"{v:.3f}" for v in values],
                           textposition="outside", hovertemplate="%{x}: %{y:.4f}<extra></extra>"))
    fig.update_layout(title=title, yaxis_title=y_title, **LAYOUT)
    if y_range is not None:
        fig.update_yaxes(range=list(y_range))
    return fig


CHART_CONFIG = {"displaylogo": False, "toImageButtonOptions": {"format": "png", "scale": 2}}


def styled(fig: go.Figure) -> go.Figure:
    """``fig`` with the app's template (plotly_white) attached as it is, without plotly re-validating it.
    A figure styled already (a cached one, shared by sessions) is left untouched."""
    if fig.layout._props.get("template") is TEMPLATE:
        return fig
    fig.layout._validate = False
    try:
        fig.layout.template = TEMPLATE
    finally:
        fig.layout._validate = True
    return fig


def chart(fig: go.Figure, *, key: str, into=None, **kwargs):
    """Draw ``fig`` (in the container ``into``, else where the page is) the way every page does: the
    app's template, its toolbar settings, a key."""
    return (into or st).plotly_chart(styled(fig), key=key, config=CHART_CONFIG, **kwargs)
