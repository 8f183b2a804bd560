"""Architectures of the model zoo. Every model maps (n, 64) float32 digit rows to (n, 10) logits.

MLP (:class:`MLP`, an ``nn.Sequential``)::

    hidden1 = Sequential(linear: Linear(64, width),    act: ReLU | Gamma | Tanh)
    hidden2 = Sequential(linear: Linear(width, width), act: ...)
    ...
    hiddenD = Sequential(linear: Linear(width, width), act: ...)
    logits  = Linear(width, 10)

  The output of module ``hiddenk`` is the post-activation representation of hidden layer k,
  ``hiddenk.linear`` the pre-activation. Function-preserving edits act on these weights, e.g.
  for a ReLU MLP and positive ``d``: ``hiddenk.linear.weight[i] *= d[i]``,
  ``hiddenk.linear.bias[i] *= d[i]`` and ``hidden{k+1}.linear.weight[:, i] /= d[i]``
  (or ``logits.weight`` after the last hidden layer) leave the outputs unchanged.

CNN (:class:`CNN`, an ``nn.Sequential``)::

    image   = Unflatten(1, (1, 8, 8))
    conv1   = Sequential(conv: Conv2d(1, 16, 3, padding=1), act: ReLU)               -> (16, 8, 8)
    conv2   = Sequential(conv: Conv2d(16, 32, 3, padding=1), act: ReLU, pool: MaxPool2d(2))
                                                                                     -> (32, 4, 4)
    flatten = Flatten()                                                              -> 512
    fc1     = Sequential(linear: Linear(512, 64), act: ReLU)                         -> 64
    logits  = Linear(64, 10)

Recurrent networks (:class:`RNN`, :class:`AdaptiveRNN`) read the 8x8 image row by row
(8 steps of 8 pixels), or, with ``steps=64, input_size=1, permutation_seed=k``, pixel by pixel in
a fixed random order (Geadah et al.'s permuted sequential task, psMNIST, on the digits)::

    a_t = input(x_t) + recurrent(h_{t-1})       (input: Linear(8, H), recurrent: Linear(H, H, bias=False))
    h_t = act(a_t)                               (ReLU, or Gamma per neuron; h_0 = 0)
    step{t} = Identity(h_t)                      one module per step, each called once per forward
    logits  = Linear(H, 10) applied to h_8

In :class:`AdaptiveRNN` the activation is gamma(a_t; n_t, s_t) where a small controller RNN,
shared by all neurons but with a state per neuron, reads the neuron's pre-activation and sets
its gain and saturation at every step (Geadah et al.'s adaptive recurrent unit)::

    g^i_t = tanh(u * a^i_t + W g^i_{t-1} + b)    (g: G-dimensional, g_0 = 0)
    n^i_t = w_n . g^i_t + b_n,   s^i_t = w_s . g^i_t + b_s
    h^i_t = gamma(a^i_t; max(n^i_t, 1e-3), clip(s^i_t, 0, 1))

``init="geadah"`` builds a recurrent network as the authors' code does (github.com/vgeadah/NonlinMod,
``Networks.py``, ``common.py``; docs/theory.md §10.4): input weights Kaiming-normal, recurrent
weights "henaff" (the exponential of a skew-symmetric matrix of 2x2 rotation blocks, angles
U(-pi, 0)), gamma starting at s = 0 with one gain n = 5 + 2 U(0, 1) for every neuron, the
controller's input and state weights initialised the same way with zero biases, and n, s used
without clamping. ``init="torch"`` (default) keeps torch's defaults, s starting at 0.5 and the clamps.
"""
from __future__ import annotations

from collections import OrderedDict

import numpy as np
import torch
from torch import nn

from .activations import N_MIN, Gamma, default_gain_init, gamma

__all__ = ["MLP", "CNN", "RNN", "AdaptiveRNN", "AdaptiveController", "make_activation", "henaff_orthogonal", "build",
           "ACTIVATIONS", "INITS"]

ACTIVATIONS = ("relu", "tanh", "gamma_homogeneous", "gamma_heterogeneous")
INITS = ("torch", "geadah")


