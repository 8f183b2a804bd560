"""How a layer's output becomes a representation (rows = examples, or tokens / positions).

A layer of a language model returns one vector per token, a convolution one per spatial position:
(n, tokens, d) and (n, channels, height, width). CKA needs one matrix, and the choice of how to get
there changes the value (the Compare page shows by how much; docs/theory.md §1.6):

* token sequences (n, t, d): ``mean`` over the tokens (padding left out), ``first`` token (BERT's
  and ViT's [CLS]), ``last`` token (the last real one: a decoder's summary), or ``tokens``: every
  real token is a row (the two sides must then have the same tokens);
* feature maps (n, c, h, w): ``flatten`` (n, c·h·w), ``avg_pool`` (global average, n x c), or
  ``positions``: every spatial position is a row (n·h·w, c);
* vectors (n, d) are used as they are; anything else is flattened per example.
"""
from __future__ import annotations

import numpy as np

from ..errors import RepresentationError

TOKENS, MAP, VECTOR = "tokens", "map", "vector"
TOKEN_REDUCTIONS = {"mean": "Mean over tokens", "first": "First token (CLS)", "last": "Last token",
                    "tokens": "Every token as a row"}
MAP_REDUCTIONS = {"flatten": "Flatten", "avg_pool": "Global average pool", "positions": "Every position as a row"}
REDUCTIONS = {**TOKEN_REDUCTIONS, **MAP_REDUCTIONS}
DEFAULTS = {TOKENS: "mean", MAP: "avg_pool"}
#: Reductions whose rows are tokens or positions, not examples.
ROW_EXPANDING = ("tokens", "positions")


def layer_kind(shape: tuple, input_kind: str) -> str:
    """What a per-example output shape holds: token vectors (text: (t, d); images: a ViT's (t, d)),
    a feature map ((c, h, w)) or a vector."""
    if len(shape) == 1:
        return VECTOR
    if len(shape) == 2:
        return TOKENS
    if len(shape) == 3:
        return MAP
    return VECTOR


def reduce(values: np.ndarray, how: str, mask: np.ndarray | None = None) -> np.ndarray:
    """``values`` (n, ...) of one batch as rows: see the module docstring. ``mask`` (n, t), 1 for real
    tokens and 0 for padding, applies to token sequences whose length is t."""
    values = np.asarray(values)
    n = values.shape[0]
    if values.ndim == 3 and how in TOKEN_REDUCTIONS:
        real = _mask(mask, values.shape[:2])
        if how == "mean":
            counts = real.sum(axis=1, keepdims=True)
            return (values * real[:, :, None]).sum(axis=1) / np.maximum(counts, 1)
        if how == "first":
            return values[:, 0]
        if how == "last":
            last = real.shape[1] - 1 - np.argmax(real[:, ::-1], axis=1)
            return values[np.arange(n), last]
        return values[real.astype(bool)]
    if values.ndim == 4 and how in MAP_REDUCTIONS:
        if how == "flatten":
            return values.reshape(n, -1)
        if how == "avg_pool":
            return values.mean(axis=(2, 3))
        return values.transpose(0, 2, 3, 1).reshape(-1, values.shape[1])
    if values.ndim <= 2:
        return values.reshape(n, -1)
    if how in REDUCTIONS:
        valid = TOKEN_REDUCTIONS if values.ndim == 3 else MAP_REDUCTIONS if values.ndim == 4 else {}
        raise RepresentationError(f"'{how}' does not apply to an output of shape {values.shape[1:]} per example; "
                                  f"use one of: {', '.join(valid) or 'none (it is flattened)'}.")
    raise RepresentationError(f"unknown reduction {how!r}; choose one of: {', '.join(REDUCTIONS)}.")


def _mask(mask: np.ndarray | None, shape: tuple[int, int]) -> np.ndarray:
    if mask is None:
        return np.ones(shape, dtype=np.float64)
    mask = np.asarray(mask)
    if mask.shape != shape:
        raise RepresentationError(f"the attention mask has shape {mask.shape} but the layer's tokens {shape}.")
    return (mask > 0).astype(np.float64)


def rows_per_example(how: str, values_shape: tuple, mask: np.ndarray | None) -> np.ndarray:
    """How many rows each example gives (1, or its real tokens, or h·w positions)."""
    n = values_shape[0]
    if how == "tokens" and len(values_shape) == 3:
        return _mask(mask, values_shape[:2]).sum(axis=1).astype(np.int64)
    if how == "positions" and len(values_shape) == 4:
        return np.full(n, values_shape[2] * values_shape[3], dtype=np.int64)
    return np.ones(n, dtype=np.int64)
