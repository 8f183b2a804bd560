"""Cached computations the pages share, keyed on the representation's key and small parameters.

Arrays are passed with a leading underscore (not hashed); ``rep_key`` identifies them.
"""
from __future__ import annotations

import numpy as np
import scipy.linalg
import torch
import streamlit as st

import sample_models
from cka_core import CKAAccumulator, directions, linear_cka
from cka_core.translation import TranslationTerms, translation_terms

from . import data


@st.cache_resource(max_entries=32)
def probe(rep_key: str, _rep: data.Representation) -> sample_models.LinearProbe | None:
    """A linear read-out fitted once on the original representation (train split if there is one)."""
    if not _rep.has_labels:
        return None
    if _rep.X_train is not None:
        return sample_models.LinearProbe().fit(_rep.X_train, _rep.y_train)
    return sample_models.LinearProbe().fit(_rep.X, _rep.y)


def decision_normals(fitted: sample_models.LinearProbe) -> np.ndarray:
    """The probe's class normals in the original feature space, shape (classes, d)."""
    return (fitted.coef_ * fitted.scale_[:, None]).T


@st.cache_data(max_entries=64)
def pca_basis(rep_key: str, _X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and top-2 principal axes of the original representation (for before/after views)."""
    return top_axes(_X, 2)


def top_axes(X: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and the k leading principal axes (d, k) of X, zero columns where X has fewer
    directions of variance. Through the eigenvectors of the smaller of the d x d covariance and
    the n x n Gram matrix (one product of cost n d min(n, d)), not a full SVD: for 200 x 60,000
    that is 0.05 s instead of 2.7 s, and 1M x 12 never forms anything larger than 12 x 12."""
    n, d = X.shape
    mean = X.mean(axis=0)
    xc = X - mean
    small = min(n, d)
    keep = min(k, small)
    if d <= n:
        values, vectors = scipy.linalg.eigh(xc.T @ xc, subset_by_index=[small - keep, small - 1])
        values, axes = values[::-1], vectors[:, ::-1]
    else:
        values, vectors = scipy.linalg.eigh(xc @ xc.T, subset_by_index=[small - keep, small - 1])
        values, vectors = values[::-1], vectors[:, ::-1]
        live = values > 1e-12 * max(float(values[0]), 1e-300)
        axes = np.zeros((d, keep))
        axes[:, live] = (xc.T @ vectors[:, live]) / np.sqrt(values[live])
    if keep < k:
        axes = np.hstack([axes, np.zeros((d, k - keep))])
    return mean, axes


CHUNK_VALUES = 2**20  # row blocks of ~1M values (8 MiB): long representations are streamed, never copied whole


def _row_chunks(X: np.ndarray):
    step = max(4, CHUNK_VALUES // max(X.shape[1], 1))
    return (slice(i, i + step) for i in range(0, X.shape[0], step))


@st.cache_data(max_entries=64)
def rms_scale(rep_key: str, _X: np.ndarray) -> float:
    """Root-mean-square distance of an example from the mean: the unit of c (cached; in row blocks)."""
    mean = _X.mean(axis=0)
    total = sum(float(np.sum((_X[rows] - mean) ** 2)) for rows in _row_chunks(_X))
    return float(np.sqrt(total / _X.shape[0]))


def translated(X: np.ndarray, mask: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """X with the rows of ``mask`` moved by ``shift`` (one copy of X; X + np.outer(mask, shift)
    would allocate a second n x d array)."""
    moved = X.copy()
    moved[mask] += shift
    return moved


def paired_linear_cka(X: np.ndarray, Y: np.ndarray, *, debiased: bool) -> float:
    """linear_cka(X, Y). Long representations (n * d over CHUNK_VALUES, d <= n: cka_core picks the
    feature-space form there anyway) go through CKAAccumulator in row blocks, which gives the same
    exact full-data value while holding one block at a time instead of ~4 centred copies of X and Y."""
    n, d = X.shape
    if d > n or n * d <= CHUNK_VALUES:
        return linear_cka(X, Y, debiased=debiased)
    accumulator = CKAAccumulator(debiased=debiased)
    for rows in _row_chunks(X):
        accumulator.update([X[rows]], [Y[rows]])
    return float(accumulator.result()[0, 0])


DIRECTIONS = {
    "random": "Random",
    "top_pc": "Top principal component",
    "null_next": "Null space of the next layer",
    "probe_orthogonal": "Orthogonal to the decision normals",
}


@st.cache_data(max_entries=128)
def direction(rep_key: str, _rep: data.Representation, kind: str, seed: int) -> np.ndarray:
    """Unit direction of the requested kind for this representation."""
    d = _rep.X.shape[1]
    if kind == "random":
        return directions.random_direction(d, seed)
    if kind == "top_pc":
        v = pca_basis(rep_key, _rep.X)[1][:, 0]
        if not np.any(v):
            raise directions.RepresentationError("the representation has no direction of variance (it is constant).")
        return v if v[np.argmax(np.abs(v))] > 0 else -v
    if kind == "null_next":
        if not _rep.has_model:
            raise directions.RepresentationError(
                "the null space of the next layer needs a sample model as the source (pick one in the sidebar)."
            )
        network = data.network(_rep.model_name)
        example = torch.zeros(2, network.input_dim, dtype=next(network.parameters()).dtype)
        weight = directions.next_layer_weight(network, _rep.layer, example)
        return directions.null_space_direction(weight, seed, what=f"the layer after {_rep.layer}")
    if kind == "probe_orthogonal":
        fitted = probe(rep_key, _rep)
        if fitted is None:
            raise directions.RepresentationError("directions orthogonal to decision normals need class labels.")
        return directions.null_space_direction(decision_normals(fitted), seed, what="the linear probe")
    raise ValueError(f"unknown direction {kind!r}")


@st.cache_data(max_entries=128)
def moved_mask(rep_key: str, _rep: data.Representation, what: str, index: int, fraction: float, cls: int,
               seed: int) -> np.ndarray:
    n = _rep.X.shape[0]
    if what == "point":
        return directions.moved_one_point(n, index)
    if what == "fraction":
        return directions.moved_random_fraction(n, fraction, seed)
    if what == "class":
        return directions.moved_class(_rep.y, cls)
    raise ValueError(f"unknown selection {what!r}")


@st.cache_data(max_entries=128)
def terms(rep_key: str, _X: np.ndarray, _mask: np.ndarray, _v: np.ndarray, mask_key: tuple, direction_key: tuple) -> TranslationTerms:
    """The scalars of the closed-form translation curve (one O(n d^2) pass)."""
    return translation_terms(_X, _mask, _v)


@st.cache_data(max_entries=64)
def baseline_accuracies(rep_key: str, _rep: data.Representation) -> tuple[float | None, float | None]:
    """Network and probe accuracy on the unedited representation (computed once per source)."""
    return accuracy_from(_rep, _rep.X), probe_accuracy_on(_rep, _rep.X)


def network_supported(rep: data.Representation) -> bool:
    """Whether the network can continue from this layer (RNNs only from the final state)."""
    return rep.has_model and rep.layer in sample_models.run_from_layers(data.network(rep.model_name))


def accuracy_from(rep: data.Representation, X_edited: np.ndarray) -> float | None:
    """The network's own accuracy when it continues from an edited representation (None where it
    cannot continue from this layer)."""
    if not network_supported(rep):
        return None
    logits = sample_models.run_from(data.network(rep.model_name), rep.layer, X_edited)
    return sample_models.accuracy(logits, rep.y)


def probe_accuracy_on(rep: data.Representation, X_edited: np.ndarray) -> float | None:
    fitted = probe(rep.key, rep)
    return None if fitted is None else probe_score(fitted, X_edited, rep.y)


def probe_scores(fitted: sample_models.LinearProbe, X: np.ndarray) -> np.ndarray:
    """fitted.decision_function(X), in row blocks for long X (it standardises a full copy of X first)."""
    if X.shape[0] * X.shape[1] <= CHUNK_VALUES:
        return fitted.decision_function(X)
    return np.concatenate([fitted.decision_function(X[rows]) for rows in _row_chunks(X)])


def probe_score(fitted: sample_models.LinearProbe, X: np.ndarray, y: np.ndarray) -> float:
    """fitted.score(X, y) (the same number), in row blocks for long X."""
    if X.shape[0] * X.shape[1] <= CHUNK_VALUES:
        return fitted.score(X, y)
    return sum(int(np.sum(fitted.predict(X[rows]) == y[rows])) for rows in _row_chunks(X)) / X.shape[0]
