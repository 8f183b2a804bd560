"""The Manipulate page's state, cached maps and the training job.

How training runs
-----------------
Training is a job of the server's worker pool (:mod:`ui.jobs`), like Compare's resampling: a process
shared by every session, outside the server's event loop and GIL, so one student's training never
slows another's moves.

* **Train** (``on_click``) only records a start request; the next run starts :func:`fine_tune` in the
  pool with the page's controls (a :class:`Spec`). While other sessions' jobs hold the pool's workers
  it waits in line and says its place.
* The worker (:mod:`.fine_tuning`, which imports no UI) reports each epoch's record as a row of numbers; the page's script
  follows the job at its end (:func:`follow`), redrawing the progress bar and the live curves from
  those rows. A click elsewhere, or leaving the page, ends only that loop: the job goes on, and the
  next run of the page follows it again or collects its result.
* **Stop** (``on_click``) reaches the worker, which ends after the epoch it is in and returns the best
  network so far (the lowest validation map loss among epochs within the accuracy tolerance).

When a job ends, its result (maps, history, accuracies: small arrays) is kept in session state and the
fine-tuned network enters the registry of :mod:`ui.sources.models` for the rest of the browser
session, so every other page can pick it.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from cka_core import RepresentationError
from cka_core.pitfalls.manipulation import (ManipulationResult, ManipulationSettings, check_target, identity_target,
                                            off_diagonal_mean_abs, ones_target, pair_target)

from .. import jobs
from ..frame import figures
from ..frame.shell import read_page_param, write_page_param
from ..frame.widgets import points_change
from ..sources import models
from .fine_tuning import fine_tune, from_rows

TARGETS = {
    "identity": "Identity (layers unlike each other)",
    "ones": "All ones (everything alike)",
    "pair": "Set the CKA of two layers",
    "custom": "Custom map (edit the grid)",
    "match": "Match another model's map",
}
DEFAULT_MODEL = "mlp_deep"
DEFAULT_MATCH = "mlp_wide"
JOB_KEY = "man_job"
START_KEY = "man_start_requested"
RESULT_KEY = "man_result"
FAILURE_KEY = "man_failure"  # why the session's last job ended without a network
GRID_PARAM = "man_grid"  # the custom target grid in the URL (a data editor cannot be bound to it)


def trainable() -> list[str]:
    """Zoo networks that can be fine-tuned (every trained one, the default first)."""
    names = models.names(trained=True, finetuned=False)
    return [DEFAULT_MODEL] + [n for n in names if n != DEFAULT_MODEL]


def evenly_spaced(layers: list[str], k: int) -> list[str]:
    """``k`` of ``layers`` spread from the first to the last (all of them when k >= len)."""
    if k >= len(layers):
        return list(layers)
    idx = np.unique(np.round(np.linspace(0, len(layers) - 1, k)).astype(int))
    return [layers[i] for i in idx]


# --------------------------------------------------------------------------- targets
def custom_target(base: np.ndarray, names: list[str], key: str) -> np.ndarray:
    """A grid editor initialised with the link's grid (URL parameter ``man_grid``) or else ``base``;
    an edited cell (i, j) also sets (j, i), and the diagonal stays 1. The edited map goes back into
    the URL. Returns the target map."""
    starts = st.session_state.setdefault("_man_grid_start", {})  # per editor: a link applies when it first shows
    if key not in starts:
        linked = read_page_param(GRID_PARAM, lambda text: decode_grid(text, len(names)))
        starts[key] = linked if linked is not None else np.round(np.array(base, dtype=np.float64), 2)
    start = starts[key]
    frame = pd.DataFrame(start, index=names, columns=names)
    config = {name: st.column_config.NumberColumn(name, min_value=0.0, max_value=1.0, step=0.01, format="%.2f")
              for name in names}
    st.data_editor(frame, key=key, column_config=config, num_rows="fixed", width="stretch")
    target = start.copy()
    edits = st.session_state.get(key, {}).get("edited_rows", {})
    for row, cells in edits.items():
        i = int(row)
        for column, value in cells.items():
            if column not in names or value is None or i >= len(names):
                continue
            j = names.index(column)
            target[i, j] = target[j, i] = float(value)
    np.fill_diagonal(target, 1.0)
    unchanged = np.array_equal(target, np.round(np.array(base, dtype=np.float64), 2))
    write_page_param(GRID_PARAM, None if unchanged else encode_grid(target))
    return target


def encode_grid(target: np.ndarray) -> str:
    """A symmetric map as its cells above the diagonal, row by row, 2 decimals, '_'-separated."""
    upper = target[np.triu_indices(target.shape[0], k=1)]
    return "_".join(f"{v:.2f}" for v in upper)


def decode_grid(text: str, size: int) -> np.ndarray | None:
    """The size × size map of :func:`encode_grid`'s text, or None if it does not hold
    size·(size−1)/2 numbers in [0, 1]."""
    try:
        values = [float(v) for v in text.split("_")]
    except ValueError:
        return None
    if len(values) != size * (size - 1) // 2 or not all(0.0 <= v <= 1.0 for v in values):
        return None
    grid = np.eye(size)
    rows, cols = np.triu_indices(size, k=1)
    grid[rows, cols] = grid[cols, rows] = np.round(values, 2)
    return grid


def target_for(kind: str, base: np.ndarray, **params) -> np.ndarray:
    """The target map of a kind (identity, ones, pair) built from the current map ``base``."""
    if kind == "identity":
        return identity_target(base.shape[0])
    if kind == "ones":
        return ones_target(base.shape[0])
    if kind == "pair":
        return pair_target(base, params["i"], params["j"], params["value"])
    raise ValueError(f"unknown target kind {kind!r}")


def match_candidates(model: str, n_layers: int) -> tuple[list[str], list[str]]:
    """(networks whose map can be matched with ``n_layers`` layers, networks left out for having
    fewer layers): a target map needs one layer of the other network per chosen layer."""
    others = [name for name in trainable() if name != model]
    fits = [name for name in others if len(models.varying_layers(name)) >= n_layers]
    return fits, [name for name in others if name not in fits]


def default_match(candidates: list[str]) -> int:
    """Index of the network a 'match' target starts with."""
    return candidates.index(DEFAULT_MATCH) if DEFAULT_MATCH in candidates else 0


def match_target(other: str, n_layers: int) -> tuple[np.ndarray, tuple[str, ...]]:
    """The map of ``n_layers`` evenly spaced layers of ``other`` (digits training split), diagonal 1,
    and the layers it uses."""
    picked = tuple(evenly_spaced(models.varying_layers(other), n_layers))
    target = np.array(models.cka_map(other, picked, split="train"))
    np.fill_diagonal(target, 1.0)
    return target, picked


def valid_target(target: np.ndarray, n_layers: int) -> np.ndarray:
    """A target as training uses it: symmetrised, clipped to [-1, 1], checked (size, diagonal)."""
    return check_target(np.clip((target + target.T) / 2, -1.0, 1.0), n_layers)


def pair_target_for(base: np.ndarray, layers: tuple[str, ...], first: str, second: str,
                    value: float) -> tuple[np.ndarray, str]:
    """The current map with CKA(first, second) set to ``value``, and its label."""
    if first == second:
        raise RepresentationError("pick two different layers: a layer's CKA with itself is always 1.")
    target = target_for("pair", base, i=layers.index(first), j=layers.index(second), value=value)
    return valid_target(target, len(layers)), f"CKA({first}, {second}) = {value:.2f}"


def all_layers(model: str) -> list[str]:
    """The layers a map may hold: all but those the same for every digit (a pixel RNN's first steps read
    only pixels blank in every digit, and CKA is 0/0 there)."""
    return models.varying_layers(model)


def in_forward_order(model: str, chosen: list[str]) -> tuple[str, ...]:
    """The chosen layers of ``model`` in forward order."""
    return tuple(name for name in all_layers(model) if name in chosen)


def map_gap(cka_map: np.ndarray, target: np.ndarray) -> float:
    """Mean |M - target| over the off-diagonal cells."""
    return off_diagonal_mean_abs(cka_map, target)


# ------------------------------------------------------------------------------ the job
@dataclass
class Spec:
    """Everything a job needs, gathered from the page's controls."""

    model: str
    layers: tuple[str, ...]
    target: np.ndarray
    target_label: str
    settings: ManipulationSettings


