"""Load test: concurrent browser sessions drive every page of the app at once.

    python -m benchmarks.load_test [--sessions 10] [--minutes 3] [--seed 0] [--out benchmarks/results/load_test.md]

Starts ``streamlit run app.py`` on a free loopback port (the flags of tests/e2e/conftest.py), warms
it up with one session that loads every page, then drives ``--sessions`` browser contexts of one
headless Chromium (each its own Streamlit session, arriving 1 s apart) until the deadline. Each
session takes the pages in a random order, then random pages, reaching each through the
sidebar's navigation links or, one time in seven, a deep link with query parameters (a full page
load, so a new Streamlit session). On each page it makes 1-3 random moves: a slider by keyboard
(arrows, PageUp/PageDown, Home/End), a radio, a selectbox (arrow keys and Enter), a checkbox, a
number input's step buttons, an expander; now and then a sidebar control (the source: sample
model or synthetic set, its model, layer or sliders), or an upload of a small generated file
(.npy, .npz with labels, .csv) through the sidebar's "Uploaded file" source (on Compare, a .npz on
one side). Rarely, and at least once per run: on Compare it presses "Compute intervals and
p-values" (mostly after setting 2000 bootstrap resamples) and then "Stop computing"; on Manipulate
it presses Train and Stop a few seconds later. Stop has to work under load.

Measured, in the page (``performance.now``), from just before each input event:
* rerun latency: until the app is idle again: no script running (stApp's data-test-script-state
  and the server's run-started / run-finished messages, read off the websocket), connected, and
  nothing changing for 0.3 s; "drawn" also waits for the widgets' loading skeletons to go; "script
  run" is the time between the server's run-started and run-finished messages;
* errors: exception boxes, error alerts other than the app's own teaching and validation
  messages (``EXPECTED_ERROR_ALERTS``), lost connections, page crashes, JavaScript errors, console
  errors and failed loads (except the two in ``BASE_PATH_PROBE``'s comment), moves that never
  become idle, a Stop that does not stop, and tracebacks in the server log; each with a
  screenshot;
* the server's memory: RSS of the streamlit process tree every 0.5 s (idle; "start", after the
  warm-up loaded every page; "steady", the median over the last third of the run; peak), and the
  CPU time of the server, Chromium, the Playwright driver and the rest of the machine.

Writes the report to --out and prints it; screenshots, the server log, the raw timings
(moves.json, memory.json) and the driver's own notes (driver_notes.log: moves that caused no
rerun; driver_mishaps.log: moves it could not make) go to --workdir (default: a new temporary
folder). Exit status 1 when there were errors or the steady memory exceeded the 1.5 GB target.
tests/e2e/test_concurrent_sessions.py runs a short version (``run_load_test``) on every test run.

The package, one concept a module: ``server`` (the streamlit server and what it logs),
``session`` and ``moves`` (a browser session's plumbing, then its random moves), ``page_scripts``
(the JavaScript run in the pages, from the ``.js`` files here), ``app_pages`` (the app's pages,
deep links and expected alerts), ``upload_files``, ``drive`` (the browsers and the concurrent
sessions), ``resource_usage`` (memory and CPU from /proc), ``results`` (what a run records),
``report``, ``run`` (one run, ``run_load_test``) and ``__main__`` (the command line).
"""
from .app_pages import PAGES
from .drive import CHROMIUM, page_shares
from .report import MEMORY_TARGET_BYTES
from .run import run_load_test

__all__ = ["CHROMIUM", "MEMORY_TARGET_BYTES", "PAGES", "page_shares", "run_load_test"]
