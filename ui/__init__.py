"""Streamlit UI layer: cached wrappers around the core, figure builders, widget groups.

Pages import from here; ``cka_core`` and ``sample_models`` never import streamlit.
"""
