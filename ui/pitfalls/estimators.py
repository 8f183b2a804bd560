"""Cached computations of the Estimators page: how the estimator itself can mislead.

Four demonstrations, each keyed on small descriptors (sizes, seeds, the representation key) and
bounded: the null bias of biased CKA (Murphy et al. 2024; docs/theory.md §2.3), the minibatch
estimator of Nguyen et al. (2021; §2.2), float32 cancellation in uncentred Gram matrices (§6) and
the RBF bandwidth limits (§7).

:func:`uncentred_float32_cka` is deliberately wrong -- it reproduces what several libraries do
so that the page can show the damage; never use it for real numbers.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
import streamlit as st
import torch

from cka_core import cka_matrix, linear_cka, rbf_cka
from cka_core.cka.kernels import cka_from_hsic, u_centre_gram
from cka_core.measures.cka import rbf_cka_curve

from ..frame import figures
from ..sources import data, models

#: Sizes offered by the null-bias panel (the curve is computed on exactly these widths, so the
#: current point is read from the cached curve and a slider move costs nothing).
N_CHOICES = (10, 20, 50, 100, 200, 500)
D_CHOICES = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)
#: Offsets of the float32 panel (log10) and bandwidth multipliers of the RBF panel (log10).
OFFSET_LOG_RANGE = (0.0, 5.0)
SIGMA_LOG_RANGE = (-2.0, 2.0)
#: (sidebar source, layer Y) pairs whose curves a server keeps: a class's choices over the zoo's networks
#: that are not pixel RNNs (84 sources), so that a warm-up leaves them computed. Each curve is a few kB.
PAIRS_KEPT = 128


# ----------------------------------------------------------------------------- null bias
@dataclass(frozen=True)
class NullCurve:
    n: int
    d: np.ndarray          # widths
    biased: np.ndarray     # biased linear CKA of one draw of independent X, Y (n x d each)
    debiased: np.ndarray   # debiased linear CKA of the same draw
    expected: np.ndarray   # d / (d + n - 1), the biased estimator's value for independent data


def expected_null_cka(n: int, d) -> np.ndarray:
    """Biased linear CKA of independent isotropic Gaussian X, Y (n x d each): about d/(d+n-1)."""
    d = np.asarray(d, dtype=np.float64)
    return d / (d + n - 1)


@st.cache_data(max_entries=24, show_spinner="Drawing independent Gaussian representations…")
def null_bias_curve(n: int, seed: int) -> NullCurve:
    """Biased and debiased CKA of independent X, Y (n x d) for every d in :data:`D_CHOICES`.

    One draw of width max(d); narrower representations are its leading columns, so the Gram
    matrices grow by one block product per width (total cost one n x n x d_max Gram each).
    """
    rng = np.random.default_rng(seed)
    d_max = D_CHOICES[-1]
    x = torch.from_numpy(rng.standard_normal((n, d_max)))
    y = torch.from_numpy(rng.standard_normal((n, d_max)))
    x = x - x.mean(dim=0, keepdim=True)  # centre features: every Gram below is already centred
    y = y - y.mean(dim=0, keepdim=True)
    k = torch.zeros(n, n, dtype=torch.float64)
    l = torch.zeros(n, n, dtype=torch.float64)
    biased, debiased, start = [], [], 0
    for d in D_CHOICES:
        k += x[:, start:d] @ x[:, start:d].T
        l += y[:, start:d] @ y[:, start:d].T
        start = d
        biased.append(float(cka_from_hsic((k * l).sum(), (k * k).sum(), (l * l).sum())))
        ku, lu = u_centre_gram(k), u_centre_gram(l)
        debiased.append(float(cka_from_hsic((ku * lu).sum(), (ku * ku).sum(), (lu * lu).sum())))
    d = np.array(D_CHOICES, dtype=np.float64)
    return NullCurve(n, d, np.array(biased), np.array(debiased), expected_null_cka(n, d))


@dataclass(frozen=True)
class NullBiasPoint:
    """The null-bias curve read at one width."""

    n: int
    d: int
    index: int            # position of d in D_CHOICES
    biased: float
    expected: float
    debiased: float


def null_bias_point(curve: NullCurve, n: int, d: int) -> NullBiasPoint:
    k = list(D_CHOICES).index(d)
    return NullBiasPoint(n, d, k, float(curve.biased[k]), float(curve.expected[k]), float(curve.debiased[k]))


def takeaway(point: NullBiasPoint) -> str:
    """The page's lesson in one sentence, with the numbers of the null-bias panel's setting."""
    reading = ("looks strongly similar" if point.biased >= 0.5 else
               "already looks somewhat similar" if point.biased >= 0.2 else "looks unrelated, as it should")
    return (f"The estimator can decide the number: two independent random representations with n = {point.n} "
            f"examples and d = {point.d} features read biased CKA {point.biased:.2f} (d / (d + n − 1) = "
            f"{point.expected:.2f}) and debiased CKA {point.debiased:.2f}, so on biased CKA unrelated data "
            f"{reading}.")


# ----------------------------------------------------------------------------- minibatch
@dataclass(frozen=True)
class MinibatchCurve:
    batch_sizes: np.ndarray
    biased: np.ndarray
    debiased: np.ndarray
    full_biased: float
    full_debiased: float
    n: int


def shuffled(X: np.ndarray, Y: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The same random row order for X and Y, as a shuffling data loader would give."""
    order = np.random.default_rng(seed).permutation(X.shape[0])
    return X[order], Y[order]


