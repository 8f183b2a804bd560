"""How far a measure moved, on the Invariances page, is comparable across measures."""
from __future__ import annotations

import math

import pytest

from ui import invariances as inv


@pytest.mark.parametrize("measure", ["linear_cka", "linear_cka_debiased", "rsa", "mean_cca"])
def test_the_same_drop_of_a_similarity_is_the_same_movement(measure):
    # Divided by the whole range, debiased CKA and RSA (range -1..1) read half of biased CKA's movement.
    assert inv.movement(measure, 0.7, 1.0) == pytest.approx(0.3)


def test_a_distance_moves_by_its_share_of_the_way_to_orthogonal():
    assert inv.movement("procrustes", math.pi / 4, 0.0) == pytest.approx(0.5)
    assert inv.movement("procrustes", math.pi / 2, 0.0) == pytest.approx(1.0)
