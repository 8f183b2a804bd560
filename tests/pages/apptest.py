"""Shared AppTest helpers for the page tests."""
from __future__ import annotations

import re
from pathlib import Path

from streamlit.testing.v1 import AppTest

import sample_models

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


def finetuned(at: AppTest, architecture: str, target: str = "identity") -> str:
    """Register ``architecture``'s zoo weights in the session of ``at`` as if fine-tuned on the
    Manipulate page (as ui.sources.models keeps them); returns the network's name. Run the app after it."""
    from ui.sources import models

    name, entry = models.finetuned_entry(sample_models.load(architecture), architecture, target, 0.97)
    at.session_state[models.FINETUNED_STATE] = {**at.session_state[models.FINETUNED_STATE], name: entry} \
        if models.FINETUNED_STATE in at.session_state else {name: entry}
    return name


def takeaway_text(at: AppTest) -> str:
    """The page's one takeaway box (markdown)."""
    [box] = [m.value for m in at.markdown if "**Takeaway.**" in m.value]
    return box


def number_after(text: str, prefix: str) -> float:
    """The number written right after ``prefix`` in ``text``."""
    match = re.search(re.escape(prefix) + r"\s*(-?[0-9.]+(?:e[-+][0-9]+)?)", text)
    assert match, f"{prefix!r} not in {text!r}"
    return float(match.group(1).rstrip("."))
