"""`python -m cka_core trust ...` run as a real subprocess on the zoo's groups."""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cka_core.trust import TESTS

ROOT = Path(__file__).resolve().parents[2]


def _start(tmp: Path, *args) -> subprocess.Popen:
    # From the checkout, so that this checkout's cka_core and sample_models are the ones imported;
    # the pair cache goes to a folder of the test's own.
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp / "cache")}
    return subprocess.Popen([sys.executable, "-m", "cka_core", "trust", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    d = tmp_path_factory.mktemp("trust")
    commands = {
        "run": ("--tests", "layer_monotonicity,label_randomization", "--measures", "linear_cka,rsa", "--resamples",
                "200", "--json", d / "card.json", "--csv", d / "card.csv"),
        "bad_test": ("--tests", "layer_monotonicity,nope"),
        "bad_measure": ("--measures", "linear_cka,jsd"),
        "bad_resamples": ("--tests", "augmentation", "--resamples", "0"),
        "bad_out": ("--tests", "augmentation", "--measures", "linear_cka", "--json", d / "no" / "dir" / "x.json"),
    }
    started = {k: _start(d, *v) for k, v in commands.items()}
    done = {}
    for k, p in started.items():
        out, err = p.communicate(timeout=300)
        done[k] = (p.returncode, out, err)
    return d, done


def _one_line_error(result) -> str:
    code, _, err = result
    assert code == 2, result
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def test_scorecard_json_has_the_documented_schema(runs):
    d, done = runs
    code, out, err = done["run"]
    assert code == 0, err
    doc = json.loads((d / "card.json").read_text())
    assert list(doc) == ["tests"]
    assert list(doc["tests"]) == ["layer_monotonicity", "label_randomization"]
    for row in doc["tests"].values():
        assert list(row) == ["linear_cka", "rsa"]
        for cell in row.values():
            assert set(cell) == {"score", "ci"}
            assert isinstance(cell["score"], float) and cell["ci"][0] <= cell["ci"][1]
    # Linear CKA falls with the distance between layers of these MLPs.
    assert doc["tests"]["layer_monotonicity"]["linear_cka"]["score"] > 0.9
    assert "linear_cka" in out and "label_randomization" in out
    rows = list(csv.DictReader((d / "card.csv").open()))
    assert {(r["test"], r["statistic"]) for r in rows} == {("layer_monotonicity", "spearman"),
                                                          ("layer_monotonicity", "violation_rate"),
                                                          ("label_randomization", "auprc")}
    assert (d / "cache" / "cka_core" / "trust_pairs.json").exists()


def test_unknown_test_lists_the_valid_ones(runs):
    line = _one_line_error(runs[1]["bad_test"])
    assert "nope" in line and all(t in line for t in TESTS)


def test_unknown_measure_lists_the_valid_ones(runs):
    line = _one_line_error(runs[1]["bad_measure"])
    # jsd is a measure of outputs, the ground truth here: not a candidate.
    assert "unknown measure 'jsd'" in line and "linear_cka" in line


def test_bad_resamples_and_unwritable_output_are_one_line(runs):
    assert "--resamples" in _one_line_error(runs[1]["bad_resamples"])
    _one_line_error(runs[1]["bad_out"])


def test_the_default_run_prints_the_shipped_card_without_computing_it(tmp_path):
    """Every test and measure at the default settings: the shipped card (sample_models.zoo_scorecard),
    written as asked, and no pair computed (nothing goes into the pair cache)."""
    from sample_models import zoo_scorecard
    from cka_core.trust import candidate_measures

    run = _start(tmp_path, "--json", tmp_path / "card.json")
    out, err = run.communicate(timeout=300)
    code = run.returncode
    shipped = zoo_scorecard.shipped(candidate_measures(), 500, 0, zoo_scorecard.CONFIDENCE)
    assert code == 0, err
    assert json.loads((tmp_path / "card.json").read_text()) == json.loads(shipped.to_json())
    assert all(m in out for m in candidate_measures())
    assert not (tmp_path / "cache" / "cka_core" / "trust_pairs.json").exists()
