"""The Compare page's parts: where each side's layers come from, the measure controls, cached
heatmaps, sanity checks and drill-downs, inference on a button press (progress, stop, bounded
per-session store), figures and exports.

Arrays never enter a cache key: every cached function takes content digests and layer names as
its key and the arrays with a leading underscore. Uploads are parsed per session
(``data.uploaded_arrays``); registered networks (``ui.sources.models``) and launch files are shared read-only.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots
import streamlit as st
import torch

from cka_core import MEASURES, RepresentationError, cka_matrix
from cka_core.cka.matrix import cka_matrix_or_nan
from cka_core.cka import drilldown
from cka_core.stats import corrections, resampling, sanity
from cka_core.io.export import cells_csv, heatmap_document
from cka_core.io import SUPPORTED, activation_layers, load_representations
from cka_core.measures import similarity_matrix

from .frame import figures
from .frame.widgets import choose
from .sources import data, models
from .sources import own_models as own
from .sources.arrays import readonly, readonly_rows
from .sources.launch import launch_files

_LOG = logging.getLogger("cka_explorer")
MIN_EXAMPLES = 4  # the debiased estimators need 4; fewer examples say nothing anyway
DEFAULT_COUNT = 200
MAX_COUNT = 2000
TIME_LIMIT_S = 600.0  # an inference run gives up (with a message) after this long
STORE_SIZE = 8  # inference results kept per session
DRILL_MAX_ROWS = 2000  # the drill-down's n x n Grams and SVDs stay fast
SCATTER_POINTS = 5000
CHEAP_MEASURES = {"linear_cka", "linear_cka_debiased"}
MAX_INPUT_VALUES = 2**25  # inputs regressed out by dCKA as one float64 matrix (256 MiB); larger: a layer instead
ALPHA, NULL_WIDTH = 0.05, 2.0

SOURCE_KINDS = {"network": "Sample model", "own": "Your model", "upload": "Upload files", "launch": "Launch file"}
ESTIMATORS = {"biased": "Biased", "debiased": "Debiased", "minibatch": "Minibatch"}
#: Measures reached through another's control rather than the Measure box (linear CKA's Estimator radio).
ESTIMATOR_MEASURES = frozenset({"linear_cka_debiased"})
STATUS_ICONS = {sanity.PASS: ":material/check_circle:", sanity.WARN: ":material/warning:",
                sanity.FAIL: ":material/error:", sanity.INFO: ":material/info:"}
MARKING_TEXT = (f"**✕** marks a cell whose value is not clearly beyond chance: its permutation p-value (corrected, "
                f"when a correction for the many cells is chosen) is above {ALPHA}, or its bootstrap interval overlaps the shuffled-rows null (the null's mean ± "
                f"{NULL_WIDTH:g} sd).")


# --------------------------------------------------------------------------- sides
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
    chosen = st.multiselect("Layers", usable, default=usable, key=f"cmp_{key}_layers_{url_scope(loaded)}",
                            bind="query-params", help="The layers to compare, in this order.")
    if not chosen:
        st.warning(f"Pick at least one layer of side {side}.")
        return None, health
    digest = hashlib.sha256(("|".join(chosen)).encode()).hexdigest()[:8]
    return replace(loaded, key=f"{loaded.key}#{digest}", layers={k: loaded.layers[k] for k in chosen},
                   shapes={k: loaded.shapes[k] for k in chosen}), health


# --------------------------------------------------------------------------- measure settings
@dataclass(frozen=True)
class Settings:
    """The measure and its estimator options: everything the values depend on besides the data."""

    measure: str  # a MEASURES key
    batch_size: int | None = None
    minibatch_debiased: bool = True
    parameters: tuple[tuple[str, float], ...] = ()  # (name, value) of each of MEASURES[measure].parameters
    confounder: str | None = None  # what dCKA regresses out: INPUTS, or "a:<layer>" (a layer of side A)
    confounder_about: str = ""
    inputs: np.ndarray | None = field(default=None, repr=False, compare=False)  # the confounder's values

    def options(self) -> dict:
        """Keyword arguments of ``similarity_matrix`` and the inference functions."""
        out = {} if self.inputs is None else {"inputs": self.inputs}
        if self.batch_size is not None:
            out["batch_size"] = self.batch_size
            out["debiased"] = self.minibatch_debiased
        out.update(self.parameters)
        return out

    @property
    def key(self) -> tuple:
        return (self.measure, self.batch_size, self.minibatch_debiased if self.batch_size else None, self.parameters,
                self.confounder)

    @property
    def info(self):
        return MEASURES[self.measure]

    @property
    def label(self) -> str:
        if self.batch_size is not None:
            return f"Minibatch linear CKA (b = {self.batch_size}{', unbiased HSIC' if self.minibatch_debiased else ''})"
        if self.parameters:
            return self.info.parameters[0].shown.format(*(value for _, value in self.parameters))
        if self.confounder is not None:
            return f"dCKA ({self.confounder_about} regressed out)"
        return self.info.label

    def export(self) -> dict:
        return {"measure": self.measure, "measure_label": self.label,
                "debiased": self.measure == "linear_cka_debiased" or (self.batch_size is not None and self.minibatch_debiased),
                "batch_size": self.batch_size, **{p.name: None for info in MEASURES.values() for p in info.parameters},
                **{k: v for k, v in self.options().items() if k not in ("batch_size", "debiased", "inputs")},
                "confounder": self.confounder_about or None}


def measure_choices() -> dict[str, str]:
    """The Measure box: every registered measure (in registry order) but those reached through another's
    control, by its label."""
    return {k: info.label for k, info in MEASURES.items() if k not in ESTIMATOR_MEASURES}


def parameter_control(parameter) -> float:
    """The control of one declared measure parameter (a ``MeasureParameter``), bound to the URL as
    ``cmp_<name>``: a slider over its range, or a select box over its choices."""
    key = f"cmp_{parameter.name}"
    if parameter.choices:
        return st.selectbox(parameter.label, parameter.choices, index=parameter.choices.index(parameter.default),
                            key=key, bind="query-params", help=parameter.help)
    value = st.slider(parameter.label, parameter.low, parameter.high, parameter.default, step=parameter.step,
                      key=key, bind="query-params", help=parameter.help)
    return round(float(value), 2)


def measure_controls(a: Side, b: Side) -> tuple[Settings, bool]:
    """The measure row: (the measure and its estimator options, whether the heatmap's colours are
    fitted to its values)."""
    cols = st.columns([1.1, 1.6, 1.2, 0.9], vertical_alignment="bottom")
    with cols[3]:
        fitted = colour_scale_control()
    return _measure_settings(cols, a, b), fitted


INPUTS = "inputs"


def confounder_choices(a: Side, b: Side) -> dict[str, str]:
    """What dCKA can regress out here: the inputs, when both sides read the same ones and they are
    numbers (pixels, arrays), then every layer of side A."""
    choices = {}
    if a.inputs is not None and b.inputs is not None and (a.inputs is b.inputs or np.array_equal(a.inputs, b.inputs)):
        choices[INPUTS] = a.inputs_about
    return choices | {f"a:{layer}": f"layer {layer} of A" for layer in a.names}


def _confounder_settings(measure: str, a: Side, b: Side) -> Settings:
    choices = confounder_choices(a, b)
    choice = choose(st.selectbox, "Regress out", choices, key="cmp_confounder",
                    help="Deconfounded CKA removes, from each layer's Gram matrix, what an affine function of this "
                         "one's explains: the similarity the two sides inherit from it. The inputs are the usual "
                         "choice (Cui et al.); texts have no numeric inputs, so pick an early layer of A instead (it "
                         "then leaves the heatmap).")
    inputs = a.inputs if choice == INPUTS else a.layers[choice[2:]]
    return Settings(measure, confounder=choice, confounder_about=choices[choice], inputs=inputs)


def without_confounder(a: Side, settings: Settings) -> Side:
    """Side A without the layer dCKA regresses out (its row would be undefined: nothing is left of a
    layer once it is regressed out of itself)."""
    if settings.confounder is None or not settings.confounder.startswith("a:"):
        return a
    layer = settings.confounder[2:]
    kept = [k for k in a.names if k != layer]
    if not kept:
        raise RepresentationError(f"regressing out {layer}, side A's only layer, leaves nothing of A to compare: pick "
                                  "more layers of A, or regress out the inputs.")
    return replace(a, key=f"{a.key}-{layer}", layers={k: a.layers[k] for k in kept},
                   shapes={k: a.shapes[k] for k in kept})


def _measure_settings(cols, a: Side, b: Side) -> Settings:
    n = a.n
    with cols[0]:
        measure = choose(st.selectbox, "Measure", measure_choices(), key="cmp_measure",
                         help="Linear CKA is the usual choice; the others answer different questions (see Theory).")
    if measure == "linear_cka":
        with cols[1]:
            estimator = choose(st.radio, "Estimator", ESTIMATORS, key="cmp_estimator", horizontal=True,
                               help="Biased: Kornblith et al.; debiased: unbiased HSIC (Song et al.), no inflation "
                                    "when features outnumber examples; minibatch: HSIC summed over batches, ratio "
                                    "at the end (Nguyen et al.).")
        if estimator == "debiased":
            return Settings("linear_cka_debiased")
        if estimator == "minibatch":
            with cols[2]:
                top = max(MIN_EXAMPLES + 4, min(n, 1024))
                batch = st.slider("Batch size b", MIN_EXAMPLES, top, min(64, top), step=4, key="cmp_batch",
                                  bind="query-params", help="Consecutive batches of b examples; a last batch with "
                                  "fewer than 4 examples is dropped.")
                unbiased = st.checkbox("Unbiased HSIC per batch", True, key="cmp_minibatch_debiased",
                                       bind="query-params",
                                       help="Nguyen et al.'s choice: the value barely depends on b.")
            return Settings("linear_cka", batch_size=int(batch), minibatch_debiased=bool(unbiased))
        return Settings("linear_cka")
    if MEASURES[measure].needs_inputs:
        with cols[1]:
            return _confounder_settings(measure, a, b)
    if MEASURES[measure].parameters:
        with cols[1]:
            values = tuple((p.name, parameter_control(p)) for p in MEASURES[measure].parameters)
        return Settings(measure, parameters=values)
    with cols[1]:
        st.caption(MEASURES[measure].description)
    return Settings(measure)


# --------------------------------------------------------------------------- cached computations
def pair_arguments(a: Side, b: Side) -> tuple:
    """Arguments that identify a comparison in a cache key (digests and layer names)."""
    return a.key, a.names, b.key, b.names


def same_data(a: Side, b: Side) -> bool:
    return a.key == b.key


@st.cache_data(max_entries=64, show_spinner="Computing the heatmap…")
def heatmap_values(key_a: str, names_a: tuple, key_b: str, names_b: tuple, settings_key: tuple,
                   _a: dict, _b: dict, _settings: Settings) -> tuple[np.ndarray, float]:
    """(values, seconds it took): ``similarity_matrix`` of the chosen measure (a self-comparison
    when both sides are the same data, so symmetric work is done once)."""
    start = time.perf_counter()
    values = similarity_matrix(_a, None if key_a == key_b else _b, measure=_settings.measure, **_settings.options())
    return values, time.perf_counter() - start


@st.cache_data(max_entries=32, show_spinner="Computing the linear CKA references…")
def linear_references(key_a: str, names_a: tuple, key_b: str, names_b: tuple, _a: dict, _b: dict):
    """Biased and debiased linear CKA matrices (for the d ≫ n check), whatever the chosen measure."""
    other = None if key_a == key_b else _b
    return cka_matrix(_a, other), cka_matrix(_a, other, debiased=True)


@st.cache_data(max_entries=32, show_spinner="Running the sanity checks…")
def sanity_checks(key_a: str, names_a: tuple, key_b: str, names_b: tuple, settings_key: tuple,
                  _a: dict, _b: dict, _settings: Settings, _values: np.ndarray) -> list[sanity.Check]:
    """Self-diagonal, symmetry, sample pairing and d ≫ n checks (layer health is per side)."""
    options = _settings.options()
    checks = []
    for run in (
        lambda: sanity.self_diagonal(_a, measure=_settings.measure, **options),
        lambda: sanity.symmetry(_a, _b, _values, measure=_settings.measure, cells=_symmetry_cells(_settings, _values),
                                **options),
        lambda: sanity.pairing(_a, _b, same_source=key_a == key_b),
        lambda: sanity.high_dimension(_a, _b, *linear_references(key_a, names_a, key_b, names_b, _a, _b)),
    ):
        try:
            checks.append(run())
        except RepresentationError as error:
            checks.append(sanity.Check("Check could not run", sanity.INFO, str(error)))
    return checks


def _symmetry_cells(settings: Settings, values: np.ndarray):
    """All cells for the cheap linear-CKA measures; three cells for the others (each costs a full
    evaluation of the measure)."""
    if settings.measure in CHEAP_MEASURES and settings.batch_size is None:
        return None
    rows, cols = values.shape
    return [(i, min(i, cols - 1)) for i in range(min(rows, 3))]


@st.cache_data(max_entries=16, show_spinner="Comparing with the random-init baseline…")
def baseline_values(key_a: str, names_a: tuple, key_b: str, names_b: tuple, settings_key: tuple, replaced: str,
                    model: str, _a: dict, _b: dict, _settings: Settings):
    """The same heatmap with side ``replaced`` swapped for its random-init twin: (description, values)."""
    what, twin = models.untrained_twin(model)
    side = _a if replaced == "A" else _b
    twin = {k: twin[k] for k in side}
    a, b = (twin, _b) if replaced == "A" else (_a, twin)
    return what, similarity_matrix(a, b, measure=_settings.measure, **_settings.options())


def baseline_plan(a: Side, b: Side) -> tuple[str, str] | None:
    """(side to replace, network) for the random-init baseline, or None when no trained network is involved."""
    for side in (a, b):
        if side.model_name is not None and models.get(side.model_name).trained:
            return side.name, side.model_name
    return None


@dataclass(frozen=True)
class Drill:
    scatter: drilldown.GramScatter
    contributions: drilldown.PCContributions
    rows_used: int


@st.cache_data(max_entries=16, show_spinner="Decomposing the cell…")
def drill(key_a: str, layer_a: str, key_b: str, layer_b: str, _x: np.ndarray, _y: np.ndarray) -> Drill:
    n = _x.shape[0]
    if n > DRILL_MAX_ROWS:
        index = np.unique(np.linspace(0, n - 1, DRILL_MAX_ROWS).round().astype(np.int64))
        _x, _y = _x[index], _y[index]
    return Drill(drilldown.gram_scatter(_x, _y, max_points=SCATTER_POINTS), drilldown.pc_contributions(_x, _y),
                 _x.shape[0])


# --------------------------------------------------------------------------- inference
@dataclass(frozen=True)
class Inference:
    """A resampling run, and its cells marked under one correction for testing every cell at once."""

    bootstrap: resampling.BootstrapResult
    permutation: resampling.PermutationResult
    seconds: float
    seed: int
    p_adjustment: str = "none"

    @cached_property
    def p_adjusted(self) -> np.ndarray:
        return corrections.adjusted_p_values(self.permutation.p_values, self.p_adjustment)

    @cached_property
    def flagged(self) -> np.ndarray:
        perm = self.permutation
        return sanity.not_above_null(self.bootstrap.low, self.bootstrap.high, self.p_adjusted, perm.null_mean,
                                     perm.null_std, alpha=ALPHA, width=NULL_WIDTH)


def with_p_adjustment(result: Inference | None, method: str) -> Inference | None:
    """The same run marked under ``method`` (no resampling again: the correction acts on the p-values)."""
    return None if result is None else replace(result, p_adjustment=method)


def p_adjustment_floor_note(n_perm: int, n_cells: int, method: str) -> str | None:
    """Why no cell can pass under Holm with too few permutations, and how many it takes; None if fine."""
    floor = corrections.smallest_adjusted_p(n_perm, n_cells, method)
    if floor <= ALPHA:
        return None
    return (f"With {n_perm} permutations no p-value goes below 1/{n_perm + 1}, so Holm's correction over {n_cells} cells "
            f"cannot go below {floor:.3f}: no cell can pass {ALPHA}. Use at least {math.ceil(n_cells / ALPHA) - 1} "
            "permutations, or Benjamini–Hochberg.")


class _TimeUp(Exception):
    pass


def inference_key(a: Side, b: Side, settings: Settings, n_boot: int, n_perm: int, confidence: float, seed: int) -> tuple:
    return (*pair_arguments(a, b), settings.key, n_boot, n_perm, confidence, seed)


def _store() -> OrderedDict:
    return st.session_state.setdefault("cmp_results", OrderedDict())


def stored_inference(key: tuple) -> Inference | None:
    store = _store()
    if key in store:
        store.move_to_end(key)
        return store[key]
    return None


def request_run() -> None:
    st.session_state["cmp_run_requested"] = True


def run_requested() -> bool:
    """Whether the run button was pressed (consumed on read)."""
    return bool(st.session_state.pop("cmp_run_requested", False))


def p_adjustment_control() -> str:
    """How the p-values of all cells are corrected for being tested together (applied without rerunning)."""
    return choose(st.selectbox, "Multiple comparisons", corrections.P_ADJUSTMENTS, key="cmp_p_adjust",
                  help="A heatmap tests every cell: at p ≤ 0.05 each, about one cell in twenty looks beyond chance "
                       "when nothing is related. Holm bounds the chance of any false call; Benjamini–Hochberg the "
                       "expected share of false calls among the calls (docs/theory.md §9).")


CONFIDENCE_LEVELS = (0.9, 0.95, 0.99)


def inference_controls(seconds_per_matrix: float) -> tuple[int, int, float, int]:
    cols = st.columns(4)
    n_boot = cols[0].number_input("Bootstrap resamples", 10, MAX_COUNT, DEFAULT_COUNT, step=50, key="cmp_n_boot",
                                  bind="query-params", help="Examples resampled with replacement (the same rows on both sides).")
    n_perm = cols[1].number_input("Permutations", 10, MAX_COUNT, DEFAULT_COUNT, step=50, key="cmp_n_perm",
                                  bind="query-params", help="B's rows shuffled against A's: the null of unpaired examples.")
    with cols[2]:
        confidence = choose(st.selectbox, "Interval level", {c: f"{c:.0%}" for c in CONFIDENCE_LEVELS},
                            key="cmp_confidence", default=0.95)
    seed = cols[3].number_input("Seed", 0, 10_000, 0, key="cmp_seed", bind="query-params")
    estimate = seconds_per_matrix * (n_boot + n_perm)
    st.caption(f"About {_duration(estimate)} at {seconds_per_matrix * 1000:.0f} ms per heatmap "
               f"({n_boot} + {n_perm} heatmaps). Runs only when you press the button, and carries on while you use "
               f"other controls or pages; Stop ends it, and it gives up by itself after {_duration(TIME_LIMIT_S)}.")
    return int(n_boot), int(n_perm), float(confidence), int(seed)


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


class _Stopped(Exception):
    pass


@dataclass
class ResamplingJob:
    """Bootstrap then permutations for one heatmap, computed in a thread of its own: a click
    elsewhere restarts the page's script, not the job, so nothing is lost; the page follows the
    job (:func:`follow_job`) and collects its result (:func:`collect_job`) on a later run."""

    key: tuple
    total: int
    started: float = field(default_factory=time.perf_counter)
    phase: str = "Starting"
    phase_done: int = 0
    phase_count: int = 0
    done: int = 0                       # resamples finished over both phases
    stop: threading.Event = field(default_factory=threading.Event)
    result: Inference | None = None
    failure: str | None = None          # why it ended without a result
    thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def where(self) -> str:
        return f"{self.phase} {self.phase_done}/{self.phase_count}" if self.phase_count else "before the first step"


JOB_KEY, FAILURE_KEY = "cmp_job", "cmp_job_failure"
#: Seconds one script run follows a running job before it lets the run end (the job goes on and a
#: later run picks it up). ``None`` in the app: follow until it ends. Tests set 0 to stand in for a
#: click elsewhere that restarts the script while the job runs.
FOLLOW_SECONDS: float | None = None


def _resample(job: ResamplingJob, layers: dict, other: dict | None, measure: str, options: dict, n_boot: int,
              n_perm: int, confidence: float, seed: int) -> None:
    """The job's thread: no Streamlit call in here, only the core and the job's own fields."""
    def reporter(phase: str, offset: int):
        def progress(done: int, count: int) -> None:
            if job.stop.is_set():
                raise _Stopped
            if time.perf_counter() - job.started > TIME_LIMIT_S:
                raise _TimeUp
            job.phase, job.phase_done, job.phase_count, job.done = phase, done, count, offset + done
        return progress

    try:
        boot = resampling.bootstrap(layers, other, measure=measure, n_resamples=n_boot, confidence=confidence,
                                   seed=seed, progress=reporter("Bootstrap", 0), **options)
        perm = resampling.permutation_test(layers, other, measure=measure, n_permutations=n_perm, seed=seed,
                                          progress=reporter("Permutations", n_boot), **options)
        job.result = Inference(boot, perm, time.perf_counter() - job.started, seed)
    except _Stopped:
        job.failure = f"Stopped ({job.where()}); nothing was stored. Press the button to start again."
    except _TimeUp:
        job.failure = (f"Gave up after {_duration(TIME_LIMIT_S)} ({job.where()}); nothing was stored. Lower the "
                       "counts, or pick fewer layers or a cheaper measure.")
    except RepresentationError as error:
        job.failure = f"{error} Nothing was stored."
    except Exception as error:  # noqa: BLE001 - a thread's exception would otherwise vanish
        _LOG.exception("resampling job failed")
        job.failure = f"The run failed ({type(error).__name__}: {error}); nothing was stored."


def start_job(key: tuple, a: Side, b: Side, settings: Settings, n_boot: int, n_perm: int, confidence: float,
              seed: int) -> ResamplingJob:
    """Start bootstrap and permutations for ``key`` in a thread; the session's one job."""
    job = ResamplingJob(key, n_boot + n_perm)
    st.session_state.pop(FAILURE_KEY, None)
    other = None if same_data(a, b) else b.layers
    job.thread = threading.Thread(
        target=_resample, name="cka-resampling", daemon=True,
        args=(job, a.layers, other, settings.measure, settings.options(), n_boot, n_perm, confidence, seed))
    st.session_state[JOB_KEY] = job
    job.thread.start()
    return job


