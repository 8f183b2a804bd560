"""Intervals and p-values for every cell of the heatmap, on a button press: bootstrap then
permutations in a background job (progress, Stop, a time limit), results kept per session
(bounded) and marked under the chosen correction for testing every cell at once."""
from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass, replace
from functools import cached_property

import numpy as np
import streamlit as st

from cka_core.stats import corrections, resampling, sanity

from .. import jobs
from ..frame.widgets import choose
from .controls import Settings
from .sides import Side, pair_arguments, same_data

DEFAULT_COUNT = 200
MAX_COUNT = 2000
TIME_LIMIT_S = 600.0  # an inference run gives up (with a message) after this long
STORE_SIZE = 8  # inference results kept per session
ALPHA, NULL_WIDTH = 0.05, 2.0
MARKING_TEXT = (f"**✕** marks a cell whose value is not clearly beyond chance: its permutation p-value (corrected, "
                f"when a correction for the many cells is chosen) is above {ALPHA}, or its bootstrap interval overlaps the shuffled-rows null (the null's mean ± "
                f"{NULL_WIDTH:g} sd).")


@dataclass(frozen=True)
class Inference:
    """A resampling run, and its cells marked under one correction for testing every cell at once."""

    bootstrap: resampling.BootstrapResult
    permutation: resampling.PermutationResult
    seconds: float
    seed: int
    p_adjustment: str = "none"

    @cached_property
    def p_adjusted(self) -> np.ndarray:
        return corrections.adjusted_p_values(self.permutation.p_values, self.p_adjustment)

    @cached_property
    def flagged(self) -> np.ndarray:
        perm = self.permutation
        return sanity.not_above_null(self.bootstrap.low, self.bootstrap.high, self.p_adjusted, perm.null_mean,
                                     perm.null_std, alpha=ALPHA, width=NULL_WIDTH)


def with_p_adjustment(result: Inference | None, method: str) -> Inference | None:
    """The same run marked under ``method`` (no resampling again: the correction acts on the p-values)."""
    return None if result is None else replace(result, p_adjustment=method)


def p_adjustment_floor_note(n_perm: int, n_cells: int, method: str) -> str | None:
    """Why no cell can pass under Holm with too few permutations, and how many it takes; None if fine."""
    floor = corrections.smallest_adjusted_p(n_perm, n_cells, method)
    if floor <= ALPHA:
        return None
    return (f"With {n_perm} permutations no p-value goes below 1/{n_perm + 1}, so Holm's correction over {n_cells} cells "
            f"cannot go below {floor:.3f}: no cell can pass {ALPHA}. Use at least {math.ceil(n_cells / ALPHA) - 1} "
            "permutations, or Benjamini–Hochberg.")


def inference_key(a: Side, b: Side, settings: Settings, n_boot: int, n_perm: int, confidence: float, seed: int) -> tuple:
    return (*pair_arguments(a, b), settings.key, n_boot, n_perm, confidence, seed)


def _store() -> OrderedDict:
    return st.session_state.setdefault("cmp_results", OrderedDict())


def stored_inference(key: tuple) -> Inference | None:
    store = _store()
    if key in store:
        store.move_to_end(key)
        return store[key]
    return None


def request_run() -> None:
    st.session_state["cmp_run_requested"] = True


def run_requested() -> bool:
    """Whether the run button was pressed (consumed on read)."""
    return bool(st.session_state.pop("cmp_run_requested", False))


def p_adjustment_control() -> str:
    """How the p-values of all cells are corrected for being tested together (applied without rerunning)."""
    return choose(st.selectbox, "Multiple comparisons", corrections.P_ADJUSTMENTS, key="cmp_p_adjust",
                  help="A heatmap tests every cell: at p ≤ 0.05 each, about one cell in twenty looks beyond chance "
                       "when nothing is related. Holm bounds the chance of any false call; Benjamini–Hochberg the "
                       "expected share of false calls among the calls (docs/theory.md §9).")


CONFIDENCE_LEVELS = (0.9, 0.95, 0.99)


def inference_controls(seconds_per_matrix: float) -> tuple[int, int, float, int]:
    cols = st.columns(4)
    n_boot = cols[0].number_input("Bootstrap resamples", 10, MAX_COUNT, DEFAULT_COUNT, step=50, key="cmp_n_boot",
                                  bind="query-params", help="Examples resampled with replacement (the same rows on both sides).")
    n_perm = cols[1].number_input("Permutations", 10, MAX_COUNT, DEFAULT_COUNT, step=50, key="cmp_n_perm",
                                  bind="query-params", help="B's rows shuffled against A's: the null of unpaired examples.")
    with cols[2]:
        confidence = choose(st.selectbox, "Interval level", {c: f"{c:.0%}" for c in CONFIDENCE_LEVELS},
                            key="cmp_confidence", default=0.95)
    seed = cols[3].number_input("Seed", 0, 10_000, 0, key="cmp_seed", bind="query-params")
    estimate = seconds_per_matrix * (n_boot + n_perm)
    st.caption(f"About {jobs.duration(estimate)} at {seconds_per_matrix * 1000:.0f} ms per heatmap "
               f"({n_boot} + {n_perm} heatmaps). Runs only when you press the button, and carries on while you use "
               f"other controls or pages; Stop ends it, and it gives up by itself after {jobs.duration(TIME_LIMIT_S)}.")
    return int(n_boot), int(n_perm), float(confidence), int(seed)


