"""Weights taken for activations: real state_dicts (the sample models, BatchNorm, LSTM/GRU, a small
BERT and ViT), with their own names and with keys renamed ``a0, a1, …``, saved in every format an
activations file comes in and read by every path (an upload, ``--stream``, the command line); and
real activations beside them, which must still load. The builders are shared with
tests/cka_core/test_weights.py."""
from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from .harness import Built, Case

WEIGHTS = r"looks like a model's weights \(a state_dict\), not activations"
FORMATS = ("npz", "pt", "safetensors", "npy-folder")


def _torch_state_dict(module) -> dict[str, np.ndarray]:
    return {k: v.detach().numpy().copy() for k, v in module.state_dict().items()}


def _sample(name: str):
    import sample_models

    return sample_models.load(name)


def _transformer(kind: str):
    import transformers

    from cka_core.models.huggingface import quiet_transformers

    quiet_transformers()
    if kind == "bert":
        return transformers.BertModel(transformers.BertConfig(
            vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
            max_position_embeddings=64))
    return transformers.ViTModel(transformers.ViTConfig(
        image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64))


def _modules():
    import torch
    from torch import nn

    torch.manual_seed(0)
    return {
        "cnn_batchnorm": lambda: nn.Sequential(nn.Conv2d(1, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(),
                                               nn.Linear(8 * 6 * 6, 10)),
        "batchnorm": lambda: nn.BatchNorm1d(16),
        "lstm": lambda: nn.LSTM(8, 16, num_layers=2),
        "gru": lambda: nn.GRU(8, 16),
    }


#: Every architecture, by name: the sample models' four kinds, then modules they lack.
ARCHITECTURES = ("mlp", "cnn", "rnn", "adaptive_rnn", "cnn_batchnorm", "batchnorm", "lstm", "gru", "bert", "vit")


@functools.lru_cache(maxsize=None)
def state_dict(architecture: str) -> dict[str, np.ndarray]:
    """The real state_dict of ``architecture`` (one of :data:`ARCHITECTURES`) as numpy arrays."""
    samples = {"mlp": "mlp_seed0", "cnn": "cnn", "rnn": "rnn_relu", "adaptive_rnn": "pixel_rnn_adaptive"}
    if architecture in samples:
        return _torch_state_dict(_sample(samples[architecture]))
    if architecture in ("bert", "vit"):
        return _torch_state_dict(_transformer(architecture))
    return _torch_state_dict(_modules()[architecture]())


def renamed(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The same arrays under meaningless names ``a0, a1, …``: only their shapes are left to judge by."""
    return {f"a{i}": value for i, value in enumerate(arrays.values())}


@functools.lru_cache(maxsize=None)
def activations(model: str = "mlp_seed0", rows: int = 120) -> dict[str, np.ndarray]:
    """Real activations: ``cka_core.capture`` of a sample model's layers on test digits, with labels."""
    import sample_models
    from cka_core import capture

    digits = sample_models.digits()
    net = _sample(model)
    acts = capture(net, digits.X_test[:rows], sample_models.layer_names(net))
    return {**{k: v.reshape(len(v), -1) if v.ndim > 4 else v for k, v in acts.items()}, "labels": digits.y_test[:rows]}


def save(arrays: dict[str, np.ndarray], fmt: str, directory: Path, stem: str = "file") -> Path:
    """``arrays`` written as ``fmt`` (one of :data:`FORMATS`) under ``directory``; the path written."""
    directory.mkdir(parents=True, exist_ok=True)
    if fmt == "npz":
        path = directory / f"{stem}.npz"
        np.savez(path, **arrays)
    elif fmt == "pt":
        import torch

        path = directory / f"{stem}.pt"
        torch.save({k: torch.from_numpy(v.copy(order="C")) for k, v in arrays.items()}, path)
    elif fmt == "safetensors":
        from safetensors.numpy import save_file

        path = directory / f"{stem}.safetensors"
        save_file({k: v.copy(order="C") for k, v in arrays.items()}, str(path))
    else:
        path = directory / stem
        path.mkdir()
        for name, value in arrays.items():
            np.save(path / f"{name}.npy", value)
    return path


def _case(name: str, via: str, arrays, fmt: str, expect: str | None) -> Case:
    def build(tmp: Path) -> Built:
        path = save(arrays(), fmt, tmp)
        return Built(via, (str(path),))

    return Case(f"weights-{name}", build, expect)


def _cli_case(name: str, a, b, expect: str | None) -> Case:
    def build(tmp: Path) -> Built:
        return Built("cli", ("compare", "--stream", str(save(a(), "npz", tmp / "a")), str(save(b(), "npz", tmp / "b"))))

    return Case(f"weights-{name}", build, expect)


def _acts():
    return activations()


CASES = [
    _case("mlp-named-npz", "representations", lambda: state_dict("mlp"), "npz", WEIGHTS + r".*named like parameters"),
    _case("mlp-renamed-pt", "representations", lambda: renamed(state_dict("mlp")), "pt", WEIGHTS + r".*chain"),
    _case("cnn-renamed-safetensors", "representations", lambda: renamed(state_dict("cnn")), "safetensors",
          WEIGHTS + r".*chain"),
    _case("cnn-batchnorm-named-pt", "representations", lambda: state_dict("cnn_batchnorm"), "pt",
          WEIGHTS + r".*named like parameters"),
    _case("batchnorm-renamed-npz", "representations", lambda: renamed(state_dict("batchnorm")), "npz",
          WEIGHTS + r".*BatchNorm"),
    _case("lstm-renamed-safetensors", "representations", lambda: renamed(state_dict("lstm")), "safetensors",
          WEIGHTS + r".*LSTM"),
    _case("bert-renamed-npz", "representations", lambda: renamed(state_dict("bert")), "npz", WEIGHTS + r".*chain"),
    _case("mlp-renamed-stream-folder", "stream", lambda: renamed(state_dict("mlp")), "npy-folder",
          WEIGHTS + r".*chain"),
    _case("cnn-named-stream-npz", "stream", lambda: state_dict("cnn"), "npz", WEIGHTS),
    _case("gru-renamed-stream-safetensors", "stream", lambda: renamed(state_dict("gru")), "safetensors",
          WEIGHTS + r".*GRU"),
    _cli_case("cli-stream-renamed-rnn", lambda: renamed(state_dict("rnn")), _acts, WEIGHTS),
    # Legitimate neighbours: real activations (several widths, labels; one layer) still load everywhere.
    _case("activations-npz", "representations", _acts, "npz", None),
    _case("activations-pt", "representations", _acts, "pt", None),
    _case("activations-one-layer-safetensors", "representations", lambda: {"fc1": _acts()["hidden1"]}, "safetensors",
          None),
    _case("activations-stream-folder", "stream", _acts, "npy-folder", None),
    _cli_case("cli-stream-activations", _acts, lambda: activations("mlp_seed1"), None),
]
