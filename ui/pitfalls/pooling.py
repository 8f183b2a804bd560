"""The Pooling page's computations: the zoo's CNN and recurrent networks under every way of turning
a layer's output into rows (cka_core.models.reduction, the same code as for your own models)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from cka_core import linear_cka
from cka_core.cka.matrix import cka_matrix_or_nan
from cka_core.models import reduction

from ..frame import figures
from ..sources import models

CNN = "cnn"
RNNS = ("rnn_relu", "rnn_gamma_heterogeneous", "rnn_adaptive")
#: The zoo's recurrent networks read a digit row by row: their hidden state after each of the 8 rows
#: is a layer, and together the states are a sequence, (n, 8, 64), reduced like a text's tokens.
STEP_REDUCTIONS = {"mean": "Mean over the 8 steps", "first": "First step", "last": "Last step",
                   "tokens": "Every step as a row", "flatten": "Flatten the 8 steps"}
STEP_PHRASES = {"mean": "averaged over the 8 steps", "first": "at the first step", "last": "at the last step",
                "tokens": "with every step as a row", "flatten": "with the 8 steps flattened"}
MAP_REDUCTIONS = dict(reduction.MAP_REDUCTIONS)
MAP_SHORT = {"flatten": "Flatten", "avg_pool": "Average pool", "positions": "Positions as rows"}
MAP_PHRASES = {"flatten": "flattened", "avg_pool": "average-pooled", "positions": "with every position as a row"}


def _maps(name: str, split_layers: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The layers as the network outputs them, (n, c, h, w) for a feature map: the registry keeps them
    flattened per example (C order), which this undoes exactly."""
    shapes = models.layer_shapes(name)
    return {k: v.reshape(v.shape[0], *shapes[k]) for k, v in split_layers.items()}


def reduced(values: np.ndarray, how: str) -> np.ndarray:
    """A layer's rows under ``how``: a map reduction for (n, c, h, w), a step reduction for (n, t, d)
    ('flatten' keeps every step side by side), vectors as they are."""
    if values.ndim == 3 and how == "flatten":
        return values.reshape(values.shape[0], -1)
    if values.ndim in (3, 4):
        return reduction.reduce(values, how)
    return values


# ------------------------------------------------------------------------------ the CNN
@dataclass(frozen=True)
class CnnView:
    layers: tuple[str, ...]
    shapes: dict
    maps: dict                   # reduction -> (L, L) linear CKA map of the CNN's own layers (NaN: rows differ)
    twin: dict                   # reduction -> per-layer CKA with the untrained twin (NaN: not a map)
    twin_about: str

    @property
    def convolutions(self) -> list[int]:
        """Indices of the layers that output feature maps (c, h, w)."""
        return [i for i, k in enumerate(self.layers) if len(self.shapes[k]) == 3]


@st.cache_data(max_entries=4, show_spinner="Reducing the CNN's feature maps three ways…")
def _cnn_view(key: str) -> CnnView:
    own = _maps(CNN, models.activations(CNN)["test"])
    about, twin_layers = models.untrained_twin(CNN)
    twin = _maps(CNN, dict(twin_layers))
    layers = tuple(own)
    maps, with_twin = {}, {}
    for how in MAP_REDUCTIONS:
        rows = {k: reduced(v, how) for k, v in own.items()}
        counts = {v.shape[0] for v in rows.values()}
        # Every position as a row: layers with different h x w have different rows, so only layers of one
        # size pair up; the others are left NaN.
        maps[how] = _map_where_rows_pair(rows) if len(counts) > 1 else cka_matrix_or_nan(rows)
        with_twin[how] = np.array([linear_cka(reduced(own[k], how), reduced(twin[k], how)) if own[k].ndim == 4
                                   else np.nan for k in layers])
    return CnnView(layers, models.layer_shapes(CNN), maps, with_twin, about)


def _map_where_rows_pair(rows: dict[str, np.ndarray]) -> np.ndarray:
    names = list(rows)
    values = np.full((len(names), len(names)), np.nan)
    for i, a in enumerate(names):
        for j, b in enumerate(names):
            if rows[a].shape[0] == rows[b].shape[0]:
                values[i, j] = linear_cka(rows[a], rows[b])
    return values


def cnn_view() -> CnnView:
    return _cnn_view(models.get(CNN).key)


def cnn_maps_figure(view: CnnView) -> go.Figure:
    """The CNN's own layer-by-layer map under each map reduction, on one colour scale."""
    shown = list(MAP_REDUCTIONS)
    fig = make_subplots(rows=1, cols=len(shown), subplot_titles=[MAP_SHORT[h] for h in shown],
                        horizontal_spacing=0.06)
    for col, how in enumerate(shown, start=1):
        values = view.maps[how]
        text = [["—" if np.isnan(v) else f"{v:.2f}" for v in row] for row in values]
        fig.add_trace(go.Heatmap(z=values, x=list(view.layers), y=list(view.layers), coloraxis="coloraxis",
                                 text=text, texttemplate="%{text}",
                                 hovertemplate=f"{MAP_REDUCTIONS[how]}<br>%{{y}} ~ %{{x}}: CKA = %{{z:.3f}}"
                                               "<extra></extra>"), row=1, col=col)
        fig.update_yaxes(autorange="reversed", showticklabels=col == 1, row=1, col=col)
    fig.update_layout(**{**figures.LAYOUT, "height": 330, "margin": dict(l=60, r=20, t=60, b=40)},
                      title="The CNN's own layers, three ways",
                      coloraxis=dict(colorscale=figures.HEATMAP_SCALE, cmin=0.0, cmax=1.0,
                                     colorbar=dict(title="CKA", thickness=12)))
    return fig


