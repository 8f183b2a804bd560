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
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ui import navigation

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-quic", "--no-first-run"]
MEMORY_TARGET_BYTES = int(1.5 * 2**30)
VIEWPORT = {"width": 1024, "height": 768}  # smaller viewports cost the (software-rendering) browsers less

#: url path -> sidebar title, in the order of app.py
PAGES = {page.url_path: page.title for page in navigation.PAGES}

#: Deep links a user might share (query parameters are the widgets' bound keys).
DEEP_LINKS = {
    "": ["?src_kind=Synthetic+set", "?src_kind=Sample+model&src_model=mlp_seed1"],
    "estimators": ["?est_n=200&est_seed=3", "?est_log_sigma=1.0", "?est_batch=16"],
    "compare": ["?cmp_dd_k=5", "?cmp_a_model=mlp_seed2&cmp_dd_k=12"],
    "outliers": ["?out_what=Random+fraction&out_fraction=0.3&out_log_c=3", "?out_index=42&out_log_c=2"],
    "invariances": ["?inv_seed=5", "?inv_spread=2.0"],
    "separability": ["?sep_seed=4&sep_log_c=1.5", "?src_kind=Synthetic+set&sep_log_c=2"],
    "function_preserving": ["?fp_spread=2.5&fp_seed=7", "?fp_seed=1"],
    "manipulate": ["?man_epochs=40", "?man_target=All+ones+%28everything+alike%29"],
    "neural_diversity": ["?nd_kind=Step+drive+%2BA+on+pre-activations&nd_amp_drive=0.4", "?nd_amp_sin=0.8",
                         "?nd_seed=3&nd_gain=8.0"],
}

#: Error alerts the app shows on purpose: teaching displays and validation of a choice that random
#: moves can make. Anything else in an error alert counts as an error.
EXPECTED_ERROR_ALERTS = {
    "estimators: float32 round-off display": re.compile(r"the uncentred float32 estimator is off by"),
    "function-preserving: low-precision display": re.compile(r"predictions changed: in \w+ the edit is no\s+longer"),
    "neural diversity: saturated network display": re.compile(r"CKA is undefined for .* the hidden layer is constant"),
    "manipulate: same layer picked twice": re.compile(r"pick two different layers"),
}

_REFERENCE = re.compile(r"reference `?[0-9a-f]{6}`?")  # the error boundary's per-incident reference

#: Failed loads that are not the app's: Streamlit probes for a base path by requesting
#: /<page>/_stcore/{health,host-config} (404s), and the page icon comes from fonts.gstatic.com,
#: which this loopback-only test cannot reach. Any other failed load counts as an error.
BASE_PATH_PROBE = re.compile(r"^http://127\.0\.0\.1:\d+/[\w/]+/_stcore/(health|host-config)$")

# Runs in every page before the app's own scripts. It records (1) each change of stApp's
# data-test-script-state / data-test-connection-state attributes and (2) the script lifecycle
# messages the server sends over the websocket: a run starting (session_status_changed with
# script_is_running), a run finishing (script_finished), a new session. (2) is needed because on a
# busy renderer React may batch "running" and "not running" into one render, so the attribute never
# shows "running". ForwardMsg fields (streamlit/proto/ForwardMsg.proto): 4 new_session, 6
# script_finished (enum: 2 = finished early for a rerun), 9 session_status_changed (field 2:
# script_is_running). Each entry: [performance.now(), kind, value].
_INIT_SCRIPT = """
(() => {
  if (window.__lt) return;
  const lt = window.__lt = {log: [], app: null};
  const attach = () => {
    const app = document.querySelector('[data-testid="stApp"]');
    if (!app || app === lt.app) return;
    lt.app = app;
    const rec = () => lt.log.push([performance.now(), 'dom', app.getAttribute('data-test-script-state'),
                                   app.getAttribute('data-test-connection-state')]);
    rec();
    new MutationObserver(rec).observe(app, {attributes: true,
      attributeFilter: ['data-test-script-state', 'data-test-connection-state']});
  };
  setInterval(attach, 25);
  const varint = (b, i) => {
    let v = 0, m = 1;
    while (i < b.length) { const x = b[i++]; v += (x & 127) * m; m *= 128; if (x < 128) break; }
    return [v, i];
  };
  const fields = (b, from, to) => {  // top-level fields of a protobuf message: [[number, wire, value | [start, end]]]
    const out = [];
    let i = from;
    while (i < to) {
      let tag, v; [tag, i] = varint(b, i);
      const f = Math.floor(tag / 8), w = tag & 7;
      if (w === 0) { [v, i] = varint(b, i); out.push([f, w, v]); }
      else if (w === 2) { [v, i] = varint(b, i); out.push([f, w, [i, i + v]]); i += v; }
      else if (w === 1) i += 8; else if (w === 5) i += 4; else break;
    }
    return out;
  };
  const onMessage = (ev) => {
    if (!(ev.data instanceof ArrayBuffer)) return;
    const b = new Uint8Array(ev.data), now = performance.now();
    for (const [f, w, v] of fields(b, 0, b.length)) {
      if (f === 4 && w === 2) lt.log.push([now, 'new_session', 1]);
      else if (f === 6 && w === 0) lt.log.push([now, 'finished', v]);
      else if (f === 9 && w === 2) {
        const running = fields(b, v[0], v[1]).some(([g, x, y]) => g === 2 && x === 0 && y === 1);
        lt.log.push([now, running ? 'started' : 'stopped', 1]);
      }
    }
  };
  const Native = window.WebSocket;
  const Wrapped = function (...args) {
    const ws = new Native(...args);
    ws.addEventListener('message', onMessage);
    return ws;
  };
  Wrapped.prototype = Native.prototype;
  Object.assign(Wrapped, {CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3});
  window.WebSocket = Wrapped;
})();
"""

_PROBLEMS = """
() => {
  const app = document.querySelector('[data-testid="stApp"]');
  const text = e => (e.innerText || '').trim().replace(/\\s+/g, ' ').slice(0, 400);
  return {exceptions: [...document.querySelectorAll('[data-testid="stException"]')].map(text),
          errors: [...document.querySelectorAll('[data-testid="stAlertContentError"]')].map(text),
          state: app && app.getAttribute('data-test-script-state'),
          conn: app && app.getAttribute('data-test-connection-state')};
}
"""

# Resolves once the app is idle after t0: {done, ran, latency, ready, script, runs, drops, state, conn}:
# latency (ms after t0) is the last script-state change or lifecycle message, ready also waits for the
# widgets' loading skeletons to be gone, script sums the time from each run's "started" to its
# "finished" message (the server's run time, as the page saw the messages arrive).
# mode "rerun": an input was made at t0; idle means a script run started after t0 (a websocket
# "started" or "finished", or the attribute showing "running"), the last run has finished, the
# attribute says not running and connected, no widget is still a loading skeleton (a fresh page
# loads widget code lazily, seconds after the run), and nothing changed for quietMs (or, when no run
# started, startMs passed). mode "load": a fresh document (t0 = 0 is navigation start).
_WAIT_IDLE = """
async ([t0, mode, startMs, quietMs, timeoutMs]) => {
  const sleep = ms => new Promise(r => setTimeout(r, ms));
  while (true) {
    const now = performance.now();
    const app = document.querySelector('[data-testid="stApp"]');
    const s = app && app.getAttribute('data-test-script-state');
    const c = app && app.getAttribute('data-test-connection-state');
    const log = window.__lt ? window.__lt.log.filter(e => e[0] >= t0) : [];
    let runs = 0, drops = 0, open = false, connected = mode === 'rerun', wasRunning = false, wasConnected = true;
    let script = 0, since = null;  // time between the server's "started" and "finished" messages
    for (const [t, kind, a, b] of log) {
      if (kind === 'started') { runs++; open = true; since = t; }
      else if (kind === 'finished') {
        if (!open) runs++;
        if (since !== null) script += t - since;
        since = null;
        open = a === 2;  // 2: ended early, a rerun follows
      }
      else if (kind === 'stopped') open = false;
      else if (kind === 'dom') {
        if (a === 'running' && !wasRunning && runs === 0) runs = 1;  // seen in the page before any message
        wasRunning = a === 'running';
        if (b === 'CONNECTED') connected = true;
        else if (connected && wasConnected) drops++;
        wasConnected = b === 'CONNECTED';
      }
    }
    if (document.querySelector('[data-testid="stSkeleton"]')) window.__lt.drawing = now;  // widgets still loading
    const settled = log.length ? log[log.length - 1][0] : t0;
    const last = Math.max(settled, window.__lt.drawing || 0);
    const idle = s === 'notRunning' && c === 'CONNECTED' && !open && now - last >= quietMs;
    if (idle && (runs > 0 || mode === 'load'))
      return {done: true, ran: runs > 0, latency: settled - t0, ready: last - t0, script, runs, drops, state: s,
              conn: c, problems: (__PROBLEMS__)()};
    if (idle && now - t0 >= startMs)
      return {done: true, ran: false, latency: null, runs, drops, state: s, conn: c,
              problems: (__PROBLEMS__)()};
    if (now - t0 >= timeoutMs)
      return {done: false, ran: runs > 0, latency: null, runs, drops, state: s, conn: c,
              problems: (__PROBLEMS__)()};
    await sleep(40);
  }
}
""".replace("__PROBLEMS__", _PROBLEMS.strip())



