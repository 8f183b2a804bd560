"""The Invariances page's last section: which dissimilarities between a network's layers are distances,
checked over every triple of its layers on the triangle inequality (docs/theory.md §8.1)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import streamlit as st

from cka_core import MEASURES, cka_matrix
from cka_core.measures import similarity_matrix
from cka_core.stats.triangle import TriangleCheck, triangle_check

from ..sources import data, models

#: The shape metric's partial whitening, as the registry declares it (the section's slider).
SHAPE_ALPHA = next(p for p in MEASURES["shape_metric"].parameters if p.name == "alpha")
TRIANGLE_NETWORK = "mlp_deep"  # 6 layers with the logits: 120 ordered triples


@dataclass(frozen=True)
class TriangleRow:
    """One dissimilarity between layers and how it fares on the triangle inequality."""

    label: str
    formula: str
    check: TriangleCheck
    worst: str  # the worst triple in words, "" when none is broken


def triangle_network(rep: data.Representation) -> str:
    """The network whose layers are tested: the sidebar's, when three of its layers or more vary."""
    if rep.has_model and len(_varying_layers(rep.model_name)) >= 3:
        return rep.model_name
    return TRIANGLE_NETWORK


def _varying_layers(name: str) -> dict[str, np.ndarray]:
    """The network's layers on the test digits but those the same for every digit (an RNN's first
    steps), where every measure is 0/0."""
    captured = models.activations(name)["test"]
    return {k: captured[k] for k in models.varying_layers(name)}


def _triangle_row(label: str, short: str, d: np.ndarray, names: list[str]) -> TriangleRow:
    check = triangle_check(d)
    worst = ""
    if not check.holds:
        i, j, k = check.worst_triple
        worst = (f"{short}({names[i]}, {names[k]}) = {d[i, k]:.3f} > {d[i, j]:.3f} + {d[j, k]:.3f} = "
                 f"{short}({names[i]}, {names[j]}) + {short}({names[j]}, {names[k]})")
    return TriangleRow(label, short, check, worst)


@st.cache_data(max_entries=64)  # every network of the zoo and then some: a 63-step RNN takes seconds
def _rows_without_alpha(key: str, name: str) -> list[TriangleRow]:
    """The rows that do not depend on the α slider, computed once per network."""
    layers = _varying_layers(name)
    cka = cka_matrix(layers)
    return [_triangle_row("1 − linear CKA", "(1 − CKA)", 1.0 - cka, list(layers)),
            _triangle_row("arccos(linear CKA)", "arccos CKA", np.arccos(np.clip(cka, -1.0, 1.0)), list(layers)),
            _triangle_row("Procrustes angle", "θ", similarity_matrix(layers, measure="procrustes"), list(layers))]


@st.cache_data(max_entries=64)
def _shape_row(key: str, name: str, alpha: float) -> TriangleRow:
    layers = _varying_layers(name)
    return _triangle_row(f"Shape metric, α = {alpha:g}", f"d_{alpha:g}",
                         similarity_matrix(layers, measure="shape_metric", alpha=alpha), list(layers))


def triangle_rows(name: str, alpha: float) -> list[TriangleRow]:
    """1 − CKA, arccos(CKA), the shape metric at ``alpha`` and the Procrustes angle between every
    pair of the network's layers (test digits), each checked over every triple of layers. A move of
    the α slider computes the shape metric's matrix only."""
    key = models.get(name).key
    one_minus_cka, arccos_cka, procrustes = _rows_without_alpha(key, name)
    return [one_minus_cka, arccos_cka, _shape_row(key, name, round(float(alpha), 2)), procrustes]


def triangle_frame(rows: list[TriangleRow]) -> pd.DataFrame:
    return pd.DataFrame({
        "dissimilarity": [r.label for r in rows],
        "triples that break d(i,k) ≤ d(i,j) + d(j,k)": [f"{r.check.violations} of {r.check.triples}" for r in rows],
        "largest d(i,k) − d(i,j) − d(j,k)": [r.check.worst_excess for r in rows],
    })
