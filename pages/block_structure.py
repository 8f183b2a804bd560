"""Block structure: a run of layers that CKA calls identical, carried by the few examples that dominate their
first principal component (Nguyen, Raghu & Kornblith 2021, 2022)."""
import streamlit as st

from cka_core import RepresentationError
from ui.pitfalls import block_structure as blk
from ui.frame import figures
from ui.sources import models
from ui.frame.references import cite, derivation
from ui.frame.shell import inside_app_frame
from ui.frame.widgets import change, fmt, page_header, takeaway, theory

inside_app_frame()


def main() -> None:
    lesson = page_header(
        "Block structure and the examples that dominate it",
        "Networks that are large for their data often show a *block* in their own CKA map: many consecutive "
        "layers whose representations CKA calls nearly identical. Nguyen, Raghu & Kornblith found that the block's "
        "layers share one dominant principal component, carried by a small group of examples far from the mean "
        "along it. Remove those examples, recompute the map on the rest, and compare with removing as many random "
        "ones. If the block goes with the dominant examples, it said more about them than about what the layers "
        "compute.",
    )
    controls_column, results = st.columns([1, 2.4], gap="large")
    with controls_column:
        chosen = controls()
    try:
        shown = blk.view(*chosen)
    except RepresentationError as error:
        results.error(str(error))
        show_theory()
        return
    takeaway(lesson, blk.takeaway(shown))
    with results:
        with st.container(key="proof"):
            metrics(shown)
        maps(shown)
    note = blk.paper_note(shown)
    if note:
        st.info(note)
    if shown.block is not None:
        figures.chart(blk.curve_figure(shown), key="blk_curve")
        st.caption(f"Mean CKA between the block's layers (solid) and between them and the other layers (dotted), "
                   f"after removing the m most dominant test digits along {shown.layer}'s first principal component "
                   f"(red) or the first m of a random order (grey, seed {shown.seed}); every second m.")
    spectrum_and_examples(shown)
    show_theory()


def controls() -> tuple[str, float, str, int, int]:
    name = st.selectbox("Network", blk.networks(), key="blk_model", bind="query-params",
                        help="Trained ReLU MLPs of the zoo (and those fine-tuned on the Manipulate page). "
                             f"{blk.NETWORK} is large for the digits; the small ones show what no block looks like.")
    st.caption(models.get(name).description)
    threshold = st.slider("Block threshold", 0.80, 0.99, blk.THRESHOLD, step=0.01, key="blk_threshold",
                          bind="query-params",
                          help="The block is the longest run of consecutive layers in which every pair has CKA at "
                               "least this high (on every test digit), with one layer or more left outside it.")
    options = list(blk.layers(name))
    layer = st.selectbox("Layer defining dominance", options, index=options.index(blk.default_layer(name, threshold)),
                         key=f"blk_layer_{models.get(name).architecture}", bind="query-params",
                         help="Examples are ranked by |projection| on this layer's first principal axis. It opens "
                              "on the block layer with the largest share of variance on that axis.")
    most, default = blk.m_range(name)
    m = st.slider("Remove the top-m dominant examples", 0, most, default, key="blk_m", bind="query-params",
                  help=f"How many of the {blk.n_examples(name)} test digits to remove before recomputing the map: "
                       "the m furthest from the mean along the chosen layer's first principal axis, and, for the "
                       "baseline, m random ones.")
    seed = st.number_input("Random removal: seed", 0, 999, 0, key="blk_seed", bind="query-params",
                           help="The random baseline removes the first m digits of a random order drawn with this seed.")
    return name, threshold, layer, int(m), int(seed)


