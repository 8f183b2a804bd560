"""The files the sessions upload: small, valid representation files in each format the app takes."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def make_upload_files(folder: Path, seed: int = 0) -> dict[str, Path]:
    """Small, valid representation files: sidebar uploads (.npz with labels, .npy, .csv) and two
    .npz files for Compare's sides (359 rows, as many as the zoo's test split)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    labels = rng.integers(0, 4, 300)
    latent = rng.standard_normal((300, 4)) + 2.5 * np.eye(4)[labels]
    files["npz"] = folder / "acts_with_labels.npz"
    np.savez(files["npz"], hidden=latent @ rng.standard_normal((4, 24)) + 0.3 * rng.standard_normal((300, 24)),
             maps=(latent @ rng.standard_normal((4, 2 * 3 * 3))).reshape(300, 2, 3, 3), labels=labels)
    files["npy"] = folder / "layer_acts.npy"
    np.save(files["npy"], rng.standard_normal((200, 16)).astype(np.float32))
    files["csv"] = folder / "features.csv"
    table = rng.standard_normal((150, 8))
    files["csv"].write_text(",".join(f"f{i}" for i in range(8)) + "\n"
                            + "\n".join(",".join(f"{v:.5f}" for v in row) for row in table) + "\n")
    z = rng.standard_normal((359, 3))
    files["side_a"] = folder / "model_a.npz"
    np.savez(files["side_a"], early=z @ rng.standard_normal((3, 20)) + rng.standard_normal((359, 20)),
             late=z @ rng.standard_normal((3, 10)))
    files["side_b"] = folder / "model_b.npz"
    np.savez(files["side_b"], block1=z @ rng.standard_normal((3, 12)) + 0.5 * rng.standard_normal((359, 12)),
             block2=rng.standard_normal((359, 6)))
    return files
