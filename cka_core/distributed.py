"""Linear CKA over data that lives on several processes or machines, on torch.distributed.

Every rank fills a :class:`~cka_core.CKAAccumulator` over its own rows; :func:`all_reduce_accumulator`
then sums the statistics of all ranks in place, so that every rank's ``result()`` is the heatmap of
one pass over all the rows (docs/theory.md §2.4). Three collectives: the layouts (JSON bytes, so
no pickle crosses the wire), the raw column sums for a common shift, and one flat SUM of every
statistic. A rank that saw no rows joins with zero statistics.

Run as a program over shard files (every rank reads its contiguous share of the rows; rank 0 writes
the result)::

    torchrun --nproc-per-node 4 -m cka_core.distributed 'acts_a_*.npy' 'acts_b_*.npy' --debiased --out h.json

A file name holding ``{rank}`` is each rank's own file instead (data local to each machine).
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from .accumulator import CKAAccumulator, FeatureStatistics
from .errors import RepresentationError
from .export import check_outputs, heatmap_document, write
from .stream import StreamedLayers, open_layers, stream_into
from .terminal import rate, value_table

DEFAULT_TIMEOUT_S = 600


class RankFailure(RuntimeError):
    """Another rank failed, stopped, or did not answer within the process group's timeout."""


def all_reduce_accumulator(accumulator: CKAAccumulator, group=None) -> CKAAccumulator:
    """Sum every rank's statistics into every rank's ``accumulator`` (in place; returned).

    Call on every rank of ``group`` (default: the whole world) after each has updated its own
    accumulator, with the same settings. Afterwards ``result()`` on any rank equals one accumulator
    fed all the rows. A rank whose accumulator saw no rows takes part with zero statistics. Raises
    :class:`RankFailure` when a rank does not answer within the group's timeout.
    """
    device = _device(group)
    try:
        layout = _agreed_layout(accumulator.layout(), group)
        if accumulator.structure is None:
            accumulator.start_empty(layout, device)
        if isinstance(accumulator._stats, FeatureStatistics):
            accumulator.align_to(_global_mean(accumulator, device, group))
        tensors = accumulator.state_tensors()
        flat = torch.cat([t.reshape(-1).to(device) for t in tensors])
        dist.all_reduce(flat, group=group)
        offset = 0
        for t in tensors:
            t.copy_(flat[offset : offset + t.numel()].view_as(t))
            offset += t.numel()
    except RuntimeError as error:
        if isinstance(error, RankFailure):
            raise
        raise RankFailure(_lost(error)) from None
    return accumulator


def _device(group) -> torch.device:
    if dist.get_backend(group) == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def _lost(error: Exception) -> str:
    first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return (f"rank {dist.get_rank()}: another rank stopped answering ({first[:200]}). It failed or is stuck; its "
            "own error says why. Every rank gives up after the process group's timeout.")


def _all_gather_bytes(payload: bytes, group, device: torch.device) -> list[bytes]:
    """Every rank's ``payload`` (raw bytes in uint8 tensors, no pickle)."""
    size = dist.get_world_size(group)
    length = torch.tensor([len(payload)], dtype=torch.int64, device=device)
    lengths = [torch.zeros_like(length) for _ in range(size)]
    dist.all_gather(lengths, length, group=group)
    longest = int(max(int(l) for l in lengths))
    mine = torch.zeros(longest, dtype=torch.uint8, device=device)
    mine[: len(payload)] = torch.frombuffer(bytearray(payload), dtype=torch.uint8) if payload else mine[:0]
    everyone = [torch.zeros_like(mine) for _ in range(size)]
    dist.all_gather(everyone, mine, group=group)
    return [bytes(t[: int(l)].cpu().numpy()) for t, l in zip(everyone, lengths)]


def _agreed_layout(layout: dict | None, group) -> dict:
    """The layout every rank with data shares; refuses ranks that disagree, and a run with no rows."""
    payloads = _all_gather_bytes(json.dumps(layout).encode(), group, _device(group))
    layouts = [json.loads(p) for p in payloads]
    seen = [(rank, l) for rank, l in enumerate(layouts) if l is not None]
    if not seen:
        raise RepresentationError("no rank saw any rows; give the ranks some data.")
    first_rank, first = seen[0]
    for rank, other in seen[1:]:
        if other != first:
            raise RepresentationError(
                f"rank {rank} has layers or settings {_brief(other)} but rank {first_rank} has {_brief(first)}; every "
                "rank must compare the same layers with the same estimator.")
    return first


def _brief(layout: dict) -> str:
    return (f"(A: {layout['names_a']}, B: {layout['names_b']}, widths {layout['widths']}, "
            f"debiased={layout['debiased']}, batch_size={layout['batch_size']})")


def _global_mean(accumulator: CKAAccumulator, device: torch.device, group) -> list[torch.Tensor]:
    """Every layer's mean over all ranks' rows: the shift all statistics are re-expressed in before
    they are added (any common shift is exact; the mean keeps the sums small)."""
    stats, n = accumulator._stats, accumulator.n_examples
    raw = torch.cat([torch.tensor([float(n)], dtype=torch.float64)]
                    + [(s + n * mu).cpu() for s, mu in zip(stats.column_sums, stats.shift)]).to(device)
    dist.all_reduce(raw, group=group)
    total, sums = float(raw[0]), raw[1:]
    return list(torch.split(sums / total, list(accumulator.structure.widths)))


def rank_rows(total: int, world: int, rank: int, batch_size: int | None = None) -> tuple[int, int]:
    """Rank ``rank``'s contiguous share [start, stop) of ``total`` rows: as even as possible, with
    every boundary on a multiple of ``batch_size`` so the minibatch estimator sees the batches of a
    single pass."""
    unit = batch_size or 1
    units = -(-total // unit)
    bounds = [min(total, unit * (units * r // world)) for r in range(world + 1)]
    return bounds[rank], bounds[rank + 1]


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
    flags = torch.zeros(dist.get_world_size(), dtype=torch.float64, device=_device(None))
    flags[dist.get_rank()] = float(failed_here)
    try:
        dist.all_reduce(flags)
    except RuntimeError as error:
        raise RankFailure(_lost(error)) from None
    return [int(r) for r in np.flatnonzero(flags.cpu().numpy())]


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
