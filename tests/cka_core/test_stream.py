"""Out-of-core linear CKA (cka_core.stream): layers read from disk in row blocks give exactly the
in-memory heatmap, whatever the format and the shards, in memory bounded by the statistics plus
one block; bad shards are refused with the reason."""
from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
import textwrap
import zipfile

import numpy as np
import pytest
from safetensors.numpy import save_file

from cka_core import RepresentationError, cka_matrix
from cka_core.io import streaming as stream
from cka_core.cli import main
from cka_core.io.streaming import open_layers, shard_paths, streamed_cka_matrix

N = 1500


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    z = rng.standard_normal((N, 5))
    a = {f"a{i}": (z @ rng.standard_normal((5, 24)) + rng.standard_normal((N, 24)) + 100.0).astype(np.float32)
         for i in range(3)}
    a["conv"] = (z @ rng.standard_normal((5, 2 * 3 * 3))).reshape(N, 2, 3, 3)
    b = {f"b{i}": z @ rng.standard_normal((5, 16)) + 0.5 * rng.standard_normal((N, 16)) for i in range(2)}
    return a, b


@pytest.fixture(scope="module")
def files(tmp_path_factory, data):
    a, b = data
    d = tmp_path_factory.mktemp("stream")
    np.savez(d / "a.npz", **a, labels=np.arange(N))
    (d / "a_dir").mkdir()
    for name, value in a.items():
        np.save(d / "a_dir" / f"{name}.npy", value)
    cuts = [0, 7, 500, 1499, N]  # uneven shards, one of a single row
    for k, (lo, hi) in enumerate(zip(cuts, cuts[1:])):
        save_file({name: np.ascontiguousarray(v[lo:hi]) for name, v in b.items()}, str(d / f"b_{k}.safetensors"))
        np.save(d / f"b0_{k}.npy", b["b0"][lo:hi])
    return d


@pytest.fixture
def small_blocks(monkeypatch):
    monkeypatch.setattr(stream, "BLOCK_VALUES", 3_000)  # 64 rows a block: every path crosses blocks and shards
    monkeypatch.setattr(stream, "WIDE_BLOCK_ROWS", 0)


@pytest.mark.parametrize("debiased", [False, True])
@pytest.mark.parametrize("spec_a", ["a.npz", "a_dir"])
def test_streamed_heatmap_is_the_in_memory_one(files, data, small_blocks, spec_a, debiased):
    a, b = data
    got = streamed_cka_matrix(open_layers(files / spec_a), open_layers(f"{files}/b_*.safetensors"), debiased=debiased)
    want = cka_matrix(a, b, debiased=debiased)
    np.testing.assert_allclose(got, want, atol=1e-10, rtol=0)
    assert open_layers(files / spec_a).names == ("a0", "a1", "a2", "conv") or spec_a == "a_dir"


def test_shards_in_natural_order_and_as_a_list(files, data, small_blocks, tmp_path):
    a, b = data
    listed = ",".join(str(files / f"b0_{k}.npy") for k in range(4))
    side = open_layers(listed)
    assert side.rows == N and [s[0].rows for s in side.shards] == [7, 493, 999, 1] and side.names == ("b0",)
    np.testing.assert_allclose(streamed_cka_matrix(side), cka_matrix([b["b0"]]), atol=1e-12)
    for k in (2, 10, 1):  # shard_10 after shard_2, as a person numbers them, not as strings sort
        np.save(tmp_path / f"shard_{k}.npy", np.full((k, 3), k, dtype=np.float32))
    assert [p.name for p in shard_paths(f"{tmp_path}/shard_*.npy")] == ["shard_1.npy", "shard_2.npy", "shard_10.npy"]
    assert open_layers(f"{tmp_path}/shard_*.npy").names == ("shard",)


def test_the_minibatch_estimator_streams_the_same_batches(files, data, small_blocks):
    a, b = data
    got = streamed_cka_matrix(open_layers(files / "a.npz"), open_layers(f"{files}/b_*.safetensors"), batch_size=64,
                              debiased=True)
    np.testing.assert_allclose(got, cka_matrix(a, b, batch_size=64, debiased=True), atol=1e-12)


def test_progress_counts_examples(files):
    seen = []
    streamed_cka_matrix(open_layers(files / "a.npz"), progress=lambda done, total, s: seen.append((done, total)))
    assert seen[-1] == (N, N) and all(a < b for (a, _), (b, _) in zip(seen, seen[1:]))