def current_job() -> ResamplingJob | None:
    """The session's job that was still running when this run collected (:func:`collect_job`). It
    counts as running for the rest of the run even if its thread ends meanwhile: otherwise a job
    that ends mid-run shows neither its progress nor its outcome; :func:`follow_job` then reruns
    the page, which collects it."""
    return st.session_state.get(JOB_KEY)


def collect_job() -> None:
    """Store a finished job's result under its key (bounded, per session), or keep why it ended
    without one (see :func:`job_failure`), and forget the job."""
    job = st.session_state.get(JOB_KEY)
    if job is None or job.running:
        return
    del st.session_state[JOB_KEY]
    if job.result is None:
        st.session_state[FAILURE_KEY] = (job.key, job.failure)
        return
    store = _store()
    store[job.key] = job.result
    while len(store) > STORE_SIZE:
        store.popitem(last=False)


def job_failure(key: tuple) -> str | None:
    """Why the session's last job ended without a result, shown until another job starts (with a
    note when it was for other settings than ``key``)."""
    failed = st.session_state.get(FAILURE_KEY)
    if failed is None:
        return None
    return failed[1] if failed[0] == key else f"A run for other settings ended: {failed[1]}"


def _stop_job() -> None:
    job = st.session_state.get(JOB_KEY)
    if job is not None:
        job.stop.set()


