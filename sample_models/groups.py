"""Groups of small MLPs trained by recipe for ReSi's grounding tests (Klabunde et al., ICLR 2025).

``python -m sample_models.groups`` trains every member and writes
``weights/groups/<member>.safetensors`` (float16) and ``weights/groups/manifest.json`` (each
member's recipe, test accuracy and the SHA-256 of its file). :func:`member_data` loads a member
and returns plain arrays on the held-out digits (named hidden layers, logits, labels), which is
all ``cka_core.trust`` needs; this module imports neither ``cka_core`` nor Streamlit.

Every member is a ReLU MLP of width :data:`WIDTH` on :func:`sample_models.digits`; the groups:

* ``seed``: :data:`BASE_SEEDS` seeds of the base recipe (accuracy and output correlation);
* ``labels``: a fraction of the training labels replaced by a fixed random permutation of them
  (0, 25, 50, 75, 100 %), 3 seeds each (label randomisation);
* ``shortcut``: a label-leaking patch (one of 10 blank border pixels set to 1) in every training
  input, showing the true label with probability ``rate`` and a uniformly random class otherwise;
  evaluated on test digits whose patch is uniformly random (shortcut affinity);
* ``noise``: Gaussian noise of standard deviation sigma added to every training batch (augmentation);
* ``deep``: deeper MLPs (:data:`DEEP_DEPTH` hidden layers), whose layers are compared within
  each model (layer monotonicity).
"""
from __future__ import annotations

import argparse
import functools
import hashlib
import json
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .architectures import MLP
from .data import digits
from .zoo import WEIGHTS_DIR

__all__ = ["MemberSpec", "MEMBERS", "GROUPS", "GROUPS_DIR", "PATCH_PIXELS", "train_member", "load_member",
           "member_data", "test_inputs", "manifest", "suites", "TEST_GROUPS", "main"]

GROUPS_DIR = WEIGHTS_DIR / "groups"
WIDTH = 64
DEPTH = 2
DEEP_DEPTH = 6
BASE_SEEDS = tuple(range(10))
GROUP_SEEDS = (0, 1, 2)
LABEL_FRACTIONS = (0.0, 0.25, 0.5, 0.75, 1.0)
SHORTCUT_RATES = (0.0, 0.25, 0.5, 0.75, 1.0)
NOISE_LEVELS = (0.0, 0.1, 0.25, 0.5)
DEEP_SEEDS = tuple(range(5))
#: Pixels (row * 8 + column) that are blank in nearly every digit: column 0, and rows 2-3 of column 7.
#: Class k is written by setting pixel ``PATCH_PIXELS[k]`` to 1.
PATCH_PIXELS = tuple(8 * r for r in range(8)) + (8 * 2 + 7, 8 * 3 + 7)
#: The inputs a test's members are evaluated on: the test digits, or the test digits with a random patch.
PLAIN, PATCHED = "plain", "patched"


@dataclass(frozen=True)
class MemberSpec:
    """One member's recipe: the base recipe (AdamW, one-cycle cosine learning rate, ``epochs`` over
    the digits training split, batch order and initialisation from ``seed``) with one change."""

    seed: int
    depth: int = DEPTH
    label_fraction: float = 0.0         # share of training labels replaced (a fixed random permutation)
    shortcut_rate: float | None = None  # None: no patch; else P(patch shows the true label)
    noise: float = 0.0                  # std of Gaussian noise added to each training batch
    epochs: int = 40
    lr: float = 3e-3
    weight_decay: float = 1e-4
    batch_size: int = 64

    @property
    def inputs(self) -> str:
        return PLAIN if self.shortcut_rate is None else PATCHED


def _members() -> tuple[dict[str, MemberSpec], dict[str, dict[str, tuple[str, ...]]]]:
    members: dict[str, MemberSpec] = {}
    groups: dict[str, dict[str, tuple[str, ...]]] = {"seed": {}, "labels": {}, "shortcut": {}, "noise": {},
                                                      "deep": {}}

    def add(name: str, spec: MemberSpec) -> str:
        members[name] = spec
        return name

    # The base recipe's seeds 0-2 are also the 0 % label and sigma = 0 members: the same model.
    groups["seed"]["base"] = tuple(add(f"base_s{s}", MemberSpec(s)) for s in BASE_SEEDS)
    for f in LABEL_FRACTIONS:
        groups["labels"][f"{f:.0%}"] = tuple(
            f"base_s{s}" if f == 0 else add(f"labels{round(100 * f)}_s{s}", MemberSpec(s, label_fraction=f))
            for s in GROUP_SEEDS)
    for r in SHORTCUT_RATES:
        groups["shortcut"][f"{r:.0%}"] = tuple(
            add(f"shortcut{round(100 * r)}_s{s}", MemberSpec(s, shortcut_rate=r)) for s in GROUP_SEEDS)
    for sigma in NOISE_LEVELS:
        groups["noise"][f"σ={sigma:g}"] = tuple(
            f"base_s{s}" if sigma == 0 else add(f"noise{round(100 * sigma)}_s{s}", MemberSpec(s, noise=sigma))
            for s in GROUP_SEEDS)
    groups["deep"]["deep"] = tuple(add(f"deep_s{s}", MemberSpec(s, depth=DEEP_DEPTH)) for s in DEEP_SEEDS)
    return members, groups


