"""Function-preserving edits: the network computes exactly the same function, CKA says it changed."""
import streamlit as st

from cka_core import RepresentationError
from ui.pitfalls import edits
from ui.frame import figures
from ui.sources import models
from ui.frame.references import cite, derivation
from ui.frame.shell import inside_app_frame
from ui.frame.widgets import change, choose, fmt, log_slider, page_header, percent, points_delta, takeaway, theory

inside_app_frame()


def main() -> None:
    lesson = page_header(
        "Function-preserving edits: same network, different CKA map",
        "Edit a trained ReLU network so that its outputs stay exactly the same: rescale the neurons of a hidden "
        "layer and undo it in the next layer, translate examples along a direction the next layer cannot see, or "
        "mix a layer with an invertible matrix and unmix it in the next layer. Every logit and every prediction "
        "is unchanged, yet the CKA between the original and the edited layer, and the network's whole "
        "layer × layer CKA map, can move a long way.",
    )
    controls_column, results = st.columns([1, 2.4], gap="large")
    with controls_column:
        name, layer, edit, params, precision = controls()
    base = edits.baseline(name, precision)
    result, info, error = None, None, None
    try:
        if edit == "rescale":
            result = edits.rescale(name, precision, layer, **params)
        elif edit == "invertible":
            result = edits.invertible(name, precision, layer, **params)
        elif edits.has_null_space(name, layer):
            result = edits.translate(name, precision, layer, **params)
        else:
            info = edits.no_null_space_note(name, layer)
    except RepresentationError as exc:
        error = str(exc)
    with results:
        if result is None:
            if error is not None:
                st.error(error)
            if info is not None:
                st.info(info)
            row = st.columns(2)
            row[0].metric("Model accuracy", percent(base.accuracy), help=f"On the {len(base.logits)} test digits.")
            row[1].metric("Layers in the map", str(len(base.names)))
        else:
            takeaway(lesson, edits.takeaway(result, name))
            edit_results(name, layer, precision, result)
    maps(name, base, result)
    show_theory()


def controls() -> tuple[str, str, str, dict, str]:
    name = st.selectbox("Network", edits.networks(), key="fp_model", bind="query-params",
                        help="The zoo's ReLU MLPs, trained on the digits (mlp_deep has 5 hidden layers), and the ReLU "
                             "networks fine-tuned on the Manipulate page in this session.")
    st.caption(models.get(name).description)
    hidden = edits.hidden_layers(name)
    layer = st.selectbox("Hidden layer", hidden, index=len(hidden) - 1, key=f"fp_layer_{models.get(name).architecture}",
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
            neuron = st.slider("Neuron", 0, edits.last_neuron(name, layer), edits.first_live_neuron(name, layer),
                               key=f"fp_neuron_w{width}",
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
    seed = int(st.slider("Random seed", 0, 20, 0, key="fp_seed", bind="query-params",
                         help="Seeds the scales, the moved examples and direction, or the matrix M."))
    precision = choose(st.radio, "Arithmetic", {p: p for p in edits.PRECISIONS}, key="fp_precision",
                       horizontal=True,
                       help="float64 shows the edit is exact (changes at roundoff, ~1e-13); float32 is how the "
                            "network was trained, and its roundoff (~1e-5 on logits up to ~50) grows with κ.")
    if edit == "rescale":
        params = dict(mode=mode, spread=float(spread), seed=seed, neuron=int(neuron), k=float(k))
    elif edit == "translate":
        params = dict(fraction=float(fraction), c=float(c), seed=seed)
    else:
        params = dict(condition=float(kappa), seed=seed)
    return name, layer, edit, params, precision


def edit_results(name: str, layer: str, precision: str, result: edits.EditResult) -> None:
    st.caption(f"Edit of **{name} · {layer}** ({precision}): {result.detail}.")
    row = st.container(key="proof").columns(4)
    row[0].metric("Largest logit change", f"{result.max_logit_change:.1e}",
                  help=f"max over the {result.n} test digits and 10 classes of |logit edited − logit original|; "
                       f"the largest |logit| is {result.max_logit:.1f}.")
    row[1].metric("Accuracy (original)", percent(result.accuracy_before), help="On the test digits.")
    row[2].metric("Accuracy (edited)", percent(result.accuracy_after),
                  delta=points_delta(result.accuracy_after, result.accuracy_before), delta_color="off",
                  delta_arrow="off", help=f"{result.predictions_changed} of {result.n} predictions changed.")
    row[3].metric(f"Linear CKA, {layer}", fmt(result.cka_layer), delta=change(result.cka_layer, 1.0),
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
    figures.chart(edits.per_layer_figure(result), key="fp_per_layer", into=left)
    figures.chart(edits.map_change_figure(result, title="CKA map: edited − original"), key="fp_map_diff", into=right)


def maps(name: str, base: edits.Baseline, result: edits.EditResult | None) -> None:
    columns = st.columns(2)
    figures.chart(edits.map_figure(base, base.map, f"{name}: CKA map, original"), key="fp_map_before",
                  into=columns[0])
    if result is not None:
        figures.chart(edits.map_figure(base, result.map_after, f"{name}: CKA map, edited"), key="fp_map_after",
                      into=columns[1])
    st.caption(f"Linear CKA between every pair of layers of {name} on the {len(base.logits)} test digits. The "
               "edited network computes the same logits; only the edited layer's row and column of the map change.")


def show_theory() -> None:
    theory(
        [
            r"\mathrm{ReLU}(Dz) = D\,\mathrm{ReLU}(z)\quad\text{for } D=\mathrm{diag}(d),\ d_i>0",
            r"\Rightarrow\; (W_2D^{-1})\,\mathrm{ReLU}(DW_1x + Db_1) + b_2 = W_2\,\mathrm{ReLU}(W_1x+b_1) + b_2",
            r"W_2 v = 0 \;\Rightarrow\; W_2(h + c\,v) + b_2 = W_2 h + b_2",
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
        [cite("davari2023", "Theorem 1, §4.2: subset translation and invertible linear maps"),
         cite("kornblith2019", "§2–3: CKA is invariant to orthogonal transforms and isotropic scaling, not to invertible "
                               "linear maps"),
         cite("dinh2017", "ReLU rescaling reparametrisations"), f"the three edits derived in {derivation('4')}"],
    )


main()
