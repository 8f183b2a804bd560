"""The named model zoo: registry, loading of the shipped weights, and helpers the pages use.

Every model maps the rows of :func:`sample_models.digits` ((n, 64) float32) to (n, 10) logits.
Weights live in ``sample_models/weights/<name>.safetensors`` (loaded with safetensors, never
unpickled); ``weights/manifest.json`` records each model's config, training settings, test
accuracy and the SHA-256 of its weights file. ``python -m sample_models.train`` rebuilds them.
"""
from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .activations import Gamma

__all__ = [
    "ModelSpec",
    "ZOO",
    "WEIGHTS_DIR",
    "available",
    "load",
    "layer_names",
    "run_from",
    "run_from_layers",
    "predict",
    "accuracy",
    "gamma_parameters",
    "manifest",
]

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"


@dataclass(frozen=True)
class ModelSpec:
    """How a zoo model is built and trained.

    ``config`` is passed to :func:`sample_models.architectures.build`. ``seed`` seeds both the
    initialisation and the batch order. ``epochs == 0`` means the model is kept at its
    initialisation. ``shuffle_labels`` trains on a fixed permutation of the training labels.
    ``role`` is ``"trained"`` (held to the accuracy floors) or ``"control"`` (near chance).
    ``schedule`` is ``"one_cycle"`` (AdamW with a one-cycle cosine learning rate) or ``"plateau"``
    (Geadah et al.'s protocol: Adam, the learning rate divided by 10 when the loss on a held-out
    fifth of the training split has not improved for ``patience`` epochs; the last epoch's weights).
    """

    description: str
    config: dict
    seed: int = 0
    epochs: int = 60
    lr: float = 3e-3
    weight_decay: float = 1e-4
    batch_size: int = 64
    shuffle_labels: bool = False
    role: str = "trained"  # "trained": must generalise; "control": must stay near chance on test
    schedule: str = "one_cycle"
    patience: int = 5  # "plateau" only

    def training_dict(self) -> dict:
        schedule = {"schedule": self.schedule, "patience": self.patience} if self.schedule == "plateau" else {}
        return {
            "seed": self.seed,
            "epochs": self.epochs,
            "lr": self.lr,
            "weight_decay": self.weight_decay,
            "batch_size": self.batch_size,
            "shuffle_labels": self.shuffle_labels,
            **schedule,
        }


_MLP = {"kind": "mlp", "width": 64, "depth": 3, "activation": "relu"}
# Geadah et al.'s permuted sequential task on the digits: one pixel per step, a fixed order.
PIXEL_RNN_SEEDS = (1, 2, 3)
_PIXEL_RNN = {"kind": "rnn", "hidden_size": 64, "steps": 64, "input_size": 1, "permutation_seed": 1, "init": "geadah"}

ZOO: dict[str, ModelSpec] = {
    "mlp_seed0": ModelSpec(
        "ReLU MLP 64-64-64, seed 0: the reference network (compare with seeds 1 and 2)",
        _MLP, seed=0),
    "mlp_seed1": ModelSpec(
        "mlp_seed0 retrained from seed 1: same architecture and data, so CKA should match layer to layer",
        _MLP, seed=1),
    "mlp_seed2": ModelSpec(
        "mlp_seed0 retrained from seed 2: the third run of Kornblith et al.'s sanity check",
        _MLP, seed=2),
    "mlp_wide": ModelSpec(
        "ReLU MLP 256-256-256: as deep as mlp_seed0 but four times wider",
        {**_MLP, "width": 256}, seed=0),
    "mlp_deep": ModelSpec(
        "ReLU MLP with 5 hidden layers of 64: with the logits, a 6-layer CKA map",
        {**_MLP, "depth": 5}, seed=0),
    "mlp_deep_wide": ModelSpec(
        "ReLU MLP, 14 hidden layers of 256 (seed 1): large for the digits, its CKA map has a block (Nguyen et al.)",
        {**_MLP, "width": 256, "depth": 14}, seed=1),
    "cnn": ModelSpec(
        "Small CNN (conv 16, conv 32 + max-pool, fc 64): convolutional rather than dense features",
        {"kind": "cnn", "channels": [16, 32], "fc": 64}, seed=0),
    "mlp_untrained": ModelSpec(
        "mlp_seed0 at its random initialisation, never trained: the random baseline (chance accuracy)",
        _MLP, seed=0, epochs=0, role="control"),
    "mlp_shuffled_labels": ModelSpec(
        "mlp_seed0's architecture trained on shuffled labels: memorises the training set, chance on test",
        _MLP, seed=0, epochs=400, lr=3e-3, weight_decay=0.0, shuffle_labels=True,
        role="control"),
    "mlp_gamma_homogeneous": ModelSpec(
        "MLP 64-64-64 with Geadah et al.'s learnable activation, one gain and saturation per layer",
        {**_MLP, "activation": "gamma_homogeneous"}, seed=0),
    "mlp_gamma_heterogeneous": ModelSpec(
        "MLP 64-64-64 whose neurons each learn their own gain and saturation (neural diversity)",
        {**_MLP, "activation": "gamma_heterogeneous"}, seed=0),
    "rnn_relu": ModelSpec(
        "RNN reading the digit row by row (8 steps, 64 ReLU units): the recurrent baseline",
        {"kind": "rnn", "hidden_size": 64, "activation": "relu"}, seed=0),
    "rnn_gamma_heterogeneous": ModelSpec(
        "Row-by-row RNN whose 64 units each learn their own gain and saturation",
        {"kind": "rnn", "hidden_size": 64, "activation": "gamma_heterogeneous"}, seed=0),
    "rnn_adaptive": ModelSpec(
        "Adaptive recurrent units: a shared controller RNN resets each unit's gain and saturation at every step",
        {"kind": "adaptive_rnn", "hidden_size": 64, "controller_size": 16}, seed=0),
    **{f"pixel_rnn_{kind}" + ("" if seed == 1 else f"_seed{seed}"): ModelSpec(
        f"{what}, one pixel per step in a fixed random order, built and trained as Geadah et al.'s" if seed == 1 else
        f"pixel_rnn_{kind} retrained from seed {seed} (same pixel order): how much its robustness varies between runs",
        {**_PIXEL_RNN, **config}, seed=seed, lr=3e-3, weight_decay=0.0, batch_size=100, schedule="plateau")
       for seed in PIXEL_RNN_SEEDS
       for kind, what, config in (
           ("relu", "RNN of 64 ReLU units", {"activation": "relu"}),
           ("gamma_homogeneous", "RNN, 64 γ units sharing one (n, s)", {"activation": "gamma_homogeneous"}),
           ("gamma_heterogeneous", "RNN, 64 γ units with their own (n, s)", {"activation": "gamma_heterogeneous"}),
           ("adaptive", "RNN of 64 adaptive units", {"kind": "adaptive_rnn", "controller_size": 16}),
       )},
}