def test_bad_shards_are_refused_with_the_reason(tmp_path, data):
    a, b = data
    np.savez_compressed(tmp_path / "packed.npz", x=a["a0"])
    with pytest.raises(RepresentationError, match="compressed.*np.savez"):
        open_layers(tmp_path / "packed.npz")
    np.save(tmp_path / "s_0.npy", a["a0"][:10])
    np.save(tmp_path / "s_1.npy", a["a1"][:10, :20])
    with pytest.raises(RepresentationError, match="s_1.npy does not hold the same layers.*shape \\(20,\\)"):
        open_layers(f"{tmp_path}/s_*.npy")
    np.save(tmp_path / "t_0.npy", a["a0"][:10])
    np.save(tmp_path / "t_1.npy", a["a0"][:10].astype(np.float64))
    with pytest.raises(RepresentationError, match="dtype float64 instead of float32"):
        open_layers(f"{tmp_path}/t_0.npy,{tmp_path}/t_1.npy")
    with pytest.raises(RepresentationError, match="no such file or directory \\(a missing shard"):
        open_layers(f"{tmp_path}/s_0.npy,{tmp_path}/s_9.npy")
    raw = (tmp_path / "s_0.npy").read_bytes()
    (tmp_path / "cut.npy").write_bytes(raw[: len(raw) - 100])
    with pytest.raises(RepresentationError, match="past the end of the file"):
        open_layers(tmp_path / "cut.npy")
    np.save(tmp_path / "fortran.npy", np.asfortranarray(a["a0"]))
    with pytest.raises(RepresentationError, match="Fortran order"):
        open_layers(tmp_path / "fortran.npy")
    with pytest.raises(RepresentationError, match="side A has 10 examples but side B has 20"):
        streamed_cka_matrix(open_layers(f"{tmp_path}/t_0.npy"), open_layers(f"{tmp_path}/s_0.npy,{tmp_path}/s_0.npy"))


def test_a_pickled_npz_member_is_refused_without_unpickling(tmp_path):
    np.savez(tmp_path / "objects.npz", x=np.array([{"a": 1}], dtype=object))
    with zipfile.ZipFile(tmp_path / "objects.npz") as archive:
        assert archive.infolist()[0].compress_type == zipfile.ZIP_STORED
    with pytest.raises(RepresentationError, match="Python objects"):
        open_layers(tmp_path / "objects.npz")


def test_the_cli_streams_large_or_sharded_inputs(files, data, tmp_path, capsys):
    a, b = data
    out = tmp_path / "h.json"
    assert main(["compare", str(files / "a_dir"), f"{files}/b_*.safetensors", "--debiased", "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["streamed"] is True and doc["shards_b"] == 4 and doc["n_examples"] == N
    np.testing.assert_allclose(doc["values"], cka_matrix(a, b, debiased=True), atol=1e-10)
    assert main(["compare", str(files / "a.npz"), str(files / "a.npz"), "--stream", "--bootstrap", "10"]) == 2
    assert "need the data in memory" in capsys.readouterr().err
    assert main(["compare", str(files / "a_dir"), str(files / "a_dir"), "--measure", "rsa"]) == 2
    assert "read in row blocks, for linear CKA" in capsys.readouterr().err


MEMORY_CHILD = textwrap.dedent("""
    import sys, numpy as np
    from cka_core.stream import open_layers, shard_paths, streamed_cka_matrix

    def rss(field):
        for line in open('/proc/self/status'):
            if line.startswith(field):
                return int(line.split()[1]) / 1024

    streamed_cka_matrix(open_layers(sys.argv[1] + '/small.npz'))      # warm up: imports, BLAS buffers
    before = rss('VmHWM:')
    values = streamed_cka_matrix(open_layers(sys.argv[1] + '/big.npz'), open_layers(sys.argv[1] + '/big.npz'))
    print(before, rss('VmHWM:'), float(values[0, 0]))
""")


def test_memory_is_the_statistics_plus_one_block_not_the_file(tmp_path):
    rng = np.random.default_rng(1)
    np.savez(tmp_path / "small.npz", x=rng.standard_normal((100, 8)).astype(np.float32))
    n, width = 200_000, 128  # 2 layers: 205 MB of float32 on disk, read twice (both sides)
    np.savez(tmp_path / "big.npz", **{f"l{k}": rng.standard_normal((n, width)).astype(np.float32) for k in range(2)})
    done = subprocess.run([sys.executable, "-c", MEMORY_CHILD, str(tmp_path)], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    before, peak, value = map(float, done.stdout.split())
    assert value == pytest.approx(1.0)
    assert peak - before < 120, f"peak resident memory grew {peak - before:.0f} MiB for 205 MB of data"


def test_a_terminal_sees_examples_rate_and_time_left(files):
    leader, follower = pty.openpty()
    done = subprocess.run([sys.executable, "-m", "cka_core", "compare", str(files / "a.npz"), str(files / "a_dir"),
                           "--stream"], stderr=follower, stdout=subprocess.PIPE, text=True, timeout=300)
    os.close(follower)
    shown = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal closed: everything was read
            break
        if not chunk:
            break
        shown += chunk
    os.close(leader)
    assert done.returncode == 0
    assert re.search(rf"reading both sides: {N}/{N} examples, \d+/s, 0 s left", shown.decode()), shown[-500:]
