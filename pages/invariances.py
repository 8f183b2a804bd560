"""Invariances: transform a representation and see which similarity measures move."""
import numpy as np
import pandas as pd
import streamlit as st

from cka_core import MEASURES, RepresentationError
from cka_core.transforms import TRANSFORMATIONS, declared_invariant, median_scale_ratio
from ui import figures
from ui import invariances as inv
from ui.sidebar import current_representation
from ui.shell import inside_app_frame
from ui.widgets import fmt, log_slider, page_header, theory

inside_app_frame()

page_header(
    "Invariances: which measure ignores which transformation",
    "Transform the chosen representation — rotate it, rescale it, mix its features, add noise, delete its "
    "low-variance principal components — and compare the result with the original under every similarity "
    "measure. A measure that *declares* an invariance (✓) must not move at all; the others show how sensitive "
    "they are. The table at the bottom checks every measure against every transformation at a fixed, moderate "
    "strength, so one glance shows which measure is invariant to what.",
)

rep = current_representation()
X, subset_note = inv.working_matrix(rep.key, rep)
n, d = X.shape
st.caption(f"Representation: **{rep.label}** — {rep.X.shape[0]} examples × {rep.X.shape[1]} features.")
if subset_note:
    st.info(subset_note)
if d >= n - 1:
    st.caption(f"With {d} features for {n} examples the centred representation spans every direction the examples "
               "allow, so measures invariant to invertible linear maps (mean CCA) read 1 for *any* pair here.")

NAMES = list(TRANSFORMATIONS)
SHORT = {"orthogonal": "Orthogonal", "isotropic": "Isotropic", "anisotropic": "Anisotropic",
         "one_feature": "One feature", "invertible": "Invertible", "permutation": "Permutation",
         "translation": "Translation", "noise": "Noise", "top_k": "Top-k PCs"}

