"""CKAAccumulator: batch-by-batch updates, merge (in-process and across spawned processes) and
pickling all give the one-pass answer."""
import multiprocessing
import pickle
import sys
import types
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import cka_core
from cka_core.cka import accumulator

from . import reference as ref
from .cka_mp_worker import fill_accumulator
from .cka_testdata import PROPERTY_FEW, layers, seeds, with_offset_f32

DEB = pytest.mark.parametrize("debiased", [False, True], ids=["biased", "debiased"])


def _split(n, cuts):
    edges = [0] + sorted(set(c for c in cuts if 0 < c < n)) + [n]
    return [slice(a, b) for a, b in zip(edges[:-1], edges[1:])]


def _fill(acc, A, B, slices):
    for s in slices:
        acc.update([x[s] for x in A], None if B is None else [y[s] for y in B])
    return acc


@PROPERTY_FEW
@given(seeds, st.lists(st.integers(2, 25), min_size=1, max_size=6), st.booleans(), st.booleans(),
       st.sampled_from([[3], [2, 7, 1], [40, 5], [90, 120]]))
def test_property_any_split_equals_one_pass(seed, sizes, debiased, cross, widths):
    """batch_size=None: whatever the split into updates (of >= 2 rows here; 1-row updates are
    tested separately below), the result is cka_matrix over all rows and the literal reference,
    to ~1e-10."""
    sizes = sizes + [6]
    n = sum(sizes)
    rng = np.random.default_rng(seed)
    L = layers(rng, n, widths + ([4, 11] if cross else []))
    A, B = (L[:len(widths)], L[len(widths):]) if cross else (L, None)
    acc = _fill(cka_core.CKAAccumulator(debiased=debiased), A, B, _split(n, np.cumsum(sizes)))
    got = acc.result()
    one_pass = cka_core.cka_matrix(A, B, debiased=debiased)
    np.testing.assert_allclose(got, one_pass, rtol=0, atol=1e-9)
    np.testing.assert_allclose(got, ref.cka_matrix(A, B, debiased=debiased), rtol=0, atol=1e-9)


@DEB
def test_single_row_updates(debiased):
    A = layers(np.random.default_rng(1), 9, [3, 5])
    acc = _fill(cka_core.CKAAccumulator(debiased=debiased), A, None, _split(9, range(1, 9)))
    np.testing.assert_allclose(acc.result(), ref.cka_matrix(A, debiased=debiased), atol=1e-9)


@DEB
def test_layer_constant_within_each_update_but_not_overall(debiased):
    """A feature that is constant inside every update (e.g. a per-batch flag) still varies over
    all rows; the one-pass answer exists, so the accumulator must give it."""
    rng = np.random.default_rng(12)
    n = 30
    flag = np.repeat(np.arange(3.0), 10)[:, None] + np.zeros((n, 2))
    X = rng.standard_normal((n, 4)) + flag[:, :1]
    acc = _fill(cka_core.CKAAccumulator(debiased=debiased), [X, flag], None,
                [slice(0, 10), slice(10, 20), slice(20, 30)])
    np.testing.assert_allclose(acc.result(), ref.cka_matrix([X, flag], debiased=debiased), atol=1e-9)


@DEB
@pytest.mark.parametrize("widths", [[4, 9, 2], [300, 6]], ids=["narrow", "wide"])
def test_minibatch_accumulator_equals_minibatch_cka_matrix(widths, debiased):
    """batch_size=b with every update a multiple of b: equals cka_matrix(all, batch_size=b)."""
    rng = np.random.default_rng(2)
    b = 8
    n = 8 * 11
    L = [x * np.linspace(0.5, 3, n)[:, None] for x in layers(rng, n, widths)]  # non-stationary rows
    acc = _fill(cka_core.CKAAccumulator(debiased=debiased, batch_size=b), L, None,
                _split(n, [16, 24, 56]))
    expected = cka_core.cka_matrix(L, debiased=debiased, batch_size=b)
    np.testing.assert_allclose(acc.result(), expected, atol=1e-10)
    np.testing.assert_allclose(acc.result(), ref.cka_matrix(L, debiased=debiased, batch_size=b),
                               atol=1e-9)
    # and it is the minibatch estimator, not the full-data one
    assert np.max(np.abs(expected - ref.cka_matrix(L, debiased=debiased))) > 1e-4


