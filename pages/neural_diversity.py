"""Neural diversity: neurons that learn (and adapt) their own activation curves, and what CKA sees."""
import streamlit as st

from ui.frame import figures
from ui.neural_diversity import charts, choices, neurons, paper, sweeps
from ui.frame.references import cite, derivation
from ui.frame.shell import inside_app_frame, live_section
from ui.frame.widgets import choose, fmt, in_rows, page_header, percent, points_delta, takeaway, theory

inside_app_frame()


def main() -> None:
    lesson = page_header(
        "Neural diversity: neurons with their own activation curves",
        "Geadah et al. give every neuron a learnable f–I curve γ(x; n, s) with its own gain *n* and saturation *s*, "
        "and let adaptive recurrent units reset them at every time step; they report the adaptive networks the most "
        "robust to shifts in the input statistics. Does that hold here, and does CKA between clean and perturbed "
        "hidden states tell you which networks are the robust ones? The answers are right below, for the networks "
        "and perturbation you choose next to them; further down, the γ family, what the zoo learned, and the "
        "evidence.",
    )
    protocol, kind, amplitude_index, setting = question_and_answer(lesson)
    papers_claim = st.container()  # filled last: its scorecard is the slowest part of a first visit
    gamma_family()
    learned_diversity()
    robustness(protocol, kind, amplitude_index, setting)
    what_cka_says(protocol, kind, amplitude_index, setting)
    adaptation(protocol, kind, amplitude_index, setting)
    with papers_claim:
        paper_check(protocol, kind, amplitude_index, setting)


def question_and_answer(lesson) -> tuple[str, str, int, tuple]:
    """The controls that drive the takeaway, next to its proof; returns the networks' protocol, the perturbation
    kind, the index of its amplitude on the grid and its settings."""
    controls, proof = st.columns([1, 2.2], gap="large")
    with controls:
        protocol, kind, k, setting = perturbation_controls()
    sweep = sweeps.sweep(protocol, kind, *setting)
    result = sweeps.verdict(sweep, k)
    takeaway(lesson, sweeps.takeaway(result, float(sweep.amplitudes[k])))
    with proof:
        the_answer(result)
    return protocol, kind, k, setting


def perturbation_controls() -> tuple[str, str, int, tuple]:
    """Which networks, which perturbation, and only that perturbation's own settings."""
    protocol = choose(st.radio, "Networks", choices.PROTOCOLS, key="nd_protocol",
                      help="Geadah et al.'s protocol: RNNs that read the digit one pixel per step in a fixed random "
                           "order (their permuted sequential MNIST, on 8×8 digits), initialised and trained as in "
                           "their code. The zoo's networks: RNNs that read one row per step, and MLPs.")
    kind = choose(st.radio, "Perturbation", choices.PERTURBATIONS, key="nd_kind",
                  help="Gain modulation and step drive as in Geadah et al.; the noise is the same fixed pattern "
                       "scaled by A. Each perturbation shows only its own settings.")
    top, step, default = choices.AMPLITUDES[kind]
    label, key, explained = choices.AMPLITUDE_SLIDERS[kind]
    amplitude = st.slider(label, 0.0, top, default, step=step, key=key, bind="query-params", help=explained)
    uses = choices.SETTINGS[kind]
    frequency = seed = window = None
    if "frequency" in uses:
        frequency = st.slider("Frequency f (cycles over the sequence)", 0.5, 4.0, 1.0, step=0.5, key="nd_freq",
                              bind="query-params")
    if "seed" in uses:
        seed = st.slider("Noise seed", 0, 9, 0, key="nd_seed", bind="query-params")
    if "window" in uses:
        window = st.slider("Drive window (eighths of the sequence)", 1, 8, (3, 4), key="nd_window",
                           bind="query-params",
                           help="First and last eighth of the sequence that get the drive: those rows for the "
                                "row-by-row RNNs, steps 8(first − 1) + 1 to 8·last of the 64 pixel steps. Geadah et "
                                "al. drive steps 200–400 of 784: eighths 3–4.")
    return protocol, kind, choices.snap(kind, amplitude), choices.kind_settings(kind, frequency, seed, window)


