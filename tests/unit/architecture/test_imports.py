"""The shape of the source tree: no import circles, pure domain modules, no oversized modules.

Every import counts, wherever it stands (module top, a function body, `if TYPE_CHECKING:`): a
circle hidden in a function or behind a type-checking guard is still two modules that cannot be
understood, tested or moved one without the other."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
SOURCES = [ROOT / "libs" / "common" / "credit_common", ROOT / "libs" / "demo" / "credit_demo", ROOT / "services"]
MAX_LINES = 500

# What a service's domain rules may import: the contract, the outcomes, the clock, the calendar
# and the identifiers; nothing that does I/O (design.md: the domain has no I/O).
DOMAIN_MAY_IMPORT = (
    "credit_common.contracts",
    "credit_common.outcomes",
    "credit_common.clock",
    "credit_common.calendar",
    "credit_common.identifiers",
    "credit_common.reference.catalog",
)


def _module_name(path: Path) -> str:
    """`libs/<lib>/<package>/...` and `services/...` as the modules they import as."""
    rel = path.relative_to(ROOT)
    if rel.parts[0] == "libs":
        rel = Path(*rel.parts[2:])
    parts = list(rel.with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _source_files() -> Iterator[Path]:
    for top in SOURCES:
        yield from sorted(p for p in top.rglob("*.py") if "__pycache__" not in p.parts)


def _imports(path: Path, modules: set[str]) -> set[str]:
    """The project modules `path` imports (`from pkg import mod` resolves to `pkg.mod` when that is
    a module)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            for alias in node.names:
                # `from pkg import mod` is an edge to the module; `from mod import name` to mod.
                found.add(f"{target}.{alias.name}" if f"{target}.{alias.name}" in modules else target)
    return {m for m in found if m in modules and m != name}


def _graph() -> dict[str, set[str]]:
    files = {_module_name(p): p for p in _source_files()}
    modules = set(files)
    return {name: _imports(path, modules) for name, path in files.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected component with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_circles() -> None:
    assert _cycles(_graph()) == []


def test_the_cycle_finder_finds_a_circle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


@pytest.mark.parametrize("service", ["designation", "sharing", "warning", "objection", "cases"])
def test_the_domain_imports_nothing_that_does_io(service: str) -> None:
    path = ROOT / "services" / service / "domain.py"
    modules = {_module_name(p) for p in _source_files()}
    project = _imports(path, modules)
    allowed = {m for m in project if m.startswith(DOMAIN_MAY_IMPORT)}
    assert project - allowed == set()
    third_party: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import | ast.ImportFrom) and not getattr(node, "level", 0):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            third_party.update(n.split(".")[0] for n in names)
    assert third_party.isdisjoint({"aiokafka", "asyncpg", "faststream", "fastapi", "httpx", "opentelemetry"})


def test_no_module_is_over_the_limit() -> None:
    long = {
        str(p.relative_to(ROOT)): n
        for p in _source_files()
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert long == {}, f"over {MAX_LINES} lines: split them"


def test_no_event_type_literal_outside_the_contracts_package() -> None:
    """Message types are named through `credit_common.contracts.types` or the models: a string
    literal is a type nobody checks against the contract (a typo routes nothing, silently)."""
    literal = re.compile(r"[\"']credit\.[a-z_]+\.[a-z_]+[\"']")
    contracts = ROOT / "libs" / "common" / "credit_common" / "contracts"
    found = [
        f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
        for path in _source_files()
        if contracts not in path.parents
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if literal.search(line)  # (topic names end in `.v1`: no match)
    ]
    assert found == []
