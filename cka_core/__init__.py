"""cka_core: fast, exact CKA and its neighbours, with no UI code.

Public API (stable; tests, benchmarks and the app import these names):
``linear_cka``, ``rbf_cka``, ``cka_matrix``, ``CKAAccumulator``, ``translation_cka``,
``translation_cka_limit``, ``capture``, ``similarity``, ``MEASURES``, ``layer_labels``,
``RepresentationError``; file loading lives in ``cka_core.io``, files read in row blocks in
``cka_core.stream``, reductions across torch.distributed ranks in ``cka_core.distributed``.
"""
from .capture import capture
from .errors import RepresentationError
from .accumulator import CKAAccumulator, cka_matrix
from .measures import MEASURES, MeasureInfo, similarity
from .pairwise import linear_cka, rbf_cka
from .translation import translation_cka, translation_cka_limit
from .validation import layer_labels

__all__ = [
    "MEASURES",
    "CKAAccumulator",
    "MeasureInfo",
    "RepresentationError",
    "capture",
    "cka_matrix",
    "layer_labels",
    "linear_cka",
    "rbf_cka",
    "similarity",
    "translation_cka",
    "translation_cka_limit",
]
