"""The request schema, its sentences, and the compiled fast path (equivalent to jsonschema)."""

from __future__ import annotations

import copy

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batchgen.manifest.schema import (
    _validator,
    fast_check,
    load_schema,
    request_fields,
    validate_document,
    validate_request,
)
from batchgen.manifest.schema_fast import compile_schema, json_equal

# The three example requests of the API reference, verbatim.
API_EXAMPLES = [
    {
        "request_type": "async",
        "provider": "value",
        "input": {
            "mode": "standard-image-to-video",
            "prompt": "animate this still life scene with subtle camera movement",
            "duration": 5,
            "image_urls": ["https://example.com/std_ref.jpg"],
            "negative_prompt": "blur, low quality",
            "cfg_scale": 0.6,
        },
    },
    {
        "request_type": "callback",
        "callback_url": "https://your-server.com/callback",
        "provider": "official",
        "input": {
            "mode": "pro-image-to-video",
            "prompt": "city skyline timelapse from day to night",
            "duration": 10,
            "image_urls": ["https://example.com/pro_start.jpg", "https://example.com/pro_end.jpg"],
            "cfg_scale": 0.4,
        },
    },
    {
        "request_type": "async",
        "input": {
            "mode": "master-text-to-video",
            "prompt": "a futuristic drone flying through neon-lit streets at night",
            "duration": 5,
            "aspect_ratio": "9:16",
            "negative_prompt": "grainy, noisy, static",
            "cfg_scale": 0.3,
        },
    },
]


@pytest.mark.parametrize("body", API_EXAMPLES)
def test_api_examples_are_valid(body):
    assert validate_request(body) == []
    assert fast_check()(body)


def _with(change):
    body = copy.deepcopy(API_EXAMPLES[0])
    change(body)
    return body


BAD = [
    (lambda b: b["input"].update(promt="x"), "input.promt", "did you mean 'prompt'?"),
    (lambda b: b.update(provder="auto"), "provder", "did you mean 'provider'?"),
    (lambda b: b.update(prompt="x"), "prompt", "belongs inside 'input'"),
    (lambda b: b["input"].pop("prompt"), "input.prompt", "is required"),
    (lambda b: b["input"].update(prompt=""), "input.prompt", "1 to 5000 characters, got 0"),
    (lambda b: b["input"].update(prompt="x" * 5001), "input.prompt", "got 5001 characters"),
    (
        lambda b: b["input"].update(negative_prompt="n" * 501),
        "input.negative_prompt",
        "at most 500",
    ),
    (lambda b: b["input"].update(duration=7), "input.duration", "must be 5 or 10"),
    (lambda b: b["input"].update(duration="5"), "input.duration", "must be 5 or 10"),
    (lambda b: b["input"].update(duration=True), "input.duration", "must be 5 or 10"),
    (lambda b: b["input"].update(cfg_scale=0.35), "input.cfg_scale", "steps of 0.1"),
    (lambda b: b["input"].update(cfg_scale=1.1), "input.cfg_scale", "from 0 to 1"),
    (lambda b: b["input"].update(cfg_scale=True), "input.cfg_scale", "steps of 0.1"),
    (lambda b: b.update(provider="cheap"), "provider", "got 'cheap'"),
    (lambda b: b.update(request_type="sync"), "request_type", "'async' or 'callback'"),
    (lambda b: b.update(request_type="callback"), "callback_url", "request_type is 'callback'"),
    (lambda b: b.update(callback_url="ftp://x.com/cb"), "callback_url", "http(s) URL"),
    (lambda b: b["input"].update(image_urls=[]), "input.image_urls", "exactly 1 image, got 0"),
    (lambda b: b["input"].pop("image_urls"), "input.image_urls", "required with standard"),
    (lambda b: b["input"].update(image_urls="https://a.com/x.jpg"), "input.image_urls", "list"),
    (
        lambda b: b["input"].update(image_urls=["https://a.com/x.jpg\n"]),
        "input.image_urls[0]",
        "URL",
    ),
    (lambda b: b["input"].update(image_urls=["https://u:p@a.com/x"]), "input.image_urls[0]", "URL"),
    (lambda b: b["input"].update(image_urls=["javascript:alert(1)"]), "input.image_urls[0]", "URL"),
    (lambda b: b["input"].update(aspect_ratio="16:9"), "input.aspect_ratio", "only accepted with"),
    (lambda b: b["input"].update(mode="ultra"), "input.mode", "got 'ultra'"),
    (lambda b: b.update(input=[]), "input", "must be an object"),
]


