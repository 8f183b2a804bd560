"""Estimators: how the CKA estimator itself can mislead (null bias, minibatches, float32, RBF bandwidth)."""
import streamlit as st

from cka_core import RepresentationError, linear_cka
from ui.frame import figures
from ui.sources import models
from ui.pitfalls import estimators as est
from ui.frame.references import cite, derivation
from ui.sources.sidebar import current_representation
from ui.frame.shell import inside_app_frame, live_section
from ui.frame.widgets import change, fmt, log_slider, page_header, takeaway, theory

inside_app_frame()


def main() -> None:
    lesson = page_header(
        "Estimators: when the number comes from the estimator, not the data",
        "Four ways the estimator, not the representations, decides the value of CKA, one per tab: the null bias of "
        "biased CKA when features outnumber examples, minibatches, float32 Gram matrices of uncentred activations, "
        "and the RBF bandwidth.",
    )
    null_tab, minibatch_tab, float32_tab, rbf_tab = st.tabs(
        ["1 · Null bias: independent data look similar", "2 · Minibatch CKA and the batch size",
         "3 · float32 cancellation", "4 · RBF bandwidth"])
    with null_tab:
        null_bias_panel(lesson)
    try:
        with minibatch_tab:
            pair = compared_pair()
    except RepresentationError as error:
        for tab in (minibatch_tab, float32_tab, rbf_tab):
            tab.error(f"{error}")
        return
    for tab, panel in ((minibatch_tab, minibatch_panel), (float32_tab, float32_panel), (rbf_tab, rbf_panel)):
        with tab:
            st.caption(f"{pair.label} — {pair.X.shape[0]} examples, {pair.X.shape[1]} and {pair.Y.shape[1]} "
                       "features; pick Y in the minibatch tab.")
            panel(pair)


def compared_pair() -> est.Pair:
    """X = the sidebar representation, Y = another layer (of the same network, or two layers of a
    registered network when the sidebar source has no layers)."""
    rep = current_representation()
    if rep.has_model:
        others, default = est.other_layers(rep)
        other = st.selectbox("Y: another layer of the same network", others, index=others.index(default),
                             key=f"est_other_{models.get(rep.model_name).architecture}", bind="query-params",
                             help="X is the sidebar's representation.")
        return est.pair_with_layer(rep, other)
    st.info("The sidebar's source has no other layers to compare with, so panels 2–4 compare two layers of a "
            "sample model.", icon=":material/info:")
    names = models.names()
    name = st.selectbox("Sample model", names, index=names.index("mlp_seed0"), key="est_model", bind="query-params")
    network = models.get(name)
    layers = models.varying_layers(name)
    cols = st.columns(2)
    a = cols[0].selectbox("X: layer", layers, index=0, key=f"est_x_{network.architecture}", bind="query-params")
    b = cols[1].selectbox("Y: layer", layers, index=len(layers) - 1, key=f"est_y_{network.architecture}",
                          bind="query-params")
    return est.pair_of_layers(name, a, b)


@live_section("The null-bias panel")
def null_bias_panel(lesson) -> None:
    proof = st.container(key="proof")
    left, right = st.columns([1, 2.4], gap="large")
    with left:
        n = st.select_slider("Examples n", est.N_CHOICES, value=100, key="est_n", bind="query-params")
        d = st.select_slider("Features d (both representations)", est.D_CHOICES, value=1000, key="est_d",
                             bind="query-params")
        seed = st.slider("Random draw", 0, 9, 0, key="est_seed", bind="query-params")
    curve = est.null_bias_curve(int(n), int(seed))
    point = est.null_bias_point(curve, int(n), int(d))
    row = proof.columns(3)
    row[0].metric("Biased CKA", fmt(point.biased), help="X, Y independent standard Gaussian, n × d each.")
    row[1].metric("Expected d / (d + n − 1)", fmt(point.expected))
    row[2].metric("Debiased CKA", fmt(point.debiased), help="Unbiased HSIC (Song et al. 2012): near 0.")
    takeaway(lesson, est.takeaway(point))
    with right:
        fig = est.null_bias_figure(curve, d, point.index)
        figures.chart(fig, key="est_null_curve")
    theory(
        [r"\mathbb{E}\,\mathrm{CKA}_{\text{biased}}(X, Y) \approx \frac{d}{d + n - 1}"
         r"\quad (X, Y \text{ independent}, \; n \times d \text{ isotropic Gaussian})",
         r"\mathrm{HSIC}_1(K, L) = \frac{1}{n(n-3)}\Big[\operatorname{tr}(\tilde K \tilde L) + "
         r"\frac{\mathbf 1^\top \tilde K \mathbf 1\, \mathbf 1^\top \tilde L \mathbf 1}{(n-1)(n-2)} - "
         r"\frac{2}{n-2}\mathbf 1^\top \tilde K \tilde L \mathbf 1\Big]"],
        "The biased HSIC of two unrelated Gram matrices is not 0: each centred Gram has a large common part "
        "(its trace spreads over the diagonal), and with d ≫ n the Grams of any two isotropic data sets are both "
        "close to a multiple of the centring matrix, so their cosine approaches 1. The unbiased estimator "
        "($\\tilde K$: Gram with zeroed diagonal) removes that part and stays near 0. Compare any CKA value "
        "between wide layers on few examples with this baseline.",
        [cite("murphy2024"), f"unbiased HSIC: {cite('song2012')}", f"{derivation('2.3')}, reference case R10"],
    )


