"""The README's demo, as a user runs it: `batchgen run manifests/example.yaml --sandbox`."""

from __future__ import annotations

import json
from pathlib import Path

from batchgen.cli import main

ROOT = Path(__file__).resolve().parent.parent


def test_demo_leaves_playable_mp4s_a_report_and_a_gallery(tmp_path: Path, capsys) -> None:
    out = tmp_path / "demo"
    code = main(
        [
            "run",
            str(ROOT / "manifests/example.yaml"),
            "--sandbox",
            "--gallery",
            "--output",
            str(out),
        ]
    )
    assert code == 0, capsys.readouterr().err
    videos = sorted(out.glob("*.mp4"))
    assert len(videos) == 8
    for video in videos:
        head = video.read_bytes()[:12]
        assert head[4:8] == b"ftyp", video  # an ISO media file a player opens
    lines = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    assert [r["status"] for r in lines] == ["done"] * 8
    assert {Path(r["files"][0]["path"]).name for r in lines} == {v.name for v in videos}
    assert (out / "gallery.html").is_file()
    # Running it again finds everything done and sends nothing new.
    assert (
        main(["run", str(ROOT / "manifests/example.yaml"), "--sandbox", "--output", str(out)]) == 0
    )


def test_missing_key_is_a_clear_usage_error(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.delenv("APIXO_API_KEY", raising=False)
    code = main(["run", str(ROOT / "manifests/example.yaml"), "--output", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2
    assert "APIXO_API_KEY" in err and "Traceback" not in err


def test_an_interrupted_sandbox_run_resumes_and_never_adopts_another_state_files_tasks(
    tmp_path: Path, capsys
):
    """A --sandbox run stopped with tasks in flight finds them again on the next run (the
    journal beside its state file); a sandbox on another state file has its own seed, so it
    never mistakes those tasks for its own."""
    out, other = tmp_path / "demo", tmp_path / "other"
    manifest = str(ROOT / "manifests/example.yaml")
    first = main(["run", manifest, "--sandbox", "--output", str(out), "--max-runtime", "0.3"])
    assert first == 75
    assert main(["run", manifest, "--sandbox", "--output", str(out)]) == 0
    rows = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    assert [r["status"] for r in rows] == ["done"] * len(rows)
    assert main(["run", manifest, "--sandbox", "--output", str(other)]) == 0
    seeds = [
        json.loads((d / "batchgen.db.sandbox.jsonl").read_text().splitlines()[0])["seed"]
        for d in (out, other)
    ]
    assert seeds[0] != seeds[1]
