"""Matrix jobs in a YAML manifest: bodies, ids, variables that set fields, meta, mistakes."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as s

from batchgen.errors import ManifestError
from batchgen.manifest import load_manifest

FOX = """\
version: 1
jobs:
  - id: "fox-{season}-{aspect_ratio}"
    mode: master-text-to-video
    prompt: "a red fox crossing a meadow in {season}"
    duration: 5
    matrix:
      season: [spring, summer, winter]
      aspect_ratio: ["16:9", "9:16"]
      exclude: [{season: winter, aspect_ratio: "9:16"}]
      include: [{season: autumn, aspect_ratio: "1:1"}]
"""


def _write(tmp_path: Path, text: str, name: str = "m.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def _problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ManifestError) as caught:
        load_manifest(_write(tmp_path, text))
    prefix = str(tmp_path) + "/"
    return [str(p).replace(prefix, "") for p in caught.value.problems]


def test_issue_example_expands_to_bodies_ids_and_meta(tmp_path: Path) -> None:
    m = load_manifest(_write(tmp_path, FOX))
    assert [j.id for j in m.jobs] == [
        "fox-spring-16-9", "fox-spring-9-16", "fox-summer-16-9", "fox-summer-9-16",
        "fox-winter-16-9", "fox-autumn-1-1",
    ]  # fmt: skip
    first = m.jobs[0]
    assert first.body == {"input": {"mode": "master-text-to-video",
                                    "prompt": "a red fox crossing a meadow in spring",
                                    "duration": 5, "aspect_ratio": "16:9"}}  # fmt: skip
    assert first.meta == {"season": "spring", "aspect_ratio": "16:9"}
    assert first.matrix == f"{tmp_path}/m.yaml:3"
    assert m.jobs[-1].body["input"]["aspect_ratio"] == "1:1"


def test_variable_sets_a_numeric_field_with_its_type(tmp_path: Path) -> None:
    m = load_manifest(_write(tmp_path, """\
        jobs:
          - id: cfg
            prompt: boats
            image_url: https://x.com/a.jpg
            matrix: {cfg_scale: [0.2, 0.7], duration: [5, 10]}
        """))  # fmt: skip
    assert [j.id for j in m.jobs] == ["cfg-0.2-5", "cfg-0.2-10", "cfg-0.7-5", "cfg-0.7-10"]
    assert m.jobs[3].body["input"]["cfg_scale"] == 0.7
    assert m.jobs[3].body["input"]["duration"] == 10


def test_placeholder_written_as_the_field_keeps_the_value_type(tmp_path: Path) -> None:
    m = load_manifest(_write(tmp_path, """\
        jobs:
          - id: "d{duration}"
            input: {prompt: "boats {duration}", image_urls: ["https://x.com/{n}.jpg"],
                    duration: "{duration}"}
            matrix: {duration: [5, 10], n: [a]}
        """))  # fmt: skip
    assert m.jobs[1].body["input"] == {
        "mode": "standard-image-to-video", "prompt": "boats 10",
        "image_urls": ["https://x.com/a.jpg"], "duration": 10,
    }  # fmt: skip


def test_mode_and_model_as_variables(tmp_path: Path) -> None:
    m = load_manifest(_write(tmp_path, """\
        jobs:
          - id: "walk-{model}"
            prompt: a walk
            duration: 5
            image_url: https://x.com/a.jpg
            matrix:
              include:
                - {model: kling-2-1, mode: pro-image-to-video}
                - {model: kling-2-5-turbo-pro, mode: image-to-video}
        """))  # fmt: skip
    assert [(j.id, j.model, j.body["input"]["mode"]) for j in m.jobs] == [
        ("walk-kling-2-1", "kling-2-1", "pro-image-to-video"),
        ("walk-kling-2-5-turbo-pro", "kling-2-5-turbo-pro", "image-to-video"),
    ]


def test_id_without_placeholders_gets_values_appended(tmp_path: Path) -> None:
    m = load_manifest(_write(tmp_path, """\
        jobs:
          - id: harbor
            prompt: "harbor at {time}"
            duration: 5
            image_url: https://x.com/a.jpg
            matrix: {time: [dawn, "dusk 7:30"], take: [1, 2]}
        """))  # fmt: skip
    assert [j.id for j in m.jobs] == [
        "harbor-dawn-1", "harbor-dawn-2", "harbor-dusk-7-30-1", "harbor-dusk-7-30-2",
    ]  # fmt: skip
    assert m.jobs[1].meta == {"time": "dawn", "take": 2}


def test_no_id_is_stable_when_the_matrix_grows(tmp_path: Path) -> None:
    job = """\
        jobs:
          - prompt: "harbor at {time}"
            duration: 5
            image_url: https://x.com/a.jpg
            meta: {project: harbor}
            matrix: {time: %s}
        """
    small = load_manifest(_write(tmp_path, job % "[dawn]"))
    grown = load_manifest(_write(tmp_path, job % "[dawn, noon]"))
    assert small.jobs[0].id == grown.jobs[0].id
    assert small.jobs[0].id.startswith("matrix-") and small.jobs[0].id.endswith("-dawn")
    assert grown.jobs[1].meta == {"project": "harbor", "time": "noon"}


def test_meta_on_a_plain_job(tmp_path: Path) -> None:
    m = load_manifest(_write(tmp_path, """\
        jobs:
          - {id: a, prompt: hi, duration: 5, image_url: "https://x.com/a.jpg",
             meta: {scene: 3, who: ann}}
        """))  # fmt: skip
    assert m.jobs[0].meta == {"scene": 3, "who": "ann"}


def test_braces_that_are_no_placeholder_stay(tmp_path: Path) -> None:
    m = load_manifest(_write(tmp_path, """\
        jobs:
          - id: b
            prompt: "a {big red} fox, {{season}} is {season}"
            duration: 5
            image_url: https://x.com/a.jpg
            matrix: {season: [fall]}
        """))  # fmt: skip
    assert m.jobs[0].body["input"]["prompt"] == "a {big red} fox, {season} is fall"


MISTAKES = [
    (  # a placeholder naming no variable, at the line of the string
        """\
        jobs:
          - id: "fox-{season}"
            prompt: "a fox in {sesaon}"
            duration: 5
            image_url: https://x.com/a.jpg
            matrix: {season: [spring]}
        """,
        "m.yaml:3: jobs[0].prompt: placeholder {sesaon} names no matrix variable; the matrix "
        "has season",
    ),
    (  # a placeholder an include-only combination has no value for
        """\
        jobs:
          - id: "fox-{season}-{light}"
            prompt: "a fox"
            duration: 5
            image_url: https://x.com/a.jpg
            matrix:
              season: [spring]
              include: [{season: spring, light: dusk}, {season: winter}]
        """,
        "m.yaml:2: jobs[0].id: placeholder {light} has no value in combination season=winter",
    ),
    (  # two combinations, one id
        """\
        jobs:
          - id: "fox-{ratio}"
            prompt: "a fox"
            duration: 5
            image_url: https://x.com/a.jpg
            matrix: {ratio: ["1:1", "1-1"]}
        """,
        "m.yaml:2: jobs[0].id: combinations ratio=1:1 and ratio=1-1 both give the id 'fox-1-1'",
    ),
    (  # an empty list
        """\
        jobs:
          - id: fox
            prompt: "a fox"
            duration: 5
            image_url: https://x.com/a.jpg
            matrix:
              season: []
        """,
        "m.yaml:7: jobs[0].matrix.season: a matrix variable needs a list of at least one value",
    ),
    (  # a value breaking the model's rules: at the value, with its combinations
        """\
        jobs:
          - id: "fox-{season}-{duration}"
            prompt: "a fox"
            image_url: https://x.com/a.jpg
            matrix:
              season: [spring, winter]
              duration: [5, 7]
        """,
        "m.yaml:7: jobs[0].matrix.duration[1]: duration must be 5 or 10 (seconds), got 7 "
        "(in combinations season=spring, duration=7; season=winter, duration=7)",
    ),
    (  # more combinations than max_jobs, and how to raise it
        """\
        max_jobs: 3
        jobs:
          - id: fox
            prompt: "a fox"
            duration: 5
            image_url: https://x.com/a.jpg
            repeat: 2
            matrix: {season: [spring, winter]}
        """,
        "m.yaml:8: jobs[0].matrix: the matrix gives more than 3 jobs (max_jobs, default 1000);"
        " if you mean it, raise it with `max_jobs: N` at the top of the manifest",
    ),
    (  # a field written by hand and by a variable
        """\
        jobs:
          - id: fox
            prompt: "a fox"
            duration: 5
            image_url: https://x.com/a.jpg
            matrix: {duration: [5, 10]}
        """,
        "m.yaml:4: jobs[0].duration: the matrix variable 'duration' sets duration: write it "
        "here as '{duration}' or not at all",
    ),
    (
        """\
        jobs:
          - id: fox
            prompt: "a fox"
            duration: 5
            image_url: https://x.com/a.jpg
            matrix: {index: [1, 2]}
        """,
        "m.yaml:6: jobs[0].matrix.index: 'index' is reserved for the file-name template",
    ),
    (
        """\
        jobs:
          - id: fox
            prompt: "a fox"
            duration: 5
            image_url: https://x.com/a.jpg
            matrix: {season: [spring], exclude: [{season: spring}]}
        """,
        "m.yaml:6: jobs[0].matrix: the matrix gives no combination (every one is excluded)",
    ),
    (
        """\
        jobs:
          - id: fox
            prompt: "a fox"
            duration: 5
            image_url: https://x.com/a.jpg
            meta: {who: [ann]}
        """,
        "m.yaml:6: jobs[0].meta.who: a value must be text or a number, got 1 item",
    ),
    (
        """\
        defaults: {meta: {a: 1}}
        jobs: [{id: a, prompt: hi, duration: 5, image_url: "https://x.com/a.jpg"}]
        """,
        "m.yaml:1: defaults.meta: meta belongs to each job, not to defaults",
    ),
]


@pytest.mark.parametrize(("text", "expected"), MISTAKES)
def test_mistakes_are_placed(tmp_path: Path, text: str, expected: str) -> None:
    problems = _problems(tmp_path, text)
    assert any(p.startswith(expected) for p in problems), problems


def test_max_jobs_raised_allows_it(tmp_path: Path) -> None:
    m = load_manifest(_write(tmp_path, """\
        max_jobs: 4
        jobs:
          - {id: fox, prompt: a fox, duration: 5, image_url: "https://x.com/a.jpg", repeat: 2,
             matrix: {season: [spring, winter]}}
        """))  # fmt: skip
    assert [j.id for j in m.jobs] == [
        "fox-spring-1",
        "fox-spring-2",
        "fox-winter-1",
        "fox-winter-2",
    ]


_names = s.sampled_from(["a", "b", "c"])
_vals = s.lists(s.sampled_from(["x", "y:z", "1", "w w"]), min_size=1, max_size=3, unique=True)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(s.dictionaries(_names, _vals, min_size=1, max_size=3))
def test_ids_unique_and_stable(tmp_path: Path, lists: dict) -> None:
    import json

    matrix = json.dumps(lists)
    text = (f"jobs:\n  - {{id: j, prompt: p, duration: 5, image_url: 'https://x.com/a.jpg',"
            f" matrix: {matrix}}}\n")  # fmt: skip
    try:
        first = load_manifest(_write(tmp_path, text))
    except ManifestError as exc:  # "y:z" and "y-z" cannot both exist here, so only ...
        raise AssertionError(exc.problems) from None
    ids = [j.id for j in first.jobs]
    assert len(set(ids)) == len(ids)
    again = load_manifest(_write(tmp_path, text))
    assert [j.id for j in again.jobs] == ids
    for job in first.jobs:
        assert job.id == "-".join(["j", *(v.replace(":", "-").replace(" ", "-")
                                          for v in job.meta.values())])  # fmt: skip


def test_validate_prints_jobs_and_cost_per_matrix(tmp_path: Path, capsys) -> None:
    from batchgen.cli import main

    path = _write(tmp_path, FOX)
    assert main(["validate", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"matrix at {path}:3: 6 jobs, $6.00" in out


def test_bad_matrix_exits_2_without_traceback(tmp_path: Path, capsys) -> None:
    from batchgen.cli import main

    path = _write(tmp_path, FOX.replace('{season}"', '{saeson}"'))
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}:5: jobs[0].prompt: placeholder {{saeson}} names no matrix variable" in err
    assert "Traceback" not in err


def test_csv_meta_columns(tmp_path: Path) -> None:
    path = _write(tmp_path, """\
        id,mode,prompt,duration,image_url,meta.scene,meta.take
        a,standard-image-to-video,hi,5,https://x.com/a.jpg,harbor,1
        b,standard-image-to-video,hi,5,https://x.com/a.jpg,,2
        """, "m.csv")  # fmt: skip
    assert [j.meta for j in load_manifest(path).jobs] == [
        {"scene": "harbor", "take": "1"}, {"take": "2"},
    ]  # fmt: skip


def test_csv_meta_column_with_a_bad_name(tmp_path: Path) -> None:
    path = _write(tmp_path, "id,prompt,meta.1x\n", "m.csv")
    with pytest.raises(ManifestError) as caught:
        load_manifest(path)
    assert str(caught.value.problems[0]).endswith(
        "m.csv: row 1, column meta.1x: column 'meta.1x': '1x' is not a name: use letters, "
        "digits and '_', not starting with a digit"
    )


def test_yaml_jobs_csv_meta_feeds_the_filename_template(tmp_path: Path) -> None:
    (tmp_path / "rows.csv").write_text(
        "id,mode,prompt,duration,image_url,meta.scene\n"
        "a,standard-image-to-video,hi,5,https://x.com/a.jpg,harbor\n"
    )
    path = _write(tmp_path, 'output: {filename: "{scene}/{id}.mp4"}\njobs_csv: rows.csv\n')
    assert load_manifest(path).jobs[0].meta == {"scene": "harbor"}
    (tmp_path / "rows.csv").write_text(
        "id,mode,prompt,duration,image_url,meta.scene\n"
        "a,standard-image-to-video,hi,5,https://x.com/a.jpg,harbor\n"
        "b,standard-image-to-video,hi,5,https://x.com/a.jpg,\n"
    )
    problems = _problems(tmp_path, 'output: {filename: "{scene}/{id}.mp4"}\njobs_csv: rows.csv\n')
    assert any("unknown placeholder {scene} in filename" in p for p in problems), problems


def test_the_docs_example_gives_what_it_says(tmp_path: Path) -> None:
    import re

    section = (Path(__file__).parent.parent / "docs" / "matrices.md").read_text()
    example = re.search(r"```yaml\n(.*?)```", section, re.S).group(1)  # type: ignore[union-attr]
    (tmp_path / "m.yaml").write_text(example)
    jobs = load_manifest(tmp_path / "m.yaml").jobs
    assert (len(jobs), jobs[0].id, jobs[-1].id) == (6, "fox-spring-16-9", "fox-autumn-1-1")
    assert jobs[-1].meta == {"project": "fox", "season": "autumn", "aspect_ratio": "1:1"}
