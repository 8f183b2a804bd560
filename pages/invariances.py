"""Invariances: transform a representation and see which similarity measures move."""
import streamlit as st

from cka_core import MEASURES, RepresentationError
from cka_core.pitfalls.transforms import TRANSFORMATIONS, median_scale_ratio
from ui.frame import figures
from ui.pitfalls import invariances as inv
from ui.pitfalls import triangles
from ui.frame.references import cite, derivation
from ui.frame.shell import inside_app_frame, live_section
from ui.sources.sidebar import current_representation
from ui.frame.widgets import choose, fmt, in_rows, log_slider, page_header, takeaway, theory, wide_figure

inside_app_frame()


def main() -> None:
    lesson = page_header(
        "Invariances: which measure ignores which transformation",
        "Transform the chosen representation — rotate it, rescale it, mix its features, add noise, delete its "
        "low-variance principal components — and compare the result with the original under every similarity "
        "measure. A measure that *declares* an invariance (✓) must not move at all; the table checks every "
        "measure against every transformation at a moderate strength, and the controls below try one at any strength.",
    )
    rep = current_representation()
    X, subset_note = inv.working_matrix(rep.key, rep)
    st.caption(f"Representation: **{rep.label}** — {rep.X.shape[0]} examples × {rep.X.shape[1]} features.")
    _, reference_errors = inv.identity_values(rep.key, X)
    if len(reference_errors) == len(inv.ONE_LAYER_MEASURES):
        st.error("No similarity measure can be computed on this representation, so there is nothing to compare: "
                 + " ".join(f"**{MEASURES[m].label}**: {msg}" for m, msg in reference_errors.items())
                 + " Pick another source in the sidebar.")
        show_theory()
        return
    table = inv.table(rep.key, X)
    takeaway(lesson, inv.takeaway(table))
    table_section(table)
    if subset_note:
        st.info(subset_note)
    if inv.spans_everything(X):
        st.caption(f"With {X.shape[1]} features for {X.shape[0]} examples the centred representation spans every "
                   "direction the examples allow, so measures invariant to invertible linear maps (mean CCA) read 1 for "
                   "*any* pair here.")
    one_transformation(rep.key, X)
    distances_or_scores(rep)
    show_theory()


@live_section("The single-transformation panel")
def one_transformation(rep_key: str, X) -> None:
    st.subheader("One transformation at any strength")
    controls_column, results = st.columns([1, 2.4], gap="large")
    with controls_column:
        name, strength, seed = controls(X.shape[1])
    try:
        shown = inv.panel_view(rep_key, X, name, strength, seed)
    except RepresentationError as error:
        results.error(str(error))
    else:
        with results:
            measures_panel(shown)


@live_section("The triangle-inequality section")
def distances_or_scores(rep) -> None:
    st.subheader("Which of these are distances? The triangle inequality over a network's layers")
    name = triangles.triangle_network(rep)
    controls_column, results = st.columns([1, 2.4], gap="large")
    with controls_column:
        st.markdown(f"A distance obeys d(i, k) ≤ d(i, j) + d(j, k): if A is close to B and B to C, A is close to C. "
                    f"Every ordered triple of distinct layers of **{name}** (test digits) is checked. "
                    "1 − CKA is not a distance; the angle arccos(CKA) and the shape metrics are.")
        whitening = triangles.SHAPE_ALPHA  # range, step and default as declared in the registry
        alpha = st.slider("Partial whitening α (shape metric)", whitening.low, whitening.high, whitening.default,
                          step=whitening.step, key="inv_alpha",
                          bind="query-params", help="0: each layer whitened first (the angle of mean CCA); "
                                                    "1: not whitened (the Procrustes angle).")
    rows = triangles.triangle_rows(name, alpha)
    with results:
        for column, row in zip(st.columns(len(rows)), rows):
            column.metric(f"{row.label}: triples broken", f"{row.check.violations} of {row.check.triples}",
                          help=f"Ordered triples of {name}'s layers with {row.formula}(i, k) > "
                               f"{row.formula}(i, j) + {row.formula}(j, k).")
        st.dataframe(triangles.triangle_frame(rows), hide_index=True, key="inv_triangle",
                     column_config={"largest d(i,k) − d(i,j) − d(j,k)": st.column_config.NumberColumn(format="%.4f")})
        for row in rows:
            if row.worst:
                st.caption(f"Worst triple for {row.label}: {row.worst}.")


