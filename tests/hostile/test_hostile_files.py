"""Every hostile file, loaded as the product loads it, in a subprocess: a one-line error that says
what was wrong (or, for the legitimate neighbours, a load), no canary, no traceback, and peak
memory and time under the caps the suite sets (harness.SUITE_CAPS)."""
from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path

import pytest

from . import harness

CASES = [case for info in pkgutil.iter_modules([str(Path(__file__).parent)]) if info.name.startswith("cases_")
         for case in importlib.import_module(f"{__package__}.{info.name}").CASES]


def test_case_names_are_unique():
    names = [case.name for case in CASES]
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_hostile_file(case, tmp_path):
    built = case.build(tmp_path)
    outcome = harness.run(built)
    assert "ESCAPED" not in outcome.message and "Traceback" not in outcome.stderr, outcome.stderr[-3000:]
    assert not (tmp_path / harness.CANARY).exists(), "the file's code ran"
    if case.expect is None:
        assert outcome.ok, outcome.message
    else:
        assert not outcome.ok, f"loaded: {outcome.message}"
        assert "\n" not in outcome.message.strip()
        assert re.search(case.expect, outcome.message, re.IGNORECASE), outcome.message
    assert outcome.peak_bytes <= harness.MAX_PEAK_BYTES, f"peak RSS {outcome.peak_bytes / 2**20:.0f} MiB"
    assert outcome.seconds <= harness.MAX_SECONDS, f"{outcome.seconds:.1f} s"


@pytest.mark.parametrize("case", [c for c in CASES if c.unsafe_load is not None], ids=lambda case: case.name)
def test_the_canary_is_live(case, tmp_path):
    """The trick is real: the careless loader it is aimed at runs the file's code."""
    built = case.build(tmp_path)
    try:
        case.unsafe_load(built)
    except Exception:  # noqa: BLE001 - the careless loader may fail after the payload ran
        pass
    assert (tmp_path / harness.CANARY).exists()
