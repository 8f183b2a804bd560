"""Every bad input to the compute functions raises RepresentationError (a ValueError) with a
message that names the problem -- never a NaN result, never a bare torch/numpy error."""
import re

import numpy as np
import pytest
import torch

import cka_core
from cka_core import RepresentationError

from .cka_testdata import layers

RNG = np.random.default_rng(0)
GOOD = RNG.standard_normal((10, 4))
GOOD2 = RNG.standard_normal((10, 3))


def _nan(a):
    a = a.copy()
    a[3, 1] = np.nan
    return a


def _inf(a):
    a = a.copy()
    a[0, 0] = -np.inf
    return a


# (X, Y, debiased, regex the message must match)
PAIR_CASES = {
    "nan_x": (_nan(GOOD), GOOD2, False, r"(?i)nan"),
    "inf_y": (GOOD, _inf(GOOD2), False, r"(?i)inf"),
    "nan_torch": (torch.from_numpy(_nan(GOOD)), GOOD2, False, r"(?i)nan"),
    "row_mismatch": (GOOD, RNG.standard_normal((12, 3)), False, r"10.*12|12.*10"),
    "one_row_biased": (GOOD[:1], GOOD2[:1], False, r"(?i)(too few|at least).*2|2.*(rows|examples)"),
    "three_rows_debiased": (GOOD[:3], GOOD2[:3], True, r"(?i)(too few|at least).*4|4.*(rows|examples)"),
    "constant_x": (np.full((10, 4), 3.5), GOOD2, False, r"(?i)constant|variance"),
    "constant_y_large_offset_f32": (GOOD, np.full((10, 3), 1e4, dtype=np.float32), True,
                                    r"(?i)constant|variance"),
    "object_array": (GOOD.astype(object), GOOD2, False, r"(?i)object|numeric|dtype"),
    "string_array": (np.array([["1", "2"]] * 10), GOOD2, False, r"(?i)string|numeric|dtype"),
    "one_d_input": (GOOD[:, 0], GOOD2, False, r"(?i)1-d|one-dim|1 dim|ndim|shape|2-d|two-dim"),
    "empty_rows": (np.zeros((0, 4)), np.zeros((0, 3)), False, r"(?i)empty|0 "),
    "empty_features": (np.zeros((10, 0)), GOOD2, False, r"(?i)empty|feature"),
    "scalar": (np.float64(1.0), GOOD2, False, r"(?i)scalar|shape|dim"),
    "complex": (GOOD.astype(complex), GOOD2, False, r"(?i)complex|real|dtype"),
    "python_list_of_strings": ([["a"]] * 10, GOOD2, False, r"(?i)numeric|dtype|string"),
}

FUNCTIONS = {
    "linear_cka": lambda X, Y, deb: cka_core.linear_cka(X, Y, debiased=deb),
    "rbf_cka": lambda X, Y, deb: cka_core.rbf_cka(X, Y, debiased=deb),
    "cka_matrix": lambda X, Y, deb: cka_core.cka_matrix([X], [Y], debiased=deb),
    "cka_matrix_minibatch": lambda X, Y, deb: cka_core.cka_matrix([X], [Y], debiased=deb, batch_size=5),
    "similarity_procrustes": lambda X, Y, deb: cka_core.similarity(X, Y, "procrustes"),
    "accumulator": lambda X, Y, deb: cka_core.CKAAccumulator(debiased=deb).update([X], [Y]).result(),
}


@pytest.mark.parametrize("func", list(FUNCTIONS))
@pytest.mark.parametrize("case", list(PAIR_CASES))
def test_bad_pairs_raise_with_a_useful_message(case, func):
    X, Y, debiased, pattern = PAIR_CASES[case]
    if func == "similarity_procrustes" and case == "three_rows_debiased":
        X, Y = GOOD[:1], GOOD2[:1]   # procrustes has no debiased variant: too few rows = 1 row
        pattern = r"(?i)too few|at least"
    with pytest.raises(RepresentationError) as info:
        FUNCTIONS[func](X, Y, debiased)
    assert isinstance(info.value, ValueError)
    message = str(info.value)
    assert re.search(pattern, message), message
    assert len(message) > 25, "the message should also say how to fix it"


