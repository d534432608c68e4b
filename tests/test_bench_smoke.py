"""Each benchmark scenario (bench/) at a tiny size: it runs and its figures are there.

No timing assertions: these only prove the benchmarks still work. The limits kept by the client
(busiest window and peak in flight against the limits) are correctness, so they are asserted.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import report, scenarios  # noqa: E402

pytestmark = pytest.mark.slow


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value == value


def test_throughput_smoke(tmp_path: Path) -> None:
    res = scenarios.run("throughput", "smoke", tmp_path)
    for sub in ("cap_bound", "rate_bound"):
        r = res[sub]
        assert r["done"] == r["jobs"], r
        for key in (
            "steady_jobs_s",
            "end_to_end_jobs_s",
            "bound_jobs_s",
            "ratio_steady",
            "requests_per_job",
            "cpu_s_per_1000_jobs",
            "ideal_requests_per_job",
        ):
            assert _number(r[key]) and r[key] > 0, (key, r[key])
        assert r["server_max_in_flight"] <= r["cap"]
        assert r["client_max_in_flight"] <= r["cap"]
        assert r["window_ratio"] <= 1.0
        assert r["timeline"] and all(len(row) == 4 for row in r["timeline"])
    # the markdown table and the plot (or a message when matplotlib is missing)
    results = {
        "command": "bench/run_all.py --size smoke",
        "size": "smoke",
        "started": "now",
        "machine": scenarios.kit.machine(),
        "scenarios": {"throughput": res},
    }
    results["targets"] = report.judge(results["scenarios"])
    assert {t["figure"] for t in results["targets"]} >= {"cap binds: steady jobs/s ÷ bound"}
    msg = report.plot(res["cap_bound"]["timeline"], res["cap_bound"], tmp_path / "t.png")
    assert msg.startswith("plot skipped") or (tmp_path / "t.png").stat().st_size > 1000
    assert "| 1 throughput |" in report.markdown(results)


def test_economy_smoke(tmp_path: Path) -> None:
    res = scenarios.run("economy", "smoke", tmp_path)
    assert res["polling"]["done"] == res["callback"]["done"] == res["jobs"]
    assert _number(res["polling_over_ideal"]) and res["polling_over_ideal"] > 0
    assert 1.0 <= res["callback_requests_per_job"] < res["polling_requests_per_job"]


def test_limits_smoke(tmp_path: Path) -> None:
    res = scenarios.run("limits", "smoke", tmp_path)
    assert res["done"] == res["jobs"]
    assert res["window_ratio"] <= 1.0
    assert res["in_flight_ratio"] <= 1.0
    assert res["server_429s"] >= 0


def test_overhead_smoke(tmp_path: Path) -> None:
    res = scenarios.run("overhead", "smoke", tmp_path)
    assert res["done"] == res["jobs"]
    assert _number(res["cpu_s_per_1000_jobs"]) and _number(res["peak_rss_mb"])
    assert res["callback_done"] == res["callback_jobs"]
    assert _number(res["callback_cpu_s_per_1000_jobs"])
    assert res["callback_requests_per_job"] == 2.0  # one submit, one confirming status
    assert _number(res["floor_cpu_s_per_1000_jobs"])
    assert _number(res["floor_write_cpu_s_per_1000_jobs"])


def test_resume_smoke(tmp_path: Path) -> None:
    res = scenarios.run("resume", "smoke", tmp_path)
    assert _number(res["first_request_s"]) and res["first_request_s"] > 0
    assert res["done_at_start"] == res["jobs"] // 2


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed")
def test_downloads_smoke(tmp_path: Path) -> None:
    res = scenarios.run("downloads", "smoke", tmp_path)
    assert "error" not in res, res
    assert res["modes"] and all(_number(m["ratio"]) for m in res["modes"].values())
    assert "runner default" in res["modes"]  # shown, not counted in min_ratio
    parts = res["one_at_a_time_parts"]
    assert set(parts) == {"receive+write", "receive+sha256", "receive+both"}
    assert all(_number(p["ratio"]) for p in parts.values())


def test_run_all_writes_results(tmp_path: Path) -> None:
    from bench import run_all

    out = tmp_path / "results"
    run_all.main(["--size", "smoke", "--only", "limits", "--out", str(out)])
    data = json.loads((out / "latest.json").read_text())
    assert data["scenarios"]["limits"]["window_ratio"] <= 1.0
    assert data["machine"]["nproc"]
    assert "| 3 limits |" in (out / "latest.md").read_text()


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is the reference")
def test_download_parts_smoke(capsys: pytest.CaptureFixture[str]) -> None:
    from bench import download_parts

    assert download_parts.main(["--files", "2", "--size-mb", "3", "--runs", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    named = {line.split("  ")[1].strip() for line in lines[1:]}
    assert {"curl", *download_parts.MODES, "batchgen Downloader"} <= named
