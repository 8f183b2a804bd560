"""The output measures (jsd, disagreement, accuracy_difference) on two networks' logits: the contract
the grounding tests call, exact values (JSD in bits), the flags on_outputs and needs_labels, and the
places that must not offer them on hidden layers (the Compare page, the Invariances page, cka compare)."""
import math

import numpy as np
import pytest
import torch

import cka_core
from cka_core.cli import main
from cka_core.measures import MEASURES, similarity_matrix
from cka_core.measures.functional import accuracy_difference, disagreement, jsd

from . import reference as ref

OUTPUT_MEASURES = {"jsd", "disagreement", "accuracy_difference"}


def logits(rng, n=40, c=5, scale=2.0):
    return scale * rng.standard_normal((n, c))


def test_jsd_known_values_in_bits():
    """p = (1/2, 1/2) against q = (1, 0): JSD = H(m) - (H(p) + H(q)) / 2 with m = (3/4, 1/4), in bits;
    disjoint one-hot outputs: 1 bit, the largest value."""
    h = lambda *p: -sum(x * math.log2(x) for x in p)  # noqa: E731
    X = np.array([[0.0, 0.0], [800.0, -800.0]])
    Y = np.array([[800.0, -800.0], [-800.0, 800.0]])
    assert jsd(X, Y) == pytest.approx(((h(0.75, 0.25) - 0.5) + 1.0) / 2, abs=1e-12)
    assert jsd(X, X) == 0.0


def test_the_contract_the_grounding_tests_call():
    rng = np.random.default_rng(0)
    X, Y = logits(rng), logits(rng)
    labels = rng.integers(0, 5, 40)
    assert jsd(X, Y) == pytest.approx(ref.jsd(X, Y), abs=1e-12)
    assert disagreement(X, Y) == pytest.approx(ref.disagreement(X, Y), abs=0)
    assert accuracy_difference(X, Y, labels=labels) == pytest.approx(ref.accuracy_difference(X, Y, labels), abs=0)
    # torch tensors, float32, and the symmetric distance reading (0 = the same outputs)
    tx, ty = torch.from_numpy(X).float(), torch.from_numpy(Y).float()
    assert jsd(tx, ty) == pytest.approx(jsd(Y, X), abs=1e-6)
    assert accuracy_difference(tx, ty, labels=torch.from_numpy(labels)) == accuracy_difference(Y, X, labels=labels)
    assert min(jsd(X, X), disagreement(X, X), accuracy_difference(X, X, labels=labels)) == 0.0


