"""Separability: move one class along a direction every linear read-out ignores; CKA still falls."""
import streamlit as st

from cka_core import RepresentationError
from ui.frame import figures
from ui.sources import limits
from ui.pitfalls import separability as sep
from ui.frame.references import cite, derivation
from ui.frame.shell import inside_app_frame
from ui.sources.sidebar import current_representation
from ui.frame.widgets import change, choose, fmt, log_slider, page_header, percent, points_steady_delta, steady_delta, takeaway, theory

inside_app_frame()


def main() -> None:
    lesson = page_header(
        "Separability: the probe's decisions stay put, CKA falls",
        "Move every example of one class a distance *c* along a direction orthogonal to all decision normals "
        "of a linear probe. The probe's scores, accuracy and margins stay exactly the same for every *c*, yet "
        "linear CKA between the original and the moved representation falls towards a limit far below 1 "
        "(Davari et al., Corollary 4). The network's own later layers are not that probe: they may read the "
        "moved direction, so its accuracy is shown too. A random direction takes CKA down just as far, but it "
        "changes the probe's decisions.",
    )
    rep = current_representation()
    st.caption(f"Representation: **{rep.label}** — {rep.X.shape[0]} examples × {rep.X.shape[1]} features.")
    if not rep.has_labels:
        st.info("This page needs class labels. Pick a sample model or a synthetic set in the sidebar, or upload an "
                ".npz that holds an array named 'labels' (or 'y') with one class per row next to the activations.")
        show_theory()
        return
    limits.require(rep.X, rep.y, limits.SEPARABILITY)
    classes = sep.classes(rep)
    controls_column, results = st.columns([1, 2.4], gap="large")
    with controls_column:
        cls, kind, seed, c = controls(classes)
    if len(classes) < 2:
        results.error(f"The labels hold a single class ({classes[0]}); separability needs at least two. "
                      "Pick another source in the sidebar.")
    else:
        try:
            shown = sep.view(rep, cls, kind, seed, c)
        except RepresentationError as error:
            results.error(f"{error}")
        else:
            takeaway(lesson, sep.takeaway(shown, c))
            with results:
                with st.container(key="proof"):
                    metrics(shown)
                figures.chart(shown.curves, key="separability_curves")
            two_dimensional_view(shown)
    show_theory()


def controls(classes: list[int]) -> tuple[int, str, int, float]:
    cls = st.selectbox("Class that moves", classes, key="sep_class", bind="query-params",
                       help="Every example of this class is translated by c·v; the others stay put.")
    kind = choose(st.radio, "Direction v", sep.DIRECTIONS, key="sep_direction",
                  help="Orthogonal: a random unit vector in the null space of the probe's class normals. "
                       "Non-negative: exactly orthogonal too, with every coordinate positive, so a post-ReLU "
                       "representation stays ≥ 0 (as in Davari et al.'s CIFAR-10 experiment). Random: "
                       "any direction, for contrast.")
    seed = st.slider("Random seed", 0, 20, 0, key="sep_seed", bind="query-params",
                     help="Seed of the random direction (and of the choice inside the null space).")
    c = log_slider("c", key="sep_log_c", low=-2.0, high=4.0, default=0.0,
                   help="Translation distance in units of the RMS distance of an example from the mean.")
    return int(cls), kind, int(seed), c


