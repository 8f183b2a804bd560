"""Home: what CKA is, why it is popular, and where it misleads."""
import streamlit as st
from ui.shell import inside_app_frame

inside_app_frame()

st.title("CKA Pitfalls Explorer")
st.markdown(
    """
**Centered Kernel Alignment (CKA)** compares two representations of the same examples — two layers,
two networks, a network and a brain — by asking how similar their *example-by-example similarity
structures* are. Take the activations $X \\in \\mathbb{R}^{n\\times d_1}$ and $Y \\in \\mathbb{R}^{n\\times d_2}$
of $n$ examples, centre each feature, and compare the two Gram matrices $XX^\\top$ and $YY^\\top$:
"""
)
st.latex(r"\mathrm{CKA}(X, Y) = \frac{\lVert Y_c^\top X_c \rVert_F^2}{\lVert X_c^\top X_c \rVert_F\,\lVert Y_c^\top Y_c \rVert_F} \in [0, 1]")
st.markdown(
    """
It became the default similarity index because it is invariant to rotations and isotropic scaling of
either representation, works across widths, and — unlike CCA — passes Kornblith et al.'s sanity check:
the same layer of two networks trained from different seeds is found as the most similar layer 99% of
the time.

**But a CKA value can move a lot while the network's behaviour does not move at all.** Davari et al.
(ICLR 2023) show that translating a handful of points, moving one class along a direction a classifier
ignores, or rescaling neurons can take CKA from 1 to nearly 0 — and that a network can be fine-tuned to
any target CKA map with its accuracy intact. Each page of this tool lets you do that yourself.
"""
)
st.subheader("The map of pitfalls")
PITFALLS = [
    ("pages/outliers.py", "Outliers", ":material/scatter_plot:",
     "Translating one point — or a subset — far enough drives CKA to a limit near 0, whatever the direction, "
     "even one the network cannot see (Davari et al. Thm 1, Cor. 3)."),
    ("pages/invariances.py", "Invariances", ":material/sync_alt:",
     "CKA ignores rotations and isotropic scaling, but not per-feature scaling or invertible linear maps; "
     "CCA ignores all of them. Which measure moves under which transformation?"),
    ("pages/separability.py", "Separability", ":material/call_split:",
     "Move a class along a direction every decision boundary ignores: the classifier is untouched, CKA "
     "collapses (Davari et al. Cor. 4)."),
    ("pages/function_preserving.py", "Function-preserving edits", ":material/tune:",
     "Rescale neurons across a ReLU, or translate in the next layer's null space: the network computes "
     "exactly the same function, yet its layer-by-layer CKA map changes."),
]
for row_start in range(0, len(PITFALLS), 2):
    for column, (path, title, icon, text) in zip(st.columns(2), PITFALLS[row_start : row_start + 2]):
        with column.container(border=True):
            st.page_link(path, label=title, icon=icon)
            st.caption(text)

st.subheader("Try this in 30 seconds")
st.markdown(
    """
1. Open **Outliers**. The sidebar already holds the last hidden layer of a trained MLP on handwritten
   digits (360 test images).
2. Keep *What moves* on **One point** and drag *c* to the right: CKA between the original and the
   edited layer falls towards its limit of about 0.004, while the network's accuracy barely changes.
3. Switch the direction to **Null space of the next layer**: now the network's outputs do not change
   at all — yet CKA falls just the same.
"""
)
