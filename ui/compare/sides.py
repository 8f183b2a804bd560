"""The two sides of a comparison: where each side's layers come from (a sample model, your own
model, uploaded files, a file named at launch), checked and flattened to read-only (n, d) rows.

Arrays never enter a cache key: every cached function takes content digests and layer names as
its key and the arrays with a leading underscore. Uploads are parsed per session
(``data.uploaded_arrays``); registered networks (``ui.sources.models``) and launch files are shared read-only.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import streamlit as st

from cka_core import RepresentationError
from cka_core.io import SUPPORTED, activation_layers, load_representations
from cka_core.stats import sanity

from ..frame.widgets import choose
from ..sources import data, models
from ..sources import own_models as own
from ..sources.arrays import readonly, readonly_rows
from ..sources.launch import launch_files

MIN_EXAMPLES = 4  # the debiased estimators need 4; fewer examples say nothing anyway
MAX_INPUT_VALUES = 2**25  # inputs regressed out by dCKA as one float64 matrix (256 MiB); larger: a layer instead

SOURCE_KINDS = {"network": "Sample model", "own": "Your model", "upload": "Upload files", "launch": "Launch file"}


@dataclass(frozen=True)
class Side:
    """One side of the comparison: named (n, d) layers, read-only, plus where they came from."""

    name: str  # "A" or "B"
    label: str
    key: str  # names the content (a network's registry key, or a digest of the files) and the chosen layers
    layers: dict = field(repr=False)
    shapes: dict = field(repr=False)  # per-example shape before flattening
    model_name: str | None  # the registered network it comes from, if any
    source: dict  # what an export records about the source
    inputs: np.ndarray | None = field(default=None, repr=False, compare=False)  # (n, features): what the rows read
    inputs_about: str = ""  # what ``inputs`` are, for the regress-out choice

    @property
    def n(self) -> int:
        return next(iter(self.layers.values())).shape[0]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.layers)


def url_scope(side: Side) -> str:
    """A short, readable name for a side's content, used in widget keys and so in the URL
    parameters of per-content choices (``cmp_a_layers_mlp_seed0``): a registered network's name,
    else the first 8 hex digits of the files' digest. A new scope starts from the defaults."""
    if side.model_name is not None:
        return re.sub(r"[^0-9A-Za-z]+", "_", side.model_name).strip("_")
    return side.key[:8]


def upload_limit_bytes() -> int:
    """The per-file limit: the server's ``server.maxUploadSize`` (MB)."""
    return int(st.get_option("server.maxUploadSize")) * 1024 * 1024


def network_side(side: str, name: str) -> Side:
    """A registered network's layers on the digits test split."""
    layers = models.activations(name)["test"]
    return Side(side, name, models.get(name).key, dict(layers), models.layer_shapes(name), name,
                {"kind": "sample model" if models.get(name).kind == models.ZOO else "fine-tuned network",
                 "model": name, "split": "digits test split", "n_examples": int(next(iter(layers.values())).shape[0])},
                models.digits().X_test, "the digits' pixels")


@st.cache_resource(max_entries=4, show_spinner="Reading the launch file…")
def _launch_arrays(path: str, mtime: float, size: int) -> tuple[str, dict[str, np.ndarray]]:
    """A file named at launch (``--reps``), read once per (path, mtime, size); shared read-only."""
    raw = Path(path).read_bytes()
    return data.digest(raw), {k: readonly(v) for k, v in load_representations(raw, Path(path).name).items()}


def _combine(side: str, files: list[tuple[str, str, dict[str, np.ndarray]]], source: dict) -> Side:
    """One side from one or more parsed files (filename, digest, arrays): label arrays dropped,
    names prefixed with the file stem when files share names, rows checked, layers flattened."""
    per_file = []
    for filename, digest, arrays in files:
        per_file.append((filename, digest, activation_layers(arrays, filename)))
    all_names = [k for _, _, layers in per_file for k in layers]
    prefix = len(set(all_names)) < len(all_names)
    layers, shapes, counts = {}, {}, {}
    for filename, _, arrays in per_file:
        for name, array in arrays.items():
            label = f"{Path(filename).stem}/{name}" if prefix else name
            counts.setdefault(array.shape[0], []).append(f"{filename}:{name}")
            layers[label] = array
            shapes[label] = tuple(array.shape[1:])
    if len(counts) > 1:
        detail = "; ".join(f"{n} in {', '.join(where[:3])}{'…' if len(where) > 3 else ''}" for n, where in counts.items())
        raise RepresentationError(f"side {side}: the arrays have different numbers of examples (rows): {detail}. "
                                  "Every array must hold one row per example, the same examples in the same order.")
    n = next(iter(counts))
    if n < MIN_EXAMPLES:
        what = files[0][0] if len(files) == 1 else f"side {side}"
        raise RepresentationError(
            f"{what} holds only {n} example(s) (rows); comparing representations needs at least {MIN_EXAMPLES}, "
            "and a few hundred for trustworthy values. Save one row per example, shape (n_examples, n_features); "
            "a single long row is probably a transposed array.")
    flat = {k: readonly_rows(v, dtype=None) for k, v in layers.items()}
    key = hashlib.sha256("|".join(f"{fn}:{dg}" for fn, dg, _ in per_file).encode()).hexdigest()[:24]
    label = " + ".join(fn for fn, _, _ in per_file)
    return Side(side, label, key, flat, shapes, None, {**source, "n_examples": n})


