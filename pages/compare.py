"""Compare: two models or representation files -> layer x layer heatmaps with uncertainty,
sanity checks, a drill-down into one cell, and exports."""
import streamlit as st

from cka_core import RepresentationError
from cka_core.stats import sanity
from ui.compare import charts, controls, export, heatmap, inference, sides
from ui.frame import figures
from ui.frame.references import cite, derivation
from ui.frame.shell import inside_app_frame
from ui.frame.widgets import fmt, page_header, takeaway, theory
from ui.sources import own_models as own

inside_app_frame()


def main() -> None:
    lesson = page_header(
        "Compare two models, layer by layer",
        "Two models or their saved activations (the same examples, in the same order) → a layer × layer heatmap with "
        "intervals, p-values, sanity checks and a drill-down into any cell.",
    )
    compare_section(lesson)
    show_theory()


def compare_section(lesson) -> None:
    inference.collect_job()  # a job that finished since the last run
    col_a, col_b = st.columns(2, gap="large")
    with col_a:
        a, health_a = sides.side_picker("A", "mlp_seed0")
    with col_b:
        b, health_b = sides.side_picker("B", "mlp_seed1")
    effects = None
    if isinstance(a, own.ModelChoice) or isinstance(b, own.ModelChoice):
        a, b, effects = your_models_section(a, b)
    if a is None or b is None:
        st.info("The heatmap appears once both sides hold usable layers.")
        return
    if a.n != b.n:
        st.error(f"Side A has {a.n} examples but side B has {b.n}. CKA compares the same examples seen by two "
                 "representations: save both with one row per example, the same examples in the same order.",
                 icon=":material/error:")
        return

    settings, fitted = controls.measure_controls(a, b)
    try:
        a = controls.without_confounder(a, settings)
        values, seconds = heatmap.heatmap_values(*sides.pair_arguments(a, b), settings.key, a.layers, b.layers, settings)
    except RepresentationError as error:
        st.error(f"{error}", icon=":material/error:")
        return

    head = st.container()  # metrics and heatmap: drawn once the uncertainty controls below are read
    st.subheader("Uncertainty per cell")
    st.markdown("Bootstrap intervals resample the examples (the same rows on both sides); permutation p-values "
                "shuffle B's rows against A's, the null of unpaired examples. " + inference.MARKING_TEXT)
    with st.expander("Settings: bootstrap resamples, permutations, interval level, seed", expanded=False):
        n_boot, n_perm, confidence, seed = inference.inference_controls(seconds)
    with st.columns([1, 2])[0]:
        adjustment = inference.p_adjustment_control()
    note = inference.p_adjustment_floor_note(n_perm, values.size, adjustment)
    if note:
        st.warning(note, icon=":material/warning:")
    key = inference.inference_key(a, b, settings, n_boot, n_perm, confidence, seed)
    result = inference.with_p_adjustment(inference.stored_inference(key), adjustment)

    i, j = heatmap.best_cell(values, settings)
    takeaway(lesson, heatmap.takeaway(values, a, b, settings))
    with head:
        row = st.container(key="proof").columns(4)
        row[0].metric("Examples", f"{a.n}")
        row[1].metric("Layers (A × B)", f"{len(a.names)} × {len(b.names)}")
        row[2].metric(f"Best match ({_short_pair(a.names[i], b.names[j])})", fmt(float(values[i, j])),
                      help=f"{settings.label} between {a.names[i]} (A) and {b.names[j]} (B), the most similar pair.")
        if result is not None:
            row[3].metric("Cells beyond chance", f"{inference.beyond_chance(result)} of {values.size}",
                          help=inference.MARKING_TEXT.replace("**", ""))
        else:
            row[3].metric("Heatmap time", heatmap.milliseconds(seconds), help="Computing every cell once (cached "
                                                                               "afterwards).")
        figures.chart(charts.heatmap_figure(values, a, b, settings, result, fitted=fitted), key="cmp_heatmap")

    if effects is not None:
        reduction_section(effects, a, b)
    progress = _inference_section(key, result, a, b, settings)
    _sanity_section(a, b, settings, values, [h for h in (health_a, health_b) if h is not None])
    _drilldown_section(a, b, values, settings, (i, j))
    _exports(values, a, b, settings, result)
    inference.follow_job(progress)


