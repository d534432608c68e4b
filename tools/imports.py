"""The import graph of the `batchgen` package, read from the source (no import runs).

Used by tests/test_architecture.py and runnable by hand (`python tools/imports.py`): it
prints every import cycle, those closed by type-only imports included. Imports inside
functions count, since a lazy import that breaks a cycle at run time still ties the two
modules together; imports under `if TYPE_CHECKING:` count with `type_only` (they never run,
but a cycle they close is a tangle a reader must hold all the same).

`LAYERS` is the order in which packages may import each other (README, "Layout").
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

PACKAGE = "batchgen"


def modules(root: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every .py file under root/batchgen."""
    out: dict[str, Path] = {}
    for path in sorted((root / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST, type_only: bool = False) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import in the tree; those under `if TYPE_CHECKING:` only with `type_only`."""
    stack = [tree]
    while stack:
        node = stack.pop()
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child) and not type_only:
                stack.extend(child.orelse)
                continue
            if isinstance(child, ast.Import | ast.ImportFrom):
                yield child
            stack.append(child)


def _resolve(name: str, known: dict[str, Path]) -> str | None:
    """The longest known module that `name` is or lies in."""
    while name:
        if name in known:
            return name
        name = name.rpartition(".")[0]
    return None


def graph(root: Path, type_only: bool = False) -> dict[str, set[str]]:
    """Module -> the batchgen modules it imports (with `type_only`, those imported for type
    hints under TYPE_CHECKING too: a cycle they close still ties the modules together)."""
    known = modules(root)
    edges: dict[str, set[str]] = {m: set() for m in known}
    for mod, path in known.items():
        is_pkg = path.name == "__init__.py"
        base = mod.split(".") if is_pkg else mod.split(".")[:-1]
        for node in _imports(ast.parse(path.read_text(), str(path)), type_only):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                if node.level:
                    prefix = ".".join(base[: len(base) - node.level + 1])
                    stem = f"{prefix}.{node.module}" if node.module else prefix
                else:
                    stem = node.module or ""
                targets = [f"{stem}.{a.name}" for a in node.names] + [stem]
            for t in targets:
                if not t.startswith(PACKAGE):
                    continue
                hit = _resolve(t, known)
                if hit and hit != mod and not mod.startswith(hit + "."):
                    edges[mod].add(hit)  # a package's own __init__ is not an edge
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10_000)
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return sorted(out)


LAYERS: dict[str, frozenset[str]] = {
    # a package -> the packages (first segment under batchgen) it must never import
    "settings": frozenset({"core", "adapters", "store", "money", "inputs", "manifest",
                           "engine", "callbacks", "ui", "notify", "accounts", "runner",
                           "api", "commands", "cli"}),
    "core": frozenset({"adapters", "store", "money", "inputs", "manifest", "engine",
                       "callbacks", "ui", "notify", "accounts", "runner", "api", "commands",
                       "cli"}),
    "adapters": frozenset({"store", "money", "inputs", "manifest", "engine", "callbacks",
                           "ui", "notify", "accounts", "runner", "api", "commands", "cli"}),
    "store": frozenset({"money", "inputs", "manifest", "engine", "callbacks", "ui", "notify",
                        "accounts", "runner", "api", "commands", "cli"}),
}  # fmt: skip


def layer_breaks(edges: dict[str, set[str]]) -> set[tuple[str, str]]:
    """(importer, imported) pairs that point up the layers."""

    def top(module: str) -> str:
        parts = module.split(".")
        return parts[1] if len(parts) > 1 else ""

    out: set[tuple[str, str]] = set()
    for mod, targets in edges.items():
        banned = LAYERS.get(top(mod))
        if banned is None:
            continue
        out |= {(mod, t) for t in targets if top(t) in banned}
    return out


def main() -> int:
    root = Path(__file__).resolve().parents[1]
    found = cycles(graph(root, type_only=True))
    for comp in found:
        print("cycle:", " <-> ".join(comp))
    breaks = sorted(layer_breaks(graph(root, type_only=True)))
    for mod, target in breaks:
        print("layer:", mod, "->", target)
    return 1 if found or breaks else 0


if __name__ == "__main__":
    raise SystemExit(main())