def available() -> dict[str, str]:
    """Names of the zoo models and a one-line description of what makes each interesting."""
    return {name: spec.description for name, spec in ZOO.items()}


def _check_name(name) -> str:
    if not isinstance(name, str) or name not in ZOO:
        raise ValueError(f"Unknown sample model {name!r}; valid names: {', '.join(ZOO)}.")
    return name


@functools.lru_cache(maxsize=1)
def manifest() -> dict:
    """The contents of ``weights/manifest.json`` (config, training settings, accuracies, digests)."""
    with open(WEIGHTS_DIR / "manifest.json", encoding="utf-8") as f:
        return json.load(f)


@functools.lru_cache(maxsize=None)
def _state_dict(name: str) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    path = WEIGHTS_DIR / f"{name}.safetensors"
    if not path.exists():
        raise FileNotFoundError(
            f"Weights for {name!r} are missing ({path}); run `python -m sample_models.train`."
        )
    return load_file(str(path))


def load(name: str) -> nn.Module:
    """A fresh copy of zoo model ``name`` with its shipped weights, in eval mode, gradients off.

    The weights are read once per process and cached; every call builds a new module, so
    editing the returned model never affects later calls. Raises ``ValueError`` for an
    unknown name (the message lists the valid ones).
    """
    from .architectures import build

    _check_name(name)
    spec = ZOO[name]
    model = build(spec.config)
    model.load_state_dict(_state_dict(name), strict=True)
    model.eval()
    model.requires_grad_(False)
    model.zoo_name = name
    return model


def _model(name_or_model) -> nn.Module:
    if isinstance(name_or_model, nn.Module):
        return name_or_model
    return load(_check_name(name_or_model))


def layer_names(name_or_model) -> list[str]:
    """Names (as in ``model.named_modules()``) of the layers worth comparing, in forward order.

    Each named module is called exactly once per forward pass. MLPs: ``hidden1`` ...
    ``hidden<depth>`` (post-activation) and ``logits``; CNN: ``conv1``, ``conv2``, ``fc1``,
    ``logits``; RNNs: ``step1`` ... ``step8`` (hidden state after each row) and ``logits``.
    """
    model = _model(name_or_model)
    if not hasattr(model, "layer_names"):
        raise ValueError(
            f"{type(model).__name__} is not a sample model; layer_names() knows MLP, CNN, RNN "
            "and AdaptiveRNN. For other modules pick names from model.named_modules()."
        )
    return list(model.layer_names())


def run_from_layers(name_or_model) -> list[str]:
    """Layers :func:`run_from` can continue from (all layers for MLPs and the CNN; for RNNs the
    final hidden state and the logits)."""
    return list(_model(name_or_model).run_from_layers())