@live_section("The minibatch panel")
def minibatch_panel(pair: est.Pair) -> None:
    X, Y, pair_key = pair.X, pair.Y, pair.key
    left, right = st.columns([1, 2.4], gap="large")
    n = X.shape[0]
    with left:
        b = st.slider("Batch size b", 4, int(n), min(64, int(n)), key="est_batch", bind="query-params",
                      help="Rows are shuffled once (seed 0), then split into consecutive batches.")
    try:
        curve = est.minibatch_curve(pair_key, X, Y)
        Xs, Ys = est.shuffled(X, Y)
        now_biased = est.minibatch_value(Xs, Ys, b, debiased=False)
        now_debiased = est.minibatch_value(Xs, Ys, b, debiased=True)
    except RepresentationError as error:
        left.error(f"{error}")
        return
    with left:
        st.metric("Minibatch CKA, debiased", fmt(now_debiased), delta=change(now_debiased, curve.full_debiased),
                  delta_color="off", help="Difference to the full-data debiased value.")
        st.metric("Minibatch CKA, biased", fmt(now_biased), delta=change(now_biased, curve.full_biased),
                  delta_color="off", help="Difference to the full-data biased value.")
        st.metric("Full data: debiased / biased", f"{curve.full_debiased:.4f} / {curve.full_biased:.4f}")
    with right:
        fig = est.minibatch_figure(curve, b, now_debiased, now_biased)
        figures.chart(fig, key="est_minibatch_curve")
    theory(
        [r"\mathrm{CKA}_{\text{mb}} = \frac{\sum_b \mathrm{HSIC}_1(K_b, L_b)}"
         r"{\sqrt{\sum_b \mathrm{HSIC}_1(K_b, K_b)\,\sum_b \mathrm{HSIC}_1(L_b, L_b)}}"],
        "Nguyen et al. sum the unbiased HSIC of each batch separately for the cross and self terms and take the "
        "ratio at the end (averaging per-batch CKA values is a different, biased estimator). Because each HSIC₁ is "
        "unbiased, the debiased minibatch value barely depends on the batch size. The biased HSIC of a batch of b "
        "rows carries the small-sample inflation of panel 1 with n = b, so the biased minibatch value climbs as "
        "batches shrink.",
        [cite("nguyen2021"), f"{derivation('2.2')}; cka_core.cka_matrix(..., batch_size=b)"],
    )


