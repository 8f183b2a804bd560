"""Which measure to trust? ReSi's six grounding tests as a scorecard of every measure, the pairs behind
each cell, and your own group of models through the tests that need only a group."""
import streamlit as st

from cka_core import RepresentationError
from cka_core.trust import TESTS, candidate_measures
from ui.frame import figures
from ui.frame.references import cite, derivation
from ui.frame.shell import inside_app_frame
from ui.frame.widgets import choose, page_header, takeaway, theory, wide_figure
from ui.sources import models
from ui.trust import card as tc
from ui.trust import compute, own

inside_app_frame()


def main() -> None:
    lesson = page_header(
        "Which measure to trust?",
        "Klabunde et al.'s ReSi benchmark grounds a similarity measure in what is *known* about the models: pairs "
        "of models that behave more differently should look less similar, models trained alike should look "
        "alike, and a layer should look more like its neighbours than like distant layers. Here every measure of "
        f"the app goes through their six tests on groups of small MLPs trained on the digits ({compute.ZOO_MODELS} "
        f"networks), each score with a {compute.CONFIDENCE:.0%} interval from resampling the models "
        f"({compute.RESAMPLES} resamples).",
    )
    setting = controls()
    zoo = compute.zoo_card()
    if zoo is None:
        takeaway(lesson, f"The scorecard of {len(candidate_measures())} measures × {len(TESTS)} tests is being "
                         "computed (about 20 s the first time on this server, then shared); the takeaway follows "
                         "from its numbers.")
    else:
        shown = tc.view(zoo, setting, compute.CONFIDENCE, "The zoo's scorecard")
        takeaway(lesson, shown.sentence)
        scorecard_section(shown)
        downloads(zoo, "zoo", "trust_zoo")
        cell_section(shown, setting)
    own_models(setting)
    show_theory()
    compute.follow()


def controls() -> tc.Setting:
    left, middle, right = st.columns([1.2, 1, 1.2])
    with left:
        sort_by = choose(st.selectbox, "Sort the measures by", tc.SORT_LABELS, key="trust_sort", default=tc.MEAN_RANK,
                         help="Best first: by one test's score, or by the mean of each measure's rank over the tests.")
    with middle:
        test = choose(st.selectbox, "Cell: test", tc.TEST_LABELS, key="trust_test",
                      help="The cell whose pairs are shown below the scorecard.")
    with right:
        measure = choose(st.selectbox, "Cell: measure", {m: tc.label(m) for m in candidate_measures()},
                         key="trust_measure", default="linear_cka")
    return tc.Setting(sort_by, test, measure)


def scorecard_section(shown: tc.View) -> None:
    with st.container(key="proof"):
        for column, (name, value, explanation) in zip(st.columns(3), shown.summary):
            column.metric(name, value, help=explanation)
    with wide_figure():
        figures.chart(shown.figure, key="trust_card")
    st.caption("Each cell: the test's main statistic (Spearman's ρ for the correlation tests and layer monotonicity, "
               "the mean AUPRC over groups for the three group tests; higher is better in every test). Hover a cell for "
               f"its {compute.CONFIDENCE:.0%} model-bootstrap interval and rank; *failed* cells say why on hover. "
               "An orange frame marks the column the rows are sorted by, a black one the cell whose pairs are shown below. "
               "The ✓ grid on the right: the invariances each measure declares (as on the Invariances page).")
    no_score(shown)


def downloads(card, name: str, key: str) -> None:
    """The scorecard as the command line writes it (`cka trust --json/--csv`): every cell's score and interval."""
    left, right = st.columns(2)
    left.download_button("Scorecard as JSON", card.to_json(), file_name=f"trust_{name}.json", mime="application/json",
                         key=f"{key}_json", icon=":material/download:", help="The schema of `cka trust --json`.")
    right.download_button("Scorecard as CSV", card.to_csv(), file_name=f"trust_{name}.csv", mime="text/csv",
                          key=f"{key}_csv", icon=":material/download:", help="One row per test, measure and statistic.")


def no_score(shown: tc.View) -> None:
    if shown.failures:
        with st.expander(f"Measures without a score somewhere ({len(shown.failures)})"):
            for line in shown.failures:
                st.markdown(f"- {line}")


