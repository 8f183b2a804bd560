"""Files named at launch: ``streamlit run app.py -- --reps A.npz B.npz --models runs/bert_a model.onnx``.

Large activations and models can then be read from local disk instead of going through an upload
(a hosted demo starts with neither, so its users can only upload).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _launch_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--reps", nargs="*", default=[], type=Path)
    parser.add_argument("--models", nargs="*", default=[], type=Path)
    known, _ = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    return known


def launch_files(argv: list[str] | None = None) -> list[Path]:
    """The activation files given after ``--reps`` (empty if none)."""
    return list(_launch_arguments(argv).reps)


def launch_models(argv: list[str] | None = None) -> list[Path]:
    """The models given after ``--models``: Hugging Face directories, .onnx or .pt2 files."""
    return list(_launch_arguments(argv).models)
