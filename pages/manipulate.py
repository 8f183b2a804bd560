"""Manipulate: fine-tune a network toward a target CKA map while keeping what it computes."""
import streamlit as st

from cka_core import RepresentationError
from cka_core.pitfalls.manipulation import ManipulationSettings
from ui.frame import figures
from ui.sources import models
from ui.pitfalls import manipulate as man
from ui.frame.references import cite, derivation
from ui.frame.shell import inside_app_frame
from ui.frame.widgets import choose, fmt, page_header, percent, points_delta, takeaway, theory

inside_app_frame()


def main() -> None:
    lesson = page_header(
        "Manipulate: fine-tune a network toward any CKA map",
        "Pick a target CKA map -- every layer unlike every other, everything alike, one pair changed, a map you "
        "draw, or another network's map -- and fine-tune a copy of a trained network toward it while distillation "
        "from the original keeps its predictions. The map moves a long way while test accuracy barely does: "
        "a CKA map alone says little about what a network computes (Davari et al. 2023, §4.3).",
    )
    controls, preview = st.columns([1, 2.2], gap="large")
    spec, problem, base = None, None, None
    with controls:
        model, layers, kind = network_controls()
    if len(layers) < 2:
        problem = "Choose at least two layers: a CKA map compares layers with each other."
    else:
        base = models.cka_map(model, layers)
        with controls:
            try:
                target, label = target_controls(model, layers, kind, base, preview)
            except RepresentationError as error:
                problem = str(error)
        with controls.expander("Training settings", expanded=False):
            settings = training_settings()
        if problem is None:
            spec = man.Spec(model, layers, target, label, settings)
    job = man.apply_requests(spec)
    running = job is not None
    with controls:
        buttons(running, spec is not None, problem)
    with preview:
        if spec is not None:
            current_map(spec, base)
        if running:
            st.caption("Training runs in the server's shared worker and carries on while you use other controls "
                       "or pages; come back here for its network. Stop keeps the best network so far.")
        elif man.failure():
            st.warning(man.failure(), icon=":material/stop_circle:")
        progress_slot = st.empty()
        live_slot = st.empty()
    outcome = man.last_outcome()
    takeaway(lesson, man.takeaway(spec, base, None if running else outcome))
    if outcome is not None and not running:
        result(outcome)
    show_theory()
    if running and man.follow(job, progress_slot, live_slot):
        st.rerun()  # redraw the page (and the sidebar's list of networks) with the result


def network_controls() -> tuple[str, tuple[str, ...], str]:
    model = st.selectbox("Network", man.trainable(), key="man_model", bind="query-params",
                         help="A copy of this zoo network is fine-tuned; the shared one is never changed.")
    st.caption(models.get(model).description)
    every = man.all_layers(model)
    constant = models.constant_layers(model)
    if constant:
        st.caption(f"Left out, the same for every digit (CKA is 0/0 there): {', '.join(constant)}.")
    chosen = st.multiselect("Layers of the map", every, default=every, key=f"man_layers_{model}",
                            bind="query-params", help="The rows and columns of the CKA map (forward order is kept).")
    kind = choose(st.radio, "Target map", man.TARGETS, key="man_target",
                  help="Davari et al. reach identity, all-ones and 'first layer = last layer' maps on a CIFAR CNN.")
    return model, man.in_forward_order(model, chosen), kind


