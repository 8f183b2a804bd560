"""Command line: ``cka compare A B [options]`` (or ``python -m cka_core compare ...``); ``--help`` lists the options.

The files it writes come from :mod:`cka_core.io.export`, shared with the app's Compare page."""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

from ..errors import RepresentationError
from ..io.export import check_outputs, heatmap_document, write
from ..stats.corrections import adjusted_p_values, P_ADJUSTMENTS, smallest_adjusted_p
from ..stats.resampling import bootstrap, permutation_test
from ..io.weights import activation_layers
from ..io.representations import load_representations
from ..measures.registry import MEASURES, similarity_matrix
from ..models.reduction import REDUCTIONS
from ..stats.sanity import not_above_null
from ..io.streaming import open_layers, shard_paths, streamed_cka_matrix
from . import trust
from .terminal import counter, error_exit, rate, text_table, value_table

MAX_RESAMPLES = 100_000
STREAM_BYTES = 512 * 2**20

EPILOG = """\
outputs (--out may be given several times; the suffix picks the format):
  F.csv   the matrix: header row "layer,<layers of B>", then one row per layer of A; beside it
          F.settings.json holds every setting. With --bootstrap and/or --permutations, F.cells.csv
          too: one row per cell with the columns layer_a,layer_b,value,ci_low,ci_high,p_value,
          p_adjusted,null_mean,null_sd,not_above_null (columns of a test that was not run, or of no
          --p-adjust, are left empty).
          Plain CSV with one header line: pandas.read_csv reads each as is.
  F.json  {"layers_a", "layers_b", "values", the settings, and with inference "ci_low", "ci_high",
          "p_values", "p_values_adjusted", "null_mean", "null_sd", "not_above_null" (L_a x L_b) plus
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
  cka compare a.npz b.npz --measure deconfounded_cka --confounder inputs.npy --out heat.json
"""