@pytest.mark.parametrize("swap", [False, True])
def test_bad_layer_in_a_matrix_names_that_layer(swap):
    layers = {"good": GOOD, "dead_relu": np.zeros((10, 6)), "also_good": GOOD2}
    with pytest.raises(RepresentationError, match="dead_relu"):
        if swap:
            cka_core.cka_matrix([GOOD], layers)
        else:
            cka_core.cka_matrix(layers)


def test_layers_with_different_row_counts_within_one_side():
    with pytest.raises(RepresentationError, match=r"10.*12|12.*10"):
        cka_core.cka_matrix([GOOD, RNG.standard_normal((12, 3))])


def test_empty_layer_collections():
    with pytest.raises(RepresentationError):
        cka_core.cka_matrix([])
    with pytest.raises(RepresentationError):
        cka_core.cka_matrix({})


@pytest.mark.parametrize("batch_size", [0, -3, 2.5, "8"])
def test_invalid_batch_size(batch_size):
    with pytest.raises(ValueError):
        cka_core.cka_matrix([GOOD, GOOD2], batch_size=batch_size)
    with pytest.raises(ValueError):
        cka_core.CKAAccumulator(batch_size=batch_size)


def test_minibatch_with_no_usable_batch():
    """n = 5, b = 3, debiased: [0:3] and [3:5] both have fewer than 4 rows -> nothing to estimate.
    (Either refused up front or at the end -- but a clear error, not NaN.)"""
    X = RNG.standard_normal((5, 3))
    with pytest.raises(RepresentationError):
        cka_core.cka_matrix([X, X + RNG.standard_normal((5, 3))], debiased=True, batch_size=3)


@pytest.mark.parametrize("sigma", [0.0, -1.0, float("nan"), float("inf")])
def test_invalid_rbf_sigma(sigma):
    with pytest.raises(ValueError):
        cka_core.rbf_cka(GOOD, GOOD2, sigma=sigma)


def test_rbf_with_duplicate_rows_everywhere_is_never_nan():
    """More than half of all n^2 squared distances are zero -> median 0 -> the contract's bandwidth
    is 0. Either a clear RepresentationError or a finite value in [0, 1]; never NaN/inf
    (8 identical rows + 2 others: 66 of 100 entries are 0)."""
    X = np.vstack([np.repeat(RNG.standard_normal((1, 3)), 8, axis=0), RNG.standard_normal((2, 3))])
    for debiased in (False, True):
        try:
            v = cka_core.rbf_cka(X, RNG.standard_normal((10, 3)), debiased=debiased)
        except RepresentationError:
            continue
        assert np.isfinite(v) and -1 <= v <= 1


def test_accumulator_errors():
    acc = cka_core.CKAAccumulator()
    with pytest.raises(RepresentationError):
        acc.result()                                       # nothing seen yet
    acc.update([GOOD, GOOD2])
    with pytest.raises(RepresentationError):
        acc.update([GOOD, RNG.standard_normal((10, 5))])   # a layer changed width
    with pytest.raises(RepresentationError):
        acc.update([GOOD])                                 # a layer went missing
    with pytest.raises(RepresentationError):
        acc.update([GOOD, _nan(GOOD2)])
    # the failed updates did not corrupt what was accumulated
    np.testing.assert_allclose(acc.result(), cka_core.cka_matrix([GOOD, GOOD2]), atol=1e-10)
    # a layer that is constant over everything seen is refused at result()
    with pytest.raises(RepresentationError, match=r"(?i)constant|variance"):
        dead = cka_core.CKAAccumulator()
        dead.update([GOOD, np.ones((10, 2))])
        dead.update([GOOD, np.ones((10, 2))])
        dead.result()
    with pytest.raises((ValueError, TypeError)):
        cka_core.CKAAccumulator(debiased=True).merge(cka_core.CKAAccumulator().update([GOOD]))


