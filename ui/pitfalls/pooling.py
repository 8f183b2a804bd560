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
from cka_core.stats.resampling import recentred_interval

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
#: Bar labels: the value written inside each bar, at this size (px), readable at the page's width.
BAR_TEXT = 15


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
                             marker_color=colour, text=[f"{v:.2f}" for v in values], textposition="inside",
                             insidetextanchor="middle", textangle=0, textfont=dict(size=BAR_TEXT, color="white"),
                             hovertemplate=f"{MAP_REDUCTIONS[how]}<br>%{{x}}: CKA = %{{y:.3f}}<extra></extra>"))
    fig.update_layout(**figures.LAYOUT, barmode="group", title="The trained CNN against its untrained twin",
                      yaxis_title="linear CKA", uniformtext=dict(minsize=BAR_TEXT, mode="show"),
                      legend=dict(orientation="h", y=-0.15))   # beside the bars it left them too narrow for text
    fig.update_yaxes(range=[0, 1.1])
    return fig


# ------------------------------------------------------------------------------ the recurrent networks
#: The paired bootstrap of the recurrent comparison: resamples of the test digits (an example keeps its 8
#: steps together), the same draws for every reduction and both networks, and the interval's level.
RESAMPLES, CONFIDENCE, SEED = 200, 0.95, 0


@dataclass(frozen=True)
class Interval:
    """A full-data value and its bootstrap interval (percentile, re-centred on the value)."""

    value: float
    low: float
    high: float

    @property
    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0


@dataclass(frozen=True)
class RnnView:
    reference: str
    others: tuple[str, ...]
    values: dict                 # reduction -> (CKA with each of ``others``)
    intervals: dict              # reduction -> (Interval of the CKA with each of ``others``)
    gaps: dict                   # reduction -> Interval of CKA with others[0] minus CKA with others[1]

    def closest(self, how: str) -> str:
        return self.others[int(np.argmax(self.values[how]))]


def _sequence(name: str) -> np.ndarray:
    steps = models.activations(name)["test"]
    return np.stack([steps[f"step{i}"] for i in range(1, 9)], axis=1)


def resample_weights(n: int, resamples: int, seed: int) -> np.ndarray:
    """(resamples, n): how many times each example is drawn in each bootstrap resample."""
    draws = np.random.default_rng(seed).integers(0, n, size=(resamples, n))
    return np.stack([np.bincount(row, minlength=n) for row in draws]).astype(np.float64)


