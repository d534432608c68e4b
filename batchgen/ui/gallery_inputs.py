"""The input images shown on each gallery card, beside the video they became.

A job's body keeps its images as sent: remote URLs, and for local files the content reference
`inputs.local` writes (never a presigned URL: those exist only in memory at submit time). A
local file gets a small JPEG thumbnail in `<output>/thumbs/<sha256>.jpg`, made once per distinct
file from bytes that still hash to what the job was made from, so the page stays
self-contained (its Content-Security-Policy allows images from the folder only). A remote URL
stays a link: the page never loads it, and a URL whose query looks like a signature is shown
without it and not linked (the page is meant to be zipped and shared).
"""

from __future__ import annotations

import contextlib
import html
import io
import json
import os
import sqlite3
import warnings
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

from batchgen.core.urls import describe_url
from batchgen.inputs.local import parse_ref, read_verified
from batchgen.store import views

THUMB_DIR = "thumbs"
THUMB_MAX_PX = 320
_JPEG_QUALITY = 78
# Query keys that carry a credential in signed URLs (S3/R2/MinIO, GCS, Azure SAS, CloudFront).
_SECRET_KEYS = ("signature", "credential", "token", "sig", "policy", "key-pair-id", "secret")

CSS = """
.inputs{display:flex;flex-wrap:wrap;gap:8px;padding:8px 12px 0;margin:0}
.inputs figure{margin:0;display:flex;flex-direction:column;gap:2px;max-width:48%;
font-size:12px;color:var(--muted)}
.inputs img{height:72px;width:auto;max-width:100%;object-fit:contain;border-radius:4px;
border:1px solid var(--line);background:#0d0f12;align-self:flex-start}
.inputs figcaption,.inputs .nothumb{overflow-wrap:anywhere}
.inputs .nothumb{border:1px dashed var(--line);border-radius:4px;padding:4px 6px}
.inputs a{color:inherit}
"""


@dataclass(frozen=True, slots=True)
class InputImage:
    """One image of a job, ready to render. Exactly one of `thumb`, `href`, `problem` is
    usually set; `name` is what the caption shows."""

    label: str  # "input image", "start frame", "end frame", "image 3"
    name: str
    thumb: str | None = None  # relative to the output folder, e.g. thumbs/<sha>.jpg
    href: str | None = None  # a remote URL to link (never loaded by the page)
    problem: str | None = None
    title: str | None = None  # the local file's full path, as a tooltip


def labels(count: int) -> list[str]:
    """Two images are a start and an end frame (Kling's pro/2.5 image-to-video)."""
    if count == 1:
        return ["input image"]
    if count == 2:
        return ["start frame", "end frame"]
    return [f"image {n + 1}" for n in range(count)]


def looks_signed(url: str) -> bool:
    try:
        query = parse_qsl(urlsplit(url).query, keep_blank_values=True)
    except ValueError:
        return True
    return any(any(s in k.lower() for s in _SECRET_KEYS) for k, _ in query)


def _remote(label: str, url: str) -> InputImage:
    shown = describe_url(url)
    try:
        scheme = urlsplit(url).scheme.lower()
    except ValueError:
        scheme = ""
    if scheme not in ("http", "https"):
        return InputImage(label, shown, problem="not an http(s) URL: not linked")
    if looks_signed(url):
        return InputImage(label, shown, problem="signed URL: not shown in full, not linked")
    return InputImage(label, shown, href=url)


def _local_files(db: sqlite3.Connection) -> dict[str, tuple[str, str]]:
    """{sha256: (ext, path)} of the local files the state file knows (none before images)."""
    return {sha: (ext, path) for sha, ext, path in views.local_image_files(db)}


def job_images(db: sqlite3.Connection) -> dict[str, list[str]]:
    """{job id: its body's image_urls} for the jobs that have images."""
    out: dict[str, list[str]] = {}
    for job_id, body in views.job_bodies(db):
        try:
            inp = json.loads(body).get("input")
        except (ValueError, AttributeError):
            continue
        urls = inp.get("image_urls") if isinstance(inp, dict) else None
        if isinstance(urls, list) and urls:
            out[job_id] = [u for u in urls if isinstance(u, str)]
    return out


