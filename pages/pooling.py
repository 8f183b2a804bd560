"""Pooling: how a layer's output becomes rows decides CKA, shown on the zoo's CNN and recurrent networks."""
import streamlit as st

from ui.frame import figures
from ui.pitfalls import pooling as pool
from ui.frame.references import derivation
from ui.frame.shell import inside_app_frame
from ui.frame.widgets import page_header, takeaway, theory

inside_app_frame()


def main() -> None:
    lesson = page_header(
        "Pooling: how a layer becomes rows decides the answer",
        "CKA compares matrices with one row per example, but a convolution outputs a feature map per example and "
        "a recurrent network a state per step. Flatten it, average it, keep one step, or make every position a row: "
        "each is a different representation, and CKA can rank the same networks differently under each. The zoo's "
        "CNN and its three recurrent networks (each reads a digit row by row, 8 steps of 64 units), on the 359 test "
        "digits.",
    )
    reference = st.selectbox("Recurrent network to compare the others with", pool.RNNS, key="pool_reference",
                             bind="query-params",
                             help="Its sequence of hidden states is compared with the other two networks' under every "
                                  "reduction.")
    rnn, cnn = pool.rnn_view(reference), pool.cnn_view()
    takeaway(lesson, pool.takeaway(cnn, rnn))
    with st.container(key="proof"):
        figures.chart(pool.rnn_figure(rnn), key="pool_rnn")
    headers = pool.difference_columns(rnn)
    st.dataframe(pool.rnn_rows(rnn), hide_index=True, key="pool_rnn_table",
                 column_config={**{n: st.column_config.NumberColumn(format="%.3f") for n in rnn.others},
                                **{k: st.column_config.NumberColumn(label, help=about, format="%+.3f")
                                   for k, (label, about) in headers.items()}})
    st.caption(f"Bars and table: linear CKA with {rnn.reference}; whiskers and the low / high columns are "
               f"{pool.CONFIDENCE:.0%} intervals from {pool.RESAMPLES} bootstrap resamples of the 359 digits (each "
               "digit keeps its 8 steps; the same resamples for both networks, so the difference's interval is "
               "paired). 'closest' names a network only where the difference's interval excludes 0. Mean: the "
               "average hidden state over the 8 rows of the digit. First / last step: the state after the first / "
               "last row. Every step as a row: 8 rows per example (8 × 359 rows, not independent). Flatten: the 8 "
               "states side by side (512 features). The first step has read a single row of pixels, so all three "
               "networks agree there: that similarity is the inputs' (see Confounders).")
    cnn_section(cnn)
    show_theory()


def cnn_section(cnn) -> None:
    st.subheader("The CNN's feature maps: flatten, average pool, or every position as a row")
    left, right = st.columns([1.5, 1], gap="medium")
    figures.chart(pool.cnn_maps_figure(cnn), key="pool_cnn_maps", into=left)
    figures.chart(pool.cnn_twin_figure(cnn), key="pool_cnn_twin", into=right)
    shapes = "; ".join(f"{k} {'×'.join(map(str, s))}" for k, s in cnn.shapes.items())
    st.caption(f"Per-example outputs: {shapes}. Flatten keeps where each feature fired; average pooling keeps only "
               "how much each channel fired; every position as a row compares the local feature vectors (layers of "
               "different spatial sizes then have different rows, —). Against the untrained twin "
               f"({cnn.twin_about}), the same layers read from nearly identical to clearly different.")


def show_theory() -> None:
    theory(
        [
            r"\text{flatten: } x_i = \operatorname{vec} M^{(i)} \in \mathbb{R}^{chw},\qquad "
            r"\text{average pool: } x_i = \tfrac{1}{hw}\textstyle\sum_p M^{(i)}_{:,p} \in \mathbb{R}^{c}",
            r"\text{mean over steps: } x_i = \tfrac{1}{T}\textstyle\sum_{t} h^{(i)}_t,\qquad "
            r"\text{every step as a row: } \{h^{(i)}_t\}_{i \le n,\ t \le T} \in \mathbb{R}^{nT \times d}",
        ],
        "Every reduction is a different map from the layer's output to rows, and linear CKA is not invariant to any "
        "of them: averaging discards where a feature fired, flattening keeps it (so a shift looks like a change), "
        "and making every position or step a row turns one example into many dependent rows whose similarity "
        "structure is dominated by within-example variation. A comparison of two networks is a comparison of two "
        "networks *under a reduction*; report it with the numbers. The same reductions apply to your own models on "
        "the Compare page.",
        [f"the reductions in {derivation('1.6')}"],
    )


main()
