"""Pages are thin: they read widgets, call ``ui`` or ``cka_core``, and draw.

Checked on the source of every page file (AST), so a page that starts computing is caught in review:

* no page imports ``sample_models`` (networks come from the registry, ``ui.sources.models``) nor a numerical
  library (numpy, scipy, torch, pandas, sklearn), so no page can build or transform an array;
* no arithmetic: the only binary operators allowed join strings (``+`` or ``%`` with text) or offset
  a count by a whole number (``len(layers) - 1``); no ``@``, no augmented assignment, no unary minus
  but on a constant. Everything else (means, margins, grids, deltas for display) lives in ``ui/``;
* each page is a ``main()`` plus named section functions: the module body holds only imports,
  constants, function definitions, the frame call and one ``main()`` call.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = sorted((ROOT / "pages").glob("*.py"))
FORBIDDEN_IMPORTS = ("sample_models", "numpy", "scipy", "torch", "pandas", "sklearn")


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def _is_text(node: ast.AST) -> bool:
    if isinstance(node, ast.Constant):
        return isinstance(node.value, str)
    if isinstance(node, ast.JoinedStr):
        return True
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _is_text(node.left) or _is_text(node.right)
    return False


def _is_count_offset(node: ast.BinOp) -> bool:
    """``len(x) - 1``, ``i + 1``-style offsets of a count by a whole-number constant."""
    whole = [side for side in (node.left, node.right)
             if isinstance(side, ast.Constant) and type(side.value) is int]
    counted = [side for side in (node.left, node.right)
               if isinstance(side, ast.Call) and isinstance(side.func, ast.Name) and side.func.id == "len"]
    return isinstance(node.op, (ast.Add, ast.Sub)) and bool(whole) and bool(counted)


def _annotations(tree: ast.AST) -> set[int]:
    """ids of the nodes inside type annotations (``X | None`` there is not arithmetic)."""
    roots = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.returns is not None:
            roots.append(node.returns)
        elif isinstance(node, (ast.arg, ast.AnnAssign)) and node.annotation is not None:
            roots.append(node.annotation)
    return {id(inner) for root in roots for inner in ast.walk(root)}


def arithmetic(tree: ast.AST) -> list[str]:
    """Every arithmetic operation in ``tree`` that is not joining text or offsetting a count."""
    found = []
    skip = _annotations(tree)
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.BinOp):
            text = _is_text(node) or (isinstance(node.op, ast.Mod) and _is_text(node.left))
            if not text and not _is_count_offset(node):
                found.append(f"line {node.lineno}: {ast.unparse(node)}")
        elif isinstance(node, ast.AugAssign):
            found.append(f"line {node.lineno}: {ast.unparse(node)}")
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd, ast.Invert)):
            if not isinstance(node.operand, ast.Constant):
                found.append(f"line {node.lineno}: {ast.unparse(node)}")
    return found


def imported_modules(tree: ast.AST) -> list[str]:
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
    return names


def loose_statements(tree: ast.Module) -> list[str]:
    """Module-level statements other than imports, constants, definitions and the two calls a page makes."""
    allowed_calls = {"inside_app_frame", "main"}
    loose = []
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.ClassDef)):
            continue
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):  # the docstring
            continue
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and all(
                isinstance(t, ast.Name) and t.id.isupper() for t in (node.targets if isinstance(node, ast.Assign) else [node.target])):
            continue
        if (isinstance(node, ast.Expr) and isinstance(node.value, ast.Call) and isinstance(node.value.func, ast.Name)
                and node.value.func.id in allowed_calls and not node.value.args):
            continue
        loose.append(f"line {node.lineno}: {ast.unparse(node).splitlines()[0]}")
    return loose


@pytest.mark.parametrize("path", PAGES, ids=lambda p: p.name)
def test_page_imports_no_numerics_and_no_sample_models(path):
    bad = [m for m in imported_modules(_tree(path)) if m.split(".")[0] in FORBIDDEN_IMPORTS]
    assert not bad, f"{path.name} imports {bad}: ask ui/ (ui.sources.models for networks) instead"


@pytest.mark.parametrize("path", PAGES, ids=lambda p: p.name)
def test_page_does_no_arithmetic(path):
    found = arithmetic(_tree(path))
    assert not found, f"{path.name} computes; move it into ui/: " + "; ".join(found)


@pytest.mark.parametrize("path", PAGES, ids=lambda p: p.name)
def test_page_is_a_main_and_named_sections(path):
    tree = _tree(path)
    assert any(isinstance(n, ast.FunctionDef) and n.name == "main" for n in tree.body), f"{path.name} has no main()"
    loose = loose_statements(tree)
    assert not loose, f"{path.name} runs code outside main() and its sections: " + "; ".join(loose)


# The checker itself, on code it must refuse and code it must let through.
@pytest.mark.parametrize("code", [
    "x = X[shown] - mean", "d = 100 * (a - b)", "z = a @ b", "t += 1", "y = -values", "f'{100 * x:.1f}'",
    "k = n // 2", "r = len(a) * 2",
])
def test_the_checker_finds_arithmetic(code):
    assert arithmetic(ast.parse(code))


@pytest.mark.parametrize("code", [
    "s = 'a' + b", "s = f'{x:.3f}' + ' pts'", "s = 'A' + 'B' + c", "i = len(layers) - 1", "m = '%d' % n",
    "v = X[shown]", "y = -1", "ok = a < b", "def f(x: int | None) -> tuple[int, str] | None: pass",
])
def test_the_checker_lets_text_and_indexing_through(code):
    assert not arithmetic(ast.parse(code))