def test_translation_inputs():
    X = RNG.standard_normal((20, 3))
    moved = np.arange(20) < 5
    with pytest.raises(RepresentationError):
        cka_core.translation_cka(X, moved[:10], [1.0, 0, 0], 1.0)        # mask length
    with pytest.raises(RepresentationError):
        cka_core.translation_cka(X, moved, [1.0, 0], 1.0)                # direction length
    with pytest.raises(RepresentationError):
        cka_core.translation_cka(X, moved, [0.0, 0, 0], 1.0)             # zero direction
    with pytest.raises(RepresentationError):
        cka_core.translation_cka(_nan(X), moved, [1.0, 0, 0], 1.0)
    with pytest.raises(RepresentationError):
        cka_core.translation_cka_limit(np.ones((20, 3)), moved)          # constant X


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("n,width", [(30, 5), (20, 900)], ids=["feature form", "gram form"])
def test_a_non_finite_value_is_found_after_the_fact_and_named(n, width, bad, dtype):
    """cka_matrix skips the up-front scan of the values; the HSIC values give a NaN or Inf away."""
    rng = np.random.default_rng(5)
    layers = {"fine": rng.standard_normal((n, width)).astype(dtype),
              "broken": rng.standard_normal((n, width)).astype(dtype)}
    layers["broken"][n // 2, width // 3] = bad
    with pytest.raises(RepresentationError, match=r"broken.*NaN or infinite"):
        cka_core.cka_matrix(layers)


def test_a_non_finite_value_in_a_dropped_minibatch_tail_is_still_refused():
    """11 rows in batches of 5: the debiased estimator drops the 1-row tail, so its values are
    checked up front."""
    X = RNG.standard_normal((11, 3))
    X[10, 0] = np.nan
    with pytest.raises(RepresentationError, match="NaN"):
        cka_core.cka_matrix([X], debiased=True, batch_size=5)


@pytest.mark.parametrize("scale,dtype", [(1e19, np.float32), (1e-21, np.float32), (1e-25, np.float32), (1e-40, np.float32),
                                         (1e200, np.float64), (1e-200, np.float64)])
@pytest.mark.parametrize("n,widths", [(40, [3, 7]), (20, [300, 700])], ids=["feature form", "gram form"])
@pytest.mark.parametrize("debiased", [False, True], ids=["biased", "debiased"])
def test_values_whose_products_overflow_or_underflow_give_the_exact_cka(n, widths, scale, dtype, debiased):
    """Squares of 1e19 overflow float32, of 1e-21 are subnormal (a few digits left) and of 1e-25
    underflow to 0; CKA is scale-invariant, so the answer is that of the unscaled values (the core
    rescales by a power of two, exactly)."""
    unit = [x / np.abs(x).max() for x in layers(np.random.default_rng(6), n, widths)]
    stored = [(x * scale).astype(dtype) for x in unit]
    expected = cka_core.cka_matrix([x.astype(np.float64) / scale for x in stored], debiased=debiased)
    got = cka_core.cka_matrix(stored, debiased=debiased)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(got, expected, rtol=0, atol=tol)
    assert 0.05 < expected[0, 1] < 0.999


def test_accumulator_overflow_says_to_rescale():
    big = (RNG.standard_normal((10, 4)) * 1e19).astype(np.float32)
    acc = cka_core.CKAAccumulator(batch_size=5).update([big, GOOD2.astype(np.float32)])
    with pytest.raises(RepresentationError, match=r"overflowed.*divide"):
        acc.result()


def test_accumulator_refuses_values_too_small_for_their_products():
    tiny = (RNG.standard_normal((10, 4)) * 1e-21).astype(np.float32)
    with pytest.raises(RepresentationError, match=r"too small.*multiply"):
        cka_core.CKAAccumulator().update([tiny, GOOD2.astype(np.float32)])