@pytest.mark.parametrize(("change", "path", "words"), BAD)
def test_invalid_bodies_name_path_and_rule(change, path, words):
    body = _with(change)
    issues = validate_request(body)
    assert any(i.path == path and words in i.message for i in issues), issues
    assert not fast_check()(body)


def test_mode_rules():
    text = {"mode": "master-text-to-video", "prompt": "p", "duration": 5}
    issues = validate_request({"input": text})
    assert [(i.path, i.message) for i in issues] == [
        ("input.aspect_ratio", "is required with master-text-to-video")
    ]
    issues = validate_request(
        {"input": {**text, "aspect_ratio": "1:1", "image_urls": ["https://a.b/c"]}}
    )
    assert [str(i) for i in issues] == [
        "input.image_urls: master-text-to-video takes no images, got 1"
    ]
    pro = {"mode": "pro-image-to-video", "prompt": "p", "duration": 10}
    urls = [f"https://a.b/{i}.jpg" for i in range(3)]
    assert validate_request({"input": {**pro, "image_urls": urls[:2]}}) == []
    issues = validate_request({"input": {**pro, "image_urls": urls}})
    assert [str(i) for i in issues] == [
        "input.image_urls: pro-image-to-video takes 1 or 2 images, got 3"
    ]
    assert validate_request(5)[0].message == "the request body must be a JSON object"


def test_request_fields_come_from_the_schema():
    f = request_fields()
    assert f.top == ("request_type", "callback_url", "provider")
    assert f.inputs[:3] == ("mode", "prompt", "duration")
    assert f.numeric == {"duration", "cfg_scale"} and f.arrays == {"image_urls"}
    assert f.filled == (("mode", "standard-image-to-video"),)


def test_unsupported_keywords_are_not_compiled():
    assert compile_schema({"uniqueItems": True}) is None
    assert compile_schema({"$schema": "http://json-schema.org/draft-07/schema#"}) is None
    assert compile_schema({"type": "string", "x-anything": 1}) is not None


def test_json_equal_keeps_bools_apart():
    assert json_equal(1, 1.0) and not json_equal(True, 1) and not json_equal(0, False)
    assert json_equal([1, {"a": True}], [1.0, {"a": True}])


def test_manifest_schema_reports_shape():
    issues = validate_document({"jobs": [{"id": "a b"}], "jobs_cvs": "x"}, "manifest.schema.json")
    assert [i.path for i in issues] == ["jobs_cvs", "jobs[0].id"]
    assert "did you mean 'jobs_csv'?" in issues[0].message


# --- the compiled fast path equals jsonschema ----------------------------------------------

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 12),
    st.sampled_from([0.0, 0.1, 0.3, 0.35, 1.0, 5.0, 10.0, 0.30000000000000004, float("nan")]),
    st.sampled_from(
        [
            "",
            "x",
            "async",
            "callback",
            "auto",
            "value",
            "official",
            "16:9",
            "9:16",
            "1:1",
            "standard-image-to-video",
            "pro-image-to-video",
            "master-image-to-video",
            "master-text-to-video",
            "https://a.com/x.jpg",
            "http://a.com",
            "https://a.com\n",
            "https://u@a.com/",
            "ftp://a.com/x",
            "x" * 501,
            "y" * 5001,
        ]
    ),
)
JSONISH = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=8,
)
MODES = {
    "standard-image-to-video": (1, 1),
    "pro-image-to-video": (1, 2),
    "master-image-to-video": (1, 1),
    "master-text-to-video": (0, 0),
}
URL = st.sampled_from(["https://a.com/x.jpg", "http://b.org/y.png", "HTTPS://C.IO/z?q=1#f"])
FIELDS = [
    "request_type",
    "callback_url",
    "provider",
    "input",
    "input.mode",
    "input.prompt",
    "input.duration",
    "input.image_urls",
    "input.aspect_ratio",
    "input.negative_prompt",
    "input.cfg_scale",
    "input.promt",
    "x",
]


