"""Issue 26 bugs 2 and 3: local image files are checked on disk, whole, before paying.

`validate --check-images` used to fetch the placeholder reference of every local file
(https://local.batchgen.invalid/...) and fail each one as unreachable; a JPEG with valid
magic bytes and garbage after them passed `validate` and `run` and was paid for. Kling's
size rules (300 px a side, aspect 1:2.5 to 2.5:1) are warnings for files as for URLs.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from PIL import Image

from batchgen.cli import main
from batchgen.inputs.local import inspect

ROOT = Path(__file__).resolve().parents[1]


def jpeg(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (90, 140, 200)).save(out, "JPEG")
    return out.getvalue()


def corrupt_jpeg() -> bytes:
    """Valid magic bytes (SOI, APP0 marker), then garbage: what a broken export leaves."""
    return b"\xff\xd8\xff\xe0" + bytes((i * 7919) % 251 for i in range(4000))


def truncated_jpeg() -> bytes:
    data = jpeg(640, 480)
    return data[: len(data) // 2]


def manifest(tmp_path: Path, image: str, mode: str = "standard-image-to-video") -> Path:
    path = tmp_path / "m.yaml"
    path.write_text(
        "version: 1\nname: local-check\njobs:\n"
        f"  - id: one\n    mode: {mode}\n    prompt: a quiet lake at dawn\n"
        f"    image_url: {image}\n    duration: 5\n",
        encoding="utf-8",
    )
    return path


def test_validate_check_images_reads_local_files_on_disk(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import aiohttp

    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("a local file was fetched over the network")

    monkeypatch.setattr(aiohttp, "ClientSession", no_network)
    code = main(["validate", "--check-images", str(ROOT / "manifests/local-images.yaml")])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "3 local file(s) read and decoded, all usable" in err
    assert "local.batchgen.invalid" not in err and "unreachable" not in err


@pytest.mark.parametrize("data", [corrupt_jpeg(), truncated_jpeg()], ids=["garbage", "truncated"])
def test_a_corrupt_jpeg_is_refused_by_validate_and_run_before_paying(
    data: bytes, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "bad.jpg").write_bytes(data)
    m = manifest(tmp_path, "bad.jpg")
    assert main(["validate", str(m)]) == 2
    err = capsys.readouterr().err
    assert "bad.jpg cannot be decoded as a JPEG image" in err, err
    out = tmp_path / "out"
    assert main(["run", str(m), "--sandbox", "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert "cannot be decoded" in err and "nothing was sent" in err
    assert not (out / "batchgen.db").exists()


def test_inspect_reads_dimensions(tmp_path: Path) -> None:
    (tmp_path / "ok.jpg").write_bytes(jpeg(640, 480))
    image = inspect(tmp_path / "ok.jpg")
    assert not isinstance(image, str), image
    assert (image.width, image.height, image.ext) == (640, 480, ".jpg")
    assert image.warnings == []


def test_small_local_images_warn_at_validate_and_in_the_run_s_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "small.jpg").write_bytes(jpeg(200, 120))
    m = manifest(tmp_path, "small.jpg")
    assert main(["validate", str(m)]) == 0
    err = capsys.readouterr().err
    assert "200x120 px is under 300 px a side" in err, err
    out = tmp_path / "out"
    assert main(["run", str(m), "--sandbox", "--output", str(out)]) == 0
    row = json.loads((out / "results.jsonl").read_text().splitlines()[0])
    assert "under 300 px" in (row.get("note") or ""), row


def test_not_an_image_is_said_once(tmp_path: Path) -> None:
    (tmp_path / "x.jpg").write_bytes(b"just some text, not an image at all")
    problem = inspect(tmp_path / "x.jpg")
    assert isinstance(problem, str)
    assert problem.count("not a JPG, PNG or WebP image") == 1, problem
