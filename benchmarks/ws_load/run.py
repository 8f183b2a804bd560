"""One run of the protocol-level load test (``run_ws_load``): optionally start the server (the way
benchmarks/load_test/server.py does, pinned to its own cores, the students on the others), then
the students, concurrently on one asyncio loop, arriving staggered over the first half of the
warm-up; mark the measured window (its CPU readings), watch the loop's own lag, stop everything
by the deadline plus one request timeout, and gather the report."""
from __future__ import annotations

import asyncio
import os
import random
import tempfile
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.load_test.results import percentile
from benchmarks.load_test.run import cpu_list
from benchmarks.load_test.server import server_log_errors, server_runs, start_server
from benchmarks.load_test.upload_files import make_upload_files
from ui.frame.navigation import PAGES

from .records import Problem, Results
from .report import render, summarize, write
from .session import StreamlitSession
from .student import Behaviour, Student
from .usage import ServerUsage

#: The sample files a student may upload through the sidebar (load_test.upload_files' names).
SIDEBAR_FILES = ("npy", "npz", "csv")


@dataclass
class LoadConfig:
    """What to run: the target, the students, the window and the server to start or measure."""
    url: str | None = None            # the app (or a proxy in front of it); None with start_server
    students: int = 30
    seconds: float = 180.0            # the measured window, after the warm-up
    warmup: float = 30.0
    seed: int = 0
    behaviour: Behaviour = field(default_factory=Behaviour)
    start_server: bool = False        # start `streamlit run app.py` here (load_test.server.start_server)
    server_cpu: str | None = None     # pin the started server to these cores (taskset list); students elsewhere
    server_pids: list[int] = field(default_factory=list)  # servers to measure (the started one is added)
    command: str = ""


@dataclass
class LoadReport:
    """A run's figures, its markdown and its raw records."""
    summary: dict
    text: str
    results: Results

    @property
    def ok(self) -> bool:
        """Whether the run passed: no errors, timeouts, lost sessions or failed students."""
        return self.summary["ok"]


async def served_pages(url: str, timeout: float) -> list[str]:
    """The url paths of the pages the server serves, in this checkout's order (another checkout, e.g. the
    baseline of a before/after run, may serve fewer pages)."""
    session = StreamlitSession(url, timeout)
    try:
        await session.open("")
        return [p.url_path for p in PAGES if p.url_path in session.pages]
    finally:
        await session.close()


def run_apart(coroutine):
    """Run ``coroutine`` to its end on an event loop in a thread of its own: the caller's thread may
    hold a running loop already (a test process whose browser tests keep Playwright's)."""
    with ThreadPoolExecutor(1, thread_name_prefix="ws-load") as pool:
        return pool.submit(asyncio.run, coroutine).result()


def _read_load() -> str:
    """The machine's 1, 5 and 15 minute load averages."""
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


async def _watch_lag(samples: list[tuple[float, float]], until: float, period: float = 0.25) -> None:
    """How late the event loop wakes up (the students' core is saturated when this grows)."""
    while time.time() < until:
        t = time.perf_counter()
        await asyncio.sleep(period)
        samples.append((time.time(), time.perf_counter() - t - period))


async def _mark_window(usage: ServerUsage, results: Results, deadline: float, cpu: dict) -> None:
    """CPU readings (servers and this process) at the start and the end of the measured window."""
    await asyncio.sleep(max(0.0, results.measured_from - time.time()))
    usage.mark("start")
    cpu["start"] = time.process_time()
    await asyncio.sleep(max(0.0, deadline - time.time()))
    usage.mark("end")
    cpu["end"] = time.process_time()


async def _drive(config: LoadConfig, url: str, files: dict[str, bytes], usage: ServerUsage,
                 results: Results) -> tuple[float, float, list, dict]:
    """All students until the deadline (plus one request timeout for the last requests);
    (deadline, stagger, loop lag samples, CPU readings of this process)."""
    results.started = time.time()
    results.measured_from = results.started + config.warmup
    deadline = results.measured_from + config.seconds
    stagger = min(2.0, config.warmup / 2 / config.students) if config.warmup > 0 else 0.5
    lag: list[tuple[float, float]] = []
    cpu: dict[str, float] = {}
    helpers = [asyncio.create_task(_watch_lag(lag, deadline)),
               asyncio.create_task(_mark_window(usage, results, deadline, cpu))]
    pages = await served_pages(url, config.behaviour.timeout)
    students = [Student(i, url, random.Random(config.seed * 1000 + i), config.behaviour, results, deadline, files,
                        pages) for i in range(config.students)]
    tasks = [asyncio.create_task(s.run(i * stagger)) for i, s in enumerate(students)]
    _, late = await asyncio.wait(tasks, timeout=deadline - time.time() + config.behaviour.timeout + 15)
    for task in late:
        task.cancel()
    outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    await asyncio.gather(*helpers)
    results.ended = time.time()
    for i, outcome in enumerate(outcomes):
        if isinstance(outcome, asyncio.CancelledError):
            results.problems.append(Problem(i, "?", "?", "stuck", "still busy past the deadline", results.ended))
        elif isinstance(outcome, BaseException):
            where = "".join(traceback.format_exception(outcome)[-3:]).strip()
            results.problems.append(Problem(i, "?", "?", "load generator", where, results.ended))
    return deadline, stagger, lag, cpu


