"""What the load test measures outside the browsers, from /proc: the RSS of the server's process
tree and the CPU time of the server, Chromium, the Playwright driver and the rest of the machine
(``Sampler``), and lowering the CPU priority of the browsers and the driver."""
from __future__ import annotations

import os
import re
import threading
import time
from collections import defaultdict


def read_proc_file(path: str) -> str | None:
    """The text of a /proc file, or None when it cannot be read (its process ended)."""
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def processes() -> dict[int, tuple[int, str, int, int]]:
    """pid -> (ppid, comm, cpu ticks utime+stime, rss bytes) of every process."""
    page = os.sysconf("SC_PAGE_SIZE")
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        stat = read_proc_file(f"/proc/{entry}/stat")
        if stat is None:
            continue
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        # fields[0] is state (field 3): ppid = 4, utime = 14, stime = 15, rss = 24 (pages)
        out[int(entry)] = (int(fields[1]), comm, int(fields[11]) + int(fields[12]), int(fields[21]) * page)
    return out


def process_role(pid: int) -> str:
    """What a process of the server's tree is, from its command line: the server itself, a worker of
    the shared pool, an isolated model worker, or multiprocessing's resource tracker."""
    command = (read_proc_file(f"/proc/{pid}/cmdline") or "").replace("\0", " ")
    if "cka_core.models.worker" in command:
        return "model worker"
    if "resource_tracker" in command:
        return "resource tracker"
    if "multiprocessing" in command:
        return "pool worker"
    return "server"


def descendants(procs: dict, root: int) -> set[int]:
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
    procs = processes()
    for pid in descendants(procs, os.getpid()) - {os.getpid()} - set(exclude):
        try:
            for tid in os.listdir(f"/proc/{pid}/task"):
                os.setpriority(os.PRIO_PROCESS, int(tid), nice)
        except OSError:
            pass  # ended meanwhile


def _busy_ticks() -> int:
    fields = [int(x) for x in read_proc_file("/proc/stat").splitlines()[0].split()[1:]]
    return sum(fields) - fields[3] - fields[4]  # all but idle and iowait


class Sampler(threading.Thread):
    """Every ``interval`` s: the server tree's RSS (VmRSS of each process, summed; at the peak, each
    process's share by role), and CPU ticks per group (server tree, Chromium, Playwright driver, this process, machine total)."""

    GROUPS = ("server", "chromium", "driver", "load test", "machine")

    def __init__(self, server_pid: int, interval: float = 0.5):
        super().__init__(daemon=True)
        self.server_pid, self.interval = server_pid, interval
        self.samples: list[tuple[float, int]] = []  # (time, server tree RSS bytes)
        self.peak_parts: list[tuple[str, int]] = []  # (role, RSS bytes) of each process at the peak sample
        self.chromium_rss: list[int] = []
        self._halt = threading.Event()
        self._cpu_base: dict[int, int] | None = None
        self._cpu_last: dict[int, tuple[str, int]] = {}
        self._busy = [0, 0]
        self.marks: dict[str, float] = {}

    def _vmrss(self, pid: int) -> int:
        status = read_proc_file(f"/proc/{pid}/status") or ""
        m = re.search(r"^VmRSS:\s+(\d+) kB", status, re.M)
        return int(m.group(1)) * 1024 if m else 0

    def sample(self) -> None:
        procs = processes()
        server = descendants(procs, self.server_pid)
        parts = {pid: self._vmrss(pid) for pid in server}
        rss = sum(parts.values())
        now = time.time()
        if rss > max((r for _, r in self.samples), default=-1):
            self.peak_parts = sorted(((process_role(pid), r) for pid, r in parts.items()), key=lambda p: -p[1])
        self.samples.append((now, rss))
        mine = descendants(procs, os.getpid())
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
        procs = processes()
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
