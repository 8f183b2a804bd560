"""Confounders: CKA counts the similarity two networks inherit from their inputs; deconfounded CKA
regresses the inputs out (Cui et al. 2022)."""
import streamlit as st

from cka_core import MEASURES, RepresentationError
from ui.pitfalls import confounders as con
from ui.frame import figures
from ui.sources import models
from ui.frame.references import cite, derivation
from ui.frame.shell import inside_app_frame
from ui.frame.widgets import page_header, takeaway, theory

inside_app_frame()


def main() -> None:
    lesson = page_header(
        "Confounded by the inputs: untrained networks that look trained",
        "Every layer of every network is a function of the same inputs, so two networks share some similarity "
        "before either learns anything: digits that are close as pixels stay close in the first layers of any "
        "network. CKA counts that as similarity. Deconfounded CKA (dCKA) first regresses the pixels' similarity out of "
        "each layer's, then compares what is left.",
    )
    reference, chosen, layer = controls()
    if not chosen:
        st.info("Pick at least one network to compare the reference with.")
        show_theory()
        return
    layers = models.get(reference).layers
    i = layers.index(layer)
    try:
        found = con.partner_curves(reference, chosen)
    except RepresentationError as error:
        st.error(f"{error}", icon=":material/error:")
        show_theory()
        return
    pixels = con.pixel_cka(reference)
    takeaway(lesson, con.takeaway(reference, layers, found, i))
    with st.container(key="proof"):
        figures.chart(con.curves_figure(layers, found, pixels), key="con_curves")
    for column, c in zip(st.columns(min(len(found), 4)), found[:4]):
        column.metric(**c.metric(layers, i))
    st.caption(f"Dashed: linear CKA; solid: dCKA, the same layers with the pixels' Gram matrix regressed out of "
               f"theirs (the {len(models.digits().y_test)} test digits). Dotted grey: CKA between each layer of "
               f"{reference} and the pixels themselves, how much of the layer's similarity structure the inputs "
               "already have. A partner keeps its dCKA only where it shares more with the reference than the inputs "
               "give every network.")
    with st.expander("Values behind the chart"):
        st.dataframe(con.frame(layers, found, pixels), hide_index=True, key="con_values")
    st.page_link("pages/compare.py", label="Every pair of layers, with intervals: open Compare with dCKA",
                 icon=":material/compare:", query_params=compare_link(reference, chosen))
    show_theory()


def controls() -> tuple[str, list[str], str]:
    left, middle, right = st.columns([1, 0.7, 2], gap="medium")
    names = con.references()
    with left:
        reference = st.selectbox("Reference network (trained)", names, index=names.index("mlp_seed0"),
                                 key=con.REFERENCE, bind="query-params",
                                 help="Each of its layers is compared with the same layer of every partner. "
                                      "Networks with a layer that is the same for every test digit (the "
                                      "pixel-by-pixel RNNs, whose first steps read only blank pixels) are not "
                                      "offered: CKA is undefined there. Changing it keeps the layer and the "
                                      "partners wherever they still fit.")
    changed = con.follow_the_reference(reference)
    with middle:
        layer = st.selectbox("Layer for the numbers", models.get(reference).layers, key=con.LAYER,
                             bind="query-params",
                             help="The layer the metrics and the takeaway read; the chart shows every layer.")
    with right:
        chosen = st.multiselect(
            "Partners", con.partners(reference), default=con.partners_default(reference), key=con.PARTNERS,
            bind="query-params", help="Networks with the reference's layers: another seed (trained on the same task), the untrained "
                 f"network (random initialisation) and one trained on shuffled labels (chance on test). "
                 f"'{con.TWIN}': the reference's architecture at its random initialisation.")
    if changed:
        st.info(changed, icon=":material/sync_alt:")
    return reference, chosen, layer


def compare_link(reference: str, chosen: list[str]) -> dict:
    """Compare's URL parameters for the reference against the first registered partner, with dCKA."""
    partner = next((p for p in chosen if p != con.TWIN), reference)
    return {"cmp_a_model": reference, "cmp_b_model": partner, "cmp_measure": MEASURES["deconfounded_cka"].label}


def show_theory() -> None:
    theory(
        [
            r"\hat\beta = \arg\min_{\beta_0,\beta_1}\big\lVert K - \beta_0\mathbf{1}\mathbf{1}^\top - \beta_1 K_0\big\rVert_F^2,"
            r"\qquad R = K - \hat\beta_0\mathbf{1}\mathbf{1}^\top - \hat\beta_1 K_0",
            r"\mathrm{dCKA}(X, Y) = \frac{\langle H R_{X+} H,\ H R_{Y+} H\rangle_F}"
            r"{\lVert H R_{X+} H\rVert_F\,\lVert H R_{Y+} H\rVert_F},\qquad R_+ = V\max(\Lambda, 0)V^\top",
        ],
        "K is a layer's Gram matrix (the similarity of every pair of examples in that layer), K₀ the pixels'. The "
        "regression takes out of K whatever an affine function of K₀ explains; R₊ keeps the residual's positive "
        "semi-definite part so that it is a kernel again, and dCKA is CKA of the two residual kernels. Regressing out "
        "an affine function only removes part of what the inputs explain (two different linear read-outs of the "
        "pixels keep some shared similarity), so dCKA is a correction, not a guarantee. Davari et al. observe that "
        "CKA between early layers of networks trained differently stays high whatever the training; Cui et al. trace "
        "it to the inputs and propose this correction.",
        [cite("cui2022", "§3, deconfounding"), cite("davari2023", "§4.1"),
         f"the derivation and properties in {derivation('8.2')}"],
    )


main()