def minibatch_value(X: np.ndarray, Y: np.ndarray, batch_size: int, *, debiased: bool) -> float:
    """Nguyen et al.'s minibatch CKA: HSIC summed over consecutive batches, ratio at the end."""
    return float(cka_matrix([X], [Y], batch_size=int(batch_size), debiased=debiased)[0, 0])


def batch_size_grid(n: int, points: int = 22) -> np.ndarray:
    return np.unique(np.round(np.geomspace(4, n, points)).astype(int))


@st.cache_data(max_entries=PAIRS_KEPT, show_spinner="Computing the minibatch estimator for every batch size…")
def minibatch_curve(pair_key: str, _X: np.ndarray, _Y: np.ndarray) -> MinibatchCurve:
    """Minibatch CKA (biased and debiased) over a log grid of batch sizes, plus the full-data values."""
    X, Y = shuffled(_X, _Y)
    sizes = batch_size_grid(X.shape[0])
    biased = np.array([minibatch_value(X, Y, b, debiased=False) for b in sizes])
    debiased = np.array([minibatch_value(X, Y, b, debiased=True) for b in sizes])
    return MinibatchCurve(sizes, biased, debiased, linear_cka(X, Y), linear_cka(X, Y, debiased=True), X.shape[0])


# ---------------------------------------------------------------------- float32 cancellation
def uncentred_float32_cka(X, Y) -> float:
    """DELIBERATELY WRONG linear CKA, for demonstration only.

    What several libraries do: form the Gram matrices K = X Xᵀ and L = Y Yᵀ of the *uncentred*
    activations in float32, then double-centre the Grams (H K H) in float32. With an activation
    offset c, every entry of K is about c² d while the centred signal is of the order of the
    activations' variance, so float32's 7 digits cancel away (docs/theory.md §6).
    The correct order -- centre the features (in float64), then form products -- is what
    ``cka_core`` does.
    """
    x = np.asarray(X, dtype=np.float32)
    y = np.asarray(Y, dtype=np.float32)
    k, l = x @ x.T, y @ y.T
    k = k - k.mean(axis=0, keepdims=True) - k.mean(axis=1, keepdims=True) + k.mean()
    l = l - l.mean(axis=0, keepdims=True) - l.mean(axis=1, keepdims=True) + l.mean()
    hxy, hxx, hyy = (k * l).sum(), (k * k).sum(), (l * l).sum()
    with np.errstate(all="ignore"):
        return float(hxy / np.sqrt(hxx * hyy))


@dataclass(frozen=True)
class Float32Curve:
    offsets: np.ndarray
    uncentred: np.ndarray   # uncentred_float32_cka(X + c, Y + c)
    core: np.ndarray        # cka_core.linear_cka of the float32 inputs with the offset
    reference: float        # centred float64 value (offset-invariant)


def with_offset(X: np.ndarray, offset: float) -> np.ndarray:
    """Activations shifted by ``offset`` in every coordinate, stored in float32 (as a network would)."""
    return (np.asarray(X, dtype=np.float64) + offset).astype(np.float32)


