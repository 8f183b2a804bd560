"""Every control is in the URL (README: "a link restores exactly what you see").

For each page, a link is built from a non-default value of every control the page shows with
those settings (the sidebar's too), grown until no new control appears; opening it must apply
every parameter (no notice) and show each control at the link's value. Scenarios fix the few
"mode" controls that decide which other controls exist, so each of those is seen at least once.
A second, static check finds every widget call in pages/ and ui/ and requires ``bind=``, so a
control added later without it fails here even on a page no scenario reaches.
"""
from __future__ import annotations

import ast
import math
from pathlib import Path

import numpy as np
import pytest

from tests.pages.apptest import metric, open_page
from cka_core.pitfalls.transforms import TRANSFORMATIONS
from ui.compare import controls
from ui.frame import navigation, shell
from ui.pitfalls import manipulate

ROOT = Path(__file__).resolve().parents[2]
KINDS = ("selectbox", "radio", "multiselect", "slider", "select_slider", "checkbox", "toggle", "number_input",
         "text_input")
#: Controls a link does not set, and why.
NOT_IN_LINKS = {
    "cmp_a_hub": "a link must not start a download from the Hugging Face Hub",
    "cmp_b_hub": "a link must not start a download from the Hugging Face Hub",
}
#: Widget calls without ``bind=``: buttons act once, files cannot travel in a URL, the Hub id (above),
#: and the custom target grid, which Manipulate writes to the URL itself (``man_grid``).
UNBOUND_CALLS = {"button", "file_uploader", "text_input", "data_editor"}

SAMPLE = "Sample model"
SCENARIOS = {
    "pages/home.py": [{}],
    "pages/theory.py": [{}],
    "pages/estimators.py": [{"src_kind": SAMPLE}],
    "pages/outliers.py": [{"src_kind": SAMPLE}, {"out_what": "Random fraction"}],
    "pages/invariances.py": [{"src_kind": SAMPLE}, {"inv_transform": TRANSFORMATIONS["top_k"].label}],
    "pages/sensitivity.py": [{}],
    "pages/block_structure.py": [{}],
    "pages/separability.py": [{"src_kind": SAMPLE}],
    "pages/confounders.py": [{}],
    "pages/pooling.py": [{}],
    "pages/function_preserving.py": [{"src_kind": SAMPLE}],
    "pages/compare.py": [
        {"cmp_a_kind": SAMPLE, "cmp_b_kind": SAMPLE, "cmp_measure": controls.measure_choices()["linear_cka"],
         "cmp_estimator": controls.ESTIMATORS["minibatch"]},
        {"cmp_a_kind": SAMPLE, "cmp_b_kind": SAMPLE, "cmp_measure": controls.measure_choices()["rbf_cka"]},
    ],
    "pages/manipulate.py": [{"man_target": manipulate.TARGETS["pair"]},
                            {"man_target": manipulate.TARGETS["match"]}],
    "pages/neural_diversity.py": [{"src_kind": SAMPLE}],
    "pages/trust.py": [{}],
}


def _controls(at) -> dict:
    return {w.key: w for kind in KINDS for w in getattr(at, kind) if w.key is not None and w.key not in NOT_IN_LINKS}


def _number(value: float, integer: bool) -> str:
    return str(int(round(value))) if integer else repr(round(float(value), 10))


def _url_value(widget) -> str | list[str]:
    """The control's value as a URL spells it (options by their displayed text)."""
    kind = widget.type
    if kind in ("selectbox", "radio"):
        return widget.options[widget.index]
    if kind == "multiselect":
        return [widget.options[i] for i in widget.indices]
    if kind == "select_slider":
        return widget.format_func(widget.value)
    if kind in ("checkbox", "toggle"):
        return str(widget.value).lower()
    if kind in ("slider", "number_input"):
        if isinstance(widget.value, tuple):  # a range slider: one parameter per end
            return [_number(v, isinstance(v, int)) for v in widget.value]
        return _number(widget.value, isinstance(widget.value, int))
    return str(widget.value)


def _other_value(widget) -> str | list[str] | None:
    """A valid value other than the current one, as the URL spells it (None if there is none)."""
    kind = widget.type
    if kind in ("selectbox", "radio"):
        return widget.options[(widget.index + 1) % len(widget.options)] if len(widget.options) > 1 else None
    if kind == "multiselect":
        chosen = [widget.options[i] for i in widget.indices]
        if len(chosen) >= 2:
            return chosen[:-1]
        spare = [o for o in widget.options if o not in chosen]
        return chosen + spare[:1] if spare else None
    if kind == "select_slider":
        index = widget.options.index(widget.format_func(widget.value))
        return widget.options[index - 1 if index + 1 == len(widget.options) else index + 1]
    if kind in ("checkbox", "toggle"):
        return str(not widget.value).lower()
    if kind == "slider" and isinstance(widget.value, tuple):  # a range slider: narrow it by one step
        low, high = widget.value
        if high - widget.step > low:
            high -= widget.step
        elif low + widget.step < high:
            low += widget.step
        else:
            return None
        return [_number(v, isinstance(widget.value[0], int)) for v in (low, high)]
    if kind in ("slider", "number_input"):
        step, low, high = widget.step, widget.min, widget.max
        value = widget.value + step if high is None or widget.value + step <= high else widget.value - step
        if low is not None and value < low:
            return None
        return _number(value, isinstance(widget.value, int))
    return None


