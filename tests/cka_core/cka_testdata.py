"""Shared data generators and hypothesis strategies for the cka_core tests (no tests here)."""
from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from .reference import random_orthogonal

# One hypothesis profile for the property tests: enough examples to matter, no deadline (the first
# call into torch/BLAS can be slow), and no health check on generation time.
PROPERTY = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
PROPERTY_FEW = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def correlated_pair(rng: np.random.Generator, n: int, dx: int, dy: int, noise: float = 1.0,
                    offset: float = 3.0):
    """X (n, dx) with uneven column scales and a non-zero mean; Y (n, dy) a noisy linear image of
    X, so that CKA lands strictly between 0 and 1."""
    X = rng.standard_normal((n, dx)) * rng.uniform(0.3, 3.0, dx) + rng.uniform(-offset, offset, dx)
    Y = X @ rng.standard_normal((dx, dy)) + noise * rng.standard_normal((n, dy)) * X.std()
    Y += rng.uniform(-offset, offset, dy)
    return X, Y


def layers(rng: np.random.Generator, n: int, widths, shared: int = 3):
    """A list of (n, w) layers sharing a low-dimensional latent, so off-diagonal CKA is non-trivial."""
    Z = rng.standard_normal((n, shared))
    out = []
    for w in widths:
        M = rng.standard_normal((shared, w))
        out.append(Z @ M + 0.7 * rng.standard_normal((n, w)) + rng.uniform(-2, 2, w))
    return out


def with_offset_f32(X: np.ndarray, offset: float = 1e4) -> np.ndarray:
    """float32 copy of X with a large constant added to every entry (catastrophic-cancellation bait)."""
    return (np.asarray(X, dtype=np.float64) + offset).astype(np.float32)


@st.composite
def pairs(draw, min_n: int = 5, max_n: int = 40, max_d: int = 12):
    """(X, Y) drawn through a seed: shapes vary (n < d, n > d, d = 1), data are well conditioned."""
    n = draw(st.integers(min_n, max_n))
    dx = draw(st.integers(1, max_d))
    dy = draw(st.integers(1, max_d))
    seed = draw(st.integers(0, 2**32 - 1))
    return correlated_pair(np.random.default_rng(seed), n, dx, dy)


seeds = st.integers(0, 2**32 - 1)
scales = st.floats(1e-3, 1e3)


def invariance_map(kind: str, Z: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Z under a random map of one invariance class (a key of cka_core.measures.INVARIANCES)."""
    d = Z.shape[1]
    if kind == "orthogonal":
        return Z @ random_orthogonal(d, rng)
    if kind == "isotropic_scaling":
        return Z * float(rng.choice([1e-2, 0.3, 7.0, 250.0]))
    if kind == "invertible_linear":      # condition number <= 10
        M = random_orthogonal(d, rng) * rng.uniform(0.3, 3.0, d) @ random_orthogonal(d, rng)
        return Z @ M
    if kind == "translation":
        return Z + rng.uniform(-20, 20, d)
    if kind == "permutation":
        return Z[:, rng.permutation(d)]
    raise AssertionError(kind)