def paper_check(protocol: str, kind: str, k: int, setting: tuple) -> None:
    """Geadah et al.'s finding against both sets of networks: at their test settings, and for the chosen
    perturbation."""
    st.markdown("**Does the adaptive RNN come out the most robust, as in the paper?** Its rank by accuracy retained "
                "(1 = most robust) at the paper's test settings:")
    scores = paper.scorecard()
    st.dataframe(paper.scorecard_rows(scores), hide_index=True, width="stretch")
    st.caption("Pixels: Geadah et al.'s protocol (the digits read one pixel per step in a fixed random order, their "
               "initialisation and training), 4 RNNs per training seed, 3 seeds. Zoo, rows: the zoo's 3 row-by-row "
               "RNNs and 3 MLPs. The drive window is the paper's steps 200–400 of 784 scaled (steps 17–32 of 64); "
               "the paper's noise is the noisy drive, not input noise.")
    st.markdown(f"**{paper.scorecard_verdict(scores)}**")
    st.info(paper.paper_comparison(protocol, kind, *setting, k) + " Every network's curve is in section 3 (switch the "
            "networks at the top); docs/theory.md §10.4 has the protocol and what differs from the paper.",
            icon=":material/science:")


def the_answer(result) -> None:
    with st.container(key="proof"):
        if result.agreement is not None:
            row = st.columns(2)
            row[0].metric("Spearman ρ", fmt(result.agreement.spearman, 3),
                          help="Rank correlation of CKA(clean, perturbed) with accuracy retained (perturbed / clean) "
                               "across the networks. 1: CKA orders them exactly by robustness.")
            row[1].metric("Kendall τ", fmt(result.agreement.kendall, 3),
                          help="Concordant minus discordant pairs of networks, as a fraction (τ-b, ties allowed).")
            st.caption(result.resolution)
            row = st.columns(2)
            row[0].metric("Most robust by accuracy", result.top_accuracy)
            row[1].metric("Most robust by CKA", result.top_cka)
        getattr(st, result.level)(result.text)


def _apply_preset() -> None:
    n, s = choices.preset_values(st.session_state["nd_preset"])
    if n is not None:
        st.session_state["nd_gain"] = n
        st.session_state["nd_saturation"] = s


def _to_custom() -> None:
    st.session_state["nd_preset"] = choices.PRESETS["custom"][0]


@live_section("The γ family section")
def gamma_family() -> None:
    st.header("1 · The γ(x; n, s) family")
    controls, plot = st.columns([1, 2.6], gap="large")
    with controls:
        choose(st.selectbox, "Preset", {c: label for c, (label, _, _) in choices.PRESETS.items()}, key="nd_preset",
               default="init", on_change=_apply_preset,
               help="Sets the two sliders: softplus-like s = 0, n = 1; sigmoid-like s = 1, n = 1; ReLU-like s = 0, "
                    "n = 20; as initialised n = 6, s = 0.5 (the zoo's start). Moving a slider switches back to Custom.")
        gain = st.slider("Gain n", 0.1, 20.0, 6.0, step=0.1, key="nd_gain", bind="query-params", on_change=_to_custom,
                         help="Sharpness: γ tends to ReLU (s = 0) or a step (s = 1) as n → ∞.")
        saturation = st.slider("Saturation s", 0.0, 1.0, 0.5, step=0.01, key="nd_saturation", bind="query-params",
                               on_change=_to_custom, help="0: softplus (unbounded), 1: sigmoid (saturates at 1).")
        summary = neurons.gamma_summary(gain, saturation)
        row = st.columns(2)
        row[0].metric("γ(0)", fmt(summary.at_zero, 3), help="(1 − s)·ln2/n + s/2: the firing rate at zero drive.")
        row[1].metric("Slope at 0", fmt(summary.slope_at_zero, 3), help="∂γ/∂x at x = 0: (1 − s)/2 + s·n/4.")
        row = st.columns(2)
        row[0].metric("Max slope", fmt(summary.max_slope, 3), help="Largest ∂γ/∂x on the plotted range.")
        row[1].metric("γ(4)", fmt(summary.at_four, 3), help="(1 − s)·4 + s for large n: bounded only if s = 1.")
    with plot:
        figures.chart(charts.gamma_chart(float(gain), float(saturation)), key="nd_gamma_chart")
    theory(
        [
            r"\gamma(x;n,s) = (1-s)\,\frac{1}{n}\log\!\left(1+e^{nx}\right) + s\,\sigma(nx),\qquad \sigma(z)=\frac{1}{1+e^{-z}}",
            r"\frac{\partial\gamma}{\partial x} = (1-s)\,\sigma(nx) + s\,n\,\sigma(nx)\bigl(1-\sigma(nx)\bigr)",
            r"\frac{\partial\gamma}{\partial n} = \frac{1-s}{n}\Bigl(x\,\sigma(nx) - \tfrac{1}{n}\log(1+e^{nx})\Bigr)"
            r" + s\,x\,\sigma(nx)\bigl(1-\sigma(nx)\bigr),\qquad"
            r"\frac{\partial\gamma}{\partial s} = \sigma(nx) - \tfrac{1}{n}\log(1+e^{nx})",
        ],
        "A one-parameter blend of a softplus of sharpness $n$ (a rectifier, $s=0$) and a logistic of gain $n$ "
        "(a saturating unit, $s=1$), the shapes of real neurons' f–I curves. $\\gamma(0) = (1-s)\\ln 2/n + s/2$; "
        "as $n\\to\\infty$ it tends to ReLU ($s=0$) or a step ($s=1$). The derivatives in $n$ and $s$ are what "
        "backpropagation uses to learn each neuron's curve; here $n$ is clamped to $\\ge 10^{-3}$ and $s$ into [0, 1].",
        [cite("geadah2024", "code: github.com/vgeadah/NonlinMod, `gamma_function.py`"),
         f"the derivatives in {derivation('10.1')}"],
    )


