"""The examples the README points to run as written and compute what they claim."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import sample_models
from cka_core import capture, cka_matrix

from .cka_core.test_distributed import free_port

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_ddp_example_gives_the_single_process_heatmap_of_the_model_it_trained(tmp_path):
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port",
                           str(free_port()), "examples/ddp_cka.py", "--steps", "5", "--out", str(tmp_path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "359 examples, 2 ranks" in done.stdout
    heatmap = json.loads((tmp_path / "heatmap.json").read_text())
    original, finetuned = sample_models.load("mlp_seed0"), sample_models.load("mlp_seed0")
    finetuned.load_state_dict(load_file(tmp_path / "finetuned.safetensors"))
    assert not torch.equal(finetuned.hidden1.linear.weight, original.hidden1.linear.weight)  # it did train
    x, layers = sample_models.digits().X_test, heatmap["layers"]
    want = cka_matrix(capture(finetuned, x, layers), capture(original, x, layers), debiased=True)
    np.testing.assert_allclose(heatmap["values"], want, atol=1e-6)
