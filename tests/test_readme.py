"""The README stays a front page: what batchgen is, how to install it, how to run a first
batch, a minimal manifest and links into docs/ (issue 34). Everything else lives in the
documentation site, which the suite builds strictly (tests/test_docs_site.py)."""

from __future__ import annotations

import re
from pathlib import Path

from batchgen.manifest import load_manifest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
MAX_LINES = 150
FIRST_SCREEN = 40  # lines

FIRST_COMMANDS = """```sh
make install  # creates .venv/ and installs batchgen from pyproject.toml
make demo     # runs manifests/example.yaml end to end against the built-in simulator (~2 s)
make test     # the whole test suite (pytest), then ruff
```"""


def test_the_readme_is_short() -> None:
    assert len(README.splitlines()) <= MAX_LINES


def test_the_first_screen_says_what_how_to_install_and_how_to_run() -> None:
    first = "\n".join(README.splitlines()[:FIRST_SCREEN])
    assert "Turn a manifest of video jobs" in first  # what it is
    assert "make install" in first  # how to install it
    assert "make demo" in first and "batchgen run" in first  # how to run a batch


def test_the_first_commands_are_unchanged() -> None:
    """CI runs the README's test command (`make test`, .ci/run): the block stays as it is."""
    assert FIRST_COMMANDS in README


def test_the_minimal_manifest_validates(tmp_path: Path) -> None:
    block = re.search(r"## A minimal manifest\n\n```yaml\n(.*?)```", README, re.S)
    assert block is not None
    (tmp_path / "m.yaml").write_text(block.group(1))
    assert len(load_manifest(tmp_path / "m.yaml").jobs) == 2


def test_every_link_into_docs_exists() -> None:
    links = re.findall(r"\]\(((?:docs/)[^)#\s]+)", README)
    assert len(links) >= 10
    for link in links:
        assert (ROOT / link).is_file(), link
    assert "make docs" in README and "pip install -e '.[docs]'" in README


def test_the_commands_table_names_every_command() -> None:
    from batchgen.cli import COMMANDS

    table = (ROOT / "docs" / "reference" / "commands.md").read_text(encoding="utf-8")
    for name in COMMANDS:
        assert f"| `batchgen {name}" in table, name


def test_the_model_list_names_every_model_a_line_each() -> None:
    """The README's model list grows with the specs: a model added without its line, or a
    line left for a model that is gone, fails here."""
    from batchgen import models

    section = README.split("## Models", 1)[1].split("\n## ", 1)[0]
    listed = re.findall(r"^- `([^`]+)` \(", section, flags=re.M)
    assert listed == sorted(models.known(), key=str.lower)
    for mid in models.NOT_YET:
        assert f"`{mid}`" in section