def learned_diversity() -> None:
    st.header("2 · How diverse the trained neurons became")
    spread = neurons.diversity_summary()
    row = st.columns(4)
    row[0].metric("Heterogeneous MLP: spread of s", fmt(spread.mlp_spread_s, 3),
                  help="Standard deviation of s across the neurons of a layer, mean over the 3 layers. Every neuron "
                       "started at s = 0.5, so all of this spread was learned.")
    row[1].metric("Heterogeneous RNN: spread of s", fmt(spread.rnn_spread_s, 3),
                  help="Standard deviation of s across the 64 recurrent units (all started at 0.5).")
    row[2].metric("Heterogeneous RNN: spread of n", fmt(spread.rnn_spread_n, 3),
                  help="Standard deviation of n across units. The start n = 5 + 2·U(0, 1) already has a spread of "
                       "2/√12 ≈ 0.577: the gains barely moved, the saturations did.")
    row[3].metric("Adaptive RNN: spread of mean s", fmt(spread.adaptive_spread_mean_s, 3),
                  help="Each unit's s averaged over the 8 steps and all test digits, spread across units.")
    figures.chart(charts.diversity_chart(), key="nd_diversity_chart")
    st.caption("The ReLU networks have no (n, s): a ReLU is γ with s = 0 and n → ∞. The homogeneous MLP has one (n, s) "
               "per layer (diamonds). The black bar marks where every neuron started (n ∈ [5, 7], s = 0.5).")


