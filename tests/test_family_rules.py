# ruff: noqa: E501  (one invalid job a line: the table reads as a list of rules)
"""The family's cross-field rules, one invalid job each: refused at `validate` with the job's
line, the field named and the rule in words. A valid twin of each job shows the rule, not some
other mistake, is what refuses it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from batchgen.errors import ManifestError
from batchgen.manifest import load_manifest

IMG = "https://example.com/a.jpg"
VID = "https://example.com/m.mp4"

# (rule, the job, the field refused, words the sentence holds, a valid twin's changes)
RULES = [
    ("veo REFERENCE only in fast mode", {"model": "veo-3-1", "mode": "quality", "generationType": "REFERENCE_2_VIDEO", "prompt": "p", "image_urls": [IMG]}, "input.mode", "only with mode 'fast'", {"mode": "fast"}),
    ("veo REFERENCE only 16:9", {"model": "veo-3-1", "mode": "fast", "generationType": "REFERENCE_2_VIDEO", "prompt": "p", "image_urls": [IMG], "aspect_ratio": "9:16"}, "input.aspect_ratio", "only with aspect_ratio '16:9'", {"aspect_ratio": "16:9"}),
    ("veo REFERENCE 1-3 images", {"model": "veo-3-1", "mode": "fast", "generationType": "REFERENCE_2_VIDEO", "prompt": "p", "image_urls": [IMG] * 4}, "input.image_urls", "1 to 3 images", {"image_urls": [IMG] * 3}),
    ("veo REFERENCE needs images", {"model": "veo-3-1", "mode": "fast", "generationType": "REFERENCE_2_VIDEO", "prompt": "p"}, "input.image_urls", "required with REFERENCE_2_VIDEO", {"image_urls": [IMG]}),
    ("veo TEXT takes no images", {"model": "veo-3-1", "mode": "fast", "generationType": "TEXT_2_VIDEO", "prompt": "p", "image_urls": [IMG]}, "input.image_urls", "TEXT_2_VIDEO takes no images", {"generationType": "FIRST_AND_LAST_FRAMES_2_VIDEO"}),
    ("veo has no duration", {"model": "veo-3-1", "mode": "fast", "generationType": "TEXT_2_VIDEO", "prompt": "p", "duration": 8}, "input.duration", "unknown field", {"duration": None}),
    ("extend needs taskId", {"model": "veo-3-1-extend", "mode": "fast", "prompt": "p"}, "input.taskId", "the veo-3-1 task to continue", {"taskId": "t1"}),
    ("extend mode is fast or quality", {"model": "veo-3-1-extend", "taskId": "t1", "mode": "turbo", "prompt": "p"}, "input.mode", "'fast', 'quality'", {"mode": "quality"}),
    ("hailuo duration required in standard", {"model": "hailuo-2-3", "mode": "standard-text-to-video", "prompt": "p"}, "input.duration", "required with standard-text-to-video", {"duration": 10}),
    ("hailuo duration ignored in pro", {"model": "hailuo-2-3", "mode": "pro-text-to-video", "prompt": "p", "duration": 10}, "input.duration", "fixed 5 s", {"duration": None}),
    ("hailuo i2v exactly 1 image", {"model": "hailuo-2-3", "mode": "pro-image-to-video", "prompt": "p", "image_urls": [IMG, IMG]}, "input.image_urls", "exactly 1 image", {"image_urls": [IMG]}),
    ("hailuo-fast has no text modes", {"model": "hailuo-2-3-fast", "mode": "standard-text-to-video", "prompt": "p", "duration": 6}, "input.mode", "no text modes", {"mode": "standard-image-to-video", "image_urls": [IMG]}),
    ("hailuo-fast pro is a fixed 6 s", {"model": "hailuo-2-3-fast", "mode": "pro-image-to-video", "prompt": "p", "image_urls": [IMG], "duration": 6}, "input.duration", "fixed 6 s", {"duration": None}),
    ("sora official provider only", {"model": "sora-2", "provider": "auto", "mode": "text-to-video", "prompt": "p", "duration": 4}, "provider", "'official'", {"provider": "official"}),
    ("sora durations 4/8/12", {"model": "sora-2", "mode": "text-to-video", "prompt": "p", "duration": 10}, "input.duration", "4, 8, 12", {"duration": 8}),
    ("sora i2v exactly 1 image", {"model": "sora-2", "mode": "image-to-video", "prompt": "p"}, "input.image_urls", "required with image-to-video", {"image_urls": [IMG]}),
    ("sora-2-pro size is for text", {"model": "sora-2-pro", "mode": "image-to-video", "prompt": "p", "image_urls": [IMG], "size": "1280*720"}, "input.size", "image-to-video takes resolution", {"size": None, "resolution": "720p"}),
    ("sora-2-pro resolution is for images", {"model": "sora-2-pro", "mode": "text-to-video", "prompt": "p", "resolution": "720p"}, "input.resolution", "text-to-video takes size", {"resolution": None, "size": "720*1280"}),
    ("kling-2-6 sound required", {"model": "kling-2-6", "mode": "text-to-video", "prompt": "p", "duration": 5}, "input.sound", "true for generated sound", {"sound": False}),
    ("kling-2-6 aspect only t2v", {"model": "kling-2-6", "mode": "image-to-video", "prompt": "p", "sound": True, "image_urls": [IMG], "aspect_ratio": "1:1"}, "input.aspect_ratio", "only accepted with text modes", {"aspect_ratio": None}),
    ("kling-3-0-std video only in motion-control", {"model": "kling-3-0-std", "mode": "image-to-video", "prompt": "p", "image_urls": [IMG], "video_urls": [VID]}, "input.video_urls", "only accepted with motion-control", {"video_urls": None}),
    ("kling-3-0-std motion-control needs a video", {"model": "kling-3-0-std", "mode": "motion-control", "image_urls": [IMG]}, "input.video_urls", "required with motion-control", {"video_urls": [VID]}),
    ("kling-3-0-std motion-control length is the video's", {"model": "kling-3-0-std", "mode": "motion-control", "image_urls": [IMG], "video_urls": [VID], "duration": 5}, "input.duration", "the length is the video's", {"duration": None}),
    ("kling-3-0-std durations 3-15", {"model": "kling-3-0-std", "mode": "text-to-video", "prompt": "p", "duration": 16}, "input.duration", "from 3 to 15", {"duration": 15}),
    ("kling-3-0-turbo i2v exactly 1", {"model": "kling-3-0-turbo", "mode": "image-to-video", "prompt": "p", "image_urls": [IMG, IMG]}, "input.image_urls", "exactly 1 image", {"image_urls": [IMG]}),
    ("seedance-1-5 sound required", {"model": "seedance-1-5-pro", "mode": "text-to-video", "prompt": "ppp"}, "input.sound", "is required", {"sound": True}),
    ("seedance-1-5 prompt 3+ chars", {"model": "seedance-1-5-pro", "mode": "text-to-video", "prompt": "pp", "sound": True}, "input.prompt", "3 to 2500", {"prompt": "ppp"}),
    ("seedance-2-0-fast has no 1080p", {"model": "seedance-2-0-fast", "mode": "text-to-video", "prompt": "p", "resolution": "1080p"}, "input.resolution", "not the fast model's", {"resolution": "720p"}),
    ("seedance omni needs an image or video", {"model": "seedance-2-0", "mode": "omni_reference", "prompt": "p", "audio_urls": [VID]}, "input.image_urls", "audio alone fails", {"video_urls": [VID]}),
    ("seedance audio only in omni", {"model": "seedance-2-0", "mode": "first_and_last_frames", "prompt": "p", "image_urls": [IMG], "audio_urls": [VID]}, "input.audio_urls", "only accepted with omni_reference", {"audio_urls": None}),
    ("seedance omni at most 9 images", {"model": "seedance-2-0", "mode": "omni_reference", "prompt": "p", "image_urls": [IMG] * 10}, "input.image_urls", "1 to 9 images", {"image_urls": [IMG] * 9}),
    ("wan-2-5 4:3 needs 720p+", {"model": "wan-2-5-video", "mode": "text-to-video", "prompt": "p", "resolution": "480p", "aspect_ratio": "4:3"}, "input.resolution", "4:3 and 3:4 need resolution 720p or 1080p", {"resolution": "720p"}),
    ("wan-2-5 t2v needs a prompt", {"model": "wan-2-5-video", "mode": "text-to-video"}, "input.prompt", "required with text-to-video", {"prompt": "p"}),
    ("wan-2-5 one audio file", {"model": "wan-2-5-video", "mode": "image-to-video", "image_urls": [IMG], "audio_urls": [VID, VID]}, "input.audio_urls", "exactly 1 audio", {"audio_urls": [VID]}),
    ("wan-2-2-animate needs the motion video", {"model": "wan-2-2-animate", "type": "replace", "image_urls": [IMG]}, "input.video_urls", "the motion's video", {"video_urls": [VID]}),
    ("wan-2-2-animate seed -1 or more", {"model": "wan-2-2-animate", "image_urls": [IMG], "video_urls": [VID], "seed": -2}, "input.seed", "from -1 to", {"seed": -1}),
    ("ltx loras only in LoRA modes", {"model": "ltx-2-19b", "mode": "text-to-video", "prompt": "p", "loras": [{"path": "https://example.com/l.safetensors", "scale": 1.2}]}, "input.loras", "only accepted with the -LoRA modes", {"mode": "text-to-video-LoRA"}),
    ("ltx at most 3 loras", {"model": "ltx-2-19b", "mode": "text-to-video-LoRA", "prompt": "p", "loras": [{"path": "https://example.com/l.safetensors"}] * 4}, "input.loras", "at most 3", {"loras": [{"path": "https://example.com/l.safetensors"}] * 3}),
    ("ltx seed not 0", {"model": "ltx-2-19b", "mode": "text-to-video", "prompt": "p", "seed": 0}, "input.seed", "-1 or a whole number from 1", {"seed": 1}),
    ("ltx aspect only text modes", {"model": "ltx-2-19b", "mode": "image-to-video", "prompt": "p", "image_urls": [IMG], "aspect_ratio": "9:16"}, "input.aspect_ratio", "only accepted with text modes", {"aspect_ratio": None}),
    ("vidu style only text modes", {"model": "vidu-q3", "mode": "turbo-image-to-video", "prompt": "p", "image_urls": [IMG], "style": "anime"}, "input.style", "only accepted with text modes", {"style": None}),
    ("vidu durations 1-16", {"model": "vidu-q3", "mode": "text-to-video", "prompt": "p", "duration": 17}, "input.duration", "from 1 to 16", {"duration": 16}),
    ("happyHorse edit takes one video", {"model": "happyHorse", "mode": "video-edit", "prompt": "p"}, "input.video_urls", "required with video-edit", {"video_urls": [VID]}),
    ("happyHorse edit ignores duration", {"model": "happyHorse", "mode": "video-edit", "prompt": "p", "video_urls": [VID], "duration": 5}, "input.duration", "billed on the input video's length", {"duration": None}),
    ("happyHorse ratio not for i2v", {"model": "happyHorse", "mode": "image-to-video", "image_urls": [IMG], "ratio": "16:9"}, "input.ratio", "only accepted with text-to-video and reference-to-video", {"ratio": None}),
    ("happyHorse r2v needs a prompt", {"model": "happyHorse", "mode": "reference-to-video", "image_urls": [IMG]}, "input.prompt", "required with reference-to-video", {"prompt": "p"}),
    ("grok i2v image or task, not both", {"model": "grok-video", "mode": "image-to-video", "prompt": "p", "image_urls": [IMG], "task_id": "t"}, "input", "either image_urls", {"task_id": None}),
    ("grok index needs task_id", {"model": "grok-video", "mode": "image-to-video", "prompt": "p", "image_urls": [IMG], "index": 2}, "input.task_id", "required with index", {"image_urls": None, "task_id": "t"}),
    ("grok durations 6-30", {"model": "grok-video", "mode": "text-to-video", "prompt": "p", "duration": 31}, "input.duration", "from 6 to 30", {"duration": 30}),
]  # fmt: skip


def _write(tmp_path: Path, jobs: list[dict]) -> Path:
    path = tmp_path / "rules.yaml"
    lines = ["name: rules", "jobs:"] + [f"  - {json.dumps(job)}" for job in jobs]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _twin(job: dict, changes: dict) -> dict:
    out = {**job, **changes}
    return {k: v for k, v in out.items() if v is not None}


def test_every_rule_is_refused_at_its_job_with_the_field_named(tmp_path: Path) -> None:
    jobs = [{"id": f"r{n}", **job} for n, (_, job, _, _, _) in enumerate(RULES)]
    path = _write(tmp_path, jobs)
    with pytest.raises(ManifestError) as caught:
        load_manifest(path)
    problems = caught.value.problems
    for n, (name, _, field, words, _) in enumerate(RULES):
        here = [p for p in problems if p.where == f"{path}:{n + 3}"]  # job n is on line n + 3
        # the field as the job writes it: flat (`mode:`) or under `input:`
        at = {f"jobs[{n}].{field}", f"jobs[{n}].{field.removeprefix('input.')}", f"jobs[{n}]"}
        assert any(p.json_path in at and words in p.message for p in here), (
            name,
            [str(p) for p in here],
        )


def test_each_rule_s_valid_twin_passes(tmp_path: Path) -> None:
    jobs = [{"id": f"r{n}", **_twin(job, fix)} for n, (_, job, _, _, fix) in enumerate(RULES)]
    manifest = load_manifest(_write(tmp_path, jobs))
    assert len(manifest.jobs) == len(RULES)


def test_the_cli_says_where_and_exits_2(tmp_path: Path, capsys) -> None:
    from batchgen.cli import main

    path = _write(tmp_path, [{"id": "a", **RULES[0][1]}])
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}:3: jobs[0].mode: REFERENCE_2_VIDEO works only with mode 'fast'" in err
    assert "Traceback" not in err