# The visible, enabled widgets under a root: [kind, index among its kind, extra] for the driver.
_INVENTORY = """
(root) => {
  const scope = document.querySelector(root);
  if (!scope) return [];
  const shown = e => {  // what Playwright calls visible (not in a closed expander), and not left over from a run
    const r = e.getBoundingClientRect();
    return r.width > 0 && r.height > 0 && e.checkVisibility({visibilityProperty: true, contentVisibilityAuto: true})
      && !e.closest('[data-stale="true"]');
  };
  const out = [];
  scope.querySelectorAll('[data-testid="stSlider"]').forEach((w, i) => {
    if (!shown(w)) return;
    w.querySelectorAll('input[type="range"]').forEach((t, j) => {
      if (!t.disabled && shown(t.parentElement))
        out.push(['slider', i, {thumb: j, value: +t.value, min: +t.min, max: +t.max}]);
    });
  });
  scope.querySelectorAll('[data-testid="stRadio"]').forEach((w, i) => {
    if (!shown(w)) return;
    const options = [...w.querySelectorAll('[data-testid="stRadioOption"]')];
    const free = options.map((o, j) => [o, j]).filter(([o]) => o.getAttribute('data-selected') !== 'true' && shown(o)
      && !o.querySelector('input').disabled).map(([o, j]) => j);
    if (free.length) out.push(['radio', i, {options: free, labels: options.map(o => o.innerText.trim())}]);
  });
  scope.querySelectorAll('[data-testid="stSelectbox"]').forEach((w, i) => {
    const input = w.querySelector('input[role="combobox"]');
    if (input && shown(input) && !input.disabled) out.push(['selectbox', i, {value: input.value}]);
  });
  scope.querySelectorAll('[data-testid="stCheckbox"]').forEach((w, i) => {
    const input = w.querySelector('input');
    if (input && shown(w.querySelector('label') || w) && !input.disabled) out.push(['checkbox', i, {}]);
  });
  scope.querySelectorAll('[data-testid="stNumberInput"]').forEach((w, i) => {
    if (!shown(w)) return;
    const up = w.querySelector('[data-testid="stNumberInputStepUp"]');
    const down = w.querySelector('[data-testid="stNumberInputStepDown"]');
    const dirs = [];
    if (up && shown(up) && !up.disabled) dirs.push('StepUp');
    if (down && shown(down) && !down.disabled) dirs.push('StepDown');
    if (dirs.length) out.push(['number', i, {dirs}]);
  });
  scope.querySelectorAll('[data-testid="stExpander"]').forEach((w, i) => {
    const summary = w.querySelector('summary');
    if (summary && shown(summary)) out.push(['expander', i, {}]);
  });
  return out;
}
"""


