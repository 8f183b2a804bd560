"""Command line: ``python -m cka_core compare A B [--debiased] [--batch-size N] [--measure M] [--out F]``."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from .errors import RepresentationError
from .heatmap import similarity_matrix
from .io import load_representations
from .measures import MEASURES

def _read(path: str) -> dict[str, np.ndarray]:
    file = Path(path)
    if not file.is_file():
        raise RepresentationError(f"{path}: no such file.")
    return load_representations(file.read_bytes(), file.name)


def _write(out: Path, values: np.ndarray, names_a: list[str], names_b: list[str], settings: dict) -> None:
    suffix = out.suffix.lower()
    if suffix == ".csv":
        lines = [",".join(["layer"] + [_csv_cell(n) for n in names_b])]
        lines += [",".join([_csv_cell(a)] + [repr(float(v)) for v in row]) for a, row in zip(names_a, values)]
        out.write_text("\n".join(lines) + "\n")
    elif suffix == ".json":
        out.write_text(json.dumps({"layers_a": names_a, "layers_b": names_b, "values": values.tolist(), **settings}, indent=2))
    else:
        raise RepresentationError(f"--out {out}: unknown output format {suffix!r}; use .csv or .json.")


def _csv_cell(text: str) -> str:
    return '"' + text.replace('"', '""') + '"' if any(ch in text for ch in ',"\n') else text


def _table(values: np.ndarray, names_a: list[str], names_b: list[str]) -> str:
    width = max(len(n) for n in names_a)
    header = " " * width + "  " + "  ".join(f"{n[:10]:>10}" for n in names_b)
    rows = [f"{a:<{width}}  " + "  ".join(f"{v:>10.4f}" for v in row) for a, row in zip(names_a, values)]
    return "\n".join([header, *rows])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cka_core", description="CKA between the layers of two representation files.")
    commands = parser.add_subparsers(dest="command", required=True)
    compare = commands.add_parser("compare", help="layer x layer heatmap between two files")
    compare.add_argument("a", help="first file (.npy .npz .pt .safetensors .csv)")
    compare.add_argument("b", help="second file, same examples in the same order")
    compare.add_argument("--debiased", action="store_true", help="unbiased HSIC estimator")
    compare.add_argument("--batch-size", type=int, default=None, help="minibatch estimator (Nguyen et al. 2021)")
    compare.add_argument("--measure", default="linear_cka", choices=sorted(MEASURES), help="similarity measure")
    compare.add_argument("--out", type=Path, default=None, help="write the values to a .csv or .json file")
    args = parser.parse_args(argv)
    try:
        layers_a, layers_b = _read(args.a), _read(args.b)
        values = similarity_matrix(layers_a, layers_b, measure=args.measure, debiased=args.debiased,
                                   batch_size=args.batch_size)
        names_a, names_b = list(layers_a), list(layers_b)
        settings = {"measure": args.measure, "debiased": args.debiased, "batch_size": args.batch_size,
                    "n_examples": int(next(iter(layers_a.values())).shape[0]), "file_a": args.a, "file_b": args.b}
        print(_table(values, names_a, names_b))
        if args.out is not None:
            _write(args.out, values, names_a, names_b, settings)
    except RepresentationError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"error: {error.strerror or error}: {error.filename or ''}".rstrip(": "), file=sys.stderr)
        return 2
    return 0
