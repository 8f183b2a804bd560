"""The scorecards as background jobs: the zoo's (shipped precomputed, ``sample_models.zoo_scorecard``;
computed, about 10 s, only when the code or weights changed since, then shared by every session of
the server) and the user's own group's (kept per session). Each runs in the server's worker pool
(``jobs.POOL``) with progress and Stop; a click elsewhere restarts the page, not the job, which the
page follows at its end (:func:`follow`) and collects on a later run. Finished cards live in bounded
stores keyed on small descriptors (the measures, resamples, seed, level; the own group's digests)."""
from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import streamlit as st

from cka_core.trust import Member, Scorecard, candidate_measures, scorecard
from sample_models import zoo_scorecard as zoo
from sample_models.groups import MEMBERS

from .. import jobs

RESAMPLES, SEED, CONFIDENCE = zoo.RESAMPLES, zoo.SEED, zoo.CONFIDENCE
ZOO_KEPT = 4    # zoo scorecards kept by the server (one per registry of measures and settings)
OWN_KEPT = 4    # own-group scorecards kept per session
TIME_LIMIT_S = 600.0
ZOO_MODELS = len(MEMBERS)  # the networks of the zoo's groups
ZOO, OWN = "trust_zoo", "trust_own"  # the session's two job slots
_STORES = threading.Lock()  # the zoo's store is shared by every session's script thread


# ------------------------------------------------------------------------------ the work, in a worker process
def own_scorecard(suites: dict[str, list[Member]], measures: tuple[str, ...], n_resamples: int, seed: int,
                  confidence: float, *, progress: Callable[[int, int], None]) -> Scorecard:
    """Every measure on the tests of ``suites`` (the user's group)."""
    return scorecard(suites, list(measures), n_resamples=n_resamples, seed=seed, confidence=confidence,
                     progress=lambda done, total, _: progress(done, total))


# ------------------------------------------------------------------------------ jobs
@dataclass(eq=False)
class CardJob(jobs.Job):
    """One scorecard being computed in the worker pool."""

    def stage_of(self, done: int, total: int) -> str:
        return f"{done} of {total} cells (test × measure)"

    def stopped_text(self) -> str:
        return f"Stopped ({self.where()}); nothing was kept. Press the button to compute it again."

    def time_up_text(self) -> str:
        return f"Gave up after {jobs.duration(self.time_limit or 0.0)} ({self.where()}); nothing was kept."

    def crashed_text(self, error: Exception) -> str:
        return f"{self.what} failed ({type(error).__name__}: {error}); nothing was kept."


@st.cache_resource(max_entries=1)
def _zoo_store() -> OrderedDict:
    """The server's finished zoo scorecards, by descriptor (bounded to ZOO_KEPT by :func:`_keep`); it
    starts with the shipped card while that was computed from this code and these weights."""
    store = OrderedDict()
    key = zoo_key()
    card = zoo.shipped(key[1], RESAMPLES, SEED, CONFIDENCE)
    if card is not None:
        store[key] = card
    return store


def _own_store() -> OrderedDict:
    return st.session_state.setdefault("trust_own_cards", OrderedDict())


def _keep(store: OrderedDict, key: tuple, card: Scorecard, size: int) -> None:
    with _STORES:
        store[key] = card
        while len(store) > size:
            store.popitem(last=False)


def _stored(store: OrderedDict, key: tuple) -> Scorecard | None:
    with _STORES:
        if key in store:
            store.move_to_end(key)
            return store[key]
    return None


def _collect(slot: str, store: OrderedDict, size: int) -> None:
    """Store the slot's finished job's card (or keep why it has none) and forget the job."""
    job = st.session_state.get(slot)
    if job is None or job.running:
        return
    del st.session_state[slot]
    if job.result is None:
        st.session_state[f"{slot}_failure"] = (job.key, job.failure)
    else:
        _keep(store, job.key, job.result, size)


def _forget_failure(slot: str) -> None:
    st.session_state.pop(f"{slot}_failure", None)


def _stop(slot: str) -> None:
    job = st.session_state.get(slot)
    if job is not None:
        job.stop()


def _card(slot: str, key: tuple, store: OrderedDict, size: int, what: str, start: Callable[[CardJob], CardJob]):
    """The card ``key`` names if it is stored; otherwise its job is started (or followed) and None is
    returned, with a Stop button and the slot its progress is drawn in (by :func:`follow`)."""
    _collect(slot, store, size)
    card = _stored(store, key)
    if card is not None:
        return card
    failed = st.session_state.get(f"{slot}_failure")
    if failed is not None and failed[0] == key:
        st.warning(failed[1], icon=":material/stop_circle:")
        st.button("Compute again", key=f"{slot}_again", on_click=_forget_failure, args=(slot,),
                  icon=":material/refresh:")
        return None
    _forget_failure(slot)
    job = st.session_state.get(slot)
    if job is None or job.key != key:  # other settings: the slot's previous job is abandoned
        if job is not None:
            job.stop()
        job = st.session_state[slot] = start(CardJob(key=key, what=what, time_limit=TIME_LIMIT_S))
    st.button("Stop computing", key=f"{slot}_stop", on_click=_stop, args=(slot,), icon=":material/stop_circle:")
    st.session_state[f"{slot}_progress"] = st.empty()
    jobs.draw(job, st.session_state[f"{slot}_progress"])
    return None


def zoo_key() -> tuple:
    return ("zoo", tuple(candidate_measures()), RESAMPLES, SEED, CONFIDENCE)


def zoo_card() -> Scorecard | None:
    """The zoo's scorecard (every measure of the registry, :data:`RESAMPLES` resamples), or None while
    it is computed."""
    key = zoo_key()
    return _card(ZOO, key, _zoo_store(), ZOO_KEPT, "The zoo's scorecard",
                 lambda job: job.start_in(jobs.POOL, zoo.compute, key[1], RESAMPLES, SEED, CONFIDENCE))


def own_card(digest: str, suites: dict[str, list[Member]]) -> Scorecard | None:
    """The scorecard of the user's group (``digest`` names its arrays), or None while it is computed."""
    measures = tuple(candidate_measures())
    key = ("own", digest, tuple(suites), measures, RESAMPLES, SEED, CONFIDENCE)
    return _card(OWN, key, _own_store(), OWN_KEPT, "Your models' scorecard",
                 lambda job: job.start_in(jobs.POOL, own_scorecard, suites, measures, RESAMPLES, SEED, CONFIDENCE))


def follow() -> None:
    """Redraw the running jobs' progress until one ends, then rerun the page to show its card. Called
    last on the page: a click elsewhere interrupts only this loop, never the job."""
    for slot in (ZOO, OWN):
        job, where = st.session_state.get(slot), st.session_state.pop(f"{slot}_progress", None)
        if job is not None and where is not None and jobs.follow(job, where):
            st.rerun()
