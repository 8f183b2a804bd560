"""The linear read-out the pitfall pages compare with: fitted once per representation, re-scored
as sliders move (in row blocks for long representations)."""
from __future__ import annotations

import numpy as np
import streamlit as st

import sample_models

from . import data
from .arrays import is_long, row_blocks

LinearProbe = sample_models.LinearProbe


@st.cache_resource(max_entries=32)
def probe(rep_key: str, _rep: data.Representation) -> LinearProbe | None:
    """A linear read-out fitted once on the original representation (train split if there is one)."""
    if not _rep.has_labels:
        return None
    if _rep.X_train is not None:
        return LinearProbe().fit(_rep.X_train, _rep.y_train)
    return LinearProbe().fit(_rep.X, _rep.y)


def decision_normals(fitted: LinearProbe) -> np.ndarray:
    """The probe's class normals in the original feature space, shape (classes, d)."""
    return (fitted.coef_ * fitted.scale_[:, None]).T


def probe_accuracy_on(rep: data.Representation, X_edited: np.ndarray) -> float | None:
    fitted = probe(rep.key, rep)
    return None if fitted is None else probe_score(fitted, X_edited, rep.y)


def probe_scores(fitted: LinearProbe, X: np.ndarray) -> np.ndarray:
    """fitted.decision_function(X), in row blocks for long X (it standardises a full copy of X first)."""
    if not is_long(X):
        return fitted.decision_function(X)
    return np.concatenate([fitted.decision_function(X[rows]) for rows in row_blocks(X)])


def probe_score(fitted: LinearProbe, X: np.ndarray, y: np.ndarray) -> float:
    """fitted.score(X, y) (the same number), in row blocks for long X."""
    if not is_long(X):
        return fitted.score(X, y)
    return sum(int(np.sum(fitted.predict(X[rows]) == y[rows])) for rows in row_blocks(X)) / X.shape[0]
