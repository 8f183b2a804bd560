"""Deconfounded CKA (Cui et al. 2022): CKA after regressing the inputs' similarity out of each layer's
Gram matrix.
"""
from __future__ import annotations
import numpy as np
from ..errors import RepresentationError
from .view import LayerView, views


#: A deconfounded Gram this small next to the layer's own (Frobenius norms) is round-off: the inputs
#: explain the layer's similarity structure completely.
EXPLAINED_TOLERANCE = 1e-9


def deconfounded_cka_of(vx: LayerView, vy: LayerView, inputs: LayerView) -> float:
    """Deconfounded CKA (Cui et al. 2022): CKA between the two Grams with the inputs' Gram
    regressed out, <R_X, R_Y>_F / (||R_X||_F ||R_Y||_F) on the double-centred PSD residuals."""
    if not isinstance(inputs, LayerView):
        raise RepresentationError("inputs must be prepared with LayerView.of (similarity and similarity_matrix "
                                  "do this); got " + type(inputs).__name__ + ".")
    residuals = [v.deconfounded_gram(inputs) for v in (vx, vy)]
    norms = [float(np.linalg.norm(r)) for r in residuals]
    for view, norm in zip((vx, vy), norms):
        if norm <= EXPLAINED_TOLERANCE * float(np.linalg.norm(view.gram())):
            raise RepresentationError(f"{view.name}: its Gram matrix is an affine function of the inputs' Gram (the layer "
                                      "is the inputs up to a rotation and a scale), so nothing is left once the inputs "
                                      "are regressed out and deconfounded CKA is undefined.")
    return float(np.clip(np.sum(residuals[0] * residuals[1]) / (norms[0] * norms[1]), 0.0, 1.0))


def deconfounded_cka(X, Y, inputs) -> float:
    """Deconfounded linear CKA (Cui et al. 2022): regress the inputs' Gram matrix out of each
    layer's Gram (least squares over all n^2 entries, with an intercept), keep the positive
    semi-definite part of each residual, and take the CKA of the two. ``inputs`` are the (n, ...)
    examples both layers were computed from, in the same order. Similarity that the inputs
    already have (why untrained networks look like trained ones in early layers) no longer counts."""
    vx, vy = views(X, Y)
    return deconfounded_cka_of(vx, vy, inputs_view(inputs, vx.n))


def inputs_view(inputs, n: int) -> LayerView:
    """The inputs of a deconfounded comparison as a view (a LayerView is passed through), checked
    to have one row per example."""
    if isinstance(inputs, LayerView):
        view = inputs
    else:
        if inputs is None:
            raise RepresentationError("deconfounded CKA needs inputs: the (n, ...) examples the layers were "
                                      "computed from, in the same order.")
        view = LayerView.of(inputs, "inputs")
    if view.n != n:
        raise RepresentationError(f"inputs have {view.n} rows but the layers have {n} examples; pass the inputs the "
                                  "layers were computed from, one row per example, in the same order.")
    return view
