"""Protocol-level load test: N simulated students speak Streamlit's websocket protocol, no browsers.

    python -m benchmarks.ws_load --url http://127.0.0.1:PORT --students 30 --seconds 180 --think 5 \\
        --warmup 30 --out benchmarks/results/ws_load.md
    python -m benchmarks.ws_load --start-server --server-cpu 0 --students 8 --seconds 90 --think 2 \\
        --warmup 20 --out benchmarks/results/ws_load_baseline.md

Each student is one Streamlit session, opened as the browser frontend of the installed Streamlit
(1.67) opens it: it GETs the page (a reverse proxy's sticky cookie), /_stcore/health (the XSRF
cookie) and /_stcore/host-config, opens ws://.../_stcore/stream with the subprotocols "streamlit",
the XSRF token and, when reconnecting, its last session id, and sends what the frontend sends
first: a ``rerun_script`` naming the page by its url path. It reads every ForwardMsg: new_session
(session id, run id), navigation (the pages and their script hashes), deltas (an element tree per
delta path, with each node's run, fragment and script; stale nodes cleared at script_finished as
the frontend does), script_finished, page_info_changed (the URL's query string), page_not_found,
compile errors, file_urls_response, and cache references (it keeps the frontend's message cache
and reports its hashes). Every ``rerun_script`` carries all widget states as the frontend holds
them; a widget drawn inside an st.fragment reruns that fragment alone (ClientState.fragment_id); a
page switch sends the next page's hash with the shared sidebar's states; an upload asks for URLs
(file_urls_request), PUTs the file with the XSRF header and the student's cookies, and sets the
file_uploader's state. Students run concurrently on one asyncio loop until the deadline, arriving
staggered, pausing exponential think times, touring the pages in a random order.

Reported per move kind and per page (over the measured window, after the warm-up): p50/p95/max
latency from the request to the run's script_finished ("drawn": to its last delta); errors
(exception elements, error alerts other than the app's own, ``load_test.app_pages.
EXPECTED_ERROR_ALERTS``, failed uploads, page-not-found and compile errors, tracebacks in the log
of a server started here), timeouts, disconnects, lost sessions, requests per second, and, when
the server's PIDs are known (--server-pid, or --start-server), its CPU seconds per request and its
RSS. Exit status 1 when there were errors, timeouts, lost sessions or failed students.

One concept a module: ``protocol`` (BackMsgs, the message cache), ``transport`` (cookies, HTTP,
the websocket handshake), ``tree`` (the element tree), ``widgets`` (widgets, their states and
changes), ``session`` (one browser tab's Streamlit session), ``student`` (one student's
behaviour), ``records``, ``usage`` (the server's CPU and memory), ``run`` (one run,
``run_ws_load``), ``report`` and ``__main__`` (the command line).
"""
from .run import LoadConfig, LoadReport, run_apart, run_ws_load, save
from .session import StreamlitSession
from .student import SOURCE_LABEL, UPLOAD_OPTION, UPLOADER_LABEL, Behaviour

__all__ = ["SOURCE_LABEL", "UPLOAD_OPTION", "UPLOADER_LABEL", "Behaviour", "LoadConfig", "LoadReport",
           "StreamlitSession", "run_apart", "run_ws_load", "save"]
