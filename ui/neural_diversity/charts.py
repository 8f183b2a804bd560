"""The page's figures, built from the computed arrays, and their cached charts keyed on the page's settings."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

import sample_models
from sample_models import perturbations as pert

from ..frame import figures
from .choices import ADAPTIVE, LABELS, PERTURBATIONS, model
from .neurons import clean_digit_trace, digit_trace, learned_parameters, perturbed_digit
from .sweeps import rank_over_amplitudes, sweep

# The networks' look in every figure: one colour per activation, dashed for the MLPs.
_COLOURS = {"ReLU": "#8c564b", "γ homog.": "#1f77b4", "γ heterog.": "#2ca02c", "adaptive": "#d62728"}
NETWORK_COLOURS = {name: ("#7f7f7f" if label == "MLP ReLU" else _COLOURS[label.split(" ", 1)[1]])
                   for name, label in LABELS.items()}
NETWORK_DASH = {name: ("dash" if name.startswith("mlp") else "solid") for name in LABELS}


def heatmap_figure(values: np.ndarray, labels: list[str], title: str) -> go.Figure:
    """Network x network CKA, annotated, NaN cells (undefined CKA) left blank."""
    text = np.where(np.isfinite(values), np.char.mod("%.2f", np.nan_to_num(values)), "n/a")
    fig = go.Figure(go.Heatmap(
        z=values, x=labels, y=labels, zmin=0.0, zmax=1.0, colorscale=figures.HEATMAP_SCALE, colorbar=dict(title="CKA"),
        text=text, texttemplate="%{text}",
        hovertemplate="%{y}<br>%{x}<br>CKA = %{z:.4f}<extra></extra>"))
    fig.update_layout(title=title, **{**figures.LAYOUT, "height": 420, "margin": dict(l=110, r=20, t=50, b=90)})
    fig.update_yaxes(autorange="reversed")
    figures.styled(fig)
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
    fig.update_layout(title=f"γ with gain n = {n:g}, saturation s = {s:g}", **figures.LAYOUT)
    figures.styled(fig)
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
                      **{**figures.LAYOUT, "height": 430})
    figures.styled(fig)
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
    fig.update_layout(title=title, xaxis_title="amplitude A", yaxis_title=y_title, **figures.LAYOUT)
    figures.styled(fig)
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
                      yaxis_title="accuracy retained (perturbed / clean)", **figures.LAYOUT)
    finite = cka[np.isfinite(cka)]
    if finite.size:
        span = max(float(np.ptp(finite)), 0.02)
        fig.update_xaxes(range=[float(finite.min()) - 0.25 * span, float(finite.max()) + 0.25 * span])
        span_y = max(float(np.ptp(retained[np.isfinite(cka)])), 0.02)
        fig.update_yaxes(range=[float(retained[np.isfinite(cka)].min()) - 0.15 * span_y,
                                float(retained[np.isfinite(cka)].max()) + 0.2 * span_y])
    figures.styled(fig)
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
                      yaxis_title="rank correlation", **figures.LAYOUT)
    figures.styled(fig)
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
                      **figures.LAYOUT)
    figures.styled(fig)
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
    fig.update_layout(title=title, **{**figures.LAYOUT, "height": 230,
                                                              "margin": dict(l=30, r=5, t=60, b=5)})
    figures.styled(fig)
    return fig


# --- cached charts: shared, read-only figures, styled when built (figures.chart then leaves them as they are) --
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
    n0, s0 = clean_digit_trace(protocol, index)
    n1, s1 = digit_trace(protocol, index, kind, amplitude, frequency, seed, window)
    result = {"n_clean": n0, "s_clean": s0, "n_pert": n1, "s_pert": s1}
    return trace_figure(result, list(units), amplitude != 0.0, model(ADAPTIVE[protocol]).init == "torch")


@st.cache_resource(max_entries=128, show_spinner=False)
def digit_chart(protocol: str, index: int, kind: str, amplitude: float, frequency: float, seed: int,
                window: tuple[int, int]) -> go.Figure:
    clean = sample_models.digits().X_test[index].reshape(8, 8)
    step_of_pixel = pert.sites(model(ADAPTIVE[protocol])).step_of_feature.reshape(8, 8) + 1
    return digit_figure(clean, perturbed_digit(protocol, index, kind, amplitude, frequency, seed, window), step_of_pixel)
