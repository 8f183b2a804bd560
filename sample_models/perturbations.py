"""Shifts in input statistics for the zoo's networks, as in Geadah et al. (docs/theory.md §10.3).

Three perturbations, each scaled by an amplitude ``A`` (``A = 0`` gives back the clean network
exactly, bit for bit):

- ``"sin_gain"`` -- gain modulation of the input: what is read at time step ``t = 0 .. T-1`` is
  multiplied by ``1 + A sin(2 pi f t / T)``. The row-by-row recurrent models read the 8x8 digit
  in ``T = 8`` steps, so row t gets the factor of step t; for the MLPs the same factor multiplies
  the image rows, which is the same input change; the pixel-by-pixel models read ``T = 64``
  pixels in their own order, and each pixel gets the factor of the step that reads it.
- ``"noise"`` -- additive Gaussian noise of standard deviation ``A`` on every pixel; the noise
  pattern is fixed by ``seed`` (one draw, scaled by ``A``), so the curve over ``A`` is smooth.
- ``"noisy_drive"`` -- the drive made noisy, as Geadah et al.'s noise: ``+A + sqrt(0.4 A) z`` with ``z``
  a fixed standard-normal pattern (one value per example, step and unit, from ``seed``), so at
  ``A = 5`` it is their N(5, 2) and at ``A = 0`` nothing; same window and sites as the drive.
- ``"drive"`` -- a step drive ``+A`` added to the pre-activations: for the RNNs to the recurrent
  pre-activation ``a_t = U x_t + W h_{t-1} + b`` of every unit, for the steps in a window given in
  eighths of the sequence (1-based, inclusive: the steps of the 8-step networks, steps
  8(first-1)+1 .. 8 last of the 64-step ones; Geadah et al. drive steps 200-400 of 784, eighths 3-4);
  for the MLPs to the first hidden layer's pre-activation.

The drive is applied through a forward hook on a private deep copy of the network (the input
drive module ``input`` of the RNNs, called once on the whole sequence, or ``hidden1.linear`` of the
MLPs), so a shared model is never touched and no architecture code is duplicated.

Entry points: :func:`run_perturbed` (logits and the hidden representation CKA compares, per
amplitude), :func:`accuracy_curve`, :func:`adaptation_trace` (the adaptive RNN's per-step (n, s) under
a perturbation). Also here: :func:`gamma_curve` (Geadah et al.'s gamma and its derivatives, closed
forms) and :func:`rank_agreement` (whether one score ranks a set of networks as another does).
"""
from __future__ import annotations

import copy
import math
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .activations import N_MIN, SOFTPLUS_THRESHOLD

__all__ = [
    "KINDS",
    "DRIVES",
    "Perturbation",
    "Sites",
    "PerturbedOutputs",
    "RankAgreement",
    "sites",
    "sin_gain_factors",
    "drive_mask",
    "sin_gain",
    "noise_pattern",
    "gaussian_noise",
    "perturb_inputs",
    "run_perturbed",
    "adaptation_trace",
    "accuracy_curve",
    "gamma_curve",
    "rank_agreement",
]

#: Perturbation kinds, in the order the page shows them.
KINDS = ("sin_gain", "noise", "drive", "noisy_drive")
#: The kinds that act on the pre-activations (through a hook) rather than on the inputs.
DRIVES = ("drive", "noisy_drive")
#: Variance of the noisy drive per unit of its mean: Geadah et al.'s N(5, 2) at A = 5.
NOISY_DRIVE_VARIANCE = 0.4
#: The drive window is given in this many equal parts of the sequence.
EIGHTHS = 8


@dataclass(frozen=True)
class Perturbation:
    """What is perturbed (the amplitude is given separately, so one spec serves a whole curve).

    kind : one of :data:`KINDS`.
    frequency : f of the sin gain modulation (cycles over the sequence).
    seed : seed of the Gaussian noise pattern (input noise and noisy drive).
    window : (first, last) eighth of the sequence, 1-based and inclusive, of the RNNs' step drive
        (for the 8-step networks the steps themselves); the MLPs have no steps and take the drive
        on every input.
    """

    kind: str
    frequency: float = 1.0
    seed: int = 0
    window: tuple[int, int] = (1, 8)

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {self.kind!r}.")
        if not math.isfinite(self.frequency):
            raise ValueError(f"frequency must be a finite number, got {self.frequency!r}.")
        first, last = self.window
        if not (1 <= int(first) <= int(last) <= EIGHTHS):
            raise ValueError(f"window must be (first, last) eighths of the sequence with 1 <= first <= last <= "
                             f"{EIGHTHS}, got {self.window!r}.")


