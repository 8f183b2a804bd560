"""The server's resource use while the students run, read from /proc: the CPU time (user +
system) of the process tree of each server PID at marked moments, and its resident memory sampled
every half second (summed over the trees: several replicas behind a proxy count together). Uses
the /proc readers of benchmarks/load_test/resource_usage.py."""
from __future__ import annotations

import os
import statistics
import threading
import time

from benchmarks.load_test.resource_usage import descendants, processes


class ServerUsage(threading.Thread):
    """Samples the RSS of the servers' process trees; ``mark`` records their CPU time."""

    def __init__(self, pids: list[int], interval: float = 0.5) -> None:
        """Sampling every ``interval`` s once started."""
        super().__init__(daemon=True, name="server-usage")
        self.pids, self.interval = list(pids), interval
        self.samples: list[tuple[float, int]] = []        # (time, RSS bytes of all trees)
        self.marks: dict[str, tuple[float, float]] = {}   # name -> (time, CPU seconds of all trees)
        self._halt = threading.Event()

    def read(self) -> tuple[int, float]:
        """(RSS bytes, CPU seconds) of the servers' process trees now."""
        procs = processes()
        tree = set().union(*(descendants(procs, pid) for pid in self.pids)) if self.pids else set()
        ticks = sum(procs[p][2] for p in tree)
        return sum(procs[p][3] for p in tree), ticks / os.sysconf("SC_CLK_TCK")

    def mark(self, name: str) -> None:
        """Record the time and the servers' CPU seconds under ``name``."""
        self.marks[name] = (time.time(), self.read()[1])

    def cpu_between(self, first: str, last: str) -> float | None:
        """CPU seconds the servers used between two marks (None if one is missing)."""
        if first not in self.marks or last not in self.marks:
            return None
        return self.marks[last][1] - self.marks[first][1]

    def rss(self, start: float, end: float) -> dict[str, int]:
        """Resident memory: at ``start``, the median of the samples in [start, end] (steady) and the
        peak over all samples."""
        during = [rss for when, rss in self.samples if start <= when <= end]
        before = [rss for when, rss in self.samples if when <= start]
        return {"start": before[-1] if before else (during[0] if during else 0),
                "steady": int(statistics.median(during)) if during else 0,
                "peak": max((rss for _, rss in self.samples), default=0)}

    def run(self) -> None:
        """Sample the servers' RSS until stopped."""
        while not self._halt.is_set():
            try:
                self.samples.append((time.time(), self.read()[0]))
            except (OSError, ValueError, IndexError, KeyError):
                pass  # a process ended while it was read
            self._halt.wait(self.interval)

    def stop(self) -> None:
        """Stop sampling."""
        self._halt.set()
        self.join(5)
