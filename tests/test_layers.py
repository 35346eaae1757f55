"""
The package's imports run one way: no cycle among our modules, nothing of ours imported
by the private-API floor (``twisted_journey._twisted``).

The imports are read from the source with :mod:`ast`, so every one counts, lazy imports
inside functions included (a lazy import that dodges a cycle is still a cycle); only
imports under ``if TYPE_CHECKING:`` are left out.  Importing a module runs its package's
``__init__`` too, but that implicit edge is not counted: a package's ``__init__`` may
gather its modules' public names.
"""

from __future__ import annotations

import ast
import os
from collections.abc import Iterator

from twisted.trial import unittest

import twisted_journey

#: The import edges that close a cycle (or climb out of ``_twisted``) tolerated until they
#: are fixed: none today.  A test fails when a listed edge is gone, so that an edge added
#: here while a fix is under way is removed once it no longer appears.
KNOWN: frozenset[tuple[str, str]] = frozenset()

#: The private-API floor: it imports nothing of ours.
PRIVATE = "twisted_journey._twisted"


def _modules() -> dict[str, str]:
    """
    Every module of the package: dotted name to source path.
    """
    root = os.path.dirname(os.path.abspath(twisted_journey.__file__))
    found: dict[str, str] = {}
    for directory, subdirectories, names in os.walk(root):
        subdirectories[:] = [d for d in subdirectories if d != "__pycache__"]
        package = os.path.relpath(directory, os.path.dirname(root)).replace(os.sep, ".")
        for name in names:
            if name.endswith(".py"):
                stem = name[:-3]
                module = package if stem == "__init__" else f"{package}.{stem}"
                found[module] = os.path.join(directory, name)
    return found


def _typeCheckingOnly(node: ast.If) -> bool:
    """
    Whether ``node`` is ``if TYPE_CHECKING:`` (or ``typing.TYPE_CHECKING``).
    """
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """
    Every import statement in ``tree``, at any depth, but not under ``if TYPE_CHECKING:``
    (its ``else:`` branch counts).
    """
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        if isinstance(node, ast.If) and _typeCheckingOnly(node):
            for child in node.orelse:
                yield from _imports(ast.Module(body=[child], type_ignores=[]))
            continue
        yield from _imports(node)


def importGraph() -> dict[str, set[str]]:
    """
    Each of our modules to the modules of ours it imports.
    """
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read(), path)
        isPackage = path.endswith("__init__.py")
        targets: set[str] = set()
        for node in _imports(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                base = node.module or ""
                if node.level:
                    parts = module.split(".")
                    keep = len(parts) - node.level + (1 if isPackage else 0)
                    base = ".".join([*parts[:keep], *([base] if base else [])])
                # "from package import module" imports the module; else the package.
                names = [
                    f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                    for alias in node.names
                ]
            for name in names:
                # "import a.b.c" of ours: the longest prefix that is one of our modules.
                while name and name not in modules:
                    name = name.rpartition(".")[0]
                if name and name != module:
                    targets.add(name)
        graph[module] = targets
    return graph


def cycleEdges(graph: dict[str, set[str]]) -> set[tuple[str, str]]:
    """
    The edges of ``graph`` that lie on a cycle: those inside one strongly connected
    component (Tarjan's algorithm, written iteratively).
    """
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    component: dict[str, int] = {}
    stack: list[str] = []
    onStack: set[str] = set()
    counter = 0
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        onStack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    onStack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in onStack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                while True:
                    member = stack.pop()
                    onStack.discard(member)
                    component[member] = index[node]
                    if member == node:
                        break
    return {
        (source, target)
        for source, targets in graph.items()
        for target in targets
        if component[source] == component.get(target)
    }


class ImportGraphTests(unittest.SynchronousTestCase):
    """
    The package's import graph, read from its source.
    """

    def test_graphSeesLazyImports(self) -> None:
        """
        The graph counts imports inside functions and leaves ``TYPE_CHECKING`` ones out,
        so the checks below see what they claim to.
        """
        source = (
            "from typing import TYPE_CHECKING\n"
            "if TYPE_CHECKING:\n"
            "    import b\n"
            "def f():\n"
            "    import c\n"
        )
        found = {alias.name for node in _imports(ast.parse(source)) for alias in node.names}
        self.assertEqual(found, {"TYPE_CHECKING", "c"})
        self.assertEqual(
            cycleEdges({"a": {"b"}, "b": {"a", "c"}, "c": set()}), {("a", "b"), ("b", "a")}
        )

    def test_noCycles(self) -> None:
        """
        No import cycle among our modules, but the known ones; each known one still
        exists (remove it from :data:`KNOWN` once fixed).
        """
        graph = importGraph()
        self.assertIn("twisted_journey.fetch.client", graph)
        cycles = cycleEdges(graph) - {edge for edge in KNOWN if edge[0] != PRIVATE}
        self.assertEqual(sorted(cycles), [], "import cycles (source, imported)")
        gone = {edge for edge in KNOWN if edge[1] not in graph.get(edge[0], ())}
        gone |= {edge for edge in KNOWN if edge[0] != PRIVATE and edge not in cycleEdges(graph)}
        self.assertEqual(sorted(gone), [], "fixed: remove these from KNOWN")

    def test_privateFloorImportsNothingOfOurs(self) -> None:
        """
        ``twisted_journey._twisted`` imports no module of ours (but the known ones).
        """
        graph = importGraph()
        upward = {(PRIVATE, target) for target in graph[PRIVATE]}
        self.assertEqual(sorted(upward - KNOWN), [])