@st.cache_data(max_entries=PAIRS_KEPT, show_spinner="Computing CKA in float32 for every offset…")
def float32_curve(pair_key: str, _X: np.ndarray, _Y: np.ndarray, points: int = 26) -> Float32Curve:
    offsets = np.logspace(*OFFSET_LOG_RANGE, points)
    reference = linear_cka(np.asarray(_X, np.float64), np.asarray(_Y, np.float64))
    uncentred, core = [], []
    for c in offsets:
        x32, y32 = with_offset(_X, c), with_offset(_Y, c)
        uncentred.append(uncentred_float32_cka(x32, y32))
        core.append(linear_cka(x32, y32))
    return Float32Curve(offsets, np.array(uncentred), np.array(core), reference)


# ------------------------------------------------------------------------------ RBF bandwidth
@dataclass(frozen=True)
class BandwidthCurve:
    sigmas: np.ndarray
    pair: np.ndarray        # RBF CKA(X, Y)
    noise: np.ndarray       # RBF CKA(X, independent Gaussian noise of X's shape)
    linear: float           # linear CKA(X, Y): the sigma -> infinity limit
    linear_noise: float


def noise_like(X: np.ndarray, seed: int = 0) -> np.ndarray:
    """Independent standard Gaussian data with X's shape: unrelated to anything."""
    return np.random.default_rng(seed).standard_normal(np.shape(X))


@st.cache_data(max_entries=PAIRS_KEPT, show_spinner="Computing RBF CKA for every bandwidth…")
def bandwidth_curve(pair_key: str, _X: np.ndarray, _Y: np.ndarray, points: int = 25) -> BandwidthCurve:
    """RBF CKA over sigma in [0.01, 100] x the median distance, for (X, Y) and for (X, noise)."""
    sigmas = np.logspace(*SIGMA_LOG_RANGE, points)
    Z = noise_like(_X)
    pair = rbf_cka_curve(_X, _Y, [float(s) for s in sigmas])
    noise = rbf_cka_curve(_X, Z, [float(s) for s in sigmas])
    return BandwidthCurve(sigmas, pair, noise, linear_cka(_X, _Y), linear_cka(_X, Z))


@st.cache_data(max_entries=256)
def rbf_point(pair_key: str, _X: np.ndarray, _Y: np.ndarray, log_sigma: float) -> tuple[float, float]:
    """RBF CKA of (X, Y) and of (X, noise) at one bandwidth multiplier 10**log_sigma."""
    sigma = float(10.0**log_sigma)
    return rbf_cka(_X, _Y, sigma=sigma), rbf_cka(_X, noise_like(_X), sigma=sigma)


# ------------------------------------------------------------------------------ figures
def null_bias_figure(curve: NullCurve, d: int, k: int) -> go.Figure:
    """Biased and debiased CKA of independent data over d, with d/(d+n-1) and the current point."""
    fig = figures.curve(curve.d, {"Biased CKA": curve.biased, "d / (d + n − 1)": curve.expected,
                                  "Debiased CKA": curve.debiased},
                        title=f"CKA of independent random X and Y (n = {curve.n})", x_title="features d",
                        y_title="CKA", log_x=True, y_range=(-0.1, 1.05),
                        marker=(float(d), {"Biased CKA": curve.biased[k], "Debiased CKA": curve.debiased[k]}))
    fig.data[0].line.color = figures.COLOURS["linear_cka"]
    fig.data[1].line.update(color=figures.COLOURS["limit"], dash="dot")
    return fig


def minibatch_figure(curve: MinibatchCurve, b: int, now_debiased: float, now_biased: float) -> go.Figure:
    """Minibatch CKA (biased, debiased) against the batch size, with the full-data values."""
    fig = figures.curve(curve.batch_sizes, {"Debiased CKA": curve.debiased, "Linear CKA": curve.biased},
                        title=f"Minibatch estimator vs batch size (n = {curve.n})", x_title="batch size b",
                        y_title="CKA", log_x=True, marker=(float(b), {"Debiased CKA": now_debiased, "Linear CKA": now_biased}))
    fig.data[0].name, fig.data[1].name = "minibatch, debiased", "minibatch, biased"
    for value, name, colour, dash in ((curve.full_debiased, "full data, debiased", figures.COLOURS["linear_cka_debiased"], "dash"),
                                      (curve.full_biased, "full data, biased", figures.COLOURS["linear_cka"], "dot")):
        fig.add_trace(go.Scatter(x=curve.batch_sizes[[0, -1]], y=[value, value], mode="lines", name=name,
                                 line=dict(color=colour, dash=dash, width=1.5),
                                 hovertemplate=f"{name} = {value:.4f}<extra></extra>"))
    return fig