@dataclass(frozen=True)
class Sites:
    """Where a network is read and driven: module names as in ``model.named_modules()``.

    hidden : the representation CKA compares (the RNNs' final hidden state, the MLPs' last
        hidden layer). drive : the module whose output is the drive-able part of the
        pre-activation. step_of_feature : (64,) the time step (0-based) at which each input
        feature is read (the MLPs: its image row). steps : the number of time steps.
        recurrent : whether ``drive``'s output has a time axis (shape (n, steps, hidden)).
    """

    hidden: str
    drive: str
    step_of_feature: np.ndarray
    steps: int
    recurrent: bool


#: An MLP sees the whole image at once; its gain modulation follows the image rows.
IMAGE_ROWS = np.arange(64) // 8


def sites(model: nn.Module) -> Sites:
    """The :class:`Sites` of a zoo RNN/AdaptiveRNN or MLP (raises ``ValueError`` for others)."""
    from .architectures import MLP, RNN

    if isinstance(model, RNN):
        return Sites(hidden=f"step{model.steps}", drive="input", step_of_feature=model.step_of_feature(),
                     steps=model.steps, recurrent=True)
    if isinstance(model, MLP):
        return Sites(hidden=f"hidden{model.depth}", drive="hidden1.linear", step_of_feature=IMAGE_ROWS, steps=8,
                     recurrent=False)
    raise ValueError(
        f"perturbations know the zoo's RNNs and MLPs, not {type(model).__name__}; "
        "pick one of rnn_relu, rnn_gamma_heterogeneous, rnn_adaptive, mlp_seed0, mlp_gamma_*."
    )


# --- input perturbations ------------------------------------------------------------------------


def _amplitudes(amplitude) -> np.ndarray:
    a = np.asarray(amplitude, dtype=np.float64)
    if a.ndim > 1 or not np.all(np.isfinite(a)):
        raise ValueError(f"amplitude must be a finite number (or 1-D array of them), got {amplitude!r}.")
    return a


def sin_gain_factors(amplitude: float, frequency: float = 1.0, steps: int = 8) -> np.ndarray:
    """The gain of each time step, ``1 + A sin(2 pi f t / T)`` for ``t = 0 .. T-1``: shape (steps,)."""
    t = np.arange(steps, dtype=np.float64)
    return 1.0 + float(_amplitudes(amplitude)) * np.sin(2.0 * np.pi * frequency * t / steps)


def _as_rows(X) -> np.ndarray:
    X = np.asarray(X)
    if X.ndim != 2 or not np.issubdtype(X.dtype, np.floating):
        raise ValueError(f"X must be a 2-D float array of flattened images (n, 64), got {X.dtype} {X.shape}.")
    return X


def sin_gain(X, amplitude: float, frequency: float = 1.0, step_of_feature=IMAGE_ROWS) -> np.ndarray:
    """``X`` (n, d) with feature j of every example multiplied by ``1 + A sin(2 pi f t_j / T)``, t_j =
    ``step_of_feature[j]`` the step that reads it and T = max t + 1 the number of steps (default: the
    image rows, T = 8).

    Zeros stay zeros (the paper multiplies the non-zero inputs). ``A = 0`` returns ``X`` exactly.
    """
    X = _as_rows(X)
    steps = np.asarray(step_of_feature)
    if steps.shape != (X.shape[1],):
        raise ValueError(f"X has {X.shape[1]} features but step_of_feature gives the step of {steps.size}.")
    factors = sin_gain_factors(amplitude, frequency, int(steps.max()) + 1).astype(X.dtype)
    return X * factors[steps][None, :]


def noise_pattern(shape: tuple[int, ...], seed: int = 0, dtype=np.float32) -> np.ndarray:
    """A fixed standard-normal pattern (``numpy.random.default_rng(seed)``)."""
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def gaussian_noise(X, amplitude: float, seed: int = 0) -> np.ndarray:
    """``X + A * z`` with ``z`` the standard-normal :func:`noise_pattern` of ``seed``; ``A = 0`` gives ``X``."""
    X = _as_rows(X)
    a = float(_amplitudes(amplitude))
    if a < 0:
        raise ValueError(f"the noise amplitude is a standard deviation, it must be >= 0, got {a}.")
    return X + X.dtype.type(a) * noise_pattern(X.shape, seed, X.dtype)


