"""cka_core.drilldown against brute force: the eigen form's terms come from explicit Gram
eigendecompositions, and they sum to linear CKA."""
import numpy as np
import pytest
from hypothesis import given

from cka_core import RepresentationError, linear_cka
from cka_core.cka import drilldown

from . import reference as ref
from .cka_testdata import PROPERTY_FEW, correlated_pair, pairs, with_offset_f32

SHAPES = [(40, 5, 7), (12, 30, 20), (60, 1, 4), (25, 25, 3)]


def _brute_force(X, Y) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The eigen form written out: eigh of the explicit centred Grams, all (i, j) terms."""
    K, L = ref.linear_gram(X), ref.linear_gram(Y)
    lx, ux = np.linalg.eigh(K)
    ly, uy = np.linalg.eigh(L)
    ox, oy = np.argsort(lx)[::-1], np.argsort(ly)[::-1]
    lx, ux, ly, uy = lx[ox], ux[:, ox], ly[oy], uy[:, oy]
    terms = np.array([[lx[i] * ly[j] * (ux[:, i] @ uy[:, j]) ** 2 for j in range(ly.size)] for i in range(lx.size)])
    return terms / np.sqrt(np.sum(lx**2) * np.sum(ly**2)), lx, ly


@pytest.mark.parametrize("n,dx,dy", SHAPES)
def test_contributions_match_brute_force_and_sum_to_cka(n, dx, dy):
    X, Y = correlated_pair(np.random.default_rng(n + dx + dy), n, dx, dy)
    got = drilldown.pc_contributions(X, Y)
    expected, lx, ly = _brute_force(X, Y)
    rx, ry = got.matrix.shape
    assert rx == min(n - 1, dx) and ry == min(n - 1, dy)  # numerical rank of the centred data
    np.testing.assert_allclose(got.eigenvalues_x, lx[:rx], rtol=1e-9)
    np.testing.assert_allclose(got.eigenvalues_y, ly[:ry], rtol=1e-9)
    np.testing.assert_allclose(got.matrix, expected[:rx, :ry], atol=1e-10)
    assert abs(expected[rx:, :].sum()) + abs(expected[:, ry:].sum()) < 1e-10  # the null directions carry nothing
    assert got.cka == pytest.approx(ref.linear_cka(X, Y), abs=1e-10)
    assert got.matrix.sum() == pytest.approx(linear_cka(X, Y), abs=1e-10)


@PROPERTY_FEW
@given(pairs())
def test_terms_are_non_negative_and_sum_to_linear_cka(pair):
    X, Y = pair
    got = drilldown.pc_contributions(X, Y)
    assert (got.matrix >= -1e-15).all()
    assert got.cka == pytest.approx(ref.linear_cka(X, Y), abs=1e-9)


def test_float32_with_a_large_offset_is_exact():
    X, Y = correlated_pair(np.random.default_rng(3), 80, 6, 9)
    got = drilldown.pc_contributions(with_offset_f32(X), with_offset_f32(Y))
    assert got.cka == pytest.approx(ref.linear_cka(with_offset_f32(X), with_offset_f32(Y)), abs=1e-6)


def test_top_block_leading_pairs_and_rest():
    X, Y = correlated_pair(np.random.default_rng(4), 50, 8, 8)
    got = drilldown.pc_contributions(X, Y)
    assert got.top(3).shape == (3, 3)
    assert got.top_sum(100) == pytest.approx(got.cka)
    assert got.top_sum(2) <= got.top_sum(5) <= got.cka + 1e-12
    pairs_ = got.leading_pairs(4)
    values = [v for _, _, v in pairs_]
    assert values == sorted(values, reverse=True) and values[0] == pytest.approx(got.matrix.max())


def test_identical_representations_put_the_value_on_the_diagonal():
    X = np.random.default_rng(5).standard_normal((40, 5)) * np.array([5, 4, 3, 2, 1])
    got = drilldown.pc_contributions(X, X @ ref.random_orthogonal(5, np.random.default_rng(6)))
    assert got.cka == pytest.approx(1.0)
    np.testing.assert_allclose(np.diag(got.matrix).sum(), 1.0, atol=1e-9)  # PC i of X is PC i of XQ


def test_eigenspectrum_is_the_nonzero_spectrum_of_the_centred_gram():
    X = np.random.default_rng(7).standard_normal((15, 4)) + 3
    lam = np.sort(np.linalg.eigvalsh(ref.linear_gram(X)))[::-1][:4]
    np.testing.assert_allclose(drilldown.eigenspectrum(X), lam, rtol=1e-10)
    assert drilldown.participation_ratio(np.ones(7)) == pytest.approx(7.0)
    assert drilldown.participation_ratio(np.array([1.0, 0.0, 0.0])) == pytest.approx(1.0)


def test_gram_scatter_entries_and_cosine():
    X, Y = correlated_pair(np.random.default_rng(8), 30, 4, 6)
    full = drilldown.gram_scatter(X, Y, max_points=10_000)
    K, L = ref.linear_gram(X), ref.linear_gram(Y)
    assert full.n_entries == 30 * 31 // 2 == full.k.size
    np.testing.assert_allclose(full.k, K[full.rows, full.cols] / np.linalg.norm(K), atol=1e-12)
    np.testing.assert_allclose(full.l, L[full.rows, full.cols] / np.linalg.norm(L), atol=1e-12)
    assert full.cka == pytest.approx(ref.linear_cka(X, Y), abs=1e-12)
    assert full.diagonal.sum() == 30
    sub = drilldown.gram_scatter(X, Y, max_points=100, seed=1)
    assert sub.k.size == 100 and sub.n_entries == full.n_entries and (sub.rows <= sub.cols).all()
    again = drilldown.gram_scatter(X, Y, max_points=100, seed=1)
    np.testing.assert_array_equal(sub.rows, again.rows)


def test_bad_input_is_a_clear_error():
    X = np.random.default_rng(9).standard_normal((20, 3))
    with pytest.raises(RepresentationError, match="constant"):
        drilldown.pc_contributions(X, np.ones((20, 4)))
    with pytest.raises(RepresentationError, match="examples"):
        drilldown.pc_contributions(X, X[:10])
    with pytest.raises(RepresentationError, match="NaN"):
        drilldown.gram_scatter(np.full((5, 2), np.nan), X[:5])
    with pytest.raises(RepresentationError, match="max_points"):
        drilldown.gram_scatter(X, X, max_points=0)
