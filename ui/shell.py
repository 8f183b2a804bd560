"""Keep every page inside app.py's frame (navigation + shared sidebar).

Streamlit decides once per server process whether an app with a ``pages/`` folder uses the
legacy multipage mode, and only switches to ``st.navigation`` after app.py has run once. A
deep link into a page of a freshly started server would therefore run the page file alone,
without the shared sidebar. Each page calls ``inside_app_frame()`` first: in that one case it
switches the legacy mode off and reruns, so app.py draws the frame and then the page.
"""
from __future__ import annotations

import streamlit as st
from streamlit.runtime.pages_manager import PagesManager


def inside_app_frame() -> None:
    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        st.rerun()
