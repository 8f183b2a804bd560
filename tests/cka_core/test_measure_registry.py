"""Each measure is declared once, in the registry: its parameters (keyword, default, range, texts)
drive the command line's flags, the defaults used elsewhere and the checks on misplaced flags; a new
measure needs one module plus one registry entry."""
from __future__ import annotations

import numpy as np
import pytest

from cka_core.cli import compare as cli
from cka_core.measures import MEASURES, parameter_defaults, similarity, similarity_matrix
from cka_core.measures.cka import rbf_cka

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
    assert sum(len(info.parameters) for info in MEASURES.values()) == 2


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
