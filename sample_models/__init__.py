"""Sample data, architectures and a zoo of small trained models for the CKA Pitfalls Explorer.

Data (nothing downloaded)
    :func:`digits`, :func:`sequential_digits`, :func:`gaussian_clusters`, :func:`two_cubes`.
Architectures
    :class:`MLP`, :class:`CNN`, :class:`RNN`, :class:`AdaptiveRNN` (with its
    :class:`AdaptiveController`), Geadah et al.'s activation :func:`gamma` / :class:`Gamma`.
    Module structures and names are documented in :mod:`sample_models.architectures`.
The zoo
    :func:`available` (name -> description), :func:`load` (a fresh eval-mode copy with the
    shipped weights), :func:`layer_names` (layers worth comparing, forward order),
    :func:`run_from` (logits from an edited representation of a layer), :func:`predict`,
    :func:`accuracy`, :func:`gamma_parameters`; ``model.adaptation_trace(X)`` for the adaptive
    RNN's per-step (n, s).
Probing
    :func:`probe_accuracy` and :class:`LinearProbe` (closed-form ridge, milliseconds).

``python -m sample_models.train`` retrains the whole zoo deterministically.
"""
from .activations import Gamma, gamma
from .architectures import CNN, MLP, RNN, AdaptiveController, AdaptiveRNN, build
from .data import Digits, LabelledSet, digits, gaussian_clusters, sequential_digits, two_cubes
from .probe import LinearProbe, probe_accuracy
from .zoo import (
    ZOO,
    accuracy,
    available,
    gamma_parameters,
    layer_names,
    load,
    manifest,
    predict,
    run_from,
    run_from_layers,
)

__all__ = [
    "Digits",
    "LabelledSet",
    "digits",
    "sequential_digits",
    "gaussian_clusters",
    "two_cubes",
    "gamma",
    "Gamma",
    "MLP",
    "CNN",
    "RNN",
    "AdaptiveRNN",
    "AdaptiveController",
    "build",
    "ZOO",
    "available",
    "load",
    "layer_names",
    "run_from",
    "run_from_layers",
    "predict",
    "accuracy",
    "gamma_parameters",
    "manifest",
    "LinearProbe",
    "probe_accuracy",
]