# --------------------------------------------------------------------------- command line
class _Parser(argparse.ArgumentParser):
    """Usage errors as one line on stderr (no usage dump), exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"error: {message} (run with --help for the options)\n")


def _read(path: str) -> dict[str, np.ndarray]:
    file = Path(path)
    if file.is_dir() or "," in path or any(ch in path for ch in "*?["):
        raise RepresentationError(f"{path}: directories and shards are read in row blocks, for linear CKA without "
                                  "resampling (--stream); load one file to use the other options.")
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


def _program() -> str:
    """How the user started the command line: the ``cka`` console script or ``python -m cka_core``."""
    return "cka" if Path(sys.argv[0]).name == "cka" else "python -m cka_core"


def _flag_parameters() -> dict:
    """Each parameter name declared in the registry, with its first declaration (its flag's help)."""
    out = {}
    for info in MEASURES.values():
        for parameter in info.parameters:
            out.setdefault(parameter.name, parameter)
    return out


def _measures_taking(name: str) -> list[str]:
    return [m for m, info in MEASURES.items() if any(p.name == name for p in info.parameters)]


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=_program(), description="CKA and other measures between the layers of two "
                     "representation files.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    compare = commands.add_parser("compare", help="layer x layer heatmap between two files", epilog=EPILOG,
                                  formatter_class=argparse.RawDescriptionHelpFormatter,
                                  description="Layer x layer heatmap between two representation files, with "
                                  "optional bootstrap intervals and permutation p-values per cell.")
    compare.add_argument("a", nargs="?", help="first file (.npy .npz .pt .safetensors .csv), a directory of .npy, "
                                             "or shards: a,b,c or a glob such as 'acts_a_*.npz'")
    compare.add_argument("b", nargs="?", help="second file(s), same examples in the same order")
    compare.add_argument("--stream", action="store_true",
                         help="read the files in row blocks (memory: the statistics plus one block); automatic "
                              f"for linear CKA on files over {STREAM_BYTES // 2**20} MB")
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
    for name, parameter in _flag_parameters().items():  # one flag per parameter declared in the registry
        compare.add_argument(f"--{name.replace('_', '-')}", dest=name, type=type(parameter.default), default=None,
                             choices=parameter.choices or None, help=parameter.flag_help)
    compare.add_argument("--confounder", default=None, metavar="C",
                         help="what --measure deconfounded_cka regresses out: a file holding one (n, ...) array of "
                              "the inputs, or a:LAYER (a layer of the first side, e.g. a:embeddings, then left out of "
                              "the heatmap); with --model "
                              "the default is the inputs themselves (arrays or images)")
    compare.add_argument("--bootstrap", type=_count, default=None, metavar="N",
                         help="N bootstrap resamples of the examples: a confidence interval per cell")
    compare.add_argument("--confidence", type=_confidence, default=0.95, help="interval level (default 0.95)")
    compare.add_argument("--permutations", type=_count, default=None, metavar="N",
                         help="N shuffles of B's rows: a permutation p-value and null mean/sd per cell")
    compare.add_argument("--p-adjust", default="none", choices=list(P_ADJUSTMENTS),
                         help="correct the p-values for testing every cell at once: holm (family-wise error) or bh "
                              "(Benjamini-Hochberg, false discovery rate); default none")
    compare.add_argument("--seed", type=int, default=0, help="seed of the resampling (default 0)")
    compare.add_argument("--out", type=Path, action="append", default=[], metavar="F",
                         help="write F.csv, F.json or F.png (repeatable); see below")
    trust.add_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "trust":
        return trust.run(args)
    try:
        check_outputs(args.out)
        parameters = {name: getattr(args, name) for name in _flag_parameters() if getattr(args, name) is not None}
        for name in parameters:
            measures = _measures_taking(name)
            if args.measure not in measures:
                raise RepresentationError(f"--{name.replace('_', '-')} applies to --measure {' or '.join(measures)} "
                                          "only.")
        if MEASURES[args.measure].needs_labels:
            raise RepresentationError(f"--measure {args.measure} needs the examples' true classes, which compare does "
                                      f"not take; call cka_core.measures.{args.measure}(X, Y, labels=...) instead.")
        deconfounded = MEASURES[args.measure].needs_inputs
        if args.confounder and not deconfounded:
            raise RepresentationError("--confounder applies to --measure deconfounded_cka only.")
        examples = None
        if args.model:
            layers_a, layers_b, described, examples = _run_models(args)
        elif args.a and args.b:
            if args.inputs or args.pool or args.layers or args.tokenizer:
                raise RepresentationError("--inputs, --pool, --layers and --tokenizer go with --model.")
            if _streams(args):
                return _compare_streamed(args)
            layers_a, layers_b, described = _read(args.a), _read(args.b), {"file_a": args.a, "file_b": args.b}
        else:
            raise RepresentationError("give two files of activations (compare A B) or two models (--model A "
                                      "--model B --inputs X).")
        _check_outputs(args.measure, layers_a, layers_b)
        # Only the options given: the view-level measures take no debiased or batch_size keyword.
        options = {**({"debiased": True} if args.debiased else {}),
                   **({"batch_size": args.batch_size} if args.batch_size is not None else {}), **parameters}
        if deconfounded:
            options["inputs"], described["confounder"] = _confounder(args.confounder, layers_a, examples)
        values = similarity_matrix(layers_a, layers_b, measure=args.measure, **options)
        names_a, names_b = list(layers_a), list(layers_b)
        settings = {"measure": args.measure, "debiased": args.debiased, "batch_size": args.batch_size,
                    "n_examples": int(next(iter(layers_a.values())).shape[0]), **described, "seed": args.seed}
        settings.update(parameters)
        boot = perm = flagged = None
        if args.bootstrap is not None:
            boot = bootstrap(layers_a, layers_b, measure=args.measure, n_resamples=args.bootstrap,
                             confidence=args.confidence, seed=args.seed, progress=counter("bootstrap"), **options)
        if args.permutations is not None:
            perm = permutation_test(layers_a, layers_b, measure=args.measure, n_permutations=args.permutations,
                                    seed=args.seed, progress=counter("permutations"), **options)
        if boot is not None and perm is not None:
            flagged = not_above_null(boot.low, boot.high, adjusted_p_values(perm.p_values, args.p_adjust),
                                     perm.null_mean, perm.null_std)
        doc = heatmap_document(values, names_a, names_b, settings, bootstrap=boot, permutation=perm, flagged=flagged,
                               p_adjustment=args.p_adjust)
        print(value_table(values, names_a, names_b))
        if boot is not None:
            print(f"\n{boot.confidence:.0%} bootstrap intervals ({boot.n_resamples} resamples):")
            intervals = [[f"[{lo:.3f},{hi:.3f}]" for lo, hi in zip(rl, rh)] for rl, rh in zip(boot.low, boot.high)]
            print(text_table(intervals, names_a, names_b))
        if perm is not None:
            print(f"\npermutation p-values ({perm.n_permutations} shuffles of B's rows):")
            print(value_table(perm.p_values, names_a, names_b))
            if args.p_adjust != "none":
                print(f"\nadjusted p-values, {P_ADJUSTMENTS[args.p_adjust]}:")
                print(value_table(adjusted_p_values(perm.p_values, args.p_adjust), names_a, names_b))
                floor = smallest_adjusted_p(perm.n_permutations, perm.p_values.size, args.p_adjust)
                if floor > 0.05:
                    print(f"note: with {perm.n_permutations} permutations no adjusted p-value can go below {floor:.3f}; "
                          f"use at least {math.ceil(perm.p_values.size / 0.05) - 1} for any cell to pass 0.05.")
        for out in args.out:
            write(out, doc)
    except (RepresentationError, OSError) as error:
        return error_exit(error)
    except MemoryError:
        print("error: out of memory; compare fewer layers, fewer examples, or pass --batch-size.", file=sys.stderr)
        return 2
    return 0


