"""Command line: ``cka compare A B [options]`` (or ``python -m cka_core compare ...``); ``--help`` lists the options.

The files it writes come from :mod:`cka_core.export`, shared with the app's Compare page."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from .errors import RepresentationError
from .export import FORMATS, heatmap_document, write
from .io import activation_layers, load_representations
from .measures import MEASURES, similarity_matrix
from .models.reduction import REDUCTIONS

MAX_RESAMPLES = 100_000

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

models (instead of two files of activations):
  --model A --model B   two models: a Hugging Face directory (save_pretrained) or a .zip of one, a .onnx
                        or a .pt2 (torch.export.save) file; nothing in them is executed as code
  --inputs X            what both models read, in the same order: .txt/.csv (one text per line), images
                        (.png/.jpg, a folder or .zip of them), .npy/.npz (arrays named as the model's
                        inputs), or builtin:sentences[:N] (the project's own N English sentences)
  --pool R              how a layer becomes rows: mean, first, last, tokens (token sequences);
                        avg_pool, flatten, positions (feature maps). Default: mean / avg_pool.
  --layers L1,L2        layers of each model (default: its blocks); names as listed on error
  --tokenizer F         a tokenizer.json for an ONNX or .pt2 language model (once per model, in order)

examples:
  cka compare a.npz b.npz --out heat.csv --out heat.png
  cka compare a.npz b.npz --debiased --bootstrap 200 --permutations 200 --out heat.json
  cka compare --model runs/bert_a --model runs/bert_b --inputs builtin:sentences --pool mean --debiased
"""


