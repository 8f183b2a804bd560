"""The representation the pitfall pages work on, from the sidebar's source: a registered
network's layer (:mod:`ui.sources.models`), a synthetic set or an uploaded file.

Every cache is bounded and keyed on small descriptors or digests. Shared arrays are read-only.
"""
from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import streamlit as st

import sample_models
from cka_core import RepresentationError
from cka_core.io import LABEL_KEYS, load_representations

from . import limits, models
from .arrays import readonly, readonly_rows


@dataclass(frozen=True)
class Source:
    """Where the representation comes from: a small, hashable descriptor.

    kind: "model" (params: the network's key in the registry of :mod:`ui.sources.models`, its name,
    the layer), "synthetic" (params: set name and its settings), or "upload" (params: content
    digest, file name, array name).
    """

    kind: str
    params: tuple


@dataclass(frozen=True)
class Representation:
    """Test-split activations (what pages manipulate), the training split (for probes) and labels.

    The training split is read through ``training`` when a probe first needs it: most pages have no
    probe, and a network's training split is four times its test split."""

    X: np.ndarray
    y: np.ndarray | None
    training: Callable[[], tuple[np.ndarray, np.ndarray]] | None  # () -> (X_train, y_train)
    model_name: str | None  # the registered network it comes from (ui.sources.models), if any
    layer: str | None
    label: str
    key: str  # a digest of the source: the cache key of everything computed from it
    note: str | None = None  # what the sidebar should tell about this source (e.g. labels left unused)

    @property
    def X_train(self) -> np.ndarray | None:
        return None if self.training is None else self.training()[0]

    @property
    def y_train(self) -> np.ndarray | None:
        return None if self.training is None else self.training()[1]

    @property
    def has_labels(self) -> bool:
        return self.y is not None

    @property
    def has_model(self) -> bool:
        return self.model_name is not None


def model_source(name: str, layer: str) -> Source:
    """The source for ``layer`` of registered network ``name`` (its key names the weights)."""
    return Source("model", (models.get(name).key, name, layer))


def representation(source: Source, upload: bytes | None = None) -> Representation:
    """The representation a source describes. Uploads live in a per-session cache keyed on their
    digest; a network's layers in the registry's caches; synthetic sets in a shared cache."""
    if source.kind == "upload":
        return _uploaded_representation(source, upload)
    if source.kind == "model":
        return _network_representation(source)
    if source.kind == "synthetic":
        return _synthetic(source)
    raise ValueError(f"unknown source kind {source.kind!r}")


def _source_key(source: Source) -> str:
    return hashlib.sha256(repr(source).encode()).hexdigest()[:16]


def _network_representation(source: Source) -> Representation:
    _, name, layer = source.params
    captured = models.activations(name)
    y_test, y_train = models.labels(name)
    training = None if "train" not in captured or y_train is None else functools.partial(
        _network_training, name, layer, y_train)
    return Representation(captured["test"][layer], y_test, training, name, layer, f"{name} · {layer}",
                          _source_key(source))


def _network_training(name: str, layer: str, y_train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return models.activations(name)["train"][layer], y_train


def _given(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return X, y


@st.cache_resource(max_entries=2, scope="session")  # each holds a float64 copy of up to limits.MAX_VALUES values
def _uploaded_representation(source: Source, _upload: bytes | None) -> Representation:
    digest, filename, array_name = source.params
    arrays = uploaded_arrays(digest, filename, _upload)
    y, note = class_labels(arrays, array_name)
    return Representation(readonly_rows(arrays[array_name]), None if y is None else readonly(y), None, None,
                          None, f"{filename} · {array_name}", _source_key(source), note)


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


@st.cache_resource(max_entries=32)
def _synthetic(source: Source) -> Representation:
    """One draw of the synthetic set, split in two halves (every other example of each class)
    so that the probe's training and test examples come from the same distribution."""
    name, n_classes, dim, separation = source.params
    if name == "gaussian_clusters":
        full = sample_models.gaussian_clusters(n_per_class=240, n_classes=n_classes, dim=dim, separation=separation, seed=0)
        label = f"Gaussian clusters · {n_classes} classes · d={dim} · separation {separation:g}"
    else:
        full = sample_models.two_cubes(n_per_cube=500, dim=dim, offset=separation, seed=0)
        label = f"Two cubes · d={dim} · offset {separation:g}"
    X, y = np.asarray(full.X, dtype=np.float64), np.asarray(full.y)
    rank_in_class = np.empty(len(y), dtype=np.int64)
    for cls in np.unique(y):
        members = np.flatnonzero(y == cls)
        rank_in_class[members] = np.arange(members.size)
    test, train = rank_in_class % 2 == 0, rank_in_class % 2 == 1
    return Representation(readonly(X[test]), readonly(y[test]), functools.partial(_given, readonly(X[train]),
                                                                                 readonly(y[train])),
                          None, None, label, _source_key(source))


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
    return {k: readonly(v) for k, v in arrays.items()}


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
