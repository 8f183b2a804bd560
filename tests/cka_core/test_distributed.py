"""Linear CKA over several processes on torch.distributed (gloo, CPU): every rank's result after
all_reduce_accumulator is the heatmap of one pass over all rows -- full and minibatch estimators,
biased and debiased, uneven shares and a rank with none; the torchrun entry point over shard
files; and a rank that crashes or hangs makes the others stop with a clear error, not wait forever."""
from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from cka_core import cka_matrix
from cka_core.cka.distributed import rank_rows

from .distributed_worker import SETTINGS

ROOT = Path(__file__).resolve().parents[2]
N = 1000
pytestmark = pytest.mark.slow


def free_port() -> int:
    """A free port for a process group's store, below the kernel's ephemeral range: a port the
    kernel handed out (bind to 0) goes back into that range once released, where the gloo
    connections of processes started meanwhile (other tests) can take it before torchrun binds it;
    rank 1 then reached someone else's socket and aborted."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(max(1024, low - 12000), low)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port below the ephemeral range")


def launch(command: list[str], world: int, timeout: float = 240, env: dict | None = None) -> list[subprocess.Popen]:
    """Start ``world`` processes of ``command`` with the variables torchrun sets; wait for rank 0."""
    port, procs = free_port(), []
    for rank in range(world):
        variables = {**os.environ, "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(world),
                     "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "OMP_NUM_THREADS": "1", **(env or {})}
        procs.append(subprocess.Popen([sys.executable, *command], cwd=ROOT, env=variables, text=True,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    procs[0].wait(timeout=timeout)
    return procs


def finish(procs, timeout: float = 60) -> list[tuple[int, str, str]]:
    results = []
    for proc in procs:
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        results.append((proc.returncode, out, err))
    return results


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    rng = np.random.default_rng(3)
    z = rng.standard_normal((N, 4))
    drift = np.linspace(0, 30, N)[:, None]  # later rows (later ranks) have other means: the common shift matters
    layers = {f"a{k}": z @ rng.standard_normal((4, 12)) + rng.standard_normal((N, 12)) + drift for k in range(2)}
    layers |= {f"b{k}": np.tanh(z @ rng.standard_normal((4, 9 + k))) + 0.3 * rng.standard_normal((N, 9 + k))
               for k in range(3)}
    path = tmp_path_factory.mktemp("dist") / "data.npz"
    np.savez(path, **layers)
    return path, layers


@pytest.mark.parametrize("counts", ["704,296", "320,0,680"])  # 2 and 3 ranks, uneven, one rank with no rows
def test_every_rank_holds_the_one_pass_heatmap(data, tmp_path, counts):
    path, layers = data
    world = len(counts.split(","))
    procs = launch(["-m", "tests.cka_core.distributed_worker", "estimators", str(path), str(tmp_path), counts], world)
    for rank, (rc, _, err) in enumerate(finish(procs)):
        assert rc == 0, f"rank {rank}: {err[-3000:]}"
    a = {k: v for k, v in layers.items() if k.startswith("a")}
    b = {k: v for k, v in layers.items() if k.startswith("b")}
    for name, debiased, batch_size, self_compare in SETTINGS:
        # Shares are whole batches of 32 (the last rank's tail is the data's tail): the same batches as one pass.
        want = cka_matrix(a, None if self_compare else b, debiased=debiased, batch_size=batch_size)
        for rank in range(world):
            got = np.load(tmp_path / f"{name}_rank{rank}.npy")
            np.testing.assert_allclose(got, want, atol=1e-10, rtol=0, err_msg=f"{name}, rank {rank} of {world}")


@pytest.mark.parametrize("kind", ["crash", "stuck"])
def test_a_rank_that_dies_or_hangs_stops_the_others_with_a_clear_error(data, tmp_path, kind):
    path, _ = data
    began = time.perf_counter()
    procs = launch(["-m", "tests.cka_core.distributed_worker", kind, str(path), str(tmp_path), "500,500"], 2,
                   env={"CKA_TEST_TIMEOUT": "4"}, timeout=120)
    waited = time.perf_counter() - began
    for proc in procs[1:]:
        proc.kill()
    rc, _, err = finish(procs)[0]
    assert rc == 0, err[-3000:]
    report = json.loads((tmp_path / "failure_rank0.json").read_text())
    assert "another rank stopped answering" in report["message"] and "timeout" in report["message"]
    assert report["seconds"] < 60 and waited < 100


def test_rank_shares_cover_the_rows_once_on_batch_boundaries():
    for total, world, batch in [(1000, 3, None), (1000, 3, 32), (10, 4, 8), (0, 2, None), (5, 8, None)]:
        shares = [rank_rows(total, world, r, batch) for r in range(world)]
        assert shares[0][0] == 0 and shares[-1][1] == total
        assert all(stop == nxt for (_, stop), (nxt, _) in zip(shares, shares[1:]))
        assert all(start % (batch or 1) == 0 for start, _ in shares)
        sizes = [stop - start for start, stop in shares]
        assert max(sizes) - min(sizes) <= (batch or 1)


@pytest.fixture(scope="module")
def shards(tmp_path_factory, data):
    _, layers = data
    folder = tmp_path_factory.mktemp("shards")
    cuts = [0, 130, 131, 900, N]
    for k, (lo, hi) in enumerate(zip(cuts, cuts[1:])):
        np.savez(folder / f"a_{k}.npz", **{n: v[lo:hi] for n, v in layers.items() if n.startswith("a")})
        np.savez(folder / f"b_{k}.npz", **{n: v[lo:hi] for n, v in layers.items() if n.startswith("b")})
    return folder


def torchrun(world: int, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(world),
                           "--master-port", str(free_port()), "-m", "cka_core.distributed", *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=240)


@pytest.mark.parametrize("per_rank_files", [False, True])
def test_torchrun_entry_point_writes_the_heatmap_from_rank_0(data, shards, tmp_path, per_rank_files):
    _, layers = data
    if per_rank_files:  # 4 ranks, each its own pair of files (one of a single row)
        done = torchrun(4, f"{shards}/a_{{rank}}.npz", f"{shards}/b_{{rank}}.npz", "--debiased",
                        "--out", str(tmp_path / "h.json"))
    else:  # 3 ranks share 4 uneven shards by rows
        done = torchrun(3, f"{shards}/a_*.npz", f"{shards}/b_*.npz", "--debiased", "--out", str(tmp_path / "h.json"))
    assert done.returncode == 0, done.stderr[-3000:]
    doc = json.loads((tmp_path / "h.json").read_text())
    want = cka_matrix({n: v for n, v in layers.items() if n.startswith("a")},
                      {n: v for n, v in layers.items() if n.startswith("b")}, debiased=True)
    np.testing.assert_allclose(doc["values"], want, atol=1e-10, rtol=0)
    assert doc["layers_a"] == ["a0", "a1"] and doc["n_examples"] == N and doc["ranks"] == (4 if per_rank_files else 3)
    assert "b2" in done.stdout and done.stdout.count("\n") == 3  # rank 0 alone prints the table


def test_torchrun_entry_point_stops_every_rank_on_a_missing_shard(shards, tmp_path):
    done = torchrun(3, f"{shards}/a_{{rank}}.npz", f"{shards}/missing_{{rank}}.npz")
    assert done.returncode != 0
    assert "error: rank 0: " in done.stderr and "missing_0.npz: no such file" in done.stderr
    assert "cka_core/" not in done.stderr  # each rank's one-line error, no traceback through our code
    done = subprocess.run([sys.executable, "-m", "cka_core.distributed", "a.npz", "b.npz"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stderr.startswith("error: run under torchrun")
