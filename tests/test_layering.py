"""The package's shape, checked on its source: no import cycles between modules, and the shared
layers (solvers, deq, stream engine, data I/O) import nothing task-specific.

Every import statement counts, including those inside functions (a function-level import is
still a dependency, only a later one); imports under ``if TYPE_CHECKING:`` are left out.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "streamdeq"

#: Layers that every task builds on; they must not know any task.
SHARED_LAYERS = ("streamdeq.solvers", "streamdeq.deq", "streamdeq.stream", "streamdeq.data")
#: Modules that hold task-specific knowledge.
TASK_SPECIFIC = ("streamdeq.tasks", "streamdeq.models.detection", "streamdeq.app")
#: Old import paths kept for one release; they only re-export, nobody imports them.
DEPRECATED_SHIMS = {
    "streamdeq.cli",
    "streamdeq.runner",
    "streamdeq.run_options",
    "streamdeq.demo",
    "streamdeq.render",
    "streamdeq.render_detection",
    "streamdeq.runtime",
    "streamdeq.models.detection.zoo",
    "streamdeq.train.tasks_detection",
    "streamdeq.experiments.streams",
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in SRC.joinpath(PACKAGE).rglob("*.py")}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _resolve(module: str, is_package: bool, level: int, target: str | None) -> str:
    if level == 0:
        return target or ""
    base = module.split(".")
    if not is_package:
        base = base[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([target] if target else []))


def imports_of(module: str) -> set[str]:
    """The project modules ``module`` imports (a name imported from a package that is itself a
    module counts as that module)."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(), str(path))
    skipped = {
        id(child)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and _is_type_checking(node)
        for stmt in node.body
        for child in ast.walk(stmt)
    }
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(module, path.name == "__init__.py", node.level, node.module)
            names = [
                f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names
            ]
        else:
            continue
        for name in names:
            while name and name not in MODULES:
                name = name.rpartition(".")[0]
            if name.startswith(PACKAGE) and name != module:
                found.add(name)
    return found


GRAPH = {m: imports_of(m) for m in MODULES if m not in DEPRECATED_SHIMS}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_import_graph_has_no_cycles():
    cycle = find_cycle(GRAPH)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


@pytest.mark.parametrize("layer", SHARED_LAYERS)
def test_shared_layers_import_nothing_task_specific(layer):
    offending = sorted(
        f"{module} -> {target}"
        for module, targets in GRAPH.items()
        if module == layer or module.startswith(layer + ".")
        for target in targets
        if any(target == t or target.startswith(t + ".") for t in TASK_SPECIFIC)
    )
    assert not offending, "; ".join(offending)


def test_the_library_does_not_import_the_application():
    offending = sorted(
        f"{module} -> {target}"
        for module, targets in GRAPH.items()
        if not module.startswith("streamdeq.app") and module != "streamdeq.__main__"
        for target in targets
        if target.startswith("streamdeq.app")
    )
    assert not offending, "; ".join(offending)


def test_no_module_imports_a_deprecated_path():
    offending = sorted(
        f"{module} -> {target}"
        for module, targets in GRAPH.items()
        for target in targets
        if target in DEPRECATED_SHIMS
    )
    assert not offending, "; ".join(offending)
