"""The benchmark's command line: ``python -m benchmarks.bench_cka_matrix [--quick] [--append] ...``
(the package docstring says what it measures); runs every regime, prints the report and writes it
to --out."""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

from . import __doc__ as PACKAGE_DOC
from .activations import FULL_REGIMES, QUICK_REGIMES
from .measure import THREADS, profile_ours, run_regime
from .report import ROOT, code_fingerprint, report


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_cka_matrix", description=PACKAGE_DOC.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small n, 1 round: a smoke run (< 30 s on an idle machine)")
    parser.add_argument("--repeats", type=int, default=None, help="timed rounds per regime (default 5; 1 with --quick)")
    parser.add_argument("--threads", type=int, default=THREADS, help=f"torch.set_num_threads (default {THREADS})")
    parser.add_argument("--out", type=Path, default=None,
                        help="markdown file (default benchmarks/results/cka_matrix.md, or cka_matrix_quick.md with --quick)")
    parser.add_argument("--append", action="store_true", help="append this run to the file instead of replacing it")
    parser.add_argument("--profile", action="store_true", help="add a cProfile of ours in each regime")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    args.fingerprint = code_fingerprint()
    repeats = args.repeats or (1 if args.quick else 5)
    regimes = QUICK_REGIMES if args.quick else FULL_REGIMES
    out = args.out or ROOT / "benchmarks" / "results" / ("cka_matrix_quick.md" if args.quick else "cka_matrix.md")

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    start = time.perf_counter()
    load_before = os.getloadavg()[0]
    results = []
    for regime in regimes:
        res = run_regime(regime, repeats, log)
        if args.profile:
            res["profile"] = profile_ours(res["layers"])
        results.append(res)
    load_after = os.getloadavg()[0]
    text = report(results, args, load_before, load_after, time.perf_counter() - start)
    print(text)

    out.parent.mkdir(parents=True, exist_ok=True)
    header = (
        "# `cka_matrix` vs pytorch-cka and torch-cka\n\n"
        "Written by `python -m benchmarks.bench_cka_matrix` (see benchmarks/README.md).\n\n"
    )
    if args.append and out.exists():
        with out.open("a") as f:
            f.write("\n" + text)
    else:
        out.write_text(header + text)
    log(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
