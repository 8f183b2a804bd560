"""Representation files named at launch: ``streamlit run app.py -- --reps A.npz B.npz``.

Large activations can then be read from local disk instead of going through an upload.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def launch_files(argv: list[str] | None = None) -> list[Path]:
    """The files given after ``--reps`` on the command line (empty if none)."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--reps", nargs="*", default=[], type=Path)
    known, _ = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    return list(known.reps)