def job_panel(job: ResamplingJob, key: tuple):
    """The running job's Stop button and the slot its progress bar is drawn in (by follow_job)."""
    if job.key != key:
        st.info("Intervals and p-values for other settings are being computed; they will be kept, and shown when "
                "you come back to those settings.", icon=":material/hourglass_top:")
    st.button("Stop computing", key="cmp_stop", on_click=_stop_job, icon=":material/stop_circle:")
    return st.empty()


def follow_job(slot) -> None:
    """Redraw the job's progress until it ends (or FOLLOW_SECONDS pass), then rerun the page so
    that the heatmap shows its intervals and marks. Called last on the page: a click elsewhere
    interrupts only this loop."""
    job = st.session_state.get(JOB_KEY)  # running, or finished since this run collected (a quick one)
    if job is None or slot is None:
        return
    deadline = None if FOLLOW_SECONDS is None else time.perf_counter() + FOLLOW_SECONDS
    while job.running and (deadline is None or time.perf_counter() < deadline):
        elapsed = time.perf_counter() - job.started
        slot.progress(job.done / job.total, text=f"{job.phase}: {job.phase_done} of {job.phase_count} · {elapsed:.0f} s")
        time.sleep(0.2)
    if not job.running:
        st.rerun()


# --------------------------------------------------------------------------- the reduction's effect
@dataclass(frozen=True)
class ReductionEffect:
    """The same two models and layers under another reduction: its linear CKA map and how far it is
    from the chosen one's."""

    how: str
    label: str
    values: np.ndarray | None
    max_change: float | None
    mean_change: float | None
    note: str | None = None


