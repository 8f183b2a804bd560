"""Interaction benchmark: move every slider of every page through AppTest and time the reruns.

    python -m benchmarks.bench_interaction [--repeats 2]

Each slider is set to its minimum, its maximum and back to its default, one rerun each, after a
warm-up run of the page (so model loading and first captures are not counted: they happen once
per server). Reports per page the median and slowest rerun, and the slowest slider overall. The
budget is 0.5 s per rerun on sample data, aim 0.2 s. AppTest times include Streamlit's
own script-run overhead but not the browser's rendering.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from streamlit.testing.v1 import AppTest

from ui.frame import navigation

ROOT = Path(__file__).resolve().parents[1]
#: Pages with controls that rerun the page (Home and Derivations have none).
PAGES = [page.path for page in navigation.PAGES if page.url_path not in ("", "theory")]


def _timed(at: AppTest) -> float:
    start = time.perf_counter()
    at.run()
    if at.exception:
        raise RuntimeError(f"exception during rerun: {at.exception[0].message}")
    return time.perf_counter() - start


def bench_page(page: str, repeats: int) -> dict[str, list[float]]:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120).run()
    at.switch_page(page).run()
    at.run()  # warm caches of the default state
    timings: dict[str, list[float]] = {}
    for _ in range(repeats):
        keys = [s.key for s in at.slider if s.key and not s.disabled]
        for key in keys:
            slider = at.slider(key=key)
            default = slider.value
            for value in (slider.min, slider.max, default):
                at.slider(key=key).set_value(value)
                timings.setdefault(key, []).append(_timed(at))
    return timings


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(2)
    rows, slowest = [], (0.0, "", "")
    for page in PAGES:
        timings = bench_page(page, args.repeats)
        if not timings:  # a page whose controls are all selects and radios
            print(f"{page}: no sliders, skipped", flush=True)
            continue
        values = [t for ts in timings.values() for t in ts]
        worst_key = max(timings, key=lambda k: max(timings[k]))
        rows.append((page, len(timings), statistics.median(values), max(values), worst_key))
        if max(values) > slowest[0]:
            slowest = (max(values), page, worst_key)
    lines = ["| page | sliders | median rerun (s) | slowest rerun (s) | slowest slider |", "|---|---|---|---|---|"]
    lines += [f"| {p} | {n} | {med:.3f} | {mx:.3f} | `{k}` |" for p, n, med, mx, k in rows]
    lines.append(f"\nSlowest rerun overall: {slowest[0]:.3f} s ({slowest[1]}, `{slowest[2]}`); budget 0.5 s, aim 0.2 s.")
    report = "\n".join(lines)
    print(report)
    out = ROOT / "benchmarks" / "results" / "interaction.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(f"# Slider rerun latency (AppTest)\n\n{time.strftime('%Y-%m-%d')}, torch threads 2\n\n{report}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
