"""Specific and sensitive? Delete principal components of a layer; which measures notice what it costs."""
import streamlit as st

from cka_core import RepresentationError
from ui.frame import figures
from ui.sources import models
from ui.pitfalls import sensitivity as sen
from ui.frame.references import cite, derivation
from ui.frame.shell import inside_app_frame
from ui.frame.widgets import choose, fmt, page_header, percent, points_steady_delta, takeaway, theory

inside_app_frame()


def main() -> None:
    lesson = page_header(
        "Specific and sensitive? Deleting principal components",
        "Delete the *k* principal components of largest (top-k) or smallest (bottom-k) variance of one layer and "
        "compare the result with the layer itself under four measures, next to what the deletion costs the network "
        "and next to how far apart the same layer of networks retrained from other seeds is: a deletion that costs "
        "accuracy should read further than that seed spread (Ding, Denain & Steinhardt's sensitivity test). Linear "
        "CKA weighs each component by its squared variance, so it can barely see low-variance components the "
        "network relies on.",
    )
    controls_column, results = st.columns([1, 2.4], gap="large")
    with controls_column:
        chosen = controls()
    if chosen is None:
        show_theory()
        return
    try:
        shown = sen.view(*chosen)
    except RepresentationError as error:
        results.error(str(error))
        show_theory()
        return
    takeaway(lesson, sen.takeaway(shown))
    with results:
        with st.container(key="proof"):
            metrics(shown)
        figures.chart(sen.deletions_figure(shown), key="sen_deletions")
        st.caption("Each point is one deletion (circles: bottom-k, triangles: top-k), placed by what it costs and by "
                   "how far the panel's measure moves, on one scale: 1 − value for CKA and PWCCA, angle ÷ (π/2) for "
                   "the Procrustes angle and the shape metric (0 same, 1 unrelated). The shaded band is the seed "
                   "spread: the distance between this layer and the same layer of each network retrained from another "
                   "seed. Points left of zero raise the accuracy. The ringed points are the deletion chosen on the "
                   "left. " + sen.stacked_text(shown))
    notes(shown)
    measures_table(shown)
    spectrum(shown)
    show_theory()


def controls() -> tuple[str, str, str, str, int] | None:
    name = st.selectbox("Network", sen.networks(), key="sen_model", bind="query-params",
                        help="Trained networks of the zoo (and those fine-tuned on the Manipulate page) that can "
                             "run on from an edited layer. mlp_seed0, 1 and 2 differ only in their training seed.")
    st.caption(models.get(name).description)
    options = sen.layers(name)
    layer = st.selectbox("Layer", options, index=options.index(sen.default_layer(name)),
                         key=f"sen_layer_{models.get(name).architecture}", bind="query-params",
                         help="The layer whose principal components (on the 359 test digits) are deleted.")
    functional = choose(st.radio, "Functional score", sen.FUNCTIONALS, key="sen_score",
                        help="What the deletion costs: the accuracy of the network run on from the edited layer, or "
                             "of a linear probe fitted on the original layer (train digits), as Ding et al. do.")
    which = choose(st.radio, "Components deleted", sen.WHICH, key="sen_which", horizontal=True,
                   help="Top-k: the k directions of largest variance. Bottom-k: the k of smallest non-zero variance "
                        "(directions with no variance at all are not counted).")
    rank = sen.components(name, layer)
    ks = sen.k_options(rank)
    if not ks:
        st.error(f"{layer} of {name} varies along {rank} direction(s) only: there is no component to delete that "
                 "leaves one. Pick another layer.")
        return None
    k = st.select_slider("Components deleted k", ks, value=sen.default_k(which, ks, rank), key=f"sen_k_{rank}",
                         bind="query-params",
                         help=f"How many of the layer's {rank} components with non-zero variance are deleted. "
                              "Switching between top-k and bottom-k keeps k.")
    if sen.on_a_grid(rank):
        st.caption(f"{layer} has {rank} components: k runs over {len(ks)} values, dense at both ends "
                   "(every k would take minutes on a layer this wide).")
    return name, layer, functional, which, int(k)


def metrics(shown: sen.SensitivityView) -> None:
    for column, measure in zip(st.columns(len(shown.measures)), shown.measures):
        column.metric(sen.SHORT_LABELS[measure.name], fmt(measure.value), delta=measure.verdict, delta_color="off",
                      delta_arrow="off", help=sen.measure_help(measure))
    st.caption(sen.seeds_caption(shown))
    row = st.columns(4)
    row[0].metric(sen.SCORE_LABELS[shown.functional], percent(shown.deletion.score),
                  **points_steady_delta(shown.deletion.score, shown.sweep.baseline),
                  help=f"{sen.FUNCTIONALS[shown.functional]} on the 359 test digits; {percent(shown.sweep.baseline)} "
                       "with nothing deleted.")
    row[1].metric("Variance deleted", sen.share(shown.deleted_variance),
                  help="Σ of the deleted eigenvalues λ over Σλ: how much of the layer's variance goes.")
    row[2].metric("Σλ² deleted", sen.share(shown.deleted_squared),
                  help="Σ of the deleted λ² over Σλ²: what linear CKA weighs, CKA = √(1 − this share).")
    row[3].metric("CKA, closed form", fmt(shown.deletion.closed_form_cka),
                  delta_description=f"computed: {fmt(shown.measure('linear_cka').value)}",
                  help="√(Σ_kept λ² / Σ λ²) from the covariance eigenvalues λ of the layer "
                       "(docs/theory.md §8.3); the computed linear CKA is the same number.")


