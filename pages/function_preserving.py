"""Function-preserving edits: the network computes exactly the same function, CKA says it changed."""
import numpy as np
import streamlit as st

import sample_models
from cka_core import RepresentationError
from ui import edits, figures
from ui.shell import inside_app_frame
from ui.widgets import choose, fmt, log_slider, page_header, percent, theory

inside_app_frame()

page_header(
    "Function-preserving edits: same network, different CKA map",
    "Edit a trained ReLU network so that its outputs stay exactly the same: rescale the neurons of a hidden "
    "layer and undo it in the next layer, translate examples along a direction the next layer cannot see, or "
    "mix a layer with an invertible matrix and unmix it in the next layer. Every logit and every prediction "
    "is unchanged, yet the CKA between the original and the edited layer, and the network's whole "
    "layer × layer CKA map, can move a long way.",
)

controls, results = st.columns([1, 2.4], gap="large")
with controls:
    name = st.selectbox("Network", edits.RELU_MODELS, key="fp_model", bind="query-params",
                        help="The zoo's ReLU MLPs, trained on the digits; mlp_deep has 5 hidden layers.")
    st.caption(sample_models.available()[name])
    hidden = edits.hidden_layers(name)
    layer = st.selectbox("Hidden layer", hidden, index=len(hidden) - 1, key=f"fp_layer_{name}",
                         bind="query-params", help="The layer whose representation the edit changes.")
    edit = choose(st.radio, "Edit", edits.EDITS, key="fp_edit")
    if edit == "rescale":
        mode = choose(st.radio, "Scales", {"spread": "Random spread", "one": "One neuron × k"}, key="fp_scale_mode",
                      horizontal=True)
        if mode == "spread":
            spread = st.slider("Spread", 0.0, 3.0, 1.0, step=0.05, key="fp_spread", bind="query-params",
                               help="d_i = exp(spread · g_i) with g_i ~ N(0, 1): 0 is no edit, 3 spans e^±9.")
            neuron, k = 0, 1.0
        else:
            width = edits.layer_width(name, layer)
            neuron = st.slider("Neuron", 0, width - 1, edits.first_live_neuron(name, layer), key=f"fp_neuron_w{width}",
                               bind="query-params", help="Which unit of the layer is scaled (a dead ReLU changes nothing).")
            k = log_slider("k", key="fp_log_k", low=-3.0, high=3.0, default=1.0,
                           help="The neuron's activations are multiplied by k > 0 and its outgoing weights divided by k.")
            spread = 0.0
    elif edit == "translate":
        fraction = st.slider("Fraction of examples moved", 0.01, 1.0, 0.2, step=0.01, key="fp_fraction",
                             bind="query-params", help="Moving every example (1.0) is a constant shift: CKA ignores it.")
        c = log_slider("c", key="fp_log_c", low=-2.0, high=3.0, default=0.5,
                       help="Distance moved, in units of the layer's typical distance of an example from its mean.")
    else:
        kappa = log_slider("Condition number κ", key="fp_log_kappa", low=0.0, high=6.0, default=1.0,
                           help="κ = 1 is an orthogonal map (CKA invariant); larger κ stretches some directions "
                                "and squeezes others.")
    seed = st.slider("Random seed", 0, 20, 0, key="fp_seed", bind="query-params",
                     help="Seeds the scales, the moved examples and direction, or the matrix M.")
    precision = choose(st.radio, "Arithmetic", {p: p for p in edits.PRECISIONS}, key="fp_precision",
                       horizontal=True,
                       help="float64 shows the edit is exact (changes at roundoff, ~1e-13); float32 is how the "
                            "network was trained, and its roundoff (~1e-5 on logits up to ~50) grows with κ.")

base = edits.baseline(name, precision)
result, info, error = None, None, None
try:
    if edit == "rescale":
        result = edits.rescale(name, precision, layer, mode, float(spread), int(seed), int(neuron), float(k))
    elif edit == "invertible":
        result = edits.invertible(name, precision, layer, float(round(kappa, 6)), int(seed))
    elif edits.has_null_space(name, layer):
        result = edits.translate(name, precision, layer, float(fraction), float(c), int(seed))
    else:
        outputs, inputs = edits.reader_shape(name, layer)
        last_out, last_in = edits.reader_shape(name, hidden[-1])
        info = (f"**No invisible direction after {layer}.** The next layer maps {inputs} units to {outputs}; its "
                f"{outputs}×{inputs} weight has full column rank, so W v = 0 only for v = 0 and every translation "
                f"of {layer} changes what the next layer computes. Pick the last hidden layer, "
                f"**{hidden[-1]}**, read out by {last_out} logits: the {last_in} − {last_out} = {last_in - last_out}"
                "-dimensional null space of that read-out is invisible to the network.")
except RepresentationError as exc:
    error = str(exc)