def your_models_section(a, b):
    """Inputs and reduction for the user's own models, and their forward passes: (side A, side B,
    the reduction's effect or None), sides None while waiting."""
    choices = [side for side in (a, b) if isinstance(side, own.ModelChoice)]
    st.subheader("Inputs both models read")
    kinds = {choice.model.input_kind for choice in choices}
    examples = own.inputs_panel(kinds)
    if examples is None:
        return None, None, None
    how, options = own.reduction_choice(choices)
    st.caption(f"{len(examples)} examples ({examples.source}), SHA-256 {examples.digest[:12]}…: every model reads these, "
               "in this order.")
    if own.rows_are_dependent(how):
        st.warning("Rows are tokens or positions, not independent examples: the bootstrap intervals and permutation "
                   "p-values below treat them as independent, so they come out too narrow and too small "
                   "(docs/theory.md §1.6). Use one row per example for them.", icon=":material/warning:")
    runs = {}
    for choice in choices:
        result = own.run(choice, examples, own.all_reductions(options, how, len(examples)))
        if result is None:
            return None, None, None
        runs[choice.side] = result
        own.register(choice, result[how], examples)
    both = [sides.without_constant_layers(sides.model_side(side, runs[side.side][how], examples))[0]
             if isinstance(side, own.ModelChoice) else side for side in (a, b)]
    effects = None
    if len(runs) == 2 and options:
        effects = heatmap.reduction_effects(runs["A"], runs["B"], how, options, debiased=False)
    return both[0], both[1], effects


def reduction_section(effects, a, b) -> None:
    st.subheader("How the layers were reduced changes the map")
    st.markdown("A layer of a language model gives one vector per token, a convolution one per position; CKA needs "
                "one matrix, and the choice is itself a pitfall. Linear CKA between the same layers under every "
                "reduction (largest change from the chosen one in each title):")
    figures.chart(charts.reduction_figure(effects, list(a.names), list(b.names)), key="cmp_reductions")
    rows = [{"reduction": e.label, "max |Δ| vs chosen": e.max_change, "mean |Δ|": e.mean_change, "note": e.note or ""}
            for e in effects]
    st.dataframe(rows, hide_index=True, key="cmp_reduction_table",
                 column_config={k: st.column_config.NumberColumn(format="%.3f") for k in ("max |Δ| vs chosen",
                                                                                         "mean |Δ|")})


def _short_pair(x: str, y: str) -> str:
    text = f"{x} ↔ {y}"
    return text if len(text) <= 28 else text[:27] + "…"


def _inference_section(key, result, a, b, settings):
    """The run button, the running job's progress slot (returned, filled at the end of the page) and
    the result's summary."""
    # The request goes through a callback (run before the script), not the button's return value: a
    # button's one-run trigger is lost if the run restarts early (ui.frame.shell.inside_app_frame does that).
    job = inference.current_job()
    if inference.run_requested() and result is None and job is None:
        job = inference.start_job(key, a, b, settings, *key[-4:])
    st.button("Compute intervals and p-values", type="primary", key="cmp_run", icon=":material/play_arrow:",
              disabled=result is not None or job is not None, on_click=inference.request_run,
              help="Done for these settings." if result is not None else None)
    progress = inference.job_panel(job, key) if job is not None else None
    failure = inference.job_failure(key) if job is None else None
    if failure:
        st.warning(failure, icon=":material/stop_circle:")
    if result is None:
        if job is None:
            st.caption("Not computed for these settings yet.")
        return progress
    boot, perm = result.bootstrap, result.permutation
    st.caption(f"{boot.n_resamples} bootstrap resamples and {perm.n_permutations} permutations (seed {result.seed}) "
               f"took {result.seconds:.1f} s. Hover a cell of the heatmap for its interval and p-value.")
    rows = inference.cell_rows(a, b, result)
    with st.expander(f"Every cell: value, interval, p-value, null ({len(rows)} rows)", expanded=False):
        _cells_table(rows, boot)
    return progress


def _cells_table(rows, boot) -> None:
    st.dataframe(rows, hide_index=True, key="cmp_cells", height=inference.table_height(len(rows)),
                 column_config={"value": st.column_config.NumberColumn(format="%.4f"),
                                "low": st.column_config.NumberColumn(f"{boot.confidence:.0%} low", format="%.4f"),
                                "high": st.column_config.NumberColumn(f"{boot.confidence:.0%} high", format="%.4f"),
                                "p": st.column_config.NumberColumn("p-value", format="%.4f"),
                                "p adjusted": st.column_config.NumberColumn(
                                    "p adjusted", format="%.4f", help="Corrected for testing every cell at once "
                                    "(equal to the p-value when no correction is chosen)."),
                                "null mean": st.column_config.NumberColumn(format="%.4f"),
                                "null sd": st.column_config.NumberColumn(format="%.4f")})


