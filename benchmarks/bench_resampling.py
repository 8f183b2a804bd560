"""Bootstrap intervals and permutation p-values for every measure, on the Compare page's default
4 x 4 heatmap (mlp_seed0 against mlp_seed1, 359 test digits), one thread as in the app.

    python -m benchmarks.bench_resampling [--resamples 200] [--before 20] [--out benchmarks/results/resampling.md]

* **after**: ``cka_core.stats.resampling.bootstrap`` + ``permutation_test`` as they are: per-layer work
  once per resample (bases, distances, kernels), reordered rather than recomputed per permutation.
* **before**: the previous algorithm, every cell recomputed from the resampled (or shuffled) arrays
  pair by pair (``similarity`` per cell), timed on ``--before`` resamples of each kind and scaled to
  ``--resamples`` (it takes minutes per measure); its matrices are compared with the new ones for
  the same seeds: the largest difference is the round-off between the two algorithms.

Budget: 200 bootstraps + 200 permutations in <= 10 s for every measure.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from threadpoolctl import threadpool_limits

import sample_models
from cka_core import MEASURES, capture, similarity
from cka_core.stats.resampling import bootstrap, permutation_test
from cka_core.measures import LINEAR_CKA

ROOT = Path(__file__).resolve().parents[1]
BUDGET_S = 10.0


def layers_of(name: str) -> list[np.ndarray]:
    acts = capture(sample_models.load(name), sample_models.digits().X_test, sample_models.layer_names(name))
    return [v.reshape(v.shape[0], -1).astype(np.float64) for v in acts.values()]


def old_matrix(a, b, measure: str) -> np.ndarray:
    """The previous similarity_matrix for a non-linear measure: every pair from scratch."""
    return np.array([[similarity(x, y, measure) for y in b] for x in a])


def old_resampling(a, b, measure: str, count: int, seed: int = 0) -> tuple[float, np.ndarray, np.ndarray]:
    """(seconds, bootstrap matrices, null matrices) of the previous algorithm, same random draws."""
    n = a[0].shape[0]
    start = time.perf_counter()
    rng = np.random.default_rng(seed)
    boots = np.array([old_matrix([x[i] for x in a], [y[i] for y in b], measure)
                      for i in (rng.integers(0, n, size=n) for _ in range(count))])
    rng = np.random.default_rng(seed)
    nulls = np.array([old_matrix(a, [y[p] for y in b], measure) for p in (rng.permutation(n) for _ in range(count))])
    return time.perf_counter() - start, boots, nulls


def new_resampling(a, b, measure: str, count: int, seed: int = 0) -> tuple[float, np.ndarray, np.ndarray]:
    """(seconds, bootstrap matrices, null matrices) of the current algorithm."""
    boots, nulls = [], []
    start = time.perf_counter()
    bootstrap(a, b, measure=measure, n_resamples=count, seed=seed, progress=None)
    permutation_test(a, b, measure=measure, n_permutations=count, seed=seed)
    seconds = time.perf_counter() - start
    # the matrices themselves, for the comparison (not timed): the same draws through the same code paths
    from cka_core.stats.resampling import _matrices, _null_matrices

    _, resampled = _matrices(a, b, measure, {})
    _, shuffled = _null_matrices(a, b, measure, {})
    rng = np.random.default_rng(seed)
    n = a[0].shape[0]
    for _ in range(count):
        boots.append(resampled(rng.integers(0, n, size=n)))
    rng = np.random.default_rng(seed)
    for _ in range(count):
        nulls.append(shuffled(rng.permutation(n)))
    return seconds, np.array(boots), np.array(nulls)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resamples", type=int, default=200)
    parser.add_argument("--before", type=int, default=20, help="resamples of each kind timed for the old path")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "resampling.md")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    lines = [f"# Resampling every measure: {args.resamples} bootstraps + {args.resamples} permutations",
             "", "mlp_seed0 × mlp_seed1 (4 × 4 layers, 359 test digits), one thread. 'before' is timed on "
             f"{args.before} + {args.before} resamples and scaled ×{args.resamples / args.before:g}; 'max |Δ|' compares "
             f"the first {args.before} bootstrap and null matrices of both algorithms (same seeds).", "",
             "| measure | before (scaled) | after | speed-up | budget ≤ 10 s | max \\|Δ\\| before vs after |",
             "|---|---|---|---|---|---|"]
    with threadpool_limits(1, "blas"):
        a, b = layers_of("mlp_seed0"), layers_of("mlp_seed1")
        for measure in [m for m, info in MEASURES.items() if not info.on_outputs]:  # hidden layers: no output measures
            print(measure, "…", file=sys.stderr, flush=True)
            after, boots, nulls = new_resampling(a, b, measure, args.resamples)
            if measure in LINEAR_CKA:
                lines.append(f"| {MEASURES[measure].label} | (unchanged: cka_matrix) | {after:.2f} s | — | "
                             f"{'met' if after <= BUDGET_S else 'NOT met'} | — |")
                continue
            before, old_boots, old_nulls = old_resampling(a, b, measure, args.before)
            before *= args.resamples / args.before
            delta = max(np.abs(old_boots - boots[: args.before]).max(), np.abs(old_nulls - nulls[: args.before]).max())
            lines.append(f"| {MEASURES[measure].label} | {before:.1f} s | {after:.2f} s | {before / after:.0f}× | "
                         f"{'met' if after <= BUDGET_S else 'NOT met'} | {delta:.1e} |")
    text = "\n".join(lines) + "\n"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
