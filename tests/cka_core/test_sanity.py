"""cka_core.stats.sanity: each check passes on sound input and flags the bug it exists for; the closed-form
shuffled-rows means are exact (checked by enumerating every permutation)."""
import itertools

import numpy as np
import pytest

from cka_core import RepresentationError, cka_matrix, linear_cka
from cka_core.stats import sanity

from . import reference as ref
from .cka_testdata import layers


@pytest.fixture(scope="module")
def paired():
    rng = np.random.default_rng(0)
    L = layers(rng, 120, [6, 10, 8, 5])
    return {"a1": L[0], "a2": L[1]}, {"b1": L[2], "b2": L[3]}


def test_biased_null_mean_is_exact_over_all_permutations():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((6, 3)) @ rng.standard_normal((3, 5)) + 4
    Y = rng.standard_normal((6, 4))
    perms = [list(p) for p in itertools.permutations(range(6))]
    mean = np.mean([ref.linear_cka(X, Y[p]) for p in perms])
    assert sanity.biased_null_mean(X, Y) == pytest.approx(mean, abs=1e-12)
    debiased = np.mean([ref.linear_cka(X, Y[p], debiased=True) for p in perms])
    assert debiased == pytest.approx(0.0, abs=1e-12)  # the module docstring's second claim


@pytest.mark.parametrize("d,n", [(10, 100), (100, 100), (1000, 100)])
def test_isotropic_null_predicts_random_features(d, n):
    rng = np.random.default_rng(d)
    values = [linear_cka(rng.standard_normal((n, d)), rng.standard_normal((n, d))) for _ in range(8)]
    assert np.mean(values) == pytest.approx(sanity.isotropic_null(d, d, n), abs=0.02)
    assert sanity.isotropic_null(d, d, n) == pytest.approx(d / (d + n - 1))


def test_self_diagonal_passes_for_every_kind_of_measure(paired):
    a, _ = paired
    for measure, options in [("linear_cka", {}), ("linear_cka_debiased", {}), ("linear_cka", {"batch_size": 32}),
                             ("rbf_cka", {"sigma": 0.8}), ("procrustes", {}), ("mean_cca", {})]:
        check = sanity.self_diagonal(a, measure=measure, **options)
        assert check.status == sanity.PASS, (measure, check.message)
    assert sanity.identity_value("procrustes") == 0.0 and sanity.identity_value("rsa") == 1.0


def test_self_diagonal_fails_on_a_broken_estimator(paired, monkeypatch):
    monkeypatch.setattr(sanity, "similarity_matrix", lambda *a, **k: np.array([[0.97]]))
    check = sanity.self_diagonal(paired[0])
    assert check.status == sanity.FAIL and "a1" in check.message and not check.ok


def test_symmetry(paired, monkeypatch):
    a, b = paired
    values = cka_matrix(a, b)
    assert sanity.symmetry(a, b, values).status == sanity.PASS
    assert sanity.symmetry(a, b, values, measure="linear_cka", cells=[(0, 0)]).details["cells_checked"] == 1
    pw = np.array([[ref.linear_regression_r2(x, y) for y in b.values()] for x in a.values()])
    assert sanity.symmetry(a, b, pw, measure="linear_regression").status == sanity.INFO  # not symmetric by design
    assert sanity.symmetry(a, b, values + 1e-3).status == sanity.FAIL


def test_pairing_passes_for_paired_rows_and_warns_for_shuffled_rows(paired):
    a, b = paired
    good = sanity.pairing(a, b)
    assert good.status == sanity.PASS and good.details["z"] > 10
    perm = np.random.default_rng(2).permutation(120)
    shuffled = {k: v[perm] for k, v in b.items()}
    bad = sanity.pairing(a, shuffled)
    assert bad.status == sanity.WARN and "shuffled" in bad.message
    assert bad.details["z"] < bad.details["z_threshold"]


def test_pairing_row_count_and_same_source(paired):
    a, b = paired
    assert sanity.pairing(a, {k: v[:100] for k, v in b.items()}).status == sanity.FAIL
    assert sanity.pairing(a, a, same_source=True).status == sanity.PASS
    assert sanity.pairing({"x": a["a1"][:5]}, {"y": b["b1"][:5]}).status == sanity.INFO