def robustness(protocol: str, kind: str, k: int, setting: tuple) -> None:
    st.header("3 · Robustness to shifts in the input statistics")
    st.caption("The networks and the perturbation are chosen at the top of the page.")
    sweep = sweeps.sweep(protocol, kind, *setting)
    for group in in_rows(sweeps.networks_now(sweep, k), 3):
        for column, network in zip(st.columns(3), group):
            column.metric(f"{network.label} · accuracy", percent(network.accuracy),
                          delta=points_delta(network.accuracy, network.clean), help=f"Clean: {percent(network.clean)}.")
    figures.chart(charts.accuracy_chart(protocol, kind, *setting, k), key="nd_accuracy_chart")
    st.caption(choices.NETWORKS_CAPTION[protocol] + f" {choices.test_count()} test digits; chance is 10%.")
    theory(
        [
            r"\text{gain modulation:}\quad \tilde x_t = x_t\,\bigl(1 + A\sin(2\pi f\,t/T)\bigr),\qquad t = 0,\dots,T-1,\ T = 8",
            r"\text{noise:}\quad \tilde x = x + A\,z,\qquad z \sim \mathcal N(0, I)\ \text{(one fixed draw per seed)}",
            r"\text{step drive (RNN):}\quad a_t = U x_t + W h_{t-1} + b + A\,\mathbb 1[t_0 \le t \le t_1],\qquad "
            r"\text{(MLP):}\quad a^{(1)} = W_1 x + b_1 + A",
            r"\text{noisy drive:}\quad A \;\to\; A + \sqrt{0.4A}\,z_{t,i},\qquad z_{t,i}\sim\mathcal N(0,1)"
            r"\ \text{(one fixed draw per seed; } A = 5:\ \mathcal N(5, 2)\text{)}",
        ],
        "Geadah et al. test networks trained on clean sequences under shifts of the input statistics they never saw: "
        "the non-zero inputs multiplied by a slow sinusoidal gain ($A = 0.5$, $f = 1$ over the 784 pixels of psMNIST) "
        "and a constant drive of +1 added to the pre-activations for steps 200–400, and their noise is a random drive "
        "drawn from N(5, 2) there. Their protocol here: the 64 "
        "pixels of an 8×8 digit, one per step in a fixed random order ($T = 64$). The zoo's networks read the 8 rows "
        "($T = 8$); an MLP sees all rows at once, so the same row-wise gain is the same input change for it. "
        "At $A = 0$ every network gives back its clean logits exactly.",
        [cite("geadah2024", "§Results (robustness to input perturbations); code: github.com/vgeadah/NonlinMod, "
                            "`sMNIST_task.py`, `training_utils.py`"), derivation("10.3"), derivation("10.4")],
    )


def what_cka_says(protocol: str, kind: str, k: int, setting: tuple) -> None:
    st.header("4 · What CKA says about robustness")
    st.markdown("For each network, linear CKA between its hidden states on clean and on perturbed digits (the final "
                "hidden state of the RNNs, the last hidden layer of the MLPs). If CKA measured robustness, the networks "
                "whose representation moved least would be the ones that kept the most accuracy.")
    sweep = sweeps.sweep(protocol, kind, *setting)
    now = sweeps.networks_now(sweep, k)
    undefined = [network.label for network in now if network.cka is None]
    if undefined:
        st.error(f"CKA is undefined for {', '.join(undefined)} at A = {sweep.amplitudes[k]:g}: the hidden layer is "
                 "constant across the digits (every unit saturated or silent), so 0/0. They are left out of the "
                 "ranking; lower the amplitude to bring them back.")
    for group in in_rows(now, 3):
        for column, network in zip(st.columns(3), group):
            column.metric(f"{network.label} · CKA", fmt(network.cka),
                          delta=f"{points_delta(network.accuracy, network.clean)} accuracy", delta_color="off",
                          help="CKA(hidden on clean digits, hidden on perturbed digits), and next to it the accuracy "
                               "drop.")
    st.caption("The rank statistics and the verdict for these numbers are at the top of the page.")
    left, right = st.columns(2)
    with left:
        figures.chart(charts.scatter_chart(protocol, kind, *setting, k), key="nd_scatter_chart")
    with right:
        figures.chart(charts.cka_chart(protocol, kind, *setting, k), key="nd_cka_chart")
    left, right = st.columns(2)
    with left:
        figures.chart(charts.rank_chart(protocol, kind, *setting, k), key="nd_rank_chart")
    with right:
        which = choose(st.radio, "Hidden states compared", {"clean": "Clean digits", "perturbed": "Perturbed digits"},
                       key="nd_between", default="perturbed", horizontal=True)
        figures.chart(charts.between_chart(protocol, kind, *setting, 0 if which == "clean" else k), key="nd_between_chart")
    theory(
        [
            r"\mathrm{CKA}(H, \tilde H) = \frac{\lVert \tilde H_c^\top H_c\rVert_F^2}{\lVert H_c^\top H_c\rVert_F\,\lVert \tilde H_c^\top \tilde H_c\rVert_F}",
            r"\rho = \operatorname{corr}\bigl(\operatorname{rank}\mathrm{CKA}_i,\ \operatorname{rank} r_i\bigr),\qquad "
            r"r_i = \frac{\mathrm{acc}_i(\text{perturbed})}{\mathrm{acc}_i(\text{clean})}",
        ],
        "$H$ and $\\tilde H$ are a network's hidden states on the clean and perturbed test digits (rows are the same "
        "digits, $H_c$ centred). CKA near 1 means the representation barely moved, up to rotation and scale. But the "
        "read-out cares about the few directions that separate the classes, CKA about all of them weighted by variance, "
        "so a perturbation can move a representation a lot along directions the read-out ignores (high accuracy, low "
        "CKA) or a little along the ones it uses (low accuracy, high CKA) — Davari et al.'s pitfalls again. The rank "
        "statistics above say, from the numbers, how well the one tracked the other across these networks.",
        [cite("kornblith2019", "linear CKA"), cite("davari2023", "CKA's sensitivity to directions a classifier ignores"),
         cite("geadah2024", "the networks and perturbations")],
    )


