"""Issue 9, hostile input: manifests, ids, task ids, templates and result URLs from outside.

Promises checked here:
- any manifest, however broken, ends in exit 0 or 2 with messages, never a traceback, and
  nothing is sent when it is refused;
- nothing is ever written outside the output folder, whatever the job ids (even ones that
  bypass manifest validation), the task ids the server returns, the filename template, or a
  symlink planted in the output folder;
- only http(s) URLs are accepted (manifest, --base-url, result URLs and their redirects), and a
  result is never stored beyond the size cap;
- YAML alias bombs, recursive aliases, deep nesting and huge files are refused at once.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from batchgen import store as bst
from batchgen.cli import main
from batchgen.runner import execute
from tests.enginekit import KEY, body, mixed_jobs, options, prepare_state, state_rows
from tests.faultkit import FakeApi

pytestmark = pytest.mark.timeout(120)


def cli(argv: list[str]) -> tuple[int, str]:
    """Run the CLI in-process; an exception escaping main() fails the test by itself."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse usage errors
            code = exc.code if isinstance(exc.code, int) else 2
    return code, err.getvalue()


def files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file() or p.is_symlink()}


# -- generated manifests -----------------------------------------------------------------------

HOSTILE_TEXT = st.one_of(
    st.text(max_size=30),
    st.sampled_from(
        [
            "../../etc/passwd",
            "/etc/passwd",
            "C:\\Windows\\x",
            "CON",
            "nul.mp4",
            "a\x00b",
            "\u202eevil",
            "line\nbreak",
            "file:///etc/passwd",
            "ftp://example.com/x.jpg",
            "javascript:alert(1)",
            "{task_id}",
            "{id.__class__}",
            "{0}",
            "x" * 600,
            "",
        ]
    ),
)
SCALAR = st.one_of(
    HOSTILE_TEXT,
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
)
VALUE = st.recursive(
    SCALAR,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(HOSTILE_TEXT, inner, max_size=3)
    ),
    max_leaves=8,
)
JOB_KEYS = (
    "id",
    "mode",
    "prompt",
    "duration",
    "image_url",
    "end_image_url",
    "image_urls",
    "repeat",
    "input",
    "aspect_ratio",
    "cfg_scale",
    "negative_prompt",
    "request_type",
    "callback_url",
    "provider",
)
TOP_KEYS = ("version", "name", "model", "output", "defaults", "jobs", "csv", "extra")


@st.composite
def manifests(draw) -> dict:
    good = body(draw(st.integers(0, 3)))
    job: dict = {"id": draw(st.sampled_from(["a", "job-1", "../x", "CON"])), **good["input"]}
    for key in draw(st.lists(st.sampled_from(JOB_KEYS), max_size=4)):
        job[key] = draw(VALUE)
    doc: dict = {"version": 1, "jobs": [job] * draw(st.integers(0, 3))}
    for key in draw(st.lists(st.sampled_from(TOP_KEYS), max_size=3)):
        doc[key] = draw(VALUE)
    if draw(st.booleans()):
        doc["output"] = {"dir": draw(HOSTILE_TEXT), "filename": draw(HOSTILE_TEXT)}
    return doc


@pytest.fixture(scope="module")
def scratch():
    with tempfile.TemporaryDirectory() as tmp:
        yield Path(tmp)


def _check_validate(path: Path) -> None:
    code, err = cli(["validate", str(path)])
    event(f"exit {code}")
    assert code in (0, 2), (code, err)
    assert "Traceback" not in err
    if code == 2:
        assert err.strip(), "a refusal must say why"


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=manifests())
def test_generated_yaml_manifests_never_crash(scratch: Path, doc: dict) -> None:
    path = scratch / "m.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    _check_validate(path)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.one_of(st.binary(max_size=300), st.text(max_size=300).map(str.encode)),
    suffix=st.sampled_from([".yaml", ".yml", ".csv"]),
)
def test_arbitrary_bytes_as_manifest_never_crash(scratch: Path, data: bytes, suffix: str) -> None:
    path = scratch / f"raw{suffix}"
    path.write_bytes(data)
    _check_validate(path)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.lists(st.lists(HOSTILE_TEXT, min_size=1, max_size=6), max_size=5))
