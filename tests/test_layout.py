"""The house rules of the layout: imports run one way, nothing imports in a circle (deferred imports
included), and an agent that only decorates loads OpenTelemetry, not pandas or numpy."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tests.paths import REPO

PACKAGES = ("instrumentation", "profiler", "reports")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for package in PACKAGES for p in (REPO / package).rglob("*.py")}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _runtime_imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import that can run, at any depth (functions included), but not under TYPE_CHECKING."""
    found: list[ast.Import | ast.ImportFrom] = []
    stack = [tree]
    while stack:
        node = stack.pop()
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                stack.extend(child.orelse)
                continue
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                found.append(child)
            stack.append(child)
    return found


def _edges(module: str) -> set[str]:
    """The project modules `module` imports: `from a.b import c` counts as a.b.c where c is a module."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    targets: set[str] = set()
    for node in _runtime_imports(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            base = node.module or ""
            if node.level:  # relative: resolve against this module's package
                package = module.split(".")[: -node.level if MODULES[module].name != "__init__.py" else None]
                base = ".".join([*package[: len(package) - node.level + 1], base]).strip(".")
            names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base for alias in node.names]
        targets.update(name for name in names if name in MODULES and name != module)
    return targets


GRAPH = {module: _edges(module) for module in MODULES}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_graph_sees_the_imports_it_must() -> None:
    # Guards the checks below against reading nothing: known edges of each kind are found.
    assert "profiler.attribution.ledger" in GRAPH["profiler.attribution.engine"]  # top level
    assert "profiler.traces.load" in GRAPH["profiler.capture.session"]  # deferred, inside a method
    assert "instrumentation.processor" in GRAPH["instrumentation._tracer"]


def test_nothing_imports_in_a_circle() -> None:
    assert _cycles(GRAPH) == []


def test_the_cycle_finder_finds_a_circle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_instrumentation_imports_nothing_of_ours_outside_itself() -> None:
    outside = {(module, target) for module, targets in GRAPH.items() if module.startswith("instrumentation")
               for target in targets if not target.startswith("instrumentation")}
    assert outside == set()


def test_only_the_command_line_and_a_session_s_report_reach_the_renderers() -> None:
    # reports -> profiler is the direction; the CLI and `Session.report()` are the two ends that
    # hand a ledger to a renderer.
    callers = {module for module, targets in GRAPH.items() if module.startswith("profiler")
               and any(target.startswith("reports") for target in targets)}
    assert callers <= {module for module in MODULES if module.startswith("profiler.cli")} | {
        "profiler.capture.session"}


@pytest.mark.parametrize("statement", ["import profiler; profiler.tool; profiler.llm; profiler.agent; profiler.step",
                                       "import instrumentation"])
def test_decorating_loads_neither_pandas_nor_numpy(statement: str) -> None:
    probe = f"{statement}; import sys; print(sorted({{'pandas', 'numpy'}} & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO, check=True)
    assert done.stdout.strip() == "[]"


def test_the_public_face_hands_on_its_heavy_names_on_first_use() -> None:
    probe = ("import sys, profiler; assert 'pandas' not in sys.modules; "
             "from profiler import load, attribute, Ledger, Run; print('pandas' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO, check=True)
    assert done.stdout.strip() == "True"
