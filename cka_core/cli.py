"""Command line: ``python -m cka_core compare A B [options]``; run with ``--help`` for the options.

The export helpers here (:func:`heatmap_document`, :func:`cells_csv`, :func:`matrix_csv`,
:func:`write_png`) are shared with the app's Compare page, so a file written by either can be read
by the same code.
"""
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

MAX_RESAMPLES = 100_000

BOOTSTRAP_METHOD = ("percentile bootstrap over examples (same rows resampled on both sides), re-centred on the "
                    "full-data value: [v + q_lo - median, v + q_hi - median] (cka_core.inference.bootstrap)")
PERMUTATION_METHOD = ("rows of side B shuffled against side A; p = (1 + #{null at least as similar as observed}) "
                      "/ (1 + n_permutations) (cka_core.inference.permutation_test)")
MARKING_RULE = ("not_above_null: permutation p > 0.05, or the bootstrap interval overlaps the shuffled-rows null "
                "mean ± 2 sd (cka_core.sanity.not_above_null)")

CELL_COLUMNS = ("layer_a", "layer_b", "value", "ci_low", "ci_high", "p_value", "null_mean", "null_sd",
                "not_above_null")

EPILOG = """\
outputs (--out may be given several times; the suffix picks the format):
  F.csv   the matrix: header row "layer,<layers of B>", then one row per layer of A.
          With --bootstrap and/or --permutations, a second file F.cells.csv is written beside
          it: '# name: value' lines with every setting (JSON values), then one row per cell with
          the columns layer_a,layer_b,value,ci_low,ci_high,p_value,null_mean,null_sd,not_above_null
          (columns of a test that was not run are left empty).
  F.json  {"layers_a", "layers_b", "values", the settings, and with inference "ci_low", "ci_high",
          "p_values", "null_mean", "null_sd", "not_above_null" (L_a x L_b lists) plus
          "bootstrap" / "permutations" blocks describing the method}.
  F.png   the heatmap (matplotlib, Agg); cells not above the null are marked with x.

examples:
  python -m cka_core compare a.npz b.npz --out heat.csv --out heat.png
  python -m cka_core compare a.npz b.npz --debiased --bootstrap 200 --permutations 200 --out heat.json
"""


# --------------------------------------------------------------------------- export helpers (shared)
def _matrix(array) -> list[list[float]]:
    return np.asarray(array, dtype=np.float64).tolist()


def heatmap_document(values, names_a, names_b, settings: dict, *, bootstrap=None, permutation=None,
                     flagged=None) -> dict:
    """Everything needed to read and reproduce a heatmap, as JSON-ready data.

    ``settings`` (measure, estimator options, sources, n_examples...) are stored at the top level;
    ``bootstrap`` / ``permutation`` are results of :mod:`cka_core.inference`; ``flagged`` the cells
    not above the null (:func:`cka_core.sanity.not_above_null`).
    """
    doc = {"layers_a": list(map(str, names_a)), "layers_b": list(map(str, names_b)), "values": _matrix(values),
           **settings}
    if bootstrap is not None:
        doc["ci_low"], doc["ci_high"] = _matrix(bootstrap.low), _matrix(bootstrap.high)
        doc["bootstrap"] = {"n_resamples": bootstrap.n_resamples, "confidence": bootstrap.confidence,
                            "seed": settings.get("seed", 0), "method": BOOTSTRAP_METHOD}
    if permutation is not None:
        doc["p_values"] = _matrix(permutation.p_values)
        doc["null_mean"], doc["null_sd"] = _matrix(permutation.null_mean), _matrix(permutation.null_std)
        doc["permutations"] = {"n_permutations": permutation.n_permutations, "seed": settings.get("seed", 0),
                               "method": PERMUTATION_METHOD}
    if flagged is not None:
        doc["not_above_null"] = np.asarray(flagged, dtype=bool).tolist()
        doc["marking_rule"] = MARKING_RULE
    return doc


def _csv_cell(text: str) -> str:
    text = str(text)
    return '"' + text.replace('"', '""') + '"' if any(ch in text for ch in ',"\n\r#') else text


def _number(value) -> str:
    return "" if value is None else repr(float(value))


def matrix_csv(values, names_a, names_b) -> str:
    """The matrix as CSV: header "layer,<layers of B>", one row per layer of A."""
    lines = [",".join(["layer"] + [_csv_cell(n) for n in names_b])]
    lines += [",".join([_csv_cell(a)] + [repr(float(v)) for v in row]) for a, row in zip(names_a, values)]
    return "\n".join(lines) + "\n"


