"""Manifests: the shipped examples, expansion, ids, places, hostile files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from batchgen.errors import ManifestError
from batchgen.manifest import (
    Job,
    check_filename,
    estimate_requests,
    load_manifest,
    requests_for,
    where,
)
from batchgen.manifest import text as manifest_text
from tests.test_schema import API_EXAMPLES

ROOT = Path(__file__).resolve().parent.parent
MANIFESTS = ROOT / "manifests"


def _load(tmp_path: Path, name: str, content: str | bytes):
    file = tmp_path / name
    if isinstance(content, bytes):
        file.write_bytes(content)
    else:
        file.write_text(content, encoding="utf-8")
    return load_manifest(file)


def _problems(tmp_path: Path, name: str, content: str | bytes) -> list[str]:
    with pytest.raises(ManifestError) as info:
        _load(tmp_path, name, content)
    return [str(p).replace(str(tmp_path) + "/", "") for p in info.value.problems]


def test_api_examples_manifest_reproduces_the_reference_bodies():
    m = load_manifest(MANIFESTS / "api-examples.yaml")
    assert [job.body for job in m.jobs] == API_EXAMPLES
    # same fields in the same order, not just equal dicts
    assert [json.dumps(j.body) for j in m.jobs] == [json.dumps(b) for b in API_EXAMPLES]
    assert "provider" not in m.jobs[2].body  # no default injected


def test_example_manifest():
    m = load_manifest(MANIFESTS / "example.yaml")
    # No output.dir since issue 26 (it is read against the manifest's folder): the default
    # output/<name> is output/demo, run from the repository's root as before.
    assert m.name == "demo" and m.model == "kling-2-1" and where.output_of(m) == "output/demo"
    assert len(m.jobs) == 8
    assert [j.index for j in m.jobs] == list(range(8))
    assert {j.body["input"]["mode"] for j in m.jobs} == {
        "standard-image-to-video",
        "pro-image-to-video",
        "master-image-to-video",
        "master-text-to-video",
    }
    assert [j.id for j in m.jobs if j.id.startswith("city-walk")] == ["city-walk-1", "city-walk-2"]
    walk1, walk2 = (j for j in m.jobs if j.id.startswith("city-walk"))
    assert walk1.body == walk2.body and walk1.body is not walk2.body and walk1.where == walk2.where
    tea = next(j for j in m.jobs if j.id == "tea-steam")
    assert tea.body["input"]["cfg_scale"] == 0.6  # job overrides defaults
    assert tea.body["input"]["image_urls"] == ["https://example.com/images/tea.jpg"]
    assert tea.where == f"{MANIFESTS / 'example.yaml'}:23"  # output.dir's line gone


def test_csv_manifest_and_jobs_csv_under_defaults():
    alone = load_manifest(MANIFESTS / "prompts.csv")
    under = load_manifest(MANIFESTS / "from-csv.yaml")
    assert [j.id for j in alone.jobs] == [*(j.id for j in under.jobs[:5]), alone.jobs[5].id]
    assert len(alone.jobs) == len(under.jobs) == 6
    assert alone.jobs[0].where == f"{MANIFESTS / 'prompts.csv'}: row 2"
    assert under.jobs[0].where == f"{MANIFESTS / 'prompts.csv'}: row 2"
    assert under.jobs[0].body["provider"] == "auto" and "provider" not in alone.jobs[0].body
    assert alone.jobs[2].body["input"]["image_urls"] == [
        "https://example.com/images/train-a.jpg",
        "https://example.com/images/train-b.jpg",
    ]
    assert [j.id for j in alone.jobs][3:5] == ["snow-forest-1", "snow-forest-2"]
    assert alone.jobs[5].id.startswith("standard-i2v-")


JOB_A = "  - {prompt: a, duration: 5, image_url: 'https://x.com/a'}\n"
JOB_B = "  - {prompt: b, duration: 10, mode: master-text-to-video, aspect_ratio: '1:1'}\n"


def test_derived_ids_are_stable_across_reordering_and_distinct_for_copies(tmp_path):
    one = _load(tmp_path, "one.yaml", "jobs:\n" + JOB_A + JOB_B + JOB_A)
    two = _load(tmp_path, "two.yaml", "jobs:\n" + JOB_B + JOB_A + JOB_A)
    assert sorted(j.id for j in one.jobs) == sorted(j.id for j in two.jobs)
    ids = [j.id for j in one.jobs]
    assert len(set(ids)) == 3
    assert ids[0].startswith("standard-i2v-") and ids[2] == ids[0] + ".2"
    assert ids[1].startswith("master-t2v-")
    again = _load(tmp_path, "three.yaml", "jobs:\n" + JOB_A + JOB_B + JOB_A)
    assert [j.id for j in again.jobs] == ids


def test_repeat_with_derived_id_and_copies_do_not_collide(tmp_path):
    m = _load(tmp_path, "m.yaml", "jobs:\n" + JOB_A.rstrip("}\n") + ", repeat: 2}\n" + JOB_A)
    ids = [j.id for j in m.jobs]
    assert len(set(ids)) == 3 and ids[0].endswith("-1") and ids[1].endswith("-2")


def test_null_removes_a_default_and_mode_defaults(tmp_path):
    m = _load(
        tmp_path,
        "m.yaml",
        "defaults: {input: {negative_prompt: blur, duration: 5}}\njobs:\n"
        "  - {prompt: a, image_url: 'https://x.com/a', negative_prompt: null}\n",
    )
    assert m.jobs[0].body == {
        "input": {
            "mode": "standard-image-to-video",
            "prompt": "a",
            "duration": 5,
            "image_urls": ["https://x.com/a"],
        }
    }


def test_yaml_1_1_traps_are_avoided(tmp_path):
    m = _load(
        tmp_path,
        "m.yaml",
        "jobs:\n  - {prompt: no, duration: 5, mode: master-text-to-video, aspect_ratio: 16:9}\n",
    )
    assert m.jobs[0].body["input"]["aspect_ratio"] == "16:9"
    assert m.jobs[0].body["input"]["prompt"] == "no"


def test_merge_keys_work(tmp_path):
    m = _load(
        tmp_path,
        "m.yaml",
        "jobs:\n  - &one {prompt: a, duration: 5, image_url: 'https://x.com/a'}\n"
        "  - {<<: *one, prompt: b}\n",
    )
    assert [j.body["input"]["prompt"] for j in m.jobs] == ["a", "b"]


def test_bom_and_crlf_are_accepted(tmp_path):
    yaml_text = "\ufeffjobs:\r\n" + JOB_A.replace("\n", "\r\n")
    assert len(_load(tmp_path, "m.yaml", yaml_text.encode()).jobs) == 1
    csv_text = '\ufeffprompt,duration,image_url\r\n"multi\r\nline",5,https://x.com/a\r\n'
    m = _load(tmp_path, "m.csv", csv_text.encode())
    assert m.jobs[0].body["input"]["prompt"] == "multi\r\nline"
    assert m.jobs[0].where.endswith("m.csv: row 2")


def test_hostile_files_get_clear_errors(tmp_path, monkeypatch):
    assert "looks like a binary file" in _problems(tmp_path, "m.yaml", b"jobs:\x00\x01\x02")[0]
    assert "not UTF-8" in _problems(tmp_path, "m.csv", b"prompt\n\xff\xfe caf\xe9\n")[0]
    assert "UTF-16" in _problems(tmp_path, "m.yaml", "jobs: []".encode("utf-16"))[0]
    monkeypatch.setattr(manifest_text, "MAX_MANIFEST_BYTES", 1000)
    assert "larger than" in _problems(tmp_path, "m.yaml", "#" * 2000)[0]
    monkeypatch.undo()
    laughs = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    for i, name in enumerate("bcdefghi"):
        prev = "abcdefgh"[i]
        laughs += f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]\n"
    assert "alias bomb" in _problems(tmp_path, "m.yaml", laughs)[0]
    many = "x: &x 1\ny: [" + ", ".join(["*x"] * 200) + "]\n"
    assert "more than 100 YAML aliases" in _problems(tmp_path, "m.yaml", many)[0]
    assert "nested deeper" in _problems(tmp_path, "m.yaml", "[" * 5000)[0]
    tagged = "jobs: !!python/object/new:os.system [echo pwned]\n"
    assert "is not allowed" in _problems(tmp_path, "m.yaml", tagged)[0]


def test_folder_is_refused(tmp_path):
    (tmp_path / "d.yaml").mkdir()
    with pytest.raises(ManifestError, match="is a folder"):
        load_manifest(tmp_path / "d.yaml")


def test_many_bad_rows_are_capped(tmp_path):
    rows = "".join(f"p{i},7,https://x.com/a\n" for i in range(1500))
    problems = _problems(tmp_path, "m.csv", "prompt,duration,image_url\n" + rows)
    assert len(problems) == 1001 and "500 more problems not shown" in problems[-1]


def test_filename_templates():
    assert check_filename("{id}.mp4") == [] and check_filename("{mode}/{index:05d}-{id}.mp4") == []
    assert check_filename("{task_id}.mp4") == []
    assert "unknown placeholder {}" in check_filename("{}.mp4")[0]
    assert "conversions" in check_filename("{id!r}.mp4")[0]
    assert "format" in check_filename("{index:zz}.mp4")[0]
    assert "not valid" in check_filename("{id.mp4")[0]
    assert "inside output.dir" in check_filename("/abs/{id}.mp4")[0]


def test_estimate_requests():
    def job(duration, request_type="async"):
        body = {"request_type": request_type, "input": {"duration": duration}}
        return Job("a", body, "x", 0)

    assert requests_for(job(5).body) == 5  # submit + polls at 60, 65, 70, 75
    assert requests_for(job(10).body) == 11  # submit + polls at 60, 65, ..., 105
    assert requests_for(job(5, "callback").body) == 1
    assert estimate_requests([job(5), job(10), job(10)]) == 27
    assert estimate_requests(load_manifest(MANIFESTS / "example.yaml").jobs) == 6 * 5 + 2 * 11


def test_integral_floats_go_out_as_the_integers_the_api_documents(tmp_path: Path) -> None:
    m = _load(
        tmp_path,
        "f.yaml",
        "jobs:\n  - mode: master-text-to-video\n    prompt: x\n    duration: 10.0\n"
        "    aspect_ratio: '1:1'\n    cfg_scale: 1.0\n",
    )
    sent = json.dumps(m.jobs[0].body)
    assert '"duration": 10,' in sent and isinstance(m.jobs[0].body["input"]["duration"], int)
    assert m.jobs[0].body["input"]["cfg_scale"] == 1.0  # a number field keeps its value
