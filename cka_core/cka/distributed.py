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

import json

import torch
import torch.distributed as dist

from .accumulator import CKAAccumulator
from .statistics import FeatureStatistics
from ..errors import RepresentationError

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
    device = collective_device(group)
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
        raise RankFailure(lost_rank_message(error)) from None
    return accumulator


def collective_device(group) -> torch.device:
    """The device the collectives of ``group`` run on: the current GPU under nccl, else the CPU."""
    if dist.get_backend(group) == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def lost_rank_message(error: Exception) -> str:
    """The message of a :class:`RankFailure` raised when a collective fails with ``error``."""
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
    payloads = _all_gather_bytes(json.dumps(layout).encode(), group, collective_device(group))
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