# ----------------------------------------------------------------------------------- the server
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
                 run_log: Path | None = None) -> Server:
    """``streamlit run app.py`` on 127.0.0.1 and a free port (the e2e conftest's flags), once
    /_stcore/health answers ok; ``nice`` > 0 runs it at a lower CPU priority, ``cpus`` ("0", "0-1")
    pins it to those cores (taskset), ``run_log`` makes the app log every script run there."""
    port = free_port()
    log = log_path.open("w")
    env = {**os.environ, **({"CKA_RUN_LOG": str(run_log)} if run_log else {})}
    proc = subprocess.Popen(
        (["taskset", "-c", cpus] if cpus else [])
        + [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.headless=true",
           f"--server.port={port}", "--server.address=127.0.0.1", "--browser.gatherUsageStats=false",
           "--server.fileWatcherType=none"],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env,
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


# ------------------------------------------------------------------------- memory and CPU from /proc
def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def _processes() -> dict[int, tuple[int, str, int, int]]:
    """pid -> (ppid, comm, cpu ticks utime+stime, rss bytes) of every process."""
    page = os.sysconf("SC_PAGE_SIZE")
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        stat = _read(f"/proc/{entry}/stat")
        if stat is None:
            continue
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        # fields[0] is state (field 3): ppid = 4, utime = 14, stime = 15, rss = 24 (pages)
        out[int(entry)] = (int(fields[1]), comm, int(fields[11]) + int(fields[12]), int(fields[21]) * page)
    return out


def _descendants(procs: dict, root: int) -> set[int]:
    children = defaultdict(list)
    for pid, (ppid, *_rest) in procs.items():
        children[ppid].append(pid)
    found, stack = set(), [root]
    while stack:
        pid = stack.pop()
        if pid in procs and pid not in found:
            found.add(pid)
            stack.extend(children[pid])
    return found


def renice_children(nice: int, exclude: set[int] = frozenset()) -> None:
    """Lower the CPU priority of every thread of this process's descendants (not in ``exclude``);
    processes they start later inherit it."""
    procs = _processes()
    for pid in _descendants(procs, os.getpid()) - {os.getpid()} - set(exclude):
        try:
            for tid in os.listdir(f"/proc/{pid}/task"):
                os.setpriority(os.PRIO_PROCESS, int(tid), nice)
        except OSError:
            pass  # ended meanwhile


def _busy_ticks() -> int:
    fields = [int(x) for x in _read("/proc/stat").splitlines()[0].split()[1:]]
    return sum(fields) - fields[3] - fields[4]  # all but idle and iowait


class Sampler(threading.Thread):
    """Every ``interval`` s: the server tree's RSS (VmRSS of each process, summed), and CPU ticks
    per group (server tree, Chromium, Playwright driver, this process, machine total)."""

    GROUPS = ("server", "chromium", "driver", "load test", "machine")

    def __init__(self, server_pid: int, interval: float = 0.5):
        super().__init__(daemon=True)
        self.server_pid, self.interval = server_pid, interval
        self.samples: list[tuple[float, int]] = []  # (time, server tree RSS bytes)
        self.chromium_rss: list[int] = []
        self._halt = threading.Event()
        self._cpu_base: dict[int, int] | None = None
        self._cpu_last: dict[int, tuple[str, int]] = {}
        self._busy = [0, 0]
        self.marks: dict[str, float] = {}

    def _vmrss(self, pid: int) -> int:
        status = _read(f"/proc/{pid}/status") or ""
        m = re.search(r"^VmRSS:\s+(\d+) kB", status, re.M)
        return int(m.group(1)) * 1024 if m else 0

    def sample(self) -> None:
        procs = _processes()
        server = _descendants(procs, self.server_pid)
        rss = sum(self._vmrss(pid) for pid in server)
        now = time.time()
        self.samples.append((now, rss))
        mine = _descendants(procs, os.getpid())
        chromium_rss = 0
        for pid in mine:
            comm = procs[pid][1]
            group = ("server" if pid in server else "load test" if pid == os.getpid()
                     else "chromium" if "chrom" in comm.lower() else "driver")
            if group == "chromium":
                chromium_rss += procs[pid][3]
            if self._cpu_base is not None:
                self._cpu_last[pid] = (group, procs[pid][2])
        self.chromium_rss.append(chromium_rss)
        if self._cpu_base is not None:
            self._busy[1] = _busy_ticks()

    def start_cpu(self) -> None:
        """Start counting CPU time (processes alive now count from here, new ones from 0)."""
        procs = _processes()
        self._cpu_base = {pid: p[2] for pid, p in procs.items()}
        self._cpu_last = {}
        self._busy = [_busy_ticks(), _busy_ticks()]
        self.marks["cpu_start"] = time.time()

    def cpu_seconds(self) -> dict[str, float]:
        tick = os.sysconf("SC_CLK_TCK")
        out = dict.fromkeys(self.GROUPS, 0.0)
        for pid, (group, ticks) in self._cpu_last.items():
            out[group] += (ticks - (self._cpu_base or {}).get(pid, 0)) / tick
        out["machine"] = (self._busy[1] - self._busy[0]) / tick
        out["other processes"] = max(0.0, out["machine"] - sum(out[g] for g in self.GROUPS if g != "machine"))
        return out

    def mark(self, name: str) -> None:
        self.marks[name] = time.time()

    def rss_at(self, t: float) -> int:
        before = [rss for when, rss in self.samples if when <= t]
        return before[-1] if before else (self.samples[0][1] if self.samples else 0)

    def run(self) -> None:
        while not self._halt.is_set():
            try:
                self.sample()
            except (OSError, ValueError, IndexError, KeyError):
                pass  # a process ended while being read
            self._halt.wait(self.interval)

    def stop(self) -> None:
        self._halt.set()
        self.join(5)


# ----------------------------------------------------------------------------------- upload files
def make_upload_files(folder: Path, seed: int = 0) -> dict[str, Path]:
    """Small, valid representation files: sidebar uploads (.npz with labels, .npy, .csv) and two
    .npz files for Compare's sides (359 rows, as many as the zoo's test split)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    labels = rng.integers(0, 4, 300)
    latent = rng.standard_normal((300, 4)) + 2.5 * np.eye(4)[labels]
    files["npz"] = folder / "acts_with_labels.npz"
    np.savez(files["npz"], hidden=latent @ rng.standard_normal((4, 24)) + 0.3 * rng.standard_normal((300, 24)),
             maps=(latent @ rng.standard_normal((4, 2 * 3 * 3))).reshape(300, 2, 3, 3), labels=labels)
    files["npy"] = folder / "layer_acts.npy"
    np.save(files["npy"], rng.standard_normal((200, 16)).astype(np.float32))
    files["csv"] = folder / "features.csv"
    table = rng.standard_normal((150, 8))
    files["csv"].write_text(",".join(f"f{i}" for i in range(8)) + "\n"
                            + "\n".join(",".join(f"{v:.5f}" for v in row) for row in table) + "\n")
    z = rng.standard_normal((359, 3))
    files["side_a"] = folder / "model_a.npz"
    np.savez(files["side_a"], early=z @ rng.standard_normal((3, 20)) + rng.standard_normal((359, 20)),
             late=z @ rng.standard_normal((3, 10)))
    files["side_b"] = folder / "model_b.npz"
    np.savez(files["side_b"], block1=z @ rng.standard_normal((3, 12)) + 0.5 * rng.standard_normal((359, 12)),
             block2=rng.standard_normal((359, 6)))
    return files


# ------------------------------------------------------------------------------------- the driver
@dataclass
class Move:
    session: int
    page: str  # url path ("" is Home)
    action: str
    latency: float | None  # seconds until the script state settled; None when no rerun ran
    runs: int
    at: float
    ready: float | None = None  # seconds until, also, no widget was a loading skeleton
    script: float | None = None  # seconds between the server's run-started and run-finished messages


@dataclass
class Problem:
    session: int
    page: str
    action: str
    kind: str
    text: str
    screenshot: str | None = None


@dataclass
class Results:
    moves: list[Move] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    expected_alerts: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    driver_skips: list[str] = field(default_factory=list)
    jobs: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    pages_visited: dict[int, set] = field(default_factory=lambda: defaultdict(set))
    started: float = 0.0
    ended: float = 0.0
    warmup_seconds: float = 0.0
    expanders: int = 0


class SessionDriver:
    """One browser context = one Streamlit session, moving at random until the deadline."""

    def __init__(self, index: int, browser, url: str, rng: random.Random, results: Results, deadline: float,
                 files: dict[str, Path], shots: Path, must_do: set[str], moves_per_page: tuple[int, int],
                 timeout_s: float, share: list[str], think_s: float = 0.0):
        self.index, self.browser, self.url, self.rng = index, browser, url, rng
        self.think_s = think_s  # mean pause after each move (a student reading the page); 0: none
        self.results, self.deadline, self.files, self.shots = results, deadline, files, shots
        self.must_do, self.moves_per_page, self.timeout_ms = set(must_do), moves_per_page, timeout_s * 1000
        self.share = share  # pages to visit before stopping, past the deadline if need be (see page_shares)
        self.page = None
        self.current = None  # url path of the page shown
        self.console: list[str] = []
        self.shown_problems: set[str] = set()
        self.action = "open"

    # -- plumbing
    async def open(self) -> None:
        self.context = await self.browser.new_context(viewport=VIEWPORT)
        self.context.set_default_timeout(min(self.timeout_ms, 60_000))
        await self.context.add_init_script(_INIT_SCRIPT)
        await self._new_page()

    async def _new_page(self) -> None:
        self.page = await self.context.new_page()
        self.page.on("console", self._on_console)
        self.page.on("pageerror", lambda error: self.console.append(f"page error: {error}"))
        self.page.on("crash", lambda _page: self.console.append("page crashed"))

    def _on_console(self, message) -> None:
        if message.type != "error":
            return
        where = (message.location or {}).get("url", "")
        if message.text.startswith("Failed to load resource") and (
                not where.startswith(self.url) or BASE_PATH_PROBE.match(where)):
            return
        self.console.append(f"console error: {message.text[:400]}" + (f" ({where})" if where else ""))

    async def close(self) -> None:
        try:
            await self.context.close()
        except Exception:  # noqa: BLE001 - closing at the end must not hide the results
            pass

    async def _now(self) -> float:
        return await self.page.evaluate("performance.now()")

    async def _wait_idle(self, t0: float, mode: str = "rerun", expect_change: bool = True) -> dict:
        start_ms = 45_000 if expect_change else 1_500  # a loaded server may take long to start the run
        result = await self.page.evaluate(_WAIT_IDLE, [t0, mode, start_ms, 300, self.timeout_ms])
        if expect_change and mode == "rerun" and result["done"] and not result["ran"]:
            log = await self.page.evaluate("(t0) => window.__lt.log.filter(e => e[0] >= t0 - 1000)", t0)
            self.note(f"{self.action}: no script run within {start_ms / 1000:.0f} s of the input "
                      f"(url {self.page.url}, page {self.current!r}, state log {log})")
        return result

    async def diagnose(self, locator, what: str, error: Exception) -> None:
        """A note and a screenshot on what stood in the way of a click."""
        shot = self.shots / f"s{self.index:02d}_note_{int(time.time())}.png"
        try:
            state = await locator.first.evaluate("""(e) => {
                const r = e.getBoundingClientRect(), x = r.x + r.width / 2, y = r.y + r.height / 2;
                const top = document.elementFromPoint(x, y);
                return {disabled: e.disabled, box: [r.x, r.y, r.width, r.height], text: e.innerText,
                        on_top: top ? top.outerHTML.slice(0, 200) : null, covered: top ? !e.contains(top) : null};
            }""")
            await self.page.screenshot(path=str(shot), timeout=30_000)
        except Exception as why:  # noqa: BLE001
            state = f"(could not look: {type(why).__name__}: {str(why).splitlines()[0][:200]})"
        self.note(f"{what}: {str(error).splitlines()[0][:200]}; {state}; screenshot {shot}")

    def note(self, text: str) -> None:
        """A line in driver_notes.log: what the driver saw that is neither a timing nor an error."""
        with (self.shots.parent / "driver_notes.log").open("a") as log:
            log.write(f"{time.strftime('%H:%M:%S')} s{self.index} {PAGES.get(self.current, '?')}: {text}\n")

    async def _timed(self, action: str, do, expect_change: bool = True, page: str | None = None) -> dict | None:
        """Run the input ``do``, wait until the app is idle, record the move and check for problems."""
        self.action = action
        t0 = await self._now()
        try:
            await do()
        except Exception as error:  # noqa: BLE001 - a busy renderer can acknowledge an input very late
            ran = await self.page.evaluate(
                "(t0) => window.__lt.log.some(e => e[0] >= t0 && (e[1] === 'started' || e[1] === 'finished'))", t0)
            if not ran:
                raise
            self.note(f"{action}: the input reached the app, but the call did not return ({type(error).__name__})")
        result = await self._wait_idle(t0, expect_change=expect_change)
        await self._settle(result, action, page)
        return result

    async def _settle(self, result: dict, action: str, page: str | None = None) -> None:
        page = self.current if page is None else page
        timed = result["ran"] and result["latency"] is not None
        self.results.moves.append(Move(self.index, page, action, result["latency"] / 1000 if timed else None,
                                       result["runs"], time.time(), result["ready"] / 1000 if timed else None,
                                       result["script"] / 1000 if timed and result["script"] else None))
        if not result["done"]:
            await self._problem("stuck", f"not idle after {self.timeout_ms / 1000:.0f} s "
                                         f"(script {result['state']}, connection {result['conn']})")
        if result["drops"]:
            await self._problem("disconnect", f"the connection dropped {result['drops']} time(s) during the move")
        await self._check(result.get("problems"))

    async def _problem(self, kind: str, text: str, where: str | None = None) -> None:
        shot = self.shots / f"s{self.index:02d}_{len(self.results.problems):03d}_{kind.replace(' ', '_')}.png"
        try:
            if where:
                await self.page.locator(where).first.scroll_into_view_if_needed(timeout=5_000)
            await self.page.screenshot(path=str(shot), timeout=30_000)
        except Exception:  # noqa: BLE001 - a crashed page cannot be photographed
            shot = None
        self.results.problems.append(Problem(self.index, PAGES.get(self.current, self.current or "?"),
                                             self.action, kind, text, str(shot) if shot else None))

    async def _check(self, found: dict | None = None) -> None:
        """Exception boxes, unexpected error alerts, lost connection, console and JS errors (in
        ``found``, the snapshot the idle wait returns, or looked up now)."""
        found = found or await self.page.evaluate(_PROBLEMS)
        found["exceptions"] = [_REFERENCE.sub("reference …", t) for t in found["exceptions"]]
        found["errors"] = [_REFERENCE.sub("reference …", t) for t in found["errors"]]
        now_shown = set()
        for text in found["exceptions"]:
            now_shown.add("x" + text)
            if "x" + text not in self.shown_problems:
                await self._problem("exception", text, "[data-testid='stException']")
        for text in found["errors"]:
            now_shown.add("e" + text)
            if "e" + text in self.shown_problems:
                continue
            expected = next((name for name, pattern in EXPECTED_ERROR_ALERTS.items() if pattern.search(text)), None)
            if expected:
                self.results.expected_alerts[expected] += 1
            else:
                await self._problem("error alert", text, "[data-testid='stAlertContentError']")
        self.shown_problems = now_shown
        if found["conn"] != "CONNECTED":
            await self._problem("disconnect", f"connection state {found['conn']}")
        while self.console:
            await self._problem("console", self.console.pop(0))

    # -- navigation
    async def load(self, path: str, query: str = "", action: str = "deep link") -> None:
        """A full page load (a new Streamlit session), timed from navigation start."""
        self.action, self.current = action, path
        await self.page.goto(f"{self.url}/{path}{query}", wait_until="domcontentloaded", timeout=self.timeout_ms)
        result = await self.page.evaluate(_WAIT_IDLE, [0, "load", 0, 300, self.timeout_ms])
        self.shown_problems = set()
        await self._settle(result, action)
        self.results.pages_visited[self.index].add(path)

    def _shown_path(self) -> str:
        return self.page.url.split("?")[0].removeprefix(self.url).strip("/")

    async def navigate(self, path: str) -> None:
        if path == self.current:
            return
        if self.rng.random() < 0.15:
            links = DEEP_LINKS.get(path) or [""]
            await self.load(path, self.rng.choice(links))
            return
        link = self.page.locator(f"[data-testid='stSidebarNavLink'][href='{self.url}/{path}']")

        async def click() -> None:
            try:
                await link.click(timeout=30_000)
            except Exception as error:  # noqa: BLE001 - on a busy renderer the click can return late
                if self._shown_path() != path:
                    raise
                self.note(f"navigate to {path!r}: the page switched, but the click did not return "
                          f"({type(error).__name__})")

        for attempt in range(2):
            previous, self.current = self.current, path
            try:
                await self._timed("navigate", click, page=path)
            except Exception:
                self.current = previous
                raise
            shown = self._shown_path()
            if shown == path:
                self.results.pages_visited[self.index].add(path)
                return
            self.note(f"navigate to {path!r} (try {attempt + 1}): the browser still shows {self.page.url}")
            self.current = shown if shown in PAGES else previous
        raise RuntimeError(f"the sidebar link to {path!r} did not switch the page")

    # -- moves
    async def move(self) -> None:
        roll = self.rng.random()
        page = self.current
        for job, job_page, start in (("infer", "compare", self.compare_inference),
                                     ("train", "manipulate", self.manipulate_training)):
            if page == job_page and (job in self.must_do or roll < 0.05):
                if not await start() and job in self.must_do:  # the button is off in this state: fresh defaults
                    self.note(f"{job}: the button was not enabled; reloading {job_page} with its defaults")
                    await self.load(job_page, action="deep link")
                    await start()
                self.must_do.discard(job)
                return
        if "upload" in self.must_do or 0.05 <= roll < 0.09:
            self.must_do.discard("upload")
            if page == "compare" and self.rng.random() < 0.4:
                return await self.compare_upload()
            return await self.sidebar_upload()
        if 0.09 <= roll < 0.18:
            return await self.widget_move("[data-testid='stSidebar']", "sidebar ")
        await self.widget_move("[data-testid='stMain']", "")

    async def widget_move(self, root: str, prefix: str) -> None:
        inventory = await self.page.evaluate(_INVENTORY, root)
        if not prefix:  # expanders only in the main area, and rarely
            inventory = [w for w in inventory if w[0] != "expander" or self.rng.random() < 0.15]
        if not inventory:
            return
        kind, i, info = self.rng.choice(inventory)
        widget = self.page.locator(root).get_by_test_id(
            {"slider": "stSlider", "radio": "stRadio", "selectbox": "stSelectbox", "checkbox": "stCheckbox",
             "number": "stNumberInput", "expander": "stExpander"}[kind]).nth(i)
        if kind == "slider":
            await self.slider_move(widget, info, prefix)
        elif kind == "radio":
            option = widget.get_by_test_id("stRadioOption").nth(self.rng.choice(info["options"]))
            await self._timed(prefix + "radio", lambda: option.click())
        elif kind == "selectbox":
            await self.selectbox_move(widget, prefix)
        elif kind == "checkbox":
            await self._timed(prefix + "checkbox", lambda: widget.locator("label").first.click())
        elif kind == "number":
            button = widget.get_by_test_id(f"stNumberInput{self.rng.choice(info['dirs'])}")
            await self._timed(prefix + "number input", lambda: button.click())
        else:  # open or close an expander: no rerun, not timed
            self.action = "expander"
            self.results.expanders += 1
            await widget.locator("summary").click()
            await self.page.wait_for_timeout(200)
            await self._check()

    async def slider_move(self, widget, info: dict, prefix: str) -> None:
        thumb = widget.locator("input[type='range']").nth(info["thumb"])
        up = ["ArrowRight", "ArrowRight", "PageUp", "End"] if info["value"] < info["max"] else []
        down = ["ArrowLeft", "ArrowLeft", "PageDown", "Home"] if info["value"] > info["min"] else []
        if not up + down:
            return
        key = self.rng.choice(up + down)
        presses = self.rng.randint(1, 3) if key.startswith("Arrow") else 1

        async def press():
            await thumb.focus()
            for _ in range(presses):
                await thumb.press(key)

        self.action = prefix + "slider"
        t0 = await self._now()
        await press()
        changed = float(await thumb.input_value()) != info["value"]
        result = await self._wait_idle(t0, expect_change=changed)
        await self._settle(result, prefix + "slider")

    async def selectbox_move(self, widget, prefix: str) -> None:
        """Open the list, walk to another option with the arrow keys, Enter. (Clicking an option
        can wait a long time for the popover to be 'stable' on a busy renderer; keys cannot.)"""
        self.action = prefix + "selectbox"
        box = widget.locator("input[role='combobox']")
        before = await box.input_value()
        for way in ("ArrowDown", "click", "button"):  # a click opens it only some of the time
            if way == "ArrowDown":
                await box.focus()
                await box.press("ArrowDown")
            elif way == "click":
                await box.click()
            else:
                await widget.locator("button[aria-label='Open']").click()
            for _ in range(25):
                if await box.get_attribute("aria-expanded") == "true":
                    break
                await asyncio.sleep(0.2)
            else:
                continue
            if way != "ArrowDown":
                self.note(f"{self.action} {before!r}: opened by {way} after ArrowDown did not open it")
            break
        else:
            raise RuntimeError("the selectbox did not open")
        options = await box.evaluate("""(box) => {
            const list = document.getElementById(box.getAttribute('aria-controls'));
            const state = o => [o.getAttribute('aria-selected') === 'true', o.getAttribute('data-focused') === 'true'];
            return list ? [...list.querySelectorAll('[role="option"]')].map(state) : [];
        }""")
        others = [i for i, (selected, _) in enumerate(options) if not selected]
        if not others:
            await box.press("Escape")
            return
        selected = next((i for i, (s, _) in enumerate(options) if s), 0)
        focused = next((i for i, (_, f) in enumerate(options) if f), selected)
        target = self.rng.choice(others)
        key = "ArrowDown" if target > focused else "ArrowUp"
        for _ in range(abs(target - focused)):
            await box.press(key)
        t0 = await self._now()
        await box.press("Enter")
        changed = await box.input_value() != before
        result = await self._wait_idle(t0, expect_change=changed)
        await self._settle(result, prefix + "selectbox")

    async def sidebar_upload(self) -> None:
        sidebar = self.page.get_by_test_id("stSidebar")
        choice = sidebar.get_by_test_id("stRadioOption").filter(has_text="Uploaded file")
        folded = sidebar.get_by_test_id("stExpander").filter(has_text="not used on this page")
        if await folded.count() and not await choice.is_visible():  # pages that ignore it fold the panel away
            await folded.locator("summary").click()
        if await choice.get_attribute("data-selected") != "true":
            await self._timed("sidebar source", lambda: choice.click())
        name = self.rng.choice(["npz", "npy", "csv"])
        field_ = sidebar.get_by_test_id("stFileUploaderDropzoneInput")
        await field_.wait_for(state="attached", timeout=30_000)
        await self._timed(f"upload .{name}", lambda: field_.set_input_files(str(self.files[name])))
        self.results.jobs[f"sidebar upload .{name}"] += 1

    async def compare_upload(self) -> None:
        side = self.rng.randrange(2)
        radio = self.page.get_by_test_id("stMain").get_by_test_id("stRadio").filter(has_text="Upload files").nth(side)
        choice = radio.get_by_test_id("stRadioOption").filter(has_text="Upload files")
        if await choice.get_attribute("data-selected") != "true":
            await self._timed("radio", lambda: choice.click())
        uploader = self.page.get_by_test_id("stMain").get_by_test_id("stFileUploader").filter(
            has_text="Representation files")
        # the uploaders of the sides that are in upload mode, in order; pick the one of this side
        count = await uploader.count()
        if not count:
            return
        target = uploader.nth(min(side, count - 1)).get_by_test_id("stFileUploaderDropzoneInput")
        path = self.files["side_a" if side == 0 else "side_b"]
        await self._timed("upload .npz (Compare)", lambda: target.set_input_files(str(path)))
        self.results.jobs["compare upload .npz"] += 1

    async def compare_inference(self) -> bool:
        """Start the intervals and p-values, then Stop a moment later (False: the button is not there).
        Mostly with 2000 bootstrap resamples first (as tests/e2e/test_compare.py does), so that
        the Stop lands while the job runs."""
        run = self.page.get_by_role("button", name="Compute intervals and p-values")
        if not await run.count() or not await run.is_enabled():
            return False
        box = self.page.get_by_role("spinbutton", name="Bootstrap resamples")
        if self.rng.random() < 0.7:
            if not await box.is_visible():
                self.action = "expander"
                self.results.expanders += 1
                await self.page.get_by_text("Settings: bootstrap resamples").click()
                await box.wait_for(state="visible")
            if await box.input_value() != "2000":
                await box.fill("2000")
                await self._timed("number input", lambda: box.press("Enter"))
        self.action = "inference start"
        t0 = await self._now()
        await run.click()
        stop = self.page.get_by_role("button", name="Stop computing")
        try:
            await stop.wait_for(state="visible", timeout=self.timeout_ms)
        except Exception:  # noqa: BLE001 - it may have finished (a stored result) before the check
            result = await self._wait_idle(t0)
            await self._settle(result, "inference start")
            self.results.jobs["inference finished before Stop"] += 1
            return True
        await self.page.wait_for_timeout(self.rng.randint(300, 2000))
        self.action = "inference stop"
        t1 = await self._now()
        clicked = True
        try:
            await stop.click(timeout=self.timeout_ms / 2)
        except Exception as error:  # noqa: BLE001 - fine if it finished meanwhile; a problem if it still runs
            clicked = False
            if await stop.count() and await stop.is_visible():
                await self._problem("stop", f"inference: Stop computing could not be clicked ({type(error).__name__})")
        result = await self._wait_idle(t1, expect_change=clicked)
        await self._settle(result, "inference stop")
        stopped = await self.page.get_by_text("nothing was stored").count()
        finished = await self.page.get_by_test_id("stMetric").filter(has_text="Cells beyond chance").count()
        if stopped:
            self.results.jobs["inference stopped"] += 1
        elif finished:
            self.results.jobs["inference finished before Stop"] += 1
        else:
            await self._problem("stop", "after Stop: neither the 'nothing was stored' note nor a result")
        return True

    async def manipulate_training(self) -> bool:
        """Train, then Stop a few seconds later; the best network so far must be kept (False: Train is off)."""
        main = self.page.get_by_test_id("stMainBlockContainer")
        train = main.get_by_role("button", name="Train")
        if not await train.count() or not await train.is_enabled():
            return False
        self.action = "training start"
        t0 = await self._now()
        await train.click()
        # the progress bar, or the note that the job waits for one of the server's training slots
        started = self.page.locator("[data-testid='stProgress'], [data-testid='stAlert']",
                                    has_text=re.compile(r"epoch \d+ of \d+|waiting for a free training slot"))
        try:
            await started.first.wait_for(state="visible", timeout=self.timeout_ms)
        except Exception:  # noqa: BLE001
            await self._problem("train", f"Train was clicked, but no training started within "
                                         f"{self.timeout_ms / 1000:.0f} s")
            return True
        latency = (await self._now() - t0) / 1000
        self.results.moves.append(Move(self.index, self.current, "training start", latency, 1, time.time(), latency))
        await self.page.wait_for_timeout(self.rng.randint(2000, 5000))
        self.action = "training stop"
        stop = main.get_by_role("button", name="Stop")
        outcome = self.page.get_by_text(re.compile(r"(stopped early|finished) after \d+ of \d+ epochs"))
        t1 = await self._now()
        clicked = True
        try:
            await stop.click(timeout=self.timeout_ms / 2)
        except Exception as error:  # noqa: BLE001 - fine if the run has finished; a problem if it still trains
            clicked = False
            await self.diagnose(stop, "training Stop could not be clicked", error)
            if not await outcome.count():
                await self._problem("stop", f"training: the Stop button could not be clicked ({type(error).__name__})")
        try:
            await outcome.first.wait_for(state="visible", timeout=self.timeout_ms)
        except Exception:  # noqa: BLE001
            await self._problem("stop", "training: no result shown after Stop")
        result = await self._wait_idle(t1, expect_change=clicked)
        await self._settle(result, "training stop")
        text = await outcome.first.inner_text() if await outcome.count() else ""
        self.results.jobs["training stopped" if "stopped early" in text else "training finished before Stop"] += 1
        return True

    # -- the loop
    async def run(self, delay: float = 0.0) -> None:
        await asyncio.sleep(delay)  # visitors arrive one after another, not in the same instant
        await self.open()
        await self.load("", action="open")
        first_pass = list(self.share or PAGES)
        self.rng.shuffle(first_pass)
        for job, page in (("infer", "compare"), ("train", "manipulate")):  # the page of a must-do job first
            if job in self.must_do:
                if page in first_pass:
                    first_pass.remove(page)
                first_pass.append(page)
        tries: dict[str, int] = {}
        while True:
            over = time.time() >= self.deadline
            if over and (not self.share or not first_pass):
                break
            if first_pass:
                target = first_pass.pop()
            else:
                target = self.rng.choice([p for p in PAGES if p != self.current])
            try:
                await self.navigate(target)
                low, high = self.moves_per_page
                for _ in range(self.rng.randint(low, high)):
                    if time.time() >= self.deadline and not self.share and not (
                            self.must_do and target in ("compare", "manipulate")):
                        break
                    await self.move()
                    if self.think_s:
                        await asyncio.sleep(self.rng.uniform(0.5, 1.5) * self.think_s)
            except Exception as error:  # noqa: BLE001 - a driver mishap: note it, get back to a known state
                await self._recover(error, target)
                tries[target] = tries.get(target, 0) + 1
                if self.share and target not in self.results.pages_visited[self.index] and tries[target] < 3:
                    first_pass.insert(0, target)  # visit it again later

    async def _recover(self, error: Exception, target: str) -> None:
        message = str(error).splitlines()[0][:200] if str(error) else ""
        self.results.driver_skips.append(f"s{self.index} {PAGES.get(self.current, '?')} / {self.action}: "
                                         f"{type(error).__name__}: {message}")
        shot = self.shots / f"s{self.index:02d}_mishap_{len(self.results.driver_skips):03d}.png"
        try:
            await self.page.screenshot(path=str(shot), timeout=30_000)
        except Exception:  # noqa: BLE001
            shot = None
        with (self.shots.parent / "driver_mishaps.log").open("a") as log:
            log.write(f"--- s{self.index} {PAGES.get(self.current, '?')} / {self.action} (screenshot {shot})\n"
                      f"{error}\n")
        if self.page.is_closed():
            await self._problem("crash", f"the page closed: {message}")
            await self._new_page()
        try:
            await self.page.keyboard.press("Escape")
            await self._wait_idle(await self._now(), expect_change=False)
            await self._check()
            return
        except Exception:  # noqa: BLE001 - start this page afresh
            pass
        try:
            await self.load(target, action="reload after driver error")
        except Exception as again:  # noqa: BLE001
            await self._problem("reload failed", f"{type(again).__name__}: {str(again).splitlines()[0][:200]}")


async def _warm_up(browser, url: str, timeout_s: float) -> None:
    """One session loads every page: first captures and shared caches are not the load test's."""
    context = await browser.new_context(viewport=VIEWPORT)
    page = await context.new_page()
    await context.add_init_script(_INIT_SCRIPT)
    for path in PAGES:
        await page.goto(f"{url}/{path}", wait_until="domcontentloaded", timeout=timeout_s * 1000)
        await page.evaluate(_WAIT_IDLE, [0, "load", 0, 300, timeout_s * 1000])
    await context.close()


def page_shares(sessions: int, pages_each: int) -> list[list[str]]:
    """The pages each session must visit: ``pages_each`` consecutive pages of the page list per
    session, round robin, so that every page gets the same number of visitors (all pages each when
    ``pages_each`` is the number of pages; none when 0)."""
    order = list(PAGES)
    count = min(pages_each, len(order))
    return [[order[(i * count + j) % len(order)] for j in range(count)] for i in range(sessions)]


async def drive(url: str, sessions: int, seconds: float, seed: int, workdir: Path, sampler: Sampler | None = None,
                moves_per_page: tuple[int, int] = (1, 3), timeout_s: float = 180.0, pages_each: int = 0,
                warm_up: bool = True, nice: int = 0, think_s: float = 0.0) -> Results:
    """Warm up (one session loads every page; skipped with ``warm_up=False``, so the sessions meet
    cold caches), then ``sessions`` concurrent sessions for ``seconds``. Each starts with every page
    (or with its share of ``pages_each`` pages, :func:`page_shares`) in a random order, the page of
    its assigned long job first; with ``pages_each`` it goes on past the deadline until it has
    visited its share, making its moves on each."""
    from playwright.async_api import async_playwright

    results = Results()
    files = make_upload_files(workdir / "uploads", seed)
    shots = workdir / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    server_tree = _descendants(_processes(), sampler.server_pid) if sampler is not None else set()
    async with async_playwright() as playwright:
        if nice:  # the Playwright driver first: the browser it starts inherits its priority
            renice_children(nice, server_tree)
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        if nice:
            renice_children(nice, server_tree)
        started = time.time()
        if warm_up:
            await _warm_up(browser, url, timeout_s)
        results.warmup_seconds = time.time() - started
        if sampler is not None:
            sampler.mark("start")
            sampler.start_cpu()
        results.started = time.time()
        deadline = results.started + seconds
        jobs = ["upload", "infer", "train"]
        shares = page_shares(sessions, pages_each)
        drivers = [SessionDriver(i, browser, url, random.Random(seed * 1000 + i), results, deadline, files, shots,
                                 {jobs[i % len(jobs)]} if i < 2 * len(jobs) else set(), moves_per_page, timeout_s,
                                 shares[i], think_s)
                   for i in range(sessions)]
        outcomes = await asyncio.gather(*(d.run(delay=i * 1.0) for i, d in enumerate(drivers)),
                                        return_exceptions=True)
        results.ended = time.time()
        if sampler is not None:
            sampler.mark("end")
        for i, outcome in enumerate(outcomes):
            if isinstance(outcome, BaseException):
                results.problems.append(Problem(i, "?", drivers[i].action, "session failed",
                                                f"{type(outcome).__name__}: {outcome}"))
        await asyncio.gather(*(d.close() for d in drivers))
        await browser.close()
    return results


def _cpu_list(cpus: str) -> set[int]:
    """ "0", "0-1", "1,3" -> {0}, {0, 1}, {1, 3} (taskset's list format)."""
    out: set[int] = set()
    for part in cpus.split(","):
        low, _, high = part.partition("-")
        out.update(range(int(low), int(high or low) + 1))
    return out


def server_runs(run_log: Path, start: float, end: float) -> dict:
    """The app's own log of its script runs (ui.shell.timed_run) between ``start`` and ``end``:
    count, and wall time and thread CPU time per run, completed runs and runs cut short by a click,
    and how many completed runs were of one page section alone (ui.shell.live_section)."""
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
            "pages": {page: {"runs": len(rs), "wall_p50": _pct([r["wall"] for r in rs], 50),
                             "wall_p95": _pct([r["wall"] for r in rs], 95),
                             "cpu_p50": _pct([r["cpu"] for r in rs], 50)} for page, rs in by_page.items()},
            "cpu_seconds": sum(r["cpu"] for r in runs)}


