"""Issue 26: a new user's first hour, replayed from the pages they read, through the CLI.

The commands come from the `sh` blocks of README.md, docs/getting-started.md and
docs/images.md, in the order a reader meets them (`make demo` is the Makefile's recipe), run
as separate processes in a fresh folder holding a copy of manifests/. Once a page says
`export APIXO_API_KEY=...`, "the API" is `batchgen simulate` in its own process on loopback
(APIXO_BASE_URL, a key it accepts), and runs against it get its poll pace (the only words
added to the pages' commands); the image store is a loopback S3 server that checks every
signature, headers and presigned (tests/s3kit.py), under the bucket name the page uses, and the
simulator fetches each image through its presigned URL as the provider does. Then what a user
does next: status, report and gallery of the batches.

Found by it: after `make demo`, the pages' real run of the same manifest found the sandbox's
batch in output/demo/, every job "done" with the simulator's placeholder videos, and said
"finished"; now such a state file is refused (exit 2, commands/recorded.py) and the pages give
the real batch its own folder.

Every command must succeed, and no output may carry a warning that is not about the user's
own input (a warning naming one of their manifests is about their input; anything else, a
deprecation, a library's complaint, a warning about batchgen's own setup, is noise).
"""

from __future__ import annotations

import contextlib
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.s3kit import S3Server

