"""The documentation's pages that cannot drift: an MkDocs hook (mkdocs.yml, `hooks:`).

A page writes `<!-- generated: NAME -->` on a line of its own and the build replaces it with
what the code says at that moment:

- `commands`: every subcommand's `--help`, from the parsers batchgen/cli.py builds;
- `models`: the model table and each model in full, from the specs (`batchgen models`);
- `exit-codes`: the exit-code table, from its one definition (batchgen/exitcodes.py);
- `bench`: the last benchmark run's table, from bench/results/latest.json (bench/report.py).

An unknown NAME fails the build. The same functions are what the tests compare the pages and
the commands' own output with (tests/test_docs_pages.py), so a page is never edited by hand.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import os
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
MARKER = re.compile(r"^<!-- generated: ([a-z][a-z-]*) -->$", re.MULTILINE)
HELP_COLUMNS = "88"  # the width every --help is rendered at, on the page and in the tests
BENCH_JSON = ROOT / "bench" / "results" / "latest.json"
BENCH_PLOT = ROOT / "bench" / "results" / "throughput.png"
BENCH_PLOT_URI = "img/throughput.png"  # where the plot appears in the site


@contextlib.contextmanager
def help_width() -> Iterator[None]:
    """argparse wraps help to $COLUMNS: render at one width so the page does not depend on
    the terminal of whoever builds it."""
    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = HELP_COLUMNS
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = old


def command_helps() -> dict[str, str]:
    """`batchgen --help` (key "") and every subcommand's `--help`, as the CLI prints them."""
    import argparse

    from batchgen.cli import build_parser

    with help_width():
        parser = build_parser()
        helps = {"": parser.format_help()}
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    helps[name] = sub.format_help()
    return helps


def commands_md() -> str:
    helps = command_helps()
    out = ["```text", "$ batchgen --help", helps[""].rstrip(), "```", ""]
    for name, text in helps.items():
        if not name:
            continue
        out += [f"## `batchgen {name}`", "", "```text", text.rstrip(), "```", ""]
    return "\n".join(out)


def models_md() -> str:
    from batchgen import models
    from batchgen.commands.models import _summary, _text
    from batchgen.manifest.modelinfo import describe

    infos = [describe(m) for m in models.known()]
    out = [
        "| model | title | modes | prices (USD) | generation |",
        "|---|---|---|---|---|",
    ]
    for info in infos:
        prices = info["prices"]
        shown = ", ".join(f"{k}: {v}" for k, v in prices["usd"].items()) or "unknown"
        if prices["usd"]:
            shown += f" (per {prices['unit']})"
        gen = info["generation_s"]
        rows = ", ".join(f"{k}: {v[0]:.0f}-{v[1]:.0f} s" for k, v in gen["rows"].items())
        modes = ", ".join(f"`{m}`" for m in info["modes"])
        out.append(f"| `{info['id']}` | {info['title']} | {modes} | {shown} | {rows} |")
    out += ["", "Not supported yet:", ""]
    out += [f"- `{m}`: {why}" for m, why in sorted(models.NOT_YET.items())]
    out += ["", "`batchgen models` prints:", "", "```text"]
    out += [_summary(info) for info in infos]
    out += ["```", ""]
    for info in infos:
        out += [f"## `{info['id']}`", "", "```text", _text(info).rstrip(), "```", ""]
    return "\n".join(out)


def exit_codes_md() -> str:
    from batchgen import exitcodes

    out = ["| code | meaning | what to do |", "|---|---|---|"]
    out += [f"| {e.code} | {e.meaning} | {e.action} |" for e in exitcodes.TABLE]
    return "\n".join(out) + "\n"


def _bench_report() -> Any:
    spec = importlib.util.spec_from_file_location("bench_report", ROOT / "bench" / "report.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def bench_md() -> str:
    results = json.loads(BENCH_JSON.read_text(encoding="utf-8"))
    results["plot"] = None  # a path beside latest.md; the page shows the picture itself, as
    # BENCH_PLOT_URI (on_files puts bench/results/throughput.png there)
    return _bench_report().markdown(results)


GENERATORS: dict[str, Callable[[], str]] = {
    "commands": commands_md,
    "models": models_md,
    "exit-codes": exit_codes_md,
    "bench": bench_md,
}


def render(markdown: str, where: str = "a page") -> str:
    """The page with each marker replaced by its generated text."""

    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in GENERATORS:
            raise KeyError(f"{where}: no generator named {name!r} (known: {sorted(GENERATORS)})")
        return GENERATORS[name]().rstrip("\n")

    return MARKER.sub(one, markdown)


# --- the MkDocs hook events ----------------------------------------------------------------


def on_files(files: Any, config: Any) -> Any:
    from mkdocs.structure.files import File

    if BENCH_PLOT.is_file() and files.get_file_from_path(BENCH_PLOT_URI) is None:
        files.append(File.generated(config, BENCH_PLOT_URI, abs_src_path=str(BENCH_PLOT)))
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    from mkdocs.exceptions import PluginError

    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    try:
        return render(markdown, page.file.src_uri)
    except KeyError as exc:
        raise PluginError(str(exc.args[0])) from None


def capture_stdout(fn: Callable[[], object]) -> str:
    """What `fn` prints (for the tests: a command's own output, to compare with a page)."""
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        fn()
    return buf.getvalue()
