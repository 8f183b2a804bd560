"""CKA Pitfalls Explorer: entry point (page config, navigation, shared sidebar)."""
from __future__ import annotations

import pandas  # noqa: F401 - imported once here: plotly imports it lazily, and two sessions' first figures raced on it
import streamlit as st
import torch
from threadpoolctl import threadpool_limits

from ui.frame import navigation
from ui.frame.shell import (CURRENT_PAGE, check_url_after_first_run, error_boundary, remember_url_at_load, show_url_notices,
                            timed_run)
from ui.sources.sidebar import source_sidebar


def main() -> None:
    # Each rerun works on small matrices; on a shared host extra BLAS/torch threads only spin and fight
    # over the cores (measured 5-20x slower SVDs under load), so every session computes on one thread.
    torch.set_num_threads(1)
    threadpool_limits(limits=1, user_api="blas")

    st.set_page_config(page_title="CKA Pitfalls Explorer", page_icon=":material/explore:", layout="wide")
    # Streamlit's 6rem top padding pushes each page's proof below the fold at 1400 x 900.
    st.html("<style>[data-testid='stMainBlockContainer']{padding-top:2.5rem}"
            # On a phone a figure too wide to read when squeezed (ui.frame.widgets.wide_figure) scrolls sideways.
            "@media (max-width: 640px){.st-key-wide_figure{overflow-x:auto}"
            ".st-key-wide_figure [data-testid='stElementContainer']{min-width:720px}}</style>")

    pages = {group: [st.Page(page.path, title=page.title, icon=page.icon, url_path=page.url_path or None,
                             default=not page.url_path)
                     for page in navigation.PAGES if page.group == group]
             for group in navigation.GROUPS}

    with timed_run() as run:  # logged only when CKA_RUN_LOG is set (python -m benchmarks.load_test)
        remember_url_at_load()
        page = st.navigation(pages, expanded=True)  # every page in view: past twelve, Streamlit hides some
        run["page"] = st.session_state[CURRENT_PAGE] = page.url_path
        notice_area = st.container()  # above the page; filled once the run has seen what the URL asked for
        with st.sidebar, error_boundary("The sidebar"):
            source_sidebar(in_use=navigation.by_url_path(page.url_path).uses_source)
        with error_boundary(f"The {page.title} page"):
            page.run()
        check_url_after_first_run()
        with notice_area:
            show_url_notices()


# Streamlit runs this file as __main__ on every rerun; a worker process of ui.jobs.POOL (spawned, so it
# re-imports the main module as __mp_main__) must not run the app.
if __name__ == "__main__":
    main()
