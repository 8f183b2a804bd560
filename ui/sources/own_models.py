"""Your own models on the Compare page: loading them (uploads, files named at launch, Hub ids where
allowed), the inputs both read, how a layer is reduced, and the forward passes (progress, Stop).

Loaded models and their forward passes live in per-session caches keyed on content digests (the
model file's SHA-256, the inputs' digest, the layers and reductions); nothing a user uploads is
shared with another session.
"""
from __future__ import annotations

import hashlib
import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import streamlit as st

from cka_core import RepresentationError
from cka_core import models as own
from cka_core.models import reduction
from cka_core.models.huggingface import hub_allowed
from cka_core.models.worker import Worker

from .. import jobs
from ..frame.widgets import choose
from . import models
from .launch import launch_models

MODEL_SOURCES = {"upload": "Upload", "launch": "Launch model", "hub": "Hub id"}
INPUT_SOURCES = {"builtin": "Built-in sentences", "upload": "Upload inputs"}
DEFAULT_SENTENCES = 200
STORE_SIZE = 6            # forward-pass results kept per session
MODELS_KEPT = 4           # loaded models kept per session
#: Model loads that run at once on this server, over all sessions, each in a process of its own (a stranger's
#: model never shares one): as many as the worker pool has workers (CKA_WORKERS); the others wait in line.
LOAD_TURNS = jobs.Slots(jobs.pool_size())
LOADS_STATE, LOADED_MODELS, STOPPED_LOADS = "own_loads", "own_loaded_models", "own_stopped_loads"
FAILED_LOADS = "own_failed_loads"  # side -> (key, message): a refused file is not loaded again on every rerun
_LOG = logging.getLogger("cka_explorer")
BATCH_SIZE = 16
RUN_STATE = "own_run"     # the session's store of forward passes


@dataclass(frozen=True)
class ModelChoice:
    """A loaded model and the layers chosen on one side."""

    side: str
    model: object = field(repr=False)   # cka_core.models.LoadedModel
    layers: tuple[str, ...]

    @property
    def key(self) -> str:
        return f"{self.model.digest}:{hashlib.sha256('|'.join(self.layers).encode()).hexdigest()[:8]}"


@dataclass(eq=False)
class ModelLoad(jobs.Job):
    """One model being loaded in a worker process of its own (cka_core.models.worker: a memory
    limit, a clock, nothing from the file runs in the server), followed by a thread so that the
    script can show the time so far with a Stop button (:func:`loaded_model`); Stop kills the worker.
    Loads of all sessions take turns on :data:`LOAD_TURNS`; the process starts once it is the load's turn."""

    worker: Worker | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.stage = f"Loading {self.what}…"
        self.on_stop.append(self._kill)

    def _kill(self) -> None:
        if self.worker is not None:
            self.worker.kill()

    def in_turn(self, load: Callable[[Worker], object]) -> object:
        """Wait for one of the server's :data:`LOAD_TURNS` (saying its place), then ``load`` in a new worker."""
        jobs.wait_for_turn(self, LOAD_TURNS, "the server's model loader")
        try:
            self.worker = Worker(threads=1)
            if self.stop_event.is_set():  # Stop came while the process started, before it could reach it
                self.worker.kill()
                raise jobs.Stopped
            return load(self.worker)
        finally:
            LOAD_TURNS.release()

    def crashed_text(self, error: Exception) -> str:
        return f"{self.what} could not be loaded ({type(error).__name__}: {error})."


def _stop_load(side: str) -> None:
    job = st.session_state.get(LOADS_STATE, {}).pop(side, None)
    if job is not None:
        job.stop()
        st.session_state.setdefault(STOPPED_LOADS, {})[side] = job.key


def _load_again(side: str) -> None:
    st.session_state.get(STOPPED_LOADS, {}).pop(side, None)


def loaded_model(side: str, key: tuple, what: str, load: Callable[[Worker], object]):
    """The model ``key`` names, loaded once per session (bounded), or None while it loads or after a
    Stop. Loading shows the time so far and a Stop button; a click elsewhere leaves the load running,
    and the next run picks it up."""
    kept = st.session_state.setdefault(LOADED_MODELS, OrderedDict())
    if key in kept:
        kept.move_to_end(key)
        return kept[key]
    failed = st.session_state.get(FAILED_LOADS, {}).get(side)
    if failed is not None and failed[0] == key:
        raise RepresentationError(failed[1])
    if st.session_state.get(STOPPED_LOADS, {}).get(side) == key:
        st.warning(f"Stopped loading {what}; nothing was kept.", icon=":material/stop_circle:")
        st.button("Load it again", key=f"own_load_again_{side.lower()}", on_click=_load_again, args=(side,),
                  icon=":material/refresh:")
        return None
    loads = st.session_state.setdefault(LOADS_STATE, {})
    job = loads.get(side)
    if job is None or job.key != key:  # a new choice abandons the side's previous load
        if job is not None:
            job.stop()
        job = loads[side] = ModelLoad(key, what).start(lambda job: job.in_turn(load))
    progress = st.empty()  # the Stop button and the seconds so far, cleared when the load ends
    progress.container().button("Stop loading", key=f"own_stop_load_{side.lower()}", on_click=_stop_load,
                                args=(side,), icon=":material/stop_circle:")
    slot = st.empty()
    if not jobs.follow(job, slot):
        return None
    del loads[side]
    progress.empty()
    slot.empty()
    if job.failure is not None:
        st.session_state.setdefault(FAILED_LOADS, {})[side] = (key, job.failure)
        raise RepresentationError(job.failure)
    kept[key] = job.result
    while len(kept) > MODELS_KEPT:
        kept.popitem(last=False)[1].close()  # its worker process
    st.rerun()  # draw the side without the Stop button and the progress line