with results:
    if result is None:
        if error is not None:
            st.error(error)
        if info is not None:
            st.info(info)
        row = st.columns(2)
        row[0].metric("Model accuracy", percent(base.accuracy), help=f"On the {base.logits.shape[0]} test digits.")
        row[1].metric("Layers in the map", str(len(base.names)))
    else:
        st.caption(f"Edit of **{name} · {layer}** ({precision}): {result.detail}.")
        row = st.columns(4)
        row[0].metric("Largest logit change", f"{result.max_logit_change:.1e}",
                      help=f"max over the {result.n} test digits and 10 classes of |logit edited − logit original|; "
                           f"the largest |logit| is {result.max_logit:.1f}.")
        row[1].metric("Accuracy (original)", percent(result.accuracy_before), help="On the test digits.")
        row[2].metric("Accuracy (edited)", percent(result.accuracy_after),
                      delta=f"{100 * (result.accuracy_after - result.accuracy_before):+.1f} pts", delta_color="off",
                      delta_arrow="off",
                      help=f"{result.predictions_changed} of {result.n} predictions changed.")
        row[3].metric(f"Linear CKA, {layer}", fmt(result.cka_layer),
                      delta=f"{result.cka_layer - 1:+.4f}",
                      help=f"Linear CKA between {layer}'s original and edited representations (1 = unchanged).")
        if result.predictions_changed:
            st.error(f"{result.predictions_changed} of {result.n} predictions changed: in {precision} the edit is no "
                     f"longer function-preserving (largest logit change {result.max_logit_change:.2e}). Roundoff "
                     "grows with the condition number of the edit; switch the arithmetic to float64 or lower κ.")
        elif result.relative_change > edits.RELATIVE_TOLERANCE:
            st.warning(f"The logits moved by {result.max_logit_change:.1e} ({result.relative_change:.0e} of the "
                       f"largest logit): exact in real arithmetic, but {precision} roundoff grows with the edit's "
                       "condition number. The predictions are still identical.")
        if result.note:
            st.info(result.note)
        left, right = st.columns([1, 1.2])
        left.plotly_chart(
            figures.bars(list(result.names), [float(v) for v in result.per_layer],
                         title="CKA(original layer, edited layer)", y_title="linear CKA", y_range=(0, 1.15),
                         colours=[figures.COLOURS["moved"] if n_ == layer else figures.COLOURS["linear_cka"]
                                  for n_ in result.names]),
            key="fp_per_layer", config=figures.CHART_CONFIG,
        )
        right.plotly_chart(edits.difference_heatmap(result.map_after - result.map_before, list(result.names),
                                                    title="CKA map: edited − original"),
                           key="fp_map_diff", config=figures.CHART_CONFIG)

names = list(base.names)
maps = st.columns(2)
maps[0].plotly_chart(figures.heatmap(np.asarray(base.map), names, names, title=f"{name}: CKA map, original"),
                     key="fp_map_before", config=figures.CHART_CONFIG)
if result is not None:
    maps[1].plotly_chart(figures.heatmap(result.map_after, names, names, title=f"{name}: CKA map, edited"),
                         key="fp_map_after", config=figures.CHART_CONFIG)
st.caption(f"Linear CKA between every pair of layers of {name} on the {base.logits.shape[0]} test digits. The "
           "edited network computes the same logits; only the edited layer's row and column of the map change.")

theory(
    [
        r"\mathrm{ReLU}(Dz) = D\,\mathrm{ReLU}(z)\quad\text{for } D=\mathrm{diag}(d),\ d_i>0"
        r"\;\Rightarrow\; (W_2D^{-1})\,\mathrm{ReLU}(DW_1x + Db_1) + b_2 = W_2\,\mathrm{ReLU}(W_1x+b_1) + b_2",
        r"W_2 v = 0 \;\Rightarrow\; W_2(h + c\,v) + b_2 = W_2 h + b_2,\qquad"
        r"\lim_{c\to\infty}\mathrm{CKA}(H, H + c\,t v^\top) = \frac{\rho(1-\rho)\,\lVert\mu_{\text{moved}}-\mu_{\text{rest}}\rVert^2}{\lVert\Sigma\rVert_F}",
        r"H' = HM,\quad W_2' = W_2M^{-\top}\;\Rightarrow\; H'W_2'^{\top} = HMM^{-1}W_2^{\top} = HW_2^{\top}",
        r"\mathrm{CKA}(H, HA) = \frac{\lVert A^{\top}H_c^{\top}H_c\rVert_F^2}{\lVert H_c^{\top}H_c\rVert_F\,\lVert A^{\top}H_c^{\top}H_cA\rVert_F}"
        r"\;=1 \text{ for every } H \iff A = \alpha Q,\ Q^{\top}Q = I",
    ],
    "Rows of $H$ are examples, $H_c$ is $H$ centred, and a linear layer computes $hW^\\top + b$. **Rescaling:** ReLU "
    "is positively homogeneous, so scaling neuron $i$'s weights and bias by $d_i>0$ scales its activation by "
    "$d_i$, and dividing column $i$ of the next weight by $d_i$ undoes it: the layer becomes $HD$, every other "
    "layer is untouched. **Null-space translation:** when the next layer has fewer outputs than inputs (e.g. "
    "10 logits reading 64 units), it ignores a subspace (here 54-dimensional); moving a fraction $\\rho$ of the examples "
    "along it is invisible to the network, while CKA falls towards Davari et al.'s limit, which does not "
    "depend on the direction. **Invertible map:** any invertible $M$ applied to the representation the next "
    "layer reads ($H$ after the activation) is undone by $W_2M^{-\\top}$. Linear CKA is invariant only to "
    "orthogonal maps and isotropic scaling ($A = \\alpha Q$), so the anisotropic $D$ and an $M$ with condition "
    "number $\\kappa>1$ lower it, although the network's function, accuracy and every logit are identical.",
    "Davari et al., *Reliability of CKA as a Similarity Measure in Deep Learning*, ICLR 2023 (Theorem 1, §4.2: "
    "subset translation and invertible linear maps); Kornblith et al., *Similarity of Neural Network "
    "Representations Revisited*, ICML 2019 (§2–3: CKA is invariant to orthogonal transforms and isotropic scaling, "
    "not to invertible linear maps); Dinh et al., *Sharp Minima Can Generalize for Deep Nets*, ICML 2017 (ReLU "
    "rescaling reparametrisations).",
)
