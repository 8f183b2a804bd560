"""The one registry of networks: every page and the sidebar ask it, never ``sample_models``.

Three kinds of entry have the same interface (:class:`Network`):

* **zoo** networks ship with the app (trained on scikit-learn's digits); their modules and
  activations live in caches shared by every session and are read-only;
* **fine-tuned** networks were made on the Manipulate page in this browser session; their weights
  live in the session and their activations in session-scoped caches;
* **loaded** networks are the user's own (Hugging Face, ONNX, torch.export), loaded on the Compare
  page; their layers are the ones run there, on the inputs and with the reduction chosen there.

Each entry is identified for caching by ``Network.key``: ``zoo:<name>``, ``finetuned:<SHA-256 of
the weights>`` or ``loaded:<SHA-256 of the file>:<inputs>:<reduction>``, so a key names its content
and never two different networks. What a network supports is in its flags (``run_from_layers``,
``relu_mlp``, ``trained``, ``kind``), so pages offer only what works and say why the rest is not.
"""
from __future__ import annotations

import copy
import functools
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import streamlit as st
import torch
from torch import nn

import sample_models
from cka_core import RepresentationError, capture
from cka_core.pitfalls import directions
from cka_core.pitfalls.manipulation import evaluation_map

from .arrays import readonly, readonly_rows

ZOO, FINETUNED, LOADED = "zoo", "finetuned", "loaded"
#: How many fine-tuned networks a session keeps (oldest dropped first).
MAX_FINETUNED = 5
FINETUNED_STATE = "finetuned_networks"  # session state: name -> what rebuilds the network
LOADED_STATE = "loaded_networks"        # session state: name -> the network's entry and its layers
MAX_LOADED = 4


@dataclass(frozen=True)
class Network:
    """What the pages need to know about a network, without running it."""

    name: str                         # what the user picks and a link holds
    key: str                          # names the content: the cache key of everything computed from it
    kind: str                         # ZOO or FINETUNED
    description: str
    architecture: str                 # the zoo network whose architecture it has (loaded: an id of the file)
    layers: tuple[str, ...]           # layers worth comparing, forward order
    run_from_layers: tuple[str, ...]  # layers the network can continue from (an edited representation)
    trained: bool                     # False for the zoo's controls (untrained, shuffled labels)
    relu_mlp: bool                    # a ReLU MLP: the function-preserving edits apply

    def can_run_from(self, layer: str | None) -> bool:
        return layer in self.run_from_layers


# ------------------------------------------------------------------------------ the registry
def digits() -> sample_models.Digits:
    """The inputs every registered network reads: scikit-learn's digits, fixed train/test split."""
    return sample_models.digits()


def zoo_names() -> list[str]:
    return list(sample_models.available())


def finetuned_names() -> list[str]:
    """Networks fine-tuned in this browser session, oldest first."""
    return list(st.session_state.get(FINETUNED_STATE, {}))


def loaded_names() -> list[str]:
    """The user's own networks loaded on the Compare page in this browser session."""
    return list(st.session_state.get(LOADED_STATE, {}))


def names(*, trained: bool = False, relu_mlp: bool = False, finetuned: bool = True, loaded: bool = False) -> list[str]:
    """Registered networks with the asked-for flags: the zoo's first, then this session's fine-tunes
    (and, when asked, the user's own loaded networks)."""
    candidates = zoo_names() + (finetuned_names() if finetuned else []) + (loaded_names() if loaded else [])
    return [name for name in candidates
            if (not trained or get(name).trained) and (not relu_mlp or get(name).relu_mlp)]


def get(name: str) -> Network:
    """The registry entry called ``name``; a RepresentationError names the networks there are."""
    if name in sample_models.ZOO:
        return _zoo_entry(name)
    entry = st.session_state.get(FINETUNED_STATE, {}).get(name) or st.session_state.get(LOADED_STATE, {}).get(name)
    if entry is None:
        raise RepresentationError(f"no network called {name!r}: pick one of {', '.join(names())}, or fine-tune one "
                                  "on the Manipulate page (fine-tuned networks last for this browser session).")
    return entry["network"]


@st.cache_resource(max_entries=32)
def _zoo_entry(name: str) -> Network:
    spec, net = sample_models.ZOO[name], _zoo_module(name)
    return Network(name, f"{ZOO}:{name}", ZOO, spec.description, name, tuple(sample_models.layer_names(net)),
                   tuple(sample_models.run_from_layers(net)), spec.role == "trained", _is_relu_mlp(spec.config))


def _is_relu_mlp(config: dict) -> bool:
    return config.get("kind") == "mlp" and config.get("activation") == "relu"