def metrics(shown: sep.SeparabilityView) -> None:
    row = st.columns(4)
    row[0].metric("Linear CKA", fmt(shown.cka), delta=change(shown.cka, 1.0),
                  help="CKA between the original and the moved representation; closed form, exact.")
    row[1].metric("CKA limit as c → ∞", fmt(shown.limit),
                  help="ρ(1−ρ)‖μ_class − μ_rest‖² / ‖Σ‖_F: the same for every direction v.")
    row[2].metric("Probe accuracy", percent(shown.probe_after), **points_steady_delta(shown.probe_after, shown.probe_before),
                  help=f"The linear probe applied to the moved representation; {percent(shown.probe_before)} before.")
    row[3].metric("Probe margin (smallest)", fmt(shown.margin_after),
                  **steady_delta(shown.margin_after, shown.margin_before, digits=4),
                  help="min over examples of (true-class score − best other class score); negative when some "
                       f"example is misclassified. {fmt(shown.margin_before)} before.")
    row = st.columns(4)
    if shown.network_before is not None:
        row[0].metric("Network accuracy", percent(shown.network_after),
                      **points_steady_delta(shown.network_after, shown.network_before),
                      help=f"The network continues from the moved representation; {percent(shown.network_before)} "
                           "before.")
    else:
        row[0].metric("Network accuracy", "—",
                      help="Needs a sample model as the source, at a layer the network can continue from "
                           "(for the RNNs: the final hidden state).")
    row[1].metric("Score change (max)", f"{shown.score_change:.1e}",
                  help="max over examples and classes of |s_k(x moved) − s_k(x)|. For an orthogonal v only "
                       "rounding is left.")
    if shown.contrast is not None:
        row[2].metric(f"{shown.contrast.name}: CKA", fmt(shown.contrast.cka), delta=change(shown.contrast.cka, 1.0),
                      help="For contrast: the same class moved by the same c along the other kind of direction.")
        row[3].metric(f"{shown.contrast.name}: probe", percent(shown.contrast.probe_accuracy),
                      **points_steady_delta(shown.contrast.probe_accuracy, shown.probe_before),
                      help="For contrast: the probe on the class moved along the other kind of direction.")
    else:
        row[2].metric("Orthogonal v: CKA", "—", help="No direction is orthogonal to every normal here.")
    st.caption(f"Class {shown.cls}: {shown.moved_count} of {shown.n} examples move (ρ = {shown.moved_fraction:.3f}). "
               f"Largest |cos(w_k, v)| over the probe's normals: {shown.alignment:.1e}.")
    if shown.network_before is not None and shown.kind != "random":
        st.info(f"v is orthogonal to the probe's decision normals, **not** to the network's next layer, so the "
                f"network's own accuracy can change: {percent(shown.network_before)} before, "
                f"{percent(shown.network_after)} at this c, {percent(shown.network_at_largest_c)} at c = 10⁴ "
                "(dotted curve). The probe and CKA tell different stories, and neither is the network's behaviour.")


def two_dimensional_view(shown: sep.SeparabilityView) -> None:
    figures.chart(shown.view, key="separability_view")
    st.caption(f"Horizontal axis: class {shown.cls}'s probe score direction $w_{{{shown.cls}}}$; vertical axis: the "
               "translation direction v. An orthogonal v moves the class straight up, so its scores do not change; a "
               "random v also moves it sideways, across the boundaries.")
    if shown.plot_note:
        st.caption(shown.plot_note)


def show_theory() -> None:
    theory(
        [
            r"s_k(x) = w_k^\top x + b_k,\qquad w_k^\top v = 0\ \ \forall k \;\Longrightarrow\; "
            r"s_k(x + c\,v) = s_k(x)\quad\text{for every } c",
            r"\operatorname{margin}(x) = s_{y(x)}(x) - \max_{k\neq y(x)} s_k(x)\ \text{ and }\ "
            r"\hat y(x) = \arg\max_k s_k(x)\ \text{ are unchanged}",
            r"\lim_{c\to\infty}\mathrm{CKA}_{\mathrm{lin}}\bigl(X,\;X + c\,t\,v^\top\bigr) = "
            r"\frac{\rho(1-\rho)\,\lVert \mu_{\text{class}} - \mu_{\text{rest}}\rVert^2}{\lVert\Sigma\rVert_F}",
        ],
        "**Corollary 4 (Davari et al.).** If a set of examples (here one class) is separated from the rest by "
        "linear classifiers with normals $w_k$, and it is translated by $c\\,v$ with $v \\perp w_k$ for every "
        "$k$, every class score $s_k$ shifts by $c\\,w_k^\\top v = 0$: predictions, accuracy and margins are "
        "exactly preserved for every $c$. Theorem 1 still applies, so linear CKA between the original and "
        "the translated representation falls to the limit above, where $t$ is the indicator of the moved "
        "class, $\\rho$ its fraction of the examples, $\\mu$ the class and rest means and $\\Sigma$ the "
        "covariance of $X$. The limit does not depend on $v$: a random direction takes CKA to the same value, "
        "but it also changes the class scores, so at large $c$ the moved class is misclassified. The curve is "
        "drawn from the closed form (general form in docs/theory.md §3), so every $c$ is exact.\n\n"
        "The probe is a ridge read-out fitted once on the original representation; $w_k$ are its class "
        "normals in the original feature space. The orthogonal direction is a random vector in their null "
        "space. Davari et al. (CIFAR-10, last hidden layer) solve a QP for a *nearly* orthogonal direction "
        "with every coordinate positive, so that a post-ReLU representation stays non-negative; the "
        "non-negative option here solves a linear programme ($\\min r^\\top x$ s.t. $Wx = 0$, $x \\ge 1$) "
        "for an *exactly* orthogonal one, which exists for every hidden layer of the sample models but not "
        "for their logits. Neither is orthogonal to the network's own next layer, so the network's accuracy "
        "may change.",
        [cite("davari2023", "Theorem 1, Corollary 4, §4.2 (c)"),
         f"the general form of the limit is derived in {derivation('3')}, the probe's invariance in "
         f"{derivation('3.5')}"],
    )


main()
