"""Downloads through the real engine against the simulator's file faults."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from pathlib import Path

from batchgen import store as st
from batchgen.adapters.download.attempt import Downloader
from batchgen.cli import main
from batchgen.errors import DiskFull
from batchgen.runner import execute
from batchgen.simulator import Simulator
from tests.enginekit import KEY, SCALE, assert_files_verified, mixed_jobs, options, prepare_state


def sim(**kw):
    return Simulator(api_keys=frozenset({KEY}), time_scale=SCALE, seed=5, **kw)


async def test_cut_ignored_range_and_trickle_end_verified_with_little_refetch(
    tmp_path: Path,
) -> None:
    state = prepare_state(tmp_path, mixed_jobs(12))
    size = 256 * 1024
    faults = {"p_file_cut": 0.5, "p_file_ignore_range": 0.2, "p_file_trickle": 0.2}
    fetched: list[int] = []
    real = Downloader.fetch

    async def counting(self, url, dest):
        result = await real(self, url, dest)
        fetched.append(result.fetched_bytes)
        return result

    Downloader.fetch = counting
    try:
        async with sim(result_size=size, **faults) as s:
            outcome = await execute(options(tmp_path, s.base_url))
            stats = s.stats()
    finally:
        Downloader.fetch = real
    assert outcome.exit_code == 0, outcome
    assert assert_files_verified(s, state, tmp_path / "out") == 12
    assert stats["faults_fired"].get("p_file_cut", 0) > 0
    # A cut body is resumed with Range: in total little more than the files themselves
    # (an ignored Range costs a full refetch, which the simulator fires on purpose).
    ignored = stats["faults_fired"].get("p_file_ignore_range", 0)
    assert sum(fetched) <= 12 * size + ignored * size + size
    assert stats["requests"]["file"].get("206", 0) > 0
    assert not list((tmp_path / "out").glob("*.part"))


async def test_result_larger_than_the_cap_fails_the_job_not_the_disk(tmp_path: Path) -> None:
    state = prepare_state(tmp_path, mixed_jobs(2))
    async with sim(result_size=300_000) as s:
        outcome = await execute(options(tmp_path, s.base_url, max_file_bytes=100_000))
    assert outcome.exit_code == 1
    store = st.Store(state, readonly=True)
    codes = [r[0] for r in store.db.execute("SELECT fail_code FROM jobs")]
    store.close()
    assert codes == ["DOWNLOAD_REFUSED", "DOWNLOAD_REFUSED"]
    assert not [p for p in (tmp_path / "out").iterdir() if p.suffix in (".mp4", ".part")]


async def test_results_outliving_their_lifetime_end_expired(tmp_path: Path, monkeypatch) -> None:
    state = prepare_state(tmp_path, mixed_jobs(3))
    lifetime = 120.0  # service seconds: 1.2 s at this scale

    async def full(self, url, dest):
        raise DiskFull("No space left on device")

    async with sim(result_lifetime_s=lifetime) as s:
        opts = options(tmp_path, s.base_url, result_lifetime_s=lifetime * SCALE)
        monkeypatch.setattr(Downloader, "fetch", full)
        first = await execute(opts)
        assert first.exit_code == 75
        monkeypatch.undo()
        # Let every task finish and its result outlive its lifetime, then resume.
        await asyncio.sleep(3.0)
        second = await execute(opts)
        third = await execute(opts)
    store = st.Store(state, readonly=True)
    states = [r[0] for r in store.db.execute("SELECT state FROM jobs")]
    notes = [r[0] for r in store.db.execute("SELECT note FROM jobs WHERE state='expired'")]
    store.close()
    assert second.exit_code in (1, 75) and third.exit_code == 1, (second, third)
    assert states == [st.EXPIRED] * 3, states
    assert all("expired" in n for n in notes)


async def test_report_command_prints_jsonl_and_csv(tmp_path: Path, capsys) -> None:
    state = prepare_state(tmp_path, mixed_jobs(3, violations=(1,)))
    async with sim() as s:
        await execute(options(tmp_path, s.base_url))
    assert await asyncio.to_thread(main, ["report", str(state)]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [r["status"] for r in lines] == ["done", "failed", "done"]
    assert lines[1]["fail_code"] == "CONTENT_VIOLATION"
    assert lines[0]["files"][0]["sha256"] and lines[0]["prompt"].startswith("job 0")
    assert await asyncio.to_thread(main, ["report", str(state), "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["status"] for r in rows] == ["done", "failed", "done"]
    assert rows[0]["files"].endswith(".mp4")