def test_generated_csv_manifests_never_crash(scratch: Path, rows: list[list[str]]) -> None:
    import csv

    path = scratch / "m.csv"
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["id", "mode", "prompt", "duration", "image_url", "aspect_ratio"])
        w.writerows(rows)
    _check_validate(path)


# -- refused before anything is sent -------------------------------------------------------------

GOOD_JOB = (
    "  - id: {id}\n    mode: standard-image-to-video\n    prompt: a calm sea\n"
    "    duration: 5\n    image_url: {url}\n"
)


def _manifest(
    tmp: Path, *, id: str = "ok", url: str = "https://example.com/a.jpg", extra: str = ""
) -> Path:
    path = tmp / "m.yaml"
    text = "version: 1\n" + extra + "jobs:\n" + GOOD_JOB.format(id=id, url=url)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "kw",
    [
        {"id": '"../../escape"'},
        {"id": '"/etc/passwd"'},
        {"id": '"a\\x07b"'},
        {"id": '"a\\nb"'},
        {"id": '".."'},
        {"id": '"a/b"'},
        {"url": "file:///etc/passwd"},
        {"url": "ftp://example.com/a.jpg"},
        {"url": '"javascript:alert(1)"'},
        {"url": "http://user:pw@example.com/a.jpg"},
        {"extra": "output:\n  filename: '../../{id}.mp4'\n"},
        {"extra": "output:\n  filename: '/tmp/{id}.mp4'\n"},
        {"extra": "output:\n  filename: '{id.__class__}.mp4'\n"},
        {"extra": "defaults:\n  request_type: callback\n  callback_url: file:///x\n"},
    ],
    ids=lambda kw: repr(kw)[:40],
)
def test_hostile_manifest_is_refused_by_run_with_exit_2(tmp_path: Path, monkeypatch, kw) -> None:
    monkeypatch.setenv("APIXO_API_KEY", KEY)
    path = _manifest(tmp_path, **kw)
    out = tmp_path / "out"
    # Nothing listens on port 9: if anything were sent, the run would end 75, not 2.
    code, err = cli(
        [
            "run",
            str(path),
            "--output",
            str(out),
            "--base-url",
            "http://127.0.0.1:9/api/v1",
            "--quiet",
        ]
    )
    assert code == 2, err
    assert "Traceback" not in err and "error" in err
    assert not (out / "batchgen.db").exists() or not state_rows(out / "batchgen.db")


@pytest.mark.parametrize("url", ["ftp://api.example.com", "file:///tmp/x", "javascript:x", "x"])
def test_non_http_base_url_is_refused(tmp_path: Path, monkeypatch, url: str) -> None:
    monkeypatch.setenv("APIXO_API_KEY", KEY)
    path = _manifest(tmp_path)
    code, err = cli(["run", str(path), "--output", str(tmp_path / "o"), "--base-url", url])
    assert code == 2 and "http" in err and "Traceback" not in err


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    "text",
    [
        # billion laughs
        "a: &a ['x','x','x','x','x','x','x','x','x','x']\n"
        + "".join(
            f"{chr(98 + i)}: &{chr(98 + i)} [{','.join(['*' + chr(97 + i)] * 10)}]\n"
            for i in range(9)
        )
        + "version: 1\njobs: *j\n",
        "a: &a [*a]\nversion: 1\njobs: *a\n",  # recursive alias
        "version: 1\njobs: " + "[" * 5000 + "]" * 5000 + "\n",  # deep nesting
        "version: 1\njobs:\n" + "".join(f"  - &a{i} {{id: x{i}}}\n  - *a{i}\n" for i in range(200)),
    ],
    ids=["alias-bomb", "recursive-alias", "deep-nesting", "many-aliases"],
)
def test_yaml_bombs_are_refused(tmp_path: Path, text: str) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(text, encoding="utf-8")
    code, err = cli(["validate", str(path)])
    assert code == 2 and "Traceback" not in err, err


