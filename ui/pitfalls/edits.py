"""What the function-preserving-edits page shows (docs/theory.md §4), cached.

Everything is keyed on small descriptors (the network's registry key, precision, edit parameters)
and bounded. The networks here are private copies in the chosen precision (the edits deep-copy
them again), so no shared module is ever edited or gets hooks attached. Results are small (a few
6x6 maps and scalars), so a cache hit costs microseconds.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
import streamlit as st
import torch
from torch import nn

from cka_core import capture, cka_matrix
from cka_core.pitfalls import edits
from cka_core.pitfalls.directions import moved_random_fraction

from ..frame import figures
from ..sources import models
from ..sources.arrays import readonly

DEFAULT_NETWORK = "mlp_deep"
PRECISIONS = {"float64": torch.float64, "float32": torch.float32}
EDITS = {
    "rescale": "Rescale neurons across the ReLU",
    "translate": "Translate in the next layer's null space",
    "invertible": "Invertible map, inverse in the next layer",
}
#: Relative logit change (to the largest |logit|) above which the edit is no longer exact in
#: practice: float32 carries about 7 digits, and ill-conditioned edits amplify its roundoff.
RELATIVE_TOLERANCE = 1e-5


@dataclass(frozen=True)
class Baseline:
    """The unedited network on the digits test split, in one precision."""

    names: tuple[str, ...]
    layers: dict[str, np.ndarray]     # read-only (n, d) float arrays
    logits: np.ndarray
    accuracy: float
    map: np.ndarray
    typical_distance: dict[str, float]  # RMS distance of an example from the mean, per layer


@dataclass(frozen=True)
class EditResult:
    """What the page shows about one edit (small: cached with st.cache_data)."""

    layer: str
    names: tuple[str, ...]
    map_before: np.ndarray
    map_after: np.ndarray
    per_layer: np.ndarray            # linear CKA(original layer, edited layer) for every layer
    cka_layer: float                 # the same for the edited layer
    max_logit_change: float
    max_logit: float
    accuracy_before: float
    accuracy_after: float
    predictions_changed: int
    n: int
    detail: str                      # one line describing the edit's parameters
    note: str | None = None          # something the reader should know (e.g. a dead neuron)

    @property
    def relative_change(self) -> float:
        return self.max_logit_change / max(self.max_logit, 1e-30)


def takeaway(result: EditResult, name: str) -> str:
    """The page's lesson in one sentence, with the numbers of this edit."""
    if result.predictions_changed:
        return (f"In this arithmetic the edit is no longer exact: {result.predictions_changed} of {result.n} "
                f"predictions changed by roundoff (logits by up to {result.max_logit_change:.1e}); in float64, or "
                "with a smaller condition number, every prediction stays.")
    return f"{name} computes the same function after this edit: {_same_function_yet(result)}"


def _same_function_yet(result: EditResult) -> str:
    moved = float(np.max(np.abs(result.map_after - result.map_before)))
    return (f"all {result.n} predictions are identical and the logits move by at most {result.max_logit_change:.0e}, "
            f"yet linear CKA between {result.layer} before and after is {result.cka_layer:.3f} and cells of the network's "
            f"CKA map move by up to {moved:.2f}.")


def network_about(name: str) -> str:
    """'mlp_deep (ReLU MLP with 5 hidden layers of 64, trained on the 1438 training digits)': the network
    and the registry's description of it, up to the description's first colon (what follows says why the
    zoo has it)."""
    return (f"{name} ({models.get(name).description.split(':')[0]}, trained on the {len(models.digits().y_train)} "
            "training digits)")


def layer_about(name: str, layer: str) -> str:
    """'hidden5 (its 5th and last hidden layer)': where ``layer`` sits among the network's hidden layers."""
    hidden = hidden_layers(name)
    k = hidden.index(layer) + 1
    suffix = "th" if 10 <= k % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(k % 10, "th")
    return f"{layer} (its {k}{suffix}{' and last' if k == len(hidden) else ''} hidden layer)"


def showcase_takeaway(result: EditResult) -> str:
    """The Home page's headline: :func:`takeaway` of :func:`showcase`, the network, the layer and the edit
    said in words (Home shows none of the Function-preserving page's controls)."""
    if result.predictions_changed:
        return takeaway(result, DEFAULT_NETWORK)
    return (f"{network_about(DEFAULT_NETWORK)} computes the same function after the neurons of "
            f"{layer_about(DEFAULT_NETWORK, result.layer)} are rescaled and the next layer scales them back: "
            f"{_same_function_yet(result)}")


#: The Home page's headline edit: the Function-preserving page's default with the largest spread.
SHOWCASE_SPREAD = 3.0


def showcase() -> EditResult:
    """The Home page's headline edit: mlp_deep's last hidden layer, float64, neurons rescaled with
    spread SHOWCASE_SPREAD (the Function-preserving page's defaults otherwise)."""
    return rescale(DEFAULT_NETWORK, "float64", hidden_layers(DEFAULT_NETWORK)[-1], "spread", SHOWCASE_SPREAD,
                   0, 0, 1.0)