@live_section("The float32 panel")
def float32_panel(pair: est.Pair) -> None:
    X, Y, pair_key = pair.X, pair.Y, pair.key
    left, right = st.columns([1, 2.4], gap="large")
    with left:
        offset = log_slider("Activation offset c", key="est_log_offset", low=est.OFFSET_LOG_RANGE[0],
                            high=est.OFFSET_LOG_RANGE[1], default=2.0,
                            help="Every activation of X and Y is shifted by c and stored in float32.")
    try:
        curve = est.float32_curve(pair_key, X, Y)
        x32, y32 = est.with_offset(X, offset), est.with_offset(Y, offset)
        wrong = est.uncentred_float32_cka(x32, y32)
        right_value = linear_cka(x32, y32)
    except RepresentationError as error:
        left.error(f"{error}")
        return
    with left:
        error = est.float32_error(wrong, curve.reference)
        st.metric("Uncentred float32 Gram", fmt(wrong), delta=change(wrong, curve.reference, 2, "e"), delta_color="off",
                  help="K = X Xᵀ in float32, then H K H in float32 (what several libraries do).")
        st.metric("cka_core (centred in float64)", fmt(right_value), delta=change(right_value, curve.reference, 2, "e"),
                  delta_color="off")
        st.metric("Reference (float64, centred)", fmt(curve.reference))
        if not error <= 0.1:
            st.error(f"At offset {offset:.3g} the uncentred float32 estimator is off by {error:.2g}: "
                     "the number is round-off, not similarity.")
    with right:
        fig = est.float32_figure(curve, offset, wrong)
        figures.chart(fig, key="est_float32_curve")
        st.caption("The blue curve's slow rise at large offsets comes from storing X + c in float32 at all: "
                   "neighbouring float32 numbers near c are about c · 1.2·10⁻⁷ apart, so the data themselves lose "
                   "digits. cka_core then gives the float64 value of the stored numbers.")
    theory(
        [r"K_{ij} = (x_i + c\mathbf 1)^\top (x_j + c\mathbf 1) = x_i^\top x_j + c\,\mathbf 1^\top(x_i + x_j) + c^2 d",
         r"HKH = H X X^\top H \quad\text{exactly, but in float32 } |\delta K_{ij}| \approx 2^{-24}\,c^2 d"],
        "Centring removes the offset exactly in real arithmetic, but a float32 Gram of uncentred activations "
        "stores entries of size about $c^2 d$ with 7 significant digits; the centred signal (of the size of the "
        "activations' variance) is then smaller than the round-off once $c^2 d$ is about $10^7$ times larger. "
        "Centring the features first (cka_core does it in float64) keeps every digit. Post-ReLU activations, "
        "which are all positive, carry exactly such an offset.",
        [derivation("6"), "Kornblith et al.'s reference code centres the features in float64"],
    )


@live_section("The RBF bandwidth panel")
def rbf_panel(pair: est.Pair) -> None:
    X, Y, pair_key = pair.X, pair.Y, pair.key
    left, right = st.columns([1, 2.4], gap="large")
    with left:
        log_sigma = st.slider("σ / median distance (log₁₀)", est.SIGMA_LOG_RANGE[0], est.SIGMA_LOG_RANGE[1], 0.0,
                              step=0.1, key="est_log_sigma", bind="query-params", format="%.1f",
                              help="Bandwidth as a multiple of the median pairwise distance (Kornblith et al.).")
    try:
        curve = est.bandwidth_curve(pair_key, X, Y)
        now_pair, now_noise = est.rbf_point(pair_key, X, Y, round(float(log_sigma), 1))
    except RepresentationError as error:
        left.error(f"{error}")
        return
    with left:
        st.metric(f"RBF CKA(X, Y) at σ = {est.sigma_multiple(log_sigma):.3g} × median", fmt(now_pair))
        st.metric("RBF CKA(X, random noise)", fmt(now_noise), help="Independent Gaussian noise of X's shape.")
        st.metric("Linear CKA(X, Y): the σ → ∞ limit", fmt(curve.linear))
    with right:
        fig = est.bandwidth_figure(curve, log_sigma, now_pair, now_noise)
        figures.chart(fig, key="est_rbf_curve")
    theory(
        [r"k(x_i, x_j) = \exp\!\left(-\frac{\lVert x_i - x_j\rVert^2}{2\sigma^2}\right),\quad"
         r"\sigma = s \cdot \sqrt{\operatorname{median}_{ij} \lVert x_i - x_j\rVert^2}",
         r"\sigma \to 0:\; K \to I,\; \mathrm{CKA} \to 1 \qquad \sigma \to \infty:\; "
         r"K \approx \mathbf 1\mathbf 1^\top - \tfrac{1}{2\sigma^2} D,\; \mathrm{CKA} \to \mathrm{CKA}_{\text{linear}}"],
        "With a tiny bandwidth every example is only similar to itself, so both kernel matrices become the "
        "identity and CKA is 1 for *any* two representations of distinct points -- even noise. With a huge "
        "bandwidth the kernel is linear in the squared distances, whose centred Gram is the linear Gram, so RBF "
        "CKA tends to linear CKA. Only bandwidths near the median distance (Kornblith et al. use 0.2–0.8 × "
        "median) say something the linear kernel does not.",
        [cite("kornblith2019", "Table 2: RBF CKA at 0.2/0.4/0.8 × median"),
         f"{cite('alvarez2021')} for the σ → ∞ limit", f"{derivation('7')}, reference case R11"],
    )


main()
