"""What a load test run records: each timed move, each problem seen, the long jobs and uploads
made, the pages each session visited; and the helpers the report and the server's run log share
(percentiles, hiding the per-incident reference in an error text)."""
from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

_INCIDENT_REFERENCE = re.compile(r"reference `?[0-9a-f]{6}`?")  # the error boundary's per-incident reference


def without_incident_reference(text: str) -> str:
    """``text`` with the error boundary's per-incident reference masked, so that the same error
    counts once however many times it happened."""
    return _INCIDENT_REFERENCE.sub("reference …", text)


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


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