def metrics(shown: blk.BlockView) -> None:
    if shown.block is None:
        st.warning(f"No block at CKA {shown.threshold:.2f}: no two neighbouring layers of {shown.name} are that "
                   "similar. Lower the threshold.")
        return
    a, d, r = shown.all_examples, shown.dominant, shown.random
    row = st.columns(4)
    row[0].metric("Block, all digits", fmt(a.inside, 3),
                  help=f"Mean CKA between the layers of the block {shown.block_names}, on all {shown.n} test digits.")
    row[1].metric(f"Top {shown.m} removed", fmt(d.inside, 3), delta=change(d.inside, a.inside, 3),
                  help=f"Mean CKA inside the block on the map without the {shown.m} most dominant digits along "
                       f"{shown.layer}'s first principal axis.")
    row[2].metric(f"{shown.m} random removed", fmt(r.inside, 3), delta=change(r.inside, a.inside, 3),
                  help=f"Mean CKA inside the block without {shown.m} random digits (seed {shown.seed}).")
    row[3].metric(f"Pairs ≥ {shown.threshold:.2f}", blk.pairs_fraction(shown.dominant_pairs),
                  delta=blk.verdict(shown), delta_color="off", delta_arrow="off",
                  help=f"Pairs of the block's layers still at CKA ≥ {shown.threshold:.2f} without the top {shown.m}, "
                       "of all its pairs: the block's definition asks for every one. It stays (all), frays (some fall "
                       "below, their mean does not) or dissolves (their mean falls below the threshold).")
    st.caption(blk.outside_caption(shown))


def maps(shown: blk.BlockView) -> None:
    left, right = st.columns(2)
    figures.chart(blk.map_figure(shown, shown.map_all, f"{shown.name}: every test digit"), key="blk_map_all", into=left)
    figures.chart(blk.map_figure(shown, shown.map_removed, f"without the top {shown.m} dominant"),
                  key="blk_map_removed", into=right)
    st.caption(f"Debiased linear CKA between every pair of layers of {shown.name}, on all {shown.n} test digits (left) "
               f"and on the {shown.remaining} left after removing the {shown.m} most dominant along {shown.layer}'s "
               "first principal axis (right). The orange square is the block found on every digit.")


def spectrum_and_examples(shown: blk.BlockView) -> None:
    figures.chart(blk.shares_figure(shown), key="blk_shares")
    st.caption("λ₁/Σλ of each layer on every test digit (orange: the block). Nguyen et al. find the block's layers "
               "share a dominant first principal component.")
    if shown.m == 0:
        return
    left, right = st.columns([2.4, 1])
    figures.chart(blk.examples_figure(shown), key="blk_examples", into=left)
    right.dataframe(blk.class_frame(shown), hide_index=True, key="blk_classes")
    right.caption(f"Classes of the {shown.m} removed dominant digits: {blk.makeup(shown)}.")


def show_theory() -> None:
    theory(
        [
            r"\mathrm{share}(X) = \frac{\lambda_1}{\sum_i \lambda_i},\qquad "
            r"\lambda_i \text{ the eigenvalues of } \tfrac1n X_c^\top X_c",
            r"s_j = \big|\langle x_j - \bar x,\ v_1\rangle\big|,\qquad v_1 \text{ the first principal axis of } X",
            r"D_m = \{\text{the } m \text{ examples of largest } s_j\},\qquad "
            r"C^{(m)}_{ab} = \mathrm{CKA}\big(X_a[\bar D_m],\ X_b[\bar D_m]\big)",
            r"\mathrm{inside} = \underset{a \ne b \in B}{\mathrm{mean}}\ C^{(m)}_{ab},\qquad "
            r"\mathrm{outside} = \underset{a \in B,\ b \notin B}{\mathrm{mean}}\ C^{(m)}_{ab}",
            r"X_c \approx s_1 u_1 v_1^\top,\ Y_c \approx t_1 w_1 z_1^\top \ \Rightarrow\ "
            r"\mathrm{CKA}(X, Y) \approx \langle u_1, w_1\rangle^2",
        ],
        "A layer whose first principal component holds most of its variance is close to a line: each example is "
        "its score along $v_1$. Two such layers have CKA close to the squared correlation of those scores (last "
        "line, the eigen form of linear CKA with one dominant term), so if a few examples sit far out on both, "
        "the two layers look alike whatever the rest of the examples do. The page ranks the examples by $s_j$ on "
        "one layer, removes the top $m$ (the set $D_m$, $\\bar D_m$ the rest), recomputes the whole map $C^{(m)}$ "
        "on what is left and compares the block $B$ found on every example with the same number of random "
        "examples removed. A block that is a property of the layers survives the random removal and the "
        "dominant one alike.",
        [cite("nguyen2021", "the block structure and its first principal component"),
         cite("nguyen2022", "dominant datapoints"),
         cite("kornblith2019", "the eigen form of linear CKA"),
         f"the formulas, the block rule and the zoo network in {derivation('8.4')}"],
    )


main()
