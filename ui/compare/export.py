"""The Compare page's downloads: one document (the same schema as ``cka compare --out F.json``),
as JSON or as CSV with one row per cell."""
from __future__ import annotations

import json

import numpy as np
import torch

from cka_core.io.export import cells_csv, heatmap_document

from .controls import Settings
from .inference import Inference
from .sides import Side, same_data


def export_document(values: np.ndarray, a: Side, b: Side, settings: Settings, result: Inference | None) -> dict:
    """The JSON export (same schema as ``python -m cka_core compare --out F.json``)."""
    meta = {**settings.export(), "n_examples": a.n, "source_a": {**a.source, "layers": list(a.names)},
            "source_b": {**b.source, "layers": list(b.names)}, "self_comparison": same_data(a, b),
            "seed": result.seed if result is not None else None,
            "versions": {"numpy": np.__version__, "torch": torch.__version__.split("+")[0]}}
    if result is None:
        return heatmap_document(values, a.names, b.names, meta)
    return heatmap_document(values, a.names, b.names, meta, bootstrap=result.bootstrap, permutation=result.permutation,
                            flagged=result.flagged, p_adjustment=result.p_adjustment)


def export_csv(doc: dict) -> str:
    return cells_csv(doc)


def export_json(doc: dict) -> str:
    return json.dumps(doc, indent=2)
