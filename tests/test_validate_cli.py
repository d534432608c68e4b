"""`batchgen validate`: summary, --print-requests, errors with exit code 2 and no traceback."""

from __future__ import annotations

import json
from pathlib import Path

from batchgen.cli import main
from tests.test_schema import API_EXAMPLES

MANIFESTS = Path(__file__).resolve().parent.parent / "manifests"


def test_print_requests_reproduces_the_api_examples(capsys):
    assert main(["validate", "--print-requests", str(MANIFESTS / "api-examples.yaml")]) == 0
    out = capsys.readouterr().out.splitlines()
    lines = [json.loads(line) for line in out]
    assert [line["body"] for line in lines] == API_EXAMPLES
    assert [list(line) for line in lines] == [["id", "model", "endpoint", "body"]] * 3
    assert {line["endpoint"] for line in lines} == {"POST /generateTask/kling-2-1"}
    assert [line["id"] for line in lines] == [
        "example-1-standard",
        "example-2-pro",
        "example-3-master-text",
    ]


def test_summary(capsys):
    assert main(["validate", str(MANIFESTS / "example.yaml"), str(MANIFESTS / "prompts.csv")]) == 0
    out = capsys.readouterr().out
    assert "example.yaml: OK, 8 jobs (name 'demo', model kling-2-1)" in out
    assert "by mode:     master-image-to-video 1, master-text-to-video 2, " in out
    assert "pro-image-to-video 3, standard-image-to-video 2" in out
    assert "by duration: 5 s: 6, 10 s: 2" in out
    assert "then every 5 s): about 52" in out
    assert "prompts.csv: OK, 6 jobs" in out


def test_errors_exit_2_with_places_and_nothing_on_stdout(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("jobs:\n  - {prompt: hi, duration: 7, image_url: 'https://x.com/a'}\n")
    junk = tmp_path / "junk.csv"
    junk.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    code = main(["validate", str(MANIFESTS / "example.yaml"), str(bad), str(junk)])
    captured = capsys.readouterr()
    assert code == 2
    assert captured.out == ""
    assert f"error: {bad}:2: jobs[0].duration: duration must be 5 or 10 (seconds), got 7" in (
        captured.err
    )
    assert f"error: {junk}:3: looks like a binary file" in captured.err
    assert "2 problems found; nothing was sent." in captured.err
    assert "Traceback" not in captured.err


def test_missing_file(tmp_path, capsys):
    assert main(["validate", str(tmp_path / "nope.yaml")]) == 2
    assert "nope.yaml: no such file" in capsys.readouterr().err
