"""CKA Pitfalls Explorer: entry point (page config, navigation, shared sidebar)."""
from __future__ import annotations

import streamlit as st
import torch

from ui.sidebar import source_sidebar

torch.set_num_threads(max(1, min(2, torch.get_num_threads())))  # small hosts: no oversubscription

st.set_page_config(page_title="CKA Pitfalls Explorer", page_icon="🧭", layout="wide")

PAGES = {
    "Learn": [
        st.Page("pages/home.py", title="Home", icon="🏠", default=True),
    ],
    "Experiment": [
        st.Page("pages/outliers.py", title="Outliers", icon="🎯", url_path="outliers"),
    ],
}

page = st.navigation(PAGES)
source_sidebar()
page.run()
