"""Weights are never taken for activations, by any path: real state_dicts of every architecture
(named and renamed ``a0, a1, …``) in every format are refused with the reason that fits, from shapes
alone where names say nothing; real activations (several widths, labels, one layer) and random ones
still load."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cka_core import RepresentationError
from cka_core.io import activation_layers, load_representations
from cka_core.io.streaming import open_layers
from cka_core.io.weights import LABEL_KEYS, weights_reason
from tests.hostile.cases_weights import ARCHITECTURES, FORMATS, WEIGHTS, activations, renamed, save, state_dict

#: What each renamed state_dict is recognised by, when only its shapes are left.
SHAPE_REASON = {"batchnorm": "BatchNorm", "lstm": "LSTM", "gru": "GRU"}


def _read(path, via: str):
    """The layers a path yields by ``via``: the upload reader (then activation_layers) or --stream."""
    if via == "stream":
        return open_layers(path).names
    return list(activation_layers(load_representations(path.read_bytes(), path.name), path.name))


def _vias(fmt: str) -> list[str]:
    streamable = fmt in ("npz", "safetensors", "npy-folder")
    return (["load"] if fmt != "npy-folder" else []) + (["stream"] if streamable else [])


@pytest.mark.parametrize("architecture", ARCHITECTURES)
@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("names", ["named", "renamed"])
def test_a_state_dict_is_refused_by_every_path(architecture, fmt, names, tmp_path):
    arrays = state_dict(architecture) if names == "named" else renamed(state_dict(architecture))
    path = save(arrays, fmt, tmp_path)
    expected = (r"named like parameters|stacks \d gates" if names == "named"
                else SHAPE_REASON.get(architecture, "chain like layer parameters"))
    for via in _vias(fmt):
        with pytest.raises(RepresentationError, match=WEIGHTS + ".*(" + expected + ")") as info:
            _read(path, via)
        assert str(path.name) in str(info.value) and "\n" not in str(info.value)


def test_a_batchnorm_state_dict_is_refused_as_weights_not_for_its_scalar(tmp_path):
    """Regression: BatchNorm's num_batches_tracked was refused as 'a single number' before the
    weights judgement, which told the user to fix the wrong thing."""
    for arrays in (state_dict("batchnorm"), renamed(state_dict("batchnorm")), state_dict("cnn_batchnorm")):
        path = save(arrays, "pt", tmp_path / str(len(list(tmp_path.iterdir()))))
        with pytest.raises(RepresentationError, match=WEIGHTS) as info:
            load_representations(path.read_bytes(), path.name)
        assert "single number" not in str(info.value)


@pytest.mark.parametrize("model", ["mlp_seed0", "cnn", "rnn_relu", "pixel_rnn_adaptive"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_real_activations_still_load(model, fmt, tmp_path):
    """cka_core.capture on the sample models: several layers of different widths, with labels; and
    each file's one-layer neighbour."""
    acts = activations(model)
    layers = [k for k in acts if k not in LABEL_KEYS]
    for arrays in (acts, {layers[-1]: acts[layers[-1]]}):
        path = save(arrays, fmt, tmp_path / str(len(arrays)))
        for via in _vias(fmt):
            assert sorted(_read(path, via)) == sorted(k for k in arrays if k not in LABEL_KEYS)  # formats order apart


@settings(max_examples=200, deadline=None)
@given(rows=st.integers(1, 64), widths=st.lists(st.lists(st.integers(1, 70), min_size=1, max_size=3),
                                                 min_size=1, max_size=8), labels=st.booleans())
def test_random_activations_are_never_called_weights(rows, widths, labels):
    """Layers sharing their rows (the examples), whatever their widths, are activations."""
    shapes = {f"layer{i}": (rows, *w) for i, w in enumerate(widths)}
    if labels:
        shapes["labels"] = (rows,)
    assert weights_reason({k: v for k, v in shapes.items() if k not in LABEL_KEYS}) is None
    arrays = {k: np.broadcast_to(np.float32(0), v) for k, v in shapes.items()}  # shapes, no memory
    assert list(activation_layers(arrays, "acts.npz")) == [k for k in shapes if k not in LABEL_KEYS]
