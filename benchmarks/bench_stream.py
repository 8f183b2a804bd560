"""Peak memory and time of the command line's linear-CKA heatmap against the number of examples:
two .npz files (4 layers x 256 float32 features each, as in the out-of-core issue), n = 10^4 .. 10^6.

    python -m benchmarks.bench_stream [--sizes 10000,100000,200000,1000000] [--in-memory-up-to 200000]
                                      [--out benchmarks/results/stream.md]

* **streamed**: ``cka compare a.npz b.npz --debiased --stream``: row blocks read from disk into one
  ``CKAAccumulator`` (``cka_core.stream``).
* **in memory**: the same command with streaming off (both files loaded, then ``similarity_matrix``),
  the path every comparison took before; run up to ``--in-memory-up-to`` examples (at 10^6 it needs
  tens of GB). Its heatmap is compared with the streamed one: the largest difference is round-off.

Each run is its own process started from a small parent, so the peak resident memory reported
(``ru_maxrss`` of the children) is that command's alone: interpreter, torch and numpy included.
Budget: the 200,000-example case (1.6 GB of float32 on disk) and the 10^6 one in <= 1 GB.
"""
from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
LAYERS, WIDTH, RANK, CHUNK = 4, 256, 16, 50_000
BUDGET_MIB = 1024

MEASURED = """
import json, resource, subprocess, sys, time
start = time.perf_counter()
done = subprocess.run(sys.argv[1:], capture_output=True, text=True)
print(json.dumps({"seconds": time.perf_counter() - start, "rc": done.returncode, "stderr": done.stderr[-2000:],
                  "peak_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))
"""
IN_MEMORY = "import sys, cka_core.cli as cli; cli.STREAM_BYTES = float('inf'); sys.exit(cli.main(sys.argv[1:]))"


def write_npz(path: Path, n: int, seed: int) -> None:
    """An uncompressed .npz of LAYERS (n, WIDTH) float32 layers sharing a rank-RANK signal, written
    chunk by chunk (the arrays are never whole in memory)."""
    rng = np.random.default_rng(seed)
    mixing = [rng.standard_normal((RANK, WIDTH)) for _ in range(LAYERS)]
    header = {"descr": "<f4", "fortran_order": False, "shape": (n, WIDTH)}
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
        for k in range(LAYERS):
            with archive.open(f"l{k}.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array_header_1_0(member, header)
                for start in range(0, n, CHUNK):
                    rows = min(CHUNK, n - start)
                    signal = np.random.default_rng((7, start)).standard_normal((rows, RANK))  # shared by both files
                    noise = rng.standard_normal((rows, WIDTH))
                    member.write(np.ascontiguousarray(signal @ mixing[k] + (k + 1) * noise, dtype=np.float32).data)


def measured(command: list[str]) -> dict:
    done = subprocess.run([sys.executable, "-c", MEASURED, *command], capture_output=True, text=True, cwd=ROOT)
    result = json.loads(done.stdout)
    if result["rc"] != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{result['stderr']}")
    return result


def run(sizes: list[int], in_memory_up_to: int, folder: Path) -> list[dict]:
    rows = []
    for n in sizes:
        a, b = folder / f"a_{n}.npz", folder / f"b_{n}.npz"
        write_npz(a, n, seed=1)
        write_npz(b, n, seed=2)  # the same signal rows (seeded by position), different layers
        row = {"n": n, "gb": (a.stat().st_size + b.stat().st_size) / 1e9}
        args = ["compare", str(a), str(b), "--debiased"]
        streamed = measured([sys.executable, "-m", "cka_core", *args, "--stream", "--out", str(folder / "s.json")])
        row.update(stream_s=streamed["seconds"], stream_mib=streamed["peak_mib"])
        if n <= in_memory_up_to:
            loaded = measured([sys.executable, "-c", IN_MEMORY, *args, "--out", str(folder / "m.json")])
            values = [np.array(json.loads((folder / f"{k}.json").read_text())["values"]) for k in "sm"]
            row.update(memory_s=loaded["seconds"], memory_mib=loaded["peak_mib"],
                       diff=float(np.abs(values[0] - values[1]).max()))
        rows.append(row)
        print(row, flush=True)
        a.unlink()
        b.unlink()
    return rows


def report(rows: list[dict]) -> str:
    lines = [
        f"# Out-of-core linear CKA: memory and time against n ({time.strftime('%Y-%m-%d')})",
        "",
        f"`cka compare a.npz b.npz --debiased`, each file {LAYERS} layers x {WIDTH} float32 features; "
        f"a 4 x 4 heatmap. {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
        f"torch {torch.__version__}, numpy {np.__version__}. Peak resident memory of the whole command "
        "(interpreter and libraries included).",
        "",
        "| n | on disk (GB) | streamed: time (s) | streamed: peak (MiB) | in memory: time (s) | in memory: peak (MiB) "
        "| max abs difference |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        memory = (f"{r['memory_s']:.1f} | {r['memory_mib']:,.0f} | {r['diff']:.1e}" if "memory_s" in r
                  else "not run | not run | ")
        lines.append(f"| {r['n']:,} | {r['gb']:.2f} | {r['stream_s']:.1f} | {r['stream_mib']:,.0f} | {memory} |")
    worst = max(r["stream_mib"] for r in rows)
    lines += ["", "Both paths form products in float32 for float32 files (the statistics add up in float64), so "
              "their heatmaps differ by float32 round-off; on float64 data the tests hold them to 1e-10.", "",
              f"Budget: peak <= {BUDGET_MIB} MiB at every n: {'met' if worst <= BUDGET_MIB else 'NOT met'} "
              f"(largest {worst:,.0f} MiB)."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,200000,1000000")
    parser.add_argument("--in-memory-up-to", type=int, default=200_000)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "stream.md")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        rows = run([int(s) for s in args.sizes.split(",")], args.in_memory_up_to, Path(folder))
    text = report(rows)
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