def _sanity_section(a, b, settings, values, health) -> None:
    st.subheader("Sanity checks")
    checks = heatmap.sanity_checks(*sides.pair_arguments(a, b), settings.key, a.layers, b.layers, settings, values)
    inputs = sides.inputs_check(a, b)
    for check in [*health, *([inputs] if inputs else []), *checks]:
        heatmap.check_line(check)
    dn = next((c for c in checks if c.name.startswith("Width")), None)
    if dn is not None and dn.details.get("rows"):
        with st.expander("Biased CKA against its shuffled-rows null, beside the debiased value", expanded=dn.status == "warn"):
            st.dataframe(dn.details["rows"], hide_index=True, key="cmp_dn",
                         column_config={k: st.column_config.NumberColumn(format="%.3f") for k in
                                        ("biased_cka", "null_mean_biased", "isotropic_null", "debiased_cka")})
            st.caption("null_mean_biased: the exact mean of biased CKA over all shufflings of the rows, "
                       "tr(K) tr(L) / ((n − 1) ‖K‖ ‖L‖); isotropic_null: d/(d + n − 1) for random isotropic features; "
                       "debiased CKA's shuffled-rows mean is exactly 0.")
    plan = heatmap.baseline_plan(a, b)
    if plan is None:
        heatmap.check_line(sanity.Check(
            "Random-init baseline", sanity.INFO,
            "available when a side is a trained sample model (it is compared with its untrained twin)."))
        return
    replaced, model = plan
    try:
        what, baseline = heatmap.baseline_values(*sides.pair_arguments(a, b), settings.key, replaced, model,
                                                 a.layers, b.layers, settings)
    except RepresentationError as error:
        heatmap.check_line(sanity.Check("Random-init baseline", sanity.INFO, str(error)))
        return
    check = sanity.random_init_baseline(values, baseline, a.names, b.names, measure=settings.measure,
                                                replaced=replaced, what=what)
    heatmap.check_line(check)
    with st.expander(f"Random-init baseline heatmap ({replaced} = {what})", expanded=False):
        figures.chart(charts.baseline_figure(baseline, a, b, settings, replaced), key="cmp_baseline")


def _drilldown_section(a, b, values, settings, best) -> None:
    # Not a live_section: while a resampling job runs, the page's run follows it (follow_job), and a
    # section's rerun would wait behind that run where a full rerun interrupts it.
    st.subheader("Drill-down: why one cell has its value")
    st.markdown("Linear CKA is the cosine between the two centred Gram matrices, and splits exactly into pairs of "
                "principal components, each weighted by both variances (the eigen form below). Pick a cell; the "
                "decomposition is of *biased linear* CKA whatever measure the heatmap shows.")
    cols = st.columns([1, 1, 1])
    layer_a = cols[0].selectbox("Layer of A", a.names, index=best[0], key=f"cmp_dd_a_{sides.url_scope(a)}",
                                bind="query-params")
    layer_b = cols[1].selectbox("Layer of B", b.names, index=best[1], key=f"cmp_dd_b_{sides.url_scope(b)}",
                                bind="query-params")
    k = cols[2].slider("Components shown (k)", 2, 20, 8, key="cmp_dd_k", bind="query-params")
    try:
        result = heatmap.drill(a.key, layer_a, b.key, layer_b, a.layers[layer_a], b.layers[layer_b])
    except RepresentationError as error:
        st.error(f"{error}")
        return
    contrib = result.contributions
    lead = contrib.leading_pairs(1)[0]
    values_row = st.columns(2)  # each value's label names its measure and direction in full
    values_row[0].metric(f"Linear CKA, biased ({sanity.direction('linear_cka').reads})", fmt(contrib.cka),
                         help="What this section decomposes, whatever measure the heatmap shows: 1 for identical "
                              "representations, 0 for unrelated ones.")
    if settings.measure != "linear_cka" or settings.batch_size is not None:
        values_row[1].metric(f"Heatmap: {settings.label} ({sanity.direction(settings.measure).reads})",
                             fmt(heatmap.value_at(values, a, b, layer_a, layer_b)),
                             help=f"The heatmap's value in this cell: {settings.info.description}")
    row = st.columns(3)
    row[0].metric("Participation ratios (A, B)", heatmap.participation_ratios(contrib),
                  help="Effective number of dimensions, (Σλ)²/Σλ².")
    row[1].metric(f"Top {k}×{k} pairs carry", heatmap.top_pairs_share(contrib, k),
                  help="Share of linear CKA in the k leading components of each side.")
    row[2].metric("Largest pair", heatmap.pc_pair(lead),
                  delta=f"{lead[2]:.3f} of {contrib.cka:.3f}", delta_color="off", delta_arrow="off",
                  help="The principal-component pair with the largest term of the eigen form.")
    if result.rows_used < a.n:  # the drill-down's Grams are n x n
        st.caption(f"Computed on {result.rows_used} evenly spaced examples of the {a.n} (n × n Gram matrices).")
    left, right = st.columns(2)
    with left:
        figures.chart(charts.gram_scatter_figure(result.scatter, layer_a, layer_b), key="cmp_dd_scatter")
    with right:
        figures.chart(charts.spectra_figure(contrib, layer_a, layer_b), key="cmp_dd_spectra")
    figures.chart(charts.contributions_figure(contrib, k), key="cmp_dd_contrib")


