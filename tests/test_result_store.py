"""Results straight into a bucket (issue 28), through the real CLI against a real S3-protocol
server (moto, signatures checked, upload checksums verified: tests/s3kit.py)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from batchgen import store as st
from batchgen.cli import main
from batchgen.simulator import Simulator
from tests import s3kit
from tests.enginekit import KEY, SCALE, pace_args
from tests.notifykit import serve_hooks
from tests.proxykit import refusing_proxy
from tests.s3kit import S3Server

pytestmark = pytest.mark.timeout(120)

BUCKET = "batchgen-results"
OUT = f"s3://{BUCKET}/runs/b1"


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[S3Server]:
    with s3kit.running(BUCKET) as server:
        s3kit.use_store_env(monkeypatch, server, APIXO_API_KEY=KEY)
        yield server


def manifest(folder: Path, n: int, *, name: str = "m.yaml", output: str | None = None) -> Path:
    lines = ["name: bucketed", "defaults: {duration: 5, mode: master-text-to-video,"]
    lines.append("  aspect_ratio: '16:9'}")
    if output:
        lines.append(f"output: {{dir: '{output}', filename: 'clips/{{id}}.mp4'}}")
    lines.append("jobs:")
    lines += [f"  - {{id: job-{i}, prompt: 'a calm sea number {i}'}}" for i in range(n)]
    path = folder / name
    path.write_text("\n".join(lines) + "\n")
    return path


def argv(sim: Simulator, path: Path, state: Path, *extra: str) -> list[str]:
    return [
        "run", str(path), "--state", str(state), *pace_args(sim.base_url),
        "--allow-private-result-hosts", "--progress-every", "0.2", *extra,
    ]  # fmt: skip


def objects(s3: S3Server, prefix: str = "runs/b1/") -> dict[str, dict]:
    client = s3.client()
    listed = client.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])
    return {o["Key"]: o for o in listed}


def head(s3: S3Server, key: str) -> dict:
    return s3.client().head_object(Bucket=BUCKET, Key=key)


def file_gets(sim: Simulator) -> int:
    return sum(n for ep, c in sim.stats()["requests"].items() if "file" in ep for n in c.values())


async def test_a_whole_batch_lands_in_the_bucket_verified(s3, tmp_path, capsys) -> None:
    path = manifest(tmp_path, 4, output=OUT)
    state = tmp_path / "local" / "batchgen.db"
    async with Simulator(api_keys=frozenset({KEY}), time_scale=SCALE) as sim:
        code = await asyncio.to_thread(main, argv(sim, path, state, "--gallery"))
        expected = {t: sim.expected_sha256(t) for t in sim.task_ids()}
    out = capsys.readouterr()
    assert code == 0, out.err
    found = objects(s3)
    assert sorted(found) == [
        *(f"runs/b1/clips/job-{i}.mp4" for i in range(4)),
        "runs/b1/results.jsonl",
    ]
    for i in range(4):
        meta = head(s3, f"runs/b1/clips/job-{i}.mp4")
        assert meta["Metadata"]["batchgen-sha256"] in expected.values()
        assert meta["ContentType"] == "video/mp4"
    # Every result PUT was conditional and carried a checksum the server checked.
    puts = [h for h in s3.put_headers if "x-amz-meta-batchgen-sha256" in h]
    assert len(puts) == 4
    assert all(h.get("if-none-match") == "*" and h.get("x-amz-checksum-sha256") for h in puts)
    # What stays local: the state file, results.jsonl, the gallery; the spool is empty.
    local = state.parent
    assert sorted(p.name for p in local.iterdir() if not p.name.startswith("batchgen.db")) == [
        ".spool", "gallery.html", "results.jsonl",
    ]  # fmt: skip
    assert [p for p in (local / ".spool").rglob("*") if p.is_file()] == []
    uploaded = s3.client().get_object(Bucket=BUCKET, Key="runs/b1/results.jsonl")["Body"].read()
    assert uploaded == (local / "results.jsonl").read_bytes()
    records = [json.loads(line) for line in uploaded.splitlines()]
    assert {f["object"] for r in records for f in r["files"]} == {
        f"{OUT}/clips/job-{i}.mp4" for i in range(4)
    }
    assert f"output {OUT}" in out.err
    assert s3.refused == []


async def test_same_bytes_count_as_done_other_bytes_fail_and_are_kept(s3, tmp_path) -> None:
    path = manifest(tmp_path, 3)
    state = tmp_path / "local" / "batchgen.db"
    async with Simulator(api_keys=frozenset({KEY}), time_scale=SCALE) as sim:
        # The first run fills the bucket; a second state file, same bucket and names: the
        # simulator's files for new tasks differ, so every key holds other bytes.
        assert await asyncio.to_thread(main, argv(sim, path, state, "--output", OUT)) == 0
        first = {k: head(s3, k)["ETag"] for k in objects(s3) if k.endswith(".mp4")}
        other = tmp_path / "other" / "batchgen.db"
        code = await asyncio.to_thread(main, argv(sim, path, other, "--output", OUT))
        assert code == 1
        assert {k: head(s3, k)["ETag"] for k in first} == first  # nothing overwritten
        db = st.Store(other, readonly=True)
        codes = [r[0] for r in db.db.execute("SELECT fail_code FROM jobs")]
        db.close()
        assert codes == ["OUTPUT_CONFLICT"] * 3
        kept = sorted((other.parent / ".spool").rglob("*.mp4"), key=lambda p: p.name)
        assert [p.name for p in kept] == ["job-0.mp4", "job-1.mp4", "job-2.mp4"]  # kept locally

        # A key that already holds the very bytes counts as done, without a new upload.
        s3.client().delete_object(Bucket=BUCKET, Key="runs/b1/job-0.mp4")
        s3.client().put_object(
            Bucket=BUCKET, Key="runs/b1/job-0.mp4", Body=kept[0].read_bytes(),
            Metadata={"batchgen-sha256": hashlib.sha256(kept[0].read_bytes()).hexdigest()},
        )  # fmt: skip
        puts = len(s3.put_headers)
        assert (
            await asyncio.to_thread(main, ["retry", str(other), "--codes", "OUTPUT_CONFLICT"]) == 0
        )
        code = await asyncio.to_thread(main, argv(sim, path, other, "--output", OUT))
    assert code == 1  # job-1 and job-2 still conflict
    db = st.Store(other, readonly=True)
    states = dict(db.db.execute("SELECT id, state FROM jobs").fetchall())
    db.close()
    assert states["job-0"] == "done"
    assert {states["job-1"], states["job-2"]} == {"failed"}
    results = [h for h in s3.put_headers[puts:] if "x-amz-meta-batchgen-sha256" in h]
    assert results == []  # job-0 was already there; the others are never overwritten


async def test_a_missing_bucket_or_credentials_stop_before_any_submit(
    s3, tmp_path, capsys, monkeypatch
) -> None:
    path = manifest(tmp_path, 2)
    async with Simulator(api_keys=frozenset({KEY}), time_scale=SCALE) as sim:
        missing = ["--output", "s3://no-such-bucket/x"]
        code = await asyncio.to_thread(main, argv(sim, path, tmp_path / "a" / "b.db", *missing))
        err = capsys.readouterr().err
        assert code == 3
        assert "s3://no-such-bucket" in err and "does not exist" in err
        assert "Traceback" not in err
        monkeypatch.delenv("AWS_ACCESS_KEY_ID")
        monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
        code = await asyncio.to_thread(
            main, argv(sim, path, tmp_path / "c" / "b.db", "--output", OUT)
        )
        err = capsys.readouterr().err
        assert code == 2
        assert f"s3://{BUCKET}" in err and "no credentials" in err and "AWS_ACCESS_KEY_ID" in err
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3.access_key)
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret-" + "x" * 27)
        code = await asyncio.to_thread(
            main, argv(sim, path, tmp_path / "d" / "b.db", "--output", OUT)
        )
        err = capsys.readouterr().err
        assert code == 3 and "refused the credentials" in err
        assert sim.stats()["tasks"]["total"] == 0  # nothing was submitted
    assert "wrong-secret" not in err and s3.secret_key not in err


async def test_a_sigkill_during_the_upload_then_a_rerun(s3, tmp_path) -> None:
    """The CLI is killed while its upload is parked in the server (a 32 MB body: more than
    the socket buffers hold, so the kill cuts it): no object, no multipart upload; the rerun
    publishes what the spool holds, with no new task and no new download."""
    path = manifest(tmp_path, 1)
    state = tmp_path / "local" / "batchgen.db"
    big = 32 * 1024 * 1024
    async with Simulator(api_keys=frozenset({KEY}), time_scale=SCALE, result_size=big) as sim:
        s3.hold_puts("/job-0.mp4")
        args = [sys.executable, "-m", "batchgen", *argv(sim, path, state, "--output", OUT)]
        proc = await asyncio.create_subprocess_exec(
            *args, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
        )
        try:
            assert await asyncio.to_thread(s3.held.wait, 60)
            proc.send_signal(signal.SIGKILL)
            assert await proc.wait() == -signal.SIGKILL
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        s3.release()
        await asyncio.sleep(0.2)  # lets the server thread see the cut body (not a timing check)
        assert objects(s3) == {}
        assert s3.client().list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []
        assert "IncompleteBody" in s3.refused
        tasks, gets = sim.stats()["tasks"]["total"], file_gets(sim)
        assert [p for p in (state.parent / ".spool").rglob("job-0.mp4")]
        code = await asyncio.to_thread(main, argv(sim, path, state, "--output", OUT))
        assert code == 0
        assert sim.stats()["tasks"]["total"] == tasks == 1
        assert file_gets(sim) == gets  # published from the spool, not downloaded again
        sha = sim.expected_sha256(sim.task_ids()[0])
    assert head(s3, "runs/b1/job-0.mp4")["Metadata"]["batchgen-sha256"] == sha
    assert [p for p in (state.parent / ".spool").rglob("*") if p.is_file()] == []


async def test_report_gallery_and_nothing_secret_anywhere(s3, tmp_path, capsys) -> None:
    """The report names each object; --presign adds working links with their expiry; the
    gallery plays through such links and says when they expire. The store's secret is in no
    output and no file; a signature appears only in the links the user asked for."""
    path = manifest(tmp_path, 2)
    state = tmp_path / "local" / "batchgen.db"
    async with Simulator(api_keys=frozenset({KEY}), time_scale=SCALE) as sim:
        code = await asyncio.to_thread(main, argv(sim, path, state, "--output", OUT))
        expected = {sim.expected_sha256(t) for t in sim.task_ids()}
    assert code == 0
    run_out = capsys.readouterr()
    assert await asyncio.to_thread(main, ["report", str(state)]) == 0
    plain = capsys.readouterr().out
    objs = {f["object"] for line in plain.splitlines() for f in json.loads(line)["files"]}
    assert objs == {f"{OUT}/job-0.mp4", f"{OUT}/job-1.mp4"}
    assert await asyncio.to_thread(main, ["report", str(state), "--presign", "1h"]) == 0
    signed = capsys.readouterr().out
    files = [f for line in signed.splitlines() for f in json.loads(line)["files"]]
    assert all(f["presigned_url"].startswith(s3.endpoint) for f in files)
    assert all(f["presigned_expires_at"].endswith("Z") for f in files)
    got = [await asyncio.to_thread(_fetch, f["presigned_url"]) for f in files]
    assert {hashlib.sha256(b).hexdigest() for b in got} == expected
    assert await asyncio.to_thread(main, ["report", str(state), "--format", "csv"]) == 0
    assert f"{OUT}/job-0.mp4" in capsys.readouterr().out
    assert await asyncio.to_thread(main, ["gallery", str(state), "--link-ttl", "2h"]) == 0
    gallery_out = capsys.readouterr()
    page = (state.parent / "gallery.html").read_text()
    assert page.count(f'data-src="{s3.endpoint}/') == 2 and "stop working at" in page
    assert f"file: {s3.endpoint};" in page  # the CSP lets the page play them

    # Secrets: the secret key nowhere; signatures only in what was asked (--presign, gallery).
    unasked = [run_out.out, run_out.err, plain, gallery_out.out, gallery_out.err]
    local_files = [p for p in state.parent.rglob("*") if p.is_file() and p.name != "gallery.html"]
    texts = unasked + [p.read_bytes().decode("latin-1") for p in local_files]
    texts.append(
        s3.client().get_object(Bucket=BUCKET, Key="runs/b1/results.jsonl")["Body"].read().decode()
    )
    for text in [*texts, signed, page]:
        assert s3.secret_key not in text
    for text in texts:
        assert "X-Amz-Signature" not in text and "X-Amz-Credential" not in text
        assert s3.access_key not in text


def _fetch(url: str) -> bytes:
    import urllib.request

    with urllib.request.urlopen(url) as resp:
        return resp.read()


async def test_the_store_follows_the_runs_proxy_rule(s3, tmp_path, capsys, monkeypatch) -> None:
    """The probe (and so every upload) goes through the proxy the run's rule picks for the
    endpoint, and not at all with --no-proxy-env."""
    with refusing_proxy() as (port, seen):
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{port}")
        monkeypatch.setenv("AWS_ENDPOINT_URL", "http://s3.store.test:9000")  # does not resolve
        path = manifest(tmp_path, 1)
        async with Simulator(api_keys=frozenset({KEY}), time_scale=SCALE) as sim:
            code = await asyncio.to_thread(
                main, argv(sim, path, tmp_path / "a" / "b.db", "--output", OUT)
            )
            assert code == 3
            assert seen and all(b"s3.store.test:9000" in line for line in seen)
            seen.clear()
            code = await asyncio.to_thread(
                main, argv(sim, path, tmp_path / "b" / "b.db", "--output", OUT, "--no-proxy-env")
            )
            assert code == 3 and seen == []
            assert sim.stats()["tasks"]["total"] == 0
    err = capsys.readouterr().err
    assert "s3.store.test" in err and "Traceback" not in err


async def test_the_notify_json_summary_names_the_report_in_the_bucket(s3, tmp_path) -> None:
    """Issue 30 with an `s3://` output: the summary's `report` is where the report is for
    whoever receives it, the bucket's object, not a path on the machine that ran."""
    path = manifest(tmp_path, 2)
    state = tmp_path / "local" / "batchgen.db"
    sim = Simulator(api_keys=frozenset({KEY}), time_scale=SCALE)
    async with serve_hooks() as hooks, sim:
        extra = ("--output", OUT, "--notify-json", f"{hooks.base}/hook", "--notify-on", "success")
        code = await asyncio.to_thread(main, argv(sim, path, state, *extra))
    assert code == 0
    (hit,) = hooks.on("/hook")
    summary = json.loads(hit.body)
    assert summary["report"] == f"{OUT}/results.jsonl"
    uploaded = s3.client().get_object(Bucket=BUCKET, Key="runs/b1/results.jsonl")["Body"].read()
    assert uploaded == (state.parent / "results.jsonl").read_bytes()
    assert summary["counts"]["done"] == 2
