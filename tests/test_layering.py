"""The layers hold: the store package owns every SQL statement on the tuning database (the
commands, the search, the outputs and sharing read and write through it); imports point down
the layers and form no cycle, function-level imports included."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import autotune

PACKAGE = Path(autotune.__file__).parent
# the store, and the digest cache (its own small SQLite file beside the user's cache, not the
# tuning database)
OWNERS = {*(PACKAGE / "store").glob("*.py"), PACKAGE / "digest.py"}
SQL = re.compile(r"\.execute(many|script)?\(|\bsqlite3\.connect\(|\bBEGIN IMMEDIATE\b")


def test_no_sql_outside_the_store() -> None:
    offenders = [
        f"{path.relative_to(PACKAGE)}:{number}: {line.strip()}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if path not in OWNERS
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if SQL.search(line)
    ]
    assert offenders == []


def test_the_check_finds_sql() -> None:
    assert SQL.search('    conn.execute("SELECT 1")')
    assert SQL.search("sqlite3.connect(path)")
    assert not SQL.search("executor.submit(job)")


def _imports() -> dict[str, set[str]]:
    """Every autotune module and the autotune modules it imports, function-level imports
    included (``from autotune.x import y`` counts as importing ``autotune.x.y`` when that is a
    module, else ``autotune.x``)."""
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                for alias in node.names:
                    sub = f"{node.module}.{alias.name}"
                    found.add(sub if sub in modules else node.module)
            elif isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
        graph[name] = {m for m in found if m in modules and m not in (name, "autotune")}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import cycles (strongly connected components of more than one module)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles_even_inside_functions() -> None:
    assert _cycles(_imports()) == []


def test_the_check_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


# lower layers never import higher ones: the store and the measurement know nothing of the
# search, the outputs or the commands; the search knows nothing of the commands
LOWER = ("autotune.store", "autotune.measure")
HIGHER = ("autotune.tuning", "autotune.output", "autotune.commands")


def test_imports_point_down_the_layers() -> None:
    wrong = sorted(
        f"{module} imports {imported}"
        for module, imported_set in _imports().items()
        for imported in imported_set
        if (module.startswith(LOWER) and imported.startswith(HIGHER))
        or (module.startswith("autotune.tuning") and imported.startswith("autotune.commands"))
    )
    assert wrong == []


MAX_FUNCTION_LINES = 80


def test_no_function_is_over_80_lines() -> None:
    """Small functions named for what they do; the migrations' table definitions aside (a
    migration is one table's columns, read at once)."""
    long = [
        f"{path.relative_to(PACKAGE)}:{node.lineno} {node.name} ({length} lines)"
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.name != "schema.py"
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and (length := (node.end_lineno or node.lineno) - node.lineno + 1) > MAX_FUNCTION_LINES
    ]
    assert long == []
