"""The frame around every page: an exception inside a page becomes a short message with the app
still usable, and a link whose parameters Streamlit drops or clamps says so."""
from __future__ import annotations

import pytest

from cka_core import RepresentationError
from tests.pages.apptest import metric, open_page, rerun
from ui.pitfalls import translation

PAGE = "pages/outliers.py"


def _fail(*args, **kwargs):
    raise ZeroDivisionError("division by zero")


def test_an_exception_in_a_page_becomes_a_short_message_and_the_app_stays_usable(monkeypatch):
    monkeypatch.setattr(translation, "terms", _fail)
    at = open_page(PAGE)
    assert not at.exception
    [error] = at.error
    assert "Outliers page hit an unexpected error (ZeroDivisionError)" in error.value
    assert "reference `" in error.value and "Traceback" not in error.value
    assert at.sidebar.radio(key="src_kind").value == "Sample model"  # the frame was drawn

    at.switch_page("pages/invariances.py")  # another page works while this one is broken
    rerun(at)
    assert not at.error and at.metric

    monkeypatch.undo()
    at.switch_page(PAGE)
    rerun(at)
    assert not at.error
    assert 0.0 <= metric(at, "Linear CKA") <= 1.0


def test_an_exception_in_a_live_section_stays_inside_that_section(monkeypatch):
    """A live_section reruns alone, without app.py's boundary, so it carries its own: the rest of
    the page (here the table above it and the Theory box below) is still drawn."""
    import ui.pitfalls.invariances

    monkeypatch.setattr(ui.pitfalls.invariances, "panel_view", _fail)
    at = open_page("pages/invariances.py")
    assert not at.exception
    [error] = at.error
    assert error.value.startswith("The single-transformation panel hit an unexpected error (ZeroDivisionError)")
    assert [e.label for e in at.expander][-1] == "Theory" and at.selectbox(key="inv_transform")
    assert "inv_table" in " ".join(chart.proto.id for chart in at.get("plotly_chart"))


def test_a_representation_error_in_a_page_shows_its_own_message(monkeypatch):
    def refuse(*args, **kwargs):
        raise RepresentationError("X has 3 rows; upload at least 4 examples.")

    monkeypatch.setattr(translation, "terms", refuse)
    at = open_page(PAGE)
    assert [e.value for e in at.error] == ["X has 3 rows; upload at least 4 examples."]


def _notices(at) -> str:
    return "\n".join(w.value for w in at.warning if "The link's settings" in w.value)


@pytest.mark.parametrize(("query", "dropped"), [
    ({"out_log_c": "abc"}, ["`out_log_c=abc` is not a valid value", "set to `0.0`"]),          # wrong type
    ({"out_log_c": "1e400"}, ["`out_log_c=1e400` is not a valid value"]),                    # huge
    ({"out_fraction": "-5"}, ["`out_fraction=-5` is not a valid value", "set to `0.1`"]),     # out of range
    ({"out_what": "Everything"}, ["`out_what=Everything`", "set to `One point`"]),           # not an option
    ({"src_kind": "Telepathy"}, ["`src_kind=Telepathy`", "set to `Sample model`"]),          # sidebar control
    ({"no_such_control": "1"}, ["`no_such_control=1` matches no control"]),                  # unknown key
    ({"out_log_c": "x" * 5000}, ["`out_log_c=" + "x" * 39 + "…`"]),                           # shown shortened
])
def test_a_bad_link_parameter_falls_back_to_the_default_with_a_notice(query, dropped):
    at = open_page(PAGE, query)
    notices = _notices(at)
    for text in dropped:
        assert text in notices
    assert 0.0 <= metric(at, "Linear CKA") <= 1.0  # the page drew with the defaults


def test_valid_link_parameters_are_applied_without_a_notice():
    query = {"out_log_c": "2.5", "out_what": "Random fraction", "out_fraction": "0.1", "out_seed": "3"}
    at = open_page(PAGE, query)  # out_fraction=0.1 is the default: Streamlit drops it from the URL, rightly
    assert not _notices(at)
    assert at.slider(key="out_log_c").value == 2.5 and at.slider(key="out_seed").value == 3


def test_notices_are_for_the_opening_link_only_and_can_be_dismissed():
    at = open_page(PAGE, {"out_log_c": "abc", "out_seed": "3"})
    assert "out_log_c=abc" in _notices(at) and "out_seed" not in _notices(at)
    rerun(at.slider(key="out_seed").set_value(0))  # a later move to the default is not a bad link
    assert "out_seed" not in _notices(at)
    rerun(at.button(key="url_notices_dismiss").click())
    assert not _notices(at)
    at.switch_page("pages/invariances.py")
    rerun(at)
    assert not _notices(at)
