"""Start `python -m cka_core ...` as a real subprocess (the CLI tests run several at once)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def start(*args) -> subprocess.Popen:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.Popen([sys.executable, "-m", "cka_core", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env)


class Done:
    """A finished run: stdout, stderr and the exit status."""

    def __init__(self, popen: subprocess.Popen, timeout: float = 300):
        self.stdout, self.stderr = popen.communicate(timeout=timeout)
        self.returncode = popen.returncode
