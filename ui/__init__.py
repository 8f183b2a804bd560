"""Streamlit UI layer between the pages and the core: what each page computes (cached on digests
and small descriptors) and draws. ``frame`` is what every page stands in (page list, error
boundary, URL state, widgets, figure styles, references); ``sources`` where data comes from;
``jobs`` work that outlives a script run; ``compare``, ``pitfalls`` and ``neural_diversity`` the
pages' own parts. ``cka_core`` and ``sample_models`` never import streamlit.
"""
