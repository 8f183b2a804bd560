"""Multiple-comparison corrections of a heatmap's p-values: Holm's and Benjamini–Hochberg's adjusted
p-values agree with their step-down / step-up procedures, run by brute force at every level."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cka_core import RepresentationError
from cka_core.stats.corrections import adjusted_p_values, smallest_adjusted_p

# p-values of permutation tests are multiples of 1/(N+1): ties are the rule, not the exception
p_grids = st.lists(st.integers(1, 41), min_size=1, max_size=20).map(lambda k: np.array(k) / 41)


def holm_rejects(p: np.ndarray, alpha: float) -> np.ndarray:
    """Holm's step-down procedure: walk up the sorted p-values while p_(j) <= alpha / (m - j + 1)."""
    order = np.argsort(p, kind="stable")
    rejected = np.zeros(p.size, dtype=bool)
    for j, index in enumerate(order):
        if p[index] > alpha / (p.size - j):
            break
        rejected[index] = True
    return rejected


def bh_rejects(p: np.ndarray, alpha: float) -> np.ndarray:
    """Benjamini–Hochberg's step-up procedure: the largest k with p_(k) <= k alpha / m, then the k smallest."""
    order = np.argsort(p, kind="stable")
    passing = [k for k in range(1, p.size + 1) if p[order[k - 1]] <= k * alpha / p.size]
    rejected = np.zeros(p.size, dtype=bool)
    if passing:
        rejected[order[: max(passing)]] = True
    return rejected


@settings(max_examples=300, deadline=None)
@given(p_grids)
def test_adjusted_p_values_reject_what_the_procedures_reject_at_every_level(p):
    holm, bh = adjusted_p_values(p, "holm"), adjusted_p_values(p, "bh")
    levels = np.unique(np.concatenate([p, holm, bh, [0.01, 0.05, 0.1]]))
    for alpha in levels:
        # p-values that equal a level up to round-off sit on the boundary either way; compare away from it
        near = np.isclose(holm, alpha, rtol=1e-12) | np.isclose(bh, alpha, rtol=1e-12)
        np.testing.assert_array_equal((holm <= alpha)[~near], holm_rejects(p, alpha)[~near])
        np.testing.assert_array_equal((bh <= alpha)[~near], bh_rejects(p, alpha)[~near])


@given(p_grids)
def test_corrections_only_raise_p_values_and_keep_their_order(p):
    none, holm, bh = (adjusted_p_values(p, m) for m in ("none", "holm", "bh"))
    np.testing.assert_array_equal(none, p)
    assert np.all(holm >= p - 1e-15) and np.all(bh >= p - 1e-15) and np.all(holm <= 1) and np.all(bh <= 1)
    assert np.all(holm >= bh - 1e-15)  # Holm controls the stricter error rate
    order = np.argsort(p, kind="stable")
    assert np.all(np.diff(holm[order]) >= -1e-15) and np.all(np.diff(bh[order]) >= -1e-15)


def test_a_heatmap_keeps_its_shape_and_the_textbook_values():
    p = np.array([[0.01, 0.04], [0.03, 0.005]])
    np.testing.assert_allclose(adjusted_p_values(p, "holm"), [[0.03, 0.06], [0.06, 0.02]])
    np.testing.assert_allclose(adjusted_p_values(p, "bh"), [[0.02, 0.04], [0.04, 0.02]])
    with pytest.raises(RepresentationError, match="unknown p-value adjustment 'bonf'.*none, holm, bh"):
        adjusted_p_values(p, "bonf")


def test_the_smallest_reachable_adjusted_p_tells_how_many_permutations_holm_needs():
    assert smallest_adjusted_p(200, 16, "holm") == pytest.approx(16 / 201)  # above 0.05: no cell can pass
    assert smallest_adjusted_p(319, 16, "holm") == pytest.approx(0.05)
    assert smallest_adjusted_p(200, 16, "bh") == smallest_adjusted_p(200, 16, "none") == pytest.approx(1 / 201)
    floor = np.full(16, 1 / 201)  # every raw p at the floor: the bound is attained
    assert adjusted_p_values(floor, "holm").min() == pytest.approx(smallest_adjusted_p(200, 16, "holm"))
    assert adjusted_p_values(floor, "bh").min() == pytest.approx(smallest_adjusted_p(200, 16, "bh"))