@dataclass(eq=False, kw_only=True)
class Job(jobs.Job):
    """A fine-tuning run in the server's worker pool (:func:`fine_tune`); ``rows`` holds its epochs."""

    spec: Spec
    keeps_result_on_stop = True  # Stop keeps the best network so far

    def stage_of(self, done: int, total: int) -> str:
        records, _ = from_rows(self.rows)
        if not records:
            return "Preparing the network and the data"
        last, spec = records[-1], self.spec
        return (f"{spec.model} → {short_target(spec.target_label)}: epoch {last.epoch} of {total} · mean |M − target| "
                f"{last.mean_abs_error:.3f} (validation) · validation accuracy {100 * last.val_accuracy:.1f}% · "
                f"λ {last.lam:.3g}")

    def stopped_text(self) -> str:
        return "Stopped before the first epoch: there is no network to keep. Press Train to start again."

    def crashed_text(self, error: Exception) -> str:
        return f"Training failed ({type(error).__name__}: {error}); no network was kept."


@dataclass(frozen=True)
class Outcome:
    """A finished job, as shown in the results section (small arrays only)."""

    model: str
    label: str                       # the name of the fine-tuned network on other pages
    target_label: str
    layers: tuple[str, ...]
    target: np.ndarray
    map_before: np.ndarray
    map_after: np.ndarray
    accuracy_before: float
    accuracy_after: float
    history: tuple[dict, ...]
    best_epoch: int
    epochs_run: int
    epochs_planned: int
    stopped_early: bool
    seconds: float
    mean_abs_before: float
    mean_abs_after: float

    @property
    def map_change(self) -> float:
        """How much closer to the target the map came (negative: closer)."""
        return self.mean_abs_after - self.mean_abs_before


