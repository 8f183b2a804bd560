"""cka_core.blocks (block structure and dominant examples, docs/theory.md §8.4) against literal float64
references: eigenvalues from eigh of the covariance, scores from an explicit SVD, the CKA map of the
remaining rows from the reference CKA, block means from explicit loops over the cells; invariances by
hypothesis; every bad argument refused with a message that names it."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from cka_core import RepresentationError
from cka_core.pitfalls import blocks as B

from . import reference as ref
from .cka_testdata import PROPERTY


# ---------------------------------------------------------------- reference (no cka_core inside)
def share_reference(X: np.ndarray) -> float:
    """lambda_1 / sum lambda from eigh of Sigma = X_c^T X_c / n."""
    xc = X - X.mean(axis=0)
    lam = np.linalg.eigh(xc.T @ xc / X.shape[0])[0]
    return lam[-1] / lam.sum()


def scores_reference(X: np.ndarray) -> np.ndarray:
    """|X_c v_1| with v_1 the first right singular vector of X_c."""
    xc = X - X.mean(axis=0)
    return np.abs(xc @ np.linalg.svd(xc)[2][0])


def block_reference(C: np.ndarray, first: int, last: int) -> tuple[float, float]:
    """(mean C_ij over i != j in the block, mean C_ij over i in it and j outside), cell by cell."""
    inside, outside = [], []
    for i in range(first, last + 1):
        for j in range(C.shape[0]):
            if first <= j <= last:
                if i != j:
                    inside.append(C[i, j])
            else:
                outside.append(C[i, j])
    return float(np.mean(inside)), float(np.mean(outside))


def dominated_layers(n: int, seed: int, dominant: int = 5, widths=(6, 8, 8, 8, 5)) -> list[np.ndarray]:
    """Layers of n examples: the middle three share one direction on which ``dominant`` examples lie far out
    (a block carried by them); the first and last are independent noise."""
    rng = np.random.default_rng(seed)
    spike = np.zeros(n)
    spike[:dominant] = 40.0 * (1.0 + rng.random(dominant))
    out = []
    for k, d in enumerate(widths):
        x = rng.standard_normal((n, d))
        if 0 < k < len(widths) - 1:
            x += np.outer(spike, rng.standard_normal(d))
        out.append(x + 3.0)
    return out


@st.composite
def layers_with_a_gap(draw):
    """(n, d) data whose first eigenvalue is well separated (v_1 defined), seed and offset."""
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    n, d = draw(st.integers(6, 40)), draw(st.integers(2, 8))
    scales = np.concatenate([[draw(st.floats(3.0, 20.0))], rng.uniform(0.1, 1.0, d - 1)])
    return rng.standard_normal((n, d)) * scales @ ref.random_orthogonal(d, rng) + draw(st.floats(-50, 50)), rng


# ---------------------------------------------------------------- the first principal component
def test_top_pc_share_matches_the_eigen_reference():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((50, 7)) * np.arange(1.0, 8.0) + 100.0
    assert B.top_pc_share(X) == pytest.approx(share_reference(X), rel=1e-12)
    line = np.outer(rng.standard_normal(30), rng.standard_normal(4)) + 5.0
    assert B.top_pc_share(line) == pytest.approx(1.0, abs=1e-12)
    assert B.top_pc_share(torch.from_numpy(X).float()) == pytest.approx(share_reference(X), rel=1e-5)


def test_dominance_scores_match_an_explicit_svd_and_rank_the_spikes_first():
    layers = dominated_layers(60, seed=1)
    np.testing.assert_allclose(B.dominance_scores(layers[2]), scores_reference(layers[2]), rtol=1e-10)
    order = B.dominant_examples(B.dominance_scores(layers[2]), 60)
    np.testing.assert_array_equal(order, np.argsort(-scores_reference(layers[2]), kind="stable"))
    assert set(order[:5]) == set(range(5))
    np.testing.assert_array_equal(B.dominant_examples([1.0, 3.0, 3.0, 2.0], 3), [1, 2, 3])  # ties: lower index


@PROPERTY
@given(case=layers_with_a_gap())
def test_scores_and_share_ignore_rotation_translation_and_scale(case):
    X, rng = case
    moved = 2.5 * X @ ref.random_orthogonal(X.shape[1], rng) - 7.0
    np.testing.assert_allclose(B.dominance_scores(moved), 2.5 * B.dominance_scores(X), rtol=1e-6, atol=1e-9)
    share = B.top_pc_share(X)
    assert 0.0 < share <= 1.0 + 1e-12
    assert B.top_pc_share(moved) == pytest.approx(share, rel=1e-9)
    assert share == pytest.approx(share_reference(X), rel=1e-9)


def test_random_examples_are_a_seeded_nested_draw():
    all_rows = B.random_examples(50, 50, seed=3)
    assert sorted(all_rows) == list(range(50))
    np.testing.assert_array_equal(B.random_examples(50, 12, seed=3), all_rows[:12])
    assert not np.array_equal(B.random_examples(50, 12, seed=4), all_rows[:12])
    assert B.random_examples(50, 0).size == 0


# ---------------------------------------------------------------- the map without some rows
@pytest.mark.parametrize("debiased", [False, True])
def test_the_map_without_rows_is_the_reference_map_of_the_rest(debiased):
    layers = dominated_layers(40, seed=2)
    removed = np.array([3, 0, 17, 39])
    keep = np.setdiff1d(np.arange(40), removed)
    expected = ref.cka_matrix([x[keep] for x in layers], debiased=debiased)
    np.testing.assert_allclose(B.cka_map_without(layers, removed, debiased=debiased), expected, atol=1e-10)
    named = {f"layer{k}": torch.from_numpy(x) for k, x in enumerate(layers)}       # a mapping of tensors too
    np.testing.assert_allclose(B.cka_map_without(named, removed, debiased=debiased), expected, atol=1e-10)
    np.testing.assert_allclose(B.cka_map_without(layers, [], debiased=debiased),
                               ref.cka_matrix(layers, debiased=debiased), atol=1e-10)


def test_block_summary_and_detection_on_a_known_map():
    C = np.array([[1.0, 0.5, 0.4, 0.3, 0.2],
                  [0.5, 1.0, 0.97, 0.96, 0.3],
                  [0.4, 0.97, 1.0, 0.98, 0.35],
                  [0.3, 0.96, 0.98, 1.0, 0.6],
                  [0.2, 0.3, 0.35, 0.6, 1.0]])
    found = B.detect_block(C, 0.95)
    assert found == (1, 3)
    summary = B.block_summary(C, found)
    assert (summary.inside, summary.outside) == pytest.approx(block_reference(C, 1, 3), abs=1e-15)
    assert summary.contrast == pytest.approx(summary.inside - summary.outside)
    assert B.detect_block(C, 0.975) == (2, 3)                   # only the tightest pair is left
    assert B.detect_block(C, 0.99) is None
    assert B.detect_block(np.ones((4, 4)), 0.9) in {(0, 2), (1, 3)}  # never the whole map
    assert B.most_dominated_layer([0.2, 0.9, 0.95, 0.99, 0.3], (1, 2)) == 2
    # the block's definition, pair by pair: all 3 pairs of layers 1-3 reach 0.95, only 2-3 reaches 0.975
    assert B.pairs_reaching(C, found, 0.95) == (3, 3)
    assert B.pairs_reaching(C, found, 0.975) == (1, 3)
    for threshold in (0.95, 0.965, 0.975, 0.99):  # all pairs reach it exactly when the run is still a block
        reaching, total = B.pairs_reaching(C, (1, 3), threshold)
        assert (reaching == total) == (B.detect_block(C, threshold) == (1, 3))


def test_removing_the_dominant_examples_dissolves_a_block_random_ones_do_not():
    """The construction of dominated_layers: the block of layers 1-3 is carried by the 5 spikes."""
    layers = dominated_layers(80, seed=5)
    C = B.cka_map_without(layers, [])
    block = B.detect_block(C, 0.9)
    assert block == (1, 3)
    order = B.dominant_examples(B.dominance_scores(layers[2]), 80)
    dominant, random = (B.removal_curve(layers, o, [0, 5], block) for o in (order, B.random_examples(80, 80, 0)))
    assert dominant[0].inside > 0.95 and dominant[1].inside < 0.3
    assert random[1].inside > 0.9
    for m, summary in zip([0, 5], dominant):
        expected = block_reference(ref.cka_matrix([np.delete(x, order[:m], axis=0) for x in layers]), *block)
        assert (summary.inside, summary.outside) == pytest.approx(expected, abs=1e-10)


# ---------------------------------------------------------------- errors
def test_bad_arguments_name_themselves():
    layers = dominated_layers(20, seed=0)
    with pytest.raises(RepresentationError, match="m must be"):
        B.dominant_examples(np.ones(5), 6)
    with pytest.raises(RepresentationError, match="m must be"):
        B.random_examples(5, -1)
    with pytest.raises(RepresentationError, match="scores must be"):
        B.dominant_examples([1.0, np.nan], 1)
    with pytest.raises(RepresentationError, match="removed holds row indices outside"):
        B.cka_map_without(layers, [20])
    with pytest.raises(RepresentationError, match="removed lists a row more than once"):
        B.cka_map_without(layers, [1, 1])
    with pytest.raises(RepresentationError, match="removed leaves 3 of 20"):
        B.cka_map_without(layers, np.arange(17), debiased=True)
    with pytest.raises(RepresentationError, match="removed must be"):
        B.cka_map_without(layers, [0.5])
    with pytest.raises(RepresentationError, match="block must be"):
        B.block_summary(np.eye(4), (2, 1))
    with pytest.raises(RepresentationError, match="block must be"):
        B.block_summary(np.eye(4), (0, 3))                      # nothing left outside
    with pytest.raises(RepresentationError, match="C must be a square CKA map"):
        B.detect_block(np.eye(2), 0.9)
    with pytest.raises(RepresentationError, match="X is constant"):
        B.top_pc_share(np.ones((5, 3)))
    with pytest.raises(RepresentationError, match="X is constant"):
        B.dominance_scores(np.ones((5, 3)))
    with pytest.raises(RepresentationError, match="NaN|Inf|finite"):
        B.dominance_scores(np.array([[1.0, np.inf], [0.0, 1.0]]))
