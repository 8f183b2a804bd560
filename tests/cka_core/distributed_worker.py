"""One rank of the multi-process tests (started by tests/cka_core/test_distributed.py with the
environment torchrun would set; no tests here).

    python -m tests.cka_core.distributed_worker estimators DATA.npz OUT_DIR 300,0,700
    python -m tests.cka_core.distributed_worker stuck|crash DATA.npz OUT_DIR 500,500
"""
import datetime
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch.distributed as dist

from cka_core import CKAAccumulator
from cka_core.cka.distributed import RankFailure, all_reduce_accumulator

# (name, debiased, batch_size, self-comparison)
SETTINGS = [("biased", False, None, False), ("debiased", True, None, False), ("minibatch_biased", False, 32, False),
            ("minibatch_debiased", True, 32, False), ("self_debiased", True, None, True)]


def my_rows(data, counts: list[int], rank: int):
    start = sum(counts[:rank])
    a = {k: data[k][start : start + counts[rank]] for k in data.files if k.startswith("a")}
    b = {k: data[k][start : start + counts[rank]] for k in data.files if k.startswith("b")}
    return a, b


def estimators(data, counts, rank, out: Path) -> None:
    a, b = my_rows(data, counts, rank)
    for name, debiased, batch_size, self_compare in SETTINGS:
        accumulator = CKAAccumulator(debiased=debiased, batch_size=batch_size)
        rows = counts[rank]
        for lo, hi in ((0, rows // 3 // 32 * 32), (rows // 3 // 32 * 32, rows)):  # two updates of uneven size
            if hi > lo:
                part_a = {k: v[lo:hi] for k, v in a.items()}
                accumulator.update(part_a, None if self_compare else {k: v[lo:hi] for k, v in b.items()})
        all_reduce_accumulator(accumulator)
        np.save(out / f"{name}_rank{rank}.npy", accumulator.result())


def failing(kind: str, data, counts, rank, out: Path) -> None:
    a, b = my_rows(data, counts, rank)
    accumulator = CKAAccumulator().update(a, b)
    if rank == 1:
        if kind == "crash":
            os._exit(3)
        time.sleep(120)  # stuck: never reaches the reduction
    began = time.perf_counter()
    try:
        all_reduce_accumulator(accumulator)
    except RankFailure as error:
        report = {"message": str(error), "seconds": time.perf_counter() - began}
        (out / f"failure_rank{rank}.json").write_text(json.dumps(report))


def main() -> None:
    kind, data_path, out, counts = sys.argv[1], sys.argv[2], Path(sys.argv[3]), [int(c) for c in sys.argv[4].split(",")]
    dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=float(os.environ.get("CKA_TEST_TIMEOUT", 60))))
    data = np.load(data_path, allow_pickle=False)
    try:
        if kind == "estimators":
            estimators(data, counts, dist.get_rank(), out)
        else:
            failing(kind, data, counts, dist.get_rank(), out)
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
