"""Home: what CKA is, why it is popular, and where it misleads."""
import streamlit as st

from ui.pitfalls import edits
from ui.sources import models
from ui.frame import navigation
from ui.frame.shell import inside_app_frame
from ui.frame.widgets import in_rows, takeaway

inside_app_frame()


def main() -> None:
    st.title("CKA Pitfalls Explorer")
    headline()
    what_cka_is()
    pitfall_map()
    try_this()


def headline() -> None:
    edit = edits.showcase()
    takeaway(st.container(key="takeaway"),
             "A CKA value can move while the network's behaviour does not move at all. "
             + edits.showcase_takeaway(edit))
    with st.container(key="proof", border=True):
        row = st.columns([1, 1, 1, 1.3], vertical_alignment="center")
        row[0].metric("Predictions changed", f"{edit.predictions_changed} of {edit.n}")
        row[1].metric("Largest logit change", f"{edit.max_logit_change:.0e}")
        row[2].metric(f"Linear CKA of {edit.layer}", f"{edit.cka_layer:.3f}",
                      help="Between the layer's activations before and after the edit (1 = unchanged).")
        row[3].page_link(navigation.by_path("pages/function_preserving.py").path, label="Make this edit yourself",
                         icon=":material/tune:", query_params={"fp_spread": str(edits.SHOWCASE_SPREAD)})


def what_cka_is() -> None:
    st.markdown(
        """
**Centered Kernel Alignment (CKA)** compares two representations of the same examples — two layers,
two networks, a network and a brain — by asking how similar their *example-by-example similarity
structures* are. Take the activations $X \\in \\mathbb{R}^{n\\times d_1}$ and $Y \\in \\mathbb{R}^{n\\times d_2}$
of $n$ examples, centre each feature, and compare the two Gram matrices $XX^\\top$ and $YY^\\top$:
"""
    )
    st.latex(r"\mathrm{CKA}(X, Y) = \frac{\lVert Y_c^\top X_c \rVert_F^2}{\lVert X_c^\top X_c \rVert_F\,"
             r"\lVert Y_c^\top Y_c \rVert_F} \in [0, 1]")
    st.markdown(
        """
It became the default similarity index because it is invariant to rotations and isotropic scaling of
either representation, works across widths, and — unlike CCA — passes Kornblith et al.'s sanity check:
the same layer of two networks trained from different seeds is found as the most similar layer 99% of
the time.

Davari et al. (ICLR 2023) show that translating a handful of points, moving one class along a direction a classifier
ignores, or rescaling neurons can take CKA from 1 to nearly 0 — and that a network can be fine-tuned to
any target CKA map with its accuracy intact. Later work found more: CKA barely moves when components a classifier
needs are deleted (Ding et al.), calls a block of layers identical because of a few dominant examples (Nguyen et
al.), credits training with similarity the inputs alone explain (Cui et al.), and changes with how a layer is pooled.
Each page of this tool lets you do that yourself.
"""
    )


def pitfall_map() -> None:
    st.subheader("The map of pitfalls")
    for group, pages in navigation.pitfall_map().items():
        st.markdown(f"**{group}**")
        for pair in in_rows(pages, 2):
            for column, page in zip(st.columns(2), pair):
                with column.container(border=True):
                    st.page_link(page.path, label=page.title, icon=page.icon)
                    st.caption(page.lesson)


def try_this() -> None:
    st.subheader("Try this in 30 seconds")
    st.markdown(
        f"""
1. Open **Outliers**. The sidebar already holds the last hidden layer of a trained MLP on handwritten
   digits ({len(models.digits().y_test)} test images).
2. Keep *What moves* on **One point** and drag *c* to the right: CKA between the original and the
   edited layer falls towards its limit of about 0.004, while the network's accuracy barely changes.
3. Switch the direction to **Null space of the next layer**: now the network's outputs do not change
   at all — yet CKA falls just the same.
"""
    )


main()