@pytest.mark.timeout(30)
@pytest.mark.parametrize("suffix", [".yaml", ".csv"])
def test_huge_manifest_is_refused_without_reading_it(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"huge{suffix}"
    with open(path, "wb") as f:  # sparse: 60 MB on paper, nothing on disk
        f.truncate(60 * 1024 * 1024)
    code, err = cli(["validate", str(path)])
    assert code == 2 and "larger than" in err, err


# -- nothing lands outside the output folder -------------------------------------------------


def _assert_confined(tmp: Path, out: Path, before: set[Path]) -> None:
    for p in files_under(tmp) - before:
        assert out.resolve() in p.resolve().parents or p.parent == out, p


HOSTILE_IDS = [
    "../../escape",
    "/abs/olute",
    "..",
    ".",
    "a/../../b",
    "CON",
    "nul.mp4",
    "tab\tnew\nline\x00nul\x1b[31m",
    "\u202egnp.exe",
    "-rf",
    ".hidden",
    "x" * 300,
    "C:\\Windows\\evil",
]


async def test_hostile_job_ids_never_escape_the_output_folder(tmp_path: Path) -> None:
    """Ids straight into the state file, bypassing manifest validation (defence in depth)."""
    jobs = [(jid, "kling-2-1", body(i, prompt=f"p{i}")) for i, jid in enumerate(HOSTILE_IDS)]
    state = prepare_state(tmp_path, jobs)
    before = files_under(tmp_path)
    out = tmp_path / "out"
    async with FakeApi() as api:
        outcome = await execute(
            options(tmp_path, api.base_url, poll_after_s=0.02, poll_every_s=0.02)
        )
    rows = state_rows(state)
    assert outcome.exit_code == 0, (outcome, rows)
    paths = {r["files"][0].path for r in rows}
    assert len(paths) == len(HOSTILE_IDS)  # each job its own file
    for p in paths:
        assert not p.startswith(("/", "..", ".")) and "\x00" not in p and "\n" not in p
    assert "_CON.mp4" in paths
    _assert_confined(tmp_path, out, before)


@pytest.mark.parametrize("template", ["{task_id}.mp4", "{task_id}/{id}.mp4", "x/{task_id}{id}"])
async def test_hostile_task_ids_never_escape_the_output_folder(
    tmp_path: Path, template: str
) -> None:
    task_ids = [
        "../../etc/x",
        "..",
        "a\x00b",  # cannot be sent back: the task exists but cannot be tracked (orphaned)
        "CON",
        "COM1.mp4",
        "NUL",
        "a:b",
        "t" * 200,
        "ok.1",
    ]
    n = len(task_ids)
    state = prepare_state(tmp_path, mixed_jobs(n))
    before = files_under(tmp_path)
    out = tmp_path / "out"
    async with FakeApi(task_ids=iter(task_ids)) as api:
        outcome = await execute(
            options(
                tmp_path,
                api.base_url,
                poll_after_s=0.02,
                poll_every_s=0.02,
                filename_template=template,
            )
        )
    rows = state_rows(state)
    # A task id is data: every one that can be sent back is tracked and its file lands inside
    # the output folder under a safe name; the one with a NUL is orphaned, never resubmitted.
    states = sorted(r["state"] for r in rows)
    assert states == sorted([bst.ORPHANED] + [bst.DONE] * (n - 1)), rows
    assert sorted(r["task_id"] for r in rows if r["state"] == bst.DONE) == sorted(
        t for t in task_ids if t != "a\x00b"
    )
    assert len({r["files"][0].path for r in rows if r["state"] == bst.DONE}) == n - 1
    assert outcome.exit_code == 1
    assert api.count("submit") == n
    _assert_confined(tmp_path, out, before)


async def test_symlink_in_the_output_folder_is_not_followed_out(tmp_path: Path) -> None:
    state = prepare_state(tmp_path, mixed_jobs(2))
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(outside, tmp_path / "out" / "link")
    async with FakeApi() as api:
        outcome = await execute(
            options(
                tmp_path,
                api.base_url,
                poll_after_s=0.02,
                poll_every_s=0.02,
                filename_template="link/{id}.mp4",
            )
        )
    rows = state_rows(state)
    assert [(r["state"], r["fail_code"]) for r in rows] == [(bst.FAILED, "DOWNLOAD_REFUSED")] * 2
    assert outcome.exit_code == 1
    assert list(outside.iterdir()) == []


# -- result URLs ---------------------------------------------------------------------------------


async def test_result_urls_only_over_http_and_within_the_size_cap(tmp_path: Path) -> None:
    n = 10
    state = prepare_state(tmp_path, mixed_jobs(n))
    before = files_under(tmp_path)
    secret = tmp_path / "secret.txt"
    secret.write_text("do not copy me")
    async with FakeApi() as api:
        o = api.origin
        cdn = f"{o}/cdn/" + "{tok}/0.mp4"
        hostile = {
            "task-0001": f"file://{secret}",
            "task-0002": "ftp://127.0.0.1/x.mp4",
            "task-0003": "javascript:alert(1)",
            "task-0004": f"http://user:pw@{o[7:]}/cdn/x/0.mp4",
            "task-0005": f"{o}/redirect?to=file://{secret}",
            "task-0006": "gopher://127.0.0.1:70/x",
            "task-0007": f"http://127.0.0.1:{o.rsplit(':', 1)[1]}\\@evil.example/x.mp4",
        }

        def urls(task):
            if task.task_id in hostile:
                return [hostile[task.task_id]]
            return [cdn.format(tok=task.task_id.encode().hex())]

        api.result_urls = urls
        # task-0008: 200 000 bytes announced, over a 100 000 cap; task-0009: announces 50 GB;
        # task-0010: no length at all, the body never ends.
        api.hooks["file"] = lambda hit: {"task-0009": "huge_length", "task-0010": "endless"}.get(
            hit.key
        )
        outcome = await execute(
            options(
                tmp_path, api.base_url, poll_after_s=0.02, poll_every_s=0.02, max_file_bytes=100_000
            )
        )
    rows = state_rows(state)
    assert [(r["state"], r["fail_code"]) for r in rows] == [(bst.FAILED, "DOWNLOAD_REFUSED")] * n
    assert outcome.exit_code == 1
    # Only the http ones were ever requested: the redirect (refused at its target) and the
    # three oversized files.
    fetched = sorted({h.key for h in api.hits if h.kind == "file"})
    assert fetched == ["redirect", "task-0008", "task-0009", "task-0010"]
    new = files_under(tmp_path) - before - {secret}
    assert {p.name for p in new} <= {
        "batchgen.db",
        "batchgen.db-wal",
        "batchgen.db-shm",
        "results.jsonl",
        "batchgen.db.lock",
    }, new


def test_an_image_path_with_a_nul_byte_is_a_placed_error_not_a_traceback(tmp_path) -> None:
    """Found by test_generated_yaml_manifests_never_crash (image_urls: ["\\x00"]): os.stat
    raised ValueError out of the manifest loader."""
    from batchgen.errors import ManifestError
    from batchgen.manifest import load_manifest

    manifest = tmp_path / "m.yaml"
    manifest.write_text(
        'version: 1\njobs:\n  - {id: a, mode: standard-image-to-video, prompt: p, duration: 5,'
        ' image_urls: ["\\x00"]}\n',
        encoding="utf-8",
    )
    try:
        load_manifest(manifest)
    except ManifestError as exc:
        assert "not a file name" in str(exc)  # the NUL check before os.stat
    else:
        raise AssertionError("a NUL byte in an image path was accepted")
