"""Reusable widget groups: page header, theory box, log slider, metric rows."""
from __future__ import annotations

import streamlit as st


def page_header(title: str, what_it_shows: str):
    """Title, the slot for the page's takeaway, and the 2-3 sentence 'what this shows' every page
    starts with. Returns the slot: the takeaway is written once the page knows its numbers."""
    st.title(title)
    slot = st.container(key="takeaway")
    st.markdown(what_it_shows)
    return slot


def takeaway(slot, sentence: str) -> None:
    """The page's one lesson in one sentence, its numbers those of the current settings, at the top
    (a browser test checks that it and the page's proof, ``st.container(key="proof")``, show
    without scrolling)."""
    slot.container(border=True).markdown(f":material/lightbulb: **Takeaway.** {sentence}")


def wide_figure():
    """A container for one figure that cannot be read narrower than about 720 px (a labelled table
    of cells): on a phone it keeps that width and scrolls sideways (the CSS is in app.py)."""
    return st.container(key="wide_figure")


def theory(latex_blocks: list[str], text: str, sources: list[str]) -> None:
    """The Theory expander: the result in LaTeX, a short explanation and where it comes from
    (markdown: papers and sections of docs/theory.md as links, see :mod:`ui.frame.references`)."""
    with st.expander("Theory", expanded=False):
        st.markdown(text)
        for block in latex_blocks:
            st.latex(block)
        st.caption("Sources: " + "; ".join(sources) + ".")


def log_slider(label: str, *, key: str, low: float, high: float, default: float, help: str) -> float:
    """A slider over log10 of a positive quantity; returns the quantity itself."""
    exponent = st.slider(f"{label} (log₁₀)", low, high, default, step=0.05, key=key, help=help,
                         bind="query-params", format="%.2f")
    return float(10.0**exponent)


def fmt(value: float | None, digits: int = 4) -> str:
    """Numbers for st.metric: fixed decimals, '—' where undefined."""
    return "—" if value is None else f"{value:.{digits}f}"


def percent(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f}%"


def choose(widget, label: str, options: dict[str, str], *, key: str, default: str | None = None, **kwargs) -> str:
    """A radio or selectbox over readable labels that returns the option's code.

    The labels themselves are the widget's options, so a URL bound to the widget reads
    ``?key=Random+fraction`` and restores it (Streamlit matches bound values on displayed text).
    """
    labels = list(options.values())
    index = labels.index(options[default]) if default is not None else 0
    chosen = widget(label, labels, index=index, key=key, bind="query-params", **kwargs)
    return next(code for code, text in options.items() if text == chosen)


def points_delta(now: float | None, before: float | None) -> str | None:
    """An accuracy change in percentage points for st.metric's delta ('+1.2 pts'), None if unknown."""
    return None if now is None or before is None else f"{100 * (now - before):+.1f} pts"


def change(value: float, reference: float, digits: int = 4, style: str = "f") -> str:
    """``value - reference`` with its sign, for st.metric's delta (``style`` "e" for powers of ten)."""
    return f"{value - reference:+.{digits}{style}}"


def steady_delta(now: float, before: float, *, digits: int, unit: str = "", scale: float = 1.0) -> dict:
    """st.metric delta arguments for ``scale * (now - before)``: grey and arrow-less when the change
    rounds to zero."""
    rounded = round(scale * (now - before), digits) + 0.0          # + 0.0 turns -0.0 into 0.0
    if rounded == 0:
        return dict(delta=f"±{0:.{digits}f}{unit} (unchanged)", delta_color="off", delta_arrow="off")
    return dict(delta=f"{rounded:+.{digits}f}{unit}")


def points_change(now: float, before: float) -> float:
    """An accuracy change in percentage points, to the 0.1 shown (0.0, never -0.0, when it rounds away)."""
    return round(100 * (now - before), 1) + 0.0


def points_steady_delta(now: float | None, before: float | None) -> dict:
    """:func:`steady_delta` of an accuracy change, in percentage points (no delta if either is unknown)."""
    if now is None or before is None:
        return {}
    return steady_delta(now, before, digits=1, unit=" pts", scale=100.0)


def in_rows(items: list, per_row: int) -> list[list]:
    """``items`` cut into rows of ``per_row`` (for grids of metrics or cards)."""
    return [items[start:start + per_row] for start in range(0, len(items), per_row)]
