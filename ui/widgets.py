"""Reusable widget groups: page header, theory box, log slider, metric rows."""
from __future__ import annotations

import streamlit as st


def page_header(title: str, what_it_shows: str) -> None:
    """Title and the 2-3 sentence 'what this shows' every page starts with."""
    st.title(title)
    st.markdown(what_it_shows)


def theory(latex_blocks: list[str], text: str, source: str) -> None:
    """The Theory expander: the result in LaTeX, a short explanation and where it comes from."""
    with st.expander("Theory", expanded=False):
        st.markdown(text)
        for block in latex_blocks:
            st.latex(block)
        st.caption(f"Source: {source}")


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