def cells_csv(doc: dict) -> str:
    """One row per cell (see ``CELL_COLUMNS``), after '# name: value' lines holding every setting."""
    skip = {"layers_a", "layers_b", "values", "ci_low", "ci_high", "p_values", "null_mean", "null_sd", "not_above_null"}
    lines = [f"# {key}: {json.dumps(value)}" for key, value in doc.items() if key not in skip]
    lines.append(",".join(CELL_COLUMNS))
    for i, a in enumerate(doc["layers_a"]):
        for j, b in enumerate(doc["layers_b"]):
            def cell(key):
                return doc[key][i][j] if key in doc else None
            flag = cell("not_above_null")
            lines.append(",".join([
                _csv_cell(a), _csv_cell(b), _number(doc["values"][i][j]), _number(cell("ci_low")),
                _number(cell("ci_high")), _number(cell("p_values")), _number(cell("null_mean")),
                _number(cell("null_sd")), "" if flag is None else str(bool(flag)).lower(),
            ]))
    return "\n".join(lines) + "\n"


def write_png(doc: dict, path, *, dpi: int = 150) -> None:
    """The heatmap as a PNG (matplotlib with the Agg backend): values written in the cells when
    they fit, cells not above the null marked with x."""
    try:
        import matplotlib

        matplotlib.use("Agg", force=True)
        import matplotlib.pyplot as plt
    except ImportError:
        raise RepresentationError("writing .png needs matplotlib; pip install matplotlib==3.11.2.") from None
    values = np.asarray(doc["values"], dtype=np.float64)
    names_a, names_b = doc["layers_a"], doc["layers_b"]
    info = MEASURES.get(doc.get("measure", ""), None)
    low, high = info.value_range if info is not None else (float(values.min()), float(values.max()))
    rows, cols = values.shape
    fig, ax = plt.subplots(figsize=(min(3 + 0.7 * cols, 24), min(2.5 + 0.55 * rows, 24)))
    image = ax.imshow(values, cmap="viridis", vmin=low, vmax=high, aspect="auto")
    fig.colorbar(image, ax=ax, label=info.label if info is not None else "value")
    ax.set_xticks(range(cols), names_b, rotation=45, ha="right")
    ax.set_yticks(range(rows), names_a)
    ax.set_xlabel("B")
    ax.set_ylabel("A")
    flagged = np.asarray(doc.get("not_above_null", np.zeros_like(values, dtype=bool)), dtype=bool)
    if values.size <= 144:
        middle = (low + high) / 2
        for i in range(rows):
            for j in range(cols):
                text = f"{values[i, j]:.2f}" + (" ×" if flagged[i, j] else "")
                ax.text(j, i, text, ha="center", va="center", fontsize=8,
                        color="black" if values[i, j] > middle else "white")
    else:
        ys, xs = np.nonzero(flagged)
        ax.scatter(xs, ys, marker="x", color="red", s=12)
    label = doc.get("measure_label") or (info.label if info is not None else "values")
    if doc.get("debiased") and "debiased" not in label and "unbiased" not in label:
        label += " (debiased)"
    batch = f", batch {doc['batch_size']}" if doc.get("batch_size") and "b =" not in label else ""
    title = f"{label}{batch}, n = {doc.get('n_examples', '?')}"
    if flagged.any():
        title += "\n× = not above the shuffled-rows null"
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)


