"""Cached computations the pages share, keyed on the representation's key and small parameters.

Arrays are passed with a leading underscore (not hashed); ``rep_key`` identifies them.
"""
from __future__ import annotations

import numpy as np
import streamlit as st

import sample_models
from cka_core import directions
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
    mean = _X.mean(axis=0)
    _, _, vt = np.linalg.svd(_X - mean, full_matrices=False)
    axes = vt[:2].T if vt.shape[0] >= 2 else np.hstack([vt.T, np.zeros((vt.shape[1], 1))])
    return mean, axes


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
        return directions.top_principal_direction(_rep.X)
    if kind == "null_next":
        if not _rep.has_model:
            raise directions.RepresentationError(
                "the null space of the next layer needs a sample model as the source (pick one in the sidebar)."
            )
        weight = directions.next_layer_weight(data.network(_rep.model_name), _rep.layer)
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


def accuracy_from(rep: data.Representation, X_edited: np.ndarray) -> float | None:
    """The network's own accuracy when it continues from an edited representation."""
    if not rep.has_model:
        return None
    logits = sample_models.run_from(data.network(rep.model_name), rep.layer, X_edited)
    return sample_models.accuracy(logits, rep.y)


def probe_accuracy_on(rep: data.Representation, X_edited: np.ndarray) -> float | None:
    fitted = probe(rep.key, rep)
    return None if fitted is None else fitted.score(X_edited, rep.y)
