"""The layout's rules, checked on the source: no import cycles, the library never imports
the CLI, and no module grows past what one reader takes in at a sitting."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import imports  # noqa: E402

MAX_LINES = 400  # the README's rule: a module one reader takes in at a sitting
CLI = ("batchgen.cli", "batchgen.commands")


@pytest.fixture(scope="module")
def edges() -> dict[str, set[str]]:
    return imports.graph(ROOT)


def test_there_are_no_import_cycles(edges: dict[str, set[str]]) -> None:
    assert imports.cycles(edges) == []


def test_the_library_never_imports_the_cli(edges: dict[str, set[str]]) -> None:
    leaks = {
        mod: sorted(t for t in targets if any(t == c or t.startswith(c + ".") for c in CLI))
        for mod, targets in edges.items()
        if not any(mod == c or mod.startswith(c + ".") for c in CLI) and mod != "batchgen.__main__"
    }
    assert {m: t for m, t in leaks.items() if t} == {}


# Type-only cycles and layer breaks the next steps of issue 27 remove: each entry may only
# go. A new one fails at once.
TYPE_ONLY_CYCLES_LEFT: list[list[str]] = []
LAYER_BREAKS_LEFT: set[tuple[str, str]] = set()


def test_no_cycle_is_closed_even_by_type_only_imports() -> None:
    """Imports for type hints never run, but a cycle they close is still a tangle a reader
    must hold (settings naming Engine for a hook closed one of 25 modules)."""
    found = imports.cycles(imports.graph(ROOT, type_only=True))
    assert found == TYPE_ONLY_CYCLES_LEFT


def test_imports_never_point_up_the_layers() -> None:
    """settings < core (pure) < adapters, store < manifest, inputs, money < engine <
    callbacks, ui < the pipeline and the CLI (README, "Layout")."""
    assert imports.layer_breaks(imports.graph(ROOT, type_only=True)) == LAYER_BREAKS_LEFT


def test_the_layer_check_finds_an_upward_import(tmp_path: Path) -> None:
    pkg = tmp_path / "batchgen"
    (pkg / "core").mkdir(parents=True)
    (pkg / "engine").mkdir()
    for init in (pkg / "__init__.py", pkg / "core" / "__init__.py", pkg / "engine" / "__init__.py"):
        init.write_text("")
    (pkg / "engine" / "run.py").write_text("X = 1\n")
    (pkg / "core" / "rule.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from batchgen.engine import run\n"
    )
    breaks = imports.layer_breaks(imports.graph(tmp_path, type_only=True))
    assert ("batchgen.core.rule", "batchgen.engine.run") in breaks
    assert imports.layer_breaks(imports.graph(tmp_path)) == set()


def test_settings_are_a_leaf(edges: dict[str, set[str]]) -> None:
    """settings.py holds every default once; components take theirs from it, so it may import
    nothing that imports them (only the exception tree and the model table)."""
    assert edges["batchgen.settings"] <= {"batchgen.errors", "batchgen.models"}


# Modules still over the limit, with the length they may not grow past: each is to be split
# (issue 15); remove its line when it is. A new module over the limit fails at once.
STILL_TOO_LONG: dict[str, int] = {}


def test_no_module_is_longer_than_one_sitting() -> None:
    lengths = {
        str(p.relative_to(ROOT)): len(p.read_text().splitlines())
        for p in (ROOT / "batchgen").rglob("*.py")
    }
    over = {name: n for name, n in lengths.items() if n > STILL_TOO_LONG.get(name, MAX_LINES)}
    assert over == {}
    shrunk = {name for name, cap in STILL_TOO_LONG.items() if lengths.get(name, 0) <= MAX_LINES}
    assert shrunk == set(), "split: take these off STILL_TOO_LONG"


def test_the_checker_finds_a_cycle(tmp_path: Path) -> None:
    """The checker itself can fail: two modules importing each other (one lazily, inside a
    function) are a cycle; an import under TYPE_CHECKING is not."""
    pkg = tmp_path / "batchgen"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from batchgen import b\n")
    (pkg / "b.py").write_text("def f():\n    from batchgen.a import x\n")
    (pkg / "c.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from batchgen import a\n"
    )
    found = imports.cycles(imports.graph(tmp_path))
    assert found == [["batchgen.a", "batchgen.b"]]
