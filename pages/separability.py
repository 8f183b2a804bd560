"""Separability: move one class along a direction every linear read-out ignores; CKA still falls."""
import numpy as np
import streamlit as st

from cka_core import RepresentationError
from cka_core.separability import class_margins, normal_alignment
from cka_core.translation import translation_cka_from_terms
from ui import compute, figures, limits
from ui import separability as sep
from ui.shell import inside_app_frame
from ui.sidebar import current_representation
from ui.widgets import choose, fmt, log_slider, page_header, percent, theory

inside_app_frame()

SHORT = {"orthogonal": "orthogonal v", "orthant": "orthogonal, non-negative v", "random": "random v"}


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
        "drawn from the closed form (general form in the notes), so every $c$ is exact.\n\n"
        "The probe is a ridge read-out fitted once on the original representation; $w_k$ are its class "
        "normals in the original feature space. The orthogonal direction is a random vector in their null "
        "space. Davari et al. (CIFAR-10, last hidden layer) solve a QP for a *nearly* orthogonal direction "
        "with every coordinate positive, so that a post-ReLU representation stays non-negative; the "
        "non-negative option here solves a linear programme ($\\min r^\\top x$ s.t. $Wx = 0$, $x \\ge 1$) "
        "for an *exactly* orthogonal one, which exists for every hidden layer of the sample models but not "
        "for their logits. Neither is orthogonal to the network's own next layer, so the network's accuracy "
        "may change.",
        "Davari et al., *Reliability of CKA as a Similarity Measure in Deep Learning*, ICLR 2023 (Theorem 1, "
        "Corollary 4, §4.2 (c)); general form of the limit derived in notes/papers.md §2.1.",
    )


page_header(
    "Separability: a classifier sees no change, CKA sees a big one",
    "Move every example of one class a distance *c* along a direction orthogonal to all decision normals "
    "of a linear classifier. The classifier's scores, accuracy and margins stay exactly the same for every "
    "*c*, yet linear CKA between the original and the moved representation falls towards a limit far below "
    "1 (Davari et al., Corollary 4). A random direction takes CKA down just as far, but it does change the "
    "classifier's decisions.",
)

rep = current_representation()
X = rep.X
n, d = X.shape
st.caption(f"Representation: **{rep.label}** — {n} examples × {d} features.")

if not rep.has_labels:
    st.info("This page needs class labels. Pick a sample model or a synthetic set in the sidebar, or upload an "
            ".npz that holds an array named 'labels' (or 'y') with one class per row next to the activations.")
    show_theory()
    st.stop()

limits.require(X, rep.y, limits.SEPARABILITY)
classes = [int(k) for k in np.unique(rep.y)]
controls, results = st.columns([1, 2.4], gap="large")
with controls:
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

if len(classes) < 2:
    results.error(f"The labels hold a single class ({classes[0]}); separability needs at least two. "
                  "Pick another source in the sidebar.")
    show_theory()
    st.stop()

try:
    v = sep.direction(rep.key, rep, kind, seed)
except RepresentationError as error:
    results.error(f"{error}")
    show_theory()
    st.stop()
contrast_kind = sep.CONTRAST[kind]
try:
    v_contrast = sep.direction(rep.key, rep, contrast_kind, seed)
except RepresentationError:
    v_contrast = None

fitted = compute.probe(rep.key, rep)
normals = sep.normals(rep.key, rep)
mask = compute.moved_mask(rep.key, rep, "class", 0, 0.0, cls, 0)
scale = sep.rms_scale(rep.key, X)
terms = compute.terms(rep.key, X, mask, v, ("class", cls), ("separability", kind, seed))
cka_now = translation_cka_from_terms(terms, c * scale)
limit = sep.limit(rep.key, X, cls, mask)
moved = compute.translated(X, mask, (c * scale) * v)

scores_before = sep.base_scores(rep.key, rep)
scores_after = compute.probe_scores(fitted, moved)
acc_before, acc_after = compute.probe_score(fitted, X, rep.y), compute.probe_score(fitted, moved, rep.y)
margin_before = float(class_margins(scores_before, rep.y, fitted.classes_).min())
margin_after = float(class_margins(scores_after, rep.y, fitted.classes_).min())
score_change = float(np.abs(scores_after - scores_before).max())
alignment = normal_alignment(normals, v)

