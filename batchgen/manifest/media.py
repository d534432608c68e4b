"""A job's local media files, resolved at load time: image and video files become content
references (batchgen/inputs/local.py), and each local video meets its model's rules (formats,
seconds each and in total: batchgen/core/media.py) before anything is paid. Remote URLs are
left as they are: the provider fetches them (images are preflighted by a run)."""

from __future__ import annotations

from typing import Any

from batchgen import models
from batchgen.core.media import VideoLimits, total_problem, video_problem
from batchgen.inputs.local import LocalResolver, parse_ref
from batchgen.inputs.localvideo import LocalVideo

Problem = tuple[tuple[Any, ...], str]  # (the body field's parts, the message)


def resolve_media(resolver: LocalResolver, body: dict[str, Any], model: str) -> list[Problem]:
    """Replace the local files of `body["input"]` by references (in place); the problems,
    each at its body field (`("input", "video_urls", 0)`)."""
    inp = body.get("input")
    if not isinstance(inp, dict):
        return []
    problems: list[Problem] = []
    for name, video in (("image_urls", False), ("video_urls", True)):
        urls = inp.get(name)
        if not isinstance(urls, list):
            continue
        resolved, found = resolver.resolve(urls, video=video)
        problems.extend((("input", name, n), message) for n, message in found)
        if resolved != urls:
            inp[name] = resolved
        if video:
            bad = {n for n, _ in found}
            problems.extend(_video_rules(resolver, resolved, bad, model))
    return problems


def _video_rules(
    resolver: LocalResolver, refs: list[Any], bad: set[int], model: str
) -> list[Problem]:
    spec = models.find(model)
    limits = VideoLimits.of(spec.video_limits if spec is not None else None)
    out: list[Problem] = []
    lengths: list[float] = []
    for n, ref in enumerate(refs):
        parsed = parse_ref(ref) if isinstance(ref, str) and n not in bad else None
        video = resolver.found.get(parsed[0]) if parsed else None
        if not isinstance(video, LocalVideo):
            continue
        why = video_problem(model, video.kind, video.duration_s, video.size, limits)
        if why is not None:
            out.append((("input", "video_urls", n), f"{video.path} {why}"))
        elif video.duration_s is not None:
            lengths.append(video.duration_s)
    total = total_problem(model, lengths, limits)
    if total is not None:
        out.append((("input", "video_urls"), total))
    return out
