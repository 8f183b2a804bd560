"""The server the load test drives: ``streamlit run app.py`` on a free loopback port, and what it
writes: the tracebacks and messages of its log, and the app's own log of its script runs
(``CKA_RUN_LOG``)."""
from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from .results import percentile, without_incident_reference

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    proc: subprocess.Popen
    url: str
    log_path: Path

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def start_server(log_path: Path, timeout: float = 90.0, nice: int = 0, cpus: str | None = None,
                 run_log: Path | None = None, root: Path = ROOT) -> Server:
    """``streamlit run app.py`` on 127.0.0.1 and a free port (the e2e conftest's flags), once
    /_stcore/health answers ok; ``nice`` > 0 runs it at a lower CPU priority, ``cpus`` ("0", "0-1")
    pins it to those cores (taskset), ``run_log`` makes the app log every script run there, ``root``
    serves another checkout of the app (a benchmark's baseline)."""
    port = free_port()
    log = log_path.open("w")
    env = {**os.environ, **({"CKA_RUN_LOG": str(run_log)} if run_log else {})}
    proc = subprocess.Popen(
        (["taskset", "-c", cpus] if cpus else [])
        + [sys.executable, "-m", "streamlit", "run", str(root / "app.py"), "--server.headless=true",
           f"--server.port={port}", "--server.address=127.0.0.1", "--browser.gatherUsageStats=false",
           "--server.fileWatcherType=none"],
        cwd=root, stdout=log, stderr=subprocess.STDOUT, env=env,
    )
    log.close()  # the child holds its own descriptor
    if nice:  # at once, while Python is still starting: the threads it starts later inherit the priority
        os.setpriority(os.PRIO_PROCESS, proc.pid, nice)
    server = Server(proc, f"http://127.0.0.1:{port}", log_path)
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            break
        try:
            if urllib.request.urlopen(f"{server.url}/_stcore/health", timeout=2).read() == b"ok":
                return server
        except OSError:
            time.sleep(0.3)
    server.stop()
    raise RuntimeError(f"streamlit did not become healthy on {server.url}; see {log_path}")


def server_log_errors(log_path: Path, upto: int | None = None) -> list[str]:
    """Each traceback in the server log (up to byte ``upto``): the line before it (the logger's
    message), the innermost frames and the exception."""
    lines = log_path.read_bytes()[:upto].decode(errors="replace").splitlines()
    blocks = []
    for i, line in enumerate(lines):
        if not line.startswith("Traceback (most recent call last)"):
            continue
        end = next((j for j in range(i + 1, len(lines)) if lines[j] and not lines[j][0].isspace()), len(lines) - 1)
        frames = [x for x in lines[i + 1:end] if x.lstrip().startswith("File ")]
        blocks.append("\n".join(([lines[i - 1]] if i else []) + [line, "  ..."] + frames[-3:] + [lines[end]]))
    return blocks


def server_log_messages(log_path: Path, upto: int | None = None) -> dict[str, int]:
    """The server's own log lines (timestamped; not the startup banner), counted by text."""
    found: dict[str, int] = defaultdict(int)
    for line in log_path.read_bytes()[:upto].decode(errors="replace").splitlines():
        m = re.match(r"^\d{4}-\d\d-\d\d [\d:.]+ (.+)$", line)
        if m and "server started on" not in m.group(1):
            found[without_incident_reference(m.group(1))[:300]] += 1
    return found


def server_runs(run_log: Path, start: float, end: float) -> dict:
    """The app's own log of its script runs (ui.frame.shell.timed_run) between ``start`` and ``end``:
    count, and wall time and thread CPU time per run, completed runs and runs cut short by a click,
    and how many completed runs were of one page section alone (ui.frame.shell.live_section)."""
    if not run_log.exists():
        return {}
    runs = [json.loads(line) for line in run_log.read_text().splitlines() if line.strip()]
    runs = [r for r in runs if start <= r["end"] <= end]
    done = [r for r in runs if r["outcome"] == "done"]
    by_page = defaultdict(list)
    for r in done:
        by_page[r["page"] or ""].append(r)
    return {"runs": len(runs), "done": len(done), "interrupted": len(runs) - len(done),
            "sections": sum("fragment" in r for r in done),
            "wall": [r["wall"] for r in done], "cpu": [r["cpu"] for r in done],
            "pages": {page: {"runs": len(rs), "wall_p50": percentile([r["wall"] for r in rs], 50),
                             "wall_p95": percentile([r["wall"] for r in rs], 95),
                             "cpu_p50": percentile([r["cpu"] for r in rs], 50)} for page, rs in by_page.items()},
            "cpu_seconds": sum(r["cpu"] for r in runs)}