def _digest(file) -> str:
    return hashlib.sha256(file.getvalue()).hexdigest()


def model_picker(side: str) -> ModelChoice | None:
    """Where one side's model comes from, and which of its layers to compare (None while waiting
    or after an error shown here)."""
    key = side.lower()
    launched = [str(p) for p in launch_models()]
    sources = {k: v for k, v in MODEL_SOURCES.items() if (k != "launch" or launched) and (k != "hub" or hub_allowed())}
    where = choose(st.radio, "Model from", sources, key=f"cmp_{key}_model_source", horizontal=True,
                   help="Upload a .zip of a Hugging Face model directory (config.json, model.safetensors and its "
                        "tokenizer or image processor), a .onnx or a .pt2 (torch.export.save) file; add a "
                        "tokenizer.json for an ONNX or .pt2 language model. Nothing in a file runs as code.")
    if where == "upload":
        files = st.file_uploader("Model file (and its tokenizer.json)", accept_multiple_files=True,
                                 key=f"cmp_{key}_model_files")
        if not files:
            st.info("Upload a model to compare it. Formats: .zip of a Hugging Face directory, .onnx, .pt2.")
            return None
        model_files = [f for f in files if f.name.lower().endswith(own.MODEL_SUFFIXES)]
        tokenizers = [f for f in files if f.name.lower().endswith(".json")]
        others = [f.name for f in files if f not in model_files and f not in tokenizers]
        if len(model_files) != 1 or others or len(tokenizers) > 1:
            raise RepresentationError("upload one model file (.zip of a Hugging Face directory, .onnx or .pt2) and at "
                                      "most one tokenizer.json" + (f"; {', '.join(others)} is neither" if others else ""))
        model_file, tokenizer = model_files[0], tokenizers[0] if tokenizers else None
        data, tokenizer_data = model_file.getvalue(), tokenizer.getvalue() if tokenizer else None
        model = loaded_model(side, ("upload", _digest(model_file), model_file.name,
                                    _digest(tokenizer) if tokenizer else ""), model_file.name,
                             lambda worker: own.load_model(data, model_file.name, tokenizer=tokenizer_data, threads=1,
                                                            worker=worker))
    elif where == "launch":
        path = st.selectbox("Model", launched, key=f"cmp_{key}_model_launch", bind="query-params")
        mtime = Path(path).stat().st_mtime if Path(path).exists() else 0.0
        model = loaded_model(side, ("path", path, mtime), Path(path).name,
                             lambda worker: own.load_model(path, threads=1, worker=worker))
    else:
        hub_id = st.text_input("Hugging Face Hub id", key=f"cmp_{key}_hub", placeholder="e.g. bert-base-uncased")
        if not hub_id:
            return None
        model = loaded_model(side, ("hub", hub_id.strip()), hub_id.strip(),
                             lambda worker: own.load_model(hub_id.strip(), allow_hub=True, threads=1, worker=worker))
    if model is None:
        return None
    st.caption(f"**{model.name}** — {model.format}, {len(model.layers)} layers, reads {model.input_kind}s.")
    names = [layer.name for layer in model.layers]
    chosen = st.multiselect("Layers", names, default=list(model.default_layers), key=f"cmp_{key}_own_layers_{model.digest[:8]}",
                            bind="query-params",
                            help="Default: its blocks (hidden states of a Hugging Face model; modules ending in a "
                                 "number, after the embeddings, for ONNX and .pt2).")
    if not chosen:
        st.warning(f"Pick at least one layer of side {side}.")
        return None
    return ModelChoice(side, model, tuple(n for n in names if n in chosen))


