"""matcher/_core.pyi must describe the compiled module exactly: the same public names, the same
members of each class, and the same parameters wherever the compiled objects expose them
(issue 17)."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

from matcher import _core

STUB = Path(__file__).resolve().parent.parent / "matcher" / "_core.pyi"


def _stub() -> ast.Module:
    return ast.parse(STUB.read_text(encoding="utf-8"))


def _public(names) -> set[str]:
    return {n for n in names if not n.startswith("_")}


def _defined(body) -> dict[str, ast.AST]:
    out: dict[str, ast.AST] = {}
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            out[node.name] = node
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            out[node.target.id] = node
    return out


def test_the_stub_names_every_public_name_of_the_module():
    stub = _public(_defined(_stub().body))
    module = _public(n for n in dir(_core) if not inspect.ismodule(getattr(_core, n)))
    assert stub == module


@pytest.mark.parametrize("cls", [c.name for c in _stub().body if isinstance(c, ast.ClassDef)])
def test_each_class_has_the_members_the_stub_gives_it(cls):
    node = _defined(_stub().body)[cls]
    stub = _public(_defined(node.body))
    assert stub == _public(dir(getattr(_core, cls)))


def _functions():
    tree = _stub()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            yield node.name, getattr(_core, node.name), node
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and not item.name.startswith("__"):
                    yield f"{node.name}.{item.name}", getattr(getattr(_core, node.name), item.name), item


@pytest.mark.parametrize("name,obj,node", list(_functions()), ids=lambda x: x if isinstance(x, str) else "")
def test_signatures_match_where_introspectable(name, obj, node):
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        pytest.skip(f"{name}: the compiled object gives no signature")
    stub = [a.arg for a in node.args.posonlyargs + node.args.args + node.args.kwonlyargs]
    assert list(sig.parameters) == stub