def controls(d: int) -> tuple[str, float | None, int]:
    name = choose(st.selectbox, "Transformation", {code: t.label for code, t in TRANSFORMATIONS.items()},
                  key="inv_transform", default="invertible",
                  help="What is applied to the representation X before it is compared with X itself.")
    info = TRANSFORMATIONS[name]
    st.caption(info.description)
    strength = None
    if name == "isotropic":
        strength = log_slider("Scale factor a", key="inv_log_scale", low=-3.0, high=3.0, default=1.0,
                              help="Every feature is multiplied by a.")
        st.caption(f"a = {strength:.3g}")
    elif name == "anisotropic":
        strength = st.slider("Spread s", 0.0, 3.0, 1.0, step=0.05, key="inv_spread", bind="query-params",
                             help="Log-standard deviation of the per-feature scales exp(s·z); 0 means no change.")
        st.caption(f"Two features' scales differ by a factor of {median_scale_ratio(strength):.3g} (median).")
    elif name == "one_feature":
        strength = log_slider("Factor a", key="inv_log_factor", low=-2.0, high=3.0, default=1.0,
                              help="The chosen feature is multiplied by a; the others are untouched.")
        st.caption(f"a = {strength:.3g}")
    elif name == "invertible":
        strength = log_slider("Condition number κ", key="inv_log_kappa", low=0.0, high=4.0, default=2.0,
                              help="Ratio of the largest to the smallest singular value of M; κ = 1 is a rotation.")
        st.caption(f"κ = {strength:.3g}")
    elif name == "translation":
        strength = log_slider("Distance c", key="inv_log_shift", low=-2.0, high=3.0, default=1.0,
                              help="Length of the shift in units of the RMS distance of the examples from their mean.")
        st.caption(f"c = {strength:.3g}")
    elif name == "noise":
        strength = log_slider("Relative noise std r", key="inv_log_noise", low=-3.0, high=1.0, default=-0.5,
                              help="Noise standard deviation in units of the RMS feature standard deviation; "
                                   "r = 1 adds as much variance as X has.")
        st.caption(f"r = {strength:.3g}")
    elif name == "top_k":
        if d < 2:
            st.info("This representation has a single feature: there is no component to delete.")
            strength = 1.0
        else:
            strength = float(st.slider("Components kept k", 1, d, inv.default_components(d), key="inv_k",
                                       bind="query-params", help="X is projected on its k leading principal components."))
    else:
        st.caption("A map of this kind has no strength: move the seed to draw another one.")
    seed = st.slider("Random seed", 0, 20, 0, key="inv_seed", bind="query-params", disabled=not info.uses_seed,
                     help="Seed of the random map (or of the noise, or of the chosen feature).")
    return name, strength, int(seed)


def measures_panel(shown: inv.PanelView) -> None:
    if shown.errors:
        st.warning("Some measures do not apply to this representation (each says why; the others are shown): "
                   + " ".join(f"**{MEASURES[m].label}**: {msg}" for m, msg in shown.errors.items()),
                   icon=":material/info:")
    for group in in_rows(shown.measures, 3):
        for column, measure in zip(st.columns(3), group):
            if measure.value is None:
                column.metric(measure.label, "—", help=measure.help)
                continue
            column.metric(
                measure.label, fmt(measure.value), delta=measure.delta,
                delta_color="off" if measure.tiny else ("normal" if measure.higher_is_similar else "inverse"),
                delta_arrow="off" if measure.tiny else "auto",
                delta_description="✓ declared invariant" if measure.declared else None, help=measure.help,
            )
    if shown.prediction is not None:
        st.metric("Linear CKA predicted by R8", fmt(shown.prediction),
                  help="sqrt(Σ_{i≤k} λ_i² / Σ λ_i²) from the covariance eigenvalues λ of X: exact for linear CKA.")
    if shown.broken:
        st.error(f"Bug: {', '.join(shown.broken)} declare(s) invariance to this transformation but moved by more than "
                 f"{inv.INVARIANCE_TOL:g}.")
    left, right = st.columns(2)
    figures.chart(shown.bars, key="inv_bars", into=left)
    left.caption("Grey bars (✓): measures that declare invariance to this transformation — they must stay at 0. "
                 "Blue bars: measures that promise nothing here.")
    figures.chart(shown.spectrum, key="inv_spectrum", into=right)
    right.caption("CKA weighs principal directions by their squared variance: maps that keep this curve "
                  "(rotations, isotropic scaling) keep CKA at 1; maps that reshape it move CKA.")


def table_section(table: dict) -> None:
    with st.container(key="proof"), wide_figure():
        figures.chart(inv.table_figure(table), key="inv_table")
    st.caption(
        "Each cell: how far the measure moved, as a share of the way from its value for identical inputs to its value "
        "for unrelated ones (0 for a similarity, π/2 for the Procrustes angle; for a distance with no upper bound, its "
        "value against Gaussian noise of the layer's shape and spread). ✓: the measure declares an invariance "
        "class that contains the transformation (a permutation is also an orthogonal map, and orthogonal maps and "
        "isotropic scalings are invertible linear maps), so the cell must be 0. Noise and top-k PC projection are in "
        f"no invariance class: those columns only show how much each measure moves. Seed {inv.TABLE_SEED} for every "
        "random map; movement 0.000 can still hide a change below 5·10⁻⁴. Deconfounded CKA is not in the table: it "
        "also needs the inputs the layer was computed from (the Confounders page shows it)."
    )
    if table["failed"]:
        st.error("Columns left empty: " + " ".join(f"**{TRANSFORMATIONS[t].label}**: {msg}"
                                                   for t, msg in table["failed"].items()))
    if table["rank_note"]:
        st.caption(table["rank_note"])
    cells = inv.violations(table)
    if cells:
        st.error(f"Bug: a declared invariance moved by more than {inv.INVARIANCE_TOL:g} (⚠): {'; '.join(cells)}.")
    with st.expander("Values behind the table"):
        frame = inv.table_frame(table)
        st.dataframe(frame, key="inv_values",
                     column_config={c: st.column_config.NumberColumn(format="%.6f") for c in frame.columns})