def test_layer_health():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((30, 4))
    dead = np.hstack([X[:, :1], np.zeros((30, 5))])
    assert sanity.layer_health({"x": X}).status == sanity.PASS
    info = sanity.layer_health({"x": X, "dead": dead})
    assert info.status == sanity.INFO and "dead (5 of 6)" in info.message
    fail = sanity.layer_health({"x": X, "flat": np.full((30, 3), 7.0)}, side="B")
    assert fail.status == sanity.FAIL and fail.details["constant"] == ["flat"] and "(B)" in fail.name
    assert sanity.layer_health({"empty": np.zeros((30, 0))}).details["empty"] == ["empty"]


def test_high_dimension_warns_when_width_inflates_biased_cka():
    rng = np.random.default_rng(4)
    wide_a, wide_b = {"x": rng.standard_normal((40, 2000))}, {"y": rng.standard_normal((40, 1500))}
    biased, debiased = cka_matrix(wide_a, wide_b), cka_matrix(wide_a, wide_b, debiased=True)
    check = sanity.high_dimension(wide_a, wide_b, biased, debiased)
    row = check.details["rows"][0]
    assert check.status == sanity.WARN and row["null_mean_biased"] > 0.9
    assert row["biased_cka"] == pytest.approx(row["null_mean_biased"], abs=0.02)  # unrelated: biased = its null
    assert abs(row["debiased_cka"]) < 0.05
    narrow_a, narrow_b = {"x": rng.standard_normal((500, 3))}, {"y": rng.standard_normal((500, 4))}
    ok = sanity.high_dimension(narrow_a, narrow_b, cka_matrix(narrow_a, narrow_b),
                               cka_matrix(narrow_a, narrow_b, debiased=True))
    assert ok.status == sanity.PASS


def test_random_init_baseline():
    names = ["l1", "l2"]
    values = np.array([[0.9, 0.5], [0.4, 0.8]])
    assert sanity.random_init_baseline(values, values - 0.1, names, names).status == sanity.PASS
    partial = sanity.random_init_baseline(values, np.array([[0.5, 0.6], [0.5, 0.5]]), names, names)
    assert partial.status == sanity.INFO and "2 of 4" in partial.message
    assert sanity.random_init_baseline(values, values + 0.05, names, names).status == sanity.WARN
    assert "(most similar cell l1 ↔ l1: 0.900 against 0.500)" in partial.message  # the largest similarity
    angles = np.array([[0.2, 1.0], [1.1, 0.3]])  # Procrustes: lower is more similar
    further = sanity.random_init_baseline(angles, angles + 0.1, names, names, measure="procrustes")
    assert further.status == sanity.PASS
    assert "4 of 4 cells are closer than" in further.message and "(closest cell l1 ↔ l1: 0.200 against 0.300)" \
        in further.message and "more similar" not in further.message
    closer = sanity.random_init_baseline(angles, angles - 0.1, names, names, measure="procrustes")
    assert closer.status == sanity.WARN and "0 of 4 cells are closer" in closer.message
    assert "Even the closest cell is as close or closer" in closer.message
    with pytest.raises(RepresentationError):
        sanity.random_init_baseline(values, values[:1], names, names)


@pytest.mark.parametrize(("measure", "best", "better"), [("linear_cka", (0, 0), "more similar"),
                                                          ("rsa", (0, 0), "more similar"),
                                                          ("procrustes", (1, 1), "closer"),
                                                          ("shape_metric", (1, 1), "closer")])
def test_direction_words_and_best_cell_follow_the_registry(measure, best, better):
    values = np.array([[0.9, 0.5], [0.4, 0.1]])
    assert sanity.most_similar_cell(values, measure) == best
    assert sanity.direction(measure).more == better
    assert sanity.more_similar(0.3, 0.2, measure) == (better == "more similar")
    assert not sanity.more_similar(0.3, 0.3, measure)  # a tie is not more similar either way


def test_not_above_null_rule():
    low, high = np.array([0.5, 0.02, 0.5]), np.array([0.7, 0.2, 0.7])
    p = np.array([0.01, 0.01, 0.2])
    flagged = sanity.not_above_null(low, high, p, np.array([0.05, 0.05, 0.05]), np.array([0.02, 0.02, 0.02]))
    assert flagged.tolist() == [False, True, True]  # clear; interval reaches the null band; p too large
