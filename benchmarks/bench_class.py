"""Server CPU per request, before and after, side by side in one run (the class-of-30 issue's
yardstick): each checkout's server pinned to core 0, the same simulated students (same seed, same
think time) on the other core through the websocket protocol, one checkout after the other.

    python -m benchmarks.bench_class --before ../before --students 8 --seconds 120 --think 2 \\
        --out benchmarks/results/class_cpu.md

CPU is the whole server's (its process tree: worker-pool processes included) over the measured
window, divided by the requests completed in it.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
from pathlib import Path

from benchmarks.load_test.server import ROOT, start_server
from benchmarks.ws_load import Behaviour, LoadConfig, run_ws_load, save
from benchmarks.ws_load.warm import warm


def measure(root: Path, args, workdir: Path) -> dict:
    """One checkout's server under the students: the run's summary."""
    server = start_server(workdir / "streamlit.log", cpus=args.server_cpu, root=root)
    try:
        if args.warm:  # what deploy/serve.sh does before a class arrives
            asyncio.run(warm(server.url, args.warm, limit=6))
        config = LoadConfig(url=server.url, students=args.students, seconds=args.seconds, warmup=args.warmup,
                            seed=args.seed, server_pids=[server.proc.pid], server_cpu=args.server_cpu,
                            behaviour=Behaviour(think=args.think, uploads=0.0, buttons=0.0),
                            command=f"python -m benchmarks.bench_class ({root.name})")
        report = run_ws_load(config, workdir)
        save(report, workdir / "report.md")  # every move, error and figure of the run, beside its server log
        print(f"{root.name}: {workdir / 'report.md'}")
        return report.summary
    finally:
        server.stop()


def row(name: str, s: dict) -> str:
    cpu = s["server"].get("cpu_per_request")
    rss = s["server"].get("rss", {})
    return (f"| {name} | {s['requests']['done']} | {s['requests']['per_second']:.2f} | "
            f"{s['all']['p50']:.2f} / {s['all']['p95']:.2f} / {s['all']['max']:.2f} | "
            f"{'—' if cpu is None else f'{cpu:.3f}'} | {rss.get('steady', 0) / 2**20:.0f} | {s['error_count']} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_class", description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True, help="a checkout of the baseline (git worktree)")
    parser.add_argument("--students", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--warmup", type=float, default=30.0)
    parser.add_argument("--think", type=float, default=2.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--warm", type=float, default=0.0, help="warm each server this long first (0: cold)")
    parser.add_argument("--server-cpu", default="0")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/class_cpu.md"))
    args = parser.parse_args(argv)
    os.sched_setaffinity(0, set(range(os.cpu_count() or 2)) - {int(c) for c in args.server_cpu.split(",")}
                         or {0})
    summaries = {}
    for name, root in (("before", args.before.resolve()), ("after", ROOT)):
        summaries[name] = measure(root, args, Path(tempfile.mkdtemp(prefix=f"bench_class_{name}_")))
    before, after = (summaries[k]["server"].get("cpu_per_request") for k in ("before", "after"))
    lines = ["# Server CPU per request, before and after\n",
             f"`{' '.join(['python -m benchmarks.bench_class', *(argv or [])])}`: {args.students} students, think "
             f"{args.think} s, {args.seconds:.0f} s measured after {args.warmup:.0f} s (each server warmed "
             f"{args.warm:.0f} s first); server on core {args.server_cpu}, students on the others.\n",
             "| checkout | requests | per s | latency p50 / p95 / max (s) | server CPU-s per request | RSS steady (MB) | errors |",
             "|---|---|---|---|---|---|---|",
             row(f"before ({args.before.name})", summaries["before"]), row("after (this checkout)", summaries["after"])]
    if before and after:
        lines.append(f"\nCPU per request: {before / after:.2f}x less after.")
    text = "\n".join(lines) + "\n"
    args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
