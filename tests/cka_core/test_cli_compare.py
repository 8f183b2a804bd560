"""`python -m cka_core compare` with --bootstrap, --permutations and --out F.png, run as real
subprocesses (started together: each pays the interpreter + torch start-up)."""
import csv
import io
import json

import numpy as np
import pandas as pd
import pytest

from cka_core.cli import main
from cka_core.io.export import CELL_COLUMNS, cells_csv, heatmap_document
from cka_core.stats.resampling import bootstrap, permutation_test
from cka_core.stats.corrections import holm_adjusted

from . import reference as ref
from .cka_testdata import layers
from .cli_runner import Done, start


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli_compare")
    rng = np.random.default_rng(0)
    L = layers(rng, 60, [5, 12, 7, 4])
    a = {"conv1": L[0], "fc": L[1]}
    b = {"block.0": L[2], "head, out": L[3]}
    np.savez(d / "a.npz", **a)
    np.savez(d / "b.npz", **b)
    np.save(d / "nan.npy", np.full((60, 3), np.nan))
    A, B = d / "a.npz", d / "b.npz"
    commands = {
        "full": ("compare", A, B, "--bootstrap", "40", "--permutations", "30", "--seed", "3",
                 "--out", d / "heat.csv", "--out", d / "heat.json", "--out", d / "heat.png"),
        "boot_only": ("compare", A, B, "--debiased", "--bootstrap", "20", "--confidence", "0.9", "--out", d / "b.csv"),
        "nan": ("compare", d / "nan.npy", B, "--permutations", "5"),
        "holm": ("compare", A, B, "--bootstrap", "40", "--permutations", "30", "--seed", "3", "--p-adjust", "holm",
                 "--out", d / "holm.json", "--out", d / "holm.csv"),
    }
    started = {k: start(*v) for k, v in commands.items()}
    return d, a, b, {k: Done(p) for k, p in started.items()}


def _one_line_error(proc) -> str:
    assert proc.returncode != 0, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    return lines[0]


