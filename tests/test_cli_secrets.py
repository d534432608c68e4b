"""Issue 26 bug 1: a secret typed on the command line is never echoed.

Every option of `run`, `validate` and `resume` is given a key as its value (both `--opt KEY`
and `--opt=KEY`), then a stray key-shaped argument, a key after a made-up option named like a
secret, a URL with a password and a presigned URL; stdout, stderr and every file left under
the working folder are read, and the secret appears in none of them. Abbreviations are off in
every parser, so `--api-key` can never be taken for `--api-key-file`.
"""

from __future__ import annotations

import argparse
import socket
from pathlib import Path

import pytest

from batchgen import cli
from batchgen.redact import looks_secret, redact, secret_words

KEY = "sk-SECRET-canary-7f3a9c1e5b2d4086"
RANDOM = "Zx8kQ2mP9vL4nR7tY1wB5cF3hJ6dS0aE"  # a key without a known prefix
PIECES = (KEY, "canary-7f3a", "7f3a9c1e5b2d4086", RANDOM)
PLAIN = "hunter2hunter2"  # no secret's shape: only its option's name says it is one
STRAYS = (
    KEY,
    RANDOM,
    "https://user:7f3a9c1e5b2d4086@example.com/hook",
    "https://b.s3.amazonaws.com/k.png?X-Amz-Credential=AKIA7f3a9c1e5b2d4086&X-Amz-Signature=7f3a9c1e5b2d4086",
    "https://blob.example.com/k.png?sv=2020&Signature=7f3a9c1e5b2d4086",
)


def subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def value_options(parser: argparse.ArgumentParser) -> list[str]:
    """The long options of `parser` that take a value."""
    return [
        next(s for s in a.option_strings if s.startswith("--"))
        for a in parser._actions
        if a.option_strings and a.nargs != 0 and any(s.startswith("--") for s in a.option_strings)
    ]


def flag_options(parser: argparse.ArgumentParser) -> list[str]:
    return [
        s
        for a in parser._actions
        if a.option_strings and a.nargs == 0 and not isinstance(a, argparse._HelpAction)
        for s in a.option_strings
        if s.startswith("--") and s != "--version"
    ]


def leaks(blob: str | bytes) -> list[str]:
    data = blob.encode() if isinstance(blob, str) else blob
    return [p for p in (*PIECES, PLAIN) if p.encode() in data]


def call(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    try:
        code = cli.main(argv)
    except SystemExit as exc:  # argparse's own errors
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out + out.err


def test_no_parser_takes_abbreviations() -> None:
    parser = cli.build_parser()
    subs = subparsers(parser)
    assert {"run", "validate", "resume", "status", "retry", "report"} <= set(subs)
    assert parser.allow_abbrev is False
    for name, sub in subs.items():
        assert sub.allow_abbrev is False, name


@pytest.mark.parametrize("command", ["run", "validate", "resume"])
def test_a_secret_given_to_any_option_is_never_shown(
    command: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("APIXO_API_KEY", raising=False)
    manifest = Path(__file__).resolve().parents[1] / "manifests" / "example.yaml"
    positional = {"run": str(manifest), "validate": str(manifest), "resume": "out/batchgen.db"}
    base = [command, positional[command]]
    parser = subparsers(cli.build_parser())[command]
    options = value_options(parser)
    assert len(options) >= (0 if command == "validate" else 30)
    tries: list[list[str]] = []
    for opt in options:
        tries += [[*base, opt, KEY], [*base, f"{opt}={KEY}"]]
    for flag in flag_options(parser):
        # a flag takes no value: the key is a stray word, or an explicit argument refused
        tries += [[*base, flag, KEY], [*base, f"{flag}={KEY}"]]
    for stray in STRAYS:
        tries.append([*base, stray])
    for made_up in ("--api-key", "--apikey", "--token", "--password", "--secret"):
        tries += [[*base, made_up, PLAIN], [*base, f"{made_up}={PLAIN}"], [*base, made_up, KEY]]
    for argv in tries:
        code, printed = call(argv, capsys)
        assert code == 2, (argv, printed)
        assert leaks(printed) == [], (argv, printed)
        assert "Traceback" not in printed
    assert all(leaks(stray) for stray in STRAYS)  # the check itself sees each one
    for path in tmp_path.rglob("*"):
        assert leaks(str(path)) == [], path
        if path.is_file():
            assert leaks(path.read_bytes()) == [], path


def test_the_api_key_option_that_does_not_exist_is_named_not_taken_for_the_file(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, printed = call(["run", "m.yaml", "--api-key", KEY], capsys)
    assert code == 2
    assert "unrecognized arguments: --api-key [redacted]" in printed
    assert "API key file" not in printed


def test_shapes() -> None:
    for word in STRAYS:
        assert looks_secret(word), word
    for word in (
        "m.yaml",
        "/tmp/pytest-of-x/out",
        "10000/60s",
        "harbor-dawn",
        "1,60",
        "2G",
        "kling-2-5-turbo-pro/text-to-video:5=0.5",
        "https://api.apixo.ai",
        "job-0001,job-0002,job-0003,job-0004",
        "s3://bucket/prefix",
    ):
        assert not looks_secret(word), word
    assert secret_words(["--api-key", "x1", "--token=y2", "--output", "out"]) == {"x1", "y2"}
    assert redact(f"bad {KEY!r} and https://u:pw@h/x?a=1&X-Amz-Signature=zz") == (
        "bad '[redacted]' and https://[redacted]@h/x?a=1&X-Amz-Signature=[redacted]"
    )


def test_an_option_made_for_a_secret_still_takes_one() -> None:
    """`simulate --api-key KEY` sets the fake service's key: not refused for its shape."""
    from batchgen.commands.argtypes import refuse_secret_values

    args = cli.build_parser().parse_args(["simulate", "--api-key", KEY])
    refuse_secret_values(args)  # no UsageError
    assert KEY in args.api_keys


@pytest.mark.timeout(120)
def test_a_proxy_password_is_never_shown_even_verbose_nor_stored(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 26: `--proxy URL` may carry user:password@; a run through a proxy that is not
    there (a closed loopback port), with -v, prints and stores it nowhere."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("APIXO_API_KEY", "sk-test-0123456789")
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proxy = f"http://alice:{PLAIN}@127.0.0.1:{port}"
    manifest = Path(__file__).resolve().parents[1] / "manifests" / "example.yaml"
    argv = [
        "run", str(manifest), "--output", "out", "-v", "--proxy", proxy,
        "--base-url", "http://api.example.invalid/api/v1", "--backoff", "0.01,0.05",
        "--max-runtime", "2s", "--drain", "0.5s",
    ]  # fmt: skip
    code, printed = call(argv, capsys)
    assert code != 0 and "Traceback" not in printed
    assert "DEBUG" in printed or "127.0.0.1" in printed, printed
    assert leaks(printed) == [], printed
    code, printed = call(["resume", "out/batchgen.db", "-v", "--proxy", proxy], capsys)
    assert leaks(printed) == [], printed
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert leaks(path.read_bytes()) == [], path
