"""Representational similarity analysis (Kriegeskorte et al. 2008): Spearman correlation of the two
layers' dissimilarity matrices.
"""
from __future__ import annotations
import numpy as np
from ..errors import RepresentationError
from .view import LayerView, views


def rsa_of(vx: LayerView, vy: LayerView) -> float:
    """Spearman correlation of the upper triangles of the two Euclidean distance matrices."""
    if vx.n < 3:
        raise RepresentationError("RSA needs at least 3 examples (2 pairs of examples to rank).")
    return float(np.clip(vx.centred_ranks() @ vy.centred_ranks(), -1.0, 1.0))


def rsa(X, Y) -> float:
    """Representational similarity analysis (Kriegeskorte et al. 2008): Spearman correlation of
    the upper triangles of the two Euclidean representational dissimilarity matrices.

    Distances come from row differences (``pdist``, accurate for near pairs, unlike the Gram
    identity) and are ranked with round-off-level ties merged (``LayerView.distance_ranks``).
    """
    return rsa_of(*views(X, Y))