def target_controls(model: str, layers: tuple[str, ...], kind: str, base, preview) -> tuple:
    """(target map, label) of the chosen kind; raises RepresentationError for a target that cannot be built."""
    if kind == "pair":
        first = st.selectbox("First layer", layers, index=0, key=f"man_pair_i_{model}", bind="query-params")
        second = st.selectbox("Second layer", layers, index=len(layers) - 1, key=f"man_pair_j_{model}",
                              bind="query-params")
        value = st.slider("Target CKA for this pair", 0.0, 1.0, 1.0, step=0.05, key="man_pair_value",
                          bind="query-params", help="The rest of the target is the current map.")
        return man.pair_target_for(base, layers, first, second, value)
    if kind == "custom":
        st.caption("Edit the target in the grid on the right.")
        with preview:
            st.markdown("**Target map** — edit any cell (0 to 1); its mirror follows and the diagonal stays 1.")
            target = man.custom_target(base, list(layers), key=f"man_custom_{model}_{'-'.join(layers)}")
        return man.valid_target(target, len(layers)), "Custom map"
    if kind == "match":
        candidates, left_out = man.match_candidates(model, len(layers))
        if not candidates:
            raise RepresentationError(f"no other network has {len(layers)} layers to match; choose fewer layers.")
        other = st.selectbox("Network whose map to match", candidates, key="man_match_model", bind="query-params",
                             index=man.default_match(candidates))
        target, picked = man.match_target(other, len(layers))
        st.caption(f"Target: the map of {other}'s layers {', '.join(picked)} (digits training split).")
        if left_out:
            st.caption(f"Not offered with {len(layers)} layers chosen (they have fewer): {', '.join(left_out)}.")
        return man.valid_target(target, len(layers)), f"Match {other}"
    return man.valid_target(man.target_for(kind, base), len(layers)), man.TARGETS[kind]


def training_settings() -> ManipulationSettings:
    defaults = ManipulationSettings()
    epochs = st.slider("Epochs", 2, 200, defaults.epochs, key="man_epochs", bind="query-params",
                       help="Passes over the training split (minus the validation split).")
    lr = st.select_slider("Learning rate (AdamW, cosine schedule)", [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2],
                          value=defaults.lr, key="man_lr", bind="query-params", format_func=lambda v: f"{v:g}")
    lam0 = st.select_slider("λ₀ (start weight of the map loss)", [1.0, 10.0, 50.0, 100.0, 500.0, 1000.0, 5000.0],
                            value=defaults.lambda0, key="man_lambda0", bind="query-params",
                            format_func=lambda v: f"{v:g}")
    temperature = st.select_slider("Distillation temperature T", [0.1, 0.2, 0.5, 1.0, 2.0, 4.0],
                                   value=defaults.temperature, key="man_temperature", bind="query-params",
                                   format_func=lambda v: f"{v:g}")
    eta = st.slider("Accuracy tolerance η (points)", 0.0, 5.0, defaults.eta, step=0.5, key="man_eta",
                    bind="query-params", help="Algorithm 1: λ × 0.8 when validation accuracy falls by more "
                                              "than η points, λ ÷ 0.8 otherwise; the best network is chosen "
                                              "among epochs within η.")
    return ManipulationSettings(epochs=epochs, lr=float(lr), lambda0=float(lam0), temperature=float(temperature),
                                eta=float(eta))


def buttons(running: bool, ready: bool, problem: str | None) -> None:
    row = st.columns(2)
    row[0].button("Train", key="man_train", type="primary", icon=":material/play_arrow:", on_click=man.request_start,
                  disabled=running or not ready, width="stretch")
    row[1].button("Stop", key="man_stop", icon=":material/stop:", on_click=man.request_stop, disabled=not running,
                  width="stretch", help="Stop now and keep the best network so far.")
    if problem is not None:
        st.error(problem)


def current_map(spec: man.Spec, base) -> None:
    row = st.container(key="proof").columns(3)
    row[0].metric("Test accuracy now", percent(models.test_accuracy(spec.model)),
                  help=f"The zoo network on the {len(models.digits().y_test)} digits of the test split.")
    row[1].metric("Mean |M − target| now", fmt(man.map_gap(base, spec.target), 3),
                  help="Over the off-diagonal cells (the diagonal is 1 by definition).")
    row[2].metric("Layers in the map", f"{len(spec.layers)}")
    figures.chart(man.maps_figure([("Now (debiased CKA, test split)", base), ("Target", spec.target)],
                                    list(spec.layers), height=420), key="man_maps_now")


