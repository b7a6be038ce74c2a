"""The house's floors: protocols < gamer < baselines < benchmark. A module imports only from its own
floor or those below (the model contract, `protocols.model`, sits under every model), and no two
modules import each other, at the top of the file or inside a function."""

from __future__ import annotations

import ast
import itertools
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FLOORS = ("protocols", "gamer", "baselines", "benchmark")


def _package(path: Path) -> str:
    return ".".join(path.parent.relative_to(ROOT).parts)


def _module_name(path: Path) -> str:
    package = _package(path)
    return package if path.stem == "__init__" else f"{package}.{path.stem}"


def _imports(path: Path) -> set[str]:
    """The project modules ``path`` imports: ``from a.b import c`` names ``a.b`` and ``a.b.c`` (c may
    be a module); relative imports count from the file's package."""
    named = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join([_package(path)] + ([base] if base else []))
            named |= {base} | {f"{base}.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.Import):
            named |= {alias.name for alias in node.names}
    return {name for name in named if name.split(".")[0] in FLOORS}


GRAPH = {_module_name(p): _imports(p) for floor in FLOORS for p in sorted((ROOT / floor).rglob("*.py"))}


def test_the_graph_was_read() -> None:
    assert {"protocols.model", "gamer.model", "baselines.registry", "benchmark.runner", "benchmark.kinds.cost"} <= set(
        GRAPH
    )
    assert "protocols.model" in GRAPH["gamer.estimator"]  # the parser sees a known edge


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_no_module_imports_from_a_floor_above_its_own(module: str) -> None:
    floor = FLOORS.index(module.split(".")[0])
    above = sorted(name for name in GRAPH[module] if FLOORS.index(name.split(".")[0]) > floor)
    assert not above, f"{module} ({FLOORS[floor]}) imports from a floor above: {above}"


def test_no_two_modules_import_each_other() -> None:
    mutual = [(a, b) for a, b in itertools.combinations(sorted(GRAPH), 2) if b in GRAPH[a] and a in GRAPH[b]]
    assert not mutual, f"modules that import each other: {mutual}"
