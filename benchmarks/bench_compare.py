"""Budgets of the Compare page (issue 5), measured on the sample models.

    python -m benchmarks.bench_compare

* a linear-CKA heatmap of two zoo models on the digits test split, activations captured
  (budget 1 s);
* 200 bootstrap resamples and 200 permutations of a 6 x 6 heatmap, with a progress callback as the
  page uses (budget 10 s).
Run with one torch/BLAS thread, as the app does.
"""
from __future__ import annotations

import statistics
import sys
import time

import torch
from threadpoolctl import threadpool_limits

import sample_models
from cka_core import capture
from cka_core.stats.resampling import bootstrap, permutation_test
from cka_core.measures import similarity_matrix


def layers_of(name: str) -> dict:
    X = sample_models.digits().X_test
    return capture(sample_models.load(name), X, sample_models.layer_names(name))


def timed(fn, repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    torch.set_num_threads(1)
    with threadpool_limits(1, "blas"):
        a_name, b_name = "mlp_deep", "rnn_relu"
        heat = timed(lambda: similarity_matrix(layers_of(a_name), layers_of(b_name)))
        a = layers_of(a_name)
        b = dict(list(layers_of(b_name).items())[-6:])
        ticks = []
        boot = timed(lambda: bootstrap(a, b, n_resamples=200, progress=lambda done, total: ticks.append(done)), 2)
        perm = timed(lambda: permutation_test(a, b, n_permutations=200), 2)
    print("| what | median time | budget |\n|---|---|---|")
    print(f"| heatmap {a_name} x {b_name} (capture + linear CKA, {len(a)} x {len(layers_of(b_name))}) | {heat:.3f} s | 1 s |")
    print(f"| 200 bootstrap resamples, {len(a)} x {len(b)} | {boot:.2f} s | 10 s |")
    print(f"| 200 permutations, {len(a)} x {len(b)} | {perm:.2f} s | 10 s |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