def _weighted_hsic(K: np.ndarray, L: np.ndarray, Kw: np.ndarray, Lw: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """<K_c, L_c> over the drawn rows of every resample, from the full n x n Grams: with w the draw counts,
    N = sum w, and K_c = K - a 1^T - 1 a^T + c (a = K w / N, c = w^T K w / N^2) centred with the weights,
    whose weighted row sums are 0, the sum over drawn pairs is
    w^T (K o L) w - 2 (w o K w)^T (L w) / N + (w^T K w)(w^T L w) / N^2."""
    total = weights.sum(axis=1)
    return (((weights @ (K * L)) * weights).sum(axis=1) - 2 * (weights * Kw * Lw).sum(axis=1) / total
            + (weights * Kw).sum(axis=1) * (weights * Lw).sum(axis=1) / total ** 2)


def resampled_cka(ours: np.ndarray, theirs: list[np.ndarray], how: str, weights: np.ndarray) -> np.ndarray:
    """(resamples, len(theirs)): linear CKA of ``ours`` with each of ``theirs`` (sequences (n, t, d)) reduced
    by ``how``, on the examples drawn with ``weights`` -- exactly CKA on the drawn rows, each example
    repeated as often as it was drawn, without building them. One row per example: from the n x n Grams,
    centred with the weights (:func:`_weighted_hsic`); several (every step as a row): from per-example
    cross-products, d x d."""
    rows = [reduced(x, how) for x in (ours, *theirs)]
    n = ours.shape[0]
    if rows[0].shape[0] == n:
        grams = [x @ x.T for x in rows]
        drawn = [weights @ K for K in grams]            # K w of every resample, (resamples, n)

        def hsic(i, j):
            return _weighted_hsic(grams[i], grams[j], drawn[i], drawn[j], weights)

        ours_hsic = hsic(0, 0)
        return np.stack([hsic(0, k) / np.sqrt(ours_hsic * hsic(k, k)) for k in range(1, len(rows))], axis=1)
    blocks = [x.reshape(n, -1, x.shape[1]) for x in rows]
    count = weights.sum(axis=1) * blocks[0].shape[1]     # rows in each resample

    def cross(x, y):
        """Centred X^T Y of every resample: (resamples, d_x, d_y)."""
        products = np.einsum("nri,nrj->nij", x, y).reshape(n, -1)
        sums_x, sums_y = weights @ x.sum(axis=1), weights @ y.sum(axis=1)
        total = (weights @ products).reshape(-1, x.shape[2], y.shape[2])
        return total - sums_x[:, :, None] * sums_y[:, None, :] / count[:, None, None]

    def norm(m):
        return np.linalg.norm(m.reshape(m.shape[0], -1), axis=1)

    ours_norm = norm(cross(blocks[0], blocks[0]))
    return np.stack([norm(cross(blocks[0], y)) ** 2 / (ours_norm * norm(cross(y, y))) for y in blocks[1:]], axis=1)


def _interval(value: float, samples: np.ndarray) -> Interval:
    """The bootstrap's interval of ``value``, re-centred on it as every interval of the app is."""
    low, high, _ = recentred_interval(value, samples, CONFIDENCE)
    return Interval(value, float(low), float(high))


@st.cache_data(max_entries=8, show_spinner="Reducing the hidden-state sequences five ways, with bootstrap intervals…")
def _rnn_view(keys: tuple[str, ...], reference: str) -> RnnView:
    others = tuple(n for n in RNNS if n != reference)
    ours = _sequence(reference)
    theirs = [_sequence(n) for n in others]
    weights = resample_weights(ours.shape[0], RESAMPLES, SEED)
    values, intervals, gaps = {}, {}, {}
    for how in STEP_REDUCTIONS:
        full = tuple(float(linear_cka(reduced(ours, how), reduced(x, how))) for x in theirs)
        samples = resampled_cka(ours, theirs, how, weights)
        values[how] = full
        intervals[how] = tuple(_interval(v, samples[:, k]) for k, v in enumerate(full))
        gaps[how] = _interval(full[0] - full[1], samples[:, 0] - samples[:, 1])
    return RnnView(reference, others, values, intervals, gaps)


def rnn_view(reference: str) -> RnnView:
    return _rnn_view(tuple(models.get(n).key for n in RNNS), reference)


def rnn_figure(view: RnnView) -> go.Figure:
    """The CKA of each other network with the reference under each reduction, with its bootstrap interval,
    the value written large inside each bar."""
    fig = go.Figure()
    labels = list(STEP_REDUCTIONS.values())
    for k, (other, colour) in enumerate(zip(view.others, ("#d62728", "#9467bd"))):
        shown = [view.intervals[how][k] for how in STEP_REDUCTIONS]
        values = [i.value for i in shown]
        fig.add_trace(go.Bar(x=labels, y=values, name=other, marker_color=colour,
                             error_y=dict(type="data", symmetric=False, array=[i.high - i.value for i in shown],
                                          arrayminus=[i.value - i.low for i in shown], color="#333", thickness=1.5),
                             text=[f"{v:.3f}" for v in values], textposition="inside", insidetextanchor="middle",
                             textfont=dict(size=BAR_TEXT, color="white"), textangle=0,
                             customdata=[[i.low, i.high] for i in shown],
                             hovertemplate=f"{other}<br>%{{x}}: CKA = %{{y:.3f}}<br>{CONFIDENCE:.0%} interval "
                                           "%{customdata[0]:.3f} to %{customdata[1]:.3f}<extra></extra>"))
    fig.update_layout(**{**figures.LAYOUT, "height": 340}, barmode="group",
                      yaxis_title=f"linear CKA with {view.reference}",
                      title=f"Which network is closest to {view.reference}? It depends on the reduction",
                      uniformtext=dict(minsize=BAR_TEXT, mode="show"), font=dict(size=14))
    fig.update_yaxes(range=[0, 1.1])
    return fig


def rnn_rows(view: RnnView) -> list[dict]:
    """One row per reduction: each network's CKA, their difference with its interval, and which is closer
    ('no clear order' when the difference's interval includes 0)."""
    return [{"reduction": STEP_REDUCTIONS[how], **dict(zip(view.others, view.values[how])),
             "difference": view.gaps[how].value, "low": view.gaps[how].low, "high": view.gaps[how].high,
             "closest": view.closest(how) if view.gaps[how].excludes_zero else "no clear order"}
            for how in STEP_REDUCTIONS]


def difference_columns(view: RnnView) -> dict[str, tuple[str, str]]:
    """(header, help) of the difference columns: what is subtracted, the interval's level."""
    first, second = view.others
    interval = f"{CONFIDENCE:.0%} bootstrap interval of the difference"
    return {"difference": ("difference", f"CKA with {first} minus CKA with {second}"),
            "low": (f"{CONFIDENCE:.0%} low", interval), "high": (f"{CONFIDENCE:.0%} high", interval)}


def _reading(gap: Interval) -> str:
    return f"difference {gap.value:+.3f}, interval {gap.low:+.3f} to {gap.high:+.3f}"


def rnn_takeaway(rnn: RnnView) -> str:
    """The recurrent networks' comparison under the two reductions whose differences lie furthest apart,
    with each difference's bootstrap interval; a flip of the ranking is claimed only when both intervals
    exclude 0, on opposite sides."""
    first, second = rnn.others
    high = max(rnn.gaps, key=lambda how: rnn.gaps[how].value)
    low = min(rnn.gaps, key=lambda how: rnn.gaps[how].value)
    up, down = rnn.gaps[high], rnn.gaps[low]
    sentence = (f"Against {rnn.reference}, {first} and {second} read {rnn.values[high][0]:.3f} and "
                f"{rnn.values[high][1]:.3f} {STEP_PHRASES[high]} ({_reading(up)}), but {rnn.values[low][0]:.3f} and "
                f"{rnn.values[low][1]:.3f} {STEP_PHRASES[low]} ({_reading(down)})")
    level = f"{CONFIDENCE:.0%}"
    if up.low > 0 > down.high:
        return sentence + f": both {level} intervals exclude 0, so the ranking flips with the reduction."
    if up.value > 0 > down.value:
        unclear = [STEP_PHRASES[how] for how, gap in ((high, up), (low, down)) if not gap.excludes_zero]
        if len(unclear) == 2:
            return sentence + f": both {level} intervals include 0, so neither order is clear."
        return (sentence + f": the order looks reversed, but the {level} interval {unclear[0]} includes 0, so the "
                "ranking does not clearly flip.")
    small, large = sorted((up, down), key=lambda gap: abs(gap.value))
    noise = "" if small.excludes_zero else f", the smaller one's {level} interval including 0"
    return sentence + f": the gap between them goes from {abs(small.value):.3f} to {abs(large.value):.3f}{noise}."


def takeaway(cnn: CnnView, rnn: RnnView) -> str:
    """The page's point with this view's numbers: the recurrent networks under the two reductions that
    disagree most (:func:`rnn_takeaway`), and the CNN layer whose similarity to its untrained twin moves
    most with the reduction."""
    i = max(cnn.convolutions, key=lambda c: np.ptp([cnn.twin[h][c] for h in MAP_REDUCTIONS]))
    most = max(MAP_REDUCTIONS, key=lambda h: cnn.twin[h][i])
    least = min(MAP_REDUCTIONS, key=lambda h: cnn.twin[h][i])
    return (f"{rnn_takeaway(rnn)} The CNN's {cnn.layers[i]} against its untrained twin: {cnn.twin[most][i]:.2f} "
            f"{MAP_PHRASES[most]}, {cnn.twin[least][i]:.2f} {MAP_PHRASES[least]}. A comparison holds only for the "
            "reduction it was made with.")