# --------------------------------------------------------------------------- command line
class _Parser(argparse.ArgumentParser):
    """Usage errors as one line on stderr (no usage dump), exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"error: {message} (run with --help for the options)\n")


def _read(path: str) -> dict[str, np.ndarray]:
    file = Path(path)
    if not file.is_file():
        raise RepresentationError(f"{path}: no such file.")
    return activation_layers(load_representations(file.read_bytes(), file.name), file.name)


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


def _table(values: np.ndarray, names_a: list[str], names_b: list[str]) -> str:
    width = max(len(n) for n in names_a)
    size = min(24, max(10, *(len(n) for n in names_b)))
    header = " " * width + "  " + "  ".join(f"{n[-size:]:>{size}}" for n in names_b)
    rows = [f"{a:<{width}}  " + "  ".join(f"{v:>{size}.4f}" for v in row) for a, row in zip(names_a, values)]
    return "\n".join([header, *rows])


def _progress(what: str):
    """A one-line progress counter on stderr when it is a terminal (silent in pipes and tests)."""
    if not sys.stderr.isatty():
        return None

    def report(done: int, total: int) -> None:
        end = "\n" if done == total else ""
        print(f"\r{what}: {done}/{total}", end=end, file=sys.stderr, flush=True)

    return report


def _program() -> str:
    """How the user started the command line: the ``cka`` console script or ``python -m cka_core``."""
    return "cka" if Path(sys.argv[0]).name == "cka" else "python -m cka_core"


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=_program(), description="CKA and other measures between the layers of two "
                     "representation files.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    compare = commands.add_parser("compare", help="layer x layer heatmap between two files", epilog=EPILOG,
                                  formatter_class=argparse.RawDescriptionHelpFormatter,
                                  description="Layer x layer heatmap between two representation files, with "
                                  "optional bootstrap intervals and permutation p-values per cell.")
    compare.add_argument("a", nargs="?", help="first file (.npy .npz .pt .safetensors .csv)")
    compare.add_argument("b", nargs="?", help="second file, same examples in the same order")
    compare.add_argument("--model", action="append", default=[], metavar="M", help="a model (twice); see below")
    compare.add_argument("--inputs", metavar="X", help="the examples both models read; see below")
    compare.add_argument("--pool", default=None, choices=sorted(REDUCTIONS), help="how a layer becomes rows")
    compare.add_argument("--layers", default=None, metavar="L1,L2", help="the layers of each model")
    compare.add_argument("--tokenizer", action="append", default=[], metavar="F", type=Path,
                         help="tokenizer.json of an ONNX or .pt2 language model")
    compare.add_argument("--allow-hub", action="store_true", help="let --model name a Hugging Face Hub id")
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
            if out.suffix.lower() not in FORMATS:
                raise RepresentationError(f"--out {out}: unknown output format {out.suffix or '(none)'!r}; "
                                          "use .csv, .json or .png.")
        if args.sigma is not None and args.measure != "rbf_cka":
            raise RepresentationError("--sigma applies to --measure rbf_cka only.")
        if args.model:
            layers_a, layers_b, described = _run_models(args)
        elif args.a and args.b:
            if args.inputs or args.pool or args.layers or args.tokenizer:
                raise RepresentationError("--inputs, --pool, --layers and --tokenizer go with --model.")
            layers_a, layers_b, described = _read(args.a), _read(args.b), {"file_a": args.a, "file_b": args.b}
        else:
            raise RepresentationError("give two files of activations (compare A B) or two models (--model A "
                                      "--model B --inputs X).")
        options = {"debiased": args.debiased, "batch_size": args.batch_size}
        if args.sigma is not None:
            options["sigma"] = args.sigma
        values = similarity_matrix(layers_a, layers_b, measure=args.measure, **options)
        names_a, names_b = list(layers_a), list(layers_b)
        settings = {"measure": args.measure, "debiased": args.debiased, "batch_size": args.batch_size,
                    "n_examples": int(next(iter(layers_a.values())).shape[0]), **described, "seed": args.seed}
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
            write(out, doc)
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


def _run_models(args) -> tuple[dict, dict, dict]:
    """Load both models, run them on the inputs, reduce their layers: (layers A, layers B, what the
    export records about models, inputs and reduction)."""
    from . import models

    if len(args.model) != 2:
        raise RepresentationError(f"--model takes two models (got {len(args.model)}): --model A --model B.")
    if args.a or args.b:
        raise RepresentationError("give either two files of activations or two --model, not both.")
    if not args.inputs:
        raise RepresentationError("--inputs is needed with --model: the examples both models read, e.g. "
                                  "--inputs builtin:sentences or --inputs images/.")
    if len(args.tokenizer) > 2:
        raise RepresentationError("--tokenizer is given once per model at most.")
    tokenizers = [path.read_bytes() for path in args.tokenizer] + [None, None]
    examples = models.read_inputs(args.inputs)
    loaded, reduced = [], []
    for source, tokenizer in zip(args.model, tokenizers):
        model = models.load_model(source, tokenizer=tokenizer, allow_hub=args.allow_hub)
        layers = tuple(args.layers.split(",")) if args.layers else model.default_layers
        how = args.pool or models.default_reduction(model, layers)
        reps = models.represent(model, examples, layers, how, progress=_rate(f"{model.name} ({model.format})"))
        loaded.append(model)
        reduced.append(reps)
    if not np.array_equal(reduced[0].example_of_row, reduced[1].example_of_row):
        raise RepresentationError(f"with --pool {reduced[0].reduction} the two models give different rows (their "
                                  "tokenizers split the texts differently); use mean, first or last.")
    described = {"model_a": loaded[0].describe(), "model_b": loaded[1].describe(),
                 "inputs": {"source": examples.source, "kind": examples.kind, "n_examples": len(examples),
                            "sha256": examples.digest},
                 "reduction": reduced[0].reduction, "rows": int(reduced[0].example_of_row.size)}
    return reduced[0].layers, reduced[1].layers, described


def _rate(what: str):
    """Progress of a forward pass on stderr when it is a terminal: examples, rate, time left."""
    if not sys.stderr.isatty():
        return None

    def report(done: int, total: int, seconds: float) -> None:
        rate = done / seconds if seconds > 0 else 0.0
        left = (total - done) / rate if rate > 0 else 0.0
        end = "\n" if done == total else ""
        print(f"\r{what}: {done}/{total} examples, {rate:.0f}/s, {left:.0f} s left   ", end=end, file=sys.stderr,
              flush=True)

    return report


def _text_table(cells: list[list[str]], names_a: list[str], names_b: list[str]) -> str:
    width = max(len(n) for n in names_a)
    size = max(15, *(len(c) for row in cells for c in row))
    header = " " * width + "  " + "  ".join(f"{n[:size]:>{size}}" for n in names_b)
    rows = [f"{a:<{width}}  " + "  ".join(f"{c:>{size}}" for c in row) for a, row in zip(names_a, cells)]
    return "\n".join([header, *rows])