def perturb_inputs(X, perturbation: Perturbation, amplitude: float, step_of_feature=IMAGE_ROWS) -> np.ndarray:
    """The perturbed inputs (the drive leaves the inputs as they are)."""
    if perturbation.kind == "sin_gain":
        return sin_gain(X, amplitude, perturbation.frequency, step_of_feature)
    if perturbation.kind == "noise":
        return gaussian_noise(X, amplitude, perturbation.seed)
    return _as_rows(X)


# --- running a perturbed network ----------------------------------------------------------------


@dataclass(frozen=True)
class PerturbedOutputs:
    """Per amplitude: logits (k, n, classes) and the hidden representation (k, n, hidden)."""

    amplitudes: np.ndarray
    logits: np.ndarray
    hidden: np.ndarray


def drive_mask(steps: int, window: tuple[int, int]) -> torch.Tensor:
    """1 for the steps t = 0 .. steps-1 in the window of eighths (first, last), i.e. first - 1 <= 8t // steps
    <= last - 1, else 0: shape (steps,)."""
    eighth = torch.arange(steps) * EIGHTHS // steps
    return ((eighth >= window[0] - 1) & (eighth <= window[1] - 1)).to(torch.float32)


def _drive_hook(site: Sites, perturbation: Perturbation, box: dict):
    first, last = (int(v) for v in perturbation.window)

    def hook(_module, _inputs, output):
        a = box["amplitude"]
        if a == 0.0:
            return output
        drive = output.new_tensor(a)
        if perturbation.kind == "noisy_drive":  # one pattern for the whole X; a run on some rows gets theirs
            if "pattern" not in box:  # drawn once, then scaled for every amplitude of the curve
                z = noise_pattern((box["examples"],) + tuple(output.shape[1:]), perturbation.seed)[box["rows"]]
                box["pattern"] = torch.from_numpy(z).to(output.dtype)
            drive = drive + output.new_tensor(np.sqrt(NOISY_DRIVE_VARIANCE * a)) * box["pattern"]
        if site.recurrent:  # output: (n, steps, hidden), the input drive of every step
            return output + drive * drive_mask(site.steps, (first, last)).to(output.dtype)[None, :, None]
        return output + drive

    return hook


@contextmanager
def _perturbed_copy(model: nn.Module, perturbation: Perturbation, examples: int, rows=None):
    """A private deep copy of ``model`` with the drive hook in place (when the kind is a drive).

    Yields ``(copy, sites, box)``; ``box["amplitude"]`` sets the drive of the next forward passes, which
    run on ``rows`` of ``examples`` examples (all of them by default).
    """
    site = sites(model)
    work = copy.deepcopy(model).eval()
    box: dict = {"amplitude": 0.0, "examples": examples, "rows": slice(None) if rows is None else rows}
    handles = []
    if perturbation.kind in DRIVES:
        handles.append(dict(work.named_modules())[site.drive].register_forward_hook(_drive_hook(site, perturbation, box)))
    try:
        yield work, site, box
    finally:
        for h in handles:
            h.remove()


def run_perturbed(model: nn.Module, X, perturbation: Perturbation, amplitudes) -> PerturbedOutputs:
    """Logits and hidden representation of ``model`` on perturbed ``X``, for each amplitude.

    ``model`` is not modified: hooks go on a private deep copy. Each amplitude is one forward pass
    on exactly ``X``'s batch, so amplitude 0 reproduces ``model(X)`` bit for bit.
    """
    amps = np.atleast_1d(_amplitudes(amplitudes))
    logits, hidden = [], []
    with _perturbed_copy(model, perturbation, len(X)) as (work, site, box):
        captured: list[torch.Tensor] = []
        handle = dict(work.named_modules())[site.hidden].register_forward_hook(
            lambda m, i, o: captured.append(o.detach().clone()))
        dtype = next(work.parameters()).dtype
        try:
            with torch.no_grad():
                for a in amps:
                    box["amplitude"] = float(a)
                    x = perturb_inputs(X, perturbation, float(a), site.step_of_feature)
                    captured.clear()
                    out = work(torch.tensor(x, dtype=dtype))
                    logits.append(out.numpy().copy())
                    hidden.append(captured[-1].reshape(out.shape[0], -1).numpy())
        finally:
            handle.remove()
    return PerturbedOutputs(amps, np.stack(logits), np.stack(hidden))


