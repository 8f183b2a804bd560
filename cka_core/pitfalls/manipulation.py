"""Fine-tune a network towards a target CKA map while keeping its function (Davari et al. §4.3).

The objective is their Eq. 3,

    L(theta) = KL( softmax(f*(x)/T) || softmax(f_theta(x)/T) ) + lambda * mean log cosh(M_theta - M_target),

where f* is the frozen original network (distillation at temperature T) and M_theta is the
debiased (unbiased-HSIC) linear CKA map between the chosen layers on the current batch
(:func:`cka_core.cka.differentiable.minibatch_cka_map`). lambda follows their Algorithm 1: after
every epoch the accuracy on a held-out validation split is compared with the original
network's; if it fell by more than ``eta`` percentage points lambda is multiplied by 0.8,
otherwise divided by 0.8. Optimiser: AdamW with a cosine learning-rate schedule after a linear
warm-up. One addition to the paper's loss (``ManipulationSettings.distill_noise``, 0 turns it
off): the distillation term also sees a noisy copy of each batch, so the function is kept near
the data and not only on the training digits.

Data discipline: the caller passes the *training* set; a stratified, seeded validation split is
held out of it for lambda and for model selection. An optional evaluation set (e.g. the test
split) is only used to report the maps and accuracies before and after: it never influences
training or selection.

Model selection: the returned network is the epoch with the lowest validation map loss among
the epochs whose validation accuracy is at most ``eta`` points below the original's (epoch 0,
the original itself, always qualifies), so a stop at any time returns a usable network.

Pure torch and numpy: no UI. :class:`MapManipulator` trains one epoch per :meth:`~MapManipulator.step`
(so a UI can interleave progress updates and resume after an interruption); :func:`manipulate`
runs the whole loop with a callback that may stop it early.
"""
from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..io.capture import capture
from ..cka.differentiable import log_cosh, map_loss, minibatch_cka_map
from ..errors import RepresentationError
from ..cka.matrix import cka_matrix

__all__ = [
    "ManipulationSettings",
    "EpochRecord",
    "ManipulationResult",
    "MapManipulator",
    "manipulate",
    "update_lambda",
    "evaluation_map",
    "stratified_split",
    "identity_target",
    "ones_target",
    "pair_target",
    "check_target",
    "off_diagonal_mean_abs",
    "within_tolerance",
    "LAMBDA_FACTOR",
]

#: Algorithm 1's multiplicative step for lambda.
LAMBDA_FACTOR = 0.8