def test_disagreement_and_accuracy_difference_known_values():
    X = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
    Y = np.array([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    labels = np.array([0, 1, 2, 1])  # X: 3 of 4 right (all but the last); Y: 2 of 4 (the first and the last)
    assert disagreement(X, Y) == 0.75
    assert accuracy_difference(X, Y, labels=labels) == 0.25


def test_jsd_ignores_a_constant_added_to_an_examples_logits_but_not_a_temperature():
    rng = np.random.default_rng(1)
    X, Y = logits(rng), logits(rng)
    shifted = X + rng.uniform(-50, 50, (40, 1))  # softmax is unchanged by a per-example constant
    assert jsd(shifted, Y) == pytest.approx(jsd(X, Y), abs=1e-12)
    assert abs(jsd(3.0 * X, Y) - jsd(X, Y)) > 0.01
    assert disagreement(3.0 * X, Y) == disagreement(X, Y)  # argmax is


def test_bad_outputs_and_labels_are_clear_errors():
    rng = np.random.default_rng(2)
    X, Y = logits(rng), logits(rng)
    with pytest.raises(cka_core.RepresentationError, match="jsd compares class outputs: X has 5 columns and Y 4"):
        jsd(X, Y[:, :4])
    with pytest.raises(cka_core.RepresentationError, match="disagreement: X has 40 examples but Y has 39"):
        disagreement(X, Y[:39])
    with pytest.raises(cka_core.RepresentationError, match="needs labels="):
        accuracy_difference(X, Y)
    with pytest.raises(cka_core.RepresentationError, match="must lie in 0..4"):
        accuracy_difference(X, Y, labels=np.full(40, 5))
    with pytest.raises(cka_core.RepresentationError, match="must be 40 whole class numbers"):
        accuracy_difference(X, Y, labels=np.zeros(39, dtype=int))
    with pytest.raises(cka_core.RepresentationError, match="must be 40 whole class numbers"):
        accuracy_difference(X, Y, labels=np.full(40, 0.5))


def test_the_flags_mark_the_output_measures_and_the_one_that_needs_labels():
    assert {m for m, info in MEASURES.items() if info.on_outputs} == OUTPUT_MEASURES
    assert {m for m, info in MEASURES.items() if info.needs_labels} == {"accuracy_difference"}
    assert all(not MEASURES[m].higher_is_similar and MEASURES[m].value_range == (0.0, 1.0) for m in OUTPUT_MEASURES)


def test_labels_go_to_the_measure_that_needs_them_and_nowhere_else():
    rng = np.random.default_rng(3)
    X, Y = logits(rng), logits(rng)
    labels = rng.integers(0, 5, 40)
    values = similarity_matrix({"logits": X}, {"logits": Y}, measure="accuracy_difference", labels=labels)
    assert values[0, 0] == accuracy_difference(X, Y, labels=labels)
    with pytest.raises(cka_core.RepresentationError, match="labels apply to the measures that compare accuracies"):
        similarity_matrix({"logits": X}, {"logits": Y}, measure="jsd", labels=labels)


def test_a_bootstrap_resample_takes_the_labels_of_its_rows():
    from cka_core.measures.view import LayerView
    rng = np.random.default_rng(4)
    X, Y = logits(rng), logits(rng)
    labels = rng.integers(0, 5, 40)
    index = rng.integers(0, 40, 40)
    vx, vy = LayerView.of(X).rows(index), LayerView.of(Y).rows(index)
    got = MEASURES["accuracy_difference"].of(vx, vy, labels=labels)
    assert got == accuracy_difference(X[index], Y[index], labels=labels[index])


def test_the_compare_page_does_not_offer_output_measures():
    from tests.pages.apptest import open_page
    from ui.compare import controls

    assert not OUTPUT_MEASURES & set(controls.measure_choices())
    at = open_page("pages/compare.py")
    options = at.selectbox(key="cmp_measure").options
    assert MEASURES["jaccard_knn"].label in options
    assert not {MEASURES[m].label for m in OUTPUT_MEASURES} & set(options)


def test_the_invariances_page_leaves_output_measures_out():
    from ui.pitfalls import invariances

    assert not OUTPUT_MEASURES & set(invariances.ONE_LAYER_MEASURES)
    assert {"jaccard_knn", "rsa_correlation", "uniformity_difference"} <= set(invariances.ONE_LAYER_MEASURES)


def test_cka_compare_refuses_output_measures_on_layers_and_takes_logits(tmp_path, capsys):
    rng = np.random.default_rng(5)
    np.savez(tmp_path / "a.npz", hidden=rng.standard_normal((30, 8)), logits=logits(rng, 30))
    np.savez(tmp_path / "b.npz", hidden=rng.standard_normal((30, 8)), logits=logits(rng, 30))
    np.save(tmp_path / "la.npy", logits(rng, 30))
    np.save(tmp_path / "lb.npy", logits(rng, 30))
    assert main(["compare", str(tmp_path / "a.npz"), str(tmp_path / "b.npz"), "--measure", "jsd"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "compares two networks' class outputs, not layers" in err
    logits_files = [str(tmp_path / "la.npy"), str(tmp_path / "lb.npy")]
    assert main(["compare", *logits_files, "--measure", "accuracy_difference"]) == 2
    assert "needs the examples' true classes" in capsys.readouterr().err
    out = tmp_path / "jsd.json"
    assert main(["compare", str(tmp_path / "la.npy"), str(tmp_path / "lb.npy"), "--measure", "jsd", "--out",
                 str(out)]) == 0
    assert out.exists()