def test_intervals_and_p_values_in_every_output(runs):
    d, a, b, done = runs
    proc = done["full"]
    assert proc.returncode == 0, proc.stderr
    assert "bootstrap intervals" in proc.stdout and "permutation p-values" in proc.stdout
    expected = ref.cka_matrix(list(a.values()), list(b.values()))
    boot = bootstrap(a, b, n_resamples=40, seed=3)
    perm = permutation_test(a, b, n_permutations=30, seed=3)

    doc = json.loads((d / "heat.json").read_text())
    np.testing.assert_allclose(doc["values"], expected, atol=1e-8)
    np.testing.assert_allclose(doc["ci_low"], boot.low, atol=1e-12)
    np.testing.assert_allclose(doc["ci_high"], boot.high, atol=1e-12)
    np.testing.assert_allclose(doc["p_values"], perm.p_values, atol=1e-12)
    assert doc["bootstrap"]["n_resamples"] == 40 and doc["permutations"]["n_permutations"] == 30
    assert doc["seed"] == 3 and doc["measure"] == "linear_cka" and "marking_rule" in doc
    assert np.array(doc["not_above_null"]).shape == (2, 2)

    matrix = list(csv.reader((d / "heat.csv").open()))                 # the matrix file is unchanged
    assert matrix[0] == ["layer", "block.0", "head, out"]
    np.testing.assert_allclose([[float(v) for v in r[1:]] for r in matrix[1:]], expected, atol=1e-8)

    settings = json.loads((d / "heat.settings.json").read_text())
    assert settings["measure"] == "linear_cka" and settings["bootstrap"]["n_resamples"] == 40
    assert "values" not in settings and "p_values" not in settings
    table = pd.read_csv(d / "heat.cells.csv")  # as is: one header line, no comment lines
    assert tuple(table.columns) == CELL_COLUMNS and len(table) == 4
    rows = list(csv.DictReader((d / "heat.cells.csv").open()))
    assert [(r["layer_a"], r["layer_b"]) for r in rows] == [(x, y) for x in a for y in b]
    np.testing.assert_allclose([float(r["value"]) for r in rows], expected.ravel(), atol=1e-8)
    np.testing.assert_allclose([float(r["ci_low"]) for r in rows], boot.low.ravel(), atol=1e-12)
    np.testing.assert_allclose([float(r["p_value"]) for r in rows], perm.p_values.ravel(), atol=1e-12)
    assert {r["not_above_null"] for r in rows} <= {"true", "false"}

    assert (d / "heat.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bootstrap_alone_leaves_the_permutation_columns_empty(runs):
    d, a, b, done = runs
    assert done["boot_only"].returncode == 0, done["boot_only"].stderr
    rows = list(csv.DictReader((d / "b.cells.csv").open()))
    assert all(r["p_value"] == "" and r["not_above_null"] == "" and r["ci_low"] for r in rows)
    boot = bootstrap(a, b, n_resamples=20, confidence=0.9, debiased=True)
    np.testing.assert_allclose([float(r["ci_high"]) for r in rows], boot.high.ravel(), atol=1e-12)


def test_nan_file_is_one_line_and_non_zero_in_a_real_process(runs):
    assert "NaN" in _one_line_error(runs[3]["nan"])


def _main(argv, capsys) -> tuple[int, str, str]:
    """cli.main in this process (the same code path as the subprocess, without a torch start-up)."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exit_:
        code = exit_.code
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("extra,words", [(["--bootstrap", "0"], "--bootstrap"),
                                         (["--permutations", "many"], "whole number"),
                                         (["--bootstrap", "5", "--confidence", "95"], "between 0 and 1"),
                                         (["--out", "heat.txt"], ".txt"), (["--sigma", "0.5"], "rbf_cka"),
                                         (["--alpha", "0.5"], "shape_metric"),
                                         (["--measure", "shape_metric", "--alpha", "2"], "alpha must be in [0, 1]")])
def test_bad_arguments_are_one_line_and_non_zero(runs, capsys, extra, words):
    d = runs[0]
    code, out, err = _main(["compare", d / "a.npz", d / "b.npz", *extra], capsys)
    assert code != 0 and "Traceback" not in err and len(err.strip().splitlines()) == 1 and words in err, err


def test_the_shape_metric_with_its_alpha(runs, capsys):
    d = runs[0]
    a, b = runs[1], runs[2]
    code, _, err = _main(["compare", d / "a.npz", d / "b.npz", "--measure", "shape_metric", "--alpha", "0.3",
                          "--out", d / "shape.json"], capsys)
    assert code == 0, err
    doc = json.loads((d / "shape.json").read_text())
    assert doc["measure"] == "shape_metric" and doc["alpha"] == 0.3
    expected = [[ref.shape_distance(x, y, 0.3) for y in b.values()] for x in a.values()]
    np.testing.assert_allclose(doc["values"], expected, atol=1e-7)


def test_png_for_another_measure(runs, capsys):
    d = runs[0]
    code, _, err = _main(["compare", d / "a.npz", d / "b.npz", "--measure", "procrustes", "--out", d / "proc.png"],
                         capsys)
    assert code == 0, err
    assert (d / "proc.png").read_bytes()[:4] == b"\x89PNG" and (d / "proc.png").stat().st_size > 5000


def test_help_documents_the_csv_layout(capsys):
    code, out, _ = _main(["compare", "--help"], capsys)
    assert code == 0
    assert "--bootstrap" in out and "F.cells.csv" in out and "not_above_null" in out


def test_export_helpers_round_trip():
    values = np.array([[0.5, 0.25]])
    doc = heatmap_document(values, ["x"], ["y,1", 'q"2'], {"measure": "linear_cka", "n_examples": 10})
    rows = list(csv.DictReader(io.StringIO(cells_csv(doc))))
    assert [r["layer_b"] for r in rows] == ["y,1", 'q"2'] and [float(r["value"]) for r in rows] == [0.5, 0.25]
    assert rows[0]["ci_low"] == ""


def test_a_labels_array_is_not_compared_as_a_layer(tmp_path, capsys):
    """Regression: the CLI compared an npz's `labels` with the other file's labels (CKA 1.0) while the
    app ignored them; every array named as labels (labels, y, targets) is left out, as in the app."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((40, 6))
    y = rng.integers(0, 3, 40)
    np.savez(tmp_path / "a.npz", hidden=x, labels=y)
    np.savez(tmp_path / "b.npz", hidden=np.tanh(x), y=y, targets=y)
    assert main(["compare", str(tmp_path / "a.npz"), str(tmp_path / "b.npz"), "--out", str(tmp_path / "h.json")]) == 0
    doc = json.loads((tmp_path / "h.json").read_text())
    assert doc["layers_a"] == ["hidden"] and doc["layers_b"] == ["hidden"]
    np.savez(tmp_path / "only.npz", labels=y)
    assert main(["compare", str(tmp_path / "only.npz"), str(tmp_path / "b.npz")]) == 2
    assert "only holds labels" in capsys.readouterr().err


def test_p_adjust_corrects_for_every_cell_and_marks_by_the_corrected_values(runs):
    d, a, b, done = runs
    assert done["holm"].returncode == 0, done["holm"].stderr
    doc, plain = json.loads((d / "holm.json").read_text()), json.loads((d / "heat.json").read_text())
    np.testing.assert_allclose(doc["p_values"], plain["p_values"])                     # same seed, same raw test
    np.testing.assert_allclose(doc["p_values_adjusted"], holm_adjusted(np.array(plain["p_values"])))
    assert doc["permutations"]["p_adjustment"].startswith("Holm") and "p_values_adjusted" not in plain
    adjusted = np.array(doc["p_values_adjusted"])
    assert np.all(np.array(doc["not_above_null"])[adjusted > 0.05])                   # marked by the adjusted p
    table = pd.read_csv(d / "holm.cells.csv")
    np.testing.assert_allclose(table["p_adjusted"], adjusted.ravel())
    assert pd.read_csv(d / "heat.cells.csv")["p_adjusted"].isna().all()               # no correction asked
    # 30 permutations, 4 cells: Holm's smallest possible value is 4/31 > 0.05, and the output says so
    assert "adjusted p-values, Holm" in done["holm"].stdout and "use at least 79" in done["holm"].stdout


@pytest.fixture(scope="module")
def confounded_files(tmp_path_factory):
    from .test_deconfounded import confounded_triple

    d = tmp_path_factory.mktemp("cli_dcka")
    rng = np.random.default_rng(11)
    inputs, X, Y = confounded_triple(rng, 50, 6, 5, 4)
    _, Z, _ = confounded_triple(rng, 50, 6, 3, 3)
    a, b = {"x": X, "z": Z}, {"w": Y}
    np.savez(d / "a.npz", **a)
    np.savez(d / "b.npz", **b)
    np.save(d / "inputs.npy", inputs)
    np.savez(d / "two.npz", p=inputs, q=inputs)
    return d, inputs, a, b


def test_deconfounded_cka_with_the_inputs_file_and_resampling(confounded_files, capsys):
    d, inputs, a, b = confounded_files
    code, _, err = _main(["compare", d / "a.npz", d / "b.npz", "--measure", "deconfounded_cka", "--confounder",
                          d / "inputs.npy", "--bootstrap", "10", "--permutations", "10", "--out", d / "dcka.json"],
                         capsys)
    assert code == 0, err
    doc = json.loads((d / "dcka.json").read_text())
    assert doc["measure"] == "deconfounded_cka" and doc["confounder"] == f"file {d / 'inputs.npy'}"
    expected = [[ref.deconfounded_cka(x, y, inputs) for y in b.values()] for x in a.values()]
    np.testing.assert_allclose(doc["values"], expected, atol=1e-9)
    assert np.all(np.array(doc["ci_low"]) <= np.array(doc["values"]) + 1e-12)


def test_deconfounded_cka_can_regress_out_a_layer_of_a(confounded_files, capsys):
    """a:LAYER regresses out that layer and leaves it out of the heatmap (its row would be undefined)."""
    d, _, a, b = confounded_files
    code, _, err = _main(["compare", d / "a.npz", d / "b.npz", "--measure", "deconfounded_cka", "--confounder", "a:z",
                          "--out", d / "by_layer.json"], capsys)
    assert code == 0, err
    doc = json.loads((d / "by_layer.json").read_text())
    assert doc["layers_a"] == ["x"] and "layer z of A" in doc["confounder"]
    np.testing.assert_allclose(doc["values"], [[ref.deconfounded_cka(a["x"], b["w"], a["z"])]], atol=1e-9)


@pytest.mark.parametrize("extra,words", [
    (["--measure", "deconfounded_cka"], "needs --confounder"),
    (["--measure", "deconfounded_cka", "--confounder", "two.npz"], "holds 2 arrays"),
    (["--measure", "deconfounded_cka", "--confounder", "a:nope"], "A has no layer 'nope'"),
    (["--confounder", "inputs.npy"], "deconfounded_cka only"),
])
def test_deconfounded_cka_bad_arguments_are_one_line(confounded_files, capsys, monkeypatch, extra, words):
    d = confounded_files[0]
    monkeypatch.chdir(d)
    code, _, err = _main(["compare", "a.npz", "b.npz", *extra], capsys)
    assert code != 0 and "Traceback" not in err and len(err.strip().splitlines()) == 1 and words in err, err


def test_resampling_works_for_measures_without_an_estimator_option(runs, capsys):
    """--bootstrap passed debiased=False to every measure, and the view-level ones (Procrustes, CCA, RSA,
    the shape metric) refused the keyword."""
    d, a, b = runs[0], runs[1], runs[2]
    code, _, err = _main(["compare", d / "a.npz", d / "b.npz", "--measure", "procrustes", "--bootstrap", "5",
                          "--permutations", "5", "--out", d / "proc.json"], capsys)
    assert code == 0, err
    doc = json.loads((d / "proc.json").read_text())
    np.testing.assert_allclose(doc["values"], [[ref.procrustes_angle(x, y) for y in b.values()] for x in a.values()],
                               atol=1e-8)