@dataclass(frozen=True)
class ManipulationSettings:
    """Hyper-parameters of the fine-tuning.

    Davari et al.'s code: AdamW at lr 1e-3 with a cosine schedule (their appendix adds 500
    warm-up steps), 20 epochs of CIFAR-10 (390 steps each), batch 128, T = 0.1, lambda_0 = 500,
    eta = 1 point. The defaults keep their batch, T, lambda_0, eta and Algorithm 1, and adapt the
    rest to the 1150 training digits (9 steps per epoch): more epochs, a larger learning rate with
    10 warm-up epochs, and ``distill_noise``.

    ``distill_noise`` (our addition; 0 gives the paper's loss): the distillation term is also
    applied to a copy of each batch with Gaussian noise of this standard deviation added to the
    inputs (pixels are in [0, 1]). Distillation needs no labels, so the frozen original can be
    asked about inputs near the data as well; this keeps the fine-tuned network's function on
    held-out digits far better than distilling on the training digits alone.
    """

    epochs: int = 150
    batch_size: int = 128
    lr: float = 1e-2
    weight_decay: float = 1e-2
    warmup_epochs: int = 10
    temperature: float = 0.1
    lambda0: float = 500.0
    eta: float = 0.5               # tolerated validation accuracy drop, in percentage points
    distill_noise: float = 0.5
    val_fraction: float = 0.2
    seed: int = 0

    def __post_init__(self):
        checks = {
            "epochs": self.epochs >= 1,
            "batch_size": self.batch_size >= 4,
            "lr": self.lr > 0,
            "weight_decay": self.weight_decay >= 0,
            "warmup_epochs": 0 <= self.warmup_epochs,
            "temperature": self.temperature > 0,
            "lambda0": self.lambda0 >= 0,
            "eta": self.eta >= 0,
            "val_fraction": 0 < self.val_fraction < 1,
            "distill_noise": self.distill_noise >= 0,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise ValueError(
                f"invalid manipulation setting(s) {', '.join(f'{b}={getattr(self, b)!r}' for b in bad)}: epochs >= 1, "
                "batch_size >= 4 (the unbiased HSIC needs 4 rows), lr, temperature > 0, lambda0, eta, weight_decay >= 0, "
                "0 < val_fraction < 1."
            )


@dataclass(frozen=True)
class EpochRecord:
    """What one epoch did, measured on the validation split (epoch 0 = the original network)."""

    epoch: int
    map_loss: float          # mean log cosh(M - target), M = full-data debiased CKA on the validation split
    mean_abs_error: float    # mean |M - target| over the off-diagonal entries
    val_accuracy: float      # fraction in [0, 1]
    accuracy_drop: float     # original minus current validation accuracy, in percentage points
    lam: float               # lambda used during this epoch (before Algorithm 1's update)
    train_map_loss: float    # mean of the per-batch map losses during the epoch (nan for epoch 0)
    train_distill_loss: float
    seconds: float           # wall time of the epoch (training + validation)

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class ManipulationResult:
    """The best network found, the history and the maps before and after."""

    model: nn.Module                  # best epoch's network (eval mode, gradients off)
    layers: tuple[str, ...]
    target: np.ndarray
    history: list[EpochRecord]
    best_epoch: int
    stopped_early: bool
    map_before: np.ndarray            # full-data debiased CKA on the evaluation set
    map_after: np.ndarray
    accuracy_before: float | None     # on the evaluation set (None when it has no labels)
    accuracy_after: float | None
    evaluation: str                   # which data the before/after numbers come from
    settings: ManipulationSettings = field(default_factory=ManipulationSettings)

    @property
    def mean_abs_error_before(self) -> float:
        return off_diagonal_mean_abs(self.map_before, self.target)

    @property
    def mean_abs_error_after(self) -> float:
        return off_diagonal_mean_abs(self.map_after, self.target)


# ----------------------------------------------------------------------------- targets
def identity_target(n_layers: int) -> np.ndarray:
    """Every layer unlike every other: 1 on the diagonal, 0 elsewhere."""
    return np.eye(n_layers)


def ones_target(n_layers: int) -> np.ndarray:
    """Every layer alike: CKA 1 everywhere (block structure)."""
    return np.ones((n_layers, n_layers))


def pair_target(current: np.ndarray, i: int, j: int, value: float) -> np.ndarray:
    """The current map with CKA(layer i, layer j) (and its mirror) set to ``value``."""
    target = np.array(current, dtype=np.float64, copy=True)
    target[i, j] = target[j, i] = value
    np.fill_diagonal(target, 1.0)
    return target


def check_target(target, n_layers: int) -> np.ndarray:
    """A finite, symmetric (L, L) float64 target with values in [-1, 1] and ones on the diagonal."""
    t = np.asarray(target, dtype=np.float64)
    if t.shape != (n_layers, n_layers):
        raise RepresentationError(
            f"the target map has shape {t.shape} but {n_layers} layers were chosen; give an {n_layers}x{n_layers} map."
        )
    if not np.all(np.isfinite(t)):
        raise RepresentationError("the target map contains NaN or infinite entries; fill every cell with a number.")
    if np.any(np.abs(t) > 1):
        raise RepresentationError("CKA lies in [-1, 1] (debiased) or [0, 1]; keep every target entry in that range.")
    if not np.allclose(t, t.T):
        raise RepresentationError("a CKA map is symmetric; make the target symmetric (entry i,j equal to entry j,i).")
    if not np.allclose(np.diag(t), 1.0):
        raise RepresentationError("every layer has CKA 1 with itself; put ones on the target's diagonal.")
    return t


def off_diagonal_mean_abs(cka_map: np.ndarray, target: np.ndarray) -> float:
    """Mean |M - target| over the entries i != j (the diagonal is 1 by definition)."""
    cka_map, target = np.asarray(cka_map), np.asarray(target)
    mask = ~np.eye(cka_map.shape[0], dtype=bool)
    if not mask.any():
        return 0.0
    return float(np.mean(np.abs(cka_map - target)[mask]))


# ------------------------------------------------------------------------ Algorithm 1
def update_lambda(lam: float, accuracy_original: float, accuracy_now: float, eta: float,
                  factor: float = LAMBDA_FACTOR) -> float:
    """Davari et al.'s Algorithm 1: lambda * factor if the accuracy (in percentage points)
    fell by more than ``eta`` points, lambda / factor otherwise. Accuracies are fractions."""
    return lam / factor if within_tolerance(100.0 * (accuracy_original - accuracy_now), eta) else lam * factor


def within_tolerance(drop: float, eta: float) -> bool:
    """drop <= eta, forgiving round-off (accuracies are fractions k/n, drops 100 x differences)."""
    return drop <= eta + 1e-9


# ------------------------------------------------------------------------------ helpers
def stratified_split(y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (fit, validation): ``round(fraction * count)`` examples of each class held out."""
    y = np.asarray(y).reshape(-1)
    rng = np.random.default_rng(seed)
    val = []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        k = min(max(int(round(fraction * idx.size)), 1), idx.size - 1) if idx.size > 1 else 0
        val.append(rng.permutation(idx)[:k])
    val_idx = np.sort(np.concatenate(val)) if val else np.array([], dtype=np.int64)
    fit_idx = np.setdiff1d(np.arange(y.size), val_idx)
    return fit_idx, val_idx


def _distillation(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL(softmax(teacher / T) || softmax(student / T)), averaged over the batch (as Davari et al.'s code)."""
    return F.kl_div(F.log_softmax(student_logits / temperature, dim=1), F.softmax(teacher_logits / temperature, dim=1),
                    reduction="batchmean")


def _accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float((model(x).argmax(dim=1) == y).double().mean())


def evaluation_map(model: nn.Module, X, layers: Sequence[str], *, debiased: bool = True) -> np.ndarray:
    """Full-data linear CKA map (debiased by default) between ``layers`` of ``model`` on X."""
    acts = capture(model, X, list(layers))
    return cka_matrix([acts[name] for name in layers], debiased=debiased)


@contextmanager
def _recording(model: nn.Module, layers: Sequence[str]):
    """Forward hooks that keep each layer's output *with* its autograd graph."""
    modules = dict(model.named_modules())
    outputs: dict[str, torch.Tensor] = {}
    handles = []
    for name in layers:
        def hook(_m, _i, out, name=name):
            outputs[name] = out[0] if isinstance(out, (tuple, list)) else out
        handles.append(modules[name].register_forward_hook(hook))
    try:
        yield outputs
    finally:
        for h in handles:
            h.remove()


def _as_tensor(a, dtype) -> torch.Tensor:
    if isinstance(a, torch.Tensor):
        return a.detach().to(dtype)
    return torch.tensor(np.asarray(a), dtype=dtype)


# ------------------------------------------------------------------------------ trainer
class MapManipulator:
    """One fine-tuning run, an epoch per :meth:`step`; the original model is never touched.

    Parameters
    ----------
    model : nn.Module
        The network to manipulate; deep-copied twice (the frozen teacher and the student).
    layers : sequence of module names
        The layers of the map, in order (as in ``model.named_modules()``).
    target : (L, L) array
        The target map: symmetric, ones on the diagonal, entries in [-1, 1].
    X, y : training inputs and labels
        The validation split is held out of them (``settings.val_fraction``, stratified).
    settings : ManipulationSettings
    X_eval, y_eval : optional
        Data for the before/after report only (e.g. the test split); defaults to the validation split.
    """

    def __init__(self, model: nn.Module, layers: Sequence[str], target, X, y,
                 settings: ManipulationSettings | None = None, *, X_eval=None, y_eval=None):
        self.settings = settings = settings or ManipulationSettings()
        self.layers = tuple(layers)
        modules = dict(model.named_modules())
        unknown = [name for name in self.layers if name not in modules]
        if unknown or len(self.layers) < 2:
            raise RepresentationError(
                f"choose at least two layers of the model; unknown: {unknown}. Valid names: "
                f"{', '.join(n for n in modules if n)}."
            )
        self.target = check_target(target, len(self.layers))
        self.dtype = next(model.parameters()).dtype
        X = _as_tensor(X, self.dtype)
        y = torch.tensor(np.array(y), dtype=torch.int64).reshape(-1)
        if X.shape[0] != y.shape[0]:
            raise RepresentationError(f"X has {X.shape[0]} rows but y has {y.shape[0]} labels.")
        fit, val = stratified_split(y.numpy(), settings.val_fraction, settings.seed)
        if fit.size < 4 or val.size < 4:
            raise RepresentationError(f"too few examples ({X.shape[0]}) to hold out a validation split; pass more.")
        self.X_fit, self.y_fit = X[fit], y[fit]
        self.X_val, self.y_val = X[val], y[val]
        self.X_eval = None if X_eval is None else _as_tensor(X_eval, self.dtype)
        self.y_eval = None if y_eval is None else torch.tensor(np.array(y_eval), dtype=torch.int64).reshape(-1)

        self.teacher = copy.deepcopy(model).eval().requires_grad_(False)
        self.student = copy.deepcopy(model).requires_grad_(True).train()
        self._target_t = torch.as_tensor(self.target, dtype=torch.float64)
        self._generator = torch.Generator().manual_seed(settings.seed)
        torch.manual_seed(settings.seed)  # nothing random in the zoo models, but be explicit

        self.batch_size = min(settings.batch_size, self.X_fit.shape[0])
        self.steps_per_epoch = max(self.X_fit.shape[0] // self.batch_size, 1)
        total = settings.epochs * self.steps_per_epoch
        warmup = min(settings.warmup_epochs * self.steps_per_epoch, total - 1)
        self.optimizer = torch.optim.AdamW(self.student.parameters(), lr=settings.lr,
                                           weight_decay=settings.weight_decay)

        def schedule(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            progress = (step - warmup) / max(total - warmup, 1)
            return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))

        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, schedule)
        with torch.no_grad():
            self._teacher_val = self.teacher(self.X_val)
        self.val_accuracy_original = _accuracy(self.teacher, self.X_val, self.y_val)
        self.lam = float(settings.lambda0)
        self.epoch = 0
        self.stopped_early = False
        record = self._validate(float("nan"), float("nan"), 0.0, self.lam)
        self.history: list[EpochRecord] = [record]
        self.best_epoch = 0
        self.best_map_loss = record.map_loss
        self.best_state = copy.deepcopy(self.teacher.state_dict())

    # -------------------------------------------------------------------- progress
    @property
    def done(self) -> bool:
        return self.stopped_early or self.epoch >= self.settings.epochs

    def stop(self) -> None:
        """Stop here: :meth:`result` returns the best network so far."""
        self.stopped_early = not self.epoch >= self.settings.epochs

    def step(self) -> EpochRecord:
        """Train one epoch, validate, update lambda (Algorithm 1) and the best network."""
        if self.done:
            raise RuntimeError("the run is finished; call result().")
        start = time.perf_counter()
        s = self.settings
        lam = self.lam
        order = torch.randperm(self.X_fit.shape[0], generator=self._generator)
        self.student.train()
        map_losses, distill_losses = [], []
        with _recording(self.student, self.layers) as outputs:
            for b in range(self.steps_per_epoch):
                idx = order[b * self.batch_size:(b + 1) * self.batch_size]
                x = self.X_fit[idx]
                with torch.no_grad():
                    teacher_logits = self.teacher(x)
                logits = self.student(x)
                # In the activations' own dtype (float32 for the zoo): the features are centred before
                # any product, so nothing cancels, and it is twice as fast as float64 here.
                cka = minibatch_cka_map([outputs[name] for name in self.layers], dtype=None)
                distill = _distillation(logits, teacher_logits, s.temperature)
                if s.distill_noise > 0:  # the original's answers near the data, too (see the settings)
                    noisy = x + s.distill_noise * torch.randn(x.shape, generator=self._generator, dtype=x.dtype)
                    with torch.no_grad():
                        teacher_noisy = self.teacher(noisy)
                    distill = distill + _distillation(self.student(noisy), teacher_noisy, s.temperature)
                loss_map = map_loss(cka, self._target_t)
                loss = distill + lam * loss_map
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                self.optimizer.step()
                self.scheduler.step()
                map_losses.append(float(loss_map.detach()))
                distill_losses.append(float(distill.detach()))
        self.epoch += 1
        record = self._validate(float(np.mean(map_losses)), float(np.mean(distill_losses)),
                                time.perf_counter() - start, lam)
        self.history.append(record)
        if within_tolerance(record.accuracy_drop, s.eta) and record.map_loss < self.best_map_loss:
            self.best_epoch, self.best_map_loss = self.epoch, record.map_loss
            self.best_state = copy.deepcopy(self.student.state_dict())
        self.lam = update_lambda(lam, self.val_accuracy_original, record.val_accuracy, s.eta)
        return record

    def _validate(self, train_map: float, train_distill: float, seconds: float, lam: float) -> EpochRecord:
        start = time.perf_counter()
        self.student.eval()
        accuracy = _accuracy(self.student, self.X_val, self.y_val)
        val_map = evaluation_map(self.student, self.X_val, self.layers)
        loss = float(log_cosh(torch.as_tensor(val_map - self.target)).mean())
        return EpochRecord(
            epoch=self.epoch, map_loss=loss, mean_abs_error=off_diagonal_mean_abs(val_map, self.target),
            val_accuracy=accuracy, accuracy_drop=100.0 * (self.val_accuracy_original - accuracy), lam=lam,
            train_map_loss=train_map, train_distill_loss=train_distill,
            seconds=seconds + time.perf_counter() - start,
        )

    # ---------------------------------------------------------------------- output
    def best_model(self) -> nn.Module:
        """A fresh copy of the best network so far (eval mode, gradients off)."""
        model = copy.deepcopy(self.teacher)
        model.load_state_dict(self.best_state)
        return model.eval().requires_grad_(False)

    def result(self) -> ManipulationResult:
        """The best network so far with its maps and accuracies before and after."""
        best = self.best_model()
        if self.X_eval is not None:
            X, y, where = self.X_eval, self.y_eval, "evaluation set"
        else:
            X, y, where = self.X_val, self.y_val, "validation split"
        before = evaluation_map(self.teacher, X, self.layers)
        after = evaluation_map(best, X, self.layers)
        acc_before = _accuracy(self.teacher, X, y) if y is not None else None
        acc_after = _accuracy(best, X, y) if y is not None else None
        return ManipulationResult(
            model=best, layers=self.layers, target=self.target.copy(), history=list(self.history),
            best_epoch=self.best_epoch, stopped_early=self.stopped_early, map_before=before, map_after=after,
            accuracy_before=acc_before, accuracy_after=acc_after, evaluation=where, settings=self.settings,
        )


def manipulate(model: nn.Module, layers: Sequence[str], target, X, y,
               settings: ManipulationSettings | None = None, *,
               callback: Callable[[EpochRecord, MapManipulator], bool | None] | None = None,
               X_eval=None, y_eval=None) -> ManipulationResult:
    """Fine-tune a copy of ``model`` towards ``target`` (see the module docstring).

    ``callback(record, manipulator)`` runs after every epoch (and once for epoch 0, the
    original); returning ``False`` stops the run, which then returns the best network so far.
    """
    run = MapManipulator(model, layers, target, X, y, settings, X_eval=X_eval, y_eval=y_eval)
    if callback is not None and callback(run.history[0], run) is False:
        run.stop()
    while not run.done:
        record = run.step()
        if callback is not None and callback(record, run) is False:
            run.stop()
    return run.result()