def _same(url: str | list[str], shown: str | list[str]) -> bool:
    if isinstance(url, list) or isinstance(shown, list):
        return len(url) == len(shown) and all(_same(u, v) for u, v in zip(url, shown))
    try:
        return math.isclose(float(url), float(shown), rel_tol=1e-9, abs_tol=1e-9)
    except ValueError:
        return url == shown


def _link_from_every_control(page: str, seed: dict) -> tuple[dict, object]:
    """Grow a link from ``seed`` until it sets every control shown; returns (params, app opened with it)."""
    params = dict(seed)
    for _ in range(8):
        at = open_page(page, params)
        shown = _controls(at)
        # a choice can hide a control, or make another's value invalid (Confounders: the new reference was
        # among the partners): such a value is derived again from what the page shows with the others
        kept = {k: v for k, v in params.items() if k in seed or (k in shown and _same(v, _url_value(shown[k])))}
        new = {k: v for k, w in shown.items() if k not in kept and (v := _other_value(w)) is not None}
        if not new and kept == params:
            return params, at
        params = {**kept, **new}
    raise AssertionError(f"{page}: the set of controls did not settle; last link {params}")


CASES = [(page, i) for page, seeds in SCENARIOS.items() for i in range(len(seeds))]


@pytest.mark.parametrize(("page", "scenario"), CASES, ids=[f"{Path(p).stem}-{i}" for p, i in CASES])
def test_a_link_with_every_control_changed_restores_them_all(page, scenario):
    params, at = _link_from_every_control(page, SCENARIOS[page][scenario])
    assert not at.session_state[shell.URL_NOTICES], at.session_state[shell.URL_NOTICES]
    shown = _controls(at)
    assert set(params) <= set(shown)
    wrong = {k: (v, _url_value(shown[k])) for k, v in params.items() if not _same(v, _url_value(shown[k]))}
    assert not wrong, f"link value vs shown value: {wrong}"
    unbound = [k for k, w in shown.items() if w.proto.query_param_key != k]
    assert not unbound, f"controls not bound to the URL: {unbound}"
    changed = [k for k in params if k not in SCENARIOS[page][scenario]]
    assert page in ("pages/home.py", "pages/theory.py") or len(changed) >= 3  # the link did change controls


def test_every_page_has_a_scenario():
    assert set(SCENARIOS) == {page.path for page in navigation.PAGES}


def _widget_calls(path: Path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in (
                *KINDS, *UNBOUND_CALLS):
            yield node


def test_every_widget_call_binds_its_control_to_the_url():
    sources = sorted((ROOT / "pages").glob("*.py")) + sorted((ROOT / "ui").rglob("*.py"))
    calls = [(path, node) for path in sources for node in _widget_calls(path)]
    assert len(calls) > 60  # the walk does find the app's widgets
    unbound = [f"{path.relative_to(ROOT)}:{node.lineno} st.{node.func.attr}" for path, node in calls
               if node.func.attr not in UNBOUND_CALLS and not any(k.arg == "bind" for k in node.keywords)]
    assert not unbound, unbound
    # The URL check (ui/frame/shell.py) compares a link's text with the value the control returns, so a
    # bound selectbox or radio shows its values as they are (readable labels come from ui.frame.widgets.choose).
    formatted = [f"{path.relative_to(ROOT)}:{node.lineno}" for path, node in calls
                 if node.func.attr in ("selectbox", "radio") and any(k.arg == "format_func" for k in node.keywords)]
    assert not formatted, formatted


def test_the_custom_target_grid_travels_in_its_own_parameter():
    grid = manipulate.decode_grid("0.10_0.20_0.30", 3)
    assert grid.tolist() == [[1.0, 0.1, 0.2], [0.1, 1.0, 0.3], [0.2, 0.3, 1.0]]
    assert manipulate.encode_grid(grid) == "0.10_0.20_0.30"
    assert manipulate.decode_grid("0.10_0.20", 3) is None      # wrong size
    assert manipulate.decode_grid("0.10_0.20_1.5", 3) is None  # outside [0, 1]
    assert manipulate.decode_grid("0.10_x_0.30", 3) is None
    at = open_page("pages/manipulate.py", {"man_target": manipulate.TARGETS["custom"],
                                           "man_grid": "_".join(["0.50"] * 15)})
    assert not at.session_state[shell.URL_NOTICES]
    [start] = at.session_state["_man_grid_start"].values()  # what the grid editor shows
    assert start.shape == (6, 6) and np.all(start[~np.eye(6, dtype=bool)] == 0.5)
    assert metric(at, "Mean |M − target| now") > 0.1         # the target is the link's, not the current map
