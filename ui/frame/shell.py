"""The frame every page runs in: navigation, the error boundary and the URL check.

Streamlit decides once per server process whether an app with a ``pages/`` folder uses the
legacy multipage mode, and only switches to ``st.navigation`` after app.py has run once. A
deep link into a page of a freshly started server would therefore run the page file alone,
without the shared sidebar. Each page calls ``inside_app_frame()`` first: in that one case it
switches the legacy mode off and reruns, so app.py draws the frame and then the page.
"""
from __future__ import annotations

import functools
import json
import logging
import math
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import streamlit as st
from streamlit.runtime.pages_manager import PagesManager
from streamlit.runtime.scriptrunner_utils.script_run_context import get_script_run_ctx

from cka_core import RepresentationError

_LOG = logging.getLogger("cka_explorer")
T = TypeVar("T")

URL_AT_LOAD = "_url_at_load"        # the query parameters the session was opened with
URL_NOTICES = "_url_notices"        # what the URL check found, shown until dismissed
URL_PAGE_PARAMS = "_url_page_params"  # parameters a page applies itself (no widget holds them): key -> applied
SHOWN_VALUE_CHARS = 40              # a hostile link can carry megabytes in one value


#: When set (the capacity benchmark sets it), every script run appends one JSON line to this file:
#: the page, the run's wall time and the CPU time of its thread, as measured at the server.
RUN_LOG = os.environ.get("CKA_RUN_LOG")
_RUN_LOG_LOCK = threading.Lock()


CURRENT_PAGE = "_current_page"      # the url path of the page the last full run drew


@contextmanager
def timed_run(fragment: str | None = None) -> Iterator[dict]:
    """Time one script run (wall clock and the CPU of the thread that runs it, which is where a
    session computes: one BLAS/torch thread) and log it to RUN_LOG. Yields a dict for the page's
    url path; a run cut short by a click (Streamlit's rerun signal) is logged with that outcome.
    ``fragment`` names the section when only that section reruns (:func:`live_section`)."""
    record: dict = {"page": None}
    if not RUN_LOG:
        yield record
        return
    wall, cpu, outcome = time.perf_counter(), time.thread_time(), "done"
    try:
        yield record
    except BaseException as signal:  # noqa: BLE001 - logged, then passed on unchanged
        outcome = type(signal).__name__
        raise
    finally:
        entry = {"page": record["page"], "wall": time.perf_counter() - wall, "cpu": time.thread_time() - cpu,
                 "end": time.time(), "outcome": outcome}
        if fragment is not None:
            entry["fragment"] = fragment
        with _RUN_LOG_LOCK, open(RUN_LOG, "a") as log:
            log.write(json.dumps(entry) + "\n")


def _fragment_rerun() -> bool:
    """Whether this run reruns fragments only (a widget inside one changed), not the whole app."""
    ctx = get_script_run_ctx(suppress_warning=True)
    return bool(ctx is not None and ctx.fragment_ids_this_run)


