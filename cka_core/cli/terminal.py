"""What the command-line programs print: heatmaps as text tables, and progress on stderr (only
when it is a terminal, so pipes, logs and tests stay clean)."""
from __future__ import annotations

import sys

import numpy as np


def error_exit(error: Exception) -> int:
    """A refused input or an unreadable/unwritable file as one line on stderr; the exit status 2."""
    if isinstance(error, OSError):
        print(f"error: {error.strerror or error}: {error.filename or ''}".rstrip(": "), file=sys.stderr)
    else:
        print(f"error: {error}", file=sys.stderr)
    return 2


def value_table(values: np.ndarray, names_a: list[str], names_b: list[str]) -> str:
    """A heatmap as aligned text: A's layers down, B's across, four decimals."""
    width = max(len(n) for n in names_a)
    size = min(24, max(10, *(len(n) for n in names_b)))
    header = " " * width + "  " + "  ".join(f"{n[-size:]:>{size}}" for n in names_b)
    rows = [f"{a:<{width}}  " + "  ".join(f"{v:>{size}.4f}" for v in row) for a, row in zip(names_a, values)]
    return "\n".join([header, *rows])


def text_table(cells: list[list[str]], names_a: list[str], names_b: list[str]) -> str:
    """Cells that are already text (intervals) as an aligned table."""
    width = max(len(n) for n in names_a)
    size = max(15, *(len(c) for row in cells for c in row))
    header = " " * width + "  " + "  ".join(f"{n[:size]:>{size}}" for n in names_b)
    rows = [f"{a:<{width}}  " + "  ".join(f"{c:>{size}}" for c in row) for a, row in zip(names_a, cells)]
    return "\n".join([header, *rows])


def counter(what: str):
    """A one-line counter ``what: done/total`` for resampling jobs, or None off a terminal."""
    if not sys.stderr.isatty():
        return None

    def report(done: int, total: int) -> None:
        print(f"\r{what}: {done}/{total}", end="\n" if done == total else "", file=sys.stderr, flush=True)

    return report


def rate(what: str, unit: str = "examples"):
    """A one-line progress report ``what: done/total examples, rate/s, time left`` for reads and
    forward passes, or None off a terminal."""
    if not sys.stderr.isatty():
        return None

    def report(done: int, total: int, seconds: float) -> None:
        per_second = done / seconds if seconds > 0 else 0.0
        left = (total - done) / per_second if per_second > 0 else 0.0
        print(f"\r{what}: {done}/{total} {unit}, {per_second:.0f}/s, {left:.0f} s left   ",
              end="\n" if done == total else "", file=sys.stderr, flush=True)

    return report
