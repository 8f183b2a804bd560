"""Browser tests: a real `streamlit run` on a free loopback port, driven by Playwright in
Debian's Chromium (never a downloaded browser)."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-quic", "--no-first-run"]
SCREENSHOTS = ROOT / "docs" / "screenshots"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}: install Debian's chromium (apt-get install -y chromium).")
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": CHROMIUM_ARGS}


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args):
    return {**browser_context_args, "viewport": {"width": 1400, "height": 1000}}


@pytest.fixture(scope="session")
def run_log(tmp_path_factory) -> Path:
    """The server's log of its script runs (ui.frame.shell.timed_run): one JSON line per run, with
    ``fragment`` set when only a page section reran."""
    return tmp_path_factory.mktemp("runs") / "runs.jsonl"


@pytest.fixture(scope="session")
def app_url(tmp_path_factory, run_log):
    port = _free_port()
    log = (tmp_path_factory.mktemp("server") / "streamlit.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.headless=true",
         f"--server.port={port}", "--server.address=127.0.0.1", "--browser.gatherUsageStats=false",
         "--server.fileWatcherType=none"],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "CKA_RUN_LOG": str(run_log)},
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                break
        except OSError:
            time.sleep(0.3)
    else:
        proc.terminate()
        pytest.fail(f"streamlit did not become healthy on {url}; see {log.name}")
    yield url
    proc.terminate()
    proc.wait(10)
    log.close()


IDLE = "[data-testid='stApp'][data-test-script-state='notRunning']"


def wait_for_run(page, timeout: float = 60_000, settle: float = 500) -> None:
    """The app is idle: connected, no script running for ``settle`` ms in a row, no skeleton left.

    One look is not enough on a loaded machine: a page's first run can be followed by a second
    (widgets restored from the URL) more than a few hundred ms later.
    """
    page.locator("[data-testid='stApp'][data-test-connection-state='CONNECTED']").wait_for(timeout=timeout)
    deadline = time.monotonic() + timeout / 1000
    while True:
        page.wait_for_timeout(settle)
        page.locator(IDLE).wait_for(timeout=max(1.0, deadline - time.monotonic()) * 1000)
        page.wait_for_timeout(settle)
        idle = page.locator(IDLE).count() == 1 and page.get_by_test_id("stSkeleton").count() == 0
        if idle or time.monotonic() > deadline:
            return


def save_screenshot(page, name: str, max_height: int = 4000) -> Path:
    """The whole page: Streamlit scrolls inside its main container, so the viewport is made as
    tall as that container's content (up to ``max_height``) before the shot, then restored."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    viewport = page.viewport_size
    height = page.evaluate(
        "() => Math.max(...[...document.querySelectorAll('[data-testid=stMain], [data-testid=stAppViewContainer]')]"
        ".map(e => e.scrollHeight), document.body.scrollHeight)"
    )
    page.set_viewport_size({"width": viewport["width"], "height": min(max(height, viewport["height"]), max_height)})
    page.wait_for_timeout(500)  # let plotly re-layout to the new size
    page.screenshot(path=str(path), full_page=True)
    page.set_viewport_size(viewport)
    return path