MEMBERS, GROUPS = _members()


def with_patch(X: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """``X`` (n, 64) with pixel ``PATCH_PIXELS[classes[i]]`` of row i set to 1 (a copy)."""
    out = np.array(X, dtype=np.float32, copy=True)
    out[np.arange(out.shape[0]), np.asarray(PATCH_PIXELS)[classes]] = 1.0
    return out


def _training_set(spec: MemberSpec) -> tuple[np.ndarray, np.ndarray]:
    """(inputs, labels) the member is trained on; every random choice is drawn from its seed."""
    d = digits()
    X, y = np.array(d.X_train), np.array(d.y_train)
    rng = np.random.RandomState(1000 + spec.seed)
    if spec.label_fraction > 0:
        # The replaced labels are a permutation of themselves: class frequencies stay as they are.
        chosen = rng.permutation(y.size)[: round(spec.label_fraction * y.size)]
        y[chosen] = y[rng.permutation(chosen)]
    if spec.shortcut_rate is not None:
        agrees = rng.uniform(size=y.size) < spec.shortcut_rate
        X = with_patch(X, np.where(agrees, y, rng.randint(0, 10, size=y.size)))
    return X, y


@functools.lru_cache(maxsize=2)
def test_inputs(kind: str = PLAIN) -> np.ndarray:
    """The held-out digits every member of a test reads: as they are, or with a uniformly random
    patch (seed 0) for the shortcut test, so the patch carries no information about the label."""
    X = digits().X_test
    if kind == PLAIN:
        return X
    if kind != PATCHED:
        raise ValueError(f"unknown inputs {kind!r}; valid: {PLAIN}, {PATCHED}.")
    out = with_patch(X, np.random.RandomState(0).randint(0, 10, size=X.shape[0]))
    out.setflags(write=False)
    return out


def train_member(spec: MemberSpec) -> tuple[MLP, dict]:
    """Build ``spec``'s MLP from its seed and train it; returns (model in eval mode, metrics)."""
    X_np, y_np = _training_set(spec)
    X, y = torch.from_numpy(X_np), torch.from_numpy(y_np)
    torch.manual_seed(spec.seed)
    model = MLP(width=WIDTH, depth=spec.depth)
    n = X.shape[0]
    steps = math.ceil(n / spec.batch_size)
    opt = torch.optim.AdamW(model.parameters(), lr=spec.lr, weight_decay=spec.weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=spec.lr, total_steps=spec.epochs * steps,
                                                   pct_start=0.1, anneal_strategy="cos")
    gen = torch.Generator().manual_seed(spec.seed)
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    for _ in range(spec.epochs):
        order = torch.randperm(n, generator=gen)
        for i in range(0, n, spec.batch_size):
            idx = order[i: i + spec.batch_size]
            xb = X[idx]
            if spec.noise > 0:
                xb = xb + spec.noise * torch.randn(xb.shape, generator=gen)
            opt.zero_grad(set_to_none=True)
            loss_fn(model(xb), y[idx]).backward()
            opt.step()
            schedule.step()
    model.eval()
    model.requires_grad_(False)
    # Float16 is what ships: measure the accuracy of the weights as they will be loaded.
    model.load_state_dict({k: v.half().float() for k, v in model.state_dict().items()})
    d = digits()
    with torch.no_grad():
        test = float((model(torch.from_numpy(np.array(test_inputs(spec.inputs)))).argmax(1)
                      == torch.from_numpy(np.array(d.y_test))).double().mean())
    return model, {"test_accuracy": round(test, 6)}


@functools.lru_cache(maxsize=1)
def manifest() -> dict:
    """``weights/groups/manifest.json``: per member its recipe, test accuracy and SHA-256."""
    return json.loads((GROUPS_DIR / "manifest.json").read_text(encoding="utf-8"))


def _check_member(name) -> MemberSpec:
    if not isinstance(name, str) or name not in MEMBERS:
        raise ValueError(f"Unknown group member {name!r}; valid names: {', '.join(MEMBERS)}.")
    return MEMBERS[name]


@functools.lru_cache(maxsize=None)
def load_member(name: str) -> MLP:
    """Member ``name`` with its shipped float16 weights (as float32), in eval mode; read with
    safetensors (never unpickled) after checking the file's SHA-256 against the manifest."""
    from safetensors.torch import load

    spec = _check_member(name)
    path = GROUPS_DIR / f"{name}.safetensors"
    if not path.exists():
        raise FileNotFoundError(f"Weights of group member {name!r} are missing ({path}); run "
                                "`python -m sample_models.groups`.")
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != manifest()[name]["sha256"]:
        raise ValueError(f"{path} does not match the SHA-256 in the manifest; run `python -m sample_models.groups`.")
    model = MLP(width=WIDTH, depth=spec.depth)
    model.load_state_dict({k: v.float() for k, v in load(data).items()}, strict=True)
    model.eval()
    model.requires_grad_(False)
    return model


def hidden_and_logits(model: MLP, X: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """({"hidden1": (n, width), ...} post-activation, logits (n, 10)) of ``model`` on ``X``."""
    layers = {}
    with torch.no_grad():
        h = torch.from_numpy(np.array(X, dtype=np.float32))
        for name, block in model.named_children():
            h = block(h)
            if name != "logits":
                layers[name] = h.numpy()
    return layers, h.numpy()


def member_data(name: str) -> dict:
    """Member ``name`` on the inputs of its test (:func:`test_inputs`), as plain arrays:
    ``{"layers": {"hidden1": (n, 64), ...} in forward order, "logits": (n, 10), "labels": (n,),
    "inputs": (n, 64)}``. The last hidden layer is the penultimate layer ReSi compares."""
    spec = _check_member(name)
    X = test_inputs(spec.inputs)
    layers, logits = hidden_and_logits(load_member(name), X)
    return {"layers": layers, "logits": logits, "labels": np.array(digits().y_test), "inputs": np.array(X)}


#: The members of each grounding test: (group of GROUPS, whether each member's group label is kept).
TEST_GROUPS = {
    "accuracy_correlation": ("seed", False),
    "output_correlation": ("seed", False),
    "label_randomization": ("labels", True),
    "shortcut_affinity": ("shortcut", True),
    "augmentation": ("noise", True),
    "layer_monotonicity": ("deep", False),
}


def suites(tests=None) -> dict[str, list[dict]]:
    """For each grounding test (default: all six), its members as plain keyword dicts
    (``name``, ``layers``, ``logits``, ``labels``, ``group``, ``inputs``): ``cka_core.trust.Member(**d)``."""
    out = {}
    for test in tests or TEST_GROUPS:
        kind, grouped = TEST_GROUPS[test]
        out[test] = [{"name": name, **member_data(name), "group": label if grouped else None}
                     for label, names in GROUPS[kind].items() for name in names]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sample_models.groups", description=__doc__.split("\n")[0])
    parser.add_argument("names", nargs="*", help="members to retrain (default: all)")
    parser.add_argument("--out", type=Path, default=GROUPS_DIR, help="weights directory")
    args = parser.parse_args(argv)
    unknown = [nm for nm in args.names if nm not in MEMBERS]
    if unknown:
        parser.error(f"unknown member(s) {', '.join(unknown)}; valid names: {', '.join(MEMBERS)}")
    from safetensors.torch import save_file

    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(1)  # one thread, deterministic kernels: a rerun here gives the same bytes
    torch.use_deterministic_algorithms(True)
    try:
        args.out.mkdir(parents=True, exist_ok=True)
        path = args.out / "manifest.json"
        entries = json.loads(path.read_text()) if path.exists() else {}
        for name in args.names or list(MEMBERS):
            start = time.perf_counter()
            model, metrics = train_member(MEMBERS[name])
            file = args.out / f"{name}.safetensors"
            save_file({k: v.half().contiguous() for k, v in model.state_dict().items()}, str(file),
                      metadata={"name": name})
            entries[name] = {"recipe": asdict(MEMBERS[name]), "inputs": MEMBERS[name].inputs, **metrics,
                             "sha256": hashlib.sha256(file.read_bytes()).hexdigest()}
            print(f"{name:<16} test accuracy {metrics['test_accuracy']:.4f}  ({time.perf_counter() - start:.1f} s)",
                  flush=True)
        ordered = {k: entries[k] for k in MEMBERS if k in entries}
        path.write_text(json.dumps(ordered, indent=1) + "\n")
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)
    return 0


if __name__ == "__main__":
    sys.exit(main())
