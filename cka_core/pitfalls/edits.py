"""Function-preserving edits of a network: the outputs stay the same, the representations do not.

Davari et al. (ICLR 2023) show that CKA moves under transformations that leave a network's
behaviour intact. The edits here make that concrete on real ``nn.Module``s; each returns a new
network (a deep copy, the input model is never touched) or a new representation, and each is
exact in real arithmetic:

- :func:`rescale_neurons` -- positive per-neuron rescaling across a positively homogeneous
  activation: ``W_1 <- D W_1``, ``b_1 <- D b_1``, ``W_2 <- W_2 D^{-1}``, because
  ``relu(D z) = D relu(z)`` for ``D = diag(d)``, ``d > 0``. The layer's representation becomes
  ``H D`` (rows are examples).
- :func:`invertible_map_edit` -- an invertible linear map on a layer's output, ``H -> H M``,
  undone by the next linear layer, ``W_2 <- W_2 M^{-T}``.
- :func:`null_space_translation` -- a representation edit: rows of ``H`` move by ``c v`` with
  ``W_2 v = 0`` (exists only when ``W_2`` has fewer outputs than inputs, or is rank-deficient);
  continue the network from it with :func:`capture_edited`.

They work on sequential networks (modules registered in the order they run, like
``nn.Sequential`` and the zoo's MLPs) whose layer is read by an ``nn.Linear``:
``Linear -> activation -> Linear`` chains. Anything else raises :class:`RepresentationError`
saying why. Helpers :func:`layer_cka_map` and :func:`capture_edited` give the network's
layer x layer CKA map before and after.
"""
from __future__ import annotations

import copy
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..io.capture import capture
from .directions import null_space_dim, null_space_direction, PASS_THROUGH
from ..errors import RepresentationError
from ..cka.matrix import cka_matrix

__all__ = [
    "LinearChain",
    "linear_chain",
    "spread_scales",
    "one_neuron_scales",
    "rescale_neurons",
    "random_invertible_map",
    "invertible_map_edit",
    "has_null_space",
    "null_space_translation",
    "capture_edited",
    "layer_cka_map",
    "model_cka_map",
]

#: Elementwise activations with f(d z) = d f(z) for every d > 0 (positive homogeneity).
POSITIVELY_HOMOGENEOUS = (nn.ReLU, nn.LeakyReLU, nn.Identity, nn.Dropout, nn.Flatten)
#: Largest condition number accepted for an invertible map (beyond it float64 cannot undo it).
MAX_CONDITION = 1e12


@dataclass(frozen=True)
class LinearChain:
    """The modules around a layer: ``producer`` (the Linear that computes it, or None when the
    layer's output does not come straight from one), the activations between them, and
    ``reader`` (the Linear that reads the layer's output)."""

    layer: str
    producer: str | None
    activations: tuple[str, ...]
    reader: str

    def width(self, model: nn.Module) -> int:
        return model.get_submodule(self.reader).in_features


def _leaves(model: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(name, m) for name, m in model.named_modules() if name and not any(True for _ in m.children())]


def _check_layer(model: nn.Module, layer: str) -> nn.Module:
    if not isinstance(model, nn.Module):
        raise RepresentationError(f"model must be a torch nn.Module, not {type(model).__name__}.")
    modules = dict(model.named_modules())
    if not isinstance(layer, str) or not layer or layer not in modules:
        names = ", ".join(n for n in modules if n)
        raise RepresentationError(f"{layer!r} is not a module of this model; valid names are: {names}.")
    return modules[layer]


def _sequential_path(model: nn.Module, name: str) -> bool:
    """Whether every container from the root down to module ``name`` is an ``nn.Sequential``
    (then registration order is execution order, and each module's output feeds the next)."""
    container = model
    for part in name.split(".")[:-1]:
        if not isinstance(container, nn.Sequential):
            return False
        container = container._modules[part]
    return isinstance(container, nn.Sequential)