def show_theory() -> None:
    theory(
        [
            r"\mathrm{CKA}(X, Y) = \frac{\lVert Y_c^\top X_c\rVert_F^2}{\lVert X_c^\top X_c\rVert_F\,\lVert Y_c^\top Y_c\rVert_F}"
            r"= \frac{\sum_{i,j}\lambda^X_i\lambda^Y_j\langle u^X_i,u^Y_j\rangle^2}{\sqrt{\sum_i(\lambda^X_i)^2\sum_j(\lambda^Y_j)^2}}",
            r"\mathrm{CKA}(X,\ \alpha X Q + \mathbf{1}b^\top) = 1 \quad (Q^\top Q = I,\ \alpha \neq 0),"
            r"\qquad \bar\rho_{\mathrm{CCA}}(X,\ XM) = 1 \quad (M \text{ invertible})",
            r"\mathrm{CKA}\big(X,\ X_c V_k V_k^\top\big) = \sqrt{\frac{\sum_{i\le k}\lambda_i^2}{\sum_i \lambda_i^2}}",
            r"\mathrm{CKA}\big(X,\ X\,\mathrm{diag}(a,1,\dots,1)\big) = \frac{a^2 + d - 1}{\sqrt{d}\sqrt{a^4 + d - 1}}"
            r"\ \xrightarrow{a\to\infty}\ \frac{1}{\sqrt d}\quad (X \text{ isotropic})",
            r"\mathrm{CKA}(X,\ XM) \approx \sqrt{\frac{d}{2d+1}} \to \frac{1}{\sqrt 2}\quad"
            r"(M_{ij}\ \text{i.i.d. } \mathcal N(0,\sigma^2),\ X \text{ isotropic},\ n \gg d)",
            r"d_\alpha(X, Y) = \arccos\frac{\lVert\mathrm{diag}(a_X)\,U_X^\top U_Y\,\mathrm{diag}(a_Y)\rVert_\ast}"
            r"{\lVert a_X\rVert\,\lVert a_Y\rVert},\qquad 1-\cos 2\theta > 2\,(1-\cos\theta)\ \ (0<\theta<\tfrac{\pi}{2})",
        ],
        "Linear CKA compares the centred Gram matrices, so it ignores translations, rotations, reflections and a common "
        "scale: the first two lines. It is deliberately **not** invariant to invertible linear maps: Kornblith et al. "
        "show that any index with that invariance gives the same value to every pair of representations as soon as the "
        "width reaches the number of examples — which is why mean CCA, invariant to all of them, reads 1 here under any "
        "invertible map. The eigen form shows that CKA weighs principal directions by their *squared* variance $\\lambda$: "
        "deleting the low-variance components (third line, R8) barely moves it when the spectrum decays, while "
        "inflating one feature (fourth line, notes R9) or mixing features with a badly conditioned map (last line, R7 for "
        "a random Gaussian $M$) can take it far from 1 although the information in $X$ is unchanged. Ding et al. turn "
        "this into two tests: a good measure should be *specific* (not move under changes that keep function) and "
        "*sensitive* (move when low-variance components that probes rely on are deleted); CKA fails the second, CCA "
        "over-reacts to noise, orthogonal Procrustes is the most balanced baseline. Williams et al. ask for "
        "distances instead of scores: the shape metric whitens each layer partially ($a_i = \\alpha s_i + 1 - \\alpha$ "
        "on its singular values $s_i$, scaled to root mean square 1) and takes the angle between the two shapes after the best rotation, which obeys "
        "the triangle inequality for every $\\alpha$; so does $\\arccos$ CKA, the angle between the two Gram matrices, "
        "while $1 - \\mathrm{CKA} = 1 - \\cos\\theta$ does not (last line: three Gram matrices on one arc).",
        [cite("kornblith2019", "§3, invariances"), cite("davari2023", "§4.2: invertible maps and anisotropic rescaling"),
         cite("ding2021"), cite("williams2021", "§2, generalized shape metrics"),
         f"the invariances in {derivation('1')}, reference cases R7–R9 in {derivation('5')}, shape metrics and the "
         f"triangle inequality in {derivation('8.1')}"],
    )


main()
