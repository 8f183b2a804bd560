"""Mutated model files (bytes flipped, cut, inserted) never escape as anything but a
RepresentationError from the in-process loaders: the checks before onnxruntime and torch parse
stranger's bytes, so they must fail cleanly however the bytes lie."""
from __future__ import annotations

import functools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cka_core import RepresentationError, models
from tests import model_files as mf

from .test_worker import _onnx_with_input_driven


@functools.lru_cache(maxsize=None)
def _seeds() -> dict[str, bytes]:
    return {"small.onnx": _onnx_with_input_driven("memory"), "bert.onnx": mf.onnx_bytes(mf.bert_directory()),
            "bert.pt2": mf.pt2_bytes(mf.bert_directory())}


@st.composite
def _mutated(draw, name: str) -> bytes:
    data = bytearray(_seeds()[name])
    for _ in range(draw(st.integers(1, 4))):
        where = draw(st.integers(0, len(data) - 1))
        how = draw(st.sampled_from(["flip", "cut", "insert", "zero"]))
        if how == "flip":
            data[where] ^= draw(st.integers(1, 255))
        elif how == "cut":
            del data[where:where + draw(st.integers(1, 64))]
        elif how == "insert":
            data[where:where] = draw(st.binary(min_size=1, max_size=16))
        else:
            data[where:where + 8] = bytes(min(8, len(data) - where))
    return bytes(data)


@pytest.mark.parametrize("name", ["small.onnx", "bert.onnx", "bert.pt2"])
def test_mutated_models_fail_cleanly(name):
    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    @given(_mutated(name))
    def check(data):
        try:
            models.load_model(data, name, tokenizer=None if name == "small.onnx" else mf.tokenizer_json(mf.bert_directory()))
        except RepresentationError as error:
            assert str(error).strip() and "\n" not in str(error).strip()

    check()
