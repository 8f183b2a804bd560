"""cka_core: fast, exact CKA and its neighbours, with no UI code.

Public API (stable; tests, benchmarks and the app import these names):
``linear_cka``, ``rbf_cka``, ``cka_matrix``, ``CKAAccumulator``, ``translation_cka``,
``translation_cka_limit``, ``capture``, ``similarity``, ``MEASURES``, ``layer_labels``,
``RepresentationError``; file loading lives in ``cka_core.io``, files read in row blocks in
``cka_core.stream``, reductions across torch.distributed ranks in ``cka_core.distributed``.
The subpackages, one concept each, are mapped in docs/architecture.md.
"""
from .cka.accumulator import CKAAccumulator
from .cka.matrix import cka_matrix
from .cka.validation import layer_labels
from .errors import RepresentationError
from .io.capture import capture
from .measures.cka import linear_cka, rbf_cka
from .measures.registry import MEASURES, MeasureInfo, similarity
from .pitfalls.translation import translation_cka, translation_cka_limit

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
