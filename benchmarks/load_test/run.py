"""One load test run: start the server, sample its memory and CPU, drive the browser sessions,
stop the server, and gather the report (``run_load_test``, which tests/e2e/test_concurrent_sessions.py
calls too). The raw timings go to the work folder next to the screenshots and the server log."""
from __future__ import annotations

import asyncio
import json
import os
import statistics
import tempfile
import threading
import time
from dataclasses import asdict
from pathlib import Path

from .drive import drive
from .report import LoadTestReport, render
from .resource_usage import Sampler, read_proc_file
from .server import server_log_errors, server_log_messages, server_runs, start_server


def cpu_list(cpus: str) -> set[int]:
    """ "0", "0-1", "1,3" -> {0}, {0, 1}, {1, 3} (taskset's list format)."""
    out: set[int] = set()
    for part in cpus.split(","):
        low, _, high = part.partition("-")
        out.update(range(int(low), int(high or low) + 1))
    return out


def _run_in_thread(coroutine):
    """``asyncio.run`` in a thread of its own: callers may already have an event loop (pytest-playwright's
    sync fixtures keep one in the main thread)."""
    box = {}

    def target():
        try:
            box["result"] = asyncio.run(coroutine)
        except BaseException as error:  # noqa: BLE001 - re-raised in the caller
            box["error"] = error

    thread = threading.Thread(target=target, name="load-test")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["result"]


def run_load_test(sessions: int = 10, seconds: float = 180.0, seed: int = 0, workdir: Path | None = None,
                  moves_per_page: tuple[int, int] = (1, 3), timeout_s: float = 180.0, pages_each: int = 0,
                  warm_up: bool = True, nice: int = 0, command: str = "", server_cpus: str | None = None,
                  client_cpus: str | None = None, think_s: float = 0.0) -> LoadTestReport:
    """Start the server, drive the sessions, stop the server; the report (``.text``) and figures.
    With ``server_cpus``/``client_cpus`` the server and the browsers (this process and its
    children) run on separate cores, and the app logs every script run, so that the report gives
    the server's own CPU time and latency per rerun (the capacity benchmark)."""
    workdir = Path(workdir or tempfile.mkdtemp(prefix="cka_load_test_"))
    workdir.mkdir(parents=True, exist_ok=True)
    load_before = " ".join((read_proc_file("/proc/loadavg") or "? ? ?").split()[:3])
    run_log = workdir / "runs.jsonl"
    run_log.unlink(missing_ok=True)
    server = start_server(workdir / "streamlit.log", nice=nice, cpus=server_cpus, run_log=run_log)
    affinity = os.sched_getaffinity(0)
    if client_cpus:  # the Playwright driver and Chromium start from here and inherit it
        os.sched_setaffinity(0, cpu_list(client_cpus))
    sampler = Sampler(server.proc.pid)
    try:
        time.sleep(1.0)
        sampler.sample()
        idle = sampler.samples[-1][1]
        sampler.start()
        results = _run_in_thread(drive(server.url, sessions, seconds, seed, workdir, sampler, moves_per_page,
                                       timeout_s, pages_each, warm_up, nice, think_s))
        log_size = server.log_path.stat().st_size
        exit_code = server.proc.poll()
        sampler.stop()
    finally:
        sampler.stop()
        server.stop()
        os.sched_setaffinity(0, affinity)
    load_after = " ".join((read_proc_file("/proc/loadavg") or "? ? ?").split()[:3])
    during = [rss for when, rss in sampler.samples if results.started <= when <= results.ended]
    last_third = [rss for when, rss in sampler.samples
                  if results.ended - (results.ended - results.started) / 3 <= when <= results.ended]
    memory = {"idle": idle, "start": sampler.rss_at(sampler.marks.get("start", results.started)),
              "steady": int(statistics.median(last_third or during or [0])),
              "peak": max(rss for _, rss in sampler.samples), "peak_parts": sampler.peak_parts,
              "chromium_peak": max(sampler.chromium_rss, default=0)}
    report = LoadTestReport(results, memory, sampler.cpu_seconds(), server_log_errors(server.log_path, log_size),
                            {"sessions": sessions, "seconds": seconds, "seed": seed, "workdir": str(workdir),
                             "pages_each": pages_each, "warm_up": warm_up, "nice": nice,
                             "server_cpus": server_cpus, "client_cpus": client_cpus, "think_s": think_s,
                             "server_runs": server_runs(run_log, results.started, results.ended),
                             "command": command or f"run_load_test(sessions={sessions}, seconds={seconds})",
                             "load_before": load_before, "load_after": load_after},
                            server_log_messages(server.log_path, log_size))
    if exit_code is not None:
        report.log_errors.append(f"the server exited during the run (exit code {exit_code})")
    report.text = render(report)
    (workdir / "moves.json").write_text(json.dumps([asdict(m) for m in results.moves]))
    (workdir / "memory.json").write_text(json.dumps({"samples": sampler.samples, "marks": sampler.marks}))
    return report
