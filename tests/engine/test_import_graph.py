"""The layering DESIGN.md draws, read from the source: no import cycle anywhere (a lazy import
inside a function counts too, since it only hides the cycle), the engine never reaches into
the service, and the spec package is a leaf the rest of the engine stands on."""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx
import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("engine", "service", "workers", "client")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {
        _module_name(path): path
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
    }


def _imported(node: ast.AST, module: str, is_package: bool, known: set[str]) -> set[str]:
    """The project modules one import statement loads, wherever in the file it stands."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:
            anchor = module.split(".")
            anchor = anchor if is_package else anchor[:-1]
            anchor = anchor[: len(anchor) - (node.level - 1)]
            base = ".".join([*anchor, base] if base else anchor)
        # `from package import module` loads the module; `from module import name`, the module.
        names = [
            f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
            for alias in node.names
        ]
    else:
        return set()
    return {name for name in names if name in known}


def import_graph() -> nx.DiGraph:
    modules = _modules()
    known = set(modules)
    graph = nx.DiGraph()
    graph.add_nodes_from(known)
    for module, path in modules.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        is_package = path.name == "__init__.py"
        for node in ast.walk(tree):
            for target in _imported(node, module, is_package, known):
                if target != module:
                    graph.add_edge(module, target)
    return graph


@pytest.fixture(scope="module")
def graph() -> nx.DiGraph:
    return import_graph()


def test_the_graph_sees_lazy_imports_inside_functions(graph: nx.DiGraph) -> None:
    # The reader finds the imports a module makes anywhere, or the cycle test could pass
    # on a cycle that is only deferred.
    assert graph.number_of_edges() > 100
    assert graph.has_edge("engine.spec", "engine.spec.data")
    assert graph.has_edge("service.app", "service.jobs.router")


def test_no_module_imports_itself_back_through_others(graph: nx.DiGraph) -> None:
    cycles = [sorted(component) for component in nx.strongly_connected_components(graph)]
    assert [c for c in cycles if len(c) > 1] == []


def test_the_engine_knows_nothing_of_the_service_workers_or_client(graph: nx.DiGraph) -> None:
    outward = [
        (source, target)
        for source, target in graph.edges
        if source.startswith("engine") and not target.startswith("engine")
    ]
    assert outward == []


def test_the_spec_package_is_a_leaf_of_the_engine(graph: nx.DiGraph) -> None:
    allowed = ("engine.spec", "engine.errors")
    upward = [
        (source, target)
        for source, target in graph.edges
        if source.startswith("engine.spec")
        and not any(target == a or target.startswith(a + ".") for a in allowed)
    ]
    assert upward == []


def test_the_client_imports_nothing_of_the_other_packages(graph: nx.DiGraph) -> None:
    assert [
        (s, t) for s, t in graph.edges if s.startswith("client") and t.split(".")[0] != "client"
    ] == []


def test_the_service_reaches_workers_only_by_task_name(graph: nx.DiGraph) -> None:
    assert [
        (s, t) for s, t in graph.edges if s.startswith("service") and t.startswith("workers")
    ] == []


def test_batch_predictions_share_the_leased_work_kernel_not_the_jobs_code(
    graph: nx.DiGraph,
) -> None:
    # Every kind of leased work stands on service.core, none on another kind's code.
    kinds = ("service.batch_predictions", "service.jobs", "service.evaluations")
    across = [
        (s, t)
        for s, t in graph.edges
        for a in kinds
        for b in kinds
        if a != b and s.startswith(a + ".") and t.startswith(b + ".")
    ]
    assert across == []
