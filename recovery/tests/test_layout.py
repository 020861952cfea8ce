"""The folder list is the architecture: rooms import only the rooms below them, in no cycle.

From the bottom up: exceptions.py, db/ (plumbing), gates/ (outside facts), sweep/ (the pure
core), selectors.py (reads), services/ (writes), ops/ (how runs are seen), then the glue
(admin/, api/, management/, views.py, demo/, apps.py, the models shim). Also: the pure core
reads no ORM and no clock, and every test module that starts processes says so (CI runs them
once more at a moved clock) and says which clock its outcome assumes.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings

RECOVERY = Path(settings.BASE_DIR) / "recovery"
TESTS = RECOVERY / "tests"
ROOMS = ["exceptions", "db", "gates", "sweep", "selectors", "services", "ops", "glue"]
GLUE = {"admin", "api", "management", "templatetags", "views", "demo", "apps", "models", "__init__"}
# What a test module uses to start a process (directly or through a helper that does).
PROCESS_STARTERS = {
    "subprocess",
    "recovery.tests.sites",
    "recovery.tests.proof_worker",
    "recovery.tests.server_scenario",
    "recovery.tests.galera",
    "recovery.tests.test_processes",
    "recovery.tests.backend_harness",
}
CLOCK_READS = {
    ("timezone", "now"),
    ("datetime", "now"),
    ("datetime", "utcnow"),
    ("time", "time"),
    ("date", "today"),
}


def room_of(module: str) -> str:
    """`recovery.db.models` -> "db"; the app's top-level glue modules -> "glue"."""
    first = module.split(".")[1]
    return "glue" if first in GLUE else first


def source_modules() -> Iterator[tuple[str, ast.Module]]:
    for path in sorted(RECOVERY.rglob("*.py")):
        relative = path.relative_to(RECOVERY.parent)
        if relative.parts[1] in {"tests", "migrations"}:
            continue
        name = ".".join(relative.with_suffix("").parts).removesuffix(".__init__")
        yield name, ast.parse(path.read_text(), filename=str(path))


def imported(tree: ast.AST, *, top_level_only: bool = False) -> set[str]:
    """The recovery modules a module imports (`from recovery import x` names module x)."""
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("recovery.")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "recovery" or node.module.startswith("recovery."):
                # `from package import module` imports that module; `from module import name`, the module.
                for alias in node.names:
                    submodule = f"{node.module}.{alias.name}"
                    found.add(
                        submodule
                        if (RECOVERY.parent / f"{submodule.replace('.', '/')}.py").exists()
                        else node.module
                    )
    return found


MODULES = {name: tree for name, tree in source_modules() if name != "recovery"}


def test_the_rooms_are_the_ones_described() -> None:
    assert {room_of(m) for m in MODULES} == set(ROOMS)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_a_room_imports_only_itself_and_the_rooms_below(module: str) -> None:
    rank = ROOMS.index(room_of(module))
    above = {m for m in imported(MODULES[module]) if ROOMS.index(room_of(m)) > rank}
    assert above == set(), f"{module} ({room_of(module)}) imports higher rooms"


def test_no_import_cycle() -> None:
    graph = {m: {i for i in imported(t, top_level_only=True) if i in MODULES} for m, t in MODULES.items()}
    state: dict[str, str] = {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for target in sorted(graph[module]):
            if state.get(target) == "open":
                raise AssertionError(" -> ".join([*path[path.index(target) :], target]))
            if target not in state:
                visit(target, [*path, target])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])


@pytest.mark.parametrize("module", sorted(m for m in MODULES if room_of(m) == "sweep"))
def test_the_pure_core_reads_no_orm_and_no_clock(module: str) -> None:
    tree = MODULES[module]
    imports = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imports |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert {i for i in imports if i.startswith(("django.db", "recovery.db.models", "os", "pathlib"))} == set()
    calls = {
        (node.func.value.id, node.func.attr)
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and isinstance(node.func.value, ast.Name)
    }
    assert calls & CLOCK_READS == set()


def suite_modules() -> Iterator[tuple[Path, ast.Module]]:
    for path in sorted(TESTS.glob("test_*.py")):
        yield path, ast.parse(path.read_text(), filename=str(path))


def starts_processes(tree: ast.Module) -> bool:
    names = {a.name for n in tree.body if isinstance(n, ast.Import) for a in n.names}
    names |= {n.module or "" for n in tree.body if isinstance(n, ast.ImportFrom)}
    return bool(names & PROCESS_STARTERS)


def marked_processes(tree: ast.Module) -> bool:
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "pytestmark" for t in node.targets):
            return "pytest.mark.processes" in ast.unparse(node.value)
    return False


PROCESS_MODULES = [(p, t) for p, t in suite_modules() if starts_processes(t)]


def test_the_process_modules_are_found() -> None:
    names = {p.stem for p, _ in PROCESS_MODULES}
    assert {"test_processes", "test_proof_concurrency", "test_database_crash", "test_serving"} <= names


@pytest.mark.parametrize("path,tree", PROCESS_MODULES, ids=[p.stem for p, _ in PROCESS_MODULES])
def test_every_module_that_starts_processes_is_marked_and_names_its_clock(
    path: Path, tree: ast.Module
) -> None:
    assert marked_processes(tree), f"{path.name}: pytestmark lacks pytest.mark.processes"
    module_says = "clock" in (ast.get_docstring(tree) or "").lower()
    silent = [
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef)
        and node.name.startswith("test_")
        and not module_says
        and "clock" not in (ast.get_docstring(node) or "").lower()
    ]
    assert silent == [], f"{path.name}: tests whose docstring says no clock"