def live_section(where: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Decorator for a page section whose widgets drive only what the section draws: a change
    reruns the section alone (``st.fragment``: less work at the server, less to redraw in the
    browser). A section that moves the page's takeaway writes it itself, into the slot the page
    header made (Streamlit redraws a fragment's writes to an outside container in place). Such a
    rerun skips app.py, so the section brings its own error boundary and, when it runs alone,
    its own entry in the run log. It returns nothing: the rest of the page does not rerun with it."""
    def decorate(draw: Callable[..., None]) -> Callable[..., None]:
        @functools.wraps(draw)
        def section(*args, **kwargs) -> None:
            if not _fragment_rerun():
                with error_boundary(where):
                    draw(*args, **kwargs)
                return
            with timed_run(fragment=draw.__name__) as run, error_boundary(where):
                run["page"] = st.session_state.get(CURRENT_PAGE)
                draw(*args, **kwargs)
        return st.fragment(section)
    return decorate


def inside_app_frame() -> None:
    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        st.rerun()


@contextmanager
def error_boundary(where: str) -> Iterator[None]:
    """Turn an exception inside a page (or the sidebar) into a short message, so the rest of the
    app stays usable. Streamlit's own rerun/stop signals are BaseExceptions and pass through."""
    try:
        yield
    except RepresentationError as error:  # bad input that reached a page: its message says how to fix it
        st.error(f"{error}")
    except Exception as error:  # noqa: BLE001 - the boundary exists to catch what nothing else did
        reference = secrets.token_hex(3)
        _LOG.exception("%s failed (reference %s)", where, reference)
        st.error(f"{where} hit an unexpected error ({type(error).__name__}) and stopped drawing. The rest of the "
                 f"app still works: change a control, or pick another page. If it keeps happening, report "
                 f"reference `{reference}` (the details are in the server log).", icon=":material/error:")


def remember_url_at_load() -> None:
    """Record the link the session was opened with, before any widget binds (and so may drop)
    a parameter of it. Called at the top of every run; only the first one counts."""
    if URL_AT_LOAD not in st.session_state:
        st.session_state[URL_AT_LOAD] = {key: st.query_params.get_all(key) for key in st.query_params}


def check_url_after_first_run() -> None:
    """After the first complete run, compare the link the session was opened with to what the
    bound widgets made of it. Streamlit silently drops a value that is not an option, of the
    wrong type or out of range (or clamps it); each such parameter gets a notice saying which
    value was used instead."""
    opened_with = st.session_state.get(URL_AT_LOAD)
    if opened_with is None or URL_NOTICES in st.session_state:
        return
    st.session_state[URL_NOTICES] = [notice for key, values in opened_with.items()
                                     if (notice := url_notice(key, values)) is not None]


def read_page_param(key: str, parse: Callable[[str], T | None]) -> T | None:
    """A URL parameter that a page applies itself because no single widget holds it (the custom
    target grid of Manipulate): its current value parsed by ``parse``, None when absent or not
    valid (``parse`` returns None). The URL check reports whether the opening link's value applied."""
    if key not in st.query_params:
        return None
    value = parse(st.query_params[key])
    st.session_state.setdefault(URL_PAGE_PARAMS, {})[key] = value is not None
    return value


def write_page_param(key: str, text: str | None) -> None:
    """Put a page-applied parameter in the URL (None removes it, as a bound widget at its default does)."""
    if text is None:
        st.query_params.pop(key, None)
    elif st.query_params.get(key) != text:
        st.query_params[key] = text


def url_notice(key: str, url_values: list[str]) -> str | None:
    """The notice for one parameter of the opening link, or None if it was applied as given."""
    shown = _shorten(", ".join(url_values))
    applied_by_page = st.session_state.get(URL_PAGE_PARAMS, {})
    if key in applied_by_page:
        return None if applied_by_page[key] else (
            f"`{_shorten(key)}={shown}` does not fit this control with these settings (wrong size or a value "
            "outside its range), so it was not applied.")
    if not _bound_to_a_widget(key) or key not in st.session_state:
        return f"`{_shorten(key)}={shown}` matches no control shown with these settings, so it was ignored."
    value = st.session_state[key]
    if url_matches(url_values, value):
        return None
    return (f"`{key}={shown}` is not a valid value for this control (not one of its options, of the wrong "
            f"type or out of range), so it was set to `{_shorten(str(value))}` instead.")


def _bound_to_a_widget(key: str) -> bool:
    # Streamlit keeps its widget bindings on the session's QueryParams (1.67, pinned); no public API.
    return get_script_run_ctx().session_state._state.query_params.is_bound(key)


def url_matches(url_values: list[str], value: object) -> bool:
    """Whether the value a widget ended up with is the one the URL asked for."""
    if isinstance(value, (list, tuple)):
        return len(value) == len(url_values) and all(url_matches([u], v) for u, v in zip(url_values, value))
    if len(url_values) != 1:
        return False
    text = url_values[0]
    if isinstance(value, bool):
        return text.strip().lower() == str(value).lower()
    if isinstance(value, (int, float)):
        try:
            return math.isclose(float(text), float(value), rel_tol=1e-9, abs_tol=1e-12)
        except ValueError:
            return False
    return text == str(value)


def show_url_notices() -> None:
    """The notices of the URL check, above the page, until dismissed."""
    notices = st.session_state.get(URL_NOTICES)
    if not notices:
        return
    st.warning("**The link's settings were only partly applied.**\n\n" + "\n".join(f"- {n}" for n in notices),
               icon=":material/link_off:")
    st.button("Dismiss", key="url_notices_dismiss", on_click=lambda: st.session_state.update({URL_NOTICES: []}))


def _shorten(text: str) -> str:
    return text if len(text) <= SHOWN_VALUE_CHARS else text[: SHOWN_VALUE_CHARS - 1] + "…"