TURBO_MODES = {"text-to-video": (0, 0), "image-to-video": (1, 2)}


@st.composite
def near_valid_bodies(draw, modes=MODES, longest=5000):
    """A valid body (all modes, optional fields), then 0 to 2 small changes: most bodies sit
    right at the edge between valid and invalid, where a wrong fast path would show."""
    mode = draw(st.sampled_from(sorted(modes)))
    low, high = modes[mode]
    inp = {
        "mode": mode,
        "prompt": draw(st.sampled_from(["p", "a calm sea", "x" * longest, "x" * (longest + 1)])),
        "duration": draw(st.sampled_from([5, 10, 5.0, 10.0])),
    }
    if high:
        inp["image_urls"] = draw(st.lists(URL, min_size=low, max_size=high))
    else:
        inp["aspect_ratio"] = draw(st.sampled_from(["16:9", "9:16", "1:1"]))
    if draw(st.booleans()):
        inp["negative_prompt"] = draw(st.sampled_from(["", "n", "n" * 500, "n" * 2501]))
    if draw(st.booleans()):
        inp["cfg_scale"] = draw(st.sampled_from([0, 0.0, 0.1, 0.3, 0.5, 0.7, 1, 1.0]))
    body = {"input": inp}
    if draw(st.booleans()):
        body["request_type"] = "callback"
        body["callback_url"] = draw(URL)
    elif draw(st.booleans()):
        body["request_type"] = "async"
    if draw(st.booleans()):
        body["provider"] = draw(st.sampled_from(["auto", "value", "official"]))
    for _ in range(draw(st.integers(0, 2))):
        target = draw(st.sampled_from(FIELDS))
        holder, key = (inp, target[6:]) if target.startswith("input.") else (body, target)
        if draw(st.booleans()) and key in holder:
            del holder[key]
        else:
            holder[key] = draw(SCALARS | JSONISH)
    return body


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(near_valid_bodies() | JSONISH)
def test_fast_path_agrees_with_jsonschema(body):
    expected = _validator("kling-2-1.request.schema.json").is_valid(body)
    assert fast_check()(body) is expected
    assert (validate_request(body) == []) is expected


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(near_valid_bodies(TURBO_MODES, 2500) | near_valid_bodies() | JSONISH)
def test_fast_path_agrees_with_jsonschema_for_kling_2_5(body):
    """The fast path is per model: Kling 2.5 Turbo Pro's schema, fed its own near-valid bodies
    and Kling 2.1's."""
    model = "kling-2-5-turbo-pro"
    expected = _validator(f"{model}.request.schema.json").is_valid(body)
    assert fast_check(model)(body) is expected
    assert (validate_request(body, model) == []) is expected


@settings(max_examples=300, deadline=None)
@given(
    st.fixed_dictionaries(
        {},
        optional={
            "version": SCALARS,
            "name": SCALARS,
            "model": SCALARS,
            "jobs_csv": SCALARS,
            "jobs": st.lists(st.fixed_dictionaries({}, optional={"id": SCALARS, "repeat": SCALARS}))
            | JSONISH,
            "output": st.fixed_dictionaries({}, optional={"dir": SCALARS, "filename": SCALARS})
            | JSONISH,
            "defaults": JSONISH,
        },
    )
)
def test_fast_path_agrees_on_the_manifest_schema(doc):
    compiled = compile_schema(load_schema("manifest.schema.json"))
    assert compiled is not None
    assert compiled(doc) is _validator("manifest.schema.json").is_valid(doc)
