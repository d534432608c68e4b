"""Local image files through a real S3-protocol server (moto, signatures checked: s3kit)."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from batchgen import store as st
from batchgen.cli import main
from batchgen.simulator import Simulator
from tests import s3kit
from tests.enginekit import KEY, SCALE, pace_args
from tests.imagekit import png
from tests.s3kit import S3Server

STORE = "s3://batchgen-images/runs"


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[S3Server]:
    with s3kit.running() as server:
        s3kit.use_store_env(monkeypatch, server, APIXO_API_KEY=KEY)
        yield server


def _manifest(folder: Path, jobs: list[tuple[str, str]], name: str = "m.yaml") -> Path:
    lines = ["defaults: {duration: 5, mode: standard-image-to-video}", "jobs:"]
    for prompt, image in jobs:
        lines.append(f"  - {{prompt: '{prompt}', image_url: imgs/{image}}}")
    path = folder / name
    path.write_text("\n".join(lines) + "\n")
    return path


def _images(folder: Path) -> None:
    (folder / "imgs").mkdir(exist_ok=True)
    (folder / "imgs" / "a.png").write_bytes(png(640, 360, (10, 20, 30)))
    (folder / "imgs" / "b.png").write_bytes(png(640, 360, (200, 20, 30)))


async def _run(sim: Simulator, manifest: Path, out: Path, *extra: str) -> int:
    argv = ["run", str(manifest), "--output", str(out), "--image-store", STORE, "--preflight"]
    argv += [*pace_args(sim.base_url), "--allow-private-result-hosts", *extra]
    return await asyncio.to_thread(main, argv)


async def test_each_file_is_uploaded_once_and_the_provider_fetches_it(
    s3: S3Server, tmp_path: Path, capsys
) -> None:
    _images(tmp_path)
    first = _manifest(tmp_path, [("one", "a.png"), ("two", "a.png"), ("three", "b.png")])
    async with Simulator(api_keys=frozenset({KEY}), time_scale=SCALE, fetch_images="all") as sim:
        assert await _run(sim, first, tmp_path / "out1") == 0
        # the bucket, the run's probe of the store, then two distinct files
        assert s3.puts() == 1 + 1 + 2
        fetched = [u for u, status in sim.images.fetched if status == 200]
        assert len(fetched) == 3 and all("X-Amz-Signature=" in u for u in fetched)

        # A second batch (its own state file) with one old file and one new one.
        (tmp_path / "imgs" / "c.png").write_bytes(png(500, 500))
        second = _manifest(tmp_path, [("four", "b.png"), ("five", "c.png")], "n.yaml")
        assert await _run(sim, second, tmp_path / "out2") == 0
        assert s3.puts() == 1 + 2 + 3  # another probe, one new file
    assert s3.refused == []
    out = capsys.readouterr()
    state = (tmp_path / "out1" / "batchgen.db").read_bytes()
    for secret in (s3.secret_key, s3.access_key):
        assert secret not in out.out + out.err
        assert secret.encode() not in state
        assert secret not in (tmp_path / "out1" / "results.jsonl").read_text()
    assert b"X-Amz-Signature" not in state
    db = st.Store(tmp_path / "out1" / "batchgen.db", readonly=True)
    keys = {r[0] for r in db.db.execute("SELECT store_key FROM local_images")}
    db.close()
    assert all(k.startswith(f"{STORE}/") and k.endswith(".png") for k in keys) and len(keys) == 2


async def test_an_expired_url_is_signed_afresh_on_retry(s3: S3Server, tmp_path: Path) -> None:
    _images(tmp_path)
    manifest = _manifest(tmp_path, [("a sea [sim:transient:1]", "a.png")])  # fails once
    async with Simulator(api_keys=frozenset({KEY}), time_scale=SCALE, fetch_images="all") as sim:
        # A short life, so that the run's own clock (which signs) passes it: the signer's
        # time cannot be moved, the server's alone would not show a fresh signature.
        # No automatic resubmit of the transient failure: the retry below is the one.
        argv = ("--image-url-ttl", "2s", "--max-resubmits", "0")
        assert await _run(sim, manifest, tmp_path / "out", *argv) == 1
        first = [u for u, _ in sim.images.fetched]
        await asyncio.sleep(3)  # not a timed assertion: only lets the URL expire
        old = s3.requests.copy()
        assert await asyncio.to_thread(_get_status, first[0]) == 403
        state = tmp_path / "out" / "batchgen.db"
        db = st.Store(state)
        db.moves.requeue([r[0] for r in db.db.execute("SELECT seq FROM jobs")])
        db.close()
        code = await asyncio.to_thread(
            main,
            ["resume", str(state), *pace_args(sim.base_url), "--allow-private-result-hosts"],
        )
        fetched = sim.images.fetched[len(first) :]
    assert code == 0
    assert fetched and fetched[-1][0] != first[0] and fetched[-1][1] == 200
    # Already in the store: not uploaded again (the one new PUT is the resume's probe).
    assert s3.puts() == old_puts(old) + 1
    assert any("expired" in r for r in s3.refused)


def old_puts(counter) -> int:  # type: ignore[no-untyped-def]
    return sum(n for k, n in counter.items() if k.startswith("PUT "))


def _get_status(url: str) -> int:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


async def test_a_run_without_a_store_stops_before_anything_is_sent(
    tmp_path: Path, capsys, monkeypatch
) -> None:
    monkeypatch.setenv("APIXO_API_KEY", KEY)
    _images(tmp_path)
    manifest = _manifest(tmp_path, [("one", "a.png")])
    async with Simulator(api_keys=frozenset({KEY}), time_scale=SCALE) as sim:
        argv = ["run", str(manifest), "--output", str(tmp_path / "out"), *pace_args(sim.base_url)]
        assert await asyncio.to_thread(main, argv) == 2
        assert sim.stats()["tasks"]["total"] == 0
    assert "--image-store s3://BUCKET/PREFIX" in capsys.readouterr().err
    assert main(["validate", str(manifest)]) == 0
    assert "warning: " in capsys.readouterr().err


def test_validate_lists_every_bad_file_with_its_place(tmp_path: Path, capsys) -> None:
    _images(tmp_path)
    (tmp_path / "imgs" / "anim.gif").write_bytes(b"GIF89a" + bytes(30))
    (tmp_path / "imgs" / "big.png").write_bytes(png(10, 10) + bytes(10_000_001))
    manifest = tmp_path / "m.yaml"
    manifest.write_text(
        "defaults: {duration: 5}\n"
        "jobs:\n"
        "  - {prompt: a, image_url: imgs/a.png}\n"
        "  - {prompt: b, image_url: imgs/anim.gif}\n"
        "  - {prompt: c, image_url: imgs/big.png}\n"
        f"  - {{prompt: d, image_url: 'file://{tmp_path}/imgs/none.jpg'}}\n"
    )
    csv = tmp_path / "rows.csv"
    csv.write_text("prompt,duration,image_url\nx,5,imgs/a.png\ny,5,imgs\n")
    assert main(["validate", str(manifest), str(csv)]) == 2
    err = capsys.readouterr().err
    assert f"{manifest}:4: jobs[1].image_url: " in err and "(a GIF)" in err
    assert f"{manifest}:5: " in err and "over the limit of 10 MB" in err
    assert f"{manifest}:6: " in err and "no such file" in err
    assert f"{csv}: row 3, column image_url: " in err and "not a regular file" in err


def test_editing_an_image_changes_the_job(tmp_path: Path, capsys) -> None:
    _images(tmp_path)
    manifest = tmp_path / "m.yaml"
    manifest.write_text("jobs:\n  - {prompt: a, duration: 5, image_url: imgs/a.png}\n")
    assert main(["validate", "--print-requests", str(manifest)]) == 0
    before = capsys.readouterr().out
    moved = tmp_path / "elsewhere"
    shutil.copytree(tmp_path / "imgs", moved / "imgs")
    shutil.copy(manifest, moved / "m.yaml")
    assert main(["validate", "--print-requests", str(moved / "m.yaml")]) == 0
    assert capsys.readouterr().out == before  # same content, another folder: the same job
    (tmp_path / "imgs" / "a.png").write_bytes(png(641, 360))
    assert main(["validate", "--print-requests", str(manifest)]) == 0
    assert capsys.readouterr().out != before


def test_the_shipped_example_runs_in_the_sandbox(tmp_path: Path) -> None:
    """No bucket: the run serves its files on loopback, and the sandbox's simulator fetches
    them as the provider would (a file it could not fetch would fail INVALID_IMAGE_URL)."""
    example = Path(__file__).resolve().parent.parent / "manifests" / "local-images.yaml"
    assert main(["run", str(example), "--sandbox", "--output", str(tmp_path / "out")]) == 0
    db = st.Store(tmp_path / "out" / "batchgen.db", readonly=True)
    states = [r[0] for r in db.db.execute("SELECT state FROM jobs")]
    db.close()
    assert states == ["done", "done"]


async def test_a_store_that_cannot_take_a_write_stops_the_run_before_any_submit(
    s3: S3Server, tmp_path: Path, capsys
) -> None:
    """Issue 26 item 4: a missing bucket used to fail every job IMAGE_UPLOAD with obstore's
    raw text (and missing credentials tried 169.254.169.254), each after its job was
    reserved. The store is probed first: exit 3 naming the bucket, nothing submitted."""
    _images(tmp_path)
    manifest = _manifest(tmp_path, [("one", "a.png"), ("two", "b.png")])
    async with Simulator(api_keys=frozenset({KEY}), time_scale=SCALE) as sim:
        argv = ["run", str(manifest), "--output", str(tmp_path / "out")]
        argv += ["--image-store", "s3://no-such-bucket/runs", *pace_args(sim.base_url)]
        code = await asyncio.to_thread(main, argv)
        assert sim.stats()["tasks"]["total"] == 0
    err = capsys.readouterr().err
    assert code == 3, err
    assert "no-such-bucket" in err and "Traceback" not in err
