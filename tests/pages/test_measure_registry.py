"""Adding a measure is one module plus one registry entry: a toy measure registered at run time
appears in the Compare page's Measure box with its parameter's control, both read from its
declaration, and the heatmap is the measure at the control's value."""
from __future__ import annotations

import numpy as np
from cka_core.measures import similarity_matrix

from tests import toy_measure

from .apptest import open_page, rerun
from .test_compare import _heatmap, _zoo

PAGE = "pages/compare.py"


def test_a_registered_measure_gets_its_control_on_the_compare_page(monkeypatch):
    from ui.compare import controls

    toy = toy_measure.register(monkeypatch)
    assert controls.measure_choices()[toy.name] == toy.label
    at = open_page(PAGE)
    box = at.selectbox(key="cmp_measure")
    assert toy.label in box.options
    at = rerun(box.set_value(toy.label))
    power = toy_measure.POWER
    slider = at.slider(key="cmp_power")
    assert (slider.label, slider.value, slider.min, slider.max, slider.step) == \
        (power.label, power.default, power.low, power.high, power.step)
    assert slider.help == power.help
    a, b = _zoo("mlp_seed0"), _zoo("mlp_seed1")
    np.testing.assert_allclose(_heatmap(at)[0], similarity_matrix(a, b, measure=toy.name, power=power.default),
                               atol=1e-6)
    at = rerun(slider.set_value(3.0))
    np.testing.assert_allclose(_heatmap(at)[0], similarity_matrix(a, b, measure=toy.name, power=3.0), atol=1e-6)
    assert not at.error, [e.value for e in at.error]


def test_a_registered_measures_parameter_is_bound_to_the_url(monkeypatch):
    toy = toy_measure.register(monkeypatch)
    at = open_page(PAGE, {"cmp_measure": toy.label, "cmp_power": "1.5"})
    assert at.selectbox(key="cmp_measure").value == toy.label
    assert at.slider(key="cmp_power").value == 1.5
    assert not at.error, [e.value for e in at.error]
