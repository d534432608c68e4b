"""The gallery's input images: thumbnails of local files (once per file, relative, from the
bytes that were sent), remote URLs as links the page never loads, problems said on the card."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from batchgen import store as st
from batchgen.cli import main
from batchgen.inputs.local import REF_PREFIX
from batchgen.ui import gallery as g
from batchgen.ui import gallery_inputs as gi
from tests.enginekit import prepare_state
from tests.imagekit import png
from tests.test_gallery import Parsed

HOSTILE = 'https://evil.example/a.png?x="><script>alert(1)</script>&y=<img src=x onerror=alert(2)>'
SIGNED = (
    "https://bucket.s3.example/k.png?X-Amz-Algorithm=AWS4-HMAC-SHA256"
    "&X-Amz-Credential=AKIDEXAMPLE%2F20260101&X-Amz-Signature=deadbeefcafe0123"
)


def image_file(path: Path, data: bytes) -> tuple[str, str]:
    """Write an image; (its reference in a body, its sha256)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    sha = hashlib.sha256(data).hexdigest()
    return f"{REF_PREFIX}{sha}.png", sha


def job(job_id: str, mode: str, urls: list[str]) -> tuple[str, str, dict[str, Any]]:
    body = {"request_type": "async", "input": {"mode": mode, "prompt": job_id, "duration": 5}}
    body["input"]["image_urls"] = urls
    return job_id, "kling-2-1", body


def state_with(tmp: Path, jobs: list, files: dict[str, Path]) -> Path:
    """A state file holding `jobs`, and `files` ({sha256: path}) in its local_images table."""
    state = prepare_state(tmp, jobs)
    store = st.Store(state)
    try:
        records = store.images
        for sha, path in files.items():
            records.add_local(sha, ".png", str(path), path.stat().st_size)
    finally:
        store.close()
    return state


def gallery(state: Path, out: Path | None = None) -> tuple[Path, str]:
    store = st.Store(state, readonly=True)
    try:
        page = g.write_gallery(store, out, posters=False)
    finally:
        store.close()
    return page, page.read_text(encoding="utf-8")