def _check_outputs(measure: str, layers_a: dict, layers_b: dict) -> None:
    """A measure on class outputs (``on_outputs``) compares each side's logits, one (n, classes) array
    of equal width, not every pair of hidden layers."""
    if not MEASURES[measure].on_outputs:
        return
    widths = [a.shape[1:] for a in (*layers_a.values(), *layers_b.values())]
    if len(layers_a) != 1 or len(layers_b) != 1 or widths[0] != widths[1]:
        raise RepresentationError(f"--measure {measure} compares two networks' class outputs, not layers: give one "
                                  f"(n, classes) array of logits per side, of equal width (here {len(layers_a)} and "
                                  f"{len(layers_b)} layers; with --model, --layers naming the output layer).")


def _confounder(spec: str | None, layers_a: dict, examples) -> tuple[np.ndarray, str]:
    """(what deconfounded CKA regresses out, how the export names it), from --confounder: a:LAYER,
    a file of one array, or (no --confounder, with --model) the inputs the models read."""
    if spec is None:
        if examples is None:
            raise RepresentationError("--measure deconfounded_cka needs --confounder: a file holding the inputs both "
                                      "files were computed from (one array, same rows), or a:LAYER for a layer of A.")
        return examples.as_matrix(), f"the inputs ({examples.source})"
    if spec.startswith("a:"):
        layer = spec[2:]
        if layer not in layers_a:
            raise RepresentationError(f"--confounder {spec}: A has no layer {layer!r}; its layers are "
                                      f"{', '.join(layers_a)}.")
        # The layer itself is then fully explained: its row of the heatmap would be undefined.
        return layers_a.pop(layer), f"layer {layer} of A (left out of the heatmap)"
    arrays = _read(spec)
    if len(arrays) != 1:
        raise RepresentationError(f"--confounder {spec} holds {len(arrays)} arrays ({', '.join(arrays)}); save the "
                                  "inputs alone, as one array (.npy), or name a layer of A with a:LAYER.")
    return next(iter(arrays.values())), f"file {spec}"


def _streams(args) -> bool:
    """Whether to read the two sides in row blocks: asked for, or linear CKA (no resampling) on
    streamable files over STREAM_BYTES together."""
    linear = args.measure in ("linear_cka", "linear_cka_debiased")
    if args.stream:
        if not linear or args.bootstrap or args.permutations:
            raise RepresentationError("--stream computes linear CKA in one pass; bootstrap, permutations and the other "
                                      "measures need the data in memory.")
        return True
    if not linear or args.bootstrap or args.permutations:
        return False
    paths = [p for spec in (args.a, args.b) for p in shard_paths(spec)]
    streamable = all(p.is_dir() or p.suffix.lower() in (".npy", ".npz", ".safetensors") for p in paths)
    size = sum(_size(p) for p in paths)
    return streamable and (size > STREAM_BYTES or any(p.is_dir() for p in paths) or len(paths) > 2)


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(f.stat().st_size for f in path.glob("*.npy"))
    return path.stat().st_size if path.is_file() else 0


def _compare_streamed(args) -> int:
    a, b = open_layers(args.a), open_layers(args.b)
    debiased = args.debiased or args.measure == "linear_cka_debiased"
    values = streamed_cka_matrix(a, b, debiased=debiased, batch_size=args.batch_size,
                                 progress=rate("reading both sides"))
    settings = {"measure": args.measure, "debiased": debiased, "batch_size": args.batch_size, "n_examples": a.rows,
                "file_a": args.a, "file_b": args.b, "streamed": True,
                "shards_a": len(a.shards), "shards_b": len(b.shards), "seed": args.seed}
    doc = heatmap_document(values, list(a.names), list(b.names), settings)
    print(value_table(values, list(a.names), list(b.names)))
    for out in args.out:
        write(out, doc)
    return 0


def _run_models(args) -> tuple[dict, dict, dict, object]:
    """Load both models, run them on the inputs, reduce their layers: (layers A, layers B, what the
    export records about models, inputs and reduction, the inputs)."""
    from .. import models

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
        # In a worker process with the host's caps (cka_core.io.caps): a model file may come from anyone.
        model = models.load_model(source, tokenizer=tokenizer, allow_hub=args.allow_hub, isolated=True)
        try:
            layers = tuple(args.layers.split(",")) if args.layers else model.default_layers
            how = args.pool or models.default_reduction(model, layers)
            reps = models.represent(model, examples, layers, how, progress=rate(f"{model.name} ({model.format})"))
        finally:
            model.close()
        loaded.append(model)
        reduced.append(reps)
    if not np.array_equal(reduced[0].example_of_row, reduced[1].example_of_row):
        raise RepresentationError(f"with --pool {reduced[0].reduction} the two models give different rows (their "
                                  "tokenizers split the texts differently); use mean, first or last.")
    described = {"model_a": loaded[0].describe(), "model_b": loaded[1].describe(),
                 "inputs": {"source": examples.source, "kind": examples.kind, "n_examples": len(examples),
                            "sha256": examples.digest},
                 "reduction": reduced[0].reduction, "rows": int(reduced[0].example_of_row.size)}
    return reduced[0].layers, reduced[1].layers, described, examples
