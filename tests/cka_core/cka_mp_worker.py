"""Worker for the cross-process merge test (imported by spawned processes; no tests here)."""
import numpy as np

import cka_core


def fill_accumulator(shard_a, shard_b, debiased, batch_size, chunk):
    """Build an accumulator from one shard, updating `chunk` rows at a time, and return it
    (pickled back to the parent)."""
    acc = cka_core.CKAAccumulator(debiased=debiased, batch_size=batch_size)
    n = shard_a[0].shape[0]
    for start in range(0, n, chunk):
        a = [np.ascontiguousarray(x[start:start + chunk]) for x in shard_a]
        b = None if shard_b is None else [np.ascontiguousarray(y[start:start + chunk]) for y in shard_b]
        acc.update(a, b)
    return acc
