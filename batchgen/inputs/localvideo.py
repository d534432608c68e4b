"""Video files on the user's disk (`video_urls`), inspected once like image files: what the
container is and how long it lasts (batchgen/inputs/videofile.py), the content's sha256 (the
job's identity, as for images), never read whole into memory to be judged."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from batchgen.core.media import MAX_VIDEO_BYTES, REF_PREFIX
from batchgen.inputs.localfile import regular_file
from batchgen.inputs.videofile import EXTENSIONS, NotAVideo, probe

_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class LocalVideo:
    sha256: str
    ext: str  # ".mp4", ".mov", ".m4v", ".webm" or ".mkv", from the content
    path: str  # absolute
    size: int
    kind: str  # batchgen.inputs.videofile.KINDS
    duration_s: float | None  # None: the container does not say

    @property
    def warnings(self) -> list[str]:
        """No size rule of Kling's applies to a video (images have them)."""
        return []

    @property
    def ref(self) -> str:
        return f"{REF_PREFIX}{self.sha256}{self.ext}"


def inspect_video(path: Path) -> LocalVideo | str:
    """The video's identity, kind and length, or why it cannot be sent (for the user). The
    per-model rules (formats, seconds) are checked by the manifest, which knows the model."""
    info = regular_file(path, MAX_VIDEO_BYTES, f"batchgen's limit of {MAX_VIDEO_BYTES / 1e6:g} MB")
    if isinstance(info, str):
        return info
    try:
        with open(path, "rb") as f:
            try:
                found = probe(f, info.st_size)
            except NotAVideo as exc:
                return f"{path} is not a video batchgen can send: {exc}"
            f.seek(0)
            digest = hashlib.sha256()
            while chunk := f.read(_CHUNK):
                digest.update(chunk)
    except OSError as exc:
        return f"cannot read {path}: {exc.strerror or exc.__class__.__name__}"
    return LocalVideo(
        digest.hexdigest(),
        EXTENSIONS[found.kind],
        str(Path(path).absolute()),
        info.st_size,
        found.kind,
        found.duration_s,
    )