# ------------------------------------------------------------------------------------- the report
def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def _server_log_errors(log_path: Path, upto: int | None = None) -> list[str]:
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


def _server_log_messages(log_path: Path, upto: int | None = None) -> dict[str, int]:
    """The server's own log lines (timestamped; not the startup banner), counted by text."""
    found: dict[str, int] = defaultdict(int)
    for line in log_path.read_bytes()[:upto].decode(errors="replace").splitlines():
        m = re.match(r"^\d{4}-\d\d-\d\d [\d:.]+ (.+)$", line)
        if m and "server started on" not in m.group(1):
            found[_REFERENCE.sub("reference …", m.group(1))[:300]] += 1
    return found


@dataclass
class LoadTestReport:
    results: Results
    memory: dict[str, int]
    cpu: dict[str, float]
    log_errors: list[str]
    settings: dict
    log_messages: dict[str, int] = field(default_factory=dict)
    text: str = ""

    @property
    def errors(self) -> int:
        return len(self.results.problems) + len(self.log_errors)

    @property
    def steady_ok(self) -> bool:
        return self.memory["steady"] <= MEMORY_TARGET_BYTES


def _machine() -> str:
    cpuinfo = _read("/proc/cpuinfo") or ""
    model = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.M)
    mem = re.search(r"^MemTotal:\s+(\d+) kB", _read("/proc/meminfo") or "", re.M)
    return (f"{os.cpu_count()} CPUs ({model.group(1).strip() if model else 'unknown model'}), "
            f"{int(mem.group(1)) / 2**20:.0f} GiB RAM" if mem else f"{os.cpu_count()} CPUs")


