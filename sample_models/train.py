"""Retrain the model zoo deterministically: ``python -m sample_models.train [names...]``.

Each model is trained on the digits training split with cross-entropy and a batch order drawn from
a generator seeded with the model's seed: with AdamW and a one-cycle cosine learning rate, or, for
the networks of Geadah et al.'s protocol (``schedule="plateau"``), with Adam and the learning rate
divided by 10 whenever the loss on a held-out, class-stratified fifth of the training split stops
improving, keeping the last epoch's weights as the authors do.
Torch runs on one thread with deterministic algorithms, so a rerun on the same machine gives
bit-identical weights (other CPUs may differ in the last bits). Weights are written to
``sample_models/weights/<name>.safetensors`` and ``weights/manifest.json`` records every
model's config, training settings, accuracies and the SHA-256 of its weights file.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .architectures import build
from .data import digits
from .zoo import WEIGHTS_DIR, ZOO, ModelSpec

__all__ = ["train_model", "main"]


def _accuracy(model: nn.Module, X: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    with torch.no_grad():
        return float((model(X).argmax(1) == y).double().mean())


def train_model(spec: ModelSpec, log=None) -> tuple[nn.Module, dict]:
    """Build ``spec``'s model from its seed and train it; returns (model in eval mode, metrics)."""
    d = digits()
    X_train = torch.from_numpy(d.X_train.copy())
    y_true = torch.from_numpy(d.y_train.copy())
    X_test = torch.from_numpy(d.X_test.copy())
    y_test = torch.from_numpy(d.y_test.copy())
    y_train = y_true
    if spec.shuffle_labels:
        perm = np.random.RandomState(spec.seed).permutation(y_true.shape[0])
        y_train = y_true[torch.from_numpy(perm)]

    torch.manual_seed(spec.seed)
    model = build(spec.config)
    fit = np.arange(X_train.shape[0])
    held_out = fit[:0]
    if spec.schedule == "plateau":
        fit, held_out = _stratified_fifth(y_true.numpy(), spec.seed)
    n = fit.size
    final_loss = float("nan")
    if spec.epochs > 0:
        loss_fn = nn.CrossEntropyLoss()
        steps_per_epoch = math.ceil(n / spec.batch_size)
        if spec.schedule == "plateau":
            opt = torch.optim.Adam(model.parameters(), lr=spec.lr, weight_decay=spec.weight_decay)
            plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, "min", patience=spec.patience)
            per_batch = None
        else:
            opt = torch.optim.AdamW(model.parameters(), lr=spec.lr, weight_decay=spec.weight_decay)
            per_batch = torch.optim.lr_scheduler.OneCycleLR(
                opt, max_lr=spec.lr, total_steps=spec.epochs * steps_per_epoch,
                pct_start=0.1, anneal_strategy="cos")
        gen = torch.Generator().manual_seed(spec.seed)
        for epoch in range(spec.epochs):
            model.train()
            order = torch.from_numpy(fit)[torch.randperm(n, generator=gen)]
            total = 0.0
            for i in range(0, n, spec.batch_size):
                idx = order[i : i + spec.batch_size]
                opt.zero_grad(set_to_none=True)
                loss = loss_fn(model(X_train[idx]), y_train[idx])
                loss.backward()
                opt.step()
                if per_batch is not None:
                    per_batch.step()
                total += float(loss.detach()) * idx.numel()
            final_loss = total / n
            if per_batch is None:
                model.eval()
                with torch.no_grad():
                    plateau.step(float(loss_fn(model(X_train[held_out]), y_train[held_out])))
            if log is not None and (epoch + 1) % max(1, spec.epochs // 5) == 0:
                log(f"    epoch {epoch + 1:4d}/{spec.epochs}  train loss {final_loss:.4f}")
    model.eval()
    metrics = {
        "test_accuracy": _accuracy(model, X_test, y_test),
        "train_accuracy": _accuracy(model, X_train, y_true),
        "train_accuracy_on_training_labels": _accuracy(model, X_train, y_train),
        "final_train_loss": final_loss,
    }
    return model, metrics


def _stratified_fifth(y: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(indices trained on, indices held out): a fifth of each class held out, drawn with ``seed``."""
    rng = np.random.RandomState(seed)
    held = np.concatenate([rng.permutation(np.flatnonzero(y == c))[: round(0.2 * np.count_nonzero(y == c))]
                           for c in np.unique(y)])
    mask = np.zeros(y.size, dtype=bool)
    mask[held] = True
    return np.flatnonzero(~mask), np.flatnonzero(mask)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sample_models.train", description=__doc__.split("\n")[0])
    parser.add_argument("names", nargs="*", help="models to retrain (default: the whole zoo)")
    parser.add_argument("--out", type=Path, default=WEIGHTS_DIR, help="weights directory")
    args = parser.parse_args(argv)
    unknown = [nm for nm in args.names if nm not in ZOO]
    if unknown:
        parser.error(f"unknown model(s) {', '.join(unknown)}; valid names: {', '.join(ZOO)}")
    names = args.names or list(ZOO)

    from safetensors.torch import save_file

    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    try:
        return _train_all(names, args.out, save_file)
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)


def _train_all(names: list[str], out: Path, save_file) -> int:
    out.mkdir(parents=True, exist_ok=True)
    manifest_path = out / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    manifest = {k: v for k, v in manifest.items() if k in ZOO}

    rows = []
    for name in names:
        spec = ZOO[name]
        print(f"training {name} ...", flush=True)
        t0 = time.perf_counter()
        model, metrics = train_model(spec, log=lambda s: print(s, flush=True))
        seconds = time.perf_counter() - t0
        state = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
        path = out / f"{name}.safetensors"
        save_file(state, str(path), metadata={"name": name})
        path.chmod(0o644)
        manifest[name] = {
            "description": spec.description,
            "role": spec.role,
            "config": spec.config,
            "training": spec.training_dict(),
            **{k: round(v, 6) if isinstance(v, float) and math.isfinite(v) else None
               for k, v in metrics.items()},
            "parameters": int(sum(v.numel() for v in state.values())),
            "sha256": _sha256(path),
        }
        rows.append((name, metrics["test_accuracy"], metrics["train_accuracy"], seconds))
        print(f"  {name}: test {metrics['test_accuracy']:.4f}  train {metrics['train_accuracy']:.4f}"
              f"  ({seconds:.1f} s)", flush=True)

    ordered = {k: manifest[k] for k in ZOO if k in manifest}
    manifest_path.write_text(json.dumps(ordered, indent=2) + "\n")

    print()
    print(f"{'model':<26} {'test acc':>9} {'train acc':>10} {'seconds':>8}")
    for name, te, tr, sec in rows:
        print(f"{name:<26} {te:>9.4f} {tr:>10.4f} {sec:>8.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
