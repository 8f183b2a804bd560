"""The load test's command line: ``python -m benchmarks.load_test [--sessions 10] [--minutes 3] ...``
(the package docstring says what it does); writes the report to --out and prints it."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import __doc__ as PACKAGE_DOC
from .run import run_load_test
from .server import ROOT


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.load_test", description=PACKAGE_DOC.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "load_test.md")
    parser.add_argument("--workdir", type=Path, default=None, help="screenshots, uploads and the server log "
                                                                     "(default: a new temporary folder)")
    parser.add_argument("--server-cpus", default=None, help="pin the server to these cores (taskset list, e.g. 0)")
    parser.add_argument("--client-cpus", default=None, help="pin the browsers and the driver to these cores (e.g. 1)")
    parser.add_argument("--think", type=float, default=0.0, help="mean seconds a session pauses after each move")
    args = parser.parse_args()
    command = "python -m benchmarks.load_test " + " ".join(sys.argv[1:])
    report = run_load_test(args.sessions, args.minutes * 60, args.seed, args.workdir, command=command.strip(),
                           server_cpus=args.server_cpus, client_cpus=args.client_cpus, think_s=args.think)
    print(report.text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report.text)
    return 0 if report.errors == 0 and report.steady_ok else 1


if __name__ == "__main__":
    sys.exit(main())
