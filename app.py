"""CKA Pitfalls Explorer: entry point (page config, navigation, shared sidebar)."""
from __future__ import annotations

import streamlit as st
import torch
from threadpoolctl import threadpool_limits

from ui.shell import check_url_after_first_run, error_boundary, remember_url_at_load, show_url_notices
from ui.sidebar import source_sidebar

# Each rerun works on small matrices; on a shared host extra BLAS/torch threads only spin and fight
# over the cores (measured 5-20x slower SVDs under load), so every session computes on one thread.
torch.set_num_threads(1)
threadpool_limits(limits=1, user_api="blas")

st.set_page_config(page_title="CKA Pitfalls Explorer", page_icon=":material/explore:", layout="wide")

PAGES = {
    "Learn": [
        st.Page("pages/home.py", title="Home", icon=":material/home:", default=True),
        st.Page("pages/estimators.py", title="Estimators", icon=":material/functions:", url_path="estimators"),
    ],
    "Compare": [
        st.Page("pages/compare.py", title="Compare models", icon=":material/compare:", url_path="compare"),
    ],
    "Experiment": [
        st.Page("pages/outliers.py", title="Outliers", icon=":material/scatter_plot:", url_path="outliers"),
        st.Page("pages/invariances.py", title="Invariances", icon=":material/sync_alt:", url_path="invariances"),
        st.Page("pages/separability.py", title="Separability", icon=":material/call_split:", url_path="separability"),
        st.Page("pages/function_preserving.py", title="Function-preserving edits", icon=":material/tune:",
                url_path="function_preserving"),
        st.Page("pages/manipulate.py", title="Manipulate", icon=":material/model_training:", url_path="manipulate"),
        st.Page("pages/neural_diversity.py", title="Neural diversity", icon=":material/neurology:",
                url_path="neural_diversity"),
    ],
}

remember_url_at_load()
page = st.navigation(PAGES)
notice_area = st.container()  # above the page; filled once the run has seen what the URL asked for
with st.sidebar, error_boundary("The sidebar"):
    source_sidebar()
with error_boundary(f"The {page.title} page"):
    page.run()
check_url_after_first_run()
with notice_area:
    show_url_notices()
