"""Layer x layer matrices for any measure of the registry."""
from __future__ import annotations

import numpy as np

from .errors import RepresentationError
from .estimators import cka_matrix
from .measures import MEASURES, similarity
from .validation import as_layers

LINEAR_CKA = {"linear_cka": False, "linear_cka_debiased": True}


def similarity_matrix(layers_a, layers_b=None, *, measure: str = "linear_cka", debiased: bool = False,
                      batch_size: int | None = None, **options) -> np.ndarray:
    """(L_a, L_b) values of ``measure`` between every pair of layers (``layers_b=None``: self-comparison).

    Linear CKA goes through ``cka_matrix`` (per-layer statistics shared, one pass); the other
    measures are evaluated pair by pair, each pair once when the matrix is symmetric.
    """
    if measure in LINEAR_CKA:
        return cka_matrix(layers_a, layers_b, debiased=debiased or LINEAR_CKA[measure], batch_size=batch_size)
    if measure not in MEASURES:
        raise RepresentationError(f"unknown measure {measure!r}; choose one of: {', '.join(MEASURES)}.")
    if batch_size is not None:
        raise RepresentationError(f"batch_size applies to linear CKA only, not to {measure!r}.")
    if debiased:
        if measure != "rbf_cka":
            raise RepresentationError(f"debiased applies to CKA only, not to {measure!r}.")
        options = {**options, "debiased": True}
    _, a = as_layers(layers_a, "layers_a")
    b = a if layers_b is None else as_layers(layers_b, "layers_b")[1]
    symmetric = layers_b is None and MEASURES[measure].symmetric
    values = np.empty((len(a), len(b)))
    for i, x in enumerate(a):
        for j, y in enumerate(b):
            if symmetric and j < i:
                values[i, j] = values[j, i]
            else:
                values[i, j] = similarity(x, y, measure, **options)
    return values