def reduction_effects(runs_a: dict, runs_b: dict, chosen: str, options: dict[str, str],
                      debiased: bool) -> list[ReductionEffect]:
    """Linear CKA between the two models' layers under every reduction that was run, against the chosen
    one (rows must pair up: under 'tokens' two tokenizers that split texts differently do not)."""
    maps = {}
    for how in runs_a:
        if how in runs_b and own.same_rows([runs_a[how], runs_b[how]]):
            maps[how] = cka_matrix_or_nan(runs_a[how].layers, runs_b[how].layers, debiased=debiased)
    reference = maps.get(chosen)
    effects = []
    for how in runs_a:
        values = maps.get(how)
        if values is None:
            effects.append(ReductionEffect(how, options.get(how, how), None, None, None,
                                           "the two models' rows do not pair up (different tokens)"))
            continue
        change = np.abs(values - reference) if reference is not None else None
        defined = change is not None and bool(np.isfinite(change).any())
        effects.append(ReductionEffect(how, options.get(how, how), values,
                                       float(np.nanmax(change)) if defined else None,
                                       float(np.nanmean(change)) if defined else None,
                                       "a layer is constant under it (CKA 0/0), e.g. the first token is the same "
                                       "[CLS] vector for every text at the embeddings" if np.isnan(values).any() else None))
    return effects


