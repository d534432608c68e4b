"""Property-based: generated valid jobs round-trip to their exact body (YAML and CSV), and no
generated junk makes load_manifest raise anything but ManifestError."""

from __future__ import annotations

import csv
import io
import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batchgen.errors import ManifestError
from batchgen.manifest import load_manifest
from batchgen.manifest.schema import validate_request

TEXT = (
    st.text(
        st.characters(blacklist_categories=("Cs", "Cc", "Cn", "Zl", "Zp", "Co")),
        min_size=1,
        max_size=40,
    )
    .map(str.strip)
    .filter(bool)
)
URL = st.builds(
    lambda host, path: f"https://{host}.example.com/{path}.jpg",
    st.from_regex(r"[a-z0-9]{1,10}", fullmatch=True),
    st.from_regex(r"[A-Za-z0-9_-]{0,12}", fullmatch=True),
)
IMAGES = {
    "standard-image-to-video": st.lists(URL, min_size=1, max_size=1),
    "pro-image-to-video": st.lists(URL, min_size=1, max_size=2),
    "master-image-to-video": st.lists(URL, min_size=1, max_size=1),
    "master-text-to-video": st.none(),
}
CFG = st.sampled_from([0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1])


@st.composite
def bodies(draw):
    mode = draw(st.sampled_from(sorted(IMAGES)))
    inp = {"mode": mode, "prompt": draw(TEXT), "duration": draw(st.sampled_from([5, 10]))}
    images = draw(IMAGES[mode])
    if images is not None:
        inp["image_urls"] = images
    else:
        inp["aspect_ratio"] = draw(st.sampled_from(["16:9", "9:16", "1:1"]))
    if draw(st.booleans()):
        inp["negative_prompt"] = draw(TEXT)
    if draw(st.booleans()):
        inp["cfg_scale"] = draw(CFG)
    body = {}
    request_type = draw(st.sampled_from([None, "async", "callback"]))
    if request_type:
        body["request_type"] = request_type
    if request_type == "callback":
        body["callback_url"] = draw(URL)
    provider = draw(st.sampled_from([None, "auto", "value", "official"]))
    if provider:
        body["provider"] = provider
    body["input"] = inp
    return body


def _write(directory: Path, name: str, text: str | bytes) -> Path:
    path = directory / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8", newline="")
    return path


@pytest.fixture(scope="module")
def workdir():
    with tempfile.TemporaryDirectory() as tmp:
        yield Path(tmp)


def _as_csv(bodies_: list[dict]) -> str:
    columns = [
        "request_type",
        "callback_url",
        "provider",
        "mode",
        "prompt",
        "duration",
        "image_urls",
        "aspect_ratio",
        "negative_prompt",
        "cfg_scale",
    ]
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(columns)
    for body in bodies_:
        flat = {**{k: v for k, v in body.items() if k != "input"}, **body["input"]}
        if "image_urls" in flat:
            flat["image_urls"] = "|".join(flat["image_urls"])
        writer.writerow([flat.get(c, "") for c in columns])
    return out.getvalue()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(bodies(), min_size=1, max_size=4))
def test_valid_jobs_round_trip_exactly(workdir, generated):
    for body in generated:
        assert validate_request(body) == []
    # YAML (written as JSON, which is YAML): jobs are the bodies themselves
    yaml_jobs = [{k: v for k, v in b.items()} for b in generated]
    doc = json.dumps({"version": 1, "jobs": yaml_jobs}, ensure_ascii=False, indent=1)
    from_yaml = load_manifest(_write(workdir, "m.yaml", doc))
    from_csv = load_manifest(_write(workdir, "m.csv", _as_csv(generated)))
    for m in (from_yaml, from_csv):
        assert [json.dumps(j.body) for j in m.jobs] == [json.dumps(b) for b in generated]
        assert len({j.id for j in m.jobs}) == len(generated)
    assert [j.id for j in from_yaml.jobs] == [j.id for j in from_csv.jobs]  # same content


JUNK_VALUES = st.recursive(
    st.one_of(
        st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=8)
    ),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(
                [
                    "jobs",
                    "defaults",
                    "input",
                    "prompt",
                    "mode",
                    "duration",
                    "id",
                    "repeat",
                    "image_urls",
                    "output",
                    "filename",
                    "version",
                    "x",
                ]
            ),
            inner,
            max_size=4,
        )
    ),
    max_leaves=12,
)
CSV_COLUMNS = st.sampled_from(
    [
        "id",
        "mode",
        "prompt",
        "duration",
        "image_urls",
        "image_url",
        "end_image_url",
        "repeat",
        "cfg_scale",
        "promt",
        "",
    ]
)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(["m.yaml", "m.csv"]),
    st.one_of(
        st.binary(max_size=200),
        st.text(max_size=200),
        JUNK_VALUES.map(lambda v: json.dumps(v)),
        st.lists(st.lists(st.text(max_size=6) | CSV_COLUMNS, max_size=5), max_size=5).map(
            lambda rows: "\n".join(",".join(r) for r in rows)
        ),
    ),
)
def test_junk_never_raises_anything_but_manifest_error(workdir, name, content):
    path = _write(workdir, name, content)
    try:
        manifest = load_manifest(path)
    except ManifestError as exc:
        assert exc.problems and all(p.where and p.message for p in exc.problems)
    else:
        for job in manifest.jobs:
            assert validate_request(job.body) == []