# ------------------------------------------------------------------------------ modules
# Room for the whole zoo (26 networks, 5 MB of weights): the registry builds every entry's layer list from its
# module, so a smaller cache would reload networks from disk on every run that lists them.
@st.cache_resource(max_entries=64, show_spinner="Loading the network…")
def _zoo_module(name: str) -> nn.Module:
    return sample_models.load(name)


@st.cache_resource(max_entries=MAX_FINETUNED, scope="session")
def _finetuned_module(key: str, _state: dict[str, torch.Tensor], architecture: str) -> nn.Module:
    net = copy.deepcopy(_zoo_module(architecture))
    net.load_state_dict(_state)
    return net.eval().requires_grad_(False)


def module(name: str) -> nn.Module:
    """The network as a module, shared: never edit it or attach hooks (use :func:`private_copy`)."""
    network = get(name)
    if network.kind == ZOO:
        return _zoo_module(name)
    if network.kind == LOADED:
        raise RepresentationError(f"{name} is a loaded {network.description.split(' ')[0]} model: its layers come "
                                  "from the Compare page; weights-level tools (null spaces, edits, training) need a "
                                  "network of the zoo.")
    state = st.session_state[FINETUNED_STATE][name]["state"]
    return _finetuned_module(network.key, state, network.architecture)


def private_copy(name: str) -> nn.Module:
    """A copy of the network that the caller may edit, hook or train."""
    return copy.deepcopy(module(name))


# ------------------------------------------------------------------------------ activations
def capture_rows(net: nn.Module, inputs: np.ndarray, layers, dtype=np.float64) -> dict[str, np.ndarray]:
    """Activations of ``layers`` on ``inputs`` (forward hooks on a private copy), one read-only row
    per example (``dtype=None`` keeps the network's precision)."""
    return {name: readonly_rows(values, dtype) for name, values in capture(copy.deepcopy(net), inputs, layers).items()}


class CapturedSplit(Mapping):
    """One split's layers of a network, name -> read-only (examples, features) float64 array.

    The network runs on the split's digits when a layer is first read, not before (the registry lists
    every network, and most pages read only the test split), and the layers are kept at the network's
    own precision: the float64 array each read hands out is the exact widening of what is kept. A
    64-step RNN's 65 layers on both splits were 60 MB in float64; a class's server held the whole zoo."""

    def __init__(self, layers: tuple[str, ...], capture_all):
        self._layers, self._capture_all = layers, capture_all

    def __getitem__(self, layer: str) -> np.ndarray:
        if layer not in self._layers:
            raise KeyError(layer)
        return readonly_rows(self._capture_all()[layer])

    def __iter__(self):
        return iter(self._layers)

    def __len__(self) -> int:
        return len(self._layers)


def _splits(layers: tuple[str, ...], capture_split) -> dict[str, CapturedSplit]:
    """{"test": ..., "train": ...}, each captured on first read by ``capture_split(split)``."""
    return {split: CapturedSplit(layers, functools.partial(capture_split, split)) for split in ("test", "train")}


def _split_inputs(split: str) -> np.ndarray:
    return digits().X_test if split == "test" else digits().X_train


# Every network's test split fits (the zoo's 26 are 85 MB at their own precision); a training split is four times
# larger (a 64-step RNN's 24 MB) and read only for probes, so fewer of those are kept.
@st.cache_resource(max_entries=32, show_spinner="Capturing activations…")
def _zoo_test_split(name: str) -> dict[str, np.ndarray]:
    return capture_rows(_zoo_module(name), digits().X_test, _zoo_entry(name).layers, dtype=None)


@st.cache_resource(max_entries=8, show_spinner="Capturing activations…")
def _zoo_train_split(name: str) -> dict[str, np.ndarray]:
    return capture_rows(_zoo_module(name), digits().X_train, _zoo_entry(name).layers, dtype=None)


def _zoo_split(name: str, split: str) -> dict[str, np.ndarray]:
    return _zoo_test_split(name) if split == "test" else _zoo_train_split(name)


@st.cache_resource(max_entries=2 * MAX_FINETUNED, scope="session", show_spinner="Capturing activations…")
def _finetuned_split(key: str, name: str, split: str) -> dict[str, np.ndarray]:
    return capture_rows(module(name), _split_inputs(split), get(name).layers, dtype=None)


def activations(name: str) -> Mapping[str, Mapping[str, np.ndarray]]:
    """Every layer of the network on the digits ``"test"`` and ``"train"`` splits: read-only
    (examples, features) float64 arrays, each split captured on first use and shared. A loaded
    network has only ``"test"``: its layers on the inputs run on the Compare page."""
    network = get(name)
    if network.kind == ZOO:
        return _splits(network.layers, functools.partial(_zoo_split, name))
    if network.kind == LOADED:
        return {"test": st.session_state[LOADED_STATE][name]["layers"]}
    return _splits(network.layers, functools.partial(_finetuned_split, network.key, name))