def reduction_figure(effects: list[ReductionEffect], names_a: list[str], names_b: list[str]) -> go.Figure:
    """Small multiples: the linear CKA map under each reduction, on one colour scale."""
    shown = [e for e in effects if e.values is not None]
    titles = [e.label if e.max_change is None or e.max_change == 0 else f"{e.label}<br>max |Δ| {e.max_change:.2f}"
              for e in shown]
    fig = make_subplots(rows=1, cols=max(1, len(shown)), subplot_titles=titles, horizontal_spacing=0.05)
    for col, effect in enumerate(shown, start=1):
        fig.add_trace(go.Heatmap(z=effect.values, x=names_b, y=names_a, coloraxis="coloraxis",
                                 hovertemplate=f"{effect.label}<br>A: %{{y}}<br>B: %{{x}}<br>CKA = %{{z:.4f}}"
                                               "<extra></extra>"), row=1, col=col)
        fig.update_yaxes(autorange="reversed", showticklabels=col == 1, row=1, col=col)
        fig.update_xaxes(showticklabels=False, row=1, col=col)
    fig.update_annotations(font=dict(size=12))
    fig.update_layout(**{**figures.LAYOUT, "height": 340, "margin": dict(l=110, r=20, t=80, b=20)},
                      coloraxis=dict(colorscale=figures.HEATMAP_SCALE, cmin=0.0, cmax=1.0,
                                     colorbar=dict(title="CKA", thickness=12)))
    return fig


