"""A model's weights are not activations: telling them apart, in one place.

CKA compares the activations of the same examples; a state_dict (``fc1.weight``, ``bn.running_mean``)
has rows that are units, not examples, and comparing it gives a number that means nothing. Every
path that reads arrays (an upload, the command line, ``--stream``, a folder of arrays) asks
:func:`weights_reason` before comparing, from the arrays' names and shapes only (``--stream`` never
reads the values), so that renamed keys (``a0, a1, …``) do not slip through.
"""
from __future__ import annotations

import math
import re
from collections.abc import Mapping

from ..errors import RepresentationError

#: Names of arrays that hold class labels, not activations: never compared as a layer.
LABEL_KEYS = ("labels", "y", "targets")

#: Names that parameters have in a torch state_dict, not activations.
WEIGHT_NAME = re.compile(r"(^|[._/])(weight|bias|running_mean|running_var|num_batches_tracked|in_proj_weight|"
                         r"in_proj_bias)$")

#: Gates stacked in the rows of a recurrent layer's matrices: LSTM (4 h, in), GRU (3 h, in).
RECURRENT_GATES = (4, 3)

Shape = tuple[int, ...]


def activation_layers(arrays: Mapping, filename: str) -> dict:
    """The arrays of a file that are activations: everything but the labels (:data:`LABEL_KEYS`).
    A file that looks like a model's weights (see :func:`weights_reason`) is refused."""
    layers = {k: v for k, v in arrays.items() if k not in LABEL_KEYS}
    if not layers:
        raise RepresentationError(f"{filename!r} only holds labels ({', '.join(arrays)}); add an array of "
                                  "activations (one row per example).")
    refuse_weights(layers, filename)
    return layers


def refuse_weights(arrays: Mapping, filename: str) -> None:
    """Raise the one message for a file whose arrays (name -> array or shape; labels left out) look
    like a model's weights rather than activations."""
    reason = weights_reason({k: v for k, v in arrays.items() if k not in LABEL_KEYS})
    if reason is not None:
        raise RepresentationError(
            f"{filename!r} looks like a model's weights (a state_dict), not activations: {reason}. CKA compares "
            "the activations of the same examples. Load the model itself (Compare → Your model: a Hugging Face "
            "directory, .onnx or .pt2), or capture its layers on your inputs with cka_core.capture(model, inputs, "
            "layers) and save that: np.savez('acts.npz', **acts).")


def weights_reason(arrays: Mapping) -> str | None:
    """Why ``arrays`` (name -> array, or name -> shape) look like parameters rather than
    activations, or None: their names (:func:`_names_reason`), else their shapes alone
    (:func:`_shapes_reason`)."""
    shapes = {name: tuple(int(n) for n in getattr(value, "shape", value)) for name, value in arrays.items()}
    return _names_reason(shapes) or _shapes_reason(shapes)


def _names_reason(shapes: dict[str, Shape]) -> str | None:
    """Parameters are named after what they are (``fc1.weight``, ``bn.running_mean``) and mix
    vectors (biases) with matrices whose rows are units, not examples."""
    names = list(shapes)
    named = [k for k in names if WEIGHT_NAME.search(k)]
    vectors = [k for k in names if len(shapes[k]) == 1]
    if named and len(named) * 2 >= len(names):
        return f"{len(named)} of its {len(names)} arrays are named like parameters ({', '.join(named[:3])}…)"
    if named and vectors and len(vectors) < len(names):
        return (f"it mixes 1-d vectors ({', '.join(vectors[:2])}) with matrices and has parameter names "
                f"({', '.join(named[:2])})")
    return None


def _shapes_reason(shapes: dict[str, Shape]) -> str | None:
    """Activations of one file share their number of rows (the examples); a state_dict's arrays have
    as many rows as their layer has units, so they differ, and chain: a bias beside its matrix, one
    layer's input width the previous layer's output. Two layouts share their rows and still show:
    BatchNorm's vectors beside its scalar counter, and a recurrent layer's stacked gates."""
    return _chain_reason(shapes) or _batchnorm_reason(shapes) or _recurrent_reason(shapes)


def _is_vector(shape: Shape) -> bool:
    """One value per row: (n,), or (n, 1) as ``--stream`` describes a 1-d array."""
    return len(shape) >= 1 and math.prod(shape[1:]) == 1


def _chain_reason(shapes: dict[str, Shape]) -> str | None:
    arrays = {k: s for k, s in shapes.items() if len(s) >= 1}
    rows = sorted({s[0] for s in arrays.values()})
    if len(rows) < 2:
        return None
    matrices = {k: s for k, s in arrays.items() if not _is_vector(s)}
    by_rows = {s[0]: k for k, s in matrices.items()}  # linear in the arrays: a file may hold thousands
    link = next((f"{v} {s} matches the rows of {by_rows[s[0]]} {matrices[by_rows[s[0]]]}, as a bias matches its "
                 "weight" for v, s in arrays.items() if _is_vector(s) and s[0] in by_rows), None)
    link = link or next((f"{a} {s} reads the {s[1]} outputs of {by_rows[s[1]]} {matrices[by_rows[s[1]]]}"
                         for a, s in matrices.items() if s[1] != s[0] and s[1] in by_rows), None)
    if link is None:
        return None
    return (f"its arrays have different numbers of rows ({', '.join(map(str, rows[:4]))}{'…' if len(rows) > 4 else ''}),"
            f" so the rows are not the same examples, and their shapes chain like layer parameters ({link})")


def _batchnorm_reason(shapes: dict[str, Shape]) -> str | None:
    scalars = [k for k, s in shapes.items() if len(s) == 0]
    lengths = [s[0] for s in shapes.values() if len(s) == 1]
    if scalars and any(lengths.count(n) >= 4 for n in lengths):
        return (f"it holds a scalar ({scalars[0]}) beside four vectors of one length, as BatchNorm holds weight, "
                "bias, running_mean, running_var and its num_batches_tracked counter")
    return None


def _recurrent_reason(shapes: dict[str, Shape]) -> str | None:
    # Recurrent biases are 1-D; an (n, 1) array is as likely one output per example (an activation).
    vectors = [s[0] for s in shapes.values() if len(s) == 1]
    for name, shape in shapes.items():
        if len(shape) == 2 and shape[1] >= 2 and vectors.count(shape[0]) >= 2:
            gates = next((g for g in RECURRENT_GATES if shape[0] == g * shape[1]), None)
            if gates is not None:
                return (f"{name} {shape} stacks {gates} gates of {shape[1]} units over its own output, beside two "
                        f"bias vectors of {shape[0]}, as {'an LSTM' if gates == 4 else 'a GRU'} layer does")
    return None