def _thumbnail(data: bytes, target: Path) -> str | None:
    """Write a JPEG of at most THUMB_MAX_PX a side to `target` atomically; None or a reason."""
    from PIL import Image, ImageOps  # imported here: only galleries with local images need it

    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                im.draft("RGB", (THUMB_MAX_PX, THUMB_MAX_PX))  # JPEG: decode at reduced scale
                shown = ImageOps.exif_transpose(im)
                shown.thumbnail((THUMB_MAX_PX, THUMB_MAX_PX), Image.Resampling.LANCZOS)
                if shown.mode in ("RGBA", "LA", "P", "PA"):
                    rgba = shown.convert("RGBA")
                    flat = Image.new("RGB", rgba.size, (255, 255, 255))
                    flat.paste(rgba, mask=rgba.getchannel("A"))
                    shown = flat
                elif shown.mode != "RGB":
                    shown = shown.convert("RGB")
                shown.save(tmp, "JPEG", quality=_JPEG_QUALITY, optimize=True)
        os.replace(tmp, target)
        return None
    except Exception as exc:  # Pillow raises many types for bad data; a card says so instead
        return f"cannot make a thumbnail ({type(exc).__name__})"
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


def _make_thumb(sha: str, path: str, output_dir: Path) -> tuple[str, str | None, str | None]:
    """(sha, thumb relative path or None, problem or None). An existing thumbnail is reused:
    its name is the content's hash, so it shows exactly what was sent."""
    rel = f"{THUMB_DIR}/{sha}.jpg"
    target = output_dir / THUMB_DIR / f"{sha}.jpg"
    with contextlib.suppress(OSError):
        if target.is_file() and target.stat().st_size > 0:
            return sha, rel, None
    if not os.path.exists(path):
        return sha, None, "source file not found"
    data = read_verified(path, sha)
    if data is None:
        return sha, None, "source file unreadable or changed since the run"
    problem = _thumbnail(data, target)
    return sha, (None if problem else rel), problem


def collect(
    db: sqlite3.Connection,
    output_dir: Path,
    *,
    thumbnails: bool = True,
    workers: int | None = None,
) -> dict[str, list[InputImage]]:
    """{job id: its input images}, making the missing thumbnails of local files on the way
    (one per distinct file). Any failure stays on the card; nothing raises."""
    output_dir = Path(output_dir)
    per_job = job_images(db)
    if not per_job:
        return {}
    files = _local_files(db)
    wanted = {
        ref[0]
        for urls in per_job.values()
        for u in urls
        if (ref := parse_ref(u)) is not None and ref[0] in files
    }
    thumbs: dict[str, tuple[str | None, str | None]] = {}
    if wanted and thumbnails:
        try:
            (output_dir / THUMB_DIR).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            thumbs = {s: (None, f"cannot create {THUMB_DIR}/ ({exc.strerror})") for s in wanted}
        else:
            n = workers or max(1, min(4, os.cpu_count() or 1))
            with ThreadPoolExecutor(max_workers=n) as pool:
                done = pool.map(lambda s: _make_thumb(s, files[s][1], output_dir), sorted(wanted))
                thumbs = {sha: (rel, problem) for sha, rel, problem in done}
    out: dict[str, list[InputImage]] = {}
    for job_id, urls in per_job.items():
        images = []
        for label, url in zip(labels(len(urls)), urls, strict=True):
            ref = parse_ref(url)
            if ref is None:
                images.append(_remote(label, url))
            elif ref[0] not in files:
                images.append(
                    InputImage(label, f"{ref[0][:12]}…", problem="local file not recorded")
                )
            else:
                path = files[ref[0]][1]
                rel, problem = thumbs.get(ref[0], (None, None))
                if rel is None and problem is None:
                    problem = "no thumbnail"
                images.append(
                    InputImage(label, Path(path).name, thumb=rel, problem=problem, title=path)
                )
        out[job_id] = images
    return out


def _esc(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def render(images: Iterable[InputImage] | None, prefix: tuple[str, ...] = ()) -> str:
    """The card's strip of inputs ('' for a job without images). `prefix` leads from the
    page's folder to the output folder."""
    figures = []
    for im in images or ():
        title = f' title="{_esc(im.title)}"' if im.title else ""
        if im.thumb is not None:
            src = "/".join(quote(p, safe="") for p in (*prefix, *im.thumb.split("/")))
            shown = (
                f'<img src="{_esc(src)}" alt="{_esc(im.label)}: {_esc(im.name)}" '
                f'loading="lazy" decoding="async"{title}>'
            )
            caption = f"{_esc(im.label)} · {_esc(im.name)}"
        elif im.href is not None:
            shown = ""
            caption = (
                f'{_esc(im.label)} · <a href="{_esc(im.href)}" target="_blank" '
                f'rel="noopener noreferrer">{_esc(im.name)}</a>'
            )
        else:
            shown = ""
            caption = (
                f'{_esc(im.label)} · <span class="nothumb"{title}>{_esc(im.name)}: '
                f"{_esc(im.problem or 'not shown')}</span>"
            )
        figures.append(f"<figure>{shown}<figcaption>{caption}</figcaption></figure>")
    if not figures:
        return ""
    return f'<div class="inputs" aria-label="input images">{"".join(figures)}</div>'