# --------------------------------------------------------------------------- what the page shows
def best_cell(values: np.ndarray, settings: Settings) -> tuple[int, int]:
    """(row, column) of the most similar pair of layers under the chosen measure."""
    higher = settings.info.higher_is_similar
    i, j = np.unravel_index(int(np.argmax(values if higher else -values)), values.shape)
    return int(i), int(j)


def takeaway(values: np.ndarray, a: Side, b: Side, settings: Settings) -> str:
    """The page's lesson in one sentence: the best cell, and what the same cell reads with a trained
    side replaced by its untrained twin (when a zoo network is involved)."""
    i, j = best_cell(values, settings)
    best = (f"{settings.label} finds {a.label}'s {a.names[i]} closest to {b.label}'s {b.names[j]} "
            f"({float(values[i, j]):.2f})")
    plan = baseline_plan(a, b)
    if plan is None:
        return best + "; whether such a value is beyond chance, the intervals, p-values and checks below decide."
    replaced, model = plan
    try:
        what, baseline = baseline_values(*pair_arguments(a, b), settings.key, replaced, model, a.layers, b.layers,
                                         settings)
    except RepresentationError:
        return best + "."
    return (f"{best}, but a value needs its baseline: with side {replaced} replaced by {what} the same cell still "
            f"reads {float(baseline[i, j]):.2f}.")


def beyond_chance(result: Inference) -> int:
    """How many cells are clearly beyond chance (not flagged)."""
    return int(result.flagged.size - result.flagged.sum())