def _not_sequential(model: nn.Module, layer: str):
    raise RepresentationError(
        f"{type(model).__name__} is not a sequential network around {layer!r} (its modules are not "
        "all inside nn.Sequential containers), so the order they run in is unknown; the edits "
        "support Linear -> activation -> Linear chains built from nn.Sequential (e.g. an MLP)."
    )


def linear_chain(model: nn.Module, layer: str) -> LinearChain:
    """Locate ``Linear -> activations -> [layer output] -> Linear`` around ``layer``.

    The network must be sequential down to these modules (nested ``nn.Sequential`` blocks, like
    the zoo's MLPs and CNN), so that the order modules are registered in is the order they run
    in. The reader is the first ``nn.Linear`` after ``layer`` with only pass-through modules
    (Identity, Dropout, Flatten) in between; the producer is the last ``nn.Linear`` at or before
    the end of ``layer`` with only activation-like modules in between (None if a convolution or
    a normalisation computes the layer). Raises RepresentationError if the network is not
    sequential, no Linear reads the layer, or the widths do not chain.
    """
    _check_layer(model, layer)
    if not _sequential_path(model, layer):
        _not_sequential(model, layer)
    leaves = _leaves(model)
    inside = [i for i, (name, _) in enumerate(leaves) if name == layer or name.startswith(layer + ".")]
    if not inside:
        raise RepresentationError(f"{layer!r} holds no computing module; pick a layer that computes something.")
    end = inside[-1]
    reader = None
    for name, module in leaves[end + 1 :]:
        if isinstance(module, nn.Linear):
            reader = name
            break
        if not isinstance(module, PASS_THROUGH):
            raise RepresentationError(
                f"the output of {layer!r} goes through {name!r} ({type(module).__name__}) before any "
                "linear layer reads it, so no next-layer weight can undo an edit of it; pick a layer "
                "that feeds an nn.Linear directly (e.g. a hidden block of an MLP)."
            )
    if reader is None:
        raise RepresentationError(
            f"no linear layer reads {layer!r}: it is the network's output, and an edit of the output "
            "cannot be compensated; pick a hidden layer."
        )
    producer, between = None, []
    for name, module in reversed(leaves[: end + 1]):
        if isinstance(module, nn.Linear):
            producer = name
            break
        if isinstance(module, MIXING):
            break
        between.append(name)
    if not all(_sequential_path(model, name) for name in (reader, producer) if name):
        _not_sequential(model, layer)
    chain = LinearChain(layer, producer, tuple(reversed(between)) if producer else (), reader)
    width = model.get_submodule(reader).in_features
    if producer is not None and model.get_submodule(producer).out_features != width:
        raise RepresentationError(
            f"{producer!r} has {model.get_submodule(producer).out_features} outputs but {reader!r} reads "
            f"{width} inputs; the edits need a plain Linear -> activation -> Linear chain."
        )
    return chain


#: Modules that mix or normalise features: a layer computed by one has no Linear producer.
MIXING = (nn.modules.conv._ConvNd, nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm,
          nn.RNNBase, nn.MultiheadAttention, nn.Embedding, nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d,
          nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d,
          nn.Unflatten)


# --------------------------------------------------------------------------------------------
# (1) positive per-neuron rescaling across a ReLU
# --------------------------------------------------------------------------------------------

def spread_scales(width: int, spread: float, seed: int = 0) -> np.ndarray:
    """Per-neuron scales ``d_i = exp(spread * g_i)`` with ``g_i`` seeded standard normal draws.

    ``spread = 0`` is the identity; larger spreads make the rescaling more anisotropic.
    """
    if not isinstance(width, (int, np.integer)) or width < 1:
        raise RepresentationError(f"width must be a positive integer, not {width!r}.")
    if not np.isfinite(spread) or spread < 0:
        raise RepresentationError(f"spread must be a finite number >= 0, not {spread!r}.")
    g = np.random.default_rng(seed).standard_normal(int(width))
    return np.exp(float(spread) * g)


