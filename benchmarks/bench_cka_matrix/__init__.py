"""Speed and accuracy of ``cka_core.cka_matrix`` against the peer libraries.

    python -m benchmarks.bench_cka_matrix              # full run (a few minutes on 2 idle cores)
    python -m benchmarks.bench_cka_matrix --quick      # smoke run, < 30 s on an idle machine
    python -m benchmarks.bench_cka_matrix --append     # add this run to the results file
    python -m benchmarks.bench_cka_matrix --profile    # also a cProfile of cka_core per regime
    python -m benchmarks.bench_cka_matrix --threads 1  # 1 thread: CPU time = work, robust to other load

All libraries get the SAME float32 activations (L layers of n examples) and compute the
L x L self-comparison heatmap with the debiased (unbiased-HSIC, Song et al. 2012) linear CKA
over all n examples at once:

* ours        ``cka_core.cka_matrix(layers, debiased=True)``;
* pytorch-cka ``cka.cka_from_features(layers, layers)`` (1.1.3), and its ``compute_cka`` on a
  tiny model that replays the activations, one batch of all n rows (its fastest path for a
  self-comparison: one Gram per layer, ``hsic_cross``);
* torch-cka   AntixK ``torch_cka.CKA(...).compare(loader)`` (0.21) on the same replaying model,
  one batch of all n rows (its minibatch-unbiased estimator with one batch is the full-data one).

Timing hygiene (benchmarks/README.md): torch threads fixed (2), warm-up, runs of the methods
alternate in one process (the order rotates every round), medians are reported, the activations
are precomputed (no forward pass of a real network is timed). Accuracy is the max |error| over
all L x L cells against an independent float64 numpy implementation of Song et al.'s formula.

The package, one concept a module: ``activations`` (the regimes and their data), ``reference``
(the float64 reference), ``methods`` (ours and the peers' entry points, with their adapters),
``measure`` (timing and accuracy in one regime), ``report`` and ``__main__`` (the command line).
"""