with results:
    row = st.columns(4)
    row[0].metric("Linear CKA", fmt(cka_now), delta=f"{cka_now - 1:+.4f}",
                  help="CKA between the original and the moved representation; closed form, exact.")
    row[1].metric("CKA limit as c → ∞", fmt(limit),
                  help="ρ(1−ρ)‖μ_class − μ_rest‖² / ‖Σ‖_F: the same for every direction v.")
    row[2].metric("Probe accuracy", percent(acc_after), **sep.delta(100 * (acc_after - acc_before), digits=1, unit=" pts"),
                  help=f"The linear probe applied to the moved representation; {percent(acc_before)} before.")
    row[3].metric("Probe margin (smallest)", fmt(margin_after), **sep.delta(margin_after - margin_before, digits=4),
                  help="min over examples of (true-class score − best other class score); negative when some "
                       f"example is misclassified. {fmt(margin_before)} before.")

    row = st.columns(4)
    if compute.network_supported(rep):
        net_before, net_after = sep.network_base(rep.key, rep), compute.accuracy_from(rep, moved)
        row[0].metric("Network accuracy", percent(net_after), **sep.delta(100 * (net_after - net_before), digits=1, unit=" pts"),
                      help=f"The network continues from the moved representation; {percent(net_before)} before.")
    else:
        net_before = net_after = None
        row[0].metric("Network accuracy", "—",
                      help="Needs a sample model as the source, at a layer the network can continue from "
                           "(for the RNNs: the final hidden state).")
    row[1].metric("Score change (max)", f"{score_change:.1e}",
                  help="max over examples and classes of |s_k(x moved) − s_k(x)|. For an orthogonal v only "
                       "rounding is left.")
    if v_contrast is not None:
        contrast_terms = compute.terms(rep.key, X, mask, v_contrast, ("class", cls), ("separability", contrast_kind, seed))
        contrast_cka = translation_cka_from_terms(contrast_terms, c * scale)
        contrast_acc = compute.probe_score(fitted, compute.translated(X, mask, (c * scale) * v_contrast), rep.y)
        name = "Random v" if contrast_kind == "random" else "Orthogonal v"
        row[2].metric(f"{name}: CKA", fmt(contrast_cka), delta=f"{contrast_cka - 1:+.4f}",
                      help="For contrast: the same class moved by the same c along the other kind of direction.")
        row[3].metric(f"{name}: probe", percent(contrast_acc),
                      **sep.delta(100 * (contrast_acc - acc_before), digits=1, unit=" pts"),
                      help="For contrast: the probe on the class moved along the other kind of direction.")
    else:
        contrast_terms = None
        row[2].metric("Orthogonal v: CKA", "—", help="No direction is orthogonal to every normal here.")

    st.caption(f"Class {cls}: {int(mask.sum())} of {n} examples move (ρ = {mask.mean():.3f}). "
               f"Largest |cos(w_k, v)| over the probe's normals: {alignment:.1e}.")
    if net_before is not None and kind != "random":
        network = sep.network_curve(rep.key, rep, cls, kind, seed, scale)
        st.info(f"v is orthogonal to the probe's decision normals, **not** to the network's next layer, so the "
                f"network's own accuracy can change: {percent(net_before)} before, {percent(net_after)} at this c, "
                f"{percent(network[-1])} at c = 10⁴ (dotted curve). The probe and CKA tell different stories, and "
                "neither is the network's behaviour.")

    grid = sep.GRID
    cka_curves = {f"CKA, {SHORT[kind]}": translation_cka_from_terms(terms, grid * scale)}
    accuracy_curves = {f"probe, {SHORT[kind]}": (grid, sep.probe_curve(rep.key, rep, cls, kind, seed, scale))}
    if contrast_terms is not None:
        cka_curves[f"CKA, {SHORT[contrast_kind]}"] = translation_cka_from_terms(contrast_terms, grid * scale)
        accuracy_curves[f"probe, {SHORT[contrast_kind]}"] = (grid, sep.probe_curve(rep.key, rep, cls, contrast_kind, seed, scale))
    if net_before is not None:
        accuracy_curves[f"network, {SHORT[kind]}"] = (sep.NETWORK_GRID, sep.network_curve(rep.key, rep, cls, kind, seed, scale))
    st.plotly_chart(
        sep.curves_figure(grid, cka_curves, accuracy_curves, c=c, cka_now=cka_now, limit=limit,
                          title=(f"Class {cls} moves along v: CKA falls, the probe does not notice" if kind != "random"
                                 else f"Class {cls} moves along a random v: CKA falls, and the probe does notice")),
        key="separability_curves", config=figures.CHART_CONFIG,
    )

mean, axes = sep.view_axes(rep.key, rep, cls, kind, seed)
shown = limits.plot_rows(n, keep=mask)  # at most limits.MAX_PLOT_POINTS points go to the browser
st.plotly_chart(
    sep.view_figure((X[shown] - mean) @ axes, (moved[shown] - mean) @ axes, rep.y[shown], mask[shown],
                    rows=shown if shown.size < n else None,
                    title=(f"Class {cls} slides along v and keeps every probe score" if kind != "random" else
                           f"Class {cls} slides along a random v: it also moves along w<sub>{cls}</sub>, across the boundaries"),
                    axis_titles=(f"along w<sub>{cls}</sub> (class {cls}'s decision normal)",
                                 "along v" if kind != "random" else "along v (part ⟂ w)")),
    key="separability_view", config=figures.CHART_CONFIG,
)
st.caption(f"Horizontal axis: class {cls}'s probe score direction $w_{{{cls}}}$; vertical axis: the translation "
           "direction v. An orthogonal v moves the class straight up, so its scores do not change; a random v "
           "also moves it sideways, across the boundaries.")
if shown.size < n:
    st.caption(limits.plot_caption(shown.size, n))

show_theory()