def _server_runs_section(runs: dict, duration: float, s: dict) -> list[str]:
    """The server's own view of its script runs (only when the app logged them)."""
    if not runs.get("runs"):
        return []
    pinned = (f"The server ran on core(s) {s['server_cpus']}, the browsers and the driver on {s['client_cpus']}. "
              if s.get("server_cpus") else "")
    lines = ["", "## At the server", "",
             f"{pinned}Every script run timed by the app itself (`CKA_RUN_LOG`, ui/shell.py `timed_run`): wall "
             "time from its start to its end and the CPU time of the thread that ran it. "
             f"{runs['runs']} runs in {duration:.0f} s ({runs['runs'] / max(duration, 1e-9):.1f} per second), "
             f"{runs['done']} completed ({runs.get('sections', 0)} of them of one page section alone, "
             "`live_section`), "
             f"{runs['interrupted']} cut short by a newer click; "
             f"{runs['cpu_seconds']:.0f} s of CPU in script runs.",
             "",
             f"- Rerun latency at the server (completed runs): p50 {_pct(runs['wall'], 50):.3f} s, "
             f"**p95 {_pct(runs['wall'], 95):.3f} s**, max {max(runs['wall'], default=float('nan')):.2f} s.",
             f"- Server CPU per rerun: **median {_pct(runs['cpu'], 50):.3f} s**, p95 {_pct(runs['cpu'], 95):.3f} s.",
             "", "| page | runs | wall p50 (s) | wall p95 (s) | CPU p50 (s) |", "|---|---|---|---|---|"]
    for page, title in PAGES.items():
        stats = runs["pages"].get(page)
        if stats:
            lines.append(f"| {title} | {stats['runs']} | {stats['wall_p50']:.3f} | {stats['wall_p95']:.3f} | "
                         f"{stats['cpu_p50']:.3f} |")
    return lines