def cell_section(shown: tc.View, setting: tc.Setting) -> None:
    st.subheader(f"The pairs behind one cell: {tc.TEST_LABELS[setting.test]} × {tc.label(setting.measure)}")
    cell = shown.cell
    if cell is None:
        st.info("This measure is not in the scorecard.")
        return
    if cell.figure is None:
        st.error(f"{tc.label(setting.measure)} has no score in this test: {cell.cell.error}")
        return
    for column, (name, score, ci) in zip(st.columns(3), cell.statistics):
        column.metric(name, f"{score:.3f}", help=f"{compute.CONFIDENCE:.0%} interval [{ci[0]:.3f}, {ci[1]:.3f}]")
        column.caption(f"interval [{ci[0]:.3f}, {ci[1]:.3f}]")
    figures.chart(cell.figure, key="trust_pairs")
    st.dataframe(cell.table, hide_index=True, key="trust_pairs_table", height=300,
                 column_config={c: st.column_config.NumberColumn(format="%.4f") for c in cell.number_columns})


def own_models(setting: tc.Setting) -> None:
    st.subheader("Your own models")
    st.markdown("A group of your models through the tests that need only a group: "
                + ", ".join(tc.TEST_LABELS[t] for t in own.OWN_TESTS)
                + ". Upload one .npz per model, each computed on the same inputs in the same order, holding its "
                  "layers in forward order (the last is compared between models), its `logits` (examples × classes) "
                  "and, in at least one file, the `labels`; or use the models loaded on the Compare page.")
    where = choose(st.radio, "Models from", own.SOURCES, key="trust_own_source", horizontal=True)
    try:
        group = own_group(where)
    except RepresentationError as error:
        st.error(str(error))
        return
    if group is None:
        return
    fit, refused = own.check(group)
    st.caption(f"{group.source}: " + ", ".join(f"{m.name} ({len(m.layers)} layers)" for m in group.members) + ".")
    for test, why in refused.items():
        st.error(f"**{tc.TEST_LABELS[test]}** cannot run on this group: {why}")
    if not fit:
        return
    card = compute.own_card(group.digest, fit)
    if card is None:
        return
    shown = tc.view(card, setting, compute.CONFIDENCE, "Your models' scorecard", with_cell=False)
    st.markdown(shown.sentence)
    figures.chart(shown.figure, key="trust_own_card")
    downloads(card, "own", "trust_own")
    no_score(shown)


def own_group(where: str):
    if where == "upload":
        files = st.file_uploader("One .npz per model", type=["npz"], accept_multiple_files=True, key="trust_own_files")
        if not files:
            st.info("Upload three or more .npz files (one per model) to score them.")
            return None
        return own.uploaded_group(files)
    loaded = models.loaded_names()
    if not loaded:
        st.info("No model is loaded yet: load your models on the Compare page (Your model), run them on the same "
                "inputs, and come back.")
        return None
    names = st.multiselect("Models", loaded, default=loaded, key="trust_own_loaded", bind="query-params")
    if not names:
        st.warning("Pick the models of the group.")
        return None
    return own.loaded_group(names)


def show_theory() -> None:
    theory(
        [
            r"\rho_{\text{acc}} = \operatorname{Spearman}\big(d_{ij},\ |a_i - a_j|\big),\qquad"
            r"\rho_{\text{out}} = \operatorname{Spearman}\big(d_{ij},\ \mathrm{JSD}(O_i, O_j)\big)",
            r"\mathrm{AUPRC} = \frac{1}{G}\sum_{g}\sum_t (R^g_t - R^g_{t-1})\,P^g_t",
            r"\rho_{\text{mono}} = \operatorname{mean}_{\text{models, layers } s,\ \text{sides}}"
            r"\operatorname{Spearman}\big(d_{s,t},\ |t - s|\big)",
        ],
        "Each test reads a measure's *dissimilarity* $d_{ij}$ between models (its value, or its negative for a "
        "similarity) and asks whether it follows something known. The two correlation tests take ten seeds of one "
        "recipe and correlate $d$ with how differently the models behave: their accuracy, or the Jensen–Shannon "
        "divergence of their outputs. The three group tests train groups that differ in one thing (randomised "
        "labels, a shortcut pixel, input noise) and score how well similarity separates a group's own pairs from "
        "its pairs with other groups (average precision). Layer monotonicity asks, within deep networks, that a "
        "layer be less similar the farther another layer is. The intervals resample *models*, not pairs: pairs "
        "that share a model are not independent.",
        [cite("klabunde2025", "§3, the grounding tests"), f"the tests as implemented here in {derivation('12')}"],
    )


main()