@live_section("The adaptive units section")
def adaptation(protocol: str, kind: str, k: int, setting: tuple) -> None:
    st.header("5 · Adaptive units along one digit")
    sweep = sweeps.sweep(protocol, kind, *setting)
    amplitude = float(sweep.amplitudes[k])
    controls, plot = st.columns([1.2, 2.4], gap="large")
    with controls:
        index = st.slider("Test digit", 0, choices.last_test_index(), 0, key="nd_digit", bind="query-params")
        units = st.multiselect("Units", neurons.adaptive_units(protocol),
                               default=neurons.most_adaptive_units(protocol, 3), key="nd_units",
                               bind="query-params", max_selections=8,
                               help="Default: the three units whose gain moves most from step to step.")
        figures.chart(charts.digit_chart(protocol, index, kind, amplitude, *setting), key="nd_digit_chart")
    summary = neurons.trace_summary(protocol, index, kind, amplitude, *setting)
    clean, perturbed = sweeps.adaptive_predictions(sweep, k, index)
    with plot:
        if not units:
            st.error("Pick at least one unit to draw its gain and saturation.")
        else:
            figures.chart(charts.trace_chart(protocol, index, tuple(sorted(units)), kind, amplitude, *setting), key="nd_trace_chart")
        row = st.columns(3)
        row[0].metric("Label", str(choices.test_label(index)))
        row[1].metric("Prediction, clean", str(clean), help="The adaptive RNN's answer on the clean digit.")
        row[2].metric("Prediction, perturbed", str(perturbed),
                      help="The adaptive RNN's answer under the perturbation chosen at the top.")
        row = st.columns(3)
        row[0].metric("Mean gain change per step", fmt(summary["gain_change"], 3),
                      help="Mean |n_{t+1} − n_t| over the units and steps of this digit, clean input.")
        row[1].metric("Saturation at or past 0 or 1", percent(summary["clipped"]),
                      help="Fraction of (unit, step) pairs whose s is ≤ 0 (softplus) or ≥ 1 (sigmoid), clean input. "
                           "The zoo's units clip s there; Geadah et al.'s leave s and n unclamped, as their code does.")
        row[2].metric("Gain shift, perturbed", fmt(summary["gain_shift"], 3),
                      help="Mean |n_t(perturbed) − n_t(clean)| over units and steps: how much the units re-adapted.")
    theory(
        [
            r"a_t = U_{xh}\,x_t + W_{hh}\,h_{t-1} + b",
            r"g^i_t = \tanh\!\bigl(u\,a^i_t + W_{gg}\,g^i_{t-1} + b_g\bigr),\qquad "
            r"n^i_t = w_n^\top g^i_t + b_n,\qquad s^i_t = w_s^\top g^i_t + b_s",
            r"h^i_t = \gamma\bigl(a^i_t;\ n^i_t,\ s^i_t\bigr)\quad\text{(the zoo's row-by-row units: }"
            r"\max(n^i_t, 10^{-3}),\ \operatorname{clip}(s^i_t, 0, 1)\text{)}",
        ],
        "The adaptive recurrent unit (ARU): every unit $i$ has its own copy of a small controller RNN (shared weights, "
        "state $g^i_t$ of size 16 here, 50 in the paper) that reads the unit's own pre-activation and sets its gain and "
        "saturation for this step. One learned adaptation rule, a state per neuron: the activation function changes "
        "online along the sequence, like spike-frequency adaptation in real neurons. The units shown are those of "
        "the networks chosen at the top of the page: 64 steps of one pixel, or 8 of one row.",
        [cite("geadah2024", "the ARU network, `Networks.py` in github.com/vgeadah/NonlinMod"), derivation("10.2"),
         "the zoo's model in sample_models/architectures.py"],
    )


main()