def _uploaded_side(side: str, files) -> Side:
    limit = upload_limit_bytes()
    parsed, described = [], []
    for file in files:
        if file.size > limit:
            raise RepresentationError(
                f"{file.name!r} is {file.size / 2**20:.1f} MB, over this server's {limit / 2**20:.0f} MB upload "
                "limit. Save fewer examples or layers, or pass large files at launch: "
                "`streamlit run app.py -- --reps A.npz B.npz`.")
        raw = file.getvalue()
        digest = data.digest(raw)
        try:
            arrays = data.uploaded_arrays(digest, file.name, raw)
        except RepresentationError:
            raise
        except Exception as error:  # a parser bug must not take the page down
            raise RepresentationError(f"{file.name!r} could not be read ({type(error).__name__}: {error}).") from None
        parsed.append((file.name, digest, arrays))
        described.append({"file": file.name, "sha256": digest, "bytes": file.size})
    return _combine(side, parsed, {"kind": "upload", "files": described})


def _launch_side(side: str, path: str) -> Side:
    file = Path(path)
    if not file.is_file():
        raise RepresentationError(f"{path}: no such file (given with --reps at launch).")
    stat = file.stat()
    digest, arrays = _launch_arrays(str(file.resolve()), stat.st_mtime, stat.st_size)
    return _combine(side, [(file.name, digest, arrays)],
                    {"kind": "launch file", "files": [{"file": str(file), "sha256": digest, "bytes": stat.st_size}]})


@st.cache_resource(max_entries=2, scope="session")
def _inputs_matrix(digest: str, _examples) -> np.ndarray | None:
    """The examples as one read-only matrix, what dCKA regresses out: built once per inputs (not on
    every rerun), and one object for both sides that read them. None for texts, images of different
    sizes, or inputs over MAX_INPUT_VALUES (a layer can be regressed out instead)."""
    values = sum(image.size for image in _examples.images) + sum(v.size for v in _examples.arrays.values())
    if not 0 < values <= MAX_INPUT_VALUES:  # texts have no values
        return None
    try:
        return readonly(_examples.as_matrix())
    except RepresentationError:  # images of different sizes
        return None


def model_side(choice: own.ModelChoice, representations, examples) -> Side:
    """One side from a loaded model's reduced layers on ``examples``."""
    layers = {k: readonly_rows(v) for k, v in representations.layers.items()}
    inputs = _inputs_matrix(examples.digest, examples)
    return Side(choice.side, f"{choice.model.name} ({choice.model.format})",
                f"{choice.key}#{examples.digest[:16]}:{representations.reduction}", layers,
                {k: (v.shape[1],) for k, v in layers.items()}, None,
                {"kind": "your model", **choice.model.describe(),
                 "inputs": {"source": examples.source, "kind": examples.kind, "n_examples": len(examples),
                            "sha256": examples.digest},
                 "reduction": representations.reduction},
                inputs if inputs is not None and inputs.shape[0] == next(iter(layers.values())).shape[0] else None,
                f"the inputs ({examples.source})")


def without_constant_layers(side: Side) -> tuple[Side | None, sanity.Check]:
    """The side without the layers that are constant across its rows (CKA 0/0 there; a warning names
    them), None if nothing is left; and the layer-health check."""
    health = sanity.layer_health(side.layers, side=side.name)
    dropped = health.details["constant"] + health.details["empty"]
    if not dropped:
        return side, health
    kept = [k for k in side.names if k not in dropped]
    if not kept:
        st.error(f"Every layer of side {side.name} is constant across these inputs: nothing to compare. Use more "
                 "varied inputs, or another reduction.", icon=":material/error:")
        return None, health
    st.warning(f"Side {side.name}: left out, constant across these inputs (CKA is 0/0): {', '.join(dropped)}.")
    return replace(side, key=f"{side.key}-{len(dropped)}", layers={k: side.layers[k] for k in kept},
                               shapes={k: side.shapes[k] for k in kept}), health


