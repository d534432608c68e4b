"""Running a manifest again: new jobs are added, changed ones are reported and left alone."""

from __future__ import annotations

import json
from pathlib import Path

from batchgen import store as st
from batchgen.cli import main

MANIFEST = """
version: 1
name: changes
defaults: {{input: {{duration: 5}}}}
jobs:
  - id: a
    mode: master-text-to-video
    aspect_ratio: "16:9"
    prompt: {prompt_a}
{extra}
"""
JOB_B = """  - id: b
    mode: master-text-to-video
    aspect_ratio: "1:1"
    prompt: a second job
"""


def write(path: Path, prompt_a: str, extra: str = "") -> None:
    path.write_text(MANIFEST.format(prompt_a=prompt_a, extra=extra))


def bodies(state: Path) -> dict[str, tuple[str, str]]:
    store = st.Store(state, readonly=True)
    try:
        return {
            i: (json.loads(b)["input"]["prompt"], s)
            for i, b, s in store.db.execute("SELECT id, body, state FROM jobs")
        }
    finally:
        store.close()


def test_added_jobs_run_changed_jobs_wait_for_the_users_word(tmp_path: Path, capsys) -> None:
    manifest, out = tmp_path / "m.yaml", tmp_path / "out"
    argv = ["run", str(manifest), "--sandbox", "--output", str(out)]
    write(manifest, "a calm sea")
    assert main(argv) == 0
    write(manifest, "a stormy sea", JOB_B)
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "1 job(s) changed" in err and "a" in err and "--resubmit-changed" in err
    assert bodies(out / "batchgen.db") == {
        "a": ("a calm sea", st.DONE),
        "b": ("a second job", st.DONE),
    }
    assert main([*argv, "--resubmit-changed"]) == 0
    assert bodies(out / "batchgen.db")["a"] == ("a stormy sea", st.DONE)
