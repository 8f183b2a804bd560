"""The benchmark's data: the regimes (n examples, layer widths) and correlated, network-like float32
activations for them, with and without offsets (``BIG_OFFSET`` is the hardest data set's)."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

BIG_OFFSET = 1e4


@dataclass(frozen=True)
class Regime:
    name: str
    n: int
    widths: tuple[int, ...]
    seed: int


FULL_REGIMES = (
    Regime("narrow", 4000, (64, 96, 128, 192, 256, 320, 384, 512), seed=1),
    Regime("wide", 1000, (512, 1024, 1536, 2048, 3072, 4096), seed=2),
)
QUICK_REGIMES = (
    Regime("narrow", 400, (64, 96, 128, 192, 256, 320, 384, 512), seed=1),
    Regime("wide", 160, (512, 1024, 1536, 2048, 3072, 4096), seed=2),
)


def make_activations(n: int, widths: tuple[int, ...], seed: int, latent: int = 128):
    """Correlated, network-like float32 activations, with and without per-layer offsets.

    A latent code h (n x latent, power-law spectrum k^-1 as in trained networks) drifts from
    layer to layer (each layer keeps 80% of the previous code's variance and mixes in fresh
    noise), and layer l is relu (even l) or tanh (odd l) of a random projection of its code plus
    a bias. Neighbouring layers are similar and distant ones less so, which spreads the CKA
    values over (0, 1) (about 0.2..0.8). Real activations do not have zero mean: layer l gets a
    common offset growing with depth from 0.1 to 3 (the activations' std is about 0.6; a relu
    layer's own mean is about 0.5), times a per-feature factor in [1, 1.5]; that is what exposes
    float32 cancellation in Grams formed before centring.

    Returns (realistic, zero_mean): float32 lists; zero_mean is the same activations without
    offsets, column-centred in float64 before the cast.
    """
    g = torch.Generator().manual_seed(seed)
    f64 = torch.float64
    spectrum = torch.arange(1, latent + 1, dtype=f64) ** -1.0
    offsets = np.logspace(-1.0, 0.5, len(widths))
    h = torch.randn(n, latent, generator=g, dtype=f64)
    realistic, zero_mean = [], []
    for l, d in enumerate(widths):
        h = math.sqrt(0.8) * h + math.sqrt(0.2) * torch.randn(n, latent, generator=g, dtype=f64)
        pre = (h * spectrum) @ torch.randn(latent, d, generator=g, dtype=f64)
        pre = pre / pre.std() + 0.5 * torch.randn(d, generator=g, dtype=f64)
        x = torch.relu(pre) if l % 2 == 0 else torch.tanh(pre)
        offset = offsets[l] * (1.0 + 0.5 * torch.rand(d, generator=g, dtype=f64))
        realistic.append((x + offset).to(torch.float32).contiguous())
        zero_mean.append((x - x.mean(dim=0)).to(torch.float32).contiguous())
    return realistic, zero_mean


def add_offset(layers, offset: float):
    """The same activations + offset, in float32 (the rounding is part of the data)."""
    return [(x + offset).contiguous() for x in layers]