def result(outcome: man.Outcome) -> None:
    st.subheader("Result")
    status = "stopped early" if outcome.stopped_early else "finished"
    st.caption(
        f"{outcome.model} toward **{outcome.target_label}**, {status} after {outcome.epochs_run} of "
        f"{outcome.epochs_planned} epochs in {outcome.seconds:.1f} s; the network kept is epoch {outcome.best_epoch} "
        "(lowest validation map loss within the accuracy tolerance; epoch 0 is the original). Maps and accuracies "
        "are measured on the digits test split, which training never saw."
        + (" No epoch lowered the validation map loss within the accuracy tolerance, so the original network was "
           "kept: try more epochs, a larger η or a smaller λ₀." if outcome.best_epoch == 0 else "")
    )
    row = st.columns(4)
    row[0].metric("Mean |M − target| before", fmt(outcome.mean_abs_before, 3))
    row[1].metric("Mean |M − target| after", fmt(outcome.mean_abs_after, 3),
                  delta=f"{outcome.map_change:+.3f}", delta_color="inverse")
    row[2].metric("Test accuracy before", percent(outcome.accuracy_before))
    row[3].metric("Test accuracy after", percent(outcome.accuracy_after),
                  delta=points_delta(outcome.accuracy_after, outcome.accuracy_before))
    figures.chart(man.maps_figure([("Before", outcome.map_before), ("Target", outcome.target),
                                   ("After (kept network)", outcome.map_after)], list(outcome.layers)),
                  key="man_res_maps")
    figures.chart(man.history_figure(list(outcome.history), outcome.epochs_run, outcome.best_epoch),
                  key="man_res_history")
    st.success(f"Kept for this browser session as **{outcome.label}**: pick it on the other pages (the sidebar's "
               "Model, Compare, Function-preserving edits, Estimators).", icon=":material/save:")


def show_theory() -> None:
    theory(
        [
            r"\theta^\star = \arg\min_\theta\; \mathrm{KL}\!\left(\mathrm{softmax}\!\big(f_{\theta_0}(x)/T\big)\,\Big\|\,"
            r"\mathrm{softmax}\!\big(f_\theta(x)/T\big)\right) + \lambda\,\frac{1}{L^2}\sum_{i,j}"
            r"\log\cosh\!\big(M_\theta[i,j] - M_{\text{target}}[i,j]\big)",
            r"M_\theta[i,j] = \frac{\mathrm{HSIC}_1(K_i, K_j)}{\sqrt{\mathrm{HSIC}_1(K_i,K_i)\,\mathrm{HSIC}_1(K_j,K_j)}},\quad"
            r"\mathrm{HSIC}_1(K,L) = \frac{\langle \tilde K, \tilde L\rangle}{n(n-3)}",
            r"\lambda \leftarrow \begin{cases} 0.8\,\lambda & \text{if } \mathrm{acc}_0 - \mathrm{acc}_{\text{val}} > \eta \\"
            r" \lambda / 0.8 & \text{otherwise}\end{cases}",
        ],
        "The first term keeps the fine-tuned network's outputs close to the frozen original's (distillation at "
        "temperature $T$); the second pulls the CKA map $M_\\theta$, computed on every training batch of 128 digits with "
        "the unbiased HSIC (U-centred Grams $\\tilde K$, one matrix product for all layer pairs) toward the target. "
        "After every epoch, $\\lambda$ shrinks when accuracy on a validation split held out of the training digits falls "
        "by more than $\\eta$ points and grows otherwise (Algorithm 1). AdamW with a cosine schedule. Adapted to "
        "1150 training digits instead of 50,000 images: more epochs, a larger learning rate after a 10-epoch warm-up, "
        "$\\eta$ = 0.5 point (one digit of the 288 held out), and the distillation term also sees a noisy copy of "
        "each batch (noise 0.5 on pixels in [0, 1]), so the function is kept near the digits and not only on them. "
        "The maps shown are "
        "full-data debiased CKA on the test split. A ReLU network cannot make adjacent layers exactly unrelated, so the "
        "identity target is approached, not reached; what the optimiser typically finds is Davari et al.'s own "
        "mechanism -- a subset of examples translated along directions the next layer ignores.",
        [cite("davari2023", "§4.3 (Eq. 3, Algorithm 1)"), f"unbiased HSIC: {cite('song2012')}",
         f"minibatch CKA: {cite('nguyen2021')}", f"the estimator in {derivation('2.1')}"],
    )


main()
