"""Budgets of the trust scorecard (ReSi's six grounding tests on the zoo's model groups).

    python -m benchmarks.bench_trust [--out benchmarks/results/trust.md]

* loading the 51 group members and their activations on the held-out digits;
* the whole scorecard cold (every measure, every test, 500 bootstrap resamples; an empty pair
  cache; budget 60 s) and warm (the same call again, pair values cached, best of 3; budget 1 s),
  in wall and CPU time;
* each measure alone, cold (its own layer views and pair values, all six tests).
Run with one torch/BLAS thread, as the app does.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from threadpoolctl import threadpool_limits

from cka_core.trust import Member, PairCache, candidate_measures, scorecard
from sample_models.groups import suites


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/trust.md"))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    with threadpool_limits(1, "blas"):
        start = time.perf_counter()
        groups = {t: [Member(**d) for d in members] for t, members in suites().items()}
        load = time.perf_counter() - start
        measures = candidate_measures()
        cache = PairCache()
        start, cpu = time.perf_counter(), time.process_time()
        card = scorecard(groups, measures, cache=cache)
        cold, cold_cpu = time.perf_counter() - start, time.process_time() - cpu
        warm, warm_cpu = [], []
        for _ in range(3):
            start, cpu = time.perf_counter(), time.process_time()
            scorecard(groups, measures, cache=cache)
            warm.append(time.perf_counter() - start)
            warm_cpu.append(time.process_time() - cpu)
        warm, warm_cpu = min(warm), min(warm_cpu)
        alone = {}
        for m in measures:
            start = time.perf_counter()
            scorecard(groups, [m], cache=PairCache())
            alone[m] = time.perf_counter() - start
    pairs = sum(len(card.cell(t, measures[0]).pairs) or 0 for t in card.tests)
    lines = [
        "# Trust scorecard timings",
        "",
        f"{len(measures)} measures x {len(card.tests)} tests, 500 model-bootstrap resamples, one thread "
        f"(`python -m benchmarks.bench_trust`).",
        "",
        "Wall time, and the process's CPU time (robust to other load on the shared machine).",
        "",
        "| what | wall | CPU | budget |",
        "|---|---|---|---|",
        f"| load 51 members, activations on the 359 test digits | {load:.2f} s | | |",
        f"| scorecard cold (empty pair cache) | {cold:.1f} s | {cold_cpu:.1f} s | 60 s |",
        f"| scorecard warm (pair values cached; best of 3) | {warm:.2f} s | {warm_cpu:.2f} s | 1 s |",
        "",
        "Each measure alone, cold (its own layer views and pair values, all tests):",
        "",
        "| measure | seconds | failed tests |",
        "|---|---|---|",
    ]
    for m, seconds in sorted(alone.items(), key=lambda kv: -kv[1]):
        failed = [t for t in card.tests if card.cell(t, m).error]
        lines.append(f"| {m} | {seconds:.2f} | {', '.join(failed) or '-'} |")
    lines.append(f"\nEach measure is evaluated on {pairs} pairs of representations over the six tests.")
    text = "\n".join(lines) + "\n"
    print(text)
    args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