def run_ws_load(config: LoadConfig, workdir: Path | None = None) -> LoadReport:
    """Run the students against ``config.url`` (or a server started here) and return the report."""
    workdir = Path(workdir or tempfile.mkdtemp(prefix="cka_ws_load_"))
    workdir.mkdir(parents=True, exist_ok=True)
    made = make_upload_files(workdir / "uploads", config.seed)
    files = {made[key].name: made[key].read_bytes() for key in SIDEBAR_FILES}
    load_before, affinity = _read_load(), os.sched_getaffinity(0)
    server, url, pids = None, config.url, list(config.server_pids)
    run_log = workdir / "runs.jsonl"
    if config.start_server:
        server = start_server(workdir / "streamlit.log", cpus=config.server_cpu, run_log=run_log)
        url, pids = server.url, pids + [server.proc.pid]
    if url is None:
        raise ValueError("give the app's URL, or start a server")
    usage = ServerUsage(pids)
    results = Results()
    try:
        if config.server_cpu and affinity - cpu_list(config.server_cpu):
            os.sched_setaffinity(0, affinity - cpu_list(config.server_cpu))
        idle_rss = usage.read()[0] if pids else 0
        usage.start()
        deadline, stagger, lag, cpu = run_apart(_drive(config, url, files, usage, results))
        log_size = server.log_path.stat().st_size if server else 0
        exit_code = server.proc.poll() if server else None
    finally:
        usage.stop()
        if server is not None:
            server.stop()
        os.sched_setaffinity(0, affinity)
    server_info: dict = {"pids": pids, "rss_idle": idle_rss, "rss": usage.rss(results.measured_from, deadline),
                         "cpu_seconds": usage.cpu_between("start", "end") if pids else None}
    if server is not None:
        server_info["log_errors"] = server_log_errors(server.log_path, log_size)
        for text in server_info["log_errors"]:
            results.problems.append(Problem(-1, "?", "?", "server log", text, results.ended))
        if exit_code is not None:
            results.problems.append(Problem(-1, "?", "?", "server", f"exited during the run ({exit_code})",
                                            results.ended))
        runs = server_runs(run_log, results.measured_from, deadline)
        if runs:
            server_info["runs"] = {"done": runs["done"], "interrupted": runs["interrupted"],
                                   "sections": runs["sections"], "wall_p50": percentile(runs["wall"], 50),
                                   "wall_p95": percentile(runs["wall"], 95), "cpu_p50": percentile(runs["cpu"], 50)}
    window = [x for t, x in lag if results.measured_from <= t <= deadline] or [0.0]
    window_seconds = max(deadline - results.measured_from, 1e-9)
    client = {"cpu_seconds": cpu.get("end", 0.0) - cpu.get("start", 0.0), "lag_p95": percentile(window, 95),
              "lag_max": max(window)}
    client["cpu_share"] = client["cpu_seconds"] / window_seconds
    b = config.behaviour
    setup = {"command": config.command or f"run_ws_load({config.students} students, {config.seconds:g} s)",
             "url": url, "students": config.students, "seconds": config.seconds, "warmup": config.warmup,
             "seed": config.seed, "think": b.think, "timeout": b.timeout, "uploads": b.uploads, "buttons": b.buttons,
             "moves_per_page": list(b.moves_per_page), "stagger": stagger, "window_end": deadline,
             "server_note": (f"started here (pid {server.proc.pid}"
                             + (f", pinned to core(s) {config.server_cpu}, the students on core(s) "
                                f"{','.join(map(str, sorted(affinity - cpu_list(config.server_cpu))))}"
                                if config.server_cpu else "") + ")") if server else
                            (f"pid(s) {', '.join(map(str, pids))}" if pids else "not measured"),
             "cpus": os.cpu_count(), "load_before": load_before, "load_after": _read_load(), "workdir": str(workdir)}
    summary = summarize(results, setup, server_info, client)
    return LoadReport(summary, render(summary), results)


def save(report: LoadReport, out: Path) -> Path:
    """The report's markdown at ``out``, its raw JSON next to it; the JSON's path."""
    return write(report.summary, report.results, out)