def networks() -> list[str]:
    """The registered ReLU MLPs (zoo and fine-tuned in this session), the default first."""
    names = models.names(relu_mlp=True, trained=True)
    return [DEFAULT_NETWORK] + [n for n in names if n != DEFAULT_NETWORK]


def per_layer_figure(result: EditResult) -> go.Figure:
    """Bars of CKA(original layer, edited layer) for every layer, the edited one highlighted."""
    return figures.bars(list(result.names), [float(v) for v in result.per_layer],
                        title="CKA(original layer, edited layer)", y_title="linear CKA", y_range=(0, 1.15),
                        colours=[figures.COLOURS["moved"] if name == result.layer else figures.COLOURS["linear_cka"]
                                 for name in result.names])


def map_figure(base: Baseline, values: np.ndarray, title: str) -> go.Figure:
    names = list(base.names)
    return figures.heatmap(np.asarray(values), names, names, title=title)


def layer_width(name: str, layer: str) -> int:
    """Number of units of ``layer`` (the input width of the Linear that reads it)."""
    net = network(name, "float64")
    return edits.linear_chain(net, layer).width(net)


def last_neuron(name: str, layer: str) -> int:
    """Index of the last unit of ``layer``."""
    return layer_width(name, layer) - 1


def first_live_neuron(name: str, layer: str) -> int:
    """The first unit of ``layer`` that varies on the test digits (many ReLUs are dead)."""
    varies = np.ptp(baseline(name, "float64").layers[layer], axis=0) > 0
    return int(np.argmax(varies)) if varies.any() else 0


def hidden_layers(name: str) -> list[str]:
    return [layer for layer in models.get(name).layers if layer != "logits"]


@st.cache_resource(max_entries=12, show_spinner="Loading the network…")
def _network(key: str, _net: nn.Module, precision: str) -> nn.Module:
    return copy.deepcopy(_net).to(PRECISIONS[precision])


def network(name: str, precision: str) -> nn.Module:
    """A copy of registered network ``name`` in ``precision``, shared by the sessions of this page
    and never edited (every edit deep-copies it)."""
    return _network(models.get(name).key, models.module(name), precision)


def _inputs(precision: str) -> np.ndarray:
    return np.asarray(models.digits().X_test, dtype=np.dtype(precision))


@st.cache_resource(max_entries=12, show_spinner="Capturing the network's layers…")
def _baseline(key: str, _net: nn.Module, names: tuple[str, ...], precision: str) -> Baseline:
    layers = models.capture_rows(_net, _inputs(precision), names, dtype=None)
    logits = layers["logits"]
    typical = {k: float(np.sqrt(np.mean(np.sum((v - v.mean(axis=0)) ** 2, axis=1)))) for k, v in layers.items()}
    return Baseline(names, layers, logits, models.accuracy(logits, models.digits().y_test),
                    readonly(cka_matrix(layers)), typical)


def baseline(name: str, precision: str) -> Baseline:
    """Every layer of the unedited network on the test digits, its logits, accuracy and CKA map."""
    network_ = models.get(name)
    return _baseline(network_.key, network(name, precision), network_.layers, precision)


def _result(base: Baseline, layer: str, edited: dict[str, np.ndarray], detail: str, note: str | None = None) -> EditResult:
    edited = {k: np.asarray(v).reshape(v.shape[0], -1) for k, v in edited.items()}
    y = models.digits().y_test
    before, after = base.logits, edited["logits"]
    cross = cka_matrix(base.layers, edited)
    per_layer = np.clip(np.diag(cross), 0.0, 1.0)
    return EditResult(
        layer=layer, names=base.names, map_before=np.asarray(base.map), map_after=cka_matrix(edited),
        per_layer=per_layer, cka_layer=float(per_layer[base.names.index(layer)]),
        max_logit_change=float(np.max(np.abs(after.astype(np.float64) - before.astype(np.float64)))),
        max_logit=float(np.max(np.abs(before))), accuracy_before=base.accuracy,
        accuracy_after=models.accuracy(after, y),
        predictions_changed=int(np.sum(np.argmax(after, axis=1) != np.argmax(before, axis=1))),
        n=int(before.shape[0]), detail=detail, note=note,
    )


def rescale(name: str, precision: str, layer: str, mode: str, spread: float, seed: int, neuron: int,
            k: float) -> EditResult:
    """Edit (1): d_i = exp(spread * g_i) (mode "spread") or neuron ``neuron`` times k (mode "one")."""
    return _rescale(models.get(name).key, name, precision, layer, mode, spread, seed, neuron, k)


