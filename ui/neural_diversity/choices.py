"""What the Neural diversity page offers: the sets of networks, the perturbations and their amplitude grids, the
γ presets, and the test digits.

The zoo models come from the registry (:func:`ui.sources.models.module`) and are never edited (perturbations run
on private copies). The amplitude slider moves on the same grid the curves are computed on (:func:`grid`,
:func:`snap`).
"""
from __future__ import annotations

import numpy as np

from sample_models import perturbations as pert

from ..sources import models

# The two sets of networks whose robustness is compared: how they read the digit -> label.
PROTOCOLS = {
    "pixels": "Geadah et al.'s protocol: pixel by pixel, 64 steps",
    "rows": "The zoo's networks: row by row, 8 steps (and MLPs)",
}
# The networks of each protocol, in display order: code -> short label.
NETWORK_SETS = {
    "pixels": {
        "pixel_rnn_relu": "RNN ReLU",
        "pixel_rnn_gamma_homogeneous": "RNN γ homog.",
        "pixel_rnn_gamma_heterogeneous": "RNN γ heterog.",
        "pixel_rnn_adaptive": "RNN adaptive",
    },
    "rows": {
        "mlp_seed0": "MLP ReLU",
        "mlp_gamma_homogeneous": "MLP γ homog.",
        "mlp_gamma_heterogeneous": "MLP γ heterog.",
        "rnn_relu": "RNN ReLU",
        "rnn_gamma_heterogeneous": "RNN γ heterog.",
        "rnn_adaptive": "RNN adaptive",
    },
}
# Section 2's networks (the zoo's, with their learned (n, s)).
NETWORKS = NETWORK_SETS["rows"]
ADAPTIVE = {"pixels": "pixel_rnn_adaptive", "rows": "rnn_adaptive"}
NETWORKS_CAPTION = {
    "pixels": "RNNs of 64 units reading one pixel per step in a fixed random order, as Geadah et al.'s read psMNIST, "
              "with their initialisation and training (Adam, learning rate cut on a validation plateau).",
    "rows": "Dashed: MLPs (the same change applied along the image rows, the drive on the first hidden layer); solid: "
            "RNNs reading one row per step.",
}
LABELS = {name: label for networks in NETWORK_SETS.values() for name, label in networks.items()}

PERTURBATIONS = {
    "sin_gain": "Gain modulation 1 + A·sin(2πf·t/T)",
    "noise": "Gaussian noise (std A)",
    "drive": "Step drive +A on pre-activations",
    "noisy_drive": "Noisy drive N(A, 0.4A) on pre-activations",
}
# The amplitude slider of each kind: (max, step, default). Its values are the grid of the curves.
AMPLITUDES = {
    "sin_gain": (1.0, 0.1, 0.5),   # Geadah et al. test at A = 0.5, f = 1
    "noise": (0.5, 0.05, 0.2),     # pixels are in [0, 1]
    "drive": (2.0, 0.2, 1.0),      # Geadah et al. add +1
    "noisy_drive": (6.0, 0.5, 5.0),  # Geadah et al.'s noise: N(5, 2)
}

# The amplitude slider of each kind: (label, URL key, help).
AMPLITUDE_SLIDERS = {
    "sin_gain": ("Gain modulation amplitude A", "nd_amp_sin",
                 "What is read at step t of T is multiplied by 1 + A·sin(2πf·t/T): row t of 8, or the pixel read at "
                 "step t of 64."),
    "noise": ("Noise standard deviation A", "nd_amp_noise", "Pixels are in [0, 1]; the noise is added to every pixel."),
    "drive": ("Step drive amplitude A", "nd_amp_drive",
              "Added to every unit's pre-activation (RNNs: in the window; MLPs: the first hidden layer)."),
    "noisy_drive": ("Noisy drive mean A", "nd_amp_noisy",
                    "Like the step drive, plus Gaussian noise of variance 0.4·A drawn for every digit, step and unit "
                    "(a fixed pattern per seed): at A = 5 it is Geadah et al.'s noise, N(5, 2); at A = 0 nothing."),
}
# The settings each kind uses besides its amplitude: only these are shown (and key the cache).
SETTINGS = {"sin_gain": ("frequency",), "noise": ("seed",), "drive": ("window",), "noisy_drive": ("seed", "window")}

# gamma presets: code -> (label, n, s)
PRESETS = {
    "custom": ("Custom", None, None),
    "softplus": ("Softplus-like", 1.0, 0.0),
    "sigmoid": ("Sigmoid-like", 1.0, 1.0),
    "relu": ("ReLU-like", 20.0, 0.0),
    "init": ("As initialised", 6.0, 0.5),
}


def grid(kind: str) -> np.ndarray:
    """Amplitudes of the curves: 0 to the slider's maximum in the slider's steps."""
    top, step, _ = AMPLITUDES[kind]
    return np.round(np.arange(0.0, top + step / 2, step), 10)


def snap(kind: str, amplitude: float) -> int:
    """Index of the grid amplitude nearest to ``amplitude``."""
    return int(np.argmin(np.abs(grid(kind) - amplitude)))


def model(name: str):
    return models.module(name)


def test_count() -> int:
    """How many test digits there are (the digit slider's range)."""
    return len(models.digits().y_test)


def last_test_index() -> int:
    return test_count() - 1


def test_label(index: int) -> int:
    return int(models.digits().y_test[index])


def preset_values(label: str) -> tuple[float | None, float | None]:
    """(n, s) of the preset shown as ``label`` (None for Custom)."""
    _, n, s = next(values for values in PRESETS.values() if values[0] == label)
    return n, s


def kind_settings(kind: str, frequency: float | None, seed: int | None,
                  window: tuple[int, int] | None) -> tuple[float, int, tuple[int, int]]:
    """(frequency, seed, window) with the settings the kind does not use (:data:`SETTINGS`; None where the page
    does not show them) at their defaults, so that only the chosen kind's settings key the cache."""
    uses = SETTINGS[kind]
    return (float(frequency) if "frequency" in uses else 1.0, int(seed) if "seed" in uses else 0,
            (int(window[0]), int(window[1])) if "window" in uses else (1, pert.EIGHTHS))