def current_job() -> Job | None:
    return st.session_state.get(JOB_KEY)


def request_start() -> None:
    st.session_state[START_KEY] = True


def request_stop() -> None:
    job = current_job()
    if job is not None:
        job.stop()


def apply_requests(spec: Spec | None) -> Job | None:
    """Collect a job that has ended (:func:`collect`), then start one if Train was clicked and the controls
    are valid; the session's running job, if any."""
    collect()
    if st.session_state.pop(START_KEY, False) and spec is not None and current_job() is None:
        st.session_state.pop(FAILURE_KEY, None)
        job = Job(key=(spec.model, spec.layers, spec.target_label), what=f"Fine-tuning {spec.model}",
                  total=spec.settings.epochs, spec=spec)
        d = models.digits()
        st.session_state[JOB_KEY] = job.start_in(jobs.POOL, fine_tune, spec.model, spec.layers, spec.target,
                                                 spec.settings, d.X_train, d.y_train, d.X_test, d.y_test)
    return current_job()


def collect() -> None:
    """A job that has ended becomes the session's outcome (:func:`finish`), or its failure (:func:`failure`)."""
    job = current_job()
    if job is None or job.running:
        return
    del st.session_state[JOB_KEY]
    if job.result is None:
        st.session_state[FAILURE_KEY] = job.failure
    else:
        finish(job)


def failure() -> str | None:
    """Why the session's last job ended without a network, until the next one starts."""
    return st.session_state.get(FAILURE_KEY)


def finish(job: Job) -> Outcome:
    """Turn a finished (or stopped) job into an outcome and register its network."""
    result: ManipulationResult = job.result
    label = models.register_finetuned(result.model, job.spec.model, short_target(job.spec.target_label),
                                      float(result.accuracy_after))
    outcome = Outcome(
        model=job.spec.model, label=label, target_label=job.spec.target_label, layers=result.layers,
        target=result.target, map_before=result.map_before, map_after=result.map_after,
        accuracy_before=float(result.accuracy_before), accuracy_after=float(result.accuracy_after),
        history=tuple(r.as_dict() for r in result.history), best_epoch=result.best_epoch,
        epochs_run=len(result.history) - 1, epochs_planned=job.spec.settings.epochs,
        stopped_early=result.stopped_early, seconds=sum(r.seconds for r in result.history),
        mean_abs_before=result.mean_abs_error_before, mean_abs_after=result.mean_abs_error_after,
    )
    st.session_state[RESULT_KEY] = outcome
    return outcome


def takeaway(spec: Spec | None, base: np.ndarray | None, outcome: Outcome | None) -> str:
    """The page's lesson in one sentence: the last job's numbers, else what the current target asks."""
    if outcome is not None:
        points = points_change(outcome.accuracy_after, outcome.accuracy_before)
        return (f"Fine-tuning took {outcome.model}'s CKA map from {outcome.mean_abs_before:.2f} to "
                f"{outcome.mean_abs_after:.2f} mean distance from the target ({outcome.target_label.lower()}) while "
                f"test accuracy went from {100 * outcome.accuracy_before:.1f}% to {100 * outcome.accuracy_after:.1f}% "
                f"({points:+.1f} points): the map moved, the function barely did.")
    if spec is None or base is None:
        return "A network can be fine-tuned toward almost any CKA map while distillation keeps its predictions."
    return (f"{spec.model}'s CKA map is now {map_gap(base, spec.target):.2f} from the target (mean over cells); "
            f"training moves it toward the target while test accuracy is held within η = {spec.settings.eta:g} "
            f"points of {100 * models.test_accuracy(spec.model):.1f}%. Press Train to see how far it gets.")


def last_outcome() -> Outcome | None:
    return st.session_state.get(RESULT_KEY)


#: The live curves are redrawn at most this often (seconds); the progress bar more often (jobs.REDRAW_SECONDS).
CURVES_SECONDS = 0.5


