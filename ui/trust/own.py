"""Your own group of models for the grounding tests that need only a group (accuracy and output
correlation, layer monotonicity): read from one uploaded .npz per model, or taken from the networks
loaded on the Compare page. Files are parsed without unpickling (``cka_core.io``), within the
upload limits of :mod:`ui.sources.limits`; each test says in one sentence why the group cannot go
through it."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import streamlit as st

from cka_core import RepresentationError
from cka_core.io import LABEL_KEYS, activation_layers, load_representations
from cka_core.trust import GROUP_TESTS, TESTS, Member
from cka_core.trust.grounding import design

from ..sources import data, limits, models
from ..sources.arrays import readonly, readonly_rows

#: The tests a group of models goes through without groups of its own (ReSi's group-separation tests
#: need models trained in known, different ways).
OWN_TESTS = tuple(t for t in TESTS if t not in GROUP_TESTS)
SOURCES = {"upload": "Uploaded activations (.npz per model)", "loaded": "Models loaded on Compare"}
LOGITS = "logits"
MAX_MODELS = 20


@dataclass(frozen=True)
class Group:
    """The user's models as the tests take them, and what names their content (the cache key)."""

    members: tuple[Member, ...]
    digest: str
    source: str  # for the caption: where the models come from


# ------------------------------------------------------------------------------ uploads
def _labels(arrays: dict, filename: str, first_layer: str) -> np.ndarray | None:
    labels, problem = data.class_labels(arrays, first_layer)
    if problem is not None:
        raise RepresentationError(f"{filename!r}: {problem}")
    return labels


def _member(filename: str, arrays: dict) -> tuple[Member, np.ndarray | None]:
    logits = arrays.get(LOGITS)
    rest = {k: v for k, v in arrays.items() if k != LOGITS and k not in LABEL_KEYS}
    if not rest:
        raise RepresentationError(f"{filename!r} holds no layers besides {LOGITS!r} and the labels; save the model's "
                                  "layers too: np.savez('model.npz', layer1=a1, layer2=a2, logits=z, labels=y).")
    layers = activation_layers(rest, filename)  # refuses a file of weights
    labels = _labels(arrays, filename, next(iter(layers)))
    if logits is not None and (logits.ndim != 2 or logits.shape[1] < 2):
        raise RepresentationError(f"{filename!r}: '{LOGITS}' has shape {logits.shape}; save the (examples, classes) "
                                  "output of the model, one column per class.")
    member = Member(Path(filename).stem, {k: readonly_rows(v) for k, v in layers.items()},
                    None if logits is None else readonly_rows(logits))
    return member, labels


@st.cache_resource(max_entries=2, scope="session", show_spinner="Reading the activations…")
def _read_uploads(files: tuple[tuple[str, str], ...], _raws: tuple[bytes, ...]) -> tuple[Member, ...]:
    """The uploaded models, keyed on (file name, SHA-256) of each file; labels (in at least one
    file) are given to every model, and must agree where several files hold them."""
    if len(files) > MAX_MODELS:
        raise RepresentationError(f"{len(files)} files: this page takes at most {MAX_MODELS} models; upload fewer.")
    parsed, total = [], 0
    for (name, _), raw in zip(files, _raws):  # the uploader takes .npz files only
        arrays = load_representations(raw, name, max_values=limits.MAX_VALUES)
        total += sum(a.size for a in arrays.values())
        if total > limits.MAX_VALUES:
            raise RepresentationError(f"the files hold more than {limits.count(limits.MAX_VALUES)} values in all, over "
                                      "what this page reads for one group; use fewer examples, layers or models.")
        parsed.append(_member(name, arrays))
    given = [(m.name, y) for m, y in parsed if y is not None]
    for name, y in given[1:]:
        if y.shape != given[0][1].shape or not np.array_equal(y, given[0][1]):
            raise RepresentationError(f"the labels in {name!r} differ from those in {given[0][0]!r}; every model must "
                                      "read the same examples in the same order (save the labels once, or the same).")
    labels = readonly(given[0][1]) if given else None
    return tuple(Member(m.name, m.layers, m.logits, labels) for m, _ in parsed)


def uploaded_group(files) -> Group:
    """The group of uploaded .npz files (Streamlit's UploadedFile objects)."""
    named = tuple((f.name, data.digest(f.getvalue())) for f in files)
    names = [Path(n).stem for n, _ in named]
    if len(set(names)) != len(names):
        raise RepresentationError("two files have the same name; name each model's file differently (the name is "
                                  "the model's name in the tables).")
    members = _read_uploads(named, tuple(f.getvalue() for f in files))
    digest = hashlib.sha256("|".join(d for _, d in named).encode()).hexdigest()[:16]
    return Group(members, digest, f"{len(members)} uploaded file(s)")


# ------------------------------------------------------------------------------ loaded on the Compare page
def _inputs_of(name: str) -> str:
    """The part of a loaded network's key that names the inputs it ran on (and their reduction)."""
    return models.get(name).key.split(":", 2)[2]


def loaded_group(names: list[str]) -> Group:
    """The networks loaded on the Compare page: their layers run there, the layer whose name ends in
    'logits' as their output, and the labels given with the inputs."""
    inputs = {_inputs_of(n) for n in names}
    if len(inputs) > 1:
        raise RepresentationError("these models were run on different inputs (or reduced differently) on the Compare "
                                  "page; run them all on the same inputs with the same reduction.")
    members = []
    for name in names:
        layers = dict(models.activations(name)["test"])
        logits = next((k for k in layers if k.lower().endswith(LOGITS)), None)
        out = layers.pop(logits) if logits is not None else None
        if not layers:
            raise RepresentationError(f"{name}: only its logits were run on the Compare page; pick its hidden layers "
                                      "there too.")
        members.append(Member(name, layers, out, models.labels(name)[0]))
    digest = hashlib.sha256("|".join(models.get(n).key for n in names).encode()).hexdigest()[:16]
    return Group(tuple(members), digest, f"{len(members)} model(s) loaded on the Compare page")


# ------------------------------------------------------------------------------ which tests it can go through
def check(group: Group) -> tuple[dict[str, list[Member]], dict[str, str]]:
    """({test: members} for the tests the group fits, {test: why not} for the others), each test
    asked through the library's own design (the same checks the scorecard makes)."""
    fit, refused = {}, {}
    for test in OWN_TESTS:
        try:
            design(test, group.members)
        except RepresentationError as error:
            refused[test] = str(error)
        else:
            fit[test] = list(group.members)
    return fit, refused
