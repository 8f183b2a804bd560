"""The shared sidebar: which representation every page works on.

Drawn by app.py on every page, so its widgets keep their values across pages; all of them are
bound to the URL, so a link restores the source along with the page's own controls.
"""
from __future__ import annotations

import streamlit as st

from cka_core import RepresentationError
from cka_core.io import activation_layers

from ..frame import navigation
from ..frame.widgets import choose
from . import data, models

KINDS = {"model": "Sample model", "synthetic": "Synthetic set", "upload": "Uploaded file"}
DEFAULT_NETWORK, DEFAULT_LAYER = "mlp_seed0", "hidden3"


def default_source() -> data.Source:
    return data.model_source(DEFAULT_NETWORK, DEFAULT_LAYER)


def _model_source() -> data.Source:
    names = models.names(loaded=True)
    name = st.selectbox("Model", names, index=names.index(DEFAULT_NETWORK), key="src_model",
                        bind="query-params", help="Networks trained on scikit-learn's digits, any network fine-tuned "
                                                  "on the Manipulate page in this session, and your own models "
                                                  "loaded on the Compare page.")
    network = models.get(name)
    st.caption(network.description)
    layers, constant = models.varying_layers(name), models.constant_layers(name)
    if constant:  # an RNN's first steps read only pixels that are blank in every digit
        st.caption(f"Left out, the same for every test digit (CKA is 0/0 there): {', '.join(constant)}.")
    default_layer = DEFAULT_LAYER if DEFAULT_LAYER in layers else layers[0]
    layer = st.selectbox("Layer", layers, index=layers.index(default_layer), key=f"src_layer_{network.architecture}",
                         bind="query-params",
                         help=f"Activations of this layer on {models.inputs_description(name)}.")
    return data.model_source(name, layer)


def _synthetic_source() -> data.Source:
    name = choose(st.selectbox, "Set", data.SYNTHETIC_SETS, key="src_synth")
    if name == "gaussian_clusters":
        classes = st.slider("Classes", 2, 10, 3, key="src_classes", bind="query-params")
        dim = st.slider("Dimension", 2, 100, 10, key="src_dim", bind="query-params")
        separation = st.slider("Separation", 0.5, 10.0, 3.0, step=0.5, key="src_sep", bind="query-params",
                               help="Distance between class means, in units of the within-class spread.")
    else:
        classes = 2
        dim = st.slider("Dimension", 2, 200, 50, key="src_cube_dim", bind="query-params")
        separation = st.slider("Offset along e₁", 0.5, 5.0, 1.1, step=0.1, key="src_cube_offset",
                               bind="query-params", help="Davari et al. use 1.1: the cubes touch but do not overlap.")
    return data.Source("synthetic", (name, int(classes), int(dim), float(separation)))


def _upload_source() -> tuple[data.Source, bytes] | None:
    file = st.file_uploader(
        "Representation file", type=["npy", "npz", "pt", "pth", "safetensors", "csv"], key="src_upload",
        help="One row per example. In an .npz, an array named 'labels' or 'y' gives class labels.",
    )
    if file is None:
        st.info("Upload a file to use it; until then the default sample model is used.")
        return None
    raw = file.getvalue()
    known = st.session_state.get("_src_upload_digest")  # hashing 50 MB costs ~0.1 s: once per uploaded file
    digest = known[1] if known is not None and known[0] == file.file_id else data.digest(raw)
    st.session_state["_src_upload_digest"] = (file.file_id, digest)
    arrays = data.uploaded_arrays(digest, file.name, raw)
    candidates = list(activation_layers(arrays, file.name))
    array = st.selectbox("Array", candidates, key="src_array", bind="query-params")
    if arrays[array].ndim > 2:
        st.caption(f"{array} has shape {arrays[array].shape}: flattened to one vector per example.")
    return data.Source("upload", (digest, file.name, array)), raw


def source_sidebar(in_use: bool) -> None:
    """Draw the source chooser and store the chosen source in session state. On a page that does
    not use it (``in_use`` False) it sits folded in an expander that says so: still drawn, so its
    widgets keep their values (and the URL) for the pages that do."""
    with st.sidebar:
        if in_use:
            st.header("Representation")
            _source_controls()
            return
        with st.expander("Representation · not used on this page", icon=":material/visibility_off:"):
            users = [page.title for page in navigation.PAGES if page.uses_source]
            st.caption(f"The representation that {', '.join(users[:-1])} and {users[-1]} work on. This page picks "
                       "its own networks or data.")
            _source_controls()


def _source_controls() -> None:
    kind = choose(st.radio, "Source", KINDS, key="src_kind", horizontal=True,
                  help="What the pitfall pages manipulate.")
    upload = None
    try:
        if kind == "model":
            source = _model_source()
        elif kind == "synthetic":
            source = _synthetic_source()
        else:
            chosen = _upload_source()
            source, upload = chosen if chosen is not None else (default_source(), None)
        note = data.representation(source, upload).note  # validate now, so errors show here
        if note:
            st.warning(note, icon=":material/label_off:")
    except (RepresentationError, ValueError) as error:  # sample_models reports bad settings as ValueError
        st.error(f"{error}")
        source, upload = default_source(), None
    st.session_state["source"] = source


def current_representation() -> data.Representation:
    """The representation chosen in the sidebar (the default sample model if none yet)."""
    source = st.session_state.get("source") or default_source()
    file = st.session_state.get("src_upload") if source.kind == "upload" else None
    return data.representation(source, file.getvalue() if file is not None else None)