def _output_shape(model: nn.Module, layer: str) -> tuple[int, ...]:
    """Per-example shape of module ``layer``'s output, from a forward pass on one zero input."""
    modules = dict(model.named_modules())
    if layer not in modules:
        raise ValueError(
            f"{layer!r} is not a module of this {type(model).__name__}; supported layers: "
            f"{', '.join(model.run_from_layers())}."
        )
    shape: list[tuple[int, ...]] = []
    handle = modules[layer].register_forward_hook(lambda m, i, o: shape.append(tuple(o.shape[1:])))
    try:
        with torch.no_grad():
            model(torch.zeros(1, model.input_dim, dtype=next(model.parameters()).dtype))
    finally:
        handle.remove()
    return shape[-1]


def _to_tensor(representation, dtype: torch.dtype) -> torch.Tensor:
    if isinstance(representation, torch.Tensor):
        return representation.detach().to(dtype)
    arr = np.asarray(representation)
    if arr.dtype == object or not np.issubdtype(arr.dtype, np.number):
        raise ValueError(f"representation must be a numeric array, got dtype {arr.dtype}.")
    return torch.tensor(arr, dtype=dtype)  # a copy: the caller's array is never shared


def run_from(model, layer: str, representation) -> np.ndarray:
    """Logits from feeding ``representation`` through the rest of ``model`` after ``layer``.

    Parameters
    ----------
    model : nn.Module or str
        A sample model (or its zoo name).
    layer : str
        A layer of :func:`run_from_layers` (for MLPs and the CNN also a module inside a block,
        e.g. ``"hidden2.linear"`` for the pre-activation).
    representation : array or tensor, shape (n, d) or (n, *layer_shape)
        The (possibly edited) output of ``layer`` for n examples, flattened per example or in
        the layer's own shape (e.g. (n, 16, 8, 8) for the CNN's ``conv1``).

    Returns
    -------
    np.ndarray
        (n, n_classes) float32 logits. On the unedited representation they equal ``model(X)``.
    """
    model = _model(model)
    if not hasattr(model, "run_from"):
        raise ValueError(f"run_from works on the sample models only, not on {type(model).__name__}.")
    supported = model.run_from_layers()
    if layer not in supported and not (
        "." in layer and layer.split(".")[0] in supported and layer in dict(model.named_modules())
    ):
        raise ValueError(
            f"run_from cannot continue this {type(model).__name__} from {layer!r}; supported "
            f"layers: {', '.join(supported)}."
        )
    dtype = next(model.parameters()).dtype
    z = _to_tensor(representation, dtype)
    shape = _output_shape(model, layer)
    n = z.shape[0]
    if z.numel() != n * int(np.prod(shape)):
        raise ValueError(
            f"representation for {layer!r} must have {int(np.prod(shape))} values per example "
            f"(layer shape {shape}), got shape {tuple(z.shape)}."
        )
    z = z.reshape(n, *shape)
    with torch.no_grad():
        out = model.run_from(layer, z)
    return out.detach().cpu().numpy()


def predict(model, X, batch_size: int | None = None) -> np.ndarray:
    """Logits of ``model`` (a module or zoo name) on ``X`` (array or tensor), as a numpy array."""
    model = _model(model)
    dtype = next(model.parameters()).dtype
    x = _to_tensor(X, dtype)
    with torch.no_grad():
        if batch_size is None:
            out = model(x)
        else:
            out = torch.cat([model(x[i : i + batch_size]) for i in range(0, x.shape[0], batch_size)])
    return out.detach().cpu().numpy()


def accuracy(logits, y) -> float:
    """Fraction of rows whose argmax logit equals the label."""
    logits = logits.detach().cpu().numpy() if isinstance(logits, torch.Tensor) else np.asarray(logits)
    y = np.asarray(y).reshape(-1)
    if logits.shape[0] != y.shape[0]:
        raise ValueError(f"{logits.shape[0]} rows of logits but {y.shape[0]} labels.")
    return float(np.mean(np.argmax(logits, axis=1) == y))


def gamma_parameters(name_or_model) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Learned gamma gain and saturation of every neuron, per layer, as used in the forward pass.

    Returns ``{layer: (n, s)}`` with float64 arrays of shape (neurons,) (n clamped to >= 1e-3,
    s into [0, 1]; a homogeneous layer's single pair is repeated for each neuron). Keys: for
    MLPs the layer of :func:`layer_names` the activation belongs to (``"hidden1"``, ...); for
    the gamma RNN ``"act"`` (one activation shared by all steps). Models without a learnable
    gamma give ``{}``; for the adaptive RNN, whose (n, s) change at every step, use
    ``model.adaptation_trace(X)``.
    """
    model = _model(name_or_model)
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for mod_name, m in model.named_modules():
        if isinstance(m, Gamma):
            key = mod_name[: -len(".act")] if mod_name.endswith(".act") else mod_name
            with torch.no_grad():
                n, s = m.effective()
            n = np.broadcast_to(n.double().numpy(), (m.size,)).copy()
            s = np.broadcast_to(s.double().numpy(), (m.size,)).copy()
            out[key] = (n, s)
    return out
