"""Server CPU per request, before and after, side by side in one run (the class-of-30 issue's
yardstick): each checkout's server pinned to core 0, the same simulated students (same seed, same
think time) on the other core through the websocket protocol, one checkout after the other.

    python -m benchmarks.bench_class --before ../before --students 8 --seconds 120 --think 2 \\
        --out benchmarks/results/class_cpu.md

With several ``--students`` counts (``--students 4 8 12 16``) it measures how many students one server on one
core holds: each checkout's server is started and warmed once, then each count of students runs in turn, and
the report gives each count's latency and the largest count held at p95 <= ``--p95`` seconds.

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


def measure(root: Path, args, workdir: Path) -> dict[int, dict]:
    """One checkout's server under each count of students in turn: {students: the run's summary}."""
    server = start_server(workdir / "streamlit.log", cpus=args.server_cpu, root=root)
    summaries = {}
    try:
        if args.warm:  # what deploy/serve.sh does before a class arrives
            asyncio.run(warm(server.url, args.warm, limit=6))
        for students in args.students:
            config = LoadConfig(url=server.url, students=students, seconds=args.seconds, warmup=args.warmup,
                                seed=args.seed, server_pids=[server.proc.pid], server_cpu=args.server_cpu,
                                behaviour=Behaviour(think=args.think, uploads=0.0, buttons=0.0),
                                command=f"python -m benchmarks.bench_class ({root.name}, {students} students)")
            report = run_ws_load(config, workdir)
            save(report, workdir / f"report_{students}.md")  # every move, error and figure, beside the server log
            print(f"{root.name}, {students} students: {workdir / f'report_{students}.md'}")
            summaries[students] = report.summary
        return summaries
    finally:
        server.stop()


def held(summaries: dict[int, dict], p95: float) -> int:
    """The largest count of students whose p95 latency stayed at most ``p95`` s (0: none)."""
    return max((n for n, s in summaries.items() if s["all"]["p95"] is not None and s["all"]["p95"] <= p95), default=0)


def row(name: str, students: int, s: dict) -> str:
    cpu = s["server"].get("cpu_per_request")
    rss = s["server"].get("rss", {})
    return (f"| {name} | {students} | {s['requests']['done']} | {s['requests']['per_second']:.2f} | "
            f"{s['all']['p50']:.2f} / {s['all']['p95']:.2f} / {s['all']['max']:.2f} | "
            f"{'—' if cpu is None else f'{cpu:.3f}'} | {rss.get('steady', 0) / 2**20:.0f} | {s['error_count']} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_class", description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True, help="a checkout of the baseline (git worktree)")
    parser.add_argument("--students", type=int, nargs="+", default=[8],
                        help="students at once; several counts: how many one server holds")
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--warmup", type=float, default=30.0)
    parser.add_argument("--think", type=float, default=2.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--warm", type=float, default=0.0, help="warm each server this long first (0: cold)")
    parser.add_argument("--server-cpu", default="0")
    parser.add_argument("--p95", type=float, default=1.0, help="the latency a server must hold (seconds, p95)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/class_cpu.md"))
    args = parser.parse_args(argv)
    os.sched_setaffinity(0, set(range(os.cpu_count() or 2)) - {int(c) for c in args.server_cpu.split(",")}
                         or {0})
    summaries = {}
    for name, root in (("before", args.before.resolve()), ("after", ROOT)):
        summaries[name] = measure(root, args, Path(tempfile.mkdtemp(prefix=f"bench_class_{name}_")))
    lines = ["# Server CPU per request, before and after\n",
             f"`{' '.join(['python -m benchmarks.bench_class', *(argv or [])])}`: think {args.think} s, "
             f"{args.seconds:.0f} s measured after {args.warmup:.0f} s for each count of students (each server "
             f"warmed {args.warm:.0f} s first); server on core {args.server_cpu}, students on the others.\n",
             "| checkout | students | requests | per s | latency p50 / p95 / max (s) | server CPU-s per request "
             "| RSS steady (MB) | errors |", "|---|---|---|---|---|---|---|---|"]
    names = {"before": f"before ({args.before.name})", "after": "after (this checkout)"}
    for students in args.students:
        lines += [row(names[k], students, summaries[k][students]) for k in ("before", "after")]
    for students in args.students:
        before, after = (summaries[k][students]["server"].get("cpu_per_request") for k in ("before", "after"))
        if before and after:
            lines.append(f"\n{students} students: {before / after:.2f}x less CPU per request after.")
    if len(args.students) > 1:
        lines.append(f"\nStudents one server on one core holds at p95 <= {args.p95:g} s: before "
                     f"{held(summaries['before'], args.p95)}, after {held(summaries['after'], args.p95)} "
                     f"(of {', '.join(map(str, args.students))} tried).")
    text = "\n".join(lines) + "\n"
    args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