def inputs_check(a: Side, b: Side) -> sanity.Check | None:
    """Both sides are the user's models: did they read the same examples? (None otherwise.)"""
    inputs = [side.source.get("inputs") for side in (a, b)]
    if not all(inputs):
        return None
    if inputs[0]["sha256"] == inputs[1]["sha256"] and a.source["reduction"] == b.source["reduction"]:
        return sanity.Check("Same inputs", sanity.PASS,
                            f"both models read the same {inputs[0]['n_examples']} examples in the same order "
                            f"({inputs[0]['source']}, SHA-256 {inputs[0]['sha256'][:12]}…), reduced with "
                            f"'{a.source['reduction']}'.")
    return sanity.Check("Same inputs", sanity.FAIL, "the two models read different inputs; rows are not paired.")


def _describe(side: Side) -> None:
    widths = [v.shape[1] for v in side.layers.values()]
    about = models.get(side.model_name).description if side.model_name is not None else None
    st.caption(f"**{side.label}** — {side.n} examples × {len(widths)} layers, "
               f"{min(widths)}–{max(widths)} features." if min(widths) != max(widths) else
               f"**{side.label}** — {side.n} examples × {len(widths)} layers of {widths[0]} features.", help=about)
    flattened = [f"{k} {'×'.join(map(str, s))} → {int(np.prod(s))}" for k, s in side.shapes.items() if len(s) > 1]
    if flattened:
        st.caption("Flattened per example (each map becomes one vector): " + "; ".join(flattened) + ".")


def side_picker(side: str, default_model: str) -> tuple[Side | own.ModelChoice | None, sanity.Check | None]:
    """The source chooser of one side: (the side with its chosen, non-constant layers, or None
    while waiting or after an error shown here; the layer-health check). A side that is one of the
    user's own models is a :class:`ui.sources.own_models.ModelChoice` until its forward pass has run."""
    launch = [str(p) for p in launch_files()]
    kinds = {k: v for k, v in SOURCE_KINDS.items() if k != "launch" or launch}
    key = side.lower()
    kind = choose(st.radio, f"**Side {side}** · source", kinds, key=f"cmp_{key}_kind", horizontal=True,
                  help=f"A network's layers on the {len(models.digits().y_test)} digits of the test split (the zoo, "
                       "and networks fine-tuned on the Manipulate page in this session), your own model (Hugging "
                       "Face, ONNX, torch.export) run on your inputs, your own saved activations, or a file named "
                       "when the app was started (`streamlit run app.py -- --reps A.npz B.npz`).")
    try:
        if kind == "network":
            names = models.names()
            name = st.selectbox("Model", names, index=names.index(default_model), key=f"cmp_{key}_model",
                                bind="query-params", label_visibility="collapsed")
            loaded = network_side(side, name)
        elif kind == "own":
            return own.model_picker(side), None
        elif kind == "upload":
            # No type= filter: a refused extension would raise inside Streamlit before the page runs;
            # load_representations refuses it with a message that lists the formats instead.
            files = st.file_uploader(
                f"Representation files ({', '.join(SUPPORTED)})", accept_multiple_files=True,
                key=f"cmp_{key}_upload",
                help="One file holding every layer (.npz, a .pt dict of tensors, .safetensors) or one file per layer "
                     "(.npy, .csv). One row per example, the same examples in the same order on both sides.")
            if not files:
                st.info("Upload one or more files to compare them. Arrays named 'labels' or 'y' are ignored.")
                return None, None
            loaded = _uploaded_side(side, files)
        else:
            path = st.selectbox("File", launch, key=f"cmp_{key}_launch", bind="query-params")
            loaded = _launch_side(side, path)
    except RepresentationError as error:
        st.error(str(error), icon=":material/error:")
        return None, None
    _describe(loaded)
    health = sanity.layer_health(loaded.layers, side=side)
    usable = [k for k in loaded.names if k not in health.details["constant"] + health.details["empty"]]
    if not usable:
        st.error(f"Every layer of side {side} is constant across examples: nothing to compare. "
                 "Check that the activations were captured.", icon=":material/error:")
        return None, health
    if len(usable) < len(loaded.names):
        st.warning(f"Left out (constant across examples, CKA is 0/0): {', '.join(health.details['constant'])}.")
    # wrap: in a column the chips would otherwise stay in one row and hide the layers past the box's width
    chosen = st.multiselect("Layers", usable, default=usable, key=f"cmp_{key}_layers_{url_scope(loaded)}",
                            bind="query-params", help="The layers to compare, in this order.", wrap=True)
    if not chosen:
        st.warning(f"Pick at least one layer of side {side}.")
        return None, health
    digest = hashlib.sha256(("|".join(chosen)).encode()).hexdigest()[:8]
    return replace(loaded, key=f"{loaded.key}#{digest}", layers={k: loaded.layers[k] for k in chosen},
                   shapes={k: loaded.shapes[k] for k in chosen}), health


def pair_arguments(a: Side, b: Side) -> tuple:
    """Arguments that identify a comparison in a cache key (digests and layer names)."""
    return a.key, a.names, b.key, b.names


def same_data(a: Side, b: Side) -> bool:
    return a.key == b.key