def follow(job: Job, progress_slot, live_slot) -> bool:
    """Redraw the job's progress (:func:`jobs.follow`) and, when new epochs have come, its live curves (at most
    every :data:`CURVES_SECONDS`) until it ends; True once it has ended. A click (Stop, any other control)
    restarts the script at a redraw; the job goes on in the pool."""
    drawn = {"rows": -1, "at": 0.0}

    def curves() -> None:
        if len(job.rows) != drawn["rows"] and (time.perf_counter() - drawn["at"] >= CURVES_SECONDS or not job.running):
            draw_curves(job, live_slot)
            drawn["rows"], drawn["at"] = len(job.rows), time.perf_counter()

    return jobs.follow(job, progress_slot, also=curves)


def short_target(label: str) -> str:
    """'Identity (layers unlike each other)' -> 'Identity'."""
    return label.split(" (")[0]


def draw_curves(job: Job, live_slot) -> None:
    records, best = from_rows(job.rows)
    if not records:
        return
    with live_slot.container():
        figures.chart(history_figure([r.as_dict() for r in records], job.spec.settings.epochs, best),
                      key=f"man_live_{id(job)}_{len(records)}")


# ------------------------------------------------------------------------------ figures
def history_figure(history: list[dict], planned: int, best_epoch: int | None = None) -> go.Figure:
    """Validation map loss (left axis, log) and validation accuracy (right axis) per epoch."""
    epochs = np.array([h["epoch"] for h in history])
    loss = np.array([h["map_loss"] for h in history])
    acc = np.array([100 * h["val_accuracy"] for h in history])
    mae = np.array([h["mean_abs_error"] for h in history])
    lam = np.array([h["lam"] for h in history])
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_trace(go.Scatter(x=epochs, y=loss, mode="lines+markers", name="map loss (validation)",
                             line=dict(color=figures.COLOURS["linear_cka"]), customdata=np.stack([mae, lam], 1),
                             hovertemplate="epoch %{x}<br>map loss %{y:.4g}<br>mean |M − target| %{customdata[0]:.3f}"
                                           "<br>λ %{customdata[1]:.3g}<extra></extra>"), secondary_y=False)
    fig.add_trace(go.Scatter(x=epochs, y=acc, mode="lines+markers", name="validation accuracy (%)",
                             line=dict(color=figures.COLOURS["accuracy"]),
                             hovertemplate="epoch %{x}<br>accuracy %{y:.2f}%<extra></extra>"), secondary_y=True)
    if best_epoch is not None and 0 <= best_epoch < len(history):
        fig.add_trace(go.Scatter(x=[epochs[best_epoch]], y=[loss[best_epoch]], mode="markers", name="best so far",
                                 marker=dict(color=figures.COLOURS["current"], size=13, symbol="star"),
                                 hovertemplate="best epoch %{x}<extra></extra>"), secondary_y=False)
    fig.update_layout(title="Training: validation map loss and accuracy per epoch",
                      **{**figures.LAYOUT, "height": 340}, legend=dict(orientation="h", y=-0.3))
    fig.update_xaxes(title_text="epoch", range=[-0.5, planned + 0.5])
    fig.update_yaxes(title_text="map loss (log scale)", type="log", tickformat=".1g", dtick="D2",
                     secondary_y=False, color=figures.COLOURS["linear_cka"])
    fig.update_yaxes(title_text="accuracy (%)", secondary_y=True, showgrid=False, tickmode="auto", nticks=6,
                     tickformat=".1f", color=figures.COLOURS["accuracy"])
    return fig


def maps_figure(maps: list[tuple[str, np.ndarray]], names: list[str], *, height: int = 400) -> go.Figure:
    """Several CKA maps side by side on one colour scale (0 to 1), values written in the cells."""
    fig = make_subplots(rows=1, cols=len(maps), subplot_titles=[title for title, _ in maps], horizontal_spacing=0.06)
    text = len(names) <= 12
    for col, (title, values) in enumerate(maps, start=1):
        fig.add_trace(go.Heatmap(
            z=values, x=names, y=names, coloraxis="coloraxis", texttemplate="%{z:.2f}" if text else None,
            hovertemplate=f"{title}<br>%{{y}} vs %{{x}}<br>CKA = %{{z:.4f}}<extra></extra>",
        ), row=1, col=col)
        fig.update_yaxes(autorange="reversed", row=1, col=col, showticklabels=col == 1)
    fig.update_layout(**{**figures.LAYOUT, "height": height, "margin": dict(l=70, r=20, t=50, b=60)},
                      coloraxis=dict(colorscale=figures.HEATMAP_SCALE, cmin=0.0, cmax=1.0,
                                     colorbar=dict(title="CKA", thickness=14)))
    return fig
