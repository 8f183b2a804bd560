"""Which dissimilarities between a network's layers are distances: the Invariances page's triangle section."""
from __future__ import annotations

import math

import pytest

from ui.pitfalls import triangles


@pytest.mark.parametrize("name,alpha", [("mlp_deep", 0.5), ("mlp_seed0", 0.0)])
def test_triangle_rows_count_what_the_definitions_give_over_every_triple(name, alpha):
    """Every pair of layers from the independent float64 references, every ordered triple by hand."""
    import itertools

    import numpy as np

    from tests.cka_core import reference as ref
    from ui.sources import models

    layers = list(models.activations(name)["test"].values())
    pairs = {"1 − linear CKA": lambda a, b: 1 - ref.linear_cka(a, b),
             "arccos(linear CKA)": lambda a, b: math.acos(min(1.0, ref.linear_cka(a, b))),
             f"Shape metric, α = {alpha:g}": lambda a, b: ref.shape_distance(a, b, alpha),
             "Procrustes angle": ref.procrustes_angle}
    rows = {row.label: row for row in triangles.triangle_rows(name, alpha)}
    assert list(rows) == list(pairs)
    for label, distance in pairs.items():
        d = np.array([[distance(a, b) for b in layers] for a in layers])
        broken = sum(d[i, k] - d[i, j] - d[j, k] > 1e-9 for i, j, k in itertools.permutations(range(len(layers)), 3))
        assert (rows[label].check.violations, rows[label].check.triples) == (broken, len(layers) * (len(layers) - 1)
                                                                            * (len(layers) - 2)), label
    # the lesson holds on real layers: 1 - CKA breaks it, the angles do not
    assert rows["1 − linear CKA"].check.violations > 0 and rows["1 − linear CKA"].worst.startswith("(1 − CKA)(")
    assert all(rows[label].check.holds for label in list(pairs)[1:])