def one_neuron_scales(width: int, neuron: int, k: float) -> np.ndarray:
    """Scales that multiply neuron ``neuron`` by ``k`` (> 0) and leave the others alone."""
    if not isinstance(width, (int, np.integer)) or width < 1:
        raise RepresentationError(f"width must be a positive integer, not {width!r}.")
    if not 0 <= int(neuron) < width:
        raise RepresentationError(f"neuron index {neuron} is out of range 0..{width - 1}.")
    if not (np.isfinite(k) and k > 0):
        raise RepresentationError(f"k must be a finite positive number, not {k!r}: only d > 0 commutes with ReLU.")
    scales = np.ones(int(width))
    scales[int(neuron)] = float(k)
    return scales


def _check_scales(scales, width: int) -> np.ndarray:
    d = np.asarray(scales, dtype=np.float64)
    if d.shape != (width,):
        raise RepresentationError(f"scales must have shape ({width},), one per neuron, not {d.shape}.")
    if not np.all(np.isfinite(d)):
        raise RepresentationError("scales contain NaN or infinite values; pass finite positive numbers.")
    if np.any(d <= 0):
        bad = int(np.flatnonzero(d <= 0)[0])
        raise RepresentationError(
            f"scale {d[bad]!r} of neuron {bad} is not positive: relu(d z) = d relu(z) holds only for d > 0 "
            "(a negative d swaps the active and inactive halves, zero kills the neuron)."
        )
    return d


def rescale_neurons(model: nn.Module, layer: str, scales) -> nn.Module:
    """A copy of ``model`` whose layer ``layer`` is rescaled neuron by neuron, outputs unchanged.

    With ``D = diag(scales)`` (all > 0), the producing Linear's weight rows and bias become
    ``D W_1`` and ``D b_1``, and the reading Linear's columns ``W_2 D^{-1}``. As
    ``relu(D z) = D relu(z)``, the layer's representation becomes ``H D`` and every later layer
    is unchanged. Works in the model's own dtype. Raises RepresentationError for non-positive
    scales, a layer not computed by Linear -> positively homogeneous activation, or no reader.
    """
    chain = linear_chain(model, layer)
    if chain.producer is None:
        raise RepresentationError(
            f"{layer!r} is not computed by a Linear layer followed by an activation, so its neurons "
            "cannot be rescaled through the weights; pick a hidden Linear -> ReLU block."
        )
    for name in chain.activations:
        act = model.get_submodule(name)
        if not isinstance(act, POSITIVELY_HOMOGENEOUS):
            raise RepresentationError(
                f"{name!r} is a {type(act).__name__}, which is not positively homogeneous "
                "(f(d z) != d f(z) for d > 0), so rescaling its inputs changes the network; this edit "
                "needs ReLU (or LeakyReLU) between the two linear layers."
            )
    d = _check_scales(scales, chain.width(model))
    edited = copy.deepcopy(model)
    producer, reader = edited.get_submodule(chain.producer), edited.get_submodule(chain.reader)
    with torch.no_grad():
        dt = torch.as_tensor(d, dtype=producer.weight.dtype, device=producer.weight.device)
        producer.weight.mul_(dt[:, None])
        if producer.bias is not None:
            producer.bias.mul_(dt)
        reader.weight.div_(dt.to(reader.weight.dtype)[None, :])
    return edited


# --------------------------------------------------------------------------------------------
# (3) an invertible linear map and its inverse in the next layer
# --------------------------------------------------------------------------------------------

def random_invertible_map(dim: int, condition: float, seed: int = 0) -> np.ndarray:
    """A random ``(dim, dim)`` matrix with condition number ``condition``: ``U diag(s) V^T`` with
    Haar-random orthogonal U, V and singular values log-spaced from 1 down to 1/condition,
    normalised so that ``||M||_F^2 = dim`` (an orthogonal matrix when ``condition == 1``)."""
    if not isinstance(dim, (int, np.integer)) or dim < 1:
        raise RepresentationError(f"dim must be a positive integer, not {dim!r}.")
    if not (np.isfinite(condition) and condition >= 1):
        raise RepresentationError(f"condition number must be a finite number >= 1, not {condition!r}.")
    if condition > MAX_CONDITION:
        raise RepresentationError(f"condition number {condition:.3g} is above {MAX_CONDITION:.0e}: M would be numerically singular.")
    rng = np.random.default_rng(seed)
    u, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
    v, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
    s = np.logspace(0.0, -np.log10(condition), int(dim)) if dim > 1 else np.ones(1)
    s = s / np.sqrt(np.mean(s**2))
    return (u * s) @ v.T