@DEB
def test_merge_equals_one_pass_and_returns_self(debiased):
    rng = np.random.default_rng(3)
    A = layers(rng, 70, [5, 12, 400])
    B = layers(rng, 70, [3, 8])
    one_pass = cka_core.cka_matrix(A, B, debiased=debiased)
    first = _fill(cka_core.CKAAccumulator(debiased=debiased), A, B, [slice(0, 25)])
    second = _fill(cka_core.CKAAccumulator(debiased=debiased), A, B, [slice(25, 40), slice(40, 70)])
    merged = first.merge(second)
    assert merged is first
    np.testing.assert_allclose(merged.result(), one_pass, atol=1e-9)
    # merge order does not matter
    first2 = _fill(cka_core.CKAAccumulator(debiased=debiased), A, B, [slice(0, 25)])
    second2 = _fill(cka_core.CKAAccumulator(debiased=debiased), A, B, [slice(25, 40), slice(40, 70)])
    np.testing.assert_allclose(second2.merge(first2).result(), one_pass, atol=1e-9)


@DEB
def test_merge_into_empty_and_of_empty(debiased):
    A = layers(np.random.default_rng(4), 30, [4, 6])
    full = _fill(cka_core.CKAAccumulator(debiased=debiased), A, None, [slice(0, 30)])
    empty = cka_core.CKAAccumulator(debiased=debiased)
    np.testing.assert_allclose(empty.merge(full).result(), cka_core.cka_matrix(A, debiased=debiased),
                               atol=1e-9)
    full2 = _fill(cka_core.CKAAccumulator(debiased=debiased), A, None, [slice(0, 30)])
    np.testing.assert_allclose(full2.merge(cka_core.CKAAccumulator(debiased=debiased)).result(),
                               cka_core.cka_matrix(A, debiased=debiased), atol=1e-9)


@DEB
def test_minibatch_merge(debiased):
    rng = np.random.default_rng(5)
    L = layers(rng, 96, [6, 3, 200])
    parts = [_fill(cka_core.CKAAccumulator(debiased=debiased, batch_size=12), L, None, [s])
             for s in (slice(0, 24), slice(24, 60), slice(60, 96))]
    merged = parts[0].merge(parts[1]).merge(parts[2])
    np.testing.assert_allclose(merged.result(),
                               cka_core.cka_matrix(L, debiased=debiased, batch_size=12), atol=1e-10)


@DEB
def test_pickle_round_trip_then_continue(debiased):
    A = layers(np.random.default_rng(6), 50, [7, 3, 250])
    acc = _fill(cka_core.CKAAccumulator(debiased=debiased), A, None, [slice(0, 20)])
    before = acc.result()
    clone = pickle.loads(pickle.dumps(acc))
    np.testing.assert_array_equal(clone.result(), before)
    _fill(clone, A, None, [slice(20, 50)])
    np.testing.assert_allclose(clone.result(), cka_core.cka_matrix(A, debiased=debiased), atol=1e-9)
    # result() did not consume anything: the original still answers the same
    np.testing.assert_array_equal(acc.result(), before)