def card(page: str, job_id: str) -> str:
    for block in page.split("<article ")[1:]:
        if f'<span class="id">{job_id}</span>' in block:
            return block
    raise AssertionError(f"no card for {job_id}")


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Every thumbnail made (the target path)."""
    made: list[Path] = []
    real = gi._thumbnail

    def counting(data: bytes, target: Path) -> str | None:
        made.append(target)
        return real(data, target)

    monkeypatch.setattr(gi, "_thumbnail", counting)
    return made


def test_one_thumbnail_per_distinct_file_made_once(tmp_path: Path, spy: list[Path]) -> None:
    shared, sha_a = image_file(tmp_path / "imgs" / "a.png", png(1200, 600, (10, 200, 30)))
    end, sha_b = image_file(tmp_path / "imgs" / "b.png", png(300, 900, (200, 10, 30)))
    files = {sha_a: tmp_path / "imgs" / "a.png", sha_b: tmp_path / "imgs" / "b.png"}
    jobs = [
        job("one", "standard-image-to-video", [shared]),
        job("two", "pro-image-to-video", [shared, end]),
    ]
    state = state_with(tmp_path, jobs, files)
    out = tmp_path / "out"

    page_path, page = gallery(state)
    assert sorted(p.name for p in spy) == sorted([f"{sha_a}.jpg", f"{sha_b}.jpg"])
    for sha, size in ((sha_a, (320, 160)), (sha_b, (107, 320))):
        thumb = out / "thumbs" / f"{sha}.jpg"
        with Image.open(thumb) as im:
            assert im.format == "JPEG" and im.size == size
        assert thumb.stat().st_size < 20_000
    # Relative links into the folder, the shared file shown on both cards.
    srcs = [a["src"] for a in Parsed(page).of("img")]
    assert srcs == [f"thumbs/{sha_a}.jpg", f"thumbs/{sha_a}.jpg", f"thumbs/{sha_b}.jpg"]
    assert all((page_path.parent / s).is_file() for s in srcs)
    # The end frame of the pro job is labelled as such.
    two = card(page, "two")
    assert "start frame · a.png" in two and "end frame · b.png" in two
    assert "input image · a.png" in card(page, "one")

    spy.clear()
    gallery(state)
    assert spy == []  # already there: not made again

    # A page written elsewhere links back into the output folder.
    _, elsewhere = gallery(state, tmp_path / "review" / "page.html")
    srcs = [a["src"] for a in Parsed(elsewhere).of("img")]
    assert srcs[0] == f"../out/thumbs/{sha_a}.jpg"
    assert all((tmp_path / "review" / s).resolve().is_file() for s in srcs)


def test_remote_urls_are_links_never_loaded(tmp_path: Path, spy: list[Path]) -> None:
    remote = "https://images.example.com/start.jpg"
    state = state_with(tmp_path, [job("r", "pro-image-to-video", [remote, HOSTILE])], {})
    _, page = gallery(state)
    parsed = Parsed(page)
    assert parsed.of("img") == [] and spy == []
    links = {a["href"]: a for a in parsed.of("a")}
    assert set(links) == {remote, HOSTILE}  # the parser unescapes: the exact URLs
    for a in links.values():
        assert a["rel"] == "noopener noreferrer"
    # The hostile URL stayed inside its attribute and its text: no tag or handler came of it.
    assert len(parsed.of("script")) == 1
    assert not any("onerror" in attrs for _, attrs in parsed.tags)
    assert "<script>alert(1)" not in page and "<img src=x" not in page
    assert "img-src 'self' file:" in g.CSP and "default-src 'none'" in g.CSP


def test_signed_and_non_http_urls_are_not_linked(tmp_path: Path) -> None:
    jobs = [job("s", "pro-image-to-video", [SIGNED, "javascript:alert(1)"])]
    _, page = gallery(state_with(tmp_path, jobs, {}))
    assert "X-Amz" not in page and "deadbeef" not in page and "AKID" not in page
    assert Parsed(page).of("a") == []
    s = card(page, "s")
    assert "https://bucket.s3.example/k.png: signed URL" in s
    assert "not an http(s) URL" in s


def test_a_missing_or_changed_source_is_said_on_the_card(tmp_path: Path, spy: list[Path]) -> None:
    gone, sha_gone = image_file(tmp_path / "imgs" / "gone.png", png(400, 300))
    edited, sha_edit = image_file(tmp_path / "imgs" / "edited.png", png(400, 300, (1, 2, 3)))
    broken, sha_broken = image_file(
        tmp_path / "imgs" / "broken.png", b"\x89PNG\r\n\x1a\n" + b"x" * 99
    )
    files = {
        sha_gone: tmp_path / "imgs" / "gone.png",
        sha_edit: tmp_path / "imgs" / "edited.png",
        sha_broken: tmp_path / "imgs" / "broken.png",
    }
    jobs = [
        job("gone", "standard-image-to-video", [gone]),
        job("edited", "standard-image-to-video", [edited]),
        job("broken", "standard-image-to-video", [broken]),
        job("unknown", "standard-image-to-video", [f"{REF_PREFIX}{'ab' * 32}.png"]),
    ]
    state = state_with(tmp_path, jobs, files)
    (tmp_path / "imgs" / "gone.png").unlink()
    (tmp_path / "imgs" / "edited.png").write_bytes(png(400, 300, (9, 9, 9)))

    page_path, page = gallery(state)
    assert page_path.is_file() and Parsed(page).of("img") == []
    assert "gone.png: source file not found" in card(page, "gone")
    assert "edited.png: source file unreadable or changed since the run" in card(page, "edited")
    assert "broken.png: cannot make a thumbnail" in card(page, "broken")
    assert "local file not recorded" in card(page, "unknown")
    assert [p.name for p in spy] == [f"{sha_broken}.jpg"]
    assert list((tmp_path / "out" / "thumbs").iterdir()) == []  # no half-written file


def test_transparent_and_palette_images_become_plain_jpegs(tmp_path: Path) -> None:
    buf = io.BytesIO()
    Image.new("RGBA", (640, 640), (255, 0, 0, 0)).save(buf, "PNG")
    target = tmp_path / "t.jpg"
    assert gi._thumbnail(buf.getvalue(), target) is None
    with Image.open(target) as im:
        assert im.mode == "RGB" and im.size == (320, 320)
        assert im.getpixel((5, 5)) == pytest.approx((255, 255, 255), abs=3)


def test_labels() -> None:
    assert gi.labels(1) == ["input image"]
    assert gi.labels(2) == ["start frame", "end frame"]
    assert gi.labels(3) == ["image 1", "image 2", "image 3"]


def test_a_state_file_without_image_tables(tmp_path: Path) -> None:
    state = prepare_state(
        tmp_path, [job("x", "standard-image-to-video", [f"{REF_PREFIX}{'0' * 64}.png"])]
    )
    _, page = gallery(state)
    assert "local file not recorded" in card(page, "x")


def test_the_shipped_example_shows_its_images_and_no_url_of_the_run(tmp_path: Path) -> None:
    """The body holds the content reference, never the URL the run sent (the sandbox serves
    the files on loopback; a real run sends presigned URLs): the page shows neither."""
    example = Path(__file__).resolve().parent.parent / "manifests" / "local-images.yaml"
    out = tmp_path / "out"
    assert main(["run", str(example), "--sandbox", "--output", str(out), "--gallery"]) == 0
    page = (out / "gallery.html").read_text(encoding="utf-8")
    assert "127.0.0.1" not in page and "X-Amz" not in page and "local.batchgen.invalid" not in page
    srcs = [a["src"] for a in Parsed(page).of("img")]
    assert len(srcs) == 3 and all(s.startswith("thumbs/") and (out / s).is_file() for s in srcs)
    assert "end frame · dusk.png" in card(page, "sea-to-dusk")