def adaptation_trace(model: nn.Module, X, perturbation: Perturbation, amplitude: float, rows=None):
    """The adaptive RNN's per-step ``(n_t, s_t)`` (each (n, steps, hidden)) on perturbed ``X``.

    ``rows`` (indices into ``X``, optional): run only these examples; the perturbation is still that
    of the whole ``X`` (row i gets row i of the noise pattern), so the result equals the same rows
    of the full run. ``model`` must have ``adaptation_trace`` (:class:`~sample_models.AdaptiveRNN`);
    it is not modified.
    """
    if not hasattr(model, "adaptation_trace"):
        raise ValueError(f"{type(model).__name__} does not adapt its activations; use the adaptive RNN.")
    rows = None if rows is None else np.asarray(rows, dtype=np.int64).reshape(-1)
    with _perturbed_copy(model, perturbation, len(X), rows) as (work, site, box):
        box["amplitude"] = float(_amplitudes(amplitude))
        x = perturb_inputs(X, perturbation, float(amplitude), site.step_of_feature)
        if rows is not None:
            x = x[rows]
        return work.adaptation_trace(np.array(x, dtype=np.float32))


def accuracy_curve(model: nn.Module, X, y, perturbation: Perturbation, amplitudes) -> np.ndarray:
    """Test accuracy for each amplitude, shape (k,)."""
    out = run_perturbed(model, X, perturbation, amplitudes)
    y = np.asarray(y).reshape(-1)
    return np.mean(np.argmax(out.logits, axis=2) == y[None, :], axis=1)


# --- gamma and its derivatives ------------------------------------------------------------------


def gamma_curve(x, n: float, s: float) -> dict[str, np.ndarray]:
    """gamma(x; n, s) and its derivatives in closed form (docs/theory.md §10.1), float64.

    Returns ``{"gamma", "dx", "dn", "ds"}``:
    ``dgamma/dx = (1-s) sigma(nx) + s n sigma(nx)(1 - sigma(nx))``,
    ``dgamma/dn = (1-s)(x sigma(nx) - softplus(nx)/n)/n + s x sigma(nx)(1 - sigma(nx))``,
    ``dgamma/ds = sigma(nx) - softplus(nx)/n``. ``n`` is clamped to at least 1e-3 and ``s``
    into [0, 1], as in :class:`~sample_models.Gamma`.
    """
    x = np.asarray(x, dtype=np.float64)
    n = max(float(n), N_MIN)
    s = min(max(float(s), 0.0), 1.0)
    z = n * x
    softplus = np.where(z > SOFTPLUS_THRESHOLD, z, np.log1p(np.exp(np.minimum(z, SOFTPLUS_THRESHOLD)))) / n
    sig = 0.5 * (1.0 + np.tanh(0.5 * z))  # overflow-free logistic
    return {
        "gamma": (1 - s) * softplus + s * sig,
        "dx": (1 - s) * sig + s * n * sig * (1 - sig),
        "dn": (1 - s) * (x * sig - softplus) / n + s * x * sig * (1 - sig),
        "ds": sig - softplus,
    }


# --- do two scores rank networks alike? ---------------------------------------------------------


@dataclass(frozen=True)
class RankAgreement:
    """Rank correlations between two scores over the same networks, and their top-ranked ones.

    ``spearman``/``kendall`` are None where either score is constant (no ranking to compare).
    ``top_a``/``top_b`` are the indices of all networks tied at the maximum of each score.
    """

    spearman: float | None
    kendall: float | None
    top_a: tuple[int, ...]
    top_b: tuple[int, ...]

    @property
    def tops_agree(self) -> bool:
        return bool(set(self.top_a) & set(self.top_b))


def rank_agreement(a, b, *, tol: float = 1e-12) -> RankAgreement:
    """Spearman's rho and Kendall's tau-b between scores ``a`` and ``b`` (higher = better in both)."""
    from scipy.stats import kendalltau, spearmanr

    a = np.asarray(a, dtype=np.float64).reshape(-1)
    b = np.asarray(b, dtype=np.float64).reshape(-1)
    if a.shape != b.shape or a.size < 2:
        raise ValueError(f"need two scores for the same >= 2 networks, got shapes {a.shape} and {b.shape}.")
    top_a = tuple(int(i) for i in np.flatnonzero(a >= a.max() - tol))
    top_b = tuple(int(i) for i in np.flatnonzero(b >= b.max() - tol))
    if np.ptp(a) <= tol or np.ptp(b) <= tol:
        return RankAgreement(None, None, top_a, top_b)
    rho = float(spearmanr(a, b).statistic)
    tau = float(kendalltau(a, b).statistic)
    return RankAgreement(rho, tau, top_a, top_b)
