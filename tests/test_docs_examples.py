"""Every example in the docs marked runnable runs, as written, against the sandbox.

A page marks a fenced `sh` or `python` block runnable with `<!-- runnable -->` on the line
before it. Each such block runs in a fresh folder holding a copy of manifests/, with this
tree's batchgen first on PATH, no API key, no proxy and HOME in that folder: a `batchgen run`
in a runnable block must say `--sandbox` (the simulator, in-process, on loopback). A shell
block runs under `set -e`, so its every command must succeed; keep each a few seconds.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
BLOCK = re.compile(
    r"^<!-- runnable -->[ \t]*\n```(?P<lang>sh|bash|python)[^\n]*\n(?P<code>.*?)^```[ \t]*$",
    re.MULTILINE | re.DOTALL,
)
MIN_EXAMPLES = 5  # fewer found means the marker or the pages changed, not that all ran
pytestmark = pytest.mark.timeout(240)


@dataclass(frozen=True)
class Example:
    page: str
    line: int
    lang: str
    code: str

    def __str__(self) -> str:
        return f"{self.page}:{self.line}"


def examples(docs: Path = DOCS) -> list[Example]:
    found = []
    for page in sorted(docs.rglob("*.md")):
        text = page.read_text(encoding="utf-8")
        for m in BLOCK.finditer(text):
            line = text.count("\n", 0, m.start()) + 1
            found.append(Example(str(page.relative_to(docs)), line, m["lang"], m["code"]))
    return found


def run_example(example: Example, where: Path) -> subprocess.CompletedProcess[str]:
    shutil.copytree(ROOT / "manifests", where / "manifests")
    bindir = str(Path(sys.executable).parent)
    env = {
        "PATH": f"{bindir}:/usr/bin:/bin",
        "HOME": str(where),
        "PYTHONPATH": str(ROOT),
        "LANG": "C.UTF-8",
        "NO_PROXY": "*",
    }
    if example.lang == "python":
        script = where / "example.py"
        script.write_text(example.code, encoding="utf-8")
        argv = [sys.executable, str(script)]
    else:
        script = where / "example.sh"
        script.write_text("set -euo pipefail\n" + example.code, encoding="utf-8")
        argv = ["bash", str(script)]
    return subprocess.run(argv, cwd=where, env=env, capture_output=True, text=True, timeout=200)


ALL = examples()


def test_the_docs_have_runnable_examples() -> None:
    assert len(ALL) >= MIN_EXAMPLES, [str(e) for e in ALL]


@pytest.mark.parametrize("example", ALL, ids=str)
def test_each_runnable_example_runs(example: Example, tmp_path: Path) -> None:
    runs = re.findall(r"\bbatchgen (?:run|resume)\b[^\n]*", example.code)
    runs += re.findall(r"batchgen\.run(?:_async)?\([^)]*\)", example.code)
    for call in runs:
        assert "sandbox" in call, f"{example}: a runnable example runs against the sandbox: {call}"
    done = run_example(example, tmp_path)
    assert done.returncode == 0, f"{example} failed:\n{done.stdout}\n{done.stderr}"
    assert "Traceback" not in done.stderr, f"{example}:\n{done.stderr}"


def test_a_failing_example_is_caught(tmp_path: Path) -> None:
    """The check can fail: a runnable block with a command that fails is reported."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "page.md").write_text(
        "Text.\n\n<!-- runnable -->\n```sh\nbatchgen validate manifests/no-such.yaml\n```\n"
        "\n```sh\nnot marked, never run\n```\n"
    )
    (found,) = examples(docs)
    assert (found.page, found.line, found.lang) == ("page.md", 3, "sh")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    assert run_example(found, run_dir).returncode != 0


def test_examples_need_no_network_but_loopback() -> None:
    """No runnable example names a host other than loopback."""
    for example in ALL:
        for url in re.findall(r"https?://([^/\s\"']+)", example.code):
            host = url.split(":")[0]
            assert host in {"127.0.0.1", "localhost"}, f"{example}: {url}"
