"""Geadah et al.'s learnable f-I curve (docs/theory.md §10.1).

    gamma(x; n, s) = (1 - s) * softplus(n x) / n + s * sigmoid(n x)

with gain n > 0 and saturation s in [0, 1]: s = 0 is a softplus of sharpness n (ReLU as
n -> inf), s = 1 a sigmoid of gain n (a step as n -> inf), and gamma(0) = (1 - s) ln2 / n + s / 2.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["gamma", "Gamma", "N_MIN", "SOFTPLUS_THRESHOLD", "default_gain_init"]

#: n x above which softplus(n x) is computed as n x (its linear branch).
SOFTPLUS_THRESHOLD = 40.0

#: Smallest gain the :class:`Gamma` module uses (its n is clamped to at least this).
N_MIN = 1e-3


def gamma(x, n, s) -> torch.Tensor:
    """gamma(x; n, s) = (1 - s) softplus(n x) / n + s sigmoid(n x), elementwise with broadcasting.

    ``x``, ``n``, ``s`` are tensors or numbers; ``n`` must be positive. The expression is
    overflow-safe for any n x: softplus switches to its linear branch for n x > 40 (where
    log(1 + e^z) - z < 5e-18, below float64 rounding; e^40 is far from overflow even in float32)
    and ``torch.sigmoid`` saturates without overflow, so gamma(x; n, s) = (1 - s) x + s there. The
    gradients with respect to x, n and s are those of the formula (autograd), see
    docs/theory.md §10.1 for their closed forms. No clamping happens here: that is the
    job of :class:`Gamma`.
    """
    x = torch.as_tensor(x)
    n = torch.as_tensor(n, dtype=x.dtype if x.is_floating_point() else None)
    s = torch.as_tensor(s, dtype=n.dtype)
    z = n * x
    return (1 - s) * F.softplus(z, beta=1.0, threshold=SOFTPLUS_THRESHOLD) / n + s * torch.sigmoid(z)


def default_gain_init(size: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """The authors' initial gain: n = 5 + 2 U(0, 1), one draw per entry."""
    return 5.0 + 2.0 * torch.rand(size, generator=generator)


class Gamma(nn.Module):
    """Learnable gamma activation with gain ``n`` and saturation ``s`` as parameters.

    Parameters
    ----------
    size : int
        Number of neurons (the last dimension of the input). Only used to shape the
        parameters in heterogeneous mode.
    mode : {"homogeneous", "heterogeneous"}
        ``"homogeneous"``: one (n, s) shared by every neuron of the layer (parameters of shape
        (1,)). ``"heterogeneous"``: one (n_i, s_i) per neuron (shape (size,)).
    n0 : float or None
        Initial gain. ``None`` (default) uses the authors' n = 5 + 2 U(0, 1) (one draw per
        parameter, from torch's global generator).
    s0 : float
        Initial saturation (default 0.5). The authors start at s = 0 (a softplus) with s
        unconstrained; here s is clamped into [0, 1], and a neuron whose s is pushed below 0
        on the first step would get no gradient for s ever again (every neuron did, in our
        runs from s = 0). Starting mid-range lets each neuron move its saturation either way.
    clamp : bool
        True (default): in the forward pass n is clamped to at least :data:`N_MIN` and s into
        [0, 1]. False: n and s are used as they are, as in the authors' code (the networks
        trained by their protocol, ``init="geadah"`` in :mod:`sample_models.architectures`).

    The raw parameters are left as they are; :meth:`effective` returns the values actually used.
    The input's last dimension must be ``size`` in heterogeneous mode.
    """

    def __init__(self, size: int, mode: str = "heterogeneous", n0: float | None = None, s0: float = 0.5,
                 clamp: bool = True):
        super().__init__()
        if mode not in ("homogeneous", "heterogeneous"):
            raise ValueError(f"mode must be 'homogeneous' or 'heterogeneous', got {mode!r}.")
        self.size = int(size)
        self.mode = mode
        k = self.size if mode == "heterogeneous" else 1
        n_init = default_gain_init(k) if n0 is None else torch.full((k,), float(n0))
        self.n = nn.Parameter(n_init)
        self.s = nn.Parameter(torch.full((k,), float(s0)))
        self.clamp = bool(clamp)

    def effective(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The (n, s) used in the forward pass: n clamped to >= N_MIN, s clamped into [0, 1] (as they are
        when ``clamp`` is False)."""
        if not self.clamp:
            return self.n, self.s
        return self.n.clamp_min(N_MIN), self.s.clamp(0.0, 1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, s = self.effective()
        return gamma(x, n, s)

    def extra_repr(self) -> str:
        return f"size={self.size}, mode={self.mode!r}, clamp={self.clamp}"
