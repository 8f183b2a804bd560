"""The command line: ``python -m benchmarks.ws_load --url http://127.0.0.1:PORT --students 30
--seconds 180 --think 5 --warmup 30 --out benchmarks/results/ws_load.md`` (or ``--start-server
[--server-cpu 0]`` instead of ``--url``). Prints the report, writes it to --out and the raw JSON
next to it; exit status 1 when there were errors, timeouts, lost sessions or failed students."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import __doc__ as PACKAGE_DOC
from .run import LoadConfig, run_ws_load, save
from .student import Behaviour


def main() -> int:
    """Parse the command line, run the students, print and write the report; the exit status."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ws_load", description=PACKAGE_DOC.splitlines()[0])
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--url", help="the app, or a reverse proxy in front of it (http://host:port[/base])")
    target.add_argument("--start-server", action="store_true", help="start `streamlit run app.py` on a free port")
    parser.add_argument("--server-cpu", default=None,
                        help="with --start-server: pin the server to these cores (taskset list, e.g. 0); "
                             "the students run on the others")
    parser.add_argument("--server-pid", type=int, action="append", default=[],
                        help="a server process to measure (CPU per request, RSS); repeat for several replicas")
    parser.add_argument("--students", type=int, default=30)
    parser.add_argument("--seconds", type=float, default=180.0, help="the measured window, after the warm-up")
    parser.add_argument("--warmup", type=float, default=30.0, help="seconds before measuring (arrivals happen then)")
    parser.add_argument("--think", type=float, default=5.0, help="mean think time between actions (exponential)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds before a request counts as timed out")
    parser.add_argument("--uploads", type=float, default=0.05, help="share of actions that are uploads (0: none)")
    parser.add_argument("--buttons", type=float, default=0.2, help="weight of button presses among moves (0: none)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/ws_load.md"))
    parser.add_argument("--workdir", type=Path, default=None, help="server log and upload files (default: temporary)")
    args = parser.parse_args()
    if args.server_cpu and not args.start_server:
        parser.error("--server-cpu pins a server this command starts: use it with --start-server")
    config = LoadConfig(url=args.url, students=args.students, seconds=args.seconds, warmup=args.warmup, seed=args.seed,
                        behaviour=Behaviour(think=args.think, timeout=args.timeout, uploads=args.uploads,
                                            buttons=args.buttons),
                        start_server=args.start_server, server_cpu=args.server_cpu, server_pids=args.server_pid,
                        command="python -m benchmarks.ws_load " + " ".join(sys.argv[1:]))
    report = run_ws_load(config, args.workdir)
    print(report.text)
    raw = save(report, args.out)
    print(f"wrote {args.out} and {raw}")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