def is_constant(layer: np.ndarray) -> bool:
    """Whether every example (row) gives the same values, up to float32 round-off: CKA is 0/0 there."""
    layer = np.asarray(layer, dtype=np.float64)  # a float32 mean of equal values is off by ~1e-6 itself
    centred = layer - layer.mean(axis=0)
    return not np.any(np.abs(centred) > 1e-7 * (1.0 + np.abs(layer).max()))


@st.cache_data(max_entries=64, show_spinner="Checking which layers vary across the digits…")
def _constant_layers(key: str, name: str) -> tuple[str, ...]:
    layers = activations(name)["test"]
    return tuple(layer for layer in layers if is_constant(layers[layer]))


def constant_layers(name: str) -> tuple[str, ...]:
    """The network's layers that are the same for every test digit (e.g. the first steps of an RNN that
    has read only pixels blank in every digit)."""
    return _constant_layers(get(name).key, name)


def varying_layers(name: str) -> list[str]:
    """The network's layers in forward order but its constant ones: what a page offers to compare
    (every measure is 0/0 on a constant layer)."""
    constant = constant_layers(name)
    return [layer for layer in get(name).layers if layer not in constant]


def labels(name: str) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(labels of the "test" rows, of the "train" rows): the digits' classes, or for a loaded network
    the labels given with its inputs (None without)."""
    if get(name).kind == LOADED:
        return st.session_state[LOADED_STATE][name]["labels"], None
    return digits().y_test, digits().y_train


def inputs_description(name: str) -> str:
    """What the network's rows are, for captions."""
    if get(name).kind == LOADED:
        return st.session_state[LOADED_STATE][name]["inputs"]
    return f"the {len(digits().y_test)} test digits"


@st.cache_resource(max_entries=32)
def _layer_shapes(key: str, _net: nn.Module, layers: tuple[str, ...]) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape[1:]) for k, v in capture(copy.deepcopy(_net), digits().X_test[:2], layers).items()}


def layer_shapes(name: str) -> dict[str, tuple[int, ...]]:
    """Per-example output shape of each layer, before flattening (e.g. (16, 8, 8) for a conv map)."""
    network = get(name)
    return _layer_shapes(network.key, module(name), network.layers)


def zoo_twin(name: str) -> str | None:
    """The zoo network that is ``name``'s architecture at initialisation, never trained, if the zoo has one."""
    untrained = "mlp_untrained"
    return untrained if sample_models.ZOO[get(name).architecture].config == sample_models.ZOO[untrained].config else None


@st.cache_resource(max_entries=8, show_spinner="Capturing an untrained twin…")
def _untrained_twin(architecture: str) -> tuple[str, dict[str, np.ndarray]]:
    twin = zoo_twin(architecture)
    if twin is not None:
        return f"{twin} (the same architecture, never trained)", activations(twin)["test"]
    spec = sample_models.ZOO[architecture]
    with torch.random.fork_rng():  # torch's global random state is left untouched
        torch.manual_seed(spec.seed)
        net = sample_models.build(spec.config).eval()
    layers = capture_rows(net, digits().X_test, sample_models.layer_names(architecture))
    return f"a fresh {architecture} initialised with seed {spec.seed}, never trained", layers


def untrained_twin(name: str) -> tuple[str, dict[str, np.ndarray]]:
    """(what it is, test-split layers) of an untrained network with ``name``'s architecture: the
    zoo's mlp_untrained where the architecture matches, else a fresh initialisation with the
    architecture's own seed."""
    return _untrained_twin(get(name).architecture)


# ------------------------------------------------------------------------------ running on
def run_from(name: str, layer: str, representation: np.ndarray) -> np.ndarray:
    """Logits of the network continued from an (edited) representation of ``layer``."""
    return sample_models.run_from(module(name), layer, representation)


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    return sample_models.accuracy(logits, labels)


@st.cache_data(max_entries=64)
def _test_accuracy(key: str, name: str) -> float:
    return accuracy(sample_models.predict(module(name), digits().X_test), digits().y_test)


def test_accuracy(name: str) -> float:
    """The network's accuracy on the digits test split."""
    return _test_accuracy(get(name).key, name)


@st.cache_data(max_entries=64, show_spinner="Computing the CKA map…")
def _cka_map(key: str, name: str, layers: tuple[str, ...], split: str) -> np.ndarray:
    inputs = digits().X_test if split == "test" else digits().X_train
    return evaluation_map(private_copy(name), inputs, layers)


