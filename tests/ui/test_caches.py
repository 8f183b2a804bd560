"""Every Streamlit cache in the app is bounded and keyed on small descriptors.

Streamlit hashes the arguments of a cached function to find its entry; for an array of more than
a million elements it hashes a *sample* of it, so two different large arrays can share an entry
and one user could be shown a result computed from another's data. Arrays, representations,
models and raw bytes are therefore passed with a leading underscore (not hashed) next to a digest
or descriptor that is; and a cache without ``max_entries`` grows with every user of a hosted demo.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCES = sorted([*ROOT.glob("ui/**/*.py"), *ROOT.glob("pages/*.py"), ROOT / "app.py"])
# Annotations of values that must never be hashed by Streamlit.
UNHASHABLE_BY_POLICY = ("ndarray", "Tensor", "Representation", "Module", "bytes", "dict", "DataFrame")


def _cached_functions():
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.FunctionDef):
                continue
            for decorator in node.decorator_list:
                call = decorator if isinstance(decorator, ast.Call) else None
                target = ast.unparse(call.func if call else decorator)
                if target in ("st.cache_data", "st.cache_resource"):
                    yield pytest.param(node, call, id=f"{path.relative_to(ROOT)}::{node.name}")


CACHED = list(_cached_functions())


def test_the_app_has_caches_to_check():
    assert len(CACHED) >= 40


@pytest.mark.parametrize(("function", "decorator"), CACHED)
def test_cache_is_bounded(function, decorator):
    keywords = {k.arg for k in decorator.keywords} if decorator else set()
    assert "max_entries" in keywords, f"{function.name}: add max_entries= so the cache cannot grow without bound"


@pytest.mark.parametrize(("function", "decorator"), CACHED)
def test_cache_key_holds_no_array_model_or_bytes(function, decorator):
    args = function.args
    for arg in [*args.posonlyargs, *args.args, *args.kwonlyargs]:
        if arg.arg.startswith("_"):
            continue
        annotation = ast.unparse(arg.annotation) if arg.annotation else ""
        assert arg.annotation is not None, f"{function.name}({arg.arg}): annotate hashed cache arguments"
        assert not any(word in annotation for word in UNHASHABLE_BY_POLICY), (
            f"{function.name}({arg.arg}: {annotation}) would be hashed by Streamlit (sampled for large "
            "arrays); pass it as _{arg.arg} next to a digest or descriptor")
