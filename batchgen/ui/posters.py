"""Poster frames for the gallery: one JPEG per finished video, made with ffmpeg when it is
installed (none otherwise), refreshed only when the video is newer."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import subprocess
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

POSTER_DIR = "posters"


def safe_relpath(path: Any, output_dir: Path | None = None) -> PurePosixPath | None:
    """A record's file path as a clean relative path inside the output folder, or None.

    Refused: non-strings, empty, absolute (POSIX or Windows, drive or UNC), any `..` part,
    backslashes, control characters, and (when `output_dir` is given) a path whose symlinks
    lead outside the folder."""
    if not isinstance(path, str) or not path or "\\" in path:
        return None
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in path):
        return None
    posix = PurePosixPath(path)
    win = PureWindowsPath(path)
    if posix.is_absolute() or win.drive or win.root or win.anchor:
        return None
    parts = [p for p in posix.parts if p not in ("", ".")]
    if not parts or ".." in parts:
        return None
    clean = PurePosixPath(*parts)
    if output_dir is not None:
        base = Path(output_dir).resolve()
        try:
            target = base.joinpath(*clean.parts).resolve()
        except (OSError, RuntimeError):
            return None
        if not target.is_relative_to(base) or target == base:
            return None
    return clean


def _poster_name(clean: PurePosixPath, sha: Any) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", clean.with_suffix("").as_posix()).strip("._")[:80]
    tag = (
        sha[:8]
        if isinstance(sha, str) and re.fullmatch(r"[0-9a-f]{8,}", sha)
        else (hashlib.sha256(clean.as_posix().encode()).hexdigest()[:8])
    )
    return f"{stem or 'video'}-{tag}.jpg"


def _extract_frame(ffmpeg: str, video: Path, poster: Path) -> bool:
    if poster.is_file() and poster.stat().st_size > 0:
        with contextlib.suppress(OSError):
            if poster.stat().st_mtime_ns >= video.stat().st_mtime_ns:
                return True
    tmp = poster.with_name(f".{poster.name}.{os.getpid()}.tmp.jpg")
    try:
        for at in ("1", "0"):  # a second in is more telling than the first frame
            cmd = [
                ffmpeg,
                "-nostdin",
                "-hide_banner",
                "-loglevel",
                "error",
                "-y",
                "-ss",
                at,
                "-i",
                str(video),
                "-frames:v",
                "1",
                "-vf",
                "scale='min(640,iw)':-2",
                "-q:v",
                "4",
                str(tmp),
            ]
            done = subprocess.run(cmd, capture_output=True, timeout=30, check=False)
            if done.returncode == 0 and tmp.is_file() and tmp.stat().st_size > 0:
                os.replace(tmp, poster)
                return True
        return False
    except (OSError, subprocess.SubprocessError):
        return False
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


def make_posters(
    records: Iterable[dict[str, Any]],
    output_dir: Path,
    *,
    ffmpeg: str | None = None,
    workers: int | None = None,
) -> dict[str, str]:
    """One JPEG frame per done video in `output_dir/posters/`, where ffmpeg is available.

    Returns {video relative path: poster relative path}; any failure just leaves that video
    without a poster (and no ffmpeg means no posters at all). Posters newer than their video
    are reused."""
    ffmpeg = ffmpeg or shutil.which("ffmpeg")
    if not ffmpeg:
        return {}
    output_dir = Path(output_dir)
    todo: list[tuple[str, Path, str]] = []
    for rec in records:
        if rec.get("status") != "done" or not isinstance(rec.get("files"), list):
            continue
        for f in rec["files"][:1]:
            clean = safe_relpath(f.get("path") if isinstance(f, dict) else None, output_dir)
            if clean is None:
                continue
            video = output_dir.joinpath(*clean.parts)
            if video.is_file():
                name = _poster_name(clean, f.get("sha256"))
                todo.append((clean.as_posix(), video, name))
    if not todo:
        return {}
    pdir = output_dir / POSTER_DIR
    try:
        pdir.mkdir(exist_ok=True)
    except OSError:
        return {}
    workers = workers or max(1, min(4, os.cpu_count() or 1))

    def one(item: tuple[str, Path, str]) -> tuple[str, str] | None:
        rel, video, name = item
        ok = _extract_frame(ffmpeg, video, pdir / name)
        return (rel, f"{POSTER_DIR}/{name}") if ok else None

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return dict(r for r in pool.map(one, todo) if r is not None)


# -- the file -----------------------------------------------------------------------------------
