"""The Confounders page's computations: CKA and deconfounded CKA, layer by layer, between a trained
network and partners that share its layers (another seed, its untrained twin, a network trained on
shuffled labels), all on the digits test split with the pixels as the inputs regressed out."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
import streamlit as st

import sample_models
from cka_core import linear_cka
from cka_core.measures import inputs_view
from cka_core.measures.view import LayerView
from cka_core.measures.deconfounded import deconfounded_cka_of

from ..frame import figures
from ..sources import models

TWIN = "untrained twin"  # the partner that is the reference's architecture at its random initialisation
# The page's controls (URL keys) and what it remembers between runs.
REFERENCE, LAYER, PARTNERS = "con_reference", "con_layer", "con_partners"
_SHOWN = "_con_reference_shown"   # the reference of the last run, to see that it changed


@dataclass(frozen=True)
class Curves:
    """One partner against the reference, layer by layer."""

    partner: str
    about: str             # what the partner is, for captions
    trained: bool
    cka: tuple[float, ...]
    dcka: tuple[float, ...]

    def metric(self, layers: tuple[str, ...], i: int) -> dict:
        """st.metric arguments for layer ``i``: dCKA, with CKA and the difference as the delta."""
        return dict(label=f"{self.partner} at {layers[i]}: dCKA", value=f"{self.dcka[i]:.3f}",
                    delta=f"{self.dcka[i] - self.cka[i]:+.3f} from CKA {self.cka[i]:.3f}", delta_color="off",
                    help=self.about)


def references() -> list[str]:
    """Trained networks that other networks share their layers with (candidates for the reference), leaving out
    those with a layer that is the same for every test digit, where CKA and dCKA are undefined (the pixel-by-pixel
    RNNs' first steps read pixels blank in every digit)."""
    return [name for name in models.names(trained=True) if partners(name) and not models.constant_layers(name)]


def partners(reference: str) -> list[str]:
    """Registered networks with exactly the reference's layers (so layer i meets layer i), then its
    untrained twin when the zoo holds no network of its architecture at initialisation."""
    layers = models.get(reference).layers
    same = [name for name in models.names() if name != reference and models.get(name).layers == layers]
    return same + ([] if models.zoo_twin(reference) in same else [TWIN])


def default_partners(reference: str) -> list[str]:
    """Another seed of the reference (when there is one), the untrained network, the shuffled-label one."""
    candidates = partners(reference)
    config = sample_models.ZOO[models.get(reference).architecture].config
    retrained = [n for n in candidates if n != TWIN and models.get(n).trained
                 and sample_models.ZOO[models.get(n).architecture].config == config]
    controls = [n for n in candidates if n == TWIN or not models.get(n).trained]
    return (retrained[:1] + controls) or candidates[:2]


def partner_colour(layers: tuple[str, ...], partner: str) -> str:
    """The line colour of a partner with these layers, the same whatever the reference and the other partners:
    the zoo's networks with these layers (in the zoo's order, then the untrained twin) each take their own."""
    family = [name for name in models.zoo_names() if models.get(name).layers == layers] + [TWIN]
    return figures.network_colour(partner, family)


def _listed(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def carried_over(previous: str, reference: str, layer: str, chosen: list[str]) -> tuple[str, list[str], str]:
    """The layer and partners to show after the reference changed from ``previous``: the user's own where they
    stay valid, the nearest valid ones where not, and a sentence on what changed and why ('' when nothing did).

    The new reference, if it was a partner, swaps places with the old one; the untrained twin becomes the zoo's
    untrained network where there is one; partners without the new reference's layers go (the defaults if none
    is left)."""
    layers, options = models.get(reference).layers, partners(reference)
    said = []
    if layer not in layers:
        said.append(f"{reference} has no layer {layer}, so the numbers read {layers[0]}")
        layer = layers[0]
    stand_in = {reference: previous, TWIN: models.zoo_twin(reference)}
    kept, dropped = [], []
    for name in chosen:
        new = name if name in options else stand_in.get(name)
        if new in options and new not in kept:
            kept.append(new)
            if new != name:
                said.append(f"{name} is now the reference, so {new} takes its place among the partners"
                            if name == reference else f"the untrained twin of {reference} is the zoo's {new}")
        elif new not in kept:
            dropped.append(name)
    if dropped:
        said.append(f"{_listed(dropped)} {'does' if len(dropped) == 1 else 'do'} not have {reference}'s layers "
                    f"({', '.join(layers)}), so {'it is' if len(dropped) == 1 else 'they are'} no longer "
                    f"{'a partner' if len(dropped) == 1 else 'partners'}")
    if not kept:
        kept = default_partners(reference)
        said.append(f"showing its default {'partner' if len(kept) == 1 else 'partners'}, {_listed(kept)}")
    return layer, kept, ("" if not said else f"With {reference} as the reference: " + "; ".join(said) + ".")


def follow_the_reference(reference: str) -> str:
    """Before the layer and partner controls are drawn: when the reference changed since the last run, set them
    to :func:`carried_over` and return what changed ('' otherwise, and on the first run)."""
    state = st.session_state
    previous, state[_SHOWN] = state.get(_SHOWN), reference
    if previous is None or previous == reference or LAYER not in state or PARTNERS not in state:
        return ""
    state[LAYER], state[PARTNERS], note = carried_over(previous, reference, state[LAYER], list(state[PARTNERS]))
    return note


def partners_default(reference: str) -> list[str] | None:
    """The partners the control opens with; None once it holds the user's (Streamlit warns when a widget gets
    both a default and a value set through the session state)."""
    return None if PARTNERS in st.session_state else default_partners(reference)


def _partner_layers(reference: str, partner: str) -> tuple[str, dict[str, np.ndarray], bool]:
    if partner == TWIN:
        about, layers = models.untrained_twin(reference)
        return about, layers, False
    return models.get(partner).description, models.activations(partner)["test"], models.get(partner).trained


@st.cache_data(max_entries=64, show_spinner="Regressing the pixels out of every layer…")
def curves(reference_key: str, reference: str, partner_key: str, partner: str) -> Curves:
    """CKA and dCKA between layer i of the reference and layer i of the partner, every i (cached per
    pair of registry keys)."""
    inputs = inputs_view(models.digits().X_test, models.digits().X_test.shape[0])
    ours = models.activations(reference)["test"]
    about, theirs, trained = _partner_layers(reference, partner)
    cka, dcka = [], []
    for layer, x in ours.items():
        y = theirs[layer]
        cka.append(float(linear_cka(x, y)))
        dcka.append(deconfounded_cka_of(LayerView.of(x, f"{reference}.{layer}"), LayerView.of(y, f"{partner}.{layer}"),
                                        inputs))
    return Curves(partner, about, trained, tuple(cka), tuple(dcka))


def partner_curves(reference: str, chosen: list[str]) -> list[Curves]:
    key = models.get(reference).key
    return [curves(key, reference, TWIN if p == TWIN else models.get(p).key, p) for p in chosen]


@st.cache_data(max_entries=32)
def _pixel_cka(reference_key: str, reference: str) -> tuple[float, ...]:
    pixels = models.digits().X_test
    return tuple(float(linear_cka(pixels, x)) for x in models.activations(reference)["test"].values())


def pixel_cka(reference: str) -> tuple[float, ...]:
    """CKA between each layer of the reference and the pixels themselves: how much of the layer's
    similarity structure the inputs already have."""
    return _pixel_cka(models.get(reference).key, reference)


def curves_figure(layers: tuple[str, ...], found: list[Curves], pixels: tuple[float, ...]) -> go.Figure:
    """CKA (dashed) and dCKA (solid) per layer, one colour per partner (:func:`partner_colour`); the layers' CKA
    with the pixels in grey."""
    fig = go.Figure()
    for c in found:
        colour = partner_colour(layers, c.partner)
        for name, values, dash in (("CKA", c.cka, "dash"), ("dCKA", c.dcka, "solid")):
            fig.add_trace(go.Scatter(
                x=list(layers), y=list(values), mode="lines+markers", name=f"{c.partner}: {name}",
                line=dict(color=colour, dash=dash), legendgroup=c.partner,
                hovertemplate=f"{c.partner}<br>%{{x}}: {name} = %{{y:.3f}}<extra></extra>"))
    fig.add_trace(go.Scatter(x=list(layers), y=list(pixels), mode="lines+markers", name="CKA with the pixels",
                             line=dict(color=figures.COLOURS["original"], dash="dot"),
                             hovertemplate="%{x}: CKA with the pixels = %{y:.3f}<extra></extra>"))
    fig.update_layout(title="Layer i of the reference against layer i of each partner", xaxis_title="layer",
                      yaxis_title="similarity", **figures.LAYOUT)
    fig.update_yaxes(range=[0, 1.02])
    return fig


def comparison(found: list[Curves], i: int) -> tuple[Curves, Curves] | None:
    """(a trained partner, the least similar control by CKA) at ``layer``, the pair the takeaway
    contrasts; None unless both kinds are shown."""
    trained = [c for c in found if c.trained]
    controls = [c for c in found if not c.trained]
    if not trained or not controls:
        return None
    return trained[0], max(controls, key=lambda c: c.cka[i])


def takeaway(reference: str, layers: tuple[str, ...], found: list[Curves], i: int) -> str:
    """The page's point in one sentence, with this view's numbers at layer ``i``."""
    pair = comparison(found, i)
    if pair is None:
        c = found[0]
        return (f"At {layers[i]}, CKA between {reference} and {c.partner} is {c.cka[i]:.2f}; with the digits' pixels "
                f"regressed out (dCKA) it is {c.dcka[i]:.2f}. Show a trained and an untrained partner together to "
                "see how much of the similarity the inputs alone explain.")
    trained, control = pair
    share_cka, share_dcka = control.cka[i] / trained.cka[i], control.dcka[i] / trained.dcka[i]
    verdict = ("so most of what made it look similar was the inputs" if share_dcka < share_cka / 1.5 else
               "so the inputs explain little of its similarity here")
    return (f"At {layers[i]}, CKA between {reference} and {control.partner} (never learned the task) is "
            f"{control.cka[i]:.2f}, against {trained.cka[i]:.2f} with {trained.partner}: the control keeps {share_cka:.0%} of the "
            f"retrained network's similarity. With the pixels regressed out (dCKA: {control.dcka[i]:.2f} against "
            f"{trained.dcka[i]:.2f}) it keeps {share_dcka:.0%}, {verdict}.")


def frame(layers: tuple[str, ...], found: list[Curves], pixels: tuple[float, ...]):
    """The chart's values as a table: one row per layer."""
    import pandas as pd

    table = {"layer": list(layers), "CKA with the pixels": list(pixels)}
    for c in found:
        table[f"{c.partner}: CKA"] = list(c.cka)
        table[f"{c.partner}: dCKA"] = list(c.dcka)
    return pd.DataFrame(table)
