"""The documentation's generated pages say what the code says: every command's page is its
`--help`, the model pages are `batchgen models`, the exit-code table is batchgen/exitcodes.py
(the one definition every exit in the code reads), the benchmark table is the last run's."""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from batchgen import errors, exitcodes, models
from batchgen.engine import config as engine_config

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import docs_hooks  # noqa: E402


def cli(*args: str) -> str:
    env = {**os.environ, "COLUMNS": docs_hooks.HELP_COLUMNS}
    env.pop("APIXO_API_KEY", None)
    done = subprocess.run(
        [sys.executable, "-m", "batchgen", *args],
        capture_output=True, text=True, timeout=60, env=env, check=True,
    )  # fmt: skip
    return done.stdout


def test_each_generated_page_names_its_generator() -> None:
    for page, name in (
        ("reference/commands.md", "commands"),
        ("reference/models.md", "models"),
        ("reference/exit-codes.md", "exit-codes"),
        ("performance.md", "bench"),
    ):
        assert f"<!-- generated: {name} -->" in (ROOT / "docs" / page).read_text(), page


def test_the_commands_page_has_every_subcommand() -> None:
    from batchgen.cli import COMMANDS

    helps = docs_hooks.command_helps()
    assert set(helps) - {""} == set(COMMANDS)
    page = docs_hooks.commands_md()
    for name in COMMANDS:
        assert f"## `batchgen {name}`" in page


@pytest.mark.parametrize("command", ["", *__import__("batchgen.cli").cli.COMMANDS])
def test_each_command_page_is_its_help(command: str) -> None:
    """What a user's terminal prints for `batchgen COMMAND --help` is on the page, whole."""
    printed = cli(*([command] if command else []), "--help").rstrip()
    assert printed in docs_hooks.commands_md()


def models_output(*args: str) -> str:
    """`batchgen models ...` as it prints (in-process: one per model, twenty of them)."""
    from batchgen.cli import main

    return docs_hooks.capture_stdout(lambda: main(["models", *args]))


def test_the_models_page_is_batchgen_models() -> None:
    page = docs_hooks.models_md()
    assert cli("models") == models_output()
    for line in models_output().splitlines():
        if "not supported yet" not in line:
            assert line in page
    for model_id in models.known():
        assert f"## `{model_id}`" in page
        assert models_output(model_id).rstrip() in page
    for model_id in models.NOT_YET:
        assert f"- `{model_id}`:" in page


def test_exit_codes_are_defined_once_and_the_page_has_each() -> None:
    page = docs_hooks.exit_codes_md()
    for entry in exitcodes.TABLE:
        assert f"| {entry.code} | {entry.meaning} |" in page
    # Every exception's exit code and every engine outcome is one of the table's.
    for _, cls in inspect.getmembers(errors, inspect.isclass):
        if issubclass(cls, errors.BatchgenError):
            assert cls.exit_code in exitcodes.BY_CODE, cls
    for name in dir(engine_config):
        if name.startswith("EXIT_"):
            assert getattr(engine_config, name) in exitcodes.BY_CODE, name
    from batchgen.notify.summary import EXIT_WORDS

    assert {e.code: e.words for e in exitcodes.TABLE} == EXIT_WORDS


def test_the_benchmark_table_is_the_last_run() -> None:
    results = json.loads(docs_hooks.BENCH_JSON.read_text())
    page = docs_hooks.bench_md()
    assert results["targets"], "bench/results/latest.json has no targets"
    for target in results["targets"]:
        assert f"| {target['scenario']} | {target['figure']} |" in page
    assert f"]({docs_hooks.BENCH_PLOT_URI})" in (ROOT / "docs" / "performance.md").read_text()


def test_an_unknown_marker_is_an_error() -> None:
    with pytest.raises(KeyError, match="no-such"):
        docs_hooks.render("<!-- generated: no-such -->\n", "page.md")
