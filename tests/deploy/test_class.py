"""A short class through the real proxy (issue: a class of 30 on one host): deploy/serve.sh with two
replicas, warmed, then ten simulated students over the websocket protocol for 30 s, uploads
included. Fails on any error box or exception, a timed-out or failed request, a lost session, and an
upload that does not reach the replica holding the student's session (Streamlit answers 400 there)."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from benchmarks.ws_load import Behaviour, LoadConfig, run_ws_load, save

from .test_serve import BASH, HAPROXY, ROOT, SERVE, _free_port

STUDENTS, SECONDS = 10, 30


@pytest.fixture(scope="module")
def proxy_url(tmp_path_factory):
    if HAPROXY is None:
        pytest.fail("haproxy is not installed: apt-get install -y haproxy")
    run_dir = tmp_path_factory.mktemp("class")
    port = _free_port()
    env = {**os.environ, "SERVE_RUN_DIR": str(run_dir), "SERVE_WARM_SECONDS": "20", "SERVE_START_TIMEOUT": "90",
           "PATH": f"{os.environ.get('PATH', '')}:{Path(HAPROXY).parent}"}
    out = run_dir / "stdout.txt"
    with out.open("w") as o, (run_dir / "stderr.txt").open("w") as e:
        proc = subprocess.Popen([BASH, str(SERVE), str(port), "2"], cwd=ROOT, stdout=o, stderr=e,
                                stdin=subprocess.DEVNULL, env=env)
    try:
        deadline = time.monotonic() + 240  # start-up, then at most 20 s of warming
        while "Serving on" not in out.read_text():
            assert proc.poll() is None, (run_dir / "stderr.txt").read_text()
            assert time.monotonic() < deadline, "serve.sh did not print its URL in 240 s"
            time.sleep(0.5)
        yield f"http://127.0.0.1:{port}", run_dir
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_ten_students_through_the_proxy_see_no_error_and_keep_their_sessions(proxy_url, tmp_path):
    url, run_dir = proxy_url
    config = LoadConfig(url=url, students=STUDENTS, seconds=SECONDS, warmup=10, seed=3,
                        behaviour=Behaviour(think=3.0, timeout=90.0, uploads=0.25),
                        command=f"pytest {Path(__file__).relative_to(ROOT)}")
    report = run_ws_load(config, tmp_path)
    save(report, tmp_path / "class.md")
    print(report.text)
    summary = report.summary
    assert summary["error_count"] == 0 and summary["failed_requests"] == 0, report.text
    assert summary["timeouts"] == 0 and summary["lost_sessions"] == 0 and summary["failed_students"] == 0, report.text
    assert summary["uploads_done"] >= 1, report.text  # each one reached the replica that holds its session
    assert summary["requests"]["done"] >= STUDENTS, report.text
    served = set(re.findall(r"streamlit/r\d+", (run_dir / "access.log").read_text()))
    assert len(served) == 2, served  # the students were spread over both replicas