def inputs_panel(kinds: set[str]):
    """The examples every model reads (the same ones, in the same order): the built-in sentences or
    an upload of texts, images or arrays. None while waiting for an upload."""
    kind_text = " and ".join(sorted(kinds))
    options = INPUT_SOURCES if kinds == {own.TEXT} else {"upload": INPUT_SOURCES["upload"]}
    where = choose(st.radio, f"Inputs ({kind_text})", options, key="cmp_inputs_source", horizontal=True,
                   help="Both models read exactly these examples, in this order; their digest goes into the sanity "
                        "panel and the export.")
    if where == "builtin":
        count = st.slider("Sentences", 20, 500, DEFAULT_SENTENCES, step=20, key="cmp_inputs_count",
                          bind="query-params", help="English sentences written for this project (nothing downloads).")
        return own.builtin_sentences(int(count))
    files = st.file_uploader("Inputs: .txt/.csv (one text per line), PNG/JPEG images or a .zip of them, .npy/.npz "
                             "arrays named as the model's inputs", accept_multiple_files=True, key="cmp_inputs_files")
    if not files:
        st.info("Upload the inputs both models read.")
        return None
    return _read_inputs(tuple((f.name, _digest(f)) for f in files), [(f.name, f.getvalue()) for f in files])


@st.cache_resource(max_entries=4, scope="session", show_spinner="Reading the inputs…")
def _read_inputs(names: tuple, _files: list[tuple[str, bytes]]):
    images = [f for f in _files if f[0].lower().endswith(own.IMAGE_SUFFIXES)]
    if images and len(images) == len(_files):
        return own.read_images(images, f"{len(images)} uploaded file(s)")
    if len(_files) != 1:
        raise RepresentationError("upload one file of texts or arrays, or image files (or a .zip of images).")
    return own.read_inputs(_files[0][1], _files[0][0])


def reduction_choice(choices: list[ModelChoice]) -> tuple[str, dict[str, str]]:
    """How a layer becomes rows, among the reductions that apply to the chosen layers."""
    options: dict[str, str] = {}
    for choice in choices:
        options.update(own.reductions_for(choice.model, choice.layers))
    if not options:
        return "flatten", {}
    default = reduction.DEFAULTS[reduction.TOKENS] if "mean" in options else reduction.DEFAULTS[reduction.MAP]
    how = choose(st.radio, "Each layer becomes rows by", options, key="cmp_reduction", horizontal=True,
                 default=default, help="Token sequences: mean over the real tokens, the first ([CLS]) or last token, or "
                                       "every token as a row. Feature maps: global average pool, flatten, or every "
                                       "position as a row. The choice changes CKA; the section below shows by how much.")
    return how, options


def _store() -> OrderedDict:
    return st.session_state.setdefault(RUN_STATE, OrderedDict())


def request_stop() -> None:
    st.session_state["own_stop"] = True


def run(choice: ModelChoice, examples, hows: tuple[str, ...]):
    """{reduction: Representations} of the chosen layers on ``examples``, from one forward pass per
    batch (kept per session); a progress bar and a Stop button while it runs. None if stopped."""
    key = (choice.key, examples.digest, hows)
    store = _store()
    if key in store:
        store.move_to_end(key)
        return store[key]
    st.session_state["own_stop"] = False
    stop = st.empty()
    stop.button("Stop", key=f"own_stop_{choice.side}", on_click=request_stop, icon=":material/stop_circle:")
    bar = st.progress(0.0, text=f"{choice.model.name}: starting…")

    def progress(done: int, total: int, seconds: float) -> None:
        rate = done / seconds if seconds > 0 else 0.0
        bar.progress(done / total, text=f"{choice.model.name} ({choice.model.format}): {done} of {total} examples, "
                                        f"{rate:.0f}/s, {(total - done) / rate if rate else 0:.0f} s left")

    try:
        result = own.represent_all(choice.model, examples, choice.layers, hows, batch_size=BATCH_SIZE,
                                   progress=progress, should_stop=lambda: st.session_state.get("own_stop", False))
    except own.Stopped as stopped:
        st.warning(f"Stopped after {stopped.done} of {stopped.total} examples; nothing was kept.",
                   icon=":material/stop_circle:")
        return None
    finally:
        stop.empty()
        bar.empty()
    store[key] = result
    while len(store) > STORE_SIZE:
        store.popitem(last=False)
    return result


def all_reductions(options: dict[str, str], chosen: str, rows: int) -> tuple[str, ...]:
    """The reductions run together: the chosen one first, then the others that apply (row-expanding
    ones only while they stay under 20,000 rows' worth of tokens, estimated from ``rows``)."""
    cheap = [how for how in options if how not in reduction.ROW_EXPANDING]
    expanding = [how for how in options if how in reduction.ROW_EXPANDING and rows * 64 <= 20_000]
    return tuple(dict.fromkeys([chosen, *cheap, *expanding]))


def rows_are_dependent(how: str) -> bool:
    """Whether the reduction's rows are tokens or positions (several per example), not examples."""
    return how in reduction.ROW_EXPANDING


def same_rows(runs) -> bool:
    """Whether every side's rows belong to the same examples in the same order (true for one row per
    example; for tokens, only when the tokenizers split every text alike)."""
    owners = [r.example_of_row for r in runs]
    return all(np.array_equal(owners[0], o) for o in owners[1:])


def register(choice: ModelChoice, representations, examples) -> str:
    """The loaded model in the registry, so that the sidebar (and so every pitfall page) can pick it."""
    return models.register_loaded(choice.model, representations, examples)
