"""``cka trust``: ReSi's grounding tests on the zoo's model groups (``sample_models.groups``), every
measure of the registry scored with a model-bootstrap interval (:mod:`cka_core.trust`). With every
test, measure and the default resamples and seed, the shipped card (``sample_models.zoo_scorecard``,
computed from this very code and these weights) is printed at once.

Pair values are kept between runs in a JSON cache (``$XDG_CACHE_HOME/cka_core/trust_pairs.json``,
``--no-cache`` to skip it), keyed by digests of the representations and the measure."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ..errors import RepresentationError
from ..trust import PAIR_CACHE, TESTS, candidate_measures, check_names
from .terminal import counter, error_exit

EPILOG = """\
outputs:
  --json F   {"tests": {test: {measure: {"score": x, "ci": [lo, hi]}}}}; a measure that failed on the test
             has "score": null, "ci": null and its "error"
  --csv F    one row per test, measure and statistic: test,measure,statistic,score,ci_low,ci_high,error

examples:
  cka trust
  cka trust --tests label_randomization,layer_monotonicity --measures linear_cka,rsa --json trust.json
"""


def _names(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def add_parser(commands) -> None:
    """The ``trust`` subcommand, on the ``cka`` parser's subparsers."""
    trust = commands.add_parser("trust", help="which measure to trust: ReSi's grounding tests on the zoo",
                                epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
                                description="Score every measure on ReSi's six grounding tests (Klabunde et al., "
                                "ICLR 2025), on groups of small MLPs trained on the digits, with bootstrap "
                                "intervals over models.")
    trust.add_argument("--tests", type=_names, default=None, metavar="NAMES",
                       help=f"comma-separated tests (default all: {', '.join(TESTS)})")
    trust.add_argument("--measures", type=_names, default=None, metavar="NAMES",
                       help="comma-separated measures (default: every measure of representations in the registry)")
    trust.add_argument("--resamples", type=int, default=500, help="bootstrap resamples of the models (default 500)")
    trust.add_argument("--seed", type=int, default=0, help="seed of the bootstrap (default 0)")
    trust.add_argument("--json", type=Path, metavar="FILE", help="write the scorecard as JSON")
    trust.add_argument("--csv", type=Path, metavar="FILE", help="write the scorecard as CSV")
    trust.add_argument("--no-cache", action="store_true", help="neither read nor write the pair-value cache")


def cache_path() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "cka_core" / "trust_pairs.json"


def _table(card) -> str:
    width = max(len(m) for m in card.measures)
    cols = card.tests
    size = max(22, *(len(t) for t in cols))
    lines = [" " * width + "  " + "  ".join(f"{t:>{size}}" for t in cols)]
    for m in card.measures:
        cells = []
        for t in cols:
            c = card.cell(t, m)
            cells.append("failed" if c.error else f"{c.score:.3f} [{c.ci[0]:.2f},{c.ci[1]:.2f}]")
        lines.append(f"{m:<{width}}  " + "  ".join(f"{c:>{size}}" for c in cells))
    return "\n".join(lines)


def _one_thread(work):
    """``work()`` on one torch and one BLAS thread: the pairs are small (hundreds of rows), so more
    threads only contend, many times slower on a shared machine (threadpoolctl comes with
    scikit-learn, which the zoo's digits need)."""
    import torch
    from threadpoolctl import threadpool_limits

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(1, "blas"):
            return work()
    finally:
        torch.set_num_threads(threads)


def _shipped(tests, measures, resamples: int, seed: int):
    """The zoo's shipped card (``sample_models.zoo_scorecard``) when it is exactly what was asked for:
    every test, and measures, code, weights and bootstrap settings as it was computed with."""
    from sample_models import zoo_scorecard  # the zoo, only here: cka_core.trust takes plain arrays

    if list(tests) != list(TESTS):
        return None
    return zoo_scorecard.shipped(measures, resamples, seed, zoo_scorecard.CONFIDENCE)


def _computed(tests, measures, resamples: int, seed: int, path: Path | None):
    """The card computed now on the zoo's groups, reading and writing the pair cache at ``path``."""
    from sample_models import zoo_scorecard  # the zoo, only here: cka_core.trust takes plain arrays

    if sys.stderr.isatty():
        print("loading the model groups ...", file=sys.stderr, flush=True)
    if path is not None:
        PAIR_CACHE.load(path)
    card = _one_thread(lambda: zoo_scorecard.compute(measures, resamples, seed, zoo_scorecard.CONFIDENCE, tests=tests,
                                                     progress=counter("trust")))
    if path is not None:
        PAIR_CACHE.save(path)
    return card


def run(args) -> int:
    """Run ``cka trust`` on parsed arguments; errors are one line on stderr and exit status 2."""
    try:
        tests = args.tests or list(TESTS)
        measures = args.measures or candidate_measures()
        check_names(tests, measures)
        if args.resamples < 1:
            raise RepresentationError(f"--resamples must be at least 1, got {args.resamples}.")
        card = _shipped(tests, measures, args.resamples, args.seed)
        if card is None:
            card = _computed(tests, measures, args.resamples, args.seed, None if args.no_cache else cache_path())
        print(_table(card))
        failed = [f"{c.test} / {c.measure}: {c.error}" for row in card.cells.values() for c in row.values() if c.error]
        for line in failed:
            print(f"failed: {line}")
        if args.json is not None:
            args.json.write_text(card.to_json() + "\n")
        if args.csv is not None:
            args.csv.write_text(card.to_csv())
    except (RepresentationError, OSError) as error:
        return error_exit(error)
    return 0
