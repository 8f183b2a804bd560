"""How far a measure moved, on the Invariances page, is comparable across measures."""
from __future__ import annotations

import math

import pytest

from ui.pitfalls import invariances as inv


@pytest.mark.parametrize("measure", ["linear_cka", "linear_cka_debiased", "rsa", "mean_cca"])
def test_the_same_drop_of_a_similarity_is_the_same_movement(measure):
    # Divided by the whole range, debiased CKA and RSA (range -1..1) read half of biased CKA's movement.
    assert inv.movement(measure, 0.7, 1.0) == pytest.approx(0.3)


def test_a_distance_moves_by_its_share_of_the_way_to_orthogonal():
    assert inv.movement("procrustes", math.pi / 4, 0.0) == pytest.approx(0.5)
    assert inv.movement("procrustes", math.pi / 2, 0.0) == pytest.approx(1.0)


def test_an_unbounded_distance_moves_against_unrelated_noise():
    """GULP and the Procrustes size-and-shape distance have no upper bound: their movement is read against
    unrelated noise of X's shape and spread (1 = that far), and their range is written with ∞, not as "inf"."""
    import numpy as np

    X = np.random.default_rng(0).normal(size=(40, 5))
    unrelated, errors = inv.unrelated_values("test-unbounded", X)
    assert not errors and {"gulp", "procrustes_size_and_shape", "permutation_procrustes"} <= set(unrelated)
    assert not {"procrustes", "linear_cka"} & set(unrelated)  # bounded: their own range sets the scale
    assert inv._movement("gulp", unrelated["gulp"] / 2, 0.0, unrelated) == pytest.approx(0.5)
    assert math.isnan(inv._movement("gulp", 1.0, 0.0, {}))  # no baseline, no scale
    assert "to ∞ (no upper bound" in inv._range_text(0.0, math.inf, unrelated["gulp"])
    assert inv._range_text(0.0, math.pi / 2, None) == "Range 0 to 1.57"


def test_a_layer_without_a_clear_rank_shows_but_does_not_check_invertible_invariances():
    """A pixel RNN's saturated step has singular values from 1 down to 6e-13 of the largest: eigenspace overlap
    and GULP (which count directions) moved by 1/61 and 1 under an invertible map, and the page called it a bug
    (the 50-student load test met it). The rank is not clear there, so those cells are shown, not checked; a
    layer with a clear rank is still checked, and the orthogonal and other columns are checked on both."""
    import numpy as np
    from ui.pitfalls import invariances as inv
    from ui.sources import models

    saturated = np.ascontiguousarray(models.activations("pixel_rnn_gamma_homogeneous_seed2")["test"]["step9"])
    table = inv._table("pixel-step9", saturated)
    assert table["rank_note"] and "not clear" in table["rank_note"] and not inv.violations(table)
    j = table["transformations"].index("invertible")
    i = table["measures"].index("eigenspace_overlap")
    assert table["declared"][i, j] and abs(table["values"][i, j] - table["reference"]["eigenspace_overlap"]) > 1e-6
    assert inv.checked("gulp", "orthogonal", False) and not inv.checked("gulp", "invertible", False)
    clear = np.ascontiguousarray(models.activations("mlp_seed0")["test"]["hidden3"])
    assert inv.rank_note("mlp-hidden3", clear) is None and inv.checked("gulp", "invertible", True)
