"""Local video files (`video_urls`) go through the image store as image files do: checked
before paying (container by its bytes, length from its header, the model's rules), refused at
`validate` with their place and at `run` before any submit, uploaded once by content or served
by the sandbox, and sent as URLs the provider fetches. Remote video URLs go as written."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from batchgen import store as st
from batchgen.cli import main
from batchgen.simulator import Simulator
from tests.enginekit import KEY, SCALE, pace_args
from tests.imagekit import png
from tests.test_image_store import STORE
from tests.test_image_store import s3 as s3
from tests.videokit import mp4, webm

ANIMATE = "{model: wan-2-2-animate, image_urls: [media/face.png], video_urls: [%s]}"
MOTION = (
    "{model: kling-3-0-std, mode: motion-control, image_urls: [media/face.png], video_urls: [%s]}"
)


def _media(folder: Path) -> None:
    media = folder / "media"
    media.mkdir(exist_ok=True)
    (media / "face.png").write_bytes(png(640, 640))
    (media / "walk.mp4").write_bytes(mp4(8.0))
    (media / "dance.mov").write_bytes(mp4(20.0, brand=b"qt  "))
    (media / "long.mp4").write_bytes(mp4(31.0))
    (media / "clip.webm").write_bytes(webm(6.0))
    (media / "ten.mp4").write_bytes(mp4(10.0, moov_last=False))
    (media / "still.mp4").write_bytes(png(64, 64))  # a picture under a video's name
    (media / "sound.mp4").write_bytes(mp4(5.0, video=False))


def _write(folder: Path, jobs: list[str], name: str = "m.yaml") -> Path:
    path = folder / name
    path.write_text("jobs:\n" + "".join(f"  - {job}\n" for job in jobs), encoding="utf-8")
    return path


BAD = [
    # (job, line's words that must be said)
    (MOTION % "media/long.mp4", "lasts 31.00 s; kling-3-0-std takes at most 30 s"),
    (ANIMATE % "media/clip.webm", "is WebM; wan-2-2-animate takes MP4, MOV, M4V"),
    (ANIMATE % "media/still.mp4", "not a video batchgen can send: a PNG image"),
    (ANIMATE % "media/sound.mp4", "no video track"),
    (ANIMATE % "media/gone.mp4", "no such file"),
    (
        "{model: seedance-2-0, mode: omni_reference, prompt: p, "
        "video_urls: [media/ten.mp4, media/walk.mp4]}",
        "the videos last 18.00 s together; seedance-2-0 takes at most 15 s in total",
    ),
]


def test_validate_refuses_each_bad_video_at_its_place(tmp_path: Path, capsys) -> None:
    _media(tmp_path)
    good = [ANIMATE % "media/walk.mp4", MOTION % "media/dance.mov"]
    manifest = _write(tmp_path, [*good, *(job for job, _ in BAD)])
    assert main(["validate", str(manifest)]) == 2
    err = capsys.readouterr().err
    for n, (_job, said) in enumerate(BAD):
        line = 2 + len(good) + n
        found = [x for x in err.splitlines() if f"{manifest}:{line}: " in x]
        assert found and said in found[0] and "video_urls" in found[0], (said, err)
    assert f"{manifest}:2:" not in err and f"{manifest}:3:" not in err


def test_run_refuses_a_bad_video_before_any_submit(tmp_path: Path, capsys) -> None:
    _media(tmp_path)
    manifest = _write(tmp_path, [ANIMATE % "media/walk.mp4", MOTION % "media/long.mp4"])
    out = tmp_path / "out"
    assert main(["run", str(manifest), "--sandbox", "--output", str(out)]) == 2
    assert "at most 30 s" in capsys.readouterr().err
    assert not (out / "batchgen.db.sandbox.jsonl").exists()  # no simulator task at all


def test_local_videos_run_in_the_sandbox(tmp_path: Path) -> None:
    _media(tmp_path)
    remote = "{model: wan-2-2-animate, image_urls: [media/face.png], video_urls: [https://example.com/m.mp4]}"
    jobs = [ANIMATE % "media/walk.mp4", MOTION % "media/dance.mov", remote]
    manifest = _write(tmp_path, jobs)
    out = tmp_path / "out"
    assert main(["run", str(manifest), "--sandbox", "--output", str(out)]) == 0
    db = st.Store(out / "batchgen.db", readonly=True)
    try:
        assert db.jobs.counts()[st.DONE] == 3
        exts = sorted(r[0] for r in db.db.execute("SELECT ext FROM local_images"))
        assert exts == [".mov", ".mp4", ".png"]
        bodies = [r[0] for r in db.db.execute("SELECT body FROM jobs ORDER BY seq")]
    finally:
        db.close()
    assert "local.batchgen.invalid/sha256/" in bodies[0] and ".mp4" in bodies[0]
    assert "https://example.com/m.mp4" in bodies[2]  # a remote URL stays as written


async def test_a_video_is_uploaded_once_and_the_provider_fetches_it(
    s3,
    tmp_path: Path,
) -> None:
    _media(tmp_path)
    again = (
        "{model: wan-2-2-animate, prompt: again, image_urls: [media/face.png],"
        " video_urls: [media/walk.mp4]}"
    )
    manifest = _write(tmp_path, [ANIMATE % "media/walk.mp4", again])
    async with Simulator(api_keys=frozenset({KEY}), time_scale=SCALE, fetch_images="all") as sim:
        argv = ["run", str(manifest), "--output", str(tmp_path / "out"), "--image-store", STORE]
        argv += [*pace_args(sim.base_url), "--allow-private-result-hosts"]
        assert await asyncio.to_thread(main, argv) == 0
        fetched = [u for u, status in sim.images.fetched if status == 200]
    assert s3.puts() == 1 + 1 + 2  # the bucket, the probe, one image and one video
    videos = [u for u in fetched if ".mp4?" in u]
    assert len(videos) == 2 and all("X-Amz-Signature=" in u for u in videos)


@pytest.mark.parametrize("kind", ["mp4", "webm"])
def test_happy_horse_takes_any_readable_container(tmp_path: Path, kind: str) -> None:
    _media(tmp_path)
    name = "walk.mp4" if kind == "mp4" else "clip.webm"
    job = f"{{model: happyHorse, mode: video-edit, prompt: p, video_urls: [media/{name}]}}"
    assert main(["validate", str(_write(tmp_path, [job]))]) == 0
