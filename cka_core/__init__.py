"""cka_core: fast, exact CKA and its neighbours, with no UI code.

Public API (stable; tests, benchmarks and the app import these names):
``linear_cka``, ``rbf_cka``, ``cka_matrix``, ``CKAAccumulator``, ``translation_cka``,
``translation_cka_limit``, ``capture``, ``similarity``, ``MEASURES``, ``layer_labels``,
``RepresentationError``; file loading lives in ``cka_core.io``.
"""
from .errors import RepresentationError
from .estimators import CKAAccumulator, cka_matrix
from .validation import layer_labels
from .pairwise import linear_cka, rbf_cka

__all__ = [
    "CKAAccumulator",
    "RepresentationError",
    "cka_matrix",
    "layer_labels",
    "linear_cka",
    "rbf_cka",
]