@dataclass(eq=False, kw_only=True)
class ResamplingJob(jobs.Job):
    """Bootstrap then permutations for one heatmap, in the server's worker pool (jobs.POOL): a
    click elsewhere restarts the page's script, not the job, so nothing is lost; the page follows
    the job (:func:`follow_job`) and collects its result (:func:`collect_job`) on a later run."""

    n_boot: int
    seed: int

    def stage_of(self, done: int, total: int) -> str:
        if done < self.n_boot:
            return f"Bootstrap: {done} of {self.n_boot}"
        return f"Permutations: {done - self.n_boot} of {total - self.n_boot}"

    def stopped_text(self) -> str:
        return f"Stopped ({self.where()}); nothing was stored. Press the button to start again."

    def time_up_text(self) -> str:
        return (f"Gave up after {jobs.duration(self.time_limit)} ({self.where()}); nothing was stored. Lower the "
                "counts, or pick fewer layers or a cheaper measure.")

    def refused_text(self, error) -> str:
        return f"{error} Nothing was stored."

    def crashed_text(self, error: Exception) -> str:
        return f"The run failed ({type(error).__name__}: {error}); nothing was stored."

    def inference(self) -> Inference:
        """The finished job's bootstrap and permutations as the heatmap's :class:`Inference`."""
        boot, perm = self.result
        return Inference(boot, perm, self.seconds, self.seed)


JOB_KEY, FAILURE_KEY = "cmp_job", "cmp_job_failure"


def start_job(key: tuple, a: Side, b: Side, settings: Settings, n_boot: int, n_perm: int, confidence: float,
              seed: int) -> ResamplingJob:
    """Start bootstrap and permutations for ``key`` in the worker pool; the session's one job."""
    st.session_state.pop(FAILURE_KEY, None)
    job = ResamplingJob(key=key, what="Bootstrap and permutations", time_limit=TIME_LIMIT_S, total=n_boot + n_perm,
                        n_boot=n_boot, seed=seed)
    st.session_state[JOB_KEY] = job
    other = None if same_data(a, b) else b.layers
    return job.start_in(jobs.POOL, resampling.bootstrap_and_permutation, a.layers, other, measure=settings.measure,
                        n_resamples=n_boot, n_permutations=n_perm, confidence=confidence, seed=seed,
                        **settings.options())


def current_job() -> ResamplingJob | None:
    """The session's job that was still running when this run collected (:func:`collect_job`). It
    counts as running for the rest of the run even if its thread ends meanwhile: otherwise a job
    that ends mid-run shows neither its progress nor its outcome; :func:`follow_job` then reruns
    the page, which collects it."""
    return st.session_state.get(JOB_KEY)


def collect_job() -> None:
    """Store a finished job's result under its key (bounded, per session), or keep why it ended
    without one (see :func:`job_failure`), and forget the job."""
    job = st.session_state.get(JOB_KEY)
    if job is None or job.running:
        return
    del st.session_state[JOB_KEY]
    if job.result is None:
        st.session_state[FAILURE_KEY] = (job.key, job.failure)
        return
    store = _store()
    store[job.key] = job.inference()
    while len(store) > STORE_SIZE:
        store.popitem(last=False)


def job_failure(key: tuple) -> str | None:
    """Why the session's last job ended without a result, shown until another job starts (with a
    note when it was for other settings than ``key``)."""
    failed = st.session_state.get(FAILURE_KEY)
    if failed is None:
        return None
    return failed[1] if failed[0] == key else f"A run for other settings ended: {failed[1]}"


def _stop_job() -> None:
    job = st.session_state.get(JOB_KEY)
    if job is not None:
        job.stop()


def job_panel(job: ResamplingJob, key: tuple):
    """The running job's Stop button and the slot its progress bar is drawn in (by follow_job)."""
    if job.key != key:
        st.info("Intervals and p-values for other settings are being computed; they will be kept, and shown when "
                "you come back to those settings.", icon=":material/hourglass_top:")
    st.button("Stop computing", key="cmp_stop", on_click=_stop_job, icon=":material/stop_circle:")
    return st.empty()


def follow_job(slot) -> None:
    """Redraw the job's progress until it ends, then rerun the page so that the heatmap shows its
    intervals and marks. Called last on the page: a click elsewhere interrupts only this loop."""
    job = st.session_state.get(JOB_KEY)  # running, or finished since this run collected (a quick one)
    if job is not None and slot is not None and jobs.follow(job, slot):
        st.rerun()


def beyond_chance(result: Inference) -> int:
    """How many cells are clearly beyond chance (not flagged)."""
    return int(result.flagged.size - result.flagged.sum())


def cell_rows(a: Side, b: Side, result: Inference) -> list[dict]:
    """One row per cell: value, interval, p-value, null, and whether it is beyond chance."""
    boot, perm = result.bootstrap, result.permutation
    return [{"A": name_a, "B": name_b, "value": boot.values[i, j], "low": boot.low[i, j], "high": boot.high[i, j],
             "p": perm.p_values[i, j], "p adjusted": result.p_adjusted[i, j], "null mean": perm.null_mean[i, j],
             "null sd": perm.null_std[i, j], "beyond chance": not bool(result.flagged[i, j])}
            for i, name_a in enumerate(a.names) for j, name_b in enumerate(b.names)]


def table_height(rows: int) -> int:
    """Pixels for a dataframe of ``rows`` rows, at most 400."""
    return min(400, 38 + 35 * rows)
