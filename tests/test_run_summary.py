"""Issue 26 friction 6: the end of a run names the jobs that did not succeed, and each
failure is logged as it happens.

`finished, some jobs did not succeed: done 1, failed 2` said how many but not which; now the
summary lists each failed, ambiguous or orphaned job (up to 20, then a count and the
`batchgen status STATE` command) with its code and a short reason, and the log has one INFO
line per job failure.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from batchgen.cli import main


def write_manifest(path: Path, n: int, ok: set[int]) -> None:
    lines = ["version: 1", "name: fails", "jobs:"]
    for i in range(n):
        marker = "" if i in ok else " [sim:content_violation]"
        lines += [
            f"  - id: job-{i:02d}",
            "    mode: master-text-to-video",
            f"    prompt: a calm sea {i}{marker}",
            "    aspect_ratio: '16:9'",
            "    duration: 5",
        ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_the_summary_names_failed_jobs_and_each_failure_is_logged(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = tmp_path / "m.yaml"
    write_manifest(manifest, 24, ok={0, 8, 16})
    out = tmp_path / "out"
    assert main(["run", str(manifest), "--sandbox", "--output", str(out)]) == 1
    err = capsys.readouterr().err
    failed = [f"job-{i:02d}" for i in range(24) if i not in {0, 8, 16}]
    # one INFO line per failure, as it happens
    logged = [line for line in err.splitlines() if line.startswith("INFO ") and " failed: " in line]
    assert sorted(line.split()[1] for line in logged) == failed, err
    assert all("CONTENT_VIOLATION" in line for line in logged)
    # the summary: the first 20 by manifest order, with code and reason, then the rest counted
    summary = err[err.index("finished, some jobs did not succeed") :]
    assert "jobs not done (21):" in summary
    for job_id in failed[:20]:
        assert f"{job_id}  failed CONTENT_VIOLATION: Content does not meet" in summary, summary
    assert failed[20] not in summary
    assert f"... and 1 more: batchgen status {out / 'batchgen.db'}" in summary


def test_the_json_summary_carries_them_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = tmp_path / "m.yaml"
    write_manifest(manifest, 3, ok={0})
    out = tmp_path / "out"
    argv = ["run", str(manifest), "--sandbox", "--output", str(out), "--log-format", "json"]
    assert main(argv) == 1
    lines = [json.loads(x) for x in capsys.readouterr().err.splitlines() if x.startswith("{")]
    summary = next(x for x in lines if x.get("event") == "summary")
    assert summary["not_done_total"] == 2
    assert [(j["id"], j["state"], j["code"]) for j in summary["not_done"]] == [
        ("job-01", "failed", "CONTENT_VIOLATION"),
        ("job-02", "failed", "CONTENT_VIOLATION"),
    ]
