"""The rules a model's video inputs must meet, as data, and the pure checks of one video.

A model spec (`video_limits` in schemas/<id>.spec.json) says what its page says: formats
(kling-3-0-std and wan-2-2-animate: MP4, MOV or M4V), seconds per video (kling motion-control:
at most 30; seedance omni: 2-15 each) and in total (seedance: at most 15), bytes when given.
The pages give no byte limit for videos, so batchgen's own ceiling applies (MAX_VIDEO_BYTES:
every byte is hashed, and uploaded or served, before the provider sees it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

REF_PREFIX = "https://local.batchgen.invalid/sha256/"
"""How a body names a local file by its content (batchgen/inputs/local.py, images and videos)."""
DEFAULT_FORMATS = ("mp4", "mov", "m4v", "webm")
"""What a model whose page names no format takes from disk: the containers batchgen reads."""
MAX_VIDEO_BYTES = 200_000_000
"""batchgen's ceiling for a local video (no page gives one); strictly 200,000,000 bytes."""
FORMAT_NAMES = {"mp4": "MP4", "mov": "MOV", "m4v": "M4V", "webm": "WebM", "mkv": "Matroska"}


@dataclass(frozen=True, slots=True)
class VideoLimits:
    formats: tuple[str, ...] = DEFAULT_FORMATS
    min_s: float | None = None
    max_s: float | None = None
    total_max_s: float | None = None  # all of one job's videos together
    max_bytes: int = MAX_VIDEO_BYTES

    @classmethod
    def of(cls, raw: Mapping[str, Any] | None) -> VideoLimits:
        """From a spec's `video_limits` mapping (keys as the fields; absent: no rule)."""
        raw = raw or {}
        return cls(
            formats=tuple(str(f).lower() for f in raw.get("formats", DEFAULT_FORMATS)),
            min_s=_number(raw.get("min_s")),
            max_s=_number(raw.get("max_s")),
            total_max_s=_number(raw.get("total_max_s")),
            max_bytes=int(raw.get("max_bytes", MAX_VIDEO_BYTES)),
        )

    def describe(self) -> str:
        """One line for people (`batchgen models MODEL`, docs)."""
        names = [FORMAT_NAMES.get(f, f) for f in self.formats]
        parts = [", ".join(names[:-1]) + " or " + names[-1] if len(names) > 1 else names[0]]
        if self.min_s is not None and self.max_s is not None:
            parts.append(f"{_s(self.min_s)}-{_s(self.max_s)} s each")
        elif self.max_s is not None:
            parts.append(f"at most {_s(self.max_s)} s")
        elif self.min_s is not None:
            parts.append(f"at least {_s(self.min_s)} s")
        if self.total_max_s is not None:
            parts.append(f"at most {_s(self.total_max_s)} s in total")
        parts.append(f"at most {self.max_bytes / 1e6:g} MB")
        return ", ".join(parts)


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


def _s(seconds: float) -> str:
    return f"{seconds:g}"


def video_problem(
    model: str, kind: str, duration_s: float | None, size: int, limits: VideoLimits
) -> str | None:
    """Why this one video cannot go to `model`, or None. A length the container does not
    state is refused only where the page sets one: the provider would judge it after we paid."""
    if kind not in limits.formats:
        allowed = ", ".join(FORMAT_NAMES.get(f, f) for f in limits.formats)
        return f"is {FORMAT_NAMES.get(kind, kind)}; {model} takes {allowed}"
    if size > limits.max_bytes:
        return f"is {size / 1e6:.1f} MB, over the limit of {limits.max_bytes / 1e6:g} MB"
    bounded = limits.min_s is not None or limits.max_s is not None
    if duration_s is None:
        return f"does not state its length; {model} takes {limits.describe()}" if bounded else None
    if limits.max_s is not None and duration_s > limits.max_s + 1e-6:
        return f"lasts {duration_s:.2f} s; {model} takes at most {_s(limits.max_s)} s"
    if limits.min_s is not None and duration_s < limits.min_s - 1e-6:
        return f"lasts {duration_s:.2f} s; {model} takes at least {_s(limits.min_s)} s"
    return None


def total_problem(model: str, durations: list[float], limits: VideoLimits) -> str | None:
    """Why a job's videos together are too long, or None (seedance: 15 s per media type)."""
    if limits.total_max_s is None or len(durations) < 2:
        return None
    total = sum(durations)
    if total > limits.total_max_s + 1e-6:
        return (
            f"the videos last {total:.2f} s together; {model} takes at most "
            f"{_s(limits.total_max_s)} s in total"
        )
    return None
