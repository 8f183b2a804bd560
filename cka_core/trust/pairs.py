"""A measure's value on many pairs of representations, each layer's per-layer work done once.

Each representation gets one :class:`~cka_core.measures.view.LayerView`, shared by every pair and
every measure it enters; each value is kept in a bounded cache keyed by the two representations'
digests and the measure with its parameters, so a second scorecard on the same models only reads.
A measure that cannot be computed for a pair gives its message, never a NaN.
"""
from __future__ import annotations

import functools
import hashlib
import inspect
import json
from collections import OrderedDict
from pathlib import Path

import numpy as np

from ..errors import RepresentationError
from ..measures.registry import MEASURES, MeasureInfo, parameter_defaults, prepared_options
from ..measures.view import LayerView

__all__ = ["Representation", "PairCache", "PAIR_CACHE", "measure_key", "pair_values"]


def digest(array: np.ndarray) -> str:
    """SHA-256 of an array's dtype, shape and bytes (the cache's name for it)."""
    a = np.ascontiguousarray(array)
    h = hashlib.sha256(f"{a.dtype.str}{a.shape}".encode())
    h.update(a.tobytes())
    return h.hexdigest()[:32]


class Representation:
    """One layer of one model on the shared inputs, (n, d), with its digest and its view (built once)."""

    def __init__(self, array, name: str):
        self.array = np.asarray(array)
        if self.array.ndim != 2:
            raise RepresentationError(f"{name}: a representation must be (examples, features), got shape "
                                      f"{self.array.shape}; flatten each example first.")
        self.name = name
        self.digest = digest(self.array)
        self._view: LayerView | None = None

    def view(self) -> LayerView:
        if self._view is None:
            self._view = LayerView.of(self.array, self.name)
        return self._view

    def forget_view(self) -> None:
        """Drop the view and its per-layer work (distance, cosine and kernel matrices: megabytes each)."""
        self._view = None


class PairCache:
    """Values (or error messages) of (representation, representation, measure) keyed by digests;
    least recently used entries leave first once ``max_entries`` are held. Optionally saved to and
    read from a JSON file (the command line's cache between runs)."""

    def __init__(self, max_entries: int = 200_000):
        self.max_entries = max_entries
        self._store: OrderedDict[str, float | str] = OrderedDict()

    def __len__(self) -> int:
        return len(self._store)

    def get(self, key: str):
        value = self._store.get(key)
        if value is not None:
            self._store.move_to_end(key)
        return value

    def put(self, key: str, value: float | str) -> None:
        self._store[key] = value
        self._store.move_to_end(key)
        while len(self._store) > self.max_entries:
            self._store.popitem(last=False)

    def clear(self) -> None:
        self._store.clear()

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(dict(self._store)))
        tmp.replace(path)

    def load(self, path: Path) -> None:
        """Read entries saved by :meth:`save`; a missing or unreadable file is an empty cache."""
        try:
            stored = json.loads(path.read_text())
        except (OSError, ValueError):
            return
        if isinstance(stored, dict):
            for key, value in stored.items():
                if isinstance(value, (float, int, str)):
                    self.put(key, value)


#: The process's cache of pair values.
PAIR_CACHE = PairCache()


@functools.lru_cache(maxsize=None)
def _code_digest(measure: str) -> str:
    """SHA-256 of the source files the measure's value comes from (its functions' modules and
    LayerView's): a value saved on disk by an older version of the measure is not read back."""
    info = MEASURES[measure]
    files = {inspect.getsourcefile(f) for f in (info.function, info.of, LayerView) if f is not None}
    h = hashlib.sha256()
    for file in sorted(f for f in files if f):
        h.update(Path(file).read_bytes())
    return h.hexdigest()[:16]


def measure_key(measure: str, options: dict) -> str:
    """The measure with its parameters (declared defaults filled in) and the digest of its code, as
    part of a cache key."""
    shown = {**parameter_defaults(measure), **{k: v for k, v in options.items() if k != "inputs"}}
    if "inputs" in options:
        shown["inputs"] = digest(np.asarray(options["inputs"]))
    return f"{measure}@{_code_digest(measure)}" + json.dumps(shown, sort_keys=True)


def _evaluate(info: MeasureInfo, a: Representation, b: Representation, options: dict, prepared: dict) -> float:
    if info.of is not None:
        return float(info.of(a.view(), b.view(), **prepared))
    return float(info.function(a.array, b.array, **options))


def _one(info: MeasureInfo, a: Representation, b: Representation, options: dict, prepared: dict) -> float | str:
    """The value on (a, b), or the reason it has none. An asymmetric measure is averaged over both
    orders, so that every pair has one value whichever model is listed first."""
    try:
        value = _evaluate(info, a, b, options, prepared)
        if not info.symmetric:
            value = (value + _evaluate(info, b, a, options, prepared)) / 2.0
    except (RepresentationError, np.linalg.LinAlgError) as error:
        return f"{info.name} failed on ({a.name}, {b.name}): {error}"
    if not np.isfinite(value):
        return f"{info.name} gave a non-finite value on ({a.name}, {b.name})."
    return value


def pair_values(reps: list[Representation], pairs, measure: str, options: dict | None = None,
                cache: PairCache | None = PAIR_CACHE) -> tuple[np.ndarray, str | None]:
    """(values (m,), None) of ``measure`` on ``pairs`` (index pairs into ``reps``), or (partial values,
    the first failure's message). ``options`` are the measure's keywords (parameters, ``inputs``)."""
    info = MEASURES[measure]
    options = dict(options or {})
    key = measure_key(measure, options)
    prepared = None
    values = np.empty(len(pairs))
    for k, (i, j) in enumerate(pairs):
        a, b = reps[i], reps[j]
        cell = f"{min(a.digest, b.digest)}|{max(a.digest, b.digest)}|{key}"
        value = cache.get(cell) if cache is not None else None
        if value is None:
            if prepared is None:
                try:
                    prepared = prepared_options(info, options, a.array.shape[0])
                except RepresentationError as error:
                    return values[:0], f"{measure}: {error}"
            value = _one(info, a, b, options, prepared)
            if cache is not None:
                cache.put(cell, value)
        if isinstance(value, str):
            return values[:k], value
        values[k] = value
    return values, None