controls, results = st.columns([1, 2.4], gap="large")
with controls:
    name = st.selectbox("Transformation", NAMES, index=NAMES.index("invertible"), key="inv_transform",
                        bind="query-params", format_func=lambda t: TRANSFORMATIONS[t].label,
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
            strength = float(st.slider("Components kept k", 1, d, max(1, d // 4), key="inv_k", bind="query-params",
                                       help="X is projected on its k leading principal components."))
    else:
        st.caption("A map of this kind has no strength: move the seed to draw another one.")
    seed = st.slider("Random seed", 0, 20, 0, key="inv_seed", bind="query-params", disabled=not info.uses_seed,
                     help="Seed of the random map (or of the noise, or of the chosen feature).")

reference, reference_errors = inv.identity_values(rep.key, X)
if len(reference_errors) == len(MEASURES):
    results.error("No similarity measure can be computed on this representation, so there is nothing to compare: "
                  + " ".join(f"**{MEASURES[m].label}**: {msg}" for m, msg in reference_errors.items())
                  + " Pick another source in the sidebar.")
    st.stop()
try:
    result = inv.panel(rep.key, X, name, strength, seed)
except RepresentationError as error:
    results.error(str(error))
    st.stop()

values, errors = result["values"], {**reference_errors, **result["errors"]}
declared = {m: declared_invariant(MEASURES[m].invariances, name) for m in MEASURES}
moved = {m: inv.movement(m, values[m], reference[m]) for m in MEASURES if m in values and m in reference}

with results:
    if errors:
        st.error("Some measures cannot be computed on this representation: "
                 + " ".join(f"**{MEASURES[m].label}**: {msg}" for m, msg in errors.items()))
    names = list(MEASURES)
    for start in range(0, len(names), 3):
        row = st.columns(3)
        for column, m in zip(row, names[start:start + 3]):
            measure = MEASURES[m]
            low, high = measure.value_range
            tail = (f" Range {low:g} to {high:.3g}, {'higher' if measure.higher_is_similar else 'lower'} = more similar; "
                    f"identical inputs give {fmt(reference.get(m))}.")
            if m not in values:
                column.metric(measure.label, "—", help=errors.get(m, ""))
                continue
            delta = values[m] - reference[m]
            tiny = abs(delta) < 5e-5
            column.metric(
                measure.label, fmt(values[m]), delta="0.0000" if tiny else f"{delta:+.4f}",
                delta_color="off" if tiny else ("normal" if measure.higher_is_similar else "inverse"),
                delta_arrow="off" if tiny else "auto",
                delta_description="✓ declared invariant" if declared[m] else None,
                help=f"{measure.description}{tail} ({measure.reference})",
            )
    if "prediction" in result:
        st.metric("Linear CKA predicted by R8", fmt(result["prediction"]),
                  help="sqrt(Σ_{i≤k} λ_i² / Σ λ_i²) from the covariance eigenvalues λ of X: exact for linear CKA.")
    broken = [MEASURES[m].label for m in moved if declared[m] and abs(values[m] - reference[m]) > inv.INVARIANCE_TOL]
    if broken:
        st.error(f"Bug: {', '.join(broken)} declare(s) invariance to this transformation but moved by more than "
                 f"{inv.INVARIANCE_TOL:g}.")

    left, right = st.columns(2)
    order = [m for m in MEASURES if m in moved]
    fig = inv.movement_bars([MEASURES[m].label for m in order], [moved[m] for m in order],
                            [declared[m] for m in order], title=f"How far each measure moved: {SHORT[name]}")
    left.plotly_chart(fig, key="inv_bars", config=figures.CHART_CONFIG)
    left.caption("Grey bars (✓): measures that declare invariance to this transformation — they must stay at 0. "
                 "Blue bars: measures that promise nothing here.")

    shares_x, shares_y = result["shares_x"], result["shares_y"]
    pcs = np.arange(1, shares_x.size + 1)
    fig = figures.curve(pcs, {"X": np.where(shares_x > 1e-12, shares_x, np.nan),
                              "T(X)": np.where(shares_y[: pcs.size] > 1e-12, shares_y[: pcs.size], np.nan)},
                        title="Share of variance per principal component", x_title="principal component",
                        y_title="share of the total variance")
    fig.update_yaxes(type="log", exponentformat="power", dtick=1)
    fig.update_traces(line=dict(color=figures.COLOURS["original"], width=4), selector=dict(name="X"))
    fig.update_traces(line=dict(color=figures.COLOURS["current"], dash="dash"), mode="lines+markers",
                      marker=dict(size=4), selector=dict(name="T(X)"))
    right.plotly_chart(fig, key="inv_spectrum", config=figures.CHART_CONFIG)
    right.caption("CKA weighs principal directions by their squared variance: maps that keep this curve "
                  "(rotations, isotropic scaling) keep CKA at 1; maps that reshape it move CKA.")

st.subheader("Which measure is invariant to what")
table = inv.table(rep.key, X)
t_labels = [f"{SHORT[t]}<br>{table['strengths'][t]}" for t in table["transformations"]]
m_labels = [MEASURES[m].label for m in table["measures"]]
movement_table = table["movement"]
text = [[("—" if np.isnan(movement_table[i, j]) else f"{movement_table[i, j]:.3f}")
         + (" ✓" if table["declared"][i, j] else "") + (" ⚠" if table["violation"][i, j] else "")
         for j in range(movement_table.shape[1])] for i in range(movement_table.shape[0])]
fig = figures.heatmap(np.nan_to_num(movement_table, nan=0.0), t_labels, m_labels,
                      title="How far each measure moves from its value for identical inputs (|Δ| / range)",
                      z_range=(0.0, 1.0), x_title="transformation", y_title="measure", colour_title="|Δ| / range")
fig.update_traces(text=text, texttemplate="%{text}", customdata=table["values"],
                  hovertemplate="%{y} under %{x}<br>|Δ| / range = %{z:.2e}<br>value = %{customdata:.6f}<extra></extra>")
fig.update_layout(height=520, margin=dict(l=60, r=20, t=50, b=60))
fig.update_xaxes(tickangle=0, side="bottom")
st.plotly_chart(fig, key="inv_table", config=figures.CHART_CONFIG)
st.caption(
    "✓: the measure declares an invariance class that contains the transformation (a permutation is also an "
    "orthogonal map, and orthogonal maps and isotropic scalings are invertible linear maps), so the cell must be "
    "0. Noise and top-k PC projection are in no invariance class: those columns only show how much each measure "
    f"moves. Seed {inv.TABLE_SEED} for every random map; movement 0.000 can still hide a change below 5·10⁻⁴."
)
if table["failed"]:
    st.error("Columns left empty: " + " ".join(f"**{TRANSFORMATIONS[t].label}**: {msg}" for t, msg in table["failed"].items()))
if table["violation"].any():
    cells = [f"{m_labels[i]} under {TRANSFORMATIONS[table['transformations'][j]].label}"
             for i, j in zip(*np.nonzero(table["violation"]))]
    st.error(f"Bug: a declared invariance moved by more than {inv.INVARIANCE_TOL:g} (⚠): {'; '.join(cells)}.")
else:
    st.success(f"Every declared invariance holds: no ✓ cell moved by more than {inv.INVARIANCE_TOL:g}.")

with st.expander("Values behind the table"):
    frame = pd.DataFrame(table["values"], index=m_labels,
                         columns=[label.replace("<br>", " · ") for label in t_labels])
    frame.insert(0, "m(X, X)", [table["reference"].get(m, np.nan) for m in table["measures"]])
    st.dataframe(frame, key="inv_values",
                 column_config={c: st.column_config.NumberColumn(format="%.6f") for c in frame.columns})

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
    ],
    "Linear CKA compares the centred Gram matrices, so it ignores translations, rotations, reflections and a common "
    "scale: the first two lines. It is deliberately **not** invariant to invertible linear maps: Kornblith et al. "
    "show that any index with that invariance gives the same value to every pair of representations as soon as the "
    "width reaches the number of examples — which is why mean CCA, invariant to all of them, reads 1 here under any "
    "invertible map. The eigen form shows that CKA weighs principal directions by their *squared* variance $\\lambda$: "
    "deleting the low-variance components (third line, notes R8) barely moves it when the spectrum decays, while "
    "inflating one feature (fourth line, notes R9) or mixing features with a badly conditioned map (last line, R7 for "
    "a random Gaussian $M$) can take it far from 1 although the information in $X$ is unchanged. Ding et al. turn "
    "this into two tests: a good measure should be *specific* (not move under changes that keep function) and "
    "*sensitive* (move when low-variance components that probes rely on are deleted); CKA fails the second, CCA "
    "over-reacts to noise, orthogonal Procrustes is the most balanced baseline.",
    "Kornblith et al., *Similarity of Neural Network Representations Revisited*, ICML 2019 (§3, invariances); "
    "Davari et al., *Reliability of CKA as a Similarity Measure in Deep Learning*, ICLR 2023 (§4.2: invertible maps "
    "and anisotropic rescaling); Ding, Denain & Steinhardt, *Grounding Representation Similarity with Statistical "
    "Testing*, NeurIPS 2021; derivations R7–R9 in notes/papers.md §3 and §5.",
)