def milliseconds(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def cell_rows(a: Side, b: Side, result: Inference) -> list[dict]:
    """One row per cell: value, interval, p-value, null, and whether it is beyond chance."""
    boot, perm = result.bootstrap, result.permutation
    return [{"A": name_a, "B": name_b, "value": boot.values[i, j], "low": boot.low[i, j], "high": boot.high[i, j],
             "p": perm.p_values[i, j], "p adjusted": result.p_adjusted[i, j], "null mean": perm.null_mean[i, j],
             "null sd": perm.null_std[i, j], "beyond chance": not bool(result.flagged[i, j])}
            for i, name_a in enumerate(a.names) for j, name_b in enumerate(b.names)]


def table_height(rows: int) -> int:
    """Pixels for a dataframe of ``rows`` rows, at most 400."""
    return min(400, 38 + 35 * rows)


def top_pairs_share(contrib: drilldown.PCContributions, k: int) -> str:
    """Share of linear CKA carried by the k x k leading principal-component pairs."""
    return f"{contrib.top_sum(k) / contrib.cka:.1%}" if contrib.cka > 0 else "—"


def pc_pair(pair: tuple[int, int, float]) -> str:
    """'PC1 × PC2' for a (row, column, value) term of the eigen form (0-based indices)."""
    return f"PC{pair[0] + 1} × PC{pair[1] + 1}"


def participation_ratios(contrib: drilldown.PCContributions) -> str:
    return (f"{drilldown.participation_ratio(contrib.eigenvalues_x):.1f}, "
            f"{drilldown.participation_ratio(contrib.eigenvalues_y):.1f}")


def value_at(values: np.ndarray, a: Side, b: Side, layer_a: str, layer_b: str) -> float:
    return float(values[a.names.index(layer_a), b.names.index(layer_b)])


# --------------------------------------------------------------------------- figures
def _z_range(settings: Settings, values: np.ndarray, fitted: bool = False) -> tuple[float, float]:
    """The colour scale: the measure's range, or (``fitted``) the values' own, so that 0.82 and 0.96
    do not look alike."""
    finite = values[np.isfinite(values)]
    if fitted and finite.size:
        low, high = float(finite.min()), float(finite.max())
        return (low, high) if high > low else (low - 0.5, high + 0.5)
    low, high = settings.info.value_range
    if low < 0:  # debiased CKA, RSA: show the data's range, not down to -1
        low = min(0.0, float(np.floor(values.min() * 10) / 10))
    return low, high


def colour_scale_control() -> bool:
    """Whether the heatmap's colours span the values shown instead of the measure's whole range."""
    return st.toggle("Fitted colours", key="cmp_fit_colours", bind="query-params",
                     help="Off: the measure's whole range (0 to 1 for CKA), comparable across heatmaps. On: the "
                          "lowest to the highest value shown, so that close values (0.82 and 0.96) differ in colour.")


def heatmap_figure(values: np.ndarray, a: Side, b: Side, settings: Settings, result: Inference | None,
                   *, title: str | None = None, fitted: bool = False) -> go.Figure:
    """The layer x layer heatmap: values written in the cells, exact values, intervals and
    p-values on hover, ✕ on cells not above the null."""
    info = settings.info
    fig = figures.heatmap(values, list(b.names), list(a.names), title=title or f"{settings.label} · {a.n} examples",
                          z_range=_z_range(settings, values, fitted), x_title=f"B: {b.label}", y_title=f"A: {a.label}",
                          colour_title=short_label(settings))
    hover = f"A: %{{y}}<br>B: %{{x}}<br>{short_label(settings)} = %{{z:.4f}}"
    if result is not None:
        boot, perm = result.bootstrap, result.permutation
        custom = np.stack([boot.low, boot.high, perm.p_values, perm.null_mean, perm.null_std, result.p_adjusted],
                          axis=-1)
        hover += (f"<br>{boot.confidence:.0%} interval [%{{customdata[0]:.4f}}, %{{customdata[1]:.4f}}]"
                  "<br>p = %{customdata[2]:.4f}" + ("" if result.p_adjustment == "none" else
                                                     f" ({result.p_adjustment}: %{{customdata[5]:.4f}})")
                  + "<br>null %{customdata[3]:.4f} ± %{customdata[4]:.4f}")
        text = np.array([[f"{v:.2f}" + (" ✕" if f else "") for v, f in zip(row, frow)]
                         for row, frow in zip(values, result.flagged)])
        fig.update_traces(customdata=custom, text=text, texttemplate="%{text}" if values.size <= 144 else None)
        if values.size > 144 and result.flagged.any():
            ys, xs = np.nonzero(result.flagged)
            fig.add_trace(go.Scatter(x=[b.names[j] for j in xs], y=[a.names[i] for i in ys], mode="markers",
                                     marker=dict(symbol="x-thin-open", size=8, color="red"), name="not above null",
                                     hoverinfo="skip", showlegend=False))
    fig.update_traces(hovertemplate=hover + "<extra></extra>", selector=dict(type="heatmap"))
    if not info.higher_is_similar:
        fig.update_traces(reversescale=True, selector=dict(type="heatmap"))
    fig.update_xaxes(type="category", tickangle=-30, automargin=True)
    fig.update_yaxes(type="category", automargin=True, title_standoff=12)
    height = int(min(900, max(380, 110 + 34 * len(a.names))))
    fig.update_layout(height=height)
    return fig


def short_label(settings: Settings) -> str:
    return {"linear_cka": "CKA", "linear_cka_debiased": "CKA (debiased)", "rbf_cka": "RBF CKA",
            "procrustes": "angle (rad)", "shape_metric": "shape distance (rad)",
            "linear_regression": "R²"}.get(settings.measure, settings.info.label)


def gram_scatter_figure(scatter: drilldown.GramScatter, a_name: str, b_name: str) -> go.Figure:
    fig = go.Figure()
    for mask, name, colour in ((~scatter.diagonal, "off-diagonal (i < j)", figures.COLOURS["linear_cka"]),
                               (scatter.diagonal, "diagonal (i = i)", figures.COLOURS["current"])):
        if mask.any():
            fig.add_trace(go.Scattergl(
                x=scatter.k[mask].astype(np.float32), y=scatter.l[mask].astype(np.float32), mode="markers", name=name,
                marker=dict(size=4, color=colour, opacity=0.6),
                customdata=np.stack([scatter.rows[mask], scatter.cols[mask]], axis=1),
                hovertemplate="examples %{customdata[0]}, %{customdata[1]}<br>K = %{x:.3g}<br>L = %{y:.3g}<extra></extra>"))
    shown = f"{scatter.k.size} of {scatter.n_entries}" if scatter.k.size < scatter.n_entries else f"all {scatter.n_entries}"
    fig.update_layout(title=dict(text=f"Centred Gram entries: cosine = linear CKA = {scatter.cka:.3f}",
                                 subtitle=dict(text=f"{shown} entries i ≤ j, each Gram ÷ its norm")),
                      xaxis_title=f"K of A: {a_name} (÷ ‖K‖)", yaxis_title=f"L of B: {b_name} (÷ ‖L‖)",
                      **{**figures.LAYOUT, "height": 400}, legend=dict(orientation="h", y=-0.25))
    return fig


def spectra_figure(contrib: drilldown.PCContributions, a_name: str, b_name: str, show: int = 40) -> go.Figure:
    fig = go.Figure()
    for lam, name, colour in ((contrib.eigenvalues_x, f"A: {a_name}", figures.COLOURS["linear_cka"]),
                              (contrib.eigenvalues_y, f"B: {b_name}", figures.COLOURS["rbf_cka"])):
        share = lam / lam.sum()
        k = np.arange(1, min(show, lam.size) + 1)
        pr = drilldown.participation_ratio(lam)
        fig.add_trace(go.Scatter(x=k, y=share[: k.size], mode="lines+markers", name=f"{name} (PR {pr:.1f})",
                                 line=dict(color=colour), hovertemplate="PC %{x}: %{y:.2%} of the variance<extra></extra>"))
    fig.update_layout(title="Eigenspectra (share of variance per principal component)", xaxis_title="principal component",
                      yaxis_title="share of variance", **{**figures.LAYOUT, "height": 400},
                      legend=dict(orientation="h", y=-0.25))
    fig.update_yaxes(type="log")
    return fig


def contributions_figure(contrib: drilldown.PCContributions, k: int) -> go.Figure:
    block = contrib.top(k)
    labels_a = [f"PC{i + 1}" for i in range(block.shape[0])]
    labels_b = [f"PC{j + 1}" for j in range(block.shape[1])]
    share = block.sum() / contrib.cka if contrib.cka > 0 else 0.0
    fig = figures.heatmap(block, labels_b, labels_a, z_range=(0.0, float(max(block.max(), 1e-12))),
                          title=f"Top {block.shape[0]} × {block.shape[1]} PC pairs: {block.sum():.3f} of CKA "
                                f"{contrib.cka:.3f} ({share:.1%})",
                          x_title="principal component of B", y_title="principal component of A",
                          colour_title="share of CKA", text_format=".3f")
    fig.update_layout(height=400)
    return fig


def baseline_figure(values: np.ndarray, a: Side, b: Side, settings: Settings, replaced: str) -> go.Figure:
    title = f"Same comparison with {replaced} replaced by its random-init twin"
    return heatmap_figure(values, a, b, settings, None, title=title)


# --------------------------------------------------------------------------- exports
def export_document(values: np.ndarray, a: Side, b: Side, settings: Settings, result: Inference | None) -> dict:
    """The JSON export (same schema as ``python -m cka_core compare --out F.json``)."""
    meta = {**settings.export(), "n_examples": a.n, "source_a": {**a.source, "layers": list(a.names)},
            "source_b": {**b.source, "layers": list(b.names)}, "self_comparison": same_data(a, b),
            "seed": result.seed if result is not None else None,
            "versions": {"numpy": np.__version__, "torch": torch.__version__.split("+")[0]}}
    if result is None:
        return heatmap_document(values, a.names, b.names, meta)
    return heatmap_document(values, a.names, b.names, meta, bootstrap=result.bootstrap, permutation=result.permutation,
                            flagged=result.flagged, p_adjustment=result.p_adjustment)


def export_csv(doc: dict) -> str:
    return cells_csv(doc)


def export_json(doc: dict) -> str:
    return json.dumps(doc, indent=2)


def check_line(check: sanity.Check) -> None:
    """One sanity check as a line: status icon, name, message."""
    icon = STATUS_ICONS[check.status]
    colour = {sanity.PASS: "green", sanity.WARN: "orange", sanity.FAIL: "red", sanity.INFO: "blue"}[check.status]
    st.markdown(f":{colour}[{icon} **{check.name}**] — {check.message}")