def render(report: LoadTestReport) -> str:
    r, mem, cpu, s = report.results, report.memory, report.cpu, report.settings
    duration = r.ended - r.started
    timed = [m for m in r.moves if m.latency is not None]
    gib = 2**30
    lines = [
        "# Load test: concurrent browser sessions",
        "",
        f"{time.strftime('%Y-%m-%d %H:%M')} · `{s['command']}`",
        "",
        f"- Machine: {_machine()}; load average before {s['load_before']}, after {s['load_after']}.",
        f"- {s['sessions']} sessions (browser contexts of one headless Chromium), {duration:.0f} s of random moves "
        f"(target {s['seconds']:.0f} s; a session finishes its current move"
        + (f" and goes on until it has visited its share of {s['pages_each']} pages, every page by "
           f"{s['sessions'] * min(s['pages_each'], len(PAGES)) // len(PAGES)} sessions or more"
           if s["pages_each"] else "") + "), "
        f"seed {s['seed']}, "
        + (f"after a {r.warmup_seconds:.0f} s warm-up in which one session loaded every page." if s["warm_up"]
           else "from a cold server (no warm-up: the sessions' first visits fill the shared caches)."),
        (f"- The server ran on core(s) {s['server_cpus']} and the browsers and driver on {s['client_cpus']} (taskset), "
         "so page-side latencies include the browsers' own contention; the server's view is in *At the server*."
         if s.get("server_cpus") else
         "- The server, the Chromium renderers and the driver share the same cores, so latencies include client-side "
         "contention (rendering, Playwright), not only the server's work.")
        + (f" Each session paused {s['think_s']:g} s on average (0.5-1.5×) after every move, like a student reading "
           "the page." if s.get("think_s") else "")
        + (f" Server and browsers ran at nice {s['nice']} (below other work on the machine)." if s["nice"] else ""),
        f"- CPU time during the run ({duration:.0f} s × {os.cpu_count()} cores = "
        f"{duration * (os.cpu_count() or 1):.0f} "
        f"core-seconds available): server {cpu['server']:.0f} s, Chromium {cpu['chromium']:.0f} s, Playwright driver "
        f"{cpu['driver']:.0f} s, this script {cpu['load test']:.0f} s, other processes on the machine "
        f"{cpu['other processes']:.0f} s (machine busy {cpu['machine']:.0f} s).",
        "",
        "## Rerun latency",
        "",
        "From just before the input event until the app is idle again: the script no longer running (the page's "
        "script state and the server's run-finished message), connected, nothing changing for 0.3 s; timed in the "
        "page. *Drawn* also waits until no widget is a loading skeleton any more (a page's first visit in a tab "
        "loads widget code lazily). *Script run*: from the server's run-started to its run-finished message as the "
        "page received them (the server's share of the latency). Navigation is a sidebar link; a deep link or an "
        "open is a full page load (a new session), timed from navigation start.",
        "",
        "| page | timed moves | p50 (s) | p95 (s) | max (s) | drawn p95 (s) | script run p50 / p95 (s) |",
        "|---|---|---|---|---|---|---|",
    ]

    def row(label: str, moves: list[Move], bold: bool = False) -> str:
        values, drawn = [m.latency for m in moves], [m.ready for m in moves]
        script = [m.script for m in moves if m.script is not None]
        b = "**" if bold else ""
        return (f"| {label} | {len(values)} | {b}{_pct(values, 50):.2f}{b} | {b}{_pct(values, 95):.2f}{b} | "
                f"{max(values, default=float('nan')):.2f} | {_pct(drawn, 95):.2f} | "
                f"{_pct(script, 50):.2f} / {_pct(script, 95):.2f} |")

    for path, title in PAGES.items():
        lines.append(row(title, [m for m in timed if m.page == path]))
    lines.append(row("**all**", timed, bold=True))
    lines += ["", "| move | timed | p50 (s) | p95 (s) | max (s) | drawn p95 (s) | script run p50 / p95 (s) |",
              "|---|---|---|---|---|---|---|"]
    by_action = defaultdict(list)
    for m in timed:
        by_action[m.action].append(m)
    for action in sorted(by_action, key=lambda a: -len(by_action[a])):
        lines.append(row(action, by_action[action]))
    lines += _server_runs_section(s.get("server_runs") or {}, duration, s)
    in_app = [m for m in timed if m.action not in ("open", "deep link")]
    in_app_latency = [m.latency for m in in_app]
    lines += ["", f"Without the full page loads (opens and deep links): p50 {_pct(in_app_latency, 50):.2f} s, "
                  f"p95 {_pct(in_app_latency, 95):.2f} s over {len(in_app)} moves."]
    runs = sum(m.runs for m in r.moves)
    untimed = defaultdict(int)
    for m in r.moves:
        if m.latency is None:
            untimed[m.action] += 1
    lines += [
        "",
        f"Throughput: {len(timed)} timed moves"
        + (f" (and {sum(untimed.values())} that caused no rerun: "
           + ", ".join(f"{k} × {v}" for k, v in sorted(untimed.items())) + ")" if untimed else "")
        + f", {r.expanders} expanders opened or closed; "
        f"{runs} script runs observed in the browsers: **{runs / duration:.2f} reruns/s** overall, "
        f"{len(r.moves) / duration:.2f} moves/s. The server spent {cpu['server'] / max(runs, 1):.2f} CPU-seconds per "
        "script run on average (its CPU time over the runs).",
        "",
        "Long jobs: " + (", ".join(f"{k} × {v}" for k, v in sorted(r.jobs.items())) or "none") + ".",
        "",
        "## Errors",
        "",
    ]
    if report.errors == 0:
        lines.append("**0 errors**: no exception box, no unexpected error alert, no lost connection, no page crash, "
                     "no JavaScript or console error from the app, no traceback in the server log, every move "
                     "became idle.")
    else:
        lines.append(f"**{report.errors} error(s)**: {len(r.problems)} seen in the browsers, "
                     f"{len(report.log_errors)} traceback(s) in the server log.")
        lines.append("")
        groups: dict[tuple, list[Problem]] = defaultdict(list)
        for p in r.problems:
            groups[(p.page, p.kind, p.text)].append(p)
        for (page, kind, text), found in groups.items():
            first = found[0]
            lines.append(f"- {page}, **{kind}** × {len(found)} (first: session {first.session}, after "
                         f"\"{first.action}\"): {text}"
                         + (f" — screenshot `{first.screenshot}`" if first.screenshot else ""))
        distinct: dict[str, int] = defaultdict(int)
        for block in report.log_errors:
            distinct[_REFERENCE.sub("reference …", block)] += 1
        for block, count in distinct.items():
            lines += ["", f"Server log (× {count}):", "", "```", block, "```"]
    if report.log_messages:
        lines += ["", "Server log lines (warnings and errors the server logged; tracebacks are counted above): "
                  + "; ".join(f"\"{k}\" × {v}" for k, v in report.log_messages.items()) + "."]
    if r.expected_alerts:
        lines += ["", "Expected error alerts (the app's own teaching or validation messages, not counted): "
                  + ", ".join(f"{k} × {v}" for k, v in sorted(r.expected_alerts.items())) + "."]
    if r.driver_skips:
        lines += ["", f"Driver mishaps (a move the driver could not make, e.g. an element re-rendered under it; "
                      f"not app errors): {len(r.driver_skips)}."]
        lines += [f"- {skip}" for skip in r.driver_skips[:15]]
    counts = [len(r.pages_visited[i]) for i in range(s["sessions"])]
    by_page = {p: sum(p in r.pages_visited[i] for i in range(s["sessions"])) for p in PAGES}
    lines += ["", f"Pages visited per session: {min(counts, default=0)} to {max(counts, default=0)} of {len(PAGES)}; "
                  f"sessions per page: {min(by_page.values())} to {max(by_page.values())} of {s['sessions']}."]
    lines += [
        "",
        "## Server memory",
        "",
        "RSS of the streamlit process tree, sampled every 0.5 s.",
        "",
        "| idle (no session) | start (" + ("every page loaded once" if s["warm_up"] else "cold: no warm-up")
        + ") | steady (median, last third) | peak |",
        "|---|---|---|---|",
        f"| {mem['idle'] / gib:.2f} GB | {mem['start'] / gib:.2f} GB | **{mem['steady'] / gib:.2f} GB** | "
        f"{mem['peak'] / gib:.2f} GB |",
        "",
        f"Chromium's processes (context only; shared pages counted once per process): peak RSS sum "
        f"{mem['chromium_peak'] / gib:.1f} GB.",
        "",
        "## Verdict",
        "",
        f"- Errors: {report.errors} (target 0) — {'met' if report.errors == 0 else 'NOT met'}.",
        f"- Steady memory with {s['sessions']} sessions: {mem['steady'] / gib:.2f} GB (target ≤ 1.5 GB) — "
        f"{'met' if report.steady_ok else 'NOT met'}.",
    ]
    if r.problems or report.log_errors:
        lines.append(f"- Screenshots and the server log: `{s['workdir']}`.")
    return "\n".join(lines) + "\n"


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
    load_before = " ".join((_read("/proc/loadavg") or "? ? ?").split()[:3])
    run_log = workdir / "runs.jsonl"
    run_log.unlink(missing_ok=True)
    server = start_server(workdir / "streamlit.log", nice=nice, cpus=server_cpus, run_log=run_log)
    affinity = os.sched_getaffinity(0)
    if client_cpus:  # the Playwright driver and Chromium start from here and inherit it
        os.sched_setaffinity(0, _cpu_list(client_cpus))
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
    load_after = " ".join((_read("/proc/loadavg") or "? ? ?").split()[:3])
    during = [rss for when, rss in sampler.samples if results.started <= when <= results.ended]
    last_third = [rss for when, rss in sampler.samples
                  if results.ended - (results.ended - results.started) / 3 <= when <= results.ended]
    memory = {"idle": idle, "start": sampler.rss_at(sampler.marks.get("start", results.started)),
              "steady": int(statistics.median(last_third or during or [0])),
              "peak": max(rss for _, rss in sampler.samples),
              "chromium_peak": max(sampler.chromium_rss, default=0)}
    report = LoadTestReport(results, memory, sampler.cpu_seconds(), _server_log_errors(server.log_path, log_size),
                            {"sessions": sessions, "seconds": seconds, "seed": seed, "workdir": str(workdir),
                             "pages_each": pages_each, "warm_up": warm_up, "nice": nice,
                             "server_cpus": server_cpus, "client_cpus": client_cpus, "think_s": think_s,
                             "server_runs": server_runs(run_log, results.started, results.ended),
                             "command": command or f"run_load_test(sessions={sessions}, seconds={seconds})",
                             "load_before": load_before, "load_after": load_after},
                            _server_log_messages(server.log_path, log_size))
    if exit_code is not None:
        report.log_errors.append(f"the server exited during the run (exit code {exit_code})")
    report.text = render(report)
    (workdir / "moves.json").write_text(json.dumps([asdict(m) for m in results.moves]))
    (workdir / "memory.json").write_text(json.dumps({"samples": sampler.samples, "marks": sampler.marks}))
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "load_test.md")
    parser.add_argument("--workdir", type=Path, default=None, help="screenshots, uploads and the server log "
                                                                     "(default: a new temporary folder)")
    parser.add_argument("--server-cpus", default=None, help="pin the server to these cores (taskset list, e.g. 0)")
    parser.add_argument("--client-cpus", default=None, help="pin the browsers and the driver to these cores (e.g. 1)")
    parser.add_argument("--think", type=float, default=0.0, help="mean seconds a session pauses after each move")
    args = parser.parse_args()
    command = "python -m benchmarks.load_test " + " ".join(sys.argv[1:])
    report = run_load_test(args.sessions, args.minutes * 60, args.seed, args.workdir, command=command.strip(),
                           server_cpus=args.server_cpus, client_cpus=args.client_cpus, think_s=args.think)
    print(report.text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report.text)
    return 0 if report.errors == 0 and report.steady_ok else 1


if __name__ == "__main__":
    sys.exit(main())
