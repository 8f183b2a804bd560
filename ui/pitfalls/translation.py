"""Translating examples of a representation, cached for the Outliers and Separability pages:
directions, which rows move, the closed-form CKA terms, and accuracies on the moved representation.

Keyed on the representation's key and small parameters; arrays are passed with a leading
underscore (not hashed).
"""
from __future__ import annotations

import numpy as np
import scipy.linalg
import streamlit as st

from cka_core import CKAAccumulator, linear_cka
from cka_core.pitfalls import directions
from cka_core.pitfalls.translation import TranslationTerms, translation_terms

from ..sources import data, models
from ..sources.arrays import is_long, row_blocks
from ..sources.probe import decision_normals, probe, probe_accuracy_on

#: c, in units of the RMS distance of an example from the mean, over which the curves are drawn.
C_GRID = np.logspace(-2, 4, 241)


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


def projected(X: np.ndarray, mean: np.ndarray, axes: np.ndarray) -> np.ndarray:
    """Coordinates of the rows of X along ``axes`` (d, k), about ``mean``."""
    return (X - mean) @ axes


@st.cache_data(max_entries=64)
def rms_scale(rep_key: str, _X: np.ndarray) -> float:
    """Root-mean-square distance of an example from the mean: the unit of c (cached; in row blocks)."""
    mean = _X.mean(axis=0)
    total = sum(float(np.sum((_X[rows] - mean) ** 2)) for rows in row_blocks(_X))
    return float(np.sqrt(total / _X.shape[0]))


def translated(X: np.ndarray, mask: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """X with the rows of ``mask`` moved by ``shift`` (one copy of X; X + np.outer(mask, shift)
    would allocate a second n x d array)."""
    moved = X.copy()
    moved[mask] += shift
    return moved


def moved_by(X: np.ndarray, mask: np.ndarray, v: np.ndarray, c: float, scale: float) -> np.ndarray:
    """X with the rows of ``mask`` moved by c RMS distances (``scale``) along the unit vector v."""
    return translated(X, mask, (c * scale) * v)


def paired_linear_cka(X: np.ndarray, Y: np.ndarray, *, debiased: bool) -> float:
    """linear_cka(X, Y). Long representations (d <= n: cka_core picks the feature-space form there
    anyway) go through CKAAccumulator in row blocks, which gives the same exact full-data value
    while holding one block at a time instead of ~4 centred copies of X and Y."""
    n, d = X.shape
    if d > n or not is_long(X):
        return linear_cka(X, Y, debiased=debiased)
    accumulator = CKAAccumulator(debiased=debiased)
    for rows in row_blocks(X):
        accumulator.update([X[rows]], [Y[rows]])
    return float(accumulator.result()[0, 0])


DIRECTIONS = {
    "random": "Random",
    "top_pc": "Top principal component",
    "null_next": "Null space of the next layer",
    "probe_orthogonal": "Orthogonal to the decision normals",
}


def unavailable_directions(rep: data.Representation) -> dict[str, str]:
    """Directions of :data:`DIRECTIONS` that do not apply to this representation, with the reason
    (the pages leave them out and say why, instead of failing once picked)."""
    reasons = {}
    if not rep.has_model:
        reasons["null_next"] = "needs a network as the sidebar's source (its next layer defines the null space)"
    else:
        _, why_not = models.next_layer_null_space(rep.model_name, rep.layer)
        if why_not is not None:
            reasons["null_next"] = why_not
    if not rep.has_labels:
        reasons["probe_orthogonal"] = "needs class labels (a linear probe's decision normals)"
    return reasons


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
        reason = unavailable_directions(_rep).get("null_next")
        if reason is not None:
            raise directions.RepresentationError(f"no direction in the null space of the next layer: {reason}")
        weight, _ = models.next_layer_null_space(_rep.model_name, _rep.layer)
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
    return rep.has_model and models.get(rep.model_name).can_run_from(rep.layer)


def accuracy_from(rep: data.Representation, X_edited: np.ndarray) -> float | None:
    """The network's own accuracy when it continues from an edited representation (None where it
    cannot continue from this layer)."""
    if not network_supported(rep):
        return None
    return models.accuracy(models.run_from(rep.model_name, rep.layer, X_edited), rep.y)