def _check_map(M, width: int) -> np.ndarray:
    M = np.asarray(M, dtype=np.float64)
    if M.shape != (width, width):
        raise RepresentationError(f"M must be a square ({width}, {width}) matrix for this layer, not {M.shape}.")
    if not np.all(np.isfinite(M)):
        raise RepresentationError("M contains NaN or infinite values.")
    s = np.linalg.svd(M, compute_uv=False)
    if s[-1] <= 0 or s[0] / s[-1] > MAX_CONDITION:
        cond = np.inf if s[-1] <= 0 else s[0] / s[-1]
        raise RepresentationError(
            f"M is singular (condition number {cond:.3g} > {MAX_CONDITION:.0e}): it loses information that "
            "no next layer can recover; pass an invertible matrix."
        )
    return M


class LinearMap(nn.Module):
    """``h -> h @ M`` on each example's flattened output, shape kept (the module the
    invertible-map edit appends to a layer)."""

    def __init__(self, M: torch.Tensor):
        super().__init__()
        self.register_buffer("matrix", M)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return (h.reshape(h.shape[0], -1) @ self.matrix).reshape(h.shape)

    def extra_repr(self) -> str:
        return f"{self.matrix.shape[0]}x{self.matrix.shape[1]}"


def _replace(model: nn.Module, path: str, module: nn.Module) -> None:
    parent_path, _, child = path.rpartition(".")
    parent = model.get_submodule(parent_path) if parent_path else model
    setattr(parent, child, module)


def invertible_map_edit(model: nn.Module, layer: str, M) -> tuple[nn.Module, Callable[[np.ndarray], np.ndarray]]:
    """A copy of ``model`` whose layer ``layer`` outputs ``H M`` and whose next Linear reads it
    with ``W_2 M^{-T}``, so ``H M (W_2 M^{-T})^T = H W_2^T``: outputs unchanged.

    The map acts on the layer's output (after its activation), the representation the next
    Linear reads; appended inside the layer (an ``nn.Sequential`` block gets a module
    ``invertible_map``, any other module is wrapped), so capturing ``layer`` gives ``H M``.
    ``M^{-1}`` is formed in float64. Returns the edited network and the function
    ``H -> H M`` on representations. Raises RepresentationError for a singular or wrongly
    shaped M, or a layer that no Linear reads.
    """
    chain = linear_chain(model, layer)
    M = _check_map(M, chain.width(model))
    inverse_t = np.linalg.inv(M).T
    edited = copy.deepcopy(model)
    reader = edited.get_submodule(chain.reader)
    dtype, device = reader.weight.dtype, reader.weight.device
    with torch.no_grad():
        w = reader.weight.detach().to(torch.float64).cpu().numpy()
        reader.weight.copy_(torch.as_tensor(w @ inverse_t, dtype=dtype, device=device))
    mapping = LinearMap(torch.as_tensor(M, dtype=dtype, device=device))
    target = edited.get_submodule(layer)
    if isinstance(target, nn.Sequential):
        target.add_module("invertible_map", mapping)
    else:
        _replace(edited, layer, nn.Sequential(OrderedDict(original=target, invertible_map=mapping)))

    def represent(H: np.ndarray) -> np.ndarray:
        return np.asarray(H, dtype=np.float64).reshape(len(H), -1) @ M

    return edited, represent


# --------------------------------------------------------------------------------------------
# (2) translation in the null space of the next layer
# --------------------------------------------------------------------------------------------

def _reader_weight(model: nn.Module, layer: str) -> np.ndarray:
    chain = linear_chain(model, layer)
    with torch.no_grad():
        return model.get_submodule(chain.reader).weight.detach().to(torch.float64).cpu().numpy()