def _exports(values, a, b, settings, result) -> None:
    st.subheader("Export")
    doc = export.export_document(values, a, b, settings, result)
    cols = st.columns([1, 1, 3])
    cols[0].download_button("CSV (one row per cell)", export.export_csv(doc), file_name="cka_compare.csv",
                            mime="text/csv", key="cmp_csv", on_click="ignore", icon=":material/download:")
    cols[1].download_button("JSON", export.export_json(doc), file_name="cka_compare.json", mime="application/json",
                            key="cmp_json", on_click="ignore", icon=":material/download:")
    cols[2].caption("The CSV holds one row per cell (value" + (", interval, p-value" if result is not None else "")
                    + "), plain for any CSV reader; the JSON holds the same and every setting needed to reproduce "
                    "them (sources with SHA-256 digests, measure, estimator, counts, seed). PNG: the camera icon in each "
                    "chart's toolbar. The same files from the command line: `python -m cka_core compare A.npz B.npz "
                    "--bootstrap 200 --permutations 200 --out heat.json`.")


def show_theory() -> None:
    theory(
        [
            r"\mathrm{CKA}(X, Y) = \frac{\lVert Y_c^\top X_c\rVert_F^2}{\lVert X_c^\top X_c\rVert_F\,\lVert Y_c^\top Y_c\rVert_F}"
            r"= \sum_{i,j} \frac{\lambda_X^i \lambda_Y^j \langle u_X^i, u_Y^j\rangle^2}{\sqrt{\sum_i (\lambda_X^i)^2 \sum_j (\lambda_Y^j)^2}}",
            r"\mathbb{E}_{\pi}\big[\mathrm{CKA}_{\text{biased}}(X, P_\pi Y)\big] = \frac{\operatorname{tr}K\,\operatorname{tr}L}"
            r"{(n-1)\lVert K\rVert_F \lVert L\rVert_F} = \frac{\sqrt{\mathrm{PR}_X\,\mathrm{PR}_Y}}{n-1}"
            r"\;\approx\; \frac{d}{d+n-1}\ \text{(isotropic, equal widths)}",
            r"\mathbb{E}_{\pi}\big[\mathrm{CKA}_{\text{debiased}}(X, P_\pi Y)\big] = 0",
            r"\text{interval} = \big[\,v + q_{\alpha/2} - m,\; v + q_{1-\alpha/2} - m\,\big],\qquad "
            r"p = \frac{1 + \#\{\text{null} \ge v\}}{1 + N}",
        ],
        "Linear CKA compares the two centred Gram matrices $K = X_cX_c^\\top$ and $L = Y_cY_c^\\top$ (the cosine between "
        "them as vectors); its eigen form splits the value into pairs of principal components weighted by both "
        "eigenvalues, so high-variance components dominate (the drill-down shows the terms). Shuffling the rows of one "
        "side keeps each Gram's spectrum, so biased CKA of *unrelated* examples averages $\\sqrt{PR_X PR_Y}/(n-1)$ "
        "(PR: participation ratio) — close to 1 when features outnumber examples — while the debiased estimator "
        "(unbiased HSIC) averages exactly 0. The bootstrap resamples examples with replacement; duplicated examples "
        "inflate CKA, so the percentile interval is re-centred on the full-data value $v$ ($m$ is the median of the "
        "resamples). The permutation p-value is exact under exchangeable rows and never 0.",
        [cite("kornblith2019", "CKA, eigen form, sanity check across seeds"), cite("song2012", "unbiased HSIC"),
         cite("nguyen2021", "minibatch CKA"), cite("murphy2024", "biased CKA at small n, large d"),
         f"the eigen form in {derivation('1.4')}, the shuffled-rows mean in {derivation('2.3')}, the intervals and "
         f"p-values in {derivation('9')}"],
    )


main()
