"""Outliers: translate one point, a random subset or a class, and watch CKA fall."""
import numpy as np
import streamlit as st

from cka_core import RepresentationError, rbf_cka
from cka_core.translation import translation_cka_from_terms
from ui import compute, figures, limits
from ui.sidebar import current_representation
from ui.widgets import choose, fmt, log_slider, page_header, percent, theory
from ui.shell import inside_app_frame

inside_app_frame()

page_header(
    "Outliers: move a few points, lose the similarity",
    "Translate some examples of the chosen representation by a distance *c* along a direction and compare "
    "the result with the original. The network (or a linear read-out) may not notice at all, yet CKA can "
    "drop from 1 to almost 0. The curve is drawn from the closed form of Davari et al.'s Theorem 1, so "
    "every value of *c* is exact and instant.",
)

rep = current_representation()
X = rep.X
n, d = X.shape
st.caption(f"Representation: **{rep.label}** — {n} examples × {d} features.")
limits.require(X, rep.y, limits.OUTLIERS)

controls, results = st.columns([1, 2.4], gap="large")
with controls:
    options = {"point": "One point", "fraction": "Random fraction", "class": "One class"}
    if not rep.has_labels:
        del options["class"]
    what = choose(st.radio, "What moves", options, key="out_what",
                  help="Corollary 3 (one outlier), Theorem 1 (a random subset of fraction ρ), Corollary 4 (a class).")
    index = st.slider("Example index", 0, n - 1, 0, key="out_index", bind="query-params", disabled=what != "point")
    fraction = st.slider("Fraction ρ", 0.01, 0.5, 0.1, step=0.01, key="out_fraction", bind="query-params",
                         disabled=what != "fraction")
    classes = [int(c) for c in np.unique(rep.y)] if rep.has_labels else [0]
    cls = st.selectbox("Class", classes, key="out_class", bind="query-params", disabled=what != "class")
    kinds = {k: v for k, v in compute.DIRECTIONS.items()
             if (k != "null_next" or rep.has_model) and (k != "probe_orthogonal" or rep.has_labels)}
    kind = choose(st.selectbox, "Direction", kinds, key="out_direction",
                        help="The null space of the next layer leaves the network's output exactly unchanged; "
                             "a direction orthogonal to the decision normals leaves the read-out's decisions unchanged.")
    seed = st.slider("Random seed", 0, 20, 0, key="out_seed", bind="query-params",
                     help="Seed of the random direction and of the random subset.")
    c = log_slider("c", key="out_log_c", low=-2.0, high=4.0, default=0.0,
                   help="Translation distance in units of the typical distance of an example from the mean.")

try:
    mask = compute.moved_mask(rep.key, rep, what, index, fraction, cls, seed)
    v = compute.direction(rep.key, rep, kind, seed)
except RepresentationError as error:
    results.error(str(error))
    st.stop()

scale = compute.rms_scale(rep.key, X)
terms = compute.terms(rep.key, X, mask, v, (what, index, fraction, cls, seed), (kind, seed))
moved = compute.translated(X, mask, (c * scale) * v)
cka_now = translation_cka_from_terms(terms, c * scale)

with results:
    row = st.columns(3)
    row[0].metric("Linear CKA", fmt(cka_now), delta=f"{cka_now - 1:+.4f}", help="Closed form, exact.")
    row[1].metric("Debiased CKA", fmt(compute.paired_linear_cka(X, moved, debiased=True)), help="Unbiased HSIC (Song et al. 2012).")
    rbf_skipped = limits.kernel_rows_note(n, "RBF CKA")
    row[2].metric("RBF CKA (σ = median)", "—" if rbf_skipped else fmt(rbf_cka(X, moved)),
                  help=rbf_skipped or "Gaussian kernel, bandwidth = median distance.")
    row = st.columns(3)
    row[0].metric("Limit as c → ∞", fmt(terms.limit), help="ρ(1−ρ)‖μ_moved − μ_rest‖² / ‖Σ‖_F; independent of the direction.")
    base_model, base_probe = compute.baseline_accuracies(rep.key, rep)
    now_model = compute.accuracy_from(rep, moved)
    row[1].metric("Network accuracy", percent(now_model),
                  delta=None if now_model is None else f"{100 * (now_model - base_model):+.1f} pts",
                  help="The model continues from the moved representation (needs a sample model source).")
    now_probe = compute.probe_accuracy_on(rep, moved)
    row[2].metric("Linear probe accuracy", percent(now_probe),
                  delta=None if now_probe is None else f"{100 * (now_probe - base_probe):+.1f} pts",
                  help="A ridge read-out fitted on the original representation, applied to the moved one.")

    grid = np.logspace(-2, 4, 241)
    curve = translation_cka_from_terms(terms, grid * scale)
    st.plotly_chart(
        figures.curve(grid, {"Linear CKA": curve}, title=f"CKA vs c ({int(mask.sum())} of {n} examples move)",
                      x_title="c", y_title="CKA(X, X moved)", log_x=True, marker=(c, {"Linear CKA": cka_now}),
                      hlines={"limit": terms.limit}, y_range=(0, 1.05)),
        key="outliers_curve", config=figures.CHART_CONFIG,
    )

    if rbf_skipped:
        st.caption(rbf_skipped)

mean, axes = compute.pca_basis(rep.key, X)
shown = limits.plot_rows(n, keep=mask)  # at most limits.MAX_PLOT_POINTS points go to the browser
labels = rep.y[shown] if rep.has_labels else None
figure = figures.scatter_pair((X[shown] - mean) @ axes, (moved[shown] - mean) @ axes, labels, mask[shown],
                              title="The two leading principal components of the original representation")
if shown.size < n:
    for trace in figure.data:  # hover names the example's row in the file, not its place in the subset
        trace.customdata = np.column_stack([shown[np.asarray(trace.customdata)[:, 0].astype(int)],
                                            np.asarray(trace.customdata)[:, 1]])
st.plotly_chart(figure, key="outliers_pca", config=figures.CHART_CONFIG)
if shown.size < n:
    st.caption(limits.plot_caption(shown.size, n))

theory(
    [
        r"\mathrm{CKA}(c) = \frac{\lVert A\rVert^2 + 2c\,v^\top A a + c^2\lVert a\rVert^2}"
        r"{\lVert A\rVert\sqrt{\lVert A\rVert^2 + 4c\,v^\top A a + c^2\left(2\lVert a\rVert^2 + 2(a\cdot v)^2 + 2T\,v^\top A v\right) + 4c^3 T (a\cdot v) + c^4T^2}}",
        r"\lim_{c\to\infty}\mathrm{CKA}(c) = \frac{\rho(1-\rho)\,\lVert \mu_{\text{moved}} - \mu_{\text{rest}}\rVert^2}{\lVert\Sigma\rVert_F}",
    ],
    "With $X_c = HX$, $t$ the indicator of the moved rows, $t_c = Ht$, $A = X_c^\\top X_c$, $a = X_c^\\top t_c$ and "
    "$T = \\lVert t_c\\rVert^2 = n\\rho(1-\\rho)$, the translated representation is $X + c\\,t v^\\top$. The limit "
    "does not depend on $v$: a direction that the network ignores (null space of its next layer) or that a "
    "classifier ignores (orthogonal to its normals) takes CKA just as low. One moved point gives a limit of "
    "about $\\sqrt{\\mathrm{PR}}/n$, close to 0.",
    "Davari et al., *Reliability of CKA as a Similarity Measure in Deep Learning*, ICLR 2023 (Theorem 1, "
    "Corollaries 3 and 4); general form derived in notes/papers.md §2.1.",
)
