"""Each measure is declared once, in the registry: its parameters (keyword, default, range, texts)
drive the command line's flags, the defaults used elsewhere and the checks on misplaced flags; a new
measure needs one module plus one registry entry."""
from __future__ import annotations

import math

import numpy as np
import pytest

from cka_core.cli import compare as cli
from cka_core.errors import RepresentationError
from cka_core.measures import (MEASURES, colour_range, identical_and_unrelated, is_unbounded, movement,
                               parameter_defaults, similarity, similarity_matrix, unrelated_baseline)
from cka_core.measures.cka import rbf_cka
from cka_core.measures.registry import UNRELATED_SEED

from tests import toy_measure


def _help(capsys) -> str:
    with pytest.raises(SystemExit) as done:
        cli.build_parser().parse_args(["compare", "--help"])
    assert done.value.code == 0
    return " ".join(capsys.readouterr().out.split())  # argparse wraps lines


def test_todays_parameters_are_declared_in_the_registry():
    [sigma] = MEASURES["rbf_cka"].parameters
    [alpha] = MEASURES["shape_metric"].parameters
    assert (sigma.name, sigma.default, sigma.low, sigma.high, sigma.step) == ("sigma", 1.0, 0.1, 3.0, 0.1)
    assert (alpha.name, alpha.default, alpha.low, alpha.high, alpha.step) == ("alpha", 0.5, 0.0, 1.0, 0.05)
    assert parameter_defaults("rbf_cka") == {"sigma": 1.0} and parameter_defaults("linear_cka") == {}
    for name in ("jaccard_knn", "rank_similarity", "second_order_cosine"):  # ReSi's k = 10 neighbours
        [k] = MEASURES[name].parameters
        assert (k.name, k.default, k.low, k.high, k.step) == ("k", 10, 1, 50, 1)
    [t] = MEASURES["uniformity_difference"].parameters
    assert (t.name, t.default) == ("t", 2.0)
    assert sum(len(info.parameters) for info in MEASURES.values()) == 2 + 3 + 1 + sum(
        len(MEASURES[name].parameters) for name in ("gulp",) if name in MEASURES)


def test_the_command_line_has_one_flag_per_declared_parameter(capsys):
    text = _help(capsys)
    for info in MEASURES.values():
        for p in info.parameters:
            assert f"--{p.name} {p.name.upper()} {p.flag_help}" in text


def test_a_new_measure_is_one_registry_entry(monkeypatch, capsys, tmp_path):
    toy = toy_measure.register(monkeypatch)
    text = _help(capsys)
    assert f"--power POWER {toy_measure.POWER.flag_help}" in text
    assert toy_measure.NAME in text  # among --measure's choices
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(20, 5)), rng.normal(size=(20, 4))
    assert similarity(X, Y, toy.name, **parameter_defaults(toy.name)) == pytest.approx(rbf_cka(X, Y) ** 2)
    np.testing.assert_allclose(similarity_matrix({"x": X}, {"y": Y}, measure=toy.name, power=3.0),
                               [[rbf_cka(X, Y) ** 3]])
    # The flag reaches the measure, and is refused for another measure.
    np.savez(tmp_path / "a.npz", layer1=X)
    np.savez(tmp_path / "b.npz", layer2=Y)
    out = tmp_path / "heat.json"
    assert cli.main(["compare", str(tmp_path / "a.npz"), str(tmp_path / "b.npz"), "--measure", toy.name,
                     "--power", "3", "--out", str(out)]) == 0
    assert '"power": 3.0' in out.read_text()
    capsys.readouterr()
    assert cli.main(["compare", str(tmp_path / "a.npz"), str(tmp_path / "b.npz"), "--power", "3"]) == 2
    assert "--power applies to --measure toy_power only." in capsys.readouterr().err


# ----------------------------------------------------------------- a distance with no upper bound
def _unbounded_toy(monkeypatch):
    """A toy distance in the layers' own units (3 x the Procrustes size-and-shape distance), range 0 to infinity."""
    from cka_core.measures.alignment import procrustes_size_and_shape, procrustes_size_and_shape_of
    from cka_core.measures.registry import MeasureInfo, ORTHOGONAL, PERMUTATION, TRANSLATION

    info = MeasureInfo("toy_unbounded", "Toy unbounded distance", lambda X, Y: 3 * procrustes_size_and_shape(X, Y),
                       False, (0.0, math.inf), frozenset({ORTHOGONAL, TRANSLATION, PERMUTATION}), True,
                       "A distance with no upper bound: a toy for the tests.", "none",
                       lambda vx, vy: 3 * procrustes_size_and_shape_of(vx, vy))
    monkeypatch.setitem(MEASURES, info.name, info)
    return info.name


