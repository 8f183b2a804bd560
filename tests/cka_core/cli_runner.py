"""Start `python -m cka_core ...` as a real subprocess (the CLI tests run several at once)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def start(*args) -> subprocess.Popen:
    """The installed package's CLI (``pip install -e .``), run from outside the checkout so that
    nothing but the installed cka_core can be imported."""
    return subprocess.Popen([sys.executable, "-m", "cka_core", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT.parent)


class Done:
    """A finished run: stdout, stderr and the exit status."""

    def __init__(self, popen: subprocess.Popen, timeout: float = 300):
        self.stdout, self.stderr = popen.communicate(timeout=timeout)
        self.returncode = popen.returncode
