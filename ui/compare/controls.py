"""The measure row of the Compare page: the measure, its estimator or declared parameters (read
from the registry), what dCKA regresses out, and the heatmap's colour scale, gathered into
:class:`Settings`, everything the values depend on besides the data."""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import streamlit as st

from cka_core import MEASURES, RepresentationError

from ..frame.widgets import choose
from .sides import MIN_EXAMPLES, Side

ESTIMATORS = {"biased": "Biased", "debiased": "Debiased", "minibatch": "Minibatch"}
#: Measures reached through another's control rather than the Measure box (linear CKA's Estimator radio).
ESTIMATOR_MEASURES = frozenset({"linear_cka_debiased"})


@dataclass(frozen=True)
class Settings:
    """The measure and its estimator options: everything the values depend on besides the data."""

    measure: str  # a MEASURES key
    batch_size: int | None = None
    minibatch_debiased: bool = True
    parameters: tuple[tuple[str, float], ...] = ()  # (name, value) of each of MEASURES[measure].parameters
    confounder: str | None = None  # what dCKA regresses out: INPUTS, or "a:<layer>" (a layer of side A)
    confounder_about: str = ""
    inputs: np.ndarray | None = field(default=None, repr=False, compare=False)  # the confounder's values

    def options(self) -> dict:
        """Keyword arguments of ``similarity_matrix`` and the inference functions."""
        out = {} if self.inputs is None else {"inputs": self.inputs}
        if self.batch_size is not None:
            out["batch_size"] = self.batch_size
            out["debiased"] = self.minibatch_debiased
        out.update(self.parameters)
        return out

    @property
    def key(self) -> tuple:
        return (self.measure, self.batch_size, self.minibatch_debiased if self.batch_size else None, self.parameters,
                self.confounder)

    @property
    def info(self):
        return MEASURES[self.measure]

    @property
    def label(self) -> str:
        if self.batch_size is not None:
            return f"Minibatch linear CKA (b = {self.batch_size}{', unbiased HSIC' if self.minibatch_debiased else ''})"
        if self.parameters:
            return self.info.parameters[0].shown.format(*(value for _, value in self.parameters))
        if self.confounder is not None:
            return f"dCKA ({self.confounder_about} regressed out)"
        return self.info.label

    def export(self) -> dict:
        return {"measure": self.measure, "measure_label": self.label,
                "debiased": self.measure == "linear_cka_debiased" or (self.batch_size is not None and self.minibatch_debiased),
                "batch_size": self.batch_size, **{p.name: None for info in MEASURES.values() for p in info.parameters},
                **{k: v for k, v in self.options().items() if k not in ("batch_size", "debiased", "inputs")},
                "confounder": self.confounder_about or None}


def measure_choices() -> dict[str, str]:
    """The Measure box: every registered measure (in registry order) but those reached through another's
    control and those that compare class outputs only (``on_outputs``: the page compares any two
    layers), by its label."""
    return {k: info.label for k, info in MEASURES.items() if k not in ESTIMATOR_MEASURES and not info.on_outputs}


def parameter_control(parameter) -> float:
    """The control of one declared measure parameter (a ``MeasureParameter``), bound to the URL as
    ``cmp_<name>``: a slider over its range, or a select box over its choices."""
    key = f"cmp_{parameter.name}"
    if parameter.choices:
        return st.selectbox(parameter.label, parameter.choices, index=parameter.choices.index(parameter.default),
                            key=key, bind="query-params", help=parameter.help)
    value = st.slider(parameter.label, parameter.low, parameter.high, parameter.default, step=parameter.step,
                      key=key, bind="query-params", help=parameter.help)
    return round(float(value), 2)


def measure_controls(a: Side, b: Side) -> tuple[Settings, bool]:
    """The measure row: (the measure and its estimator options, whether the heatmap's colours are
    fitted to its values)."""
    cols = st.columns([1.1, 1.6, 1.2, 0.9], vertical_alignment="bottom")
    with cols[3]:
        fitted = colour_scale_control()
    return _measure_settings(cols, a, b), fitted


INPUTS = "inputs"