def test_an_unbounded_distance_reads_unrelated_off_a_noise_baseline(monkeypatch):
    name = _unbounded_toy(monkeypatch)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 5))
    assert is_unbounded(name) and not is_unbounded("procrustes")
    with pytest.raises(RepresentationError, match="toy_unbounded has no upper bound"):
        identical_and_unrelated(name)
    with pytest.raises(RepresentationError, match="no upper bound"):
        movement(name, 1.0, 0.0)
    assert identical_and_unrelated(name, unrelated=5.0) == (0.0, 5.0)
    assert identical_and_unrelated("procrustes", unrelated=5.0) == (0.0, math.pi / 2)  # bounded: its own end
    baseline = unrelated_baseline(X, name)
    noise = np.random.default_rng(UNRELATED_SEED).standard_normal(X.shape)  # the documented baseline, written out
    noise *= np.linalg.norm(X - X.mean(0)) / np.linalg.norm(noise - noise.mean(0))
    assert baseline == pytest.approx(similarity(X, noise, name), rel=1e-12)
    # On that scale the unrelated layer is 1 away, whatever the units: the same change of a layer 1000 times
    # larger reads the same.
    Y = X + 0.3 * rng.normal(size=X.shape)
    share = movement(name, similarity(X, Y, name), 0.0, baseline)
    assert movement(name, baseline, 0.0, baseline) == 1.0 and 0 < share < 1
    assert movement(name, similarity(1e3 * X, 1e3 * Y, name), 0.0, unrelated_baseline(1e3 * X, name)) == pytest.approx(
        share, rel=1e-9)


def test_a_measure_that_cannot_tell_noise_from_the_layer_has_no_unrelated_baseline(monkeypatch):
    from cka_core.measures.registry import MeasureInfo

    blind = MeasureInfo("toy_blind", "Toy blind distance", lambda X, Y: 0.0, False, (0.0, math.inf), frozenset(), True,
                        "Always 0: a toy for the tests.", "none")
    monkeypatch.setitem(MEASURES, blind.name, blind)
    with pytest.raises(RepresentationError, match="no unrelated baseline"):
        unrelated_baseline(np.random.default_rng(1).normal(size=(10, 3)), blind.name)


def test_readers_of_value_range_take_an_infinite_end(monkeypatch, tmp_path):
    """Colour scales end at the data's largest value, intervals are clipped at 0 only, the identity value is 0,
    the PC-deletion sweep reads its dissimilarity against the noise baseline, and the PNG export draws."""
    from cka_core.io import export
    from cka_core.pitfalls import sensitivity
    from cka_core.stats import resampling, sanity

    name = _unbounded_toy(monkeypatch)
    rng = np.random.default_rng(2)
    layers = {"a": rng.normal(size=(30, 4)), "b": rng.normal(size=(30, 3))}
    values = similarity_matrix(layers, layers, measure=name)
    assert colour_range(name, values) == (0.0, pytest.approx(values.max()))
    assert colour_range(name, np.full((2, 2), np.nan)) == (0.0, 1.0)
    assert colour_range("procrustes", values) == pytest.approx((0.0, math.pi / 2))

    boot = resampling.bootstrap(layers, measure=name, n_resamples=20, seed=0)
    assert np.all(boot.low >= 0) and np.all(np.isfinite(boot.high)) and np.all(boot.high >= boot.low)

    assert sanity.identity_value(name) == 0.0
    assert sanity.self_diagonal(layers, measure=name).status == sanity.PASS
    # A distance of 2 pi from identical must not read as identical (1 - cos would say so).
    assert sanity._deviation(np.array([2 * math.pi]), name)[0] > 1

    with pytest.raises(RepresentationError, match="no upper bound"):
        sensitivity.dissimilarity(name, 1.0)
    sweep = sensitivity.deletion_sweep(layers["a"], lambda edited: 0.0, measures=(name, "procrustes"), options={})
    assert set(sweep.unrelated) == {name}
    shares = sweep.dissimilarities(name)
    assert np.all((shares > 0) & (shares < 1.5))
    assert shares == pytest.approx([sensitivity.dissimilarity(name, d.values[name], sweep.unrelated[name])
                                    for d in sweep.deletions])

    doc = {"values": values.tolist(), "layers_a": ["a", "b"], "layers_b": ["a", "b"], "measure": name,
           "n_examples": 30}
    export.write_png(doc, tmp_path / "heat.png")
    assert (tmp_path / "heat.png").stat().st_size > 0


def test_similarities_of_views_give_each_measures_own_value_and_its_refusal():
    """Shared views (the Invariances page prepares X once for every measure and transformation) change no
    value: each measure reads as through similarity(); one that cannot apply is its message, the rest go on."""
    from cka_core.measures import parameter_defaults, similarities_of_views, similarity
    from cka_core.measures.view import LayerView

    rng = np.random.default_rng(11)
    X = rng.standard_normal((9, 6))
    Y = X @ rng.standard_normal((6, 5)) + 0.3 * rng.standard_normal((9, 5))
    names = [m for m, info in MEASURES.items() if not info.on_outputs and not info.needs_inputs]
    vx = LayerView.of(X, "X")
    values, errors = similarities_of_views(vx, LayerView.of(Y, "Y"), names)
    assert "jaccard_knn" in errors and "k" in errors["jaccard_knn"]  # k = 10 neighbours of 9 examples
    for name in names:
        try:
            expected = similarity(X, Y, name, **parameter_defaults(name))
        except RepresentationError as error:
            assert errors[name] == str(error)
            continue
        assert values[name] == pytest.approx(expected, abs=1e-10), name
    again, _ = similarities_of_views(vx, vx, ["linear_cka", "rsa"])
    assert again == {"linear_cka": pytest.approx(1.0), "rsa": pytest.approx(1.0)}