def cnn_twin_figure(view: CnnView) -> go.Figure:
    """Each convolutional layer against the same layer of the untrained twin, per reduction."""
    convs = view.convolutions
    fig = go.Figure()
    for how, colour in zip(MAP_REDUCTIONS, ("#1f77b4", "#ff7f0e", "#2ca02c")):
        values = view.twin[how][convs]
        fig.add_trace(go.Bar(x=[view.layers[i] for i in convs], y=values, name=MAP_REDUCTIONS[how],
                             marker_color=colour, text=[f"{v:.2f}" for v in values], textposition="outside",
                             textfont=dict(size=11),
                             hovertemplate=f"{MAP_REDUCTIONS[how]}<br>%{{x}}: CKA = %{{y:.3f}}<extra></extra>"))
    fig.update_layout(**figures.LAYOUT, barmode="group", title="The trained CNN against its untrained twin",
                      yaxis_title="linear CKA")
    fig.update_yaxes(range=[0, 1.1])
    return fig


# ------------------------------------------------------------------------------ the recurrent networks
@dataclass(frozen=True)
class RnnView:
    reference: str
    others: tuple[str, ...]
    values: dict                 # reduction -> (CKA with each of ``others``)

    def closest(self, how: str) -> str:
        return self.others[int(np.argmax(self.values[how]))]


def _sequence(name: str) -> np.ndarray:
    steps = models.activations(name)["test"]
    return np.stack([steps[f"step{i}"] for i in range(1, 9)], axis=1)


@st.cache_data(max_entries=8, show_spinner="Reducing the hidden-state sequences five ways…")
def _rnn_view(keys: tuple[str, ...], reference: str) -> RnnView:
    others = tuple(n for n in RNNS if n != reference)
    ours = _sequence(reference)
    theirs = {n: _sequence(n) for n in others}
    values = {how: tuple(float(linear_cka(reduced(ours, how), reduced(theirs[n], how))) for n in others)
              for how in STEP_REDUCTIONS}
    return RnnView(reference, others, values)


def rnn_view(reference: str) -> RnnView:
    return _rnn_view(tuple(models.get(n).key for n in RNNS), reference)


def rnn_figure(view: RnnView) -> go.Figure:
    fig = go.Figure()
    labels = list(STEP_REDUCTIONS.values())
    for other, colour in zip(view.others, ("#d62728", "#9467bd")):
        values = [view.values[how][view.others.index(other)] for how in STEP_REDUCTIONS]
        fig.add_trace(go.Bar(x=labels, y=values, name=other, marker_color=colour,
                             text=[f"{v:.2f}" for v in values], textposition="outside",
                             hovertemplate=f"{other}<br>%{{x}}: CKA = %{{y:.3f}}<extra></extra>"))
    fig.update_layout(**figures.LAYOUT, barmode="group", yaxis_title=f"linear CKA with {view.reference}",
                      title=f"Which network is closest to {view.reference}? It depends on the reduction")
    fig.update_yaxes(range=[0, 1.1])
    return fig


def rnn_rows(view: RnnView) -> list[dict]:
    return [{"reduction": STEP_REDUCTIONS[how], **dict(zip(view.others, view.values[how])),
             "closest": view.closest(how)} for how in STEP_REDUCTIONS]


def takeaway(cnn: CnnView, rnn: RnnView) -> str:
    """The page's point with this view's numbers: the two reductions between which the recurrent
    networks' comparison changes most, and the CNN layer whose similarity to its untrained twin moves
    most with the reduction."""
    first, second = rnn.others
    gap = {how: rnn.values[how][0] - rnn.values[how][1] for how in STEP_REDUCTIONS}
    high, low = max(gap, key=gap.get), min(gap, key=gap.get)
    verdict = ("the ranking flips with the reduction" if gap[high] > 0 > gap[low] else
               f"the gap between them goes from {abs(gap[low]):.3f} to {abs(gap[high]):.3f}")
    recurrent = (f"Against {rnn.reference}, {first} and {second} read {rnn.values[high][0]:.3f} and "
                 f"{rnn.values[high][1]:.3f} {STEP_PHRASES[high]}, but {rnn.values[low][0]:.3f} and "
                 f"{rnn.values[low][1]:.3f} {STEP_PHRASES[low]}: {verdict}.")
    i = max(cnn.convolutions, key=lambda c: np.ptp([cnn.twin[h][c] for h in MAP_REDUCTIONS]))
    most = max(MAP_REDUCTIONS, key=lambda h: cnn.twin[h][i])
    least = min(MAP_REDUCTIONS, key=lambda h: cnn.twin[h][i])
    return (f"{recurrent} The CNN's {cnn.layers[i]} against its untrained twin: {cnn.twin[most][i]:.2f} "
            f"{MAP_PHRASES[most]}, {cnn.twin[least][i]:.2f} {MAP_PHRASES[least]}. A comparison holds only for the "
            "reduction it was made with.")