#: Exact zeros are drawn at this error on the log axis.
ERROR_FLOOR = 1e-17


def float32_figure(curve: Float32Curve, offset: float, now_wrong: float) -> go.Figure:
    """|CKA - float64 reference| against the activation offset, both estimators, log-log."""
    def error(values):
        values = np.asarray(values, dtype=np.float64)
        return np.maximum(np.abs(np.where(np.isfinite(values), values, curve.reference + 1.0) - curve.reference), ERROR_FLOOR)

    fig = go.Figure()
    for values, name, colour in ((curve.uncentred, "uncentred float32 Gram", figures.COLOURS["moved"]),
                                 (curve.core, "cka_core: centre first (float64)", figures.COLOURS["linear_cka"])):
        fig.add_trace(go.Scatter(x=curve.offsets, y=error(values), mode="lines+markers", name=name,
                                 line=dict(color=colour), hovertemplate="c=%{x:.3g}<br>|error|=%{y:.2e}<extra></extra>"))
    fig.add_trace(go.Scatter(x=[offset], y=error([now_wrong]), mode="markers", name="now",
                             marker=dict(color=figures.COLOURS["current"], size=12),
                             hovertemplate="c=%{x:.3g}<br>|error|=%{y:.2e}<extra>current</extra>"))
    fig.update_layout(title="|CKA − float64 reference| vs activation offset", xaxis_title="offset c",
                      yaxis_title="absolute error", **figures.LAYOUT)
    fig.update_xaxes(type="log")
    fig.update_yaxes(type="log", exponentformat="power")
    return fig


def bandwidth_figure(curve: BandwidthCurve, log_sigma: float, now_pair: float, now_noise: float) -> go.Figure:
    """RBF CKA against sigma / median distance for (X, Y) and (X, noise), linear CKA as the limit."""
    fig = figures.curve(curve.sigmas, {"RBF CKA": curve.pair, "RBF CKA(X, noise)": curve.noise},
                        title="RBF CKA vs bandwidth", x_title="σ / median distance", y_title="CKA", log_x=True,
                        marker=(float(10**log_sigma), {"RBF CKA": now_pair, "RBF CKA(X, noise)": now_noise}),
                        hlines={"linear CKA(X, Y)": curve.linear}, y_range=(0, 1.05))
    fig.data[0].name, fig.data[1].name = "RBF CKA(X, Y)", "RBF CKA(X, noise)"
    fig.data[1].line.color = figures.COLOURS["original"]
    return fig


# ------------------------------------------------------------------------------ the compared pair
@dataclass(frozen=True)
class Pair:
    """X and Y of panels 2-4, and what they are."""

    X: np.ndarray
    Y: np.ndarray
    label: str
    key: str


def other_layers(rep: data.Representation) -> tuple[list[str], str]:
    """Layers of the sidebar network other than its own (constant ones left out), and the default:
    the first layer, or the last when the sidebar holds the first (far apart, so CKA is well below 1)."""
    layers = models.varying_layers(rep.model_name)
    default = layers[0] if rep.layer != layers[0] else layers[-1]
    return [name for name in layers if name != rep.layer], default


def pair_with_layer(rep: data.Representation, other: str) -> Pair:
    """X = the sidebar's representation, Y = ``other`` layer of the same network."""
    Y = models.activations(rep.model_name)["test"][other]
    return Pair(rep.X, Y, f"X = {rep.label}, Y = {rep.model_name} · {other}", f"{rep.key}|{other}")


def pair_of_layers(name: str, a: str, b: str) -> Pair:
    """Two layers of registered network ``name``."""
    captured = models.activations(name)["test"]
    return Pair(captured[a], captured[b], f"X = {name} · {a}, Y = {name} · {b}", f"{models.get(name).key}|{a}|{b}")


def float32_error(value: float, reference: float) -> float:
    """|value - reference|, NaN where the estimator gave no finite number."""
    return abs(value - reference) if np.isfinite(value) else float("nan")


def sigma_multiple(log_sigma: float) -> float:
    """The bandwidth multiple of the median distance for a slider position (log10)."""
    return float(10.0**log_sigma)
