"""The methods the benchmark times: ours (``cka_core.cka_matrix``) and the peer libraries' entry
points (pytorch-cka's ``cka_from_features`` and ``compute_cka``, torch-cka's ``CKA.compare``), with
the adapters the hook-based peers need: a model whose layers replay precomputed activations and a
loader of pre-batched indices."""
from __future__ import annotations

import contextlib
import io
import math
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

import cka as pytorch_cka  # PyPI pytorch-cka 1.1.3 installs the package ``cka``
import torch_cka  # PyPI torch-cka 0.21, AntixK

import cka_core


class _Replay(nn.Module):
    """An identity-like layer: returns its precomputed activation for the batch indices."""

    def __init__(self, activation: torch.Tensor):
        super().__init__()
        self.activation = activation  # a plain attribute: no copy, no parameter

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        if idx.numel() == self.activation.shape[0]:  # the whole data set, in order: no gather
            return self.activation
        return self.activation.index_select(0, idx)


class ReplayModel(nn.Module):
    """A 'network' whose layers l0, l1, ... replay precomputed activations, so hook-based
    libraries see exactly the given features and no real forward pass is timed."""

    def __init__(self, layers):
        super().__init__()
        for k, x in enumerate(layers):
            self.add_module(f"l{k}", _Replay(x))

    def forward(self, idx: torch.Tensor):
        out = None
        for module in self.children():
            out = module(idx)
        return out


class _IndexBatches(torch.utils.data.Dataset):
    """Item k is the k-th batch of row indices, as a 1-tuple (both peers unpack batch[0])."""

    def __init__(self, n: int, batch: int):
        self.n, self.batch = n, batch

    def __len__(self) -> int:
        return math.ceil(self.n / self.batch)

    def __getitem__(self, k: int):
        return (torch.arange(k * self.batch, min(self.n, (k + 1) * self.batch)),)


def index_loader(n: int, batch: int) -> torch.utils.data.DataLoader:
    """A DataLoader of pre-batched indices (batch_size=None): no per-row collation overhead."""
    return torch.utils.data.DataLoader(_IndexBatches(n, batch), batch_size=None, shuffle=False)


def _quiet():
    """Silence the peers' tqdm bars and warnings (not their work)."""
    stack = contextlib.ExitStack()
    stack.enter_context(contextlib.redirect_stderr(io.StringIO()))
    stack.enter_context(warnings.catch_warnings())
    warnings.simplefilter("ignore")
    return stack


def ours_debiased(layers):
    return cka_core.cka_matrix(layers, debiased=True)


def ours_minibatch(layers):
    return cka_core.cka_matrix(layers, debiased=True, batch_size=256)


def ours_biased(layers):
    return cka_core.cka_matrix(layers, debiased=False)


def pcka_features(layers):
    return pytorch_cka.cka_from_features(list(layers), list(layers)).numpy()


def pcka_class(layers):
    model = ReplayModel(layers)
    names = [f"l{k}" for k in range(len(layers))]
    with _quiet():
        out = pytorch_cka.compute_cka(
            model, model, index_loader(layers[0].shape[0], layers[0].shape[0]),
            layers=names, device="cpu", progress=False,
        )[0]
    return out.numpy()


def torch_cka_full_batch(layers):
    # Fresh models every call: torch-cka registers hooks in __init__ and never removes them.
    m1, m2 = ReplayModel(layers), ReplayModel(layers)
    names = [f"l{k}" for k in range(len(layers))]
    loader = index_loader(layers[0].shape[0], layers[0].shape[0])
    with _quiet():
        c = torch_cka.CKA(m1, m2, model1_name="A", model2_name="B", model1_layers=names, model2_layers=names, device="cpu")
        c.compare(loader, loader)
    return c.export()["CKA"].numpy()


@dataclass
class Method:
    key: str
    label: str
    fn: object
    reference: str  # which float64 reference it estimates ("debiased", "biased", or "" = other estimator)
    rows: int | None = None  # None: all n rows; else the first `rows` rows only
    times: list[float] = field(default_factory=list)  # wall
    cpu_times: list[float] = field(default_factory=list)  # process CPU time (all threads)
    result: np.ndarray | None = None
    failure: str | None = None
    capped: bool = False


def make_methods() -> list[Method]:
    return [
        Method("ours", "ours `cka_matrix(debiased=True)`", ours_debiased, "debiased"),
        Method("pcka_feat", "pytorch-cka `cka_from_features`", pcka_features, "debiased"),
        Method("pcka_class", "pytorch-cka `compute_cka` (1 batch)", pcka_class, "debiased"),
        Method("torch_cka", "torch-cka `CKA.compare` (1 batch)", torch_cka_full_batch, "debiased"),
        Method("ours_mb", "ours minibatch b=256", ours_minibatch, ""),
        Method("ours_biased", "ours biased", ours_biased, "biased"),
    ]


PEERS = ("pcka_feat", "pcka_class", "torch_cka")
