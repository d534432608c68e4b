# ruff: noqa: E501  (the sentences users see stay whole, one a line)
"""APIXO's video family as batchgen model specs: writes schemas/<id>.request.schema.json and
schemas/<id>.spec.json for each model of ../shared/apixo-video-models.md (version E where the
page's versions disagree; the version is recorded in each spec).

Run `python tools/apixo_models.py` after editing a model here; `--check` only compares, and
tests/test_family.py runs it so the files and this script cannot drift apart.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from apixo_kit import (
    MAX_SEED,
    boolean,
    count,
    integer,
    needs,
    none_of,
    one_of,
    props,
    rule,
    schema,
    seconds,
    text,
    urls,
)

ROOT = Path(__file__).resolve().parents[1]
PAGE = "https://apixo.ai/docs/models/video/"
T2V, I2V = "text-to-video", "image-to-video"
TEXT_ONLY = "is only accepted with text modes (an image mode follows its image)"
NO_IMAGES = {"maxItems": 0, "x-error": "{mode} takes no images, got {count}"}
OFFICIAL_ONLY = one_of("provider", ["official"], note=" (APIXO sends this model to its maker only)")


def spec(
    model: str,
    title: str,
    source: str,
    version: str,
    *,
    gen: dict[str, list[float]] | None = None,
    gen_key: str = "duration",
    gen_note: str = "",
    prices: dict[str, str] | None = None,
    price_note: str = "not documented: learned from the balance",
    durations: dict[str, Any] | None = None,
    display: list[str] | None = None,
    former: list[str] | None = None,
    video: dict[str, Any] | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": model,
        "schema": f"{model}.request.schema.json",
        "title": title,
        "source": source,
        "doc_version": version,
    }
    if former:
        out["former_ids"] = former
    if gen:
        out["generation_s"] = gen
        out["generation_key"] = gen_key
        out["generation_note"] = gen_note
    else:
        out["generation_note"] = "not documented: assumed Kling 2.1's (60-120 s)"
    if prices:
        out["prices"] = prices
    out["price_note"] = price_note
    out["durations"] = durations or {}
    out["display"] = display or ["mode", "duration", "resolution", "aspect_ratio"]
    if video:
        out["video_limits"] = video
    return out


MP4_MOV_M4V = ["mp4", "mov", "m4v"]


def kling_2_6() -> tuple[dict, dict]:
    inputs = {
        "mode": one_of("mode", [T2V, I2V]),
        "prompt": text(1, 1000),
        "duration": one_of("duration", [5, 10], note=" (seconds)"),
        "sound": boolean("sound"),
        "aspect_ratio": one_of("aspect_ratio", ["1:1", "9:16", "16:9"]),
        "image_urls": urls("image_urls"),
    }
    rules = [
        rule("mode", T2V, props(image_urls=NO_IMAGES)),
        rule(
            "mode",
            I2V,
            {
                **needs("image_urls"),
                **props(
                    image_urls=count("image_urls", 1, 2),
                    aspect_ratio=none_of("aspect_ratio", TEXT_ONLY),
                ),
            },
        ),
    ]
    x_req = {"sound": "is required: true for generated sound, false for a silent video"}
    body = schema(
        "kling-2-6", "Kling 2.6", inputs, ["mode", "prompt", "sound"], rules, x_required=x_req
    )
    return body, spec(
        "kling-2-6",
        "Kling 2.6",
        f"{PAGE}kling-2-6 (E at /ko/; C)",
        "E",
        gen={"5": [50, 70], "10": [80, 100]},
        gen_note="documented (C): 5 s about 50-70 s, 10 s about 80-100 s",
        durations={"*": [5, 10]},
    )


def kling_3_0_std() -> tuple[dict, dict]:
    mc = "motion-control"
    inputs = {
        "mode": one_of("mode", [T2V, I2V, mc]),
        "prompt": text(1, None),
        "duration": seconds("duration", 3, 15, 5),
        "sound": boolean("sound"),
        "aspect_ratio": one_of("aspect_ratio", ["1:1", "9:16", "16:9"]),
        "image_urls": urls("image_urls"),
        "video_urls": urls("video_urls", "http(s) URLs of MP4, MOV or M4V videos"),
    }
    no_video = none_of("video_urls", "is only accepted with motion-control")
    rules = [
        rule("mode", [T2V, I2V], {**needs("prompt"), **props(video_urls=no_video)}),
        rule("mode", T2V, props(image_urls=NO_IMAGES)),
        rule(
            "mode",
            I2V,
            {
                **needs("image_urls"),
                **props(
                    image_urls=count("image_urls", 1, 2),
                    aspect_ratio=none_of("aspect_ratio", TEXT_ONLY),
                ),
            },
        ),
        rule(
            "mode",
            mc,
            {
                **needs("image_urls", "video_urls"),
                **props(
                    image_urls=count("image_urls", 1, 1),
                    video_urls=count("video_urls", 1, 1, " (at most 30 s long)"),
                    aspect_ratio=none_of("aspect_ratio", TEXT_ONLY),
                    duration=none_of(
                        "duration", "is not accepted with motion-control: the length is the video's"
                    ),
                ),
            },
        ),
    ]
    body = schema("kling-3-0-std", "Kling 3.0 Std", inputs, ["mode"], rules)
    return body, spec(
        "kling-3-0-std",
        "Kling 3.0 Std",
        f"{PAGE}kling-3-0-std (/ja/, /fr/)",
        "E",
        durations={T2V: "3-15", I2V: "3-15"},
        video={"formats": MP4_MOV_M4V, "max_s": 30},
    )


def kling_3_0_turbo() -> tuple[dict, dict]:
    inputs = {
        "mode": one_of("mode", [T2V, I2V]),
        "prompt": text(1, None),
        "duration": seconds("duration", 3, 15),
        "resolution": one_of("resolution", ["720p", "1080p"]),
        "aspect_ratio": one_of("aspect_ratio", ["16:9", "9:16", "1:1"]),
        "image_urls": urls("image_urls"),
    }
    rules = [
        rule("mode", T2V, props(image_urls=NO_IMAGES)),
        rule(
            "mode",
            I2V,
            {
                **needs("image_urls"),
                **props(
                    image_urls=count("image_urls", 1, 1),
                    aspect_ratio=none_of("aspect_ratio", TEXT_ONLY),
                ),
            },
        ),
    ]
    body = schema("kling-3-0-turbo", "Kling 3.0 Turbo", inputs, ["mode", "prompt"], rules)
    return body, spec(
        "kling-3-0-turbo",
        "Kling 3.0 Turbo",
        f"{PAGE}kling-3-0-turbo (/fr/, .md)",
        "E",
        durations={"*": "3-15"},
    )


VEO_GEN = {"*": [90, 150]}
VEO_NOTE = "documented (B: about 2 minutes; A: average 120 s), whatever the job"


def veo_3_1() -> tuple[dict, dict]:
    ref, flf = "REFERENCE_2_VIDEO", "FIRST_AND_LAST_FRAMES_2_VIDEO"
    inputs = {
        "mode": one_of("mode", ["quality", "fast"], "quality"),
        "prompt": text(1, 10000),
        "generationType": one_of("generationType", ["TEXT_2_VIDEO", flf, ref], "TEXT_2_VIDEO"),
        "image_urls": urls("image_urls", "http(s) URLs of JPG or PNG images"),
        "aspect_ratio": one_of("aspect_ratio", ["16:9", "9:16", "auto"], "16:9"),
        "watermark": text(None, None, "watermark")
        | {"x-error": "watermark must be text, got {got}"},
        "seed": {"type": "integer", "x-error": "seed must be a whole number, got {value}"},
    }
    rules = [
        rule(
            "generationType",
            "TEXT_2_VIDEO",
            props(
                image_urls={"maxItems": 0, "x-error": "TEXT_2_VIDEO takes no images, got {count}"}
            ),
        ),
        rule(
            "generationType",
            flf,
            {
                **needs("image_urls", why=f"is required with {flf} (1 or 2 frames)"),
                **props(
                    image_urls={
                        "minItems": 1,
                        "maxItems": 2,
                        "x-error": f"{flf} takes 1 or 2 images (first frame, then last), got {{count}}",
                    }
                ),
            },
        ),
        rule(
            "generationType",
            ref,
            {
                **needs("image_urls", why=f"is required with {ref} (1 to 3 images)"),
                **props(
                    image_urls={
                        "minItems": 1,
                        "maxItems": 3,
                        "x-error": f"{ref} takes 1 to 3 images, got {{count}}",
                    },
                    mode={
                        "const": "fast",
                        "x-error": f"{ref} works only with mode 'fast', got {{value}}",
                    },
                    aspect_ratio={
                        "const": "16:9",
                        "x-error": f"{ref} works only with aspect_ratio '16:9', got {{value}}",
                    },
                ),
            },
        ),
    ]
    body = schema("veo-3-1", "Google Veo 3.1", inputs, ["mode", "prompt", "generationType"], rules)
    return body, spec(
        "veo-3-1",
        "Google Veo 3.1",
        f"{PAGE}veo-3-1 (E, C, B); apixo.ai/en/docs/models/veo-3-1 (A)",
        "E",
        gen=VEO_GEN,
        gen_key="",
        gen_note=VEO_NOTE,
        prices={"fast": "0.20", "quality": "1.50"},
        price_note="documented (A, B): per video, fast $0.20, quality $1.50",
        display=["mode", "generationType", "aspect_ratio"],
    )


def veo_3_1_extend() -> tuple[dict, dict]:
    inputs = {
        "taskId": text(1, None, "taskId")
        | {"x-error": "taskId must be the APIXO task id of a finished veo-3-1 task, got {got}"},
        "mode": one_of("mode", ["fast", "quality"], "fast"),
        "prompt": text(1, 10000),
        "watermark": {"type": "string", "x-error": "watermark must be text, got {got}"},
        "seed": {"type": "integer", "x-error": "seed must be a whole number, got {value}"},
    }
    x_req = {"taskId": "is required: the veo-3-1 task to continue (or write `extends: JOB_ID`)"}
    body = schema(
        "veo-3-1-extend",
        "Veo 3.1 Extend",
        inputs,
        ["taskId", "mode", "prompt"],
        [],
        x_required=x_req,
    )
    out = spec(
        "veo-3-1-extend",
        "Veo 3.1 Extend",
        f"{PAGE}veo-3-1-extend (C; E at /it/, /tr/)",
        "E",
        display=["mode", "taskId"],
    )
    return body, {**out, "parent_field": "taskId", "parent_model": "veo-3-1"}


def sora(model: str, title: str, longest: int) -> tuple[dict, dict]:
    pro = model.endswith("pro")
    inputs: dict[str, Any] = {
        "mode": one_of("mode", [T2V, I2V]),
        "prompt": text(1, longest),
        "duration": one_of("duration", [4, 8, 12], note=" (seconds)"),
    }
    if pro:
        inputs["size"] = one_of("size", ["720*1280", "1280*720", "1024*1792", "1792*1024"])
        inputs["resolution"] = one_of("resolution", ["720p", "1080p"])
    else:
        inputs["aspect_ratio"] = one_of("aspect_ratio", ["landscape", "portrait"])
        inputs["remove_watermark"] = boolean("remove_watermark")
    inputs["image_urls"] = urls("image_urls")
    t2v: dict[str, Any] = {"image_urls": NO_IMAGES}
    i2v: dict[str, Any] = {"image_urls": count("image_urls", 1, 1)}
    if pro:
        t2v["resolution"] = none_of("resolution", "is for image-to-video; text-to-video takes size")
        i2v["size"] = none_of("size", "is for text-to-video; image-to-video takes resolution")
    rules = [
        rule("mode", T2V, props(**t2v)),
        rule("mode", I2V, {**needs("image_urls"), **props(**i2v)}),
    ]
    body = schema(model, title, inputs, ["mode", "prompt"], rules, provider=OFFICIAL_ONLY)
    gen = {"*": [120, 300]} if not pro else None
    return body, spec(
        model,
        title,
        f"{PAGE}{model} (E at /{'ru' if pro else 'ko'}/, D, C)",
        "E",
        gen=gen,
        gen_key="",
        gen_note="documented (A: 3-5 min; B: 2-5 min)" if gen else "",
        price_note="not documented for E's durations (A priced 10 s and 15 s): learned from the balance",
        durations={"*": [4, 8, 12]},
        display=["mode", "duration", "size" if pro else "aspect_ratio"],
    )


def seedance_1_5_pro() -> tuple[dict, dict]:
    inputs = {
        "mode": one_of("mode", [T2V, I2V]),
        "prompt": text(3, 2500),
        "image_urls": urls("image_urls"),
        "resolution": one_of("resolution", ["480p", "720p"]),
        "duration": seconds("duration", 4, 12),
        "sound": boolean("sound"),
        "aspect_ratio": one_of("aspect_ratio", ["1:1", "3:4", "4:3", "9:16", "16:9", "21:9"]),
        "fixed_lens": boolean("fixed_lens"),
    }
    rules = [
        rule("mode", T2V, props(image_urls=NO_IMAGES)),
        rule(
            "mode",
            I2V,
            {
                **needs("image_urls"),
                **props(image_urls=count("image_urls", 1, 2, " (start, then end frame)")),
            },
        ),
    ]
    x_req = {"sound": "is required: true for generated sound, false for a silent video"}
    body = schema(
        "seedance-1-5-pro",
        "Seedance 1.5 Pro",
        inputs,
        ["mode", "prompt", "sound"],
        rules,
        x_required=x_req,
    )
    return body, spec(
        "seedance-1-5-pro",
        "Seedance 1.5 Pro",
        f"{PAGE}seedance-1-5-pro (E, C)",
        "E",
        gen={"4": [40, 60], "8": [60, 90], "12": [90, 120]},
        gen_note="documented (C): 4 s 40-60 s, 8 s 60-90 s, 12 s 90-120 s",
        durations={"*": "4-12"},
    )


def seedance_2(model: str, title: str, fast: bool) -> tuple[dict, dict]:
    omni, flf = "omni_reference", "first_and_last_frames"
    inputs = {
        "mode": one_of("mode", [T2V, flf, omni]),
        "prompt": text(1, None),
        "image_urls": urls("image_urls"),
        "video_urls": urls("video_urls", "http(s) URLs of videos"),
        "audio_urls": urls("audio_urls", "http(s) URLs of audio files"),
        "resolution": one_of(
            "resolution",
            ["480p", "720p"] if fast else ["480p", "720p", "1080p"],
            note=" (1080p is seedance-2-0's, not the fast model's)" if fast else "",
        ),
        "duration": seconds("duration", 4, 15, 5 if fast else None),
        "aspect_ratio": one_of(
            "aspect_ratio", ["auto", "16:9", "4:3", "1:1", "3:4", "9:16", "21:9"]
        ),
        "sound": boolean("sound"),
        "web_search": boolean("web_search"),
    }
    omni_only = "is only accepted with omni_reference"
    omni_needs = "omni_reference needs at least one image or video (audio alone fails)"
    rules = [
        rule(
            "mode",
            [T2V, flf],
            props(
                video_urls=none_of("video_urls", omni_only),
                audio_urls=none_of("audio_urls", omni_only),
            ),
        ),
        rule("mode", T2V, props(image_urls=NO_IMAGES)),
        rule(
            "mode",
            flf,
            {
                **needs("image_urls"),
                **props(image_urls=count("image_urls", 1, 2, " (first, then last frame)")),
            },
        ),
        rule(
            "mode",
            omni,
            {
                "anyOf": [needs("image_urls", why=omni_needs), needs("video_urls", why=omni_needs)],
                "x-error": omni_needs,
                **props(
                    image_urls=count("image_urls", 1, 9),
                    video_urls=count("video_urls", 1, 3, " (2-15 s each)"),
                    audio_urls=count("audio_urls", 1, 3, " (2-15 s each)"),
                ),
            },
        ),
    ]
    body = schema(model, title, inputs, ["mode", "prompt"], rules)
    where = "/ru/ (E), /pl/, /ja/ (C)" if fast else "/ko/"
    return body, spec(
        model,
        title,
        f"{PAGE}{model} ({where})",
        "E",
        durations={"*": "4-15"},
        video={"min_s": 2, "max_s": 15, "total_max_s": 15},
    )


def wan_2_5_video() -> tuple[dict, dict]:
    inputs = {
        "mode": one_of("mode", [T2V, I2V]),
        "prompt": text(None, 1500),
        "image_urls": urls("image_urls", "http(s) URLs of JPEG, PNG, BMP or WebP images"),
        "audio_urls": urls("audio_urls", "http(s) URLs of wav or mp3 files"),
        "resolution": one_of("resolution", ["480p", "720p", "1080p"]),
        "duration": one_of("duration", [5, 10], note=" (seconds)"),
        "aspect_ratio": one_of("aspect_ratio", ["16:9", "9:16", "1:1", "4:3", "3:4"]),
        "negative_prompt": text(None, 500, "negative_prompt"),
        "enable_prompt_expansion": boolean("enable_prompt_expansion"),
        "seed": {"type": "integer", "x-error": "seed must be a whole number, got {value}"},
    }
    wide = "aspect_ratio 4:3 and 3:4 need resolution 720p or 1080p"
    rules = [
        rule(
            "mode",
            T2V,
            {
                **needs("prompt", why="is required with text-to-video"),
                **props(image_urls=NO_IMAGES, prompt=text(1, 1500)),
            },
        ),
        rule(
            "mode",
            I2V,
            {
                **needs("image_urls"),
                **props(
                    image_urls=count("image_urls", 1, 1),
                    aspect_ratio=none_of("aspect_ratio", TEXT_ONLY),
                ),
            },
        ),
        rule(
            "aspect_ratio",
            ["4:3", "3:4"],
            {
                **needs("resolution", why=f"is required: {wide}"),
                **props(
                    resolution={"enum": ["720p", "1080p"], "x-error": f"{wide}, got {{value}}"}
                ),
            },
        ),
        {
            "properties": {
                "audio_urls": {
                    "minItems": 1,
                    "maxItems": 1,
                    "x-error": "audio_urls takes exactly 1 audio file (3-30 s), got {count}",
                }
            }
        },
    ]
    body = schema("wan-2-5-video", "Wan 2.5", inputs, ["mode"], rules)
    return body, spec(
        "wan-2-5-video",
        "Wan 2.5",
        f"{PAGE}wan-2-5-video (E at /ko/); {PAGE}wan-2-5 (C, D)",
        "E",
        gen={"720p": [50, 70], "1080p": [70, 90]},
        gen_key="resolution",
        gen_note="documented (C, D): 720p about 50-70 s, 1080p about 70-90 s",
        durations={"*": [5, 10]},
        former=["wan-2-5"],
    )


def wan_2_2_animate() -> tuple[dict, dict]:
    inputs = {
        "mode": one_of("mode", ["standard"], "standard"),
        "type": one_of("type", ["animate", "replace"], "animate"),
        "image_urls": urls("image_urls"),
        "video_urls": urls("video_urls", "http(s) URLs of MP4, MOV or M4V videos"),
        "prompt": text(1, None),
        "resolution": one_of("resolution", ["480p", "720p"]),
        "seed": integer("seed", -1, MAX_SEED),
    }
    rules = [
        {
            "properties": {
                "image_urls": count("image_urls", 1, 1, " (the character)"),
                "video_urls": count("video_urls", 1, 1, " (the motion, 5-120 s billed)"),
            }
        }
    ]
    x_req = {
        "image_urls": "is required: the character's image",
        "video_urls": "is required: the motion's video",
    }
    body = schema(
        "wan-2-2-animate",
        "Wan 2.2 Animate",
        inputs,
        ["mode", "type", "image_urls", "video_urls"],
        rules,
        x_required=x_req,
    )
    return body, spec(
        "wan-2-2-animate",
        "Wan 2.2 Animate",
        f"{PAGE}wan-2-2-animate (E, /it/; C /zh/, /ja/)",
        "E",
        price_note="not documented (billed by the input video's length, 5-120 s): learned from the balance",
        display=["mode", "type", "resolution"],
        video={"formats": MP4_MOV_M4V, "max_s": 120},
    )


def hailuo(model: str, title: str, fast: bool) -> tuple[dict, dict]:
    std = (
        ["standard-image-to-video"]
        if fast
        else ["standard-text-to-video", "standard-image-to-video"]
    )
    pro = ["pro-image-to-video"] if fast else ["pro-text-to-video", "pro-image-to-video"]
    fixed = 6 if fast else 5
    inputs = {
        "mode": one_of(
            "mode",
            std + pro,
            note=" (Invalid mode type: the fast model has no text modes)" if fast else "",
        ),
        "prompt": text(1, None),
        "image_urls": urls("image_urls", "http(s) URLs of JPG or PNG images"),
        "duration": one_of("duration", [6, 10], note=" (seconds)"),
    }
    rules = [
        rule("mode", std, needs("duration", why="is required with {mode}: 6 or 10 seconds")),
        rule(
            "mode",
            pro,
            props(
                duration=none_of(
                    "duration",
                    f"is ignored with {{mode}}, which makes a fixed {fixed} s 1080p video: leave it out",
                )
            ),
        ),
        rule(
            "mode",
            [m for m in std + pro if "image" in m],
            {**needs("image_urls"), **props(image_urls=count("image_urls", 1, 1))},
        ),
    ]
    if not fast:
        rules.append(
            rule("mode", [m for m in std + pro if "text" in m], props(image_urls=NO_IMAGES))
        )
    body = schema(model, title, inputs, ["mode", "prompt"], rules)
    where = "/it/ (C)" if fast else "/pl/, /fr/ (E); /pl/, /zh/ (C)"
    return body, spec(
        model,
        title,
        f"{PAGE}{model} ({where})",
        "C" if fast else "E",
        durations={m: [6, 10] for m in std} | {m: [fixed] for m in pro},
    )


def ltx_2_19b() -> tuple[dict, dict]:
    lora_modes = ["text-to-video-LoRA", "image-to-video-LoRA"]
    image_modes = [I2V, "image-to-video-LoRA"]
    text_modes = [T2V, "text-to-video-LoRA"]
    inputs = {
        "mode": one_of("mode", [T2V, I2V, *lora_modes], T2V),
        "prompt": text(1, 5000),
        "image_urls": urls("image_urls"),
        "resolution": one_of("resolution", ["480p", "720p", "1080p"], "720p"),
        "duration": seconds("duration", 5, 20, 10),
        "aspect_ratio": one_of("aspect_ratio", ["16:9", "9:16"], "16:9"),
        "seed": {
            "type": "integer",
            "minimum": -1,
            "maximum": MAX_SEED,
            "not": {"const": 0},
            "x-error": f"seed must be -1 or a whole number from 1 to {MAX_SEED}, got {{value}}",
        },
        "loras": {
            "type": "array",
            "maxItems": 3,
            "x-error": "loras must be a list of at most 3 {{path, scale}}, got {got}",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["path"],
                "properties": {
                    "path": {"$ref": "#/$defs/http_url"},
                    "scale": {
                        "type": "number",
                        "x-error": "a LoRA's scale must be a number, got {value}",
                    },
                },
                "x-error": "a LoRA is {{path: URL, scale: number}}, got {got}",
            },
        },
    }
    rules = [
        rule("mode", text_modes, props(image_urls=NO_IMAGES)),
        rule(
            "mode",
            image_modes,
            {
                **needs("image_urls"),
                **props(
                    image_urls=count("image_urls", 1, 1),
                    aspect_ratio=none_of("aspect_ratio", TEXT_ONLY),
                ),
            },
        ),
        rule(
            "mode",
            [T2V, I2V],
            props(loras=none_of("loras", "are only accepted with the -LoRA modes")),
        ),
    ]
    body = schema(
        "ltx-2-19b", "LTX 2 19B", inputs, ["mode", "prompt", "resolution", "duration"], rules
    )
    return body, spec(
        "ltx-2-19b",
        "LTX 2 19B",
        f"{PAGE}ltx-2-19b (E, C; D at /de/)",
        "E",
        gen={"480p": [40, 60], "720p": [60, 90]},
        gen_key="resolution",
        gen_note="documented (C): 480p about 40-60 s, 720p about 60-90 s (1080p cut off: the slowest assumed)",
        durations={"*": "5-20"},
    )


def vidu_q3() -> tuple[dict, dict]:
    modes = [T2V, I2V, "turbo-text-to-video", "turbo-image-to-video"]
    inputs = {
        "mode": one_of("mode", modes),
        "prompt": text(1, 5000),
        "image_urls": urls("image_urls"),
        "resolution": one_of("resolution", ["540p", "720p", "1080p"]),
        "duration": seconds("duration", 1, 16),
        "style": one_of("style", ["general", "anime"]),
        "aspect_ratio": one_of("aspect_ratio", ["16:9", "9:16", "4:3", "3:4", "1:1"]),
        "movement": one_of("movement", ["auto", "small", "medium", "large"]),
        "sound": boolean("sound", True),
        "bgm": boolean("bgm", True),
        "seed": integer("seed", -1, MAX_SEED),
    }
    provider = {
        "type": "string",
        "minLength": 1,
        "default": "auto",
        "x-error": "provider must be 'auto', 'value', 'official' or a provider channel, got {value}",
    }
    rules = [
        rule("mode", [T2V, "turbo-text-to-video"], props(image_urls=NO_IMAGES)),
        rule(
            "mode",
            [I2V, "turbo-image-to-video"],
            {
                **needs("image_urls"),
                **props(
                    image_urls=count(
                        "image_urls", 1, 2, " (one to animate, or first and last frame)"
                    ),
                    style=none_of("style", TEXT_ONLY),
                    aspect_ratio=none_of("aspect_ratio", TEXT_ONLY),
                ),
            },
        ),
    ]
    body = schema("vidu-q3", "Vidu Q3", inputs, ["mode", "prompt"], rules, provider=provider)
    return body, spec(
        "vidu-q3",
        "Vidu Q3",
        f"{PAGE}vidu-q3 (E, C; D at /zh/)",
        "E",
        price_note="not documented (billed per second, Standard and Turbo tiers): learned from the balance",
        durations={"*": "1-16"},
    )


def happy_horse() -> tuple[dict, dict]:
    r2v, edit = "reference-to-video", "video-edit"
    inputs = {
        "mode": one_of("mode", [T2V, I2V, r2v, edit]),
        "prompt": text(None, 2500),
        "image_urls": urls("image_urls"),
        "video_urls": urls("video_urls", "http(s) URLs of videos"),
        "resolution": one_of("resolution", ["720p", "1080p"]),
        "ratio": {
            "type": "string",
            "minLength": 1,
            "x-error": "ratio must be an aspect ratio such as '16:9', got {value}",
        },
        "duration": seconds("duration", 3, 15),
        "audio_setting": {
            "type": "string",
            "minLength": 1,
            "x-error": "audio_setting must be text, got {value}",
        },
        "watermark": boolean("watermark"),
        "seed": integer("seed", 0, MAX_SEED),
    }
    no_video = none_of("video_urls", "is only accepted with video-edit")
    rules = [
        rule("mode", [T2V, r2v, edit], needs("prompt")),
        rule(
            "mode",
            [T2V, I2V, r2v],
            props(
                video_urls=no_video,
                audio_setting=none_of("audio_setting", "is only accepted with video-edit"),
            ),
        ),
        rule(
            "mode",
            [I2V, edit],
            props(
                ratio=none_of("ratio", "is only accepted with text-to-video and reference-to-video")
            ),
        ),
        rule("mode", T2V, props(image_urls=NO_IMAGES)),
        rule("mode", I2V, {**needs("image_urls"), **props(image_urls=count("image_urls", 1, 1))}),
        rule("mode", r2v, {**needs("image_urls"), **props(image_urls=count("image_urls", 1, 9))}),
        rule(
            "mode",
            edit,
            {
                **needs("video_urls"),
                **props(
                    image_urls=count("image_urls", 0, 5),
                    video_urls=count("video_urls", 1, 1),
                    duration=none_of(
                        "duration",
                        "is ignored with video-edit (billed on the input video's length): leave it out",
                    ),
                ),
            },
        ),
    ]
    body = schema("happyHorse", "HappyHorse", inputs, ["mode"], rules)
    return body, spec(
        "happyHorse",
        "HappyHorse",
        f"{PAGE}happyhorse (E, C)",
        "E",
        durations={T2V: "3-15", I2V: "3-15", r2v: "3-15"},
        display=["mode", "duration", "resolution", "ratio"],
    )


def grok_video() -> tuple[dict, dict]:
    inputs = {
        "mode": one_of("mode", [T2V, I2V]),
        "prompt": text(1, 5000),
        "duration": seconds("duration", 6, 30, 6),
        "resolution": one_of("resolution", ["480p", "720p"], "480p"),
        "aspect_ratio": one_of("aspect_ratio", ["1:1", "3:2", "2:3", "16:9", "9:16"]),
        "style": {
            "type": "string",
            "minLength": 1,
            "x-error": "style must be text such as 'normal', got {value}",
        },
        "image_urls": urls("image_urls"),
        "task_id": text(1, None, "task_id")
        | {"x-error": "task_id must be the id of a grok-image task, got {got}"},
        "index": integer("index", 0, 5),
    }
    i2v_src = (
        "image-to-video takes either image_urls (1 image) or task_id (a grok-image task) with index"
    )
    rules = [
        rule(
            "mode",
            T2V,
            props(
                image_urls=NO_IMAGES,
                task_id=none_of("task_id", "is only accepted with image-to-video"),
                index=none_of("index", "is only accepted with image-to-video"),
            ),
        ),
        rule(
            "mode",
            I2V,
            {
                "oneOf": [needs("image_urls", why=i2v_src), needs("task_id", why=i2v_src)],
                "x-error": i2v_src,
                **props(image_urls=count("image_urls", 1, 1)),
            },
        ),
        {
            "if": {"required": ["index"]},
            "then": needs(
                "task_id",
                why="is required with index (index picks one result of that grok-image task)",
            ),
        },
    ]
    body = schema("grok-video", "Grok Video", inputs, ["mode", "prompt"], rules)
    return body, spec(
        "grok-video", "Grok Video", f"{PAGE}grok-video (/es/, /pl/)", "C", durations={"*": "6-30"}
    ) | {"parent_field": "task_id", "parent_model": "grok-image"}


MODELS: dict[str, tuple[dict, dict]] = {
    "kling-2-6": kling_2_6(),
    "kling-3-0-std": kling_3_0_std(),
    "kling-3-0-turbo": kling_3_0_turbo(),
    "veo-3-1": veo_3_1(),
    "veo-3-1-extend": veo_3_1_extend(),
    "sora-2": sora("sora-2", "OpenAI Sora 2", 10000),
    "sora-2-pro": sora("sora-2-pro", "OpenAI Sora 2 Pro", 5000),
    "seedance-1-5-pro": seedance_1_5_pro(),
    "seedance-2-0": seedance_2("seedance-2-0", "Seedance 2.0", False),
    "seedance-2-0-fast": seedance_2("seedance-2-0-fast", "Seedance 2.0 Fast", True),
    "wan-2-5-video": wan_2_5_video(),
    "wan-2-2-animate": wan_2_2_animate(),
    "hailuo-2-3": hailuo("hailuo-2-3", "Hailuo 2.3", False),
    "hailuo-2-3-fast": hailuo("hailuo-2-3-fast", "Hailuo 2.3 Fast", True),
    "ltx-2-19b": ltx_2_19b(),
    "vidu-q3": vidu_q3(),
    "happyHorse": happy_horse(),
    "grok-video": grok_video(),
}


def main(check: bool = False) -> int:
    """Write (or with `check`, compare) every model's schema and spec file."""
    stale = []
    for model_id, (body, spec_doc) in MODELS.items():
        for name, doc in (
            (f"{model_id}.request.schema.json", body),
            (f"{model_id}.spec.json", spec_doc),
        ):
            path = ROOT / "schemas" / name
            out = json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
            if check:
                if not path.is_file() or path.read_text(encoding="utf-8") != out:
                    stale.append(name)
            else:
                path.write_text(out, encoding="utf-8")
    if stale:
        print("out of date: " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(check="--check" in sys.argv))
