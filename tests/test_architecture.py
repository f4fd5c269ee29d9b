"""The shape of the house, checked: the rules CONTRIBUTING.md states about where code may go.

Each rule here was true by habit until the house was reshaped (issue #20); a test keeps it true
when nobody is looking. They read the source with `ast`, so they cost milliseconds.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "dot_tasks"

# The limits the reshaping set: one module is what one person holds in mind, one
# function what one screen shows.
MODULE_LINES = 450
FUNCTION_LINES = 60


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _imports(name: str, path: Path, *, top_level_only: bool) -> tuple[set[str], set[str]]:
    """(modules of this package, third-party top-level names) that `path` imports."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = _tree(path)
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    ours: set[str] = set()
    theirs: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            for alias in node.names:
                (ours if alias.name.startswith("dot_tasks") else theirs).add(
                    alias.name.split(".")[0] if not alias.name.startswith("dot_tasks") else alias.name
                )
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0 and not (node.module or "").startswith("dot_tasks"):
                theirs.add((node.module or "").split(".")[0])
                continue
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            for alias in node.names:
                candidate = f"{target}.{alias.name}"
                ours.add(candidate if candidate in MODULES else target)
    return {m for m in ours if m in MODULES and m != name}, theirs


@pytest.mark.parametrize(
    "library, allowed",
    [
        ("dbt", ("dot_tasks.dbt",)),
        ("invoke", ("dot_tasks.commands", "dot_tasks.main", "dot_tasks.cli_grammar", "dot_tasks.cli_help", "dot_tasks.tasks")),
        ("jinja2", ("dot_tasks.templating", "dot_tasks.profiles")),
        ("grandalf", ("dot_tasks.report",)),
    ],
)
def test_a_library_is_imported_only_in_its_own_room(library: str, allowed: tuple[str, ...]) -> None:
    offenders = [
        name
        for name, path in MODULES.items()
        if library in _imports(name, path, top_level_only=False)[1]
        and not any(name == room or name.startswith(room + ".") for room in allowed)
    ]
    assert offenders == [], f"{library} imported outside {allowed}: {offenders}"


def test_the_parent_side_of_the_dbt_package_does_not_import_dbt_at_load() -> None:
    # `import dbt` costs about 2.5 s: resolve, worktree, profile, list and --help never pay it.
    child_only = [name for name in MODULES if name.startswith("dot_tasks.dbt.child")]
    assert child_only, "the dbt child modules moved: update this test"
    loaded_at_import = [
        name
        for name, path in MODULES.items()
        if name.startswith("dot_tasks.dbt") and name not in child_only and "dbt" in _imports(name, path, top_level_only=True)[1]
    ]
    assert loaded_at_import == []


def test_imports_run_one_way_lazy_ones_included() -> None:
    # An import inside a function (to keep dbt or Jinja off a fast path) still says which room
    # depends on which: a cycle there is a layering fault that only waits for a refactor to bite.
    graph = {name: _imports(name, path, top_level_only=False)[0] for name, path in MODULES.items()}
    # A package's __init__ re-exporting its own modules is not a cycle of rooms.
    for name, deps in graph.items():
        graph[name] = {d for d in deps if not name.startswith(d + ".")}
    seen: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        seen[node] = 1
        stack.append(node)
        for dep in sorted(graph[node]):
            if seen.get(dep) == 1:
                cycles.append([*stack[stack.index(dep) :], dep])
            elif dep not in seen:
                visit(dep, stack)
        stack.pop()
        seen[node] = 2

    for name in sorted(graph):
        if name not in seen:
            visit(name, [])
    assert cycles == []


def test_no_module_is_longer_than_one_person_holds() -> None:
    long = {name: n for name, path in MODULES.items() if (n := len(path.read_text(encoding="utf-8").splitlines())) > MODULE_LINES}
    assert long == {}


# Functions allowed past the limit, each with the reason it reads better whole.
LONG_FUNCTIONS: dict[str, str] = {}


def test_no_function_is_longer_than_a_screen() -> None:
    long = {}
    for name, path in MODULES.items():
        for node in ast.walk(_tree(path)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > FUNCTION_LINES and f"{name}.{node.name}" not in LONG_FUNCTIONS:
                    long[f"{name}.{node.name}"] = length
    assert long == {}


def test_every_public_name_says_what_it_is_for() -> None:
    missing = []
    for name, path in MODULES.items():
        tree = _tree(path)
        if not ast.get_docstring(tree):
            missing.append(name)
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and not node.name.startswith("_"):
                if not ast.get_docstring(node):
                    missing.append(f"{name}.{node.name}")
    assert missing == []