def henaff_orthogonal(size: int) -> torch.Tensor:
    """exp(A) for A skew-symmetric with A[2i, 2i+1] = -A[2i+1, 2i] = theta_i, theta_i ~ U(-pi, 0):
    a block-diagonal orthogonal matrix of 2x2 rotations (Henaff et al.'s initialisation, as used by
    Geadah et al.). Angles from torch's global generator, so a seeded build is reproducible."""
    theta = -torch.pi * torch.rand(size // 2, dtype=torch.float64)
    A = torch.zeros(size, size, dtype=torch.float64)
    idx = torch.arange(0, 2 * (size // 2), 2)
    A[idx, idx + 1] = theta
    return torch.linalg.matrix_exp(A - A.T).to(torch.float32)


def make_activation(name: str, size: int, init: str = "torch") -> nn.Module:
    """The activation module called ``name`` (one of :data:`ACTIVATIONS`) for ``size`` neurons.

    ``init="geadah"``: gamma as the authors start it, s = 0 and one gain 5 + 2 U(0, 1) shared by
    every neuron at the start, unclamped."""
    if name == "relu":
        return nn.ReLU()
    if name == "tanh":
        return nn.Tanh()
    if name in ("gamma_homogeneous", "gamma_heterogeneous"):
        mode = name.removeprefix("gamma_")
        if init == "geadah":
            return Gamma(size, mode=mode, n0=float(default_gain_init(1)), s0=0.0, clamp=False)
        return Gamma(size, mode=mode)
    raise ValueError(f"Unknown activation {name!r}; choose one of {', '.join(ACTIVATIONS)}.")


class _SequentialModel(nn.Sequential):
    """A ``nn.Sequential`` whose top-level children can be run from any layer onwards."""

    input_dim = 64

    def layer_names(self) -> list[str]:
        raise NotImplementedError

    def run_from_layers(self) -> list[str]:
        """Layers :meth:`run_from` accepts: every layer of :meth:`layer_names`."""
        return self.layer_names()

    def run_from(self, layer: str, z: torch.Tensor) -> torch.Tensor:
        """Feed ``z``, the output of module ``layer`` (shaped as that output), through the rest.

        ``layer`` is a top-level child (``"hidden2"``) or a module inside a nested
        ``nn.Sequential`` block (``"hidden2.linear"``, the pre-activation).
        """
        parts = layer.split(".")
        rest: list[nn.Module] = []
        container: nn.Module = self
        chain = []
        for p in parts:
            if not isinstance(container, nn.Sequential) or p not in container._modules:
                raise ValueError(
                    f"run_from: {layer!r} is not a block of this {type(self).__name__}; "
                    f"supported layers: {', '.join(self.run_from_layers())} "
                    "(or a module inside one of them, e.g. 'hidden1.linear')."
                )
            chain.append((container, p))
            container = container._modules[p]
        for seq, p in reversed(chain):
            keys = list(seq._modules)
            rest.extend(seq._modules[k] for k in keys[keys.index(p) + 1 :])
        for m in rest:
            z = m(z)
        return z


class MLP(_SequentialModel):
    """Multi-layer perceptron: ``depth`` hidden blocks (Linear then activation) and a logits layer.

    See the module docstring for the exact structure and module names.
    """

    def __init__(self, in_dim: int = 64, width: int = 64, depth: int = 3, n_classes: int = 10,
                 activation: str = "relu"):
        if depth < 1:
            raise ValueError(f"depth must be at least 1, got {depth}.")
        blocks: OrderedDict[str, nn.Module] = OrderedDict()
        d = in_dim
        for k in range(1, depth + 1):
            blocks[f"hidden{k}"] = nn.Sequential(
                OrderedDict(linear=nn.Linear(d, width), act=make_activation(activation, width))
            )
            d = width
        blocks["logits"] = nn.Linear(d, n_classes)
        super().__init__(blocks)
        self.input_dim = in_dim
        self.depth = depth
        self.width = width
        self.activation = activation

    def layer_names(self) -> list[str]:
        """``["hidden1", ..., "hidden<depth>", "logits"]`` (post-activation outputs, then logits)."""
        return [f"hidden{k}" for k in range(1, self.depth + 1)] + ["logits"]


class CNN(_SequentialModel):
    """Small CNN for 8x8 digits fed as (n, 64) rows; see the module docstring for its layers."""

    def __init__(self, channels: tuple[int, int] = (16, 32), fc: int = 64, n_classes: int = 10):
        c1, c2 = channels
        super().__init__(OrderedDict(
            image=nn.Unflatten(1, (1, 8, 8)),
            conv1=nn.Sequential(OrderedDict(conv=nn.Conv2d(1, c1, 3, padding=1), act=nn.ReLU())),
            conv2=nn.Sequential(OrderedDict(
                conv=nn.Conv2d(c1, c2, 3, padding=1), act=nn.ReLU(), pool=nn.MaxPool2d(2))),
            flatten=nn.Flatten(),
            fc1=nn.Sequential(OrderedDict(linear=nn.Linear(c2 * 16, fc), act=nn.ReLU())),
            logits=nn.Linear(fc, n_classes),
        ))

    def layer_names(self) -> list[str]:
        """``["conv1", "conv2", "fc1", "logits"]``."""
        return ["conv1", "conv2", "fc1", "logits"]


class RNN(nn.Module):
    """Elman RNN over a digit read as ``steps`` pieces of ``input_size`` pixels, with ReLU, tanh or gamma.

    Takes (n, 64) images (or (n, 8, 8) ones) and returns (n, n_classes) logits
    computed from the last hidden state. Modules ``step1`` ... ``step<steps>`` (identities) expose
    the hidden state after each step; ``step<steps>`` is the final hidden state. The default reads
    the 8 rows; ``permutation_seed`` first puts the 64 pixels in the fixed order
    ``numpy.random.RandomState(permutation_seed).permutation(64)`` (the authors' psMNIST order).
    ``init``: one of :data:`INITS` (module docstring).
    """

    input_dim = 64

    def __init__(self, hidden_size: int = 64, activation: str = "relu", steps: int = 8,
                 input_size: int = 8, n_classes: int = 10, permutation_seed: int | None = None,
                 init: str = "torch"):
        super().__init__()
        if init not in INITS:
            raise ValueError(f"init must be one of {', '.join(INITS)}, got {init!r}.")
        self.hidden_size = hidden_size
        self.steps = steps
        self.input_size = input_size
        self.input_dim = steps * input_size
        self.activation = activation
        self.init = init
        order = (np.arange(self.input_dim) if permutation_seed is None
                 else np.random.RandomState(permutation_seed).permutation(self.input_dim))
        # Derived from the config, so not saved with the weights.
        self.register_buffer("reading_order", torch.from_numpy(order), persistent=False)
        self.input = nn.Linear(input_size, hidden_size)
        self.recurrent = nn.Linear(hidden_size, hidden_size, bias=False)
        if init == "geadah":
            nn.init.kaiming_normal_(self.input.weight)
            with torch.no_grad():
                self.recurrent.weight.copy_(henaff_orthogonal(hidden_size))
        self._make_cell()
        for t in range(1, steps + 1):
            self.add_module(f"step{t}", nn.Identity())
        self.logits = nn.Linear(hidden_size, n_classes)

    def _make_cell(self) -> None:
        self.act = make_activation(self.activation, self.hidden_size, self.init)

    def step_of_feature(self) -> np.ndarray:
        """The time step (0-based) at which each of the 64 input features is read: shape (64,)."""
        steps = np.empty(self.input_dim, dtype=np.int64)
        steps[self.reading_order.numpy()] = np.arange(self.input_dim) // self.input_size
        return steps

    def _cell(self, a: torch.Tensor, state):
        """One step of the activation: (pre-activation, cell state) -> (h, new state, (n, s) or None)."""
        return self.act(a), None, None

    def _sequence(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.as_tensor(x)
        if x.dim() == 3:
            x = x.reshape(x.shape[0], -1)
        if x.dim() != 2 or x.shape[1] != self.input_dim:
            raise ValueError(
                f"expected inputs of shape (n, {self.input_dim}) or (n, {self.steps}, "
                f"{self.input_size}), got {tuple(x.shape)}."
            )
        return x[:, self.reading_order].reshape(x.shape[0], self.steps, self.input_size)

    def _run(self, x: torch.Tensor, record: bool = False):
        seq = self._sequence(x)
        u = self.input(seq)  # (n, T, H): the input drive of every step at once
        h = u.new_zeros(seq.shape[0], self.hidden_size)
        state = None
        trace = []
        for t in range(self.steps):
            a = u[:, t] + self.recurrent(h)
            h, state, ns = self._cell(a, state)
            h = self._modules[f"step{t + 1}"](h)
            if record:
                trace.append(ns)
        return self.logits(h), trace

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._run(x)[0]

    def layer_names(self) -> list[str]:
        """``["step1", ..., "step8", "logits"]``: the hidden state after each row, then the logits."""
        return [f"step{t}" for t in range(1, self.steps + 1)] + ["logits"]

    def run_from_layers(self) -> list[str]:
        """The final hidden state and the logits (earlier states need the remaining inputs)."""
        return [f"step{self.steps}", "logits"]

    def run_from(self, layer: str, z: torch.Tensor) -> torch.Tensor:
        """Logits from the final hidden state ``z`` (layer ``step<steps>``), or ``z`` itself for ``logits``."""
        if layer == f"step{self.steps}":
            return self.logits(z)
        if layer == "logits":
            return z
        raise ValueError(
            f"run_from: cannot continue a {type(self).__name__} from {layer!r}; supported layers: "
            f"{', '.join(self.run_from_layers())} (an earlier hidden state would also need the "
            "rows not yet read and, for the adaptive unit, the controllers' states)."
        )


class AdaptiveController(nn.Module):
    """Geadah et al.'s adaptation controller: a G-unit RNN per neuron, weights shared by all neurons.

    ``forward(a, g)`` takes the pre-activations ``a`` (n, H) and the controller states ``g``
    (n, H, G) and returns ``(n_t, s_t, g_t)``: raw gain and saturation (n, H) (not yet clamped)
    and the new states (n, H, G).
    """

    def __init__(self, size: int = 16, init: str = "torch"):
        super().__init__()
        self.size = size
        self.init = init
        self.u = nn.Parameter(torch.empty(size))
        self.state = nn.Linear(size, size)  # W g + b
        self.readout_n = nn.Linear(size, 1)
        self.readout_s = nn.Linear(size, 1)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """As in the authors' code: small Xavier readouts and an n bias of 5 + 2U(0,1). ``"geadah"``:
        their input (Kaiming-normal, fan-in 1) and state (henaff) weights and an s bias of 0.
        ``"torch"``: u ~ U(-1, 1), an orthogonal state matrix, uniform Xavier readouts and an s
        bias of 0.5 (mid-range, like Gamma's s0, since these s are clamped into [0, 1])."""
        if self.init == "geadah":
            with torch.no_grad():
                self.u.normal_(0.0, 2.0 ** 0.5)
                self.state.weight.copy_(henaff_orthogonal(self.size))
            nn.init.xavier_normal_(self.readout_n.weight, gain=0.1)
            nn.init.xavier_normal_(self.readout_s.weight, gain=0.01)
        else:
            nn.init.uniform_(self.u, -1.0, 1.0)
            nn.init.orthogonal_(self.state.weight)
            nn.init.xavier_uniform_(self.readout_n.weight, gain=0.1)
            nn.init.xavier_uniform_(self.readout_s.weight, gain=0.01)
        nn.init.zeros_(self.state.bias)
        with torch.no_grad():
            self.readout_n.bias.copy_(5.0 + 2.0 * torch.rand(1))
            self.readout_s.bias.fill_(0.0 if self.init == "geadah" else 0.5)

    def initial_state(self, a: torch.Tensor) -> torch.Tensor:
        return a.new_zeros(*a.shape, self.size)

    def forward(self, a: torch.Tensor, g: torch.Tensor):
        g = torch.tanh(a.unsqueeze(-1) * self.u + self.state(g))
        n = self.readout_n(g).squeeze(-1)
        s = self.readout_s(g).squeeze(-1)
        return n, s, g


class AdaptiveRNN(RNN):
    """RNN of adaptive recurrent units: each neuron's gamma (n, s) set online by a shared controller.

    Same interface as :class:`RNN`; ``controller_size`` is G, the controller's state size
    (16 here; the authors use 50 on much longer sequences).
    """

    def __init__(self, hidden_size: int = 64, controller_size: int = 16, steps: int = 8,
                 input_size: int = 8, n_classes: int = 10, permutation_seed: int | None = None,
                 init: str = "torch"):
        self.controller_size = controller_size
        super().__init__(hidden_size=hidden_size, activation="adaptive", steps=steps,
                         input_size=input_size, n_classes=n_classes, permutation_seed=permutation_seed,
                         init=init)

    def _make_cell(self) -> None:
        self.controller = AdaptiveController(self.controller_size, self.init)

    def _cell(self, a, state):
        if state is None:
            state = self.controller.initial_state(a)
        n, s, state = self.controller(a, state)
        if self.init == "torch":  # the authors' units use n and s as the controller gives them
            n = n.clamp_min(N_MIN)
            s = s.clamp(0.0, 1.0)
        return gamma(a, n, s), state, (n, s)

    @torch.no_grad()
    def adaptation_trace(self, x) -> tuple[np.ndarray, np.ndarray]:
        """Per-step gain and saturation of every neuron, as used in the forward pass.

        Returns ``(n_t, s_t)``: float64 arrays of shape (batch, steps, hidden), n clamped to
        at least 1e-3 and s into [0, 1] unless the network was built with ``init="geadah"``.
        """
        x = x.detach() if isinstance(x, torch.Tensor) else torch.from_numpy(np.array(x, dtype=np.float32))
        _, trace = self._run(x.to(self.logits.weight.dtype), record=True)
        n = torch.stack([t[0] for t in trace], dim=1)
        s = torch.stack([t[1] for t in trace], dim=1)
        return n.double().numpy(), s.double().numpy()


def build(config: dict) -> nn.Module:
    """Construct an untrained model from a config such as ``{"kind": "mlp", "width": 64, ...}``.

    ``kind`` is ``"mlp"``, ``"cnn"``, ``"rnn"`` or ``"adaptive_rnn"``; the other keys are the
    class's keyword arguments.
    """
    kinds = {"mlp": MLP, "cnn": CNN, "rnn": RNN, "adaptive_rnn": AdaptiveRNN}
    cfg = dict(config)
    kind = cfg.pop("kind", None)
    if kind not in kinds:
        raise ValueError(f"Unknown model kind {kind!r}; choose one of {', '.join(kinds)}.")
    if kind == "cnn" and "channels" in cfg:
        cfg["channels"] = tuple(cfg["channels"])
    return kinds[kind](**cfg)
