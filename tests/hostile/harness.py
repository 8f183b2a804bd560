"""The hostile-files suite's harness: each case is a file built by hand in a temp dir, loaded in a
fresh subprocess the way the app or the command line loads it, timed from outside, its peak memory
reported by the loader itself (its own high-water mark and the worker processes it reaped).

A case's file may plant a *canary*: a pickle (or other code) that, if anything ever ran it, would
create ``<tmp>/CANARY``. The suite asserts the canary never appears, and each canary case can give
``unsafe_load``, the careless loader the trick is aimed at, to prove the canary is live.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CANARY = "CANARY"
#: The caps the suite runs under (the host's settings, lowered so that hangs end quickly).
SUITE_CAPS = {"CKA_MODEL_MEMORY_MB": "1024", "CKA_MODEL_LOAD_SECONDS": "30", "CKA_MODEL_FORWARD_SECONDS": "8"}
#: What one hostile load may cost, measured from outside: the worker's memory cap above the
#: start-up of a Python process with torch (~0.6 GiB), and the caps' seconds plus start-ups.
MAX_PEAK_BYTES = (1024 + 900) * 2**20
MAX_SECONDS = 30 + 8 + 20


class Canary:
    """Unpickling this creates ``<directory>/CANARY``: proof that something ran the file's code."""

    def __init__(self, directory: Path):
        self.path = str(Path(directory) / CANARY)

    def __reduce__(self):
        return open, (self.path, "w")


def canary_pickle(directory: Path, protocol: int = 2) -> bytes:
    import pickle

    return pickle.dumps({"x": Canary(directory)}, protocol=protocol)


@dataclass(frozen=True)
class Built:
    """What a case's builder wrote: the argv of the loader (see tests/hostile/load.py)."""

    via: str                       # model | model-run | inputs | representations | stream | cli
    args: tuple[str, ...]


@dataclass(frozen=True)
class Case:
    name: str
    build: Callable[[Path], Built] = field(repr=False)
    #: A regular expression the one-line error must match (case-insensitive); None: must load.
    expect: str | None
    #: The careless loader this file is aimed at (e.g. torch.export.load): run on the built file in
    #: the test process, it must create the canary (the proof that the trick is real).
    unsafe_load: Callable[[Built], None] | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Outcome:
    ok: bool
    message: str
    returncode: int
    peak_bytes: int
    seconds: float
    stderr: str


def run(built: Built, *, env: dict | None = None, timeout: float = 300) -> Outcome:
    """Load ``built`` in a fresh subprocess under SUITE_CAPS; its peak RSS (with its children's) and time."""
    argv = [sys.executable, "-m", "tests.hostile.load", built.via, *built.args]
    environment = {**os.environ, **SUITE_CAPS, **(env or {}), "PYTHONPATH": str(ROOT)}
    with tempfile.TemporaryFile() as stdout_file, tempfile.TemporaryFile() as stderr_file:
        start = time.perf_counter()
        process = subprocess.Popen(argv, cwd=ROOT, env=environment, stdout=stdout_file, stderr=stderr_file,
                                   stdin=subprocess.DEVNULL)
        returncode, peak = _wait(process.pid, start + timeout)
        seconds = time.perf_counter() - start
        process.returncode = returncode  # reaped here, by wait4, so that its rusage is ours to read
        stdout_file.seek(0), stderr_file.seek(0)
        stdout, stderr = stdout_file.read(), stderr_file.read()
    out, err = stdout.decode(errors="replace"), stderr.decode(errors="replace")
    try:
        result = json.loads(out.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        result = {"ok": False, "message": f"no result (exit {process.returncode}): {err[-2000:]}"}
    # The loader's own account of its peak (see load.py); wait4's counts the test process it was forked from.
    return Outcome(bool(result["ok"]), result["message"], process.returncode, result.get("peak_bytes", peak),
                   seconds, err)


def _wait(pid: int, deadline: float) -> tuple[int, int]:
    """Reap ``pid`` with wait4 (killing it at ``deadline``): its exit code and ru_maxrss in bytes (an upper
    bound that includes the process it was forked from: used only when the loader could not report)."""
    while True:
        done, status, usage = os.wait4(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status), usage.ru_maxrss * 1024
        if time.perf_counter() > deadline:
            os.kill(pid, 9)
        time.sleep(0.05)


def check(case: Case, tmp_path: Path) -> None:
    """Load the case's file as the product does: a one-line error matching ``expect`` (or a load),
    no canary, no traceback, peak RSS and time under the caps."""
    built = case.build(tmp_path)
    outcome = run(built)
    if os.environ.get("HOSTILE_REPORT"):  # one JSON line per case, for the figures in docs/security.md
        with open(os.environ["HOSTILE_REPORT"], "a") as report:
            report.write(json.dumps({"case": case.name, "refused": not outcome.ok, "message": outcome.message[:160],
                                     "peak_mib": round(outcome.peak_bytes / 2**20), "seconds": round(outcome.seconds, 1)})
                         + "\n")
    assert "ESCAPED" not in outcome.message and "Traceback" not in outcome.stderr, (outcome.message,
                                                                                   outcome.stderr[-3000:])
    assert not (tmp_path / CANARY).exists(), "the file's code ran"
    if case.expect is None:
        assert outcome.ok, outcome.message
    else:
        assert not outcome.ok, f"loaded: {outcome.message}"
        assert "\n" not in outcome.message.strip()
        assert re.search(case.expect, outcome.message, re.IGNORECASE), outcome.message
    assert outcome.peak_bytes <= MAX_PEAK_BYTES, f"peak RSS {outcome.peak_bytes / 2**20:.0f} MiB"
    assert outcome.seconds <= MAX_SECONDS, f"{outcome.seconds:.1f} s"


def check_canary_is_live(case: Case, tmp_path: Path) -> None:
    """The trick is real: the careless loader it is aimed at runs the file's code."""
    built = case.build(tmp_path)
    try:
        case.unsafe_load(built)
    except Exception:  # noqa: BLE001 - the careless loader may fail after the payload ran
        pass
    assert (tmp_path / CANARY).exists()


def hostile_test(cases: list[Case]):
    """The test of one module of cases (a test file per module, so that xdist spreads them)."""

    @pytest.mark.slow
    @pytest.mark.parametrize("case", cases, ids=[case.name for case in cases])
    def test_hostile_file(case, tmp_path):
        check(case, tmp_path)

    return test_hostile_file


def canary_test(cases: list[Case]):
    """The test that every canary of one module of cases is live."""
    canaries = [case for case in cases if case.unsafe_load is not None]
    assert canaries, "no case here plants a canary"

    @pytest.mark.parametrize("case", canaries, ids=[case.name for case in canaries])
    def test_the_canary_is_live(case, tmp_path):
        check_canary_is_live(case, tmp_path)

    return test_the_canary_is_live
