"""Activations of named modules through forward hooks, safely.

What peer libraries get wrong (docs/peers.md §2) and this avoids: hooks that stay
registered, outputs kept by reference (a later ReLU(inplace=True) corrupts them),
autograd graphs kept alive, a module called twice per forward keeping only its last
call, and inputs shuffled against each other.
"""
from __future__ import annotations

from collections import defaultdict

import numpy as np
import torch
from torch import nn

from ..errors import RepresentationError
from ..cka.validation import numpy_view


def _first_tensor(output):
    """The tensor a module produced (the first one, for modules that return tuples)."""
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)):
        for item in output:
            if isinstance(item, torch.Tensor):
                return item
    if isinstance(output, dict):
        for item in output.values():
            if isinstance(item, torch.Tensor):
                return item
    return None


def _model_device(model: nn.Module) -> torch.device:
    for tensor in list(model.parameters()) + list(model.buffers()):
        return tensor.device
    return torch.device("cpu")


def capture(model: nn.Module, inputs, layers=None, *, batch_size: int = 256) -> dict[str, np.ndarray]:
    """Run ``inputs`` through ``model`` and return the output of each named module.

    Parameters
    ----------
    model : nn.Module
        Run in eval mode under ``torch.no_grad``; its previous mode is restored.
    inputs : array or tensor of shape (n, ...)
        Processed in order, in batches of ``batch_size``: row i of every result is input row i.
    layers : list of module names (as in ``model.named_modules()``), or None for every leaf module.

    Returns
    -------
    dict name -> array of shape (n, ...) (per-example shape kept). A module called k > 1
    times in one forward pass gives keys ``name[0]`` ... ``name[k-1]``, one per call.
    """
    modules = dict(model.named_modules())
    if layers is None:
        layers = [name for name, module in modules.items() if name and not any(True for _ in module.children())]
    layers = list(layers)
    unknown = [name for name in layers if name not in modules]
    if unknown:
        raise RepresentationError(
            f"unknown layer name(s) {unknown}; valid names are: {', '.join(n for n in modules if n)}."
        )
    if not isinstance(batch_size, int) or batch_size < 1:
        raise RepresentationError(f"batch_size must be a positive integer, not {batch_size!r}.")
    x_all = inputs if isinstance(inputs, torch.Tensor) else numpy_view(np.asarray(inputs))
    device = _model_device(model)

    calls: dict[str, list[torch.Tensor]] = defaultdict(list)

    def make_hook(name: str):
        def hook(_module, _inputs, output):
            tensor = _first_tensor(output)
            if tensor is not None:
                # Copy now: a later in-place op (ReLU(inplace=True)) would otherwise rewrite it.
                calls[name].append(tensor.detach().to("cpu", copy=True))

        return hook

    per_layer: dict[str, list[list[torch.Tensor]]] = {name: [] for name in layers}
    was_training = model.training
    handles = [modules[name].register_forward_hook(make_hook(name)) for name in layers]
    try:
        model.eval()
        with torch.no_grad():
            for start in range(0, x_all.shape[0], batch_size):
                calls.clear()
                model(x_all[start : start + batch_size].to(device))
                for name in layers:
                    if not calls[name]:
                        raise RepresentationError(
                            f"layer {name!r} never produced a tensor during the forward pass; "
                            "pick a module that the model calls (and that returns a tensor)."
                        )
                    if per_layer[name] and len(calls[name]) != len(per_layer[name][0]):
                        raise RepresentationError(
                            f"layer {name!r} was called {len(calls[name])} times in one batch but "
                            f"{len(per_layer[name][0])} times in an earlier one; its output cannot be aligned."
                        )
                    per_layer[name].append(list(calls[name]))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)

    result: dict[str, np.ndarray] = {}
    for name in layers:
        n_calls = len(per_layer[name][0])
        for k in range(n_calls):
            key = name if n_calls == 1 else f"{name}[{k}]"
            result[key] = torch.cat([batch[k] for batch in per_layer[name]]).numpy()
    return result