def confounder_choices(a: Side, b: Side) -> dict[str, str]:
    """What dCKA can regress out here: the inputs, when both sides read the same ones and they are
    numbers (pixels, arrays), then every layer of side A."""
    choices = {}
    if a.inputs is not None and b.inputs is not None and (a.inputs is b.inputs or np.array_equal(a.inputs, b.inputs)):
        choices[INPUTS] = a.inputs_about
    return choices | {f"a:{layer}": f"layer {layer} of A" for layer in a.names}


def _confounder_settings(measure: str, a: Side, b: Side) -> Settings:
    choices = confounder_choices(a, b)
    choice = choose(st.selectbox, "Regress out", choices, key="cmp_confounder",
                    help="Deconfounded CKA removes, from each layer's Gram matrix, what an affine function of this "
                         "one's explains: the similarity the two sides inherit from it. The inputs are the usual "
                         "choice (Cui et al.); texts have no numeric inputs, so pick an early layer of A instead (it "
                         "then leaves the heatmap).")
    inputs = a.inputs if choice == INPUTS else a.layers[choice[2:]]
    return Settings(measure, confounder=choice, confounder_about=choices[choice], inputs=inputs)


def without_confounder(a: Side, settings: Settings) -> Side:
    """Side A without the layer dCKA regresses out (its row would be undefined: nothing is left of a
    layer once it is regressed out of itself)."""
    if settings.confounder is None or not settings.confounder.startswith("a:"):
        return a
    layer = settings.confounder[2:]
    kept = [k for k in a.names if k != layer]
    if not kept:
        raise RepresentationError(f"regressing out {layer}, side A's only layer, leaves nothing of A to compare: pick "
                                  "more layers of A, or regress out the inputs.")
    return replace(a, key=f"{a.key}-{layer}", layers={k: a.layers[k] for k in kept},
                   shapes={k: a.shapes[k] for k in kept})


def _measure_settings(cols, a: Side, b: Side) -> Settings:
    n = a.n
    with cols[0]:
        measure = choose(st.selectbox, "Measure", measure_choices(), key="cmp_measure",
                         help="Linear CKA is the usual choice; the others answer different questions (see Theory).")
    if measure == "linear_cka":
        with cols[1]:
            estimator = choose(st.radio, "Estimator", ESTIMATORS, key="cmp_estimator", horizontal=True,
                               help="Biased: Kornblith et al.; debiased: unbiased HSIC (Song et al.), no inflation "
                                    "when features outnumber examples; minibatch: HSIC summed over batches, ratio "
                                    "at the end (Nguyen et al.).")
        if estimator == "debiased":
            return Settings("linear_cka_debiased")
        if estimator == "minibatch":
            with cols[2]:
                top = max(MIN_EXAMPLES + 4, min(n, 1024))
                batch = st.slider("Batch size b", MIN_EXAMPLES, top, min(64, top), step=4, key="cmp_batch",
                                  bind="query-params", help="Consecutive batches of b examples; a last batch with "
                                  "fewer than 4 examples is dropped.")
                unbiased = st.checkbox("Unbiased HSIC per batch", True, key="cmp_minibatch_debiased",
                                       bind="query-params",
                                       help="Nguyen et al.'s choice: the value barely depends on b.")
            return Settings("linear_cka", batch_size=int(batch), minibatch_debiased=bool(unbiased))
        return Settings("linear_cka")
    if MEASURES[measure].needs_inputs:
        with cols[1]:
            return _confounder_settings(measure, a, b)
    if MEASURES[measure].parameters:
        with cols[1]:
            values = tuple((p.name, parameter_control(p)) for p in MEASURES[measure].parameters)
        return Settings(measure, parameters=values)
    with cols[1]:
        st.caption(MEASURES[measure].description)
    return Settings(measure)


def colour_scale_control() -> bool:
    """Whether the heatmap's colours span the values shown instead of the measure's whole range."""
    return st.toggle("Fitted colours", key="cmp_fit_colours", bind="query-params",
                     help="Off: the measure's whole range (0 to 1 for CKA), comparable across heatmaps. On: the "
                          "lowest to the highest value shown, so that close values (0.82 and 0.96) differ in colour.")
