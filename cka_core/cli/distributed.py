"""The command line of distributed CKA: ``torchrun ... -m cka_core.distributed A B [options]``; each
rank streams its share of the rows, rank 0 writes the heatmap.
"""
from __future__ import annotations
import argparse
import datetime
import os
import sys
from pathlib import Path
import numpy as np
import torch
import torch.distributed as dist
from ..cka.accumulator import CKAAccumulator
from ..errors import RepresentationError
from ..io.export import check_outputs, heatmap_document, write
from ..io.streaming import open_layers, stream_into, StreamedLayers
from .terminal import rate, value_table
from ..cka.distributed import collective_device, lost_rank_message, all_reduce_accumulator, DEFAULT_TIMEOUT_S, rank_rows, RankFailure


def _open(spec: str, rank: int) -> StreamedLayers:
    return open_layers(spec.replace("{rank}", str(rank)))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m cka_core.distributed",
        description="Linear-CKA heatmap over shard files read by several processes (launch with torchrun). "
        "Every rank reads its contiguous share of the rows of A and B (or, when a name holds {rank}, its own "
        "files); the statistics are all-reduced and rank 0 prints and writes the heatmap.")
    parser.add_argument("a", help="side A: a file, a directory of .npy, shards a,b,c or a glob; {rank} for per-rank files")
    parser.add_argument("b", help="side B, the same examples in the same order")
    parser.add_argument("--debiased", action="store_true", help="unbiased HSIC (Song et al. 2012)")
    parser.add_argument("--batch-size", type=int, default=None, help="Nguyen et al.'s minibatch estimator")
    parser.add_argument("--out", type=Path, action="append", default=[], help=".csv, .json or .png (rank 0 writes)")
    parser.add_argument("--backend", default="gloo", choices=["gloo", "nccl"], help="gloo (CPU, default) or nccl")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S,
                        help=f"seconds a rank waits for the others before giving up (default {DEFAULT_TIMEOUT_S})")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if "RANK" not in os.environ:
        return _fail("run under torchrun (it sets RANK, WORLD_SIZE and MASTER_ADDR), e.g. torchrun --nproc-per-node 2 "
                     "-m cka_core.distributed A B.")
    try:
        check_outputs(args.out)
        if ("{rank}" in args.a) != ("{rank}" in args.b):
            raise RepresentationError("give {rank} in both file names (each rank its own files) or in neither "
                                      "(every rank its share of the same files).")
        accumulator = CKAAccumulator(debiased=args.debiased, batch_size=args.batch_size)
    except RepresentationError as error:
        return _fail(str(error))
    dist.init_process_group(args.backend, timeout=datetime.timedelta(seconds=args.timeout))
    try:
        return _run(args, accumulator, dist.get_rank(), dist.get_world_size())
    finally:
        dist.destroy_process_group()


def _run(args, accumulator: CKAAccumulator, rank: int, world: int) -> int:
    """Fill this rank's accumulator, learn whether every rank could, reduce, and (rank 0) report."""
    problem = None
    try:
        a, b = _open(args.a, rank), _open(args.b, rank)
        # Per-rank files ({rank} in the name) are read whole; common files are shared out by rows.
        start, stop = (0, a.rows) if "{rank}" in args.a else rank_rows(a.rows, world, rank, args.batch_size)
        progress = rate("rank 0 reading its rows") if rank == 0 else None
        stream_into(accumulator, a, b, start=start, stop=stop, progress=progress)
    except (RepresentationError, OSError) as error:
        problem = f"rank {rank}: {error}"
    try:
        failed = _failed_ranks(problem is not None)
        if failed:
            return _fail(problem or f"rank {rank}: stopping because rank(s) {failed} failed (see their error).")
        all_reduce_accumulator(accumulator)
    except (RankFailure, RepresentationError) as error:
        return _fail(str(error))
    if rank == 0:
        values, layout = accumulator.result(), accumulator.layout()
        settings = {"measure": "linear_cka_debiased" if args.debiased else "linear_cka", "debiased": args.debiased,
                    "batch_size": args.batch_size, "n_examples": accumulator.n_examples, "file_a": args.a,
                    "file_b": args.b, "ranks": world}
        print(value_table(values, layout["names_a"], layout["names_b"]))
        for out in args.out:
            write(out, heatmap_document(values, layout["names_a"], layout["names_b"], settings))
    return 0


def _failed_ranks(failed_here: bool) -> list[int]:
    """Which ranks failed before the reduction (every rank learns it, so none waits for the others)."""
    flags = torch.zeros(dist.get_world_size(), dtype=torch.float64, device=collective_device(None))
    flags[dist.get_rank()] = float(failed_here)
    try:
        dist.all_reduce(flags)
    except RuntimeError as error:
        raise RankFailure(lost_rank_message(error)) from None
    return [int(r) for r in np.flatnonzero(flags.cpu().numpy())]


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2
