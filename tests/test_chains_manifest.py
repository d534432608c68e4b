"""`extends: PARENT_ID` in manifests: a job that continues another job's task. The body holds
a placeholder for the parent's task id (the job's identity follows its parent); `validate`
refuses a missing parent, a cycle, a model that continues nothing, a parent of the wrong model
and a bad local video, each at its place with the field named (YAML line, CSV cell)."""

from __future__ import annotations

from pathlib import Path

import pytest

from batchgen.cli import main
from batchgen.core.chains import Next, decide, fill, link_problems, parent_in, placeholder
from batchgen.errors import ManifestError
from batchgen.manifest import load_manifest
from tests.videokit import mp4

VEO = "{id: %s, model: veo-3-1, mode: fast, generationType: TEXT_2_VIDEO, prompt: a city}"
EXT = "{id: %s, model: veo-3-1-extend, extends: %s, prompt: go on}"

INVALID = [
    # (name, job, field named, words said)
    ("missing parent", EXT % ("orphan", "nobody"), "extends", "no job has id 'nobody'"),
    ("cycle", EXT % ("loop-a", "loop-b"), "extends", "a cycle: loop-a -> loop-b -> loop-a"),
    ("cycle, other end", EXT % ("loop-b", "loop-a"), "extends", "a cycle: loop-b -> loop-a"),
    ("self", EXT % ("me", "me"), "extends", "cannot extend itself"),
    (
        "a model that continues nothing",
        "{id: k, model: kling-2-6, mode: text-to-video, prompt: p, duration: 5, sound: true,"
        " extends: root}",
        "extends",
        "kling-2-6 does not continue another task",
    ),
    ("parent of another model", EXT % ("ext-of-ext", "ok"), "extends", "is a veo-3-1-extend job"),
    (
        "grok-video names a grok-image task",
        "{id: g, model: grok-video, mode: image-to-video, prompt: p, index: 2, extends: root}",
        "extends",
        "grok-video continues a grok-image task",
    ),
    (
        "extends and taskId",
        "{id: both, model: veo-3-1-extend, extends: root, taskId: t1, prompt: p}",
        "extends",
        "give extends or taskId, not both",
    ),
    (
        "bad local video",
        "{id: v, model: kling-3-0-std, mode: motion-control, image_urls: [https://e.x/a.png],"
        " video_urls: [long.mp4]}",
        "video_urls[0]",
        "kling-3-0-std takes at most 30 s",
    ),
]


def test_each_invalid_job_is_refused_at_its_field(tmp_path: Path, capsys) -> None:
    (tmp_path / "long.mp4").write_bytes(mp4(45.0))
    jobs = [VEO % "root", EXT % ("ok", "root"), *(job for _, job, _, _ in INVALID)]
    manifest = tmp_path / "m.yaml"
    manifest.write_text("jobs:\n" + "".join(f"  - {j}\n" for j in jobs), encoding="utf-8")
    assert main(["validate", str(manifest)]) == 2
    err = capsys.readouterr().err.splitlines()
    for n, (name, _job, field, said) in enumerate(INVALID):
        place = f"{manifest}:{n + 4}: jobs[{n + 2}].{field}: "
        lines = [x for x in err if place in x]
        assert lines and said in lines[0], (name, place, err)
    assert not [x for x in err if f"{manifest}:2:" in x or f"{manifest}:3:" in x]


def test_a_csv_names_the_extends_cell(tmp_path: Path, capsys) -> None:
    path = tmp_path / "m.csv"
    path.write_text(
        "id,model,mode,generationType,prompt,extends\n"
        "root,veo-3-1,fast,TEXT_2_VIDEO,a city,\n"
        "more,veo-3-1-extend,fast,,go on,root\n"
        "lost,veo-3-1-extend,fast,,go on,gone\n"
        "bad,veo-3-1-extend,fast,,go on,not an id\n",
        encoding="utf-8",
    )
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}: row 4, column extends: " in err and "no job has id 'gone'" in err
    assert f"{path}: row 5, column extends: " in err and "extends must be the id" in err
    assert "row 3" not in err


def test_the_body_holds_a_placeholder_and_the_id_follows_the_parent(tmp_path: Path) -> None:
    manifest = tmp_path / "m.yaml"
    manifest.write_text(
        "jobs:\n"
        f"  - {VEO % 'a'}\n  - {VEO.replace('a city', 'a sea') % 'b'}\n"
        "  - {model: veo-3-1-extend, extends: a, prompt: go on}\n"
        "  - {model: veo-3-1-extend, extends: b, prompt: go on}\n",
        encoding="utf-8",
    )
    jobs = load_manifest(manifest).jobs
    assert [j.extends for j in jobs] == [None, None, "a", "b"]
    assert jobs[2].body["input"]["taskId"] == placeholder("a")
    assert jobs[2].id != jobs[3].id  # same prompt, other parent: another job


def test_extends_is_not_a_default(tmp_path: Path) -> None:
    manifest = tmp_path / "m.yaml"
    manifest.write_text(f"defaults: {{extends: a}}\njobs:\n  - {VEO % 'a'}\n", encoding="utf-8")
    with pytest.raises(ManifestError, match="extends belongs to each job"):
        load_manifest(manifest)


def test_the_pure_rules() -> None:
    assert decide("done", "t1") is decide("succeeded", "t1") is Next.GO
    assert decide("in_flight", "t1") is decide("pending", None) is Next.WAIT
    for ended in ("failed", "expired", "ambiguous", "orphaned", "cancelled", None):
        assert decide(ended, None) is Next.FAIL
    body = {"input": {"taskId": placeholder("p"), "prompt": "x"}}
    assert fill(body, "task_9") == {"input": {"taskId": "task_9", "prompt": "x"}}
    assert parent_in(placeholder("p")) == "p" and parent_in("task_9") is None
    links = {"a": ("m", None), "b": ("m", "c"), "c": ("m", "d"), "d": ("m", "b"), "e": ("m", "a")}
    problems = link_problems(links, lambda m: "f", lambda m: "m")
    assert set(problems) == {"b", "c", "d"}
    assert problems["c"] == "a cycle: c -> d -> b -> c"


def test_a_matrix_job_extends_for_each_combination(tmp_path: Path, capsys) -> None:
    manifest = tmp_path / "m.yaml"
    manifest.write_text(
        "jobs:\n"
        f"  - {VEO % 'city'}\n"
        "  - {id: 'more-{n}', model: veo-3-1-extend, extends: city, prompt: 'go {n}',"
        " matrix: {n: [1, 2]}}\n",
        encoding="utf-8",
    )
    jobs = load_manifest(manifest).jobs
    assert [(j.id, j.extends) for j in jobs] == [
        ("city", None),
        ("more-1", "city"),
        ("more-2", "city"),
    ]
    manifest.write_text(manifest.read_text().replace("extends: city", "extends: gone"))
    assert main(["validate", str(manifest)]) == 2
    err = capsys.readouterr().err
    assert err.count("no job has id 'gone'") == 1  # one place, said once


def test_extending_a_repeated_job_names_its_takes() -> None:
    links = {"p-1": ("m", None), "p-2": ("m", None), "c": ("m", "p")}
    said = link_problems(links, lambda m: "f", lambda m: "m")["c"]
    assert said == "no job has id 'p' in this batch (with repeat, its takes are 'p-1', ...)"