def has_null_space(model: nn.Module, layer: str) -> bool:
    """Whether some direction v != 0 satisfies ``W_next v = 0`` (the next Linear's weight)."""
    return null_space_dim(_reader_weight(model, layer)) > 0


def null_space_translation(model: nn.Module, layer: str, representation, moved, c: float,
                           seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Translate the rows ``moved`` (boolean mask) of ``representation`` by ``c * v``, where v is a
    random unit vector with ``W_next v = 0``: the next layer's input changes, its output does not.

    Returns ``(edited representation (float64), v)``. Raises RepresentationError when the next
    Linear has full column rank (e.g. a square 64 -> 64 layer), for a mask of the wrong length,
    or a non-finite c.
    """
    W = _reader_weight(model, layer)
    H = np.asarray(representation, dtype=np.float64)
    H = H.reshape(H.shape[0], -1) if H.ndim else H
    if H.ndim != 2 or H.shape[1] != W.shape[1]:
        raise RepresentationError(
            f"the representation of {layer!r} must have shape (n, {W.shape[1]}), not {np.shape(representation)}."
        )
    mask = np.asarray(moved)
    if mask.dtype != bool or mask.shape != (H.shape[0],):
        raise RepresentationError(f"moved must be a boolean mask of length {H.shape[0]}, not {mask.dtype} {mask.shape}.")
    if not np.isfinite(c):
        raise RepresentationError(f"c must be finite, not {c!r}.")
    v = null_space_direction(W, seed, what=f"the layer reading {layer!r}")
    return H + np.outer(mask * float(c), v), v


def capture_edited(model: nn.Module, inputs, layers: Sequence[str], replace: dict[str, np.ndarray],
                   *, batch_size: int = 256) -> dict[str, np.ndarray]:
    """Like :func:`capture`, but the output of each layer in ``replace`` is swapped for the given
    (n, ...) representation, so later layers continue from the edited one.

    Works on a deep copy (forward hooks are never added to the caller's model, which may be
    shared). Row i of each replacement belongs to input row i.
    """
    if not replace:
        return capture(model, inputs, layers, batch_size=batch_size)
    work = copy.deepcopy(model)
    n = len(inputs)
    dtype = next((p.dtype for p in work.parameters()), torch.float32)
    hooks = []
    for name, rep in replace.items():
        module = _check_layer(work, name)
        r = torch.as_tensor(np.asarray(rep), dtype=dtype)
        if r.shape[0] != n:
            raise RepresentationError(f"the replacement for {name!r} has {r.shape[0]} rows but there are {n} inputs.")
        state = {"offset": 0}

        def hook(_m, _i, output, r=r, state=state, name=name):
            rows = output.shape[0]
            chunk = r[state["offset"] : state["offset"] + rows]
            state["offset"] += rows
            if chunk.numel() != output.numel():
                raise RepresentationError(
                    f"the replacement for {name!r} has {chunk[0].numel()} values per example but the layer "
                    f"outputs {output[0].numel()}."
                )
            return chunk.reshape(output.shape).to(output.device)

        hooks.append(module.register_forward_hook(hook))
    return capture(work, inputs, layers, batch_size=batch_size)


def layer_cka_map(layers: dict[str, np.ndarray], *, debiased: bool = False) -> np.ndarray:
    """The layer x layer linear CKA map of one network (``cka_matrix`` of its captured layers)."""
    return cka_matrix(layers, debiased=debiased)


def model_cka_map(model: nn.Module, inputs, layers: Sequence[str] | None = None, *,
                  debiased: bool = False) -> tuple[list[str], np.ndarray]:
    """Capture ``layers`` (default: ``model.layer_names()`` for the zoo's models) on ``inputs``
    and return their names and layer x layer linear CKA map."""
    if layers is None:
        if not hasattr(model, "layer_names"):
            raise RepresentationError("this model has no layer_names(); pass the layers to compare explicitly.")
        layers = list(model.layer_names())
    captured = capture(model, inputs, layers)
    return list(captured), layer_cka_map(captured, debiased=debiased)
