"""Time of the distributed heatmap on 1 and 2 processes (torchrun, gloo, one thread per process),
over the files of the out-of-core benchmark: two .npz of n x 4 layers x 256 float32 features.

    python -m benchmarks.bench_distributed [--n 200000] [--processes 1,2] [--out benchmarks/results/distributed.md]

Each run is ``torchrun --nproc-per-node P -m cka_core.distributed a.npz b.npz --debiased``: every rank
streams its share of the rows and the statistics are all-reduced. Wall time includes starting the
processes (imports, rendezvous); the heatmaps of all runs are compared with the one-process run.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from .bench_stream import LAYERS, WIDTH, write_npz

ROOT = Path(__file__).resolve().parents[1]


def timed_run(processes: int, a: Path, b: Path, out: Path) -> float:
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(processes), "--master-port",
               "29517", "-m", "cka_core.distributed", str(a), str(b), "--debiased", "--out", str(out)]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(done.stderr[-3000:])
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--processes", default="1,2")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "distributed.md")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        a, b = Path(folder) / "a.npz", Path(folder) / "b.npz"
        write_npz(a, args.n, seed=1)
        write_npz(b, args.n, seed=2)
        reference = None
        for processes in (int(p) for p in args.processes.split(",")):
            result = Path(folder) / f"h{processes}.json"
            seconds = timed_run(processes, a, b, result)
            values = np.array(json.loads(result.read_text())["values"])
            reference = values if reference is None else reference
            rows.append((processes, seconds, float(np.abs(values - reference).max())))
            print(rows[-1], flush=True)
    base = rows[0][1]
    lines = [f"# Distributed linear CKA on 1 and 2 processes ({time.strftime('%Y-%m-%d')})", "",
             f"`torchrun --nproc-per-node P -m cka_core.distributed a.npz b.npz --debiased`, n = {args.n:,}, each file "
             f"{LAYERS} layers x {WIDTH} float32 features, gloo, one thread per process; "
             f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}. Wall time includes starting "
             "the processes.", "",
             "| processes | wall time (s) | speed-up | max abs difference from 1 process |", "|---:|---:|---:|---:|"]
    lines += [f"| {p} | {s:.1f} | {base / s:.2f}x | {d:.1e} |" for p, s, d in rows]
    text = "\n".join(lines) + "\n"
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