def notes(shown: sen.SensitivityView) -> None:
    for note in sen.notes(shown):
        st.info(note)
    if shown.sweep.skipped:
        st.warning(sen.skipped_note(shown.sweep))


def measures_table(shown: sen.SensitivityView) -> None:
    st.subheader("Which measure is sensitive? Every deletion at once")
    st.dataframe(sen.table_frame(shown), hide_index=True, key="sen_table")
    st.caption(f"Over all {len(shown.sweep.deletions)} deletions of {shown.layer}: Spearman's rank correlation between "
               "each measure's dissimilarity and the accuracy drop (Ding et al.'s sensitivity; 1 means the measure "
               "orders the deletions exactly as their cost does), and the largest accuracy drop among deletions the "
               "measure reads as closer to the original than every retrained seed.")
    with st.expander("Values behind the chart"):
        st.dataframe(sen.sweep_frame(shown.sweep), hide_index=True, key="sen_values")


def spectrum(shown: sen.SensitivityView) -> None:
    figures.chart(sen.spectrum_figure(shown), key="sen_spectrum")
    st.caption("Why CKA barely moves under a bottom-k deletion: it weighs component i by λᵢ², and the squares of "
               "the small eigenvalues all but vanish next to the large ones.")


def show_theory() -> None:
    theory(
        [
            r"X_{\mathrm{del}} = \bar x + X_c\,(I - V_SV_S^\top),\qquad "
            r"X_c = \textstyle\sum_i s_i u_i v_i^\top,\quad \lambda_i = s_i^2/n",
            r"\mathrm{CKA}(X, X_{\mathrm{del}}) = \frac{\sum_{i,j}\lambda_i\lambda'_j\langle u_i,u'_j\rangle^2}"
            r"{\sqrt{\sum_i\lambda_i^2\,\sum_j\lambda_j'^2}} = \frac{\sum_{i\notin S}\lambda_i^2}"
            r"{\sqrt{\sum_i\lambda_i^2\,\sum_{i\notin S}\lambda_i^2}}"
            r" = \sqrt{\frac{\sum_{i\notin S}\lambda_i^2}{\sum_i\lambda_i^2}}",
            r"\cos\theta(X, X_{\mathrm{del}}) = \sqrt{\frac{\sum_{i\notin S}\lambda_i}{\sum_i\lambda_i}}"
            r"\qquad(\text{Procrustes: weights }\lambda\text{, not }\lambda^2)",
            r"\rho_m = \mathrm{Spearman}\big(d_m(X, X_{\mathrm{del}}),\ \Delta\mathrm{acc}\big),\qquad "
            r"d = 1 - \mathrm{CKA},\ 1 - \mathrm{PWCCA},\ \theta/(\pi/2)",
            r"\operatorname{col}(X_{\mathrm{del},c}) \subseteq \operatorname{col}(X_c)\ \Rightarrow\ "
            r"\rho_1 = \dots = \rho_{r-k} = 1\ \Rightarrow\ \mathrm{PWCCA}(X, X_{\mathrm{del}}) = 1",
        ],
        "Deleting the principal components $S$ keeps the others untouched: $X_{\\mathrm{del}}$ has the eigenvalues "
        "$\\lambda_i$ and directions $u_i$ of $X$ for $i\\notin S$ and nothing else. In the eigen form of linear CKA "
        "every cross term between a kept and a deleted direction vanishes ($\\langle u_i, u_j\\rangle = 0$), which "
        "leaves the closed form of the second line: CKA sees a deletion only through the share of $\\sum\\lambda^2$ it "
        "removes, and squaring makes the small eigenvalues nearly invisible. The Procrustes angle has a closed form "
        "too, with the eigenvalues themselves as weights, so it reacts much earlier. Ding et al. ask two things of a "
        "measure: **specificity**, that changes which do not matter move it no more than networks retrained from "
        "another seed differ, and **sensitivity**, that it move in step with what a change costs, measured by the rank "
        "correlation $\\rho_m$ between its distance and the accuracy drop over many deletions. CKA fails sensitivity "
        "on low-variance components: deleting most of them costs a linear probe (and here the network itself) "
        "accuracy while CKA stays closer than the seed spread. PWCCA, built on canonical correlations, does not move "
        "at all: the edited layer's column space lies inside the original's, so every canonical correlation there is "
        "is 1 (last line), and no weighting of ones can tell a deletion apart.",
        [cite("ding2021", "specificity, sensitivity and principal-component deletion"),
         cite("kornblith2019", "the eigen form of linear CKA"),
         cite("williams2021", "§2, the Procrustes angle and the shape metric"),
         f"the closed form, the protocol and what this page does differently in {derivation('8.3')}"],
    )


main()