def cka_map(name: str, layers: tuple[str, ...], split: str = "test") -> np.ndarray:
    """Full-data debiased linear CKA between ``layers`` of the network on one digits split."""
    return readonly(_cka_map(get(name).key, name, tuple(layers), split))


def _example_input(net: nn.Module) -> torch.Tensor:
    return torch.zeros(2, net.input_dim, dtype=next(net.parameters()).dtype)


@st.cache_data(max_entries=128)
def _next_layer(key: str, name: str, layer: str) -> tuple[np.ndarray | None, str | None]:
    if get(name).kind == LOADED:
        return None, "it needs the network's weights as a torch module, which a loaded network does not expose here"
    net = module(name)
    try:
        weight = directions.next_layer_weight(copy.deepcopy(net), layer, _example_input(net))
    except RepresentationError as error:
        return None, str(error)
    if directions.null_space_dim(weight) == 0:
        reading = ", ".join(name for name, _ in directions.readers(copy.deepcopy(net), layer, _example_input(net)))
        return None, (f"{layer} has {weight.shape[1]} units and {reading} reads them through a {weight.shape[0]} × "
                      f"{weight.shape[1]} weight of full column rank, so every direction changes what it computes: "
                      "no translation of this layer is invisible to the network.")
    return readonly(weight), None


def next_layer_null_space(name: str, layer: str) -> tuple[np.ndarray | None, str | None]:
    """(the weight of the layer(s) reading ``layer``, None) when that weight has a null space, a
    direction the rest of the network cannot see; (None, why not) otherwise."""
    return _next_layer(get(name).key, name, layer)


# ------------------------------------------------------------------------------ fine-tuned networks
def weights_digest(net: nn.Module) -> str:
    """SHA-256 of a module's weights (names and values), the identity of a fine-tuned network."""
    digest = hashlib.sha256()
    for name, tensor in sorted(net.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().numpy().tobytes())
    return digest.hexdigest()


def finetuned_entry(net: nn.Module, architecture: str, target: str, accuracy_after: float) -> tuple[str, dict]:
    """(name, what the session keeps) for a network fine-tuned from zoo network ``architecture``
    toward ``target``: its registry entry and a copy of its weights. The name,
    ``<architecture> → <target> #<digest>``, is unique."""
    digest = weights_digest(net)
    name = f"{architecture} → {target.lower()} #{digest[:6]}"
    base = _zoo_entry(architecture)
    network = Network(name, f"{FINETUNED}:{digest}", FINETUNED,
                      f"{architecture} fine-tuned in this session toward “{target}” (test accuracy "
                      f"{100 * accuracy_after:.1f}%).", architecture, base.layers, base.run_from_layers, True,
                      base.relu_mlp)
    return name, {"network": network, "state": {k: v.detach().clone() for k, v in net.state_dict().items()}}


def register_finetuned(net: nn.Module, architecture: str, target: str, accuracy_after: float) -> str:
    """Keep a fine-tuned network for this browser session (the oldest beyond MAX_FINETUNED is
    dropped); returns its name."""
    name, entry = finetuned_entry(net, architecture, target, accuracy_after)
    stored = dict(st.session_state.get(FINETUNED_STATE, {}))
    stored.pop(name, None)
    stored[name] = entry
    while len(stored) > MAX_FINETUNED:
        stored.pop(next(iter(stored)))
    st.session_state[FINETUNED_STATE] = stored
    return name


def register_loaded(model, representations, examples) -> str:
    """Make a loaded model's layers (reduced as on the Compare page) available to every page for this
    session; returns its name. Registering it again (other inputs or reduction) replaces its layers."""
    name = f"{model.name} ({model.format})"
    key = f"{LOADED}:{model.digest}:{representations.examples_digest[:16]}:{representations.reduction}"
    rows = representations.example_of_row
    network = Network(name, key, LOADED, f"{model.format} model {model.name} (your own), {model.input_kind} inputs; "
                      f"layers reduced with '{representations.reduction}' on {examples.source}.",
                      f"loaded-{model.digest[:12]}", tuple(representations.layers), (), True, False)
    stored = dict(st.session_state.get(LOADED_STATE, {}))
    stored.pop(name, None)
    stored[name] = {"network": network, "layers": {k: readonly(v) for k, v in representations.layers.items()},
                    "labels": None if examples.labels is None else readonly(np.asarray(examples.labels)[rows]),
                    "inputs": f"{len(rows):,} rows from {examples.source}"}
    while len(stored) > MAX_LOADED:
        stored.pop(next(iter(stored)))
    st.session_state[LOADED_STATE] = stored
    return name
