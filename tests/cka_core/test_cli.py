"""`python -m cka_core compare A B ...` run as a real subprocess."""
import csv
import json

import numpy as np
import pytest

from . import reference as ref
from .cka_testdata import layers
from .cli_runner import Done, start


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Every CLI invocation of this module, started at once (each pays the interpreter + torch
    start-up; running them concurrently keeps the module fast)."""
    d = tmp_path_factory.mktemp("cli")
    rng = np.random.default_rng(0)
    L = layers(rng, 48, [5, 12, 30, 3, 8])
    a = {"conv1": L[0], "conv2": L[1], "fc": L[2]}
    b = {"block.0": L[3], "head, out": L[4]}       # a comma in a name must survive CSV quoting
    np.savez(d / "model_a.npz", **a)
    np.savez(d / "model_b.npz", **b)
    (d / "garbage.npy").write_bytes(b"\x93NUMPY garbage garbage")
    np.save(d / "short.npy", rng.standard_normal((20, 4)))
    A, B = d / "model_a.npz", d / "model_b.npz"
    commands = {
        "csv": ("compare", A, B, "--out", d / "heat.csv"),
        "json": ("compare", A, B, "--debiased", "--batch-size", "16", "--out", d / "heat.json"),
        "measure": ("compare", A, B, "--measure", "procrustes", "--out", d / "proc.json"),
        "missing": ("compare", d / "nope.npz", B),
        "garbage": ("compare", d / "garbage.npy", B),
        "mismatch": ("compare", d / "short.npy", B),
    }
    started = {k: start(*v) for k, v in commands.items()}
    return d, a, b, {k: Done(p) for k, p in started.items()}


def _single_error_line(proc):
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    return lines[0]


def test_compare_csv(runs):
    d, a, b, done = runs
    proc = done["csv"]
    assert proc.returncode == 0, proc.stderr
    assert "conv1" in proc.stdout and "block.0" in proc.stdout          # the heatmap is printed
    rows = list(csv.reader((d / "heat.csv").open()))
    assert rows[0][1:] == list(b)                                       # header: layers of B
    assert [r[0] for r in rows[1:]] == list(a)                          # first column: layers of A
    values = np.array([[float(v) for v in r[1:]] for r in rows[1:]])
    np.testing.assert_allclose(values, ref.cka_matrix(list(a.values()), list(b.values())), atol=1e-8)


def test_compare_json_debiased_minibatch(runs):
    d, a, b, done = runs
    assert done["json"].returncode == 0, done["json"].stderr
    doc = json.loads((d / "heat.json").read_text())
    assert doc["layers_a"] == list(a) and doc["layers_b"] == list(b)
    expected = ref.cka_matrix(list(a.values()), list(b.values()), debiased=True, batch_size=16)
    np.testing.assert_allclose(np.array(doc["values"]), expected, atol=1e-8)
    settings = [v for k, v in doc.items() if k not in ("layers_a", "layers_b", "values")]
    assert 16 in settings and True in settings                          # the settings are recorded


def test_compare_other_measure(runs):
    d, a, b, done = runs
    assert done["measure"].returncode == 0, done["measure"].stderr
    values = np.array(json.loads((d / "proc.json").read_text())["values"])
    expected = np.array([[ref.procrustes_angle(x, y) for y in b.values()] for x in a.values()])
    np.testing.assert_allclose(values, expected, atol=1e-8)


def test_missing_file_is_one_line_exit_2(runs):
    assert "nope.npz" in _single_error_line(runs[3]["missing"])


def test_garbage_file_is_one_line_exit_2(runs):
    assert "garbage.npy" in _single_error_line(runs[3]["garbage"])


def test_row_mismatch_is_one_line_exit_2(runs):
    line = _single_error_line(runs[3]["mismatch"])
    assert "20" in line and "48" in line
