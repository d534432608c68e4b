# ruff: noqa: E501  (the examples are the doc's requests, byte for byte, one a line)
"""Every example request of ../shared/apixo-video-models.md, per model: those that fit the
version built to (E) validate and `validate --print-requests` sends them byte for byte; those
written to older versions are refused, each at the field that changed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from batchgen import models
from batchgen.cli import main
from batchgen.manifest.schema import validate_request

ROOT = Path(__file__).resolve().parents[1]

# (model, version, the example exactly as the doc writes it)
EXAMPLES = [
    ("kling-2-6", "C", '{"request_type":"async","provider":"value","input":{"mode":"text-to-video","prompt":"a serene waterfall in the forest with birds chirping","duration":10,"sound":true,"aspect_ratio":"16:9"}}'),
    ("kling-2-6", "C", '{"request_type":"callback","callback_url":"https://your-server.com/callback","provider":"official","input":{"mode":"image-to-video","prompt":"animate this mountain view with moving clouds and wind sounds","duration":5,"sound":true,"image_urls":["https://example.com/ref.jpg"]}}'),
    ("kling-2-6", "E", '{"request_type":"async","input":{"mode":"text-to-video","prompt":"a rainy neon street at night with reflections on the pavement and soft traffic ambience","duration":5,"sound":true,"aspect_ratio":"16:9"}}'),
    ("kling-3-0-std", "E", '{"request_type":"async","input":{"mode":"text-to-video","prompt":"a cinematic city skyline at sunset, slow camera push-in","duration":5,"sound":false,"aspect_ratio":"16:9"}}'),
    ("kling-3-0-turbo", "E", '{"request_type":"async","input":{"mode":"text-to-video","prompt":"a cinematic city skyline at sunset with a slow push-in","duration":12,"resolution":"720p","aspect_ratio":"16:9"}}'),
    ("veo-3-1", "C, E", '{"request_type":"async","input":{"mode":"quality","prompt":"a cinematic flyover of a futuristic city at sunrise","generationType":"TEXT_2_VIDEO","aspect_ratio":"16:9"}}'),
    ("veo-3-1", "B", '{"request_type":"async","input":{"mode":"fast","prompt":"A golden retriever running through a field of flowers","generationType":"TEXT_2_VIDEO","aspect_ratio":"16:9"}}'),
    ("veo-3-1", "B", '{"request_type":"async","input":{"mode":"quality","prompt":"Smooth morphing transition between the two landscapes","generationType":"FIRST_AND_LAST_FRAMES_2_VIDEO","image_urls":["https://example.com/start-frame.jpg","https://example.com/end-frame.jpg"],"aspect_ratio":"16:9"}}'),
    ("veo-3-1-extend", "C", '{"request_type":"async","input":{"taskId":"internal_task_id_from_previous_veo3_task","mode":"fast","prompt":"continue the action into a tense chase through narrow streets"}}'),
    ("veo-3-1-extend", "E", '{"request_type":"async","input":{"taskId":"task_id_from_previous_veo_3_1_generation","mode":"fast","prompt":"continue this scene with a smooth camera move and richer visual rhythm"}}'),
    ("sora-2", "E", '{"request_type":"async","input":{"mode":"text-to-video","prompt":"a cinematic flyover of a futuristic city at sunrise, golden hour lighting, slow camera movement","duration":12,"aspect_ratio":"landscape"}}'),
    ("sora-2-pro", "D", '{"request_type":"async","provider":"official","input":{"mode":"text-to-video","prompt":"a cinematic tracking shot of a futuristic city with flying cars","duration":8,"size":"1280*720"}}'),
    ("sora-2-pro", "E", '{"request_type":"async","input":{"mode":"text-to-video","prompt":"a cinematic tracking shot of a futuristic city with flying cars","duration":4,"size":"1280*720"}}'),
    ("seedance-1-5-pro", "C", '{"request_type":"async","provider":"value","input":{"mode":"text-to-video","prompt":"a calm seaside sunrise with gentle camera dolly movement","resolution":"720p","duration":8,"sound":true,"aspect_ratio":"16:9","fixed_lens":false}}'),
    ("seedance-1-5-pro", "E", '{"request_type":"async","input":{"mode":"text-to-video","prompt":"a calm seaside sunrise with gentle camera dolly movement","resolution":"720p","duration":8,"sound":false,"aspect_ratio":"16:9","fixed_lens":false}}'),
    ("seedance-2-0", "E", '{"request_type":"async","input":{"mode":"text-to-video","prompt":"a cinematic tracking shot through a rainy neon street","resolution":"720p","duration":5,"aspect_ratio":"16:9","sound":true,"web_search":false}}'),
    ("seedance-2-0-fast", "E", '{"request_type":"async","input":{"mode":"text-to-video","prompt":"a cinematic tracking shot through a rainy neon street","resolution":"720p","duration":5,"aspect_ratio":"16:9","sound":true,"web_search":false}}'),
    ("wan-2-5", "C, D", '{"request_type":"async","provider":"value","input":{"mode":"text-to-video","prompt":"a serene mountain landscape with moving clouds and gentle breeze","resolution":"1080p","duration":10,"aspect_ratio":"16:9","negative_prompt":"low quality, blurry","enable_prompt_expansion":true}}'),
    ("wan-2-5-video", "E", '{"request_type":"async","input":{"mode":"text-to-video","prompt":"a cinematic shot of clouds drifting over a quiet mountain lake","audio_urls":["https://example.com/music.mp3"],"resolution":"720p","duration":5,"aspect_ratio":"16:9"}}'),
    ("wan-2-2-animate", "C", '{"request_type":"async","provider":"official","input":{"mode":"standard","type":"animate","image_urls":["https://example.com/character.png"],"video_urls":["https://example.com/motion.mp4"],"prompt":"keep the face stable and follow the motion naturally","resolution":"480p","seed":-1}}'),
    ("wan-2-2-animate", "E", '{"request_type":"async","input":{"mode":"standard","type":"animate","image_urls":["https://example.com/character.png"],"video_urls":["https://example.com/motion.mp4"],"resolution":"480p","seed":-1}}'),
    ("hailuo-2-3", "E", '{"request_type":"async","input":{"mode":"standard-text-to-video","prompt":"a dramatic sunrise over a futuristic skyline with slow cinematic camera movement","duration":6}}'),
    ("hailuo-2-3", "C", '{"request_type":"async","callback_url":"https://your-server.com/callback","provider":"auto","input":{"mode":"standard-image-to-video","prompt":"make this still image move naturally with cinematic camera motion","image_urls":["https://example.com/input.jpg"],"duration":6}}'),
    ("ltx-2-19b", "C", '{"request_type":"async","input":{"mode":"text-to-video","prompt":"a futuristic city with flying cars at sunset","resolution":"1080p","duration":10,"aspect_ratio":"16:9","seed":54248617}}'),
    ("ltx-2-19b", "E", '{"request_type":"async","input":{"mode":"text-to-video","prompt":"a cinematic shot of a small robot walking through a rainy neon street","resolution":"720p","duration":10,"aspect_ratio":"16:9"}}'),
    ("vidu-q3", "C", '{"request_type":"async","input":{"mode":"text-to-video","prompt":"a cinematic flyover of a futuristic city at sunrise","resolution":"720p","duration":8,"style":"general","aspect_ratio":"16:9","movement":"auto","sound":true,"bgm":true}}'),
    ("vidu-q3", "E", '{"request_type":"async","input":{"mode":"text-to-video","prompt":"a cinematic flyover of a futuristic city at sunrise","resolution":"720p","duration":8,"style":"general","aspect_ratio":"16:9","sound":true,"bgm":true}}'),
    ("happyHorse", "C", '{"request_type":"async","provider":"official","input":{"mode":"text-to-video","prompt":"a cinematic rainy night in tokyo","resolution":"720p","ratio":"16:9","duration":5,"watermark":false}}'),
    ("grok-video", "C", '{"request_type":"async","input":{"mode":"text-to-video","prompt":"a peaceful lakeside at sunset with gentle waves","duration":6,"resolution":"480p","aspect_ratio":"3:2","style":"normal"}}'),
]  # fmt: skip

# Examples written to older versions than E: refused, each at the field E changed.
HISTORIC = [
    ("sora-2", "C", "provider", '{"request_type":"async","provider":"value","input":{"mode":"text-to-video","prompt":"a cinematic flyover","duration":15,"aspect_ratio":"landscape","remove_watermark":true}}'),
    ("sora-2", "B", "input.duration", '{"request_type":"async","input":{"mode":"text-to-video","prompt":"A drone shot flying over a misty forest at sunrise, cinematic","aspect_ratio":"16:9","duration":"10"}}'),
    ("sora-2", "B", "input.image_url", '{"request_type":"async","input":{"mode":"image-to-video","prompt":"Add gentle wind movement to the trees and clouds drifting","image_url":"https://example.com/landscape.jpg","aspect_ratio":"16:9"}}'),
    ("sora-2-pro", "C", "input.duration", '{"request_type":"async","input":{"mode":"text-to-video","prompt":"a cinematic tracking shot of a futuristic city with flying cars","duration":10,"size":"1280*720"}}'),
    ("sora-2-pro", "C", "input.duration", '{"request_type":"callback","callback_url":"https://your-server.com/callback","input":{"mode":"image-to-video","prompt":"make this image come alive with subtle motion","duration":15,"resolution":"1080p","image_urls":["https://example.com/reference_image.jpg"]}}'),
]  # fmt: skip


def _manifest(tmp_path: Path, examples: list[tuple[str, str, str]]) -> Path:
    """Each example as one job of a YAML manifest (JSON is YAML), written as the doc writes it."""
    jobs = [{"id": f"ex-{n}", "model": model, **json.loads(body)} for n, (model, _, body) in enumerate(examples)]
    path = tmp_path / "examples.yaml"
    path.write_text(json.dumps({"name": "examples", "jobs": jobs}, indent=1), encoding="utf-8")
    return path


@pytest.mark.parametrize(("model", "version", "body"), EXAMPLES, ids=[f"{m}-{v}-{i}" for i, (m, v, _) in enumerate(EXAMPLES)])
def test_each_documented_example_validates(model: str, version: str, body: str) -> None:
    assert validate_request(json.loads(body), models.get(model).id) == []


def test_print_requests_sends_every_example_byte_for_byte(tmp_path: Path, capsys) -> None:
    assert main(["validate", "--print-requests", str(_manifest(tmp_path, EXAMPLES))]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(lines) == len(EXAMPLES)
    for line, (model, _, body) in zip(lines, EXAMPLES, strict=True):
        canonical = models.get(model).id
        assert line["model"] == canonical
        assert line["endpoint"] == f"POST /generateTask/{canonical}"
        assert json.dumps(line["body"], separators=(",", ":"), ensure_ascii=False) == body


def test_every_model_of_the_family_has_an_example_or_a_reason() -> None:
    """The doc gives no example for hailuo-2-3-fast (its other rules are tested elsewhere)."""
    covered = {models.get(m).id for m, _, _ in EXAMPLES}
    assert set(models.known()) - covered - {"kling-2-1", "kling-2-5-turbo-pro"} == {"hailuo-2-3-fast"}


def test_a_former_id_is_sent_as_the_new_one_and_said_so(tmp_path: Path, capsys) -> None:
    path = _manifest(tmp_path, [e for e in EXAMPLES if e[0] == "wan-2-5"])
    assert main(["validate", "--print-requests", str(path)]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["endpoint"] == "POST /generateTask/wan-2-5-video"
    assert "'wan-2-5' is now 'wan-2-5-video'" in captured.err


@pytest.mark.parametrize(("model", "version", "field", "body"), HISTORIC, ids=[f"{m}-{v}-{i}" for i, (m, v, _, _) in enumerate(HISTORIC)])
def test_examples_of_older_versions_are_refused_at_the_field_that_changed(model, version, field, body) -> None:
    issues = validate_request(json.loads(body), model)
    assert field in {issue.path for issue in issues}, issues


def test_not_yet_models_are_listed_and_refused_with_why(tmp_path: Path, capsys) -> None:
    path = tmp_path / "m.yaml"
    path.write_text("jobs:\n  - {model: wan-2-7-video, mode: text-to-video, prompt: a lake}\n")
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}:2: " in err and "'wan-2-7-video' is not supported yet" in err
    assert "wan-2-7-video" in models.NOT_YET and "kling-3-0-pro" in models.NOT_YET


def test_the_schema_files_are_what_the_generator_writes() -> None:
    done = subprocess.run([sys.executable, str(ROOT / "tools" / "apixo_models.py"), "--check"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