ROOT = Path(__file__).resolve().parents[1]
PAGES = ("README.md", "docs/getting-started.md", "docs/images.md")
BUCKET = "my-bucket"  # the name docs/images.md uses
SH_BLOCK = re.compile(r"^```sh[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
WARNING = re.compile(r"warn|deprecat", re.IGNORECASE)
NEEDS_API = ("run", "doctor", "resume", "balance")
KEY = "sk-first-hour-0123456789"
PACE = ["--poll-after", "0.6", "--poll-every", "0.05", "--rate-limit", "10000/0.6s"]
pytestmark = pytest.mark.timeout(600)


def _makefile_recipe(target: str) -> str:
    text = (ROOT / "Makefile").read_text()
    recipe = re.search(rf"^{target}:.*\n\t(.+)$", text, re.MULTILINE)
    assert recipe is not None, target
    return recipe.group(1).replace("$(BIN)/", "")


def commands_from_the_pages() -> list[tuple[str, bool]]:
    """The batchgen commands of the pages, in reading order, each once: (command, whether it
    talks to "the API", i.e. comes after `export APIXO_API_KEY` and has no --sandbox)."""
    out: list[tuple[str, bool]] = []
    keyed = False
    for page in PAGES:
        for block in SH_BLOCK.findall((ROOT / page).read_text()):
            for raw in block.splitlines():
                line = raw.split("  #", 1)[0].strip()
                if line.startswith("export APIXO_API_KEY="):
                    keyed = True
                if line == "make demo":
                    line = _makefile_recipe("demo")
                line = line.removeprefix(".venv/bin/")
                if not line.startswith("batchgen "):
                    continue  # make install/test/docs, export, ruff: not the user's batch
                words = shlex.split(line)
                real = words[1] in NEEDS_API and "--sandbox" not in words
                assert keyed or not real, f"{page}: {line} needs a key before it"
                command = (shlex.join(words), real)
                if command not in out:
                    out.append(command)
    return out


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    server = S3Server(BUCKET).start()
    try:
        yield server
    finally:
        server.stop()


def _env(folder: Path, s3: S3Server) -> dict[str, str]:
    bindir = str(Path(sys.executable).parent)
    return {
        "PATH": f"{bindir}:/usr/bin:/bin",
        "HOME": str(folder),
        "XDG_STATE_HOME": str(folder / ".state"),
        "PYTHONPATH": str(ROOT),
        "LANG": "C.UTF-8",
        **s3.env(),  # AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL, AWS_REGION
    }


@contextlib.contextmanager
def the_api(folder: Path, env: dict[str, str]) -> Iterator[str]:
    """`batchgen simulate` in its own process: the API a keyed user's commands talk to."""
    ready = folder / ".api-url"
    argv = [sys.executable, "-m", "batchgen", "simulate", "--api-key", KEY, "--quiet"]
    argv += ["--time-scale", "0.01", "--fetch-images", "loopback", "--ready-file", str(ready)]
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        for _ in range(600):
            if ready.exists() and ready.read_text().strip():
                break
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            time.sleep(0.05)
        yield ready.read_text().strip()
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _noise(output: str) -> list[str]:
    """Warning lines that are not about the user's own input (their manifests)."""
    return [
        line
        for line in output.splitlines()
        if WARNING.search(line) and "manifests/" not in line
    ]


def test_the_pages_give_the_first_hour() -> None:
    commands = commands_from_the_pages()
    verbs = [shlex.split(c)[1] for c, _ in commands]
    for verb in ("doctor", "validate", "run", "status", "report"):
        assert verb in verbs, (verb, commands)
    assert any("--image-store" in c and real for c, real in commands), commands
    assert any(shlex.split(c)[1] == "run" and real for c, real in commands), commands


def test_a_new_users_first_hour(tmp_path: Path, s3: S3Server) -> None:
    shutil.copytree(ROOT / "manifests", tmp_path / "manifests")
    env = _env(tmp_path, s3)
    then = [
        ("batchgen gallery output/demo/batchgen.db", False),
        ("batchgen status output/local-images/batchgen.db", False),
        ("batchgen report output/local-images/batchgen.db --format csv", False),
        ("batchgen gallery output/local-images/batchgen.db", False),
        ("batchgen resume output/local-images/batchgen.db", False),
    ]
    transcript: list[str] = []
    with the_api(tmp_path, env) as base_url:
        keyed = {**env, "APIXO_API_KEY": KEY, "APIXO_BASE_URL": base_url}
        real_runs: list[str] = []
        for command, real in [*commands_from_the_pages(), *then]:
            argv = shlex.split(command)
            if real and argv[1] in ("run", "resume"):
                argv += PACE
                real_runs.append(command)
            done = subprocess.run(
                argv,
                cwd=tmp_path,
                env=keyed if real or real_runs else env,
                capture_output=True,
                text=True,
                timeout=240,
            )
            said = done.stdout + done.stderr
            transcript.append(f"$ {shlex.join(argv)}  (exit {done.returncode})\n{said}")
            assert done.returncode == 0, "\n".join(transcript)
            assert "Traceback" not in said, said
            assert _noise(said) == [], (command, said)
    output = tmp_path / "output"
    # The sandbox's batches where the pages say, the real ones in their own folders.
    assert len(list((output / "demo").glob("*.mp4"))) == 8
    assert (output / "demo" / "gallery.html").exists()
    assert len(list((output / "local-images").glob("*.mp4"))) == 2
    reals = [c for c in real_runs if shlex.split(c)[1] == "run"]
    assert len(reals) == 2, real_runs
    for command in reals:
        folder = tmp_path / shlex.split(command)[shlex.split(command).index("--output") + 1]
        assert folder.name not in ("demo", "local-images"), command
        assert list(folder.glob("*.mp4")), command
    # The local images went up once each and the simulator fetched them back, signed.
    image = re.compile(rf"^(PUT|GET) /{BUCKET}/batchgen/[0-9a-f]{{64}}\.png$")
    uploads = [r for r in s3.requests if image.match(r) and r.startswith("PUT")]
    fetched = [r for r in s3.requests if image.match(r) and r.startswith("GET")]
    assert len(uploads) == 3 and fetched, s3.requests
    assert not s3.refused, s3.refused


def test_a_real_run_never_continues_a_sandbox_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """What the replay found: the sandbox's state file, met by a run against the API (or the
    other way round), is refused untouched, with the way out."""
    from batchgen.cli import main

    shutil.copytree(ROOT / "manifests", tmp_path / "manifests")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("APIXO_API_KEY", KEY)
    assert main(["run", "manifests/example.yaml", "--sandbox", "-q"]) == 0
    state = tmp_path / "output" / "demo" / "batchgen.db"
    before = state.read_bytes()
    capsys.readouterr()
    argv = ["run", "manifests/example.yaml", "--base-url", "http://127.0.0.1:9/api/v1"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "holds a --sandbox batch" in err and "--output DIR" in err, err
    assert main(["resume", str(state), "--base-url", "http://127.0.0.1:9/api/v1"]) == 2
    assert state.read_bytes() == before
