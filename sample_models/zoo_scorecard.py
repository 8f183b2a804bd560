"""The zoo's scorecard (every measure on ReSi's grounding tests over ``sample_models.groups``), shipped
precomputed so that the "Which measure to trust?" page opens on it at once instead of after 10-20 s
of a worker's time (and 0.4 GB of its memory) on a fresh server.

``python -m sample_models.zoo_scorecard`` computes it and writes ``weights/groups/scorecard.json.gz``:
the card as plain JSON (``Scorecard.to_record``; no pickle) under the descriptor of what it was
computed from. :func:`shipped` returns it only while that descriptor still holds: the same measures
with the same parameters and code (the pair cache's ``measure_key``), the same grounding code
(``cka_core/trust``), the same members' weights (their manifest) and the same bootstrap settings.
Otherwise the caller computes it live (:func:`compute`), so an edit never shows a stale card; the
tests fail until the file is rebuilt.
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from cka_core.trust import FUNCTIONAL, Member, Scorecard, candidate_measures, scorecard
from cka_core.trust.pairs import measure_key

from .groups import GROUPS_DIR, suites

__all__ = ["SCORECARD_PATH", "RESAMPLES", "SEED", "CONFIDENCE", "compute", "descriptor", "shipped", "main"]

SCORECARD_PATH = GROUPS_DIR / "scorecard.json.gz"
#: The settings the app shows the zoo's card with (and the shipped card is computed with).
RESAMPLES, SEED, CONFIDENCE = 500, 0, 0.95
_TRUST_CODE = Path(sys.modules[Scorecard.__module__].__file__).parent


def compute(measures: Sequence[str], n_resamples: int, seed: int, confidence: float, *,
            tests: Sequence[str] | None = None, progress: Callable[[int, int], None] | None = None) -> Scorecard:
    """Every measure of ``measures`` on ``tests`` (default all six) over the zoo's model groups, computed now."""
    groups = {test: [Member(**d) for d in members] for test, members in suites(tests).items()}
    return scorecard(groups, list(measures), n_resamples=n_resamples, seed=seed, confidence=confidence,
                     progress=None if progress is None else lambda done, total, _: progress(done, total))


def _sha256(paths) -> str:
    h = hashlib.sha256()
    for path in paths:
        h.update(path.name.encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:16]


def descriptor(measures: Sequence[str], n_resamples: int, seed: int, confidence: float) -> dict:
    """What a card's numbers depend on: each measure's key (name, parameters, code digest), the output
    differences' keys, the grounding code's and the members' weights' digests, the bootstrap settings."""
    return {"measures": [measure_key(m, {}) for m in measures],
            "functional": [measure_key(m, {}) for m in sorted(FUNCTIONAL)],
            "trust_code": _sha256(sorted(_TRUST_CODE.glob("*.py"))),
            "groups": _sha256([GROUPS_DIR / "manifest.json"]),
            "resamples": n_resamples, "seed": seed, "confidence": confidence}


def shipped(measures: Sequence[str], n_resamples: int, seed: int, confidence: float,
            path: Path = SCORECARD_PATH) -> Scorecard | None:
    """The shipped card when it was computed from exactly this (:func:`descriptor`), else None."""
    try:
        with gzip.open(path, "rt", encoding="utf-8") as f:
            stored = json.load(f)
        if stored["descriptor"] != descriptor(measures, n_resamples, seed, confidence):
            return None
        return Scorecard.from_record(stored["card"])
    except (OSError, ValueError, LookupError, TypeError):  # no file, or not one this module wrote
        return None


def write(card: Scorecard, measures: Sequence[str], n_resamples: int, seed: int, confidence: float,
          path: Path = SCORECARD_PATH) -> None:
    """Write ``card`` under its descriptor; the same card gives the same bytes (no time stamp)."""
    text = json.dumps({"descriptor": descriptor(measures, n_resamples, seed, confidence),
                       "card": card.to_record()}, separators=(",", ":"))
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as f:
        f.write(text.encode("utf-8"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sample_models.zoo_scorecard", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=SCORECARD_PATH, help="file to write")
    args = parser.parse_args(argv)
    import torch
    from threadpoolctl import threadpool_limits

    from cka_core.cli.terminal import counter  # the command's progress line, as `cka trust` prints it

    torch.set_num_threads(1)  # as the app's worker computes it
    measures = candidate_measures()
    with threadpool_limits(1, "blas"):
        card = compute(measures, RESAMPLES, SEED, CONFIDENCE, progress=counter("cells"))
    write(card, measures, RESAMPLES, SEED, CONFIDENCE, args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e3:.0f} kB)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