# --------------------------------------------------------------------------- command line
class _Parser(argparse.ArgumentParser):
    """Usage errors as one line on stderr (no usage dump), exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"error: {message} (run with --help for the options)\n")


def _read(path: str) -> dict[str, np.ndarray]:
    file = Path(path)
    if not file.is_file():
        raise RepresentationError(f"{path}: no such file.")
    return load_representations(file.read_bytes(), file.name)


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 1 <= value <= MAX_RESAMPLES:
        raise argparse.ArgumentTypeError(f"{value} is outside 1..{MAX_RESAMPLES}")
    return value


def _confidence(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"{value} must lie strictly between 0 and 1, e.g. 0.95")
    return value


def _write(out: Path, doc: dict) -> list[Path]:
    """Write ``doc`` to ``out`` in the format its suffix names; returns the paths written."""
    suffix = out.suffix.lower()
    if suffix == ".csv":
        out.write_text(matrix_csv(doc["values"], doc["layers_a"], doc["layers_b"]))
        written = [out]
        if "ci_low" in doc or "p_values" in doc:
            cells = out.with_name(out.stem + ".cells.csv")
            cells.write_text(cells_csv(doc))
            written.append(cells)
        return written
    if suffix == ".json":
        out.write_text(json.dumps(doc, indent=2))
        return [out]
    if suffix == ".png":
        write_png(doc, out)
        return [out]
    raise RepresentationError(f"--out {out}: unknown output format {suffix or '(none)'!r}; use .csv, .json or .png.")


def _table(values: np.ndarray, names_a: list[str], names_b: list[str]) -> str:
    width = max(len(n) for n in names_a)
    header = " " * width + "  " + "  ".join(f"{n[:10]:>10}" for n in names_b)
    rows = [f"{a:<{width}}  " + "  ".join(f"{v:>10.4f}" for v in row) for a, row in zip(names_a, values)]
    return "\n".join([header, *rows])


def _progress(what: str):
    """A one-line progress counter on stderr when it is a terminal (silent in pipes and tests)."""
    if not sys.stderr.isatty():
        return None

    def report(done: int, total: int) -> None:
        end = "\n" if done == total else ""
        print(f"\r{what}: {done}/{total}", end=end, file=sys.stderr, flush=True)

    return report


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m cka_core", description="CKA and other measures between the layers of two "
                     "representation files.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    compare = commands.add_parser("compare", help="layer x layer heatmap between two files", epilog=EPILOG,
                                  formatter_class=argparse.RawDescriptionHelpFormatter,
                                  description="Layer x layer heatmap between two representation files, with "
                                  "optional bootstrap intervals and permutation p-values per cell.")
    compare.add_argument("a", help="first file (.npy .npz .pt .safetensors .csv)")
    compare.add_argument("b", help="second file, same examples in the same order")
    compare.add_argument("--measure", default="linear_cka", choices=sorted(MEASURES), help="similarity measure")
    compare.add_argument("--debiased", action="store_true", help="unbiased HSIC estimator (linear and RBF CKA)")
    compare.add_argument("--batch-size", type=int, default=None, help="minibatch estimator (Nguyen et al. 2021)")
    compare.add_argument("--sigma", type=float, default=None, help="RBF bandwidth as a multiple of the median distance")
    compare.add_argument("--bootstrap", type=_count, default=None, metavar="N",
                         help="N bootstrap resamples of the examples: a confidence interval per cell")
    compare.add_argument("--confidence", type=_confidence, default=0.95, help="interval level (default 0.95)")
    compare.add_argument("--permutations", type=_count, default=None, metavar="N",
                         help="N shuffles of B's rows: a permutation p-value and null mean/sd per cell")
    compare.add_argument("--seed", type=int, default=0, help="seed of the resampling (default 0)")
    compare.add_argument("--out", type=Path, action="append", default=[], metavar="F",
                         help="write F.csv, F.json or F.png (repeatable); see below")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        for out in args.out:
            if out.suffix.lower() not in (".csv", ".json", ".png"):
                raise RepresentationError(f"--out {out}: unknown output format {out.suffix or '(none)'!r}; "
                                          "use .csv, .json or .png.")
        if args.sigma is not None and args.measure != "rbf_cka":
            raise RepresentationError("--sigma applies to --measure rbf_cka only.")
        layers_a, layers_b = _read(args.a), _read(args.b)
        options = {"debiased": args.debiased, "batch_size": args.batch_size}
        if args.sigma is not None:
            options["sigma"] = args.sigma
        values = similarity_matrix(layers_a, layers_b, measure=args.measure, **options)
        names_a, names_b = list(layers_a), list(layers_b)
        settings = {"measure": args.measure, "debiased": args.debiased, "batch_size": args.batch_size,
                    "n_examples": int(next(iter(layers_a.values())).shape[0]), "file_a": args.a, "file_b": args.b,
                    "seed": args.seed}
        if args.sigma is not None:
            settings["sigma"] = args.sigma
        boot = perm = flagged = None
        if args.bootstrap is not None or args.permutations is not None:
            from .inference import bootstrap, permutation_test

            if args.bootstrap is not None:
                boot = bootstrap(layers_a, layers_b, measure=args.measure, n_resamples=args.bootstrap,
                                 confidence=args.confidence, seed=args.seed, progress=_progress("bootstrap"),
                                 **options)
            if args.permutations is not None:
                perm = permutation_test(layers_a, layers_b, measure=args.measure, n_permutations=args.permutations,
                                        seed=args.seed, progress=_progress("permutations"), **options)
            if boot is not None and perm is not None:
                from .sanity import not_above_null

                flagged = not_above_null(boot.low, boot.high, perm.p_values, perm.null_mean, perm.null_std)
        doc = heatmap_document(values, names_a, names_b, settings, bootstrap=boot, permutation=perm, flagged=flagged)
        print(_table(values, names_a, names_b))
        if boot is not None:
            print(f"\n{boot.confidence:.0%} bootstrap intervals ({boot.n_resamples} resamples):")
            intervals = [[f"[{lo:.3f},{hi:.3f}]" for lo, hi in zip(rl, rh)] for rl, rh in zip(boot.low, boot.high)]
            print(_text_table(intervals, names_a, names_b))
        if perm is not None:
            print(f"\npermutation p-values ({perm.n_permutations} shuffles of B's rows):")
            print(_table(perm.p_values, names_a, names_b))
        for out in args.out:
            _write(out, doc)
    except RepresentationError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"error: {error.strerror or error}: {error.filename or ''}".rstrip(": "), file=sys.stderr)
        return 2
    except MemoryError:
        print("error: out of memory; compare fewer layers, fewer examples, or pass --batch-size.", file=sys.stderr)
        return 2
    return 0


def _text_table(cells: list[list[str]], names_a: list[str], names_b: list[str]) -> str:
    width = max(len(n) for n in names_a)
    size = max(15, *(len(c) for row in cells for c in row))
    header = " " * width + "  " + "  ".join(f"{n[:size]:>{size}}" for n in names_b)
    rows = [f"{a:<{width}}  " + "  ".join(f"{c:>{size}}" for c in row) for a, row in zip(names_a, cells)]
    return "\n".join([header, *rows])