@DEB
def test_float32_large_offset_and_torch_updates(debiased):
    """Statistics summed over batches of float32 data with a 1e4 offset stay accurate."""
    rng = np.random.default_rng(7)
    for n, widths in [(300, [3, 9, 14]), (40, [250, 5])]:
        L32 = [with_offset_f32(x) for x in layers(rng, n, widths)]
        acc = cka_core.CKAAccumulator(debiased=debiased)
        for s in _split(n, [n // 3, n // 2]):
            acc.update([torch.from_numpy(x[s]) for x in L32])
        expected = ref.cka_matrix([x.astype(np.float64) for x in L32], debiased=debiased)
        np.testing.assert_allclose(acc.result(), expected, atol=1e-5)


@DEB
def test_merge_with_large_offsets(debiased):
    """Shards with different means (each accumulator centres on what it saw first) and a 1e4
    offset, float32: the merged statistics must still be re-centred exactly."""
    rng = np.random.default_rng(13)
    n = 120
    L = layers(rng, n, [4, 10, 60])
    L = [x + np.linspace(-30, 30, n)[:, None] for x in L]           # shard means differ a lot
    L32 = [with_offset_f32(x) for x in L]
    parts = [_fill(cka_core.CKAAccumulator(debiased=debiased), L32, None, [s])
             for s in (slice(0, 30), slice(30, 100), slice(100, 120))]
    merged = parts[2].merge(parts[0]).merge(parts[1])
    expected = ref.cka_matrix([x.astype(np.float64) for x in L32], debiased=debiased)
    np.testing.assert_allclose(merged.result(), expected, atol=1e-5)


def test_dict_layers():
    rng = np.random.default_rng(8)
    L = layers(rng, 40, [4, 6, 8])
    acc = cka_core.CKAAccumulator()
    for s in (slice(0, 13), slice(13, 40)):
        acc.update({"x": L[0][s], "y": L[1][s]}, {"z": L[2][s]})
    np.testing.assert_allclose(acc.result(), ref.cka_matrix(L[:2], L[2:]), atol=1e-9)


def test_merge_across_spawned_processes(monkeypatch):
    """Each worker (spawn context: a fresh interpreter) fills an accumulator from its shard and
    returns it pickled; the parent merges them; the result equals one pass. One pool serves the
    three settings (biased, debiased, debiased minibatch) so the interpreters start only once."""
    # A spawned interpreter first re-imports the parent's __main__. After an AppTest ran in this
    # pytest worker, __main__ is app.py: the workers would start the whole app and sometimes die.
    monkeypatch.setitem(sys.modules, "__main__", types.ModuleType("__main__"))
    rng = np.random.default_rng(9)
    n = 120
    A = layers(rng, n, [6, 20, 300])
    B = layers(rng, n, [4, 9])
    shards = [slice(0, 40), slice(40, 90), slice(90, 120)]
    settings = [(False, None), (True, None), (True, 10)]
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=2, mp_context=ctx) as pool:
        futures = {setting: [pool.submit(fill_accumulator, [x[s] for x in A], [y[s] for y in B],
                                         setting[0], setting[1], 10) for s in shards]
                   for setting in settings}
        parts = {setting: [f.result(timeout=120) for f in fs] for setting, fs in futures.items()}
    for (debiased, batch_size), accs in parts.items():
        merged = cka_core.CKAAccumulator(debiased=debiased, batch_size=batch_size)
        for part in accs:
            assert isinstance(part, cka_core.CKAAccumulator)
            merged.merge(part)
        expected = cka_core.cka_matrix(A, B, debiased=debiased, batch_size=batch_size)
        np.testing.assert_allclose(merged.result(), expected, atol=1e-9)
        np.testing.assert_allclose(
            merged.result(), ref.cka_matrix(A, B, debiased=debiased, batch_size=batch_size), atol=1e-9)


def test_a_pickled_accumulator_holds_arrays_not_tensors_and_merges_like_the_original():
    """Pickles are self-contained (no torch shared-memory handles tied to the sending process,
    which broke process pools now and then) and unpickle to an accumulator that merges exactly."""
    rng = np.random.default_rng(10)
    A, B = layers(rng, 60, [5, 30]), layers(rng, 60, [7])
    for debiased, batch_size in ((False, None), (True, None), (True, 10)):
        first = cka_core.CKAAccumulator(debiased=debiased, batch_size=batch_size).update(
            [x[:40] for x in A], [y[:40] for y in B])
        state = first.__getstate__()
        tensors, arrays = [], []
        accumulator._map_leaves(state["_stats"], torch.Tensor, tensors.append)
        accumulator._map_leaves(state["_stats"], np.ndarray, arrays.append)
        assert not tensors and arrays
        copy = pickle.loads(pickle.dumps(first))
        copy.update([x[40:] for x in A], [y[40:] for y in B])
        np.testing.assert_allclose(copy.result(), cka_core.cka_matrix(A, B, debiased=debiased, batch_size=batch_size),
                                   atol=1e-9)
