"""The package's import graph (DESIGN.md, Layout): no cycles, no arrow from a lower layer to a
higher one, front ends that never see the engines. Read from the source with ``ast``: every
``import`` counts, including those inside functions (a lazy import is still a dependency)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "matcher"

#: Built from C, not read here: the only module anything may import from any layer.
#: the compiled modules (src/*.pyx, one extension module each): below every layer
COMPILED = {f"matcher.{p.stem}" for p in (PACKAGE.parent / "src").glob("*.pyx")}

#: Arrows that break the rules below and are still to be removed (issue 17), each with why it
#: is there. A new one fails the test; removing one of these makes its entry fail too, so this
#: list is always exact.
KNOWN: set[tuple[str, str]] = set()

#: Layers, lowest first: a module may import its own layer's modules and lower ones only.
LAYERS = [
    {"matcher.errors", "matcher.ir", "matcher.fields", "matcher.jsonio", "matcher._files", "matcher._optional",
     "matcher.record", "matcher._notes"},
    {"matcher.ops"},
    {"matcher.s1ql", "matcher.s1ql.lexer", "matcher.s1ql.parser", "matcher.s1ql.printer", "matcher.s1ql.cards",
     "matcher.reference", "matcher.regex_prefilter", "matcher.compiler", "matcher._arrow", "matcher.mapping", "matcher.inputs"},
    {"matcher.sigma.filters", "matcher.sigma.loader", "matcher.sigma.logsource",
     "matcher.sigma.placeholders", "matcher.sigma.translate", "matcher.sigma.options", "matcher.rules", "matcher.correlation.rule",
     "matcher.correlation.values", "matcher.correlation.results", "matcher.correlation.engine",
     "matcher.correlation.reference", "matcher.correlation"},
    {"matcher.api"},
    {"matcher.sigma", "matcher.sigma.public", "matcher.explain", "matcher.parallel", "matcher.datasets", "matcher.testing",
     "matcher.coverage", "matcher.selftest", "matcher.spark", "matcher.correlation.cli"},
    {"matcher.cli", "matcher.__main__", "matcher", "matcher.data"},
]

#: What the front ends, the reference and the compiler may import (DESIGN.md: the IR is the hub).
FRONT_ENDS = ("matcher.s1ql", "matcher.sigma")
#: Modules inside a front end's package that are not the front end: matcher.sigma.public turns
#: the Sigma loader's records into Rules through api (the layer above api, as the package's
#: __init__ that re-exports it), as api does for S1QL.
NOT_FRONT_END = {"matcher.sigma.public"}
ENGINES = {"matcher.api", "matcher.compiler", "matcher._core", "matcher.reference", "matcher._arrow"}
ONLY = {
    "matcher.reference": {"matcher.ir", "matcher.ops"},
    "matcher.compiler": {"matcher.ir", "matcher.ops", "matcher.fields", "matcher.errors", "matcher.regex_prefilter"},
    "matcher.regex_prefilter": {"matcher.ops"},
    "matcher.fields": set(),
    "matcher.record": {"matcher.ir"},
    "matcher.ir": set(),
}


def _modules() -> dict[str, tuple[Path, str]]:
    """module name -> (file, the package its relative imports start from)."""
    out = {}
    for f in sorted(PACKAGE.rglob("*.py")):
        parts = list(f.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
            pkg = ".".join(parts)
        else:
            pkg = ".".join(parts[:-1])
        out[".".join(parts)] = (f, pkg)
    return out


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    known = set(mods) | COMPILED

    def targets(module: str, names: list[str]) -> list[str]:
        out = []
        for n in names:
            if f"{module}.{n}" in known:  # from package import submodule
                out.append(f"{module}.{n}")
            elif module in known:
                out.append(module)
        return out

    graph: dict[str, set[str]] = {}
    for name, (path, pkg) in mods.items():
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = pkg.split(".")[: len(pkg.split(".")) - (node.level - 1)]
                    module = ".".join(base + ([node.module] if node.module else []))
                else:
                    module = node.module or ""
                if module == "matcher" or module.startswith("matcher."):
                    edges.update(targets(module, [a.name for a in node.names]))
            elif isinstance(node, ast.Import):
                edges.update(a.name for a in node.names if a.name in known)
        edges.discard(name)
        graph[name] = edges
    return graph


GRAPH = _graph()


def _layer(module: str) -> int:
    for i, layer in enumerate(LAYERS):
        if module in layer:
            return i
    raise AssertionError(f"{module} is in no layer of tests/test_import_graph.py: add it (and to DESIGN.md)")


def test_every_module_has_a_layer():
    for m in GRAPH:
        _layer(m)


def test_no_upward_arrow():
    up = {(a, b) for a, edges in GRAPH.items() for b in edges if b not in COMPILED and _layer(b) > _layer(a)}
    assert up - KNOWN == set(), "imports from a higher layer"
    assert KNOWN - up == set(), "gone: remove them from KNOWN"


def _cycle_edges() -> set[tuple[str, str]]:
    """Edges that lie on a cycle (Tarjan's strongly connected components)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    comps: list[set[str]] = []
    counter = [0]

    def visit(v: str) -> None:  # the graph is small: recursion is fine
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in GRAPH.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on.discard(w)
                comp.add(w)
                if w == v:
                    break
            comps.append(comp)

    for v in sorted(GRAPH):
        if v not in index:
            visit(v)
    return {(a, b) for comp in comps if len(comp) > 1 for a in comp for b in GRAPH[a] if b in comp}


def test_no_cycles():
    """Every cycle goes through a known upward arrow: dropping those leaves a graph without cycles."""
    saved = {a: set(e) for a, e in GRAPH.items()}
    try:
        for a, b in KNOWN:
            GRAPH[a].discard(b)
        assert _cycle_edges() == set()
    finally:
        GRAPH.clear()
        GRAPH.update(saved)


@pytest.mark.parametrize("module", sorted(m for m in GRAPH if m.startswith(FRONT_ENDS) and m not in NOT_FRONT_END))
def test_front_ends_never_see_the_engines(module):
    seen = {b for b in GRAPH[module] if b in ENGINES} - {b for a, b in KNOWN if a == module}
    assert seen == set()


@pytest.mark.parametrize("module", sorted(ONLY))
def test_low_modules_import_only_what_they_may(module):
    assert GRAPH[module] <= ONLY[module]


def test_s1ql_front_end_does_not_load_sigma():
    assert not any(b.startswith("matcher.sigma") for m in GRAPH if m.startswith("matcher.s1ql") for b in GRAPH[m])

