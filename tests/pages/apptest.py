"""Shared AppTest helpers for the page tests."""
from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[2]


def open_page(page: str, query: dict[str, str] | None = None) -> AppTest:
    """Run app.py, then switch to ``page`` (e.g. "pages/outliers.py"), optionally with URL params."""
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    for key, value in (query or {}).items():
        at.query_params[key] = value
    at.switch_page(page).run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def metric(at: AppTest, label: str) -> float:
    """The numeric value of the metric whose label starts with ``label`` ('97.2%' -> 0.972)."""
    for m in at.metric:
        if m.label.startswith(label):
            text = m.value.replace(",", "")
            return float(text[:-1]) / 100 if text.endswith("%") else float(text)
    raise AssertionError(f"no metric {label!r}; have {[m.label for m in at.metric]}")


def rerun(at) -> AppTest:
    """Run the app after widget changes (accepts the AppTest or a widget of it) and check it."""
    at = at.run()
    assert not at.exception, [e.message for e in at.exception]
    return at