@st.cache_data(max_entries=64, show_spinner=False)
def _rescale(key: str, name: str, precision: str, layer: str, mode: str, spread: float, seed: int, neuron: int,
             k: float) -> EditResult:
    base, net = baseline(name, precision), network(name, precision)
    width = edits.linear_chain(net, layer).width(net)
    if mode == "spread":
        scales = edits.spread_scales(width, spread, seed)
        detail = f"d = exp({spread:g} · g), g ~ N(0, 1) seed {seed}: scales from {scales.min():.3g} to {scales.max():.3g}"
        note = None
    else:
        scales = edits.one_neuron_scales(width, neuron, k)
        detail = f"neuron {neuron} of {layer} × {k:.3g}, the other {width - 1} unchanged"
        column = base.layers[layer][:, neuron]
        note = None
        if not np.any(column):
            note = (f"Neuron {neuron} of {layer} is never active on the test digits (a dead ReLU): scaling it "
                    "changes nothing. Pick another neuron.")
        elif np.ptp(column) == 0:
            note = f"Neuron {neuron} of {layer} is constant on the test digits: centring removes it, so CKA ignores it."
    edited_net = edits.rescale_neurons(net, layer, scales)
    return _result(base, layer, capture(edited_net, _inputs(precision), base.names), detail, note)


def invertible(name: str, precision: str, layer: str, condition: float, seed: int) -> EditResult:
    """Edit (3): H -> H M with cond(M) = ``condition``, next layer W -> W M^{-T}."""
    return _invertible(models.get(name).key, name, precision, layer, round(condition, 6), seed)


@st.cache_data(max_entries=64, show_spinner=False)
def _invertible(key: str, name: str, precision: str, layer: str, condition: float, seed: int) -> EditResult:
    base, net = baseline(name, precision), network(name, precision)
    width = edits.linear_chain(net, layer).width(net)
    M = edits.random_invertible_map(width, condition, seed)
    edited_net, _ = edits.invertible_map_edit(net, layer, M)
    detail = (f"M = U diag(s) Vᵀ, {width}×{width}, condition number κ = {condition:.3g}, seed {seed}"
              + (" (orthogonal: CKA is invariant to it)" if condition == 1 else ""))
    return _result(base, layer, capture(edited_net, _inputs(precision), base.names), detail)


def has_null_space(name: str, layer: str) -> bool:
    """Whether the Linear reading ``layer`` has a null space (some v != 0 with W v = 0)."""
    return _has_null_space(models.get(name).key, name, layer)


@st.cache_data(max_entries=32, show_spinner=False)
def _has_null_space(key: str, name: str, layer: str) -> bool:
    return edits.has_null_space(network(name, "float64"), layer)


def reader_shape(name: str, layer: str) -> tuple[int, int]:
    net = network(name, "float64")
    reader = net.get_submodule(edits.linear_chain(net, layer).reader)
    return reader.out_features, reader.in_features


def no_null_space_note(name: str, layer: str) -> str:
    """Why no translation of ``layer`` is invisible to the network, and which layer to pick instead."""
    last = hidden_layers(name)[-1]
    outputs, inputs = reader_shape(name, layer)
    last_out, last_in = reader_shape(name, last)
    return (f"**No invisible direction after {layer}.** The next layer maps {inputs} units to {outputs}; its "
            f"{outputs}×{inputs} weight has full column rank, so W v = 0 only for v = 0 and every translation "
            f"of {layer} changes what the next layer computes. Pick the last hidden layer, **{last}**, read out by "
            f"{last_out} logits: the {last_in} − {last_out} = {last_in - last_out}-dimensional null space of that "
            "read-out is invisible to the network.")


def translate(name: str, precision: str, layer: str, fraction: float, c: float, seed: int) -> EditResult:
    """Edit (2): a random fraction of the examples moves by c typical distances along v, W_next v = 0."""
    return _translate(models.get(name).key, name, precision, layer, fraction, c, seed)


@st.cache_data(max_entries=64, show_spinner=False)
def _translate(key: str, name: str, precision: str, layer: str, fraction: float, c: float, seed: int) -> EditResult:
    base, net = baseline(name, precision), network(name, precision)
    H = base.layers[layer]
    moved = moved_random_fraction(H.shape[0], fraction, seed)
    distance = c * base.typical_distance[layer]
    H_edited, _ = edits.null_space_translation(net, layer, H, moved, distance, seed)
    layers = edits.capture_edited(net, _inputs(precision), base.names, {layer: H_edited})
    detail = (f"{int(moved.sum())} of {H.shape[0]} examples move by c = {c:.3g} typical distances "
              f"({distance:.3g}) along a unit v with W v = 0, seed {seed}")
    return _result(base, layer, layers, detail)


def map_change_figure(result: EditResult, *, title: str) -> go.Figure:
    """The edited network's CKA map minus the original's, on a diverging scale centred at 0 (red:
    CKA fell, blue: CKA rose)."""
    names = list(result.names)
    diff = result.map_after - result.map_before
    diff = np.where(np.abs(diff) < 1e-9, 0.0, diff)      # no "-0.00" from float roundoff
    reach = max(float(np.max(np.abs(diff))), 1e-2)
    fig = figures.heatmap(diff, names, names, title=title, z_range=(-reach, reach), colour_title="Δ CKA",
                          text_format=".2f")
    fig.update_traces(colorscale="RdBu", zmid=0.0, colorbar=dict(title="Δ", thickness=12))
    fig.update_layout(height=380, margin=dict(l=60, r=10, t=50, b=50))
    return fig
