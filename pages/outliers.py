"""Outliers: translate one point, a random subset or a class, and watch CKA fall."""
import streamlit as st

from cka_core import RepresentationError
from ui.frame import figures
from ui.sources import limits
from ui.pitfalls import outliers as out
from ui.pitfalls import translation as tr
from ui.frame.references import cite, derivation
from ui.frame.shell import inside_app_frame
from ui.sources.sidebar import current_representation
from ui.frame.widgets import change, choose, fmt, log_slider, page_header, percent, points_steady_delta, takeaway, theory

inside_app_frame()


def main() -> None:
    lesson = page_header(
        "Outliers: move a few points, lose the similarity",
        "Translate some examples of the chosen representation by a distance *c* along a direction and compare "
        "the result with the original. The network (or a linear read-out) may not notice at all, yet CKA can "
        "drop from 1 to almost 0. The curve is drawn from the closed form of Davari et al.'s Theorem 1, so "
        "every value of *c* is exact and instant.",
    )
    rep = current_representation()
    st.caption(f"Representation: **{rep.label}** — {rep.X.shape[0]} examples × {rep.X.shape[1]} features.")
    limits.require(rep.X, rep.y, limits.OUTLIERS)
    controls_column, results = st.columns([1, 2.4], gap="large")
    with controls_column:
        setting = controls(rep)
    try:
        shown = out.view(rep, setting)
    except RepresentationError as error:
        results.error(str(error))
    else:
        takeaway(lesson, out.takeaway(shown, setting))
        with results:
            with st.container(key="proof"):
                metrics(shown)
            figures.chart(shown.curve, key="outliers_curve")
            if shown.rbf_skipped:
                st.caption(shown.rbf_skipped)
        figures.chart(shown.scatter, key="outliers_pca")
        if shown.plot_note:
            st.caption(shown.plot_note)
    show_theory()


def controls(rep) -> out.Setting:
    what = choose(st.radio, "What moves", out.selections(rep), key="out_what",
                  help="Corollary 3 (one outlier), Theorem 1 (a random subset of fraction ρ), Corollary 4 (a class).")
    index = st.slider("Example index", 0, len(rep.X) - 1, 0, key="out_index", bind="query-params",
                      disabled=what != "point")
    fraction = st.slider("Fraction ρ", 0.01, 0.5, 0.1, step=0.01, key="out_fraction", bind="query-params",
                         disabled=what != "fraction")
    cls = st.selectbox("Class", out.classes(rep), key="out_class", bind="query-params", disabled=what != "class")
    unavailable = tr.unavailable_directions(rep)
    kinds = {k: v for k, v in tr.DIRECTIONS.items() if k not in unavailable}
    kind = choose(st.selectbox, "Direction", kinds, key="out_direction",
                  help="The null space of the next layer leaves the network's output exactly unchanged; "
                       "a direction orthogonal to the decision normals leaves the read-out's decisions unchanged.")
    for code, reason in unavailable.items():
        st.caption(f"*{tr.DIRECTIONS[code]}* is not offered here: {reason}")
    seed = st.slider("Random seed", 0, 20, 0, key="out_seed", bind="query-params",
                     help="Seed of the random direction and of the random subset.")
    c = log_slider("c", key="out_log_c", low=-2.0, high=4.0, default=0.0,
                   help="Translation distance in units of the typical distance of an example from the mean.")
    return out.Setting(what, int(index), float(fraction), int(cls), kind, int(seed), c)


def metrics(shown: out.OutliersView) -> None:
    row = st.columns(3)
    row[0].metric("Linear CKA", fmt(shown.cka), delta=change(shown.cka, 1.0), help="Closed form, exact.")
    row[1].metric("Debiased CKA", fmt(shown.debiased), help="Unbiased HSIC (Song et al. 2012).")
    row[2].metric("RBF CKA (σ = median)", fmt(shown.rbf), help=shown.rbf_skipped or "Gaussian kernel, bandwidth = "
                                                                                   "median distance.")
    row = st.columns(3)
    row[0].metric("Limit as c → ∞", fmt(shown.limit),
                  help="ρ(1−ρ)‖μ_moved − μ_rest‖² / ‖Σ‖_F; independent of the direction.")
    row[1].metric("Network accuracy", percent(shown.network_now),
                  **points_steady_delta(shown.network_now, shown.network_before),
                  help="The model continues from the moved representation (needs a sample model source).")
    row[2].metric("Linear probe accuracy", percent(shown.probe_now),
                  **points_steady_delta(shown.probe_now, shown.probe_before),
                  help="A ridge read-out fitted on the original representation, applied to the moved one.")


def show_theory() -> None:
    theory(
        [
            r"\mathrm{CKA}(c) = \frac{\lVert A\rVert^2 + 2c\,v^\top A a + c^2\lVert a\rVert^2}"
            r"{\lVert A\rVert\sqrt{\lVert A\rVert^2 + 4c\,v^\top A a + c^2\left(2\lVert a\rVert^2 + 2(a\cdot v)^2"
            r" + 2T\,v^\top A v\right) + 4c^3 T (a\cdot v) + c^4T^2}}",
            r"\lim_{c\to\infty}\mathrm{CKA}(c) = \frac{\rho(1-\rho)\,\lVert \mu_{\text{moved}} - \mu_{\text{rest}}\rVert^2}"
            r"{\lVert\Sigma\rVert_F}",
        ],
        "With $X_c = HX$, $t$ the indicator of the moved rows, $t_c = Ht$, $A = X_c^\\top X_c$, $a = X_c^\\top t_c$ and "
        "$T = \\lVert t_c\\rVert^2 = n\\rho(1-\\rho)$, the translated representation is $X + c\\,t v^\\top$. The limit "
        "does not depend on $v$: a direction that the network ignores (null space of its next layer) or that a "
        "classifier ignores (orthogonal to its normals) takes CKA just as low. One moved point gives a limit of "
        "about $\\sqrt{\\mathrm{PR}}/n$, close to 0.",
        [cite("davari2023", "Theorem 1, Corollaries 3 and 4"), f"the general form is derived in {derivation('3')}"],
    )


main()
