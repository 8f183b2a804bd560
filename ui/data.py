"""Cached access to models and representations, keyed on small descriptors.

Every cache is bounded. Shared objects (models, arrays) are read-only: arrays are marked
non-writeable and models are never edited in place (pages that edit copy first).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import streamlit as st
import torch

import sample_models
from cka_core import RepresentationError, capture
from cka_core.io import load_representations

from . import limits


@dataclass(frozen=True)
class Source:
    """Where the representation comes from: a small, hashable descriptor.

    kind: "model" (params: model name, layer), "session_model" (a network fine-tuned in this
    session: label, layer), "synthetic" (params: set name and its settings), or "upload"
    (params: content digest, file name, array name).
    """

    kind: str
    params: tuple


@dataclass(frozen=True)
class Representation:
    """Test-split activations (what pages manipulate), the training split (for probes) and labels."""

    X: np.ndarray
    y: np.ndarray | None
    X_train: np.ndarray | None
    y_train: np.ndarray | None
    model_name: str | None
    layer: str | None
    label: str
    key: str  # a digest of the source: the cache key of everything computed from it
    note: str | None = None  # what the sidebar should tell about this source (e.g. labels left unused)

    @property
    def has_labels(self) -> bool:
        return self.y is not None

    @property
    def has_model(self) -> bool:
        return self.model_name is not None


def _readonly(array: np.ndarray | None) -> np.ndarray | None:
    if array is None:
        return None
    array = np.ascontiguousarray(array)
    array.setflags(write=False)
    return array


def _flat64(array: np.ndarray) -> np.ndarray:
    return np.asarray(array, dtype=np.float64).reshape(array.shape[0], -1)


@st.cache_resource(max_entries=16, show_spinner="Loading the model…")
def model(name: str) -> torch.nn.Module:
    """A zoo model, shared by every session: never edit it in place (copy.deepcopy first)."""
    return sample_models.load(name)


def network(name: str) -> torch.nn.Module:
    """A zoo model (shared, read-only) or a network fine-tuned on the Manipulate page in this
    browser session (a fresh module each call)."""
    if name in sample_models.available():
        return model(name)
    from .manipulate import session_model  # the session registry lives with the page that fills it

    net = session_model(name)
    if net is None:
        raise RepresentationError(f"{name!r} is neither a sample model nor a network fine-tuned in this session.")
    return net


@st.cache_resource(max_entries=32, show_spinner="Capturing activations…")
def model_layers(name: str) -> dict[str, dict[str, np.ndarray]]:
    """Every comparable layer of a zoo model on the digits test and train splits, flattened."""
    data = sample_models.digits()
    layers = sample_models.layer_names(name)
    net = model(name)
    test = capture(net, data.X_test, layers)
    train = capture(net, data.X_train, layers)
    return {
        "test": {k: _readonly(_flat64(v)) for k, v in test.items()},
        "train": {k: _readonly(_flat64(v)) for k, v in train.items()},
    }


def representation(source: Source, upload: bytes | None = None) -> Representation:
    """The representation a source describes. Uploads live in a per-session cache keyed on
    their digest; sample models and synthetic sets in a cache shared by all sessions."""
    if source.kind == "upload":
        return _uploaded_representation(source, upload)
    if source.kind == "session_model":
        return _session_model_representation(source)
    return _shared_representation(source)


def _session_model_representation(source: Source) -> Representation:
    """A network fine-tuned in this session: its layers come from a session-scoped cache."""
    from .manipulate import session_model_layers

    label, layer = source.params
    captured = session_model_layers(label)
    data = sample_models.digits()
    return Representation(captured["test"][layer], _readonly(data.y_test), captured["train"][layer],
                          _readonly(data.y_train), label, layer, f"{label} · {layer}", _source_key(source))


def _source_key(source: Source) -> str:
    return hashlib.sha256(repr(source).encode()).hexdigest()[:16]


@st.cache_resource(max_entries=32)
def _shared_representation(source: Source) -> Representation:
    key = _source_key(source)
    if source.kind == "model":
        name, layer = source.params
        captured = model_layers(name)
        data = sample_models.digits()
        return Representation(captured["test"][layer], _readonly(data.y_test), captured["train"][layer],
                              _readonly(data.y_train), name, layer, f"{name} · {layer}", key)
    if source.kind == "synthetic":
        return _synthetic(source, key)
    raise ValueError(f"unknown source kind {source.kind!r}")


@st.cache_resource(max_entries=2, scope="session")  # each holds a float64 copy of up to limits.MAX_VALUES values
def _uploaded_representation(source: Source, _upload: bytes | None) -> Representation:
    digest, filename, array_name = source.params
    arrays = uploaded_arrays(digest, filename, _upload)
    X = _flat64(arrays[array_name])
    y, note = class_labels(arrays, array_name)
    return Representation(_readonly(X), _readonly(y), None, None, None, None, f"{filename} · {array_name}",
                          _source_key(source), note)


def class_labels(arrays: dict[str, np.ndarray], array_name: str) -> tuple[np.ndarray | None, str | None]:
    """The class labels of an upload for ``array_name`` (one whole number per row, at most
    limits.MAX_CLASSES distinct), or None and the reason they are not used (None if there are none)."""
    key = next((k for k in LABEL_KEYS if k in arrays), None)
    if key is None:
        return None, None
    labels, n = arrays[key], arrays[array_name].shape[0]
    unused = "so they are not used (pages that need classes say so)"
    if labels.shape[0] != n:
        return None, (f"'{key}' holds {labels.shape[0]:,} labels but '{array_name}' has {n:,} examples (rows), {unused}. "
                      "Save one label per example, in the same order.")
    if labels.reshape(n, -1).shape[1] != 1:
        return None, (f"'{key}' has shape {labels.shape}, {unused}: save one integer class per example "
                      "(for one-hot labels, labels.argmax(1)).")
    flat = labels.reshape(-1)
    if not np.array_equal(flat, np.round(flat)):
        return None, f"'{key}' holds values that are not whole numbers, {unused}: save integer class labels."
    classes = np.unique(flat).size
    if classes > limits.MAX_CLASSES:
        return None, (f"'{key}' holds {classes:,} distinct values, more than the {limits.MAX_CLASSES} classes the "
                      f"pages' probes handle, {unused}. Save class labels (regression targets are not classes).")
    return flat.astype(np.int64), None


SYNTHETIC_SETS = {
    "gaussian_clusters": "Gaussian clusters",
    "two_cubes": "Two cubes (Davari et al.)",
}


def _synthetic(source: Source, key: str) -> Representation:
    """One draw of the synthetic set, split in two halves (every other example of each class)
    so that the probe's training and test examples come from the same distribution."""
    name, n_classes, dim, separation = source.params
    if name == "gaussian_clusters":
        full = sample_models.gaussian_clusters(n_per_class=240, n_classes=n_classes, dim=dim, separation=separation, seed=0)
        label = f"Gaussian clusters · {n_classes} classes · d={dim} · separation {separation:g}"
    else:
        full = sample_models.two_cubes(n_per_cube=500, dim=dim, offset=separation, seed=0)
        label = f"Two cubes · d={dim} · offset {separation:g}"
    X, y = _flat64(np.asarray(full.X)), np.asarray(full.y)
    rank_in_class = np.empty(len(y), dtype=np.int64)
    for cls in np.unique(y):
        members = np.flatnonzero(y == cls)
        rank_in_class[members] = np.arange(members.size)
    test, train = rank_in_class % 2 == 0, rank_in_class % 2 == 1
    return Representation(_readonly(X[test]), _readonly(y[test]), _readonly(X[train]), _readonly(y[train]),
                          None, None, label, key)


LABEL_KEYS = ("labels", "y", "targets")


@st.cache_resource(max_entries=4, scope="session", show_spinner="Reading the file…")
def uploaded_arrays(digest: str, filename: str, _data: bytes | None) -> dict[str, np.ndarray]:
    """Arrays of an uploaded file, parsed without unpickling; keyed on the content digest.

    Files over limits.MAX_VALUES values (or limits.MAX_ARRAYS arrays) are refused; the loader checks
    the values against the headers before anything is decompressed or converted."""
    if _data is None:
        raise ValueError("the uploaded file is no longer available; upload it again.")
    arrays = load_representations(_data, filename, max_values=limits.MAX_VALUES)
    if len(arrays) > limits.MAX_ARRAYS:
        raise RepresentationError(f"{filename!r} holds {len(arrays):,} arrays, over the {limits.MAX_ARRAYS:,} this app "
                                  "offers to choose from; save the layers you want to look at.")
    return {k: _readonly(v) for k, v in arrays.items()}


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
