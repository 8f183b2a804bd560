"""The installable package: ``pip install .`` gives cka_core and sample_models (with the shipped
weights) and a ``cka`` console script, and nothing of the app."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

import cka_core
import sample_models

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    """The wheel ``pip install .`` would install, built from a copy of the checkout's package files
    (setuptools writes build/ and *.egg-info/ next to the sources)."""
    source, out = tmp_path_factory.mktemp("source"), tmp_path_factory.mktemp("wheel")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for package in ("cka_core", "sample_models"):
        shutil.copytree(ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out),
                    str(source)], check=True, capture_output=True, text=True, timeout=300)
    (path,) = out.glob("cka_pitfalls_explorer-*.whl")
    return zipfile.ZipFile(path)


def test_the_wheel_holds_both_packages_the_weights_and_the_console_script(wheel):
    names = set(wheel.namelist())
    for package in ("cka_core", "sample_models"):
        for source in (ROOT / package).rglob("*.py"):
            assert str(source.relative_to(ROOT)) in names, source
    manifest = json.loads((ROOT / "sample_models" / "weights" / "manifest.json").read_text())
    assert "sample_models/weights/manifest.json" in names
    for model in sample_models.available():
        assert f"sample_models/weights/{model}.safetensors" in names, model
    assert len(manifest) >= len(sample_models.available())
    assert "sample_models/weights/groups/scorecard.json.gz" in names  # `cka trust` prints it at once
    assert not [n for n in names if n.startswith(("ui/", "pages/", "tests/", "benchmarks/", "app.py"))]
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "cka = cka_core.cli:main" in wheel.read(entry_points).decode()
    metadata = wheel.read(next(n for n in names if n.endswith("METADATA"))).decode()
    assert "Requires-Dist: torch==2.13.0" in metadata  # the CPU build on disk; a range would pull CUDA


def test_the_tests_import_the_installed_package():
    assert Path(cka_core.__file__).resolve().parent == ROOT / "cka_core"
    script = Path(sys.executable).parent / "cka"
    assert script.exists(), "pip install -e . installs the cka console script"


def test_the_console_script_compares_two_files_and_refuses_a_bad_one(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((50, 8))
    np.savez(tmp_path / "a.npz", h1=x, h2=np.tanh(x @ rng.standard_normal((8, 5))))
    np.savez(tmp_path / "b.npz", g=x @ rng.standard_normal((8, 8)))
    cka = str(Path(sys.executable).parent / "cka")
    done = subprocess.run([cka, "compare", "a.npz", "b.npz", "--out", "heat.json"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    doc = json.loads((tmp_path / "heat.json").read_text())
    assert doc["layers_a"] == ["h1", "h2"] and doc["layers_b"] == ["g"]
    assert doc["values"][0][0] == pytest.approx(cka_core.linear_cka(x, np.load(tmp_path / "b.npz")["g"]), abs=1e-9)
    bad = subprocess.run([cka, "compare", "a.npz", "missing.npz"], cwd=tmp_path, capture_output=True, text=True,
                         timeout=120)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and bad.stderr.startswith("error: missing.npz")
    assert "usage: cka " in subprocess.run([cka, "--help"], capture_output=True, text=True, timeout=60).stdout
