"""Task ids are data (issue 20 items 3 and 4, issue 18 section 4).

Any id the API could read back is tracked: sent percent-encoded so the server decodes the exact
id (checked on the raw request line), stored as is, and used in file names only through a safe,
collision-free form. An id that cannot be sent back leaves the job `orphaned` (a task exists:
never offered to `retry --ambiguous`), with the id escaped in the state file and the report. An
id handed to two submits is taken by one job only.
"""

from __future__ import annotations

import json
import urllib.parse
from pathlib import Path

import pytest

from batchgen import store as st
from batchgen.adapters.paths import render_filename, safe_output_path
from batchgen.callbacks import CallbackReceiver
from batchgen.core.taskids import (
    MAX_TASK_ID_CHARS,
    filename_part,
    refusal,
    shown,
    task_id_or_none,
)
from batchgen.runner import execute
from tests.enginekit import mixed_jobs, options, prepare_state, sha256_file, state_rows
from tests.faultkit import FakeApi, sha_of

pytestmark = pytest.mark.timeout(120)

ODD_IDS = [
    "タスク-ユニコード",
    "dGFzay0xMjM0NQ==",
    "task id",
    "task/../x",
    "task/../../x0",
    "/abs/path7",
    "task?a=b&c=d4",
    "a+b%2Fc#d;e",
    "..",
    "x" * 255 + "1",  # 256 characters
    "y" * 299 + "1",  # 300 characters of plain letters: the two differ only at the end
    "y" * 299 + "2",
]
REFUSED_IDS = ["", "a\x1b[2Jb", "line\nbreak", "z" * 5000]


def fast(tmp: Path, api: FakeApi, **kw: object):
    return options(tmp, api.base_url, poll_after_s=0.02, poll_every_s=0.02, **kw)


def files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file() or p.is_symlink()}


# -- the rule -----------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [*ODD_IDS, 12345, "t" * MAX_TASK_ID_CHARS, " ", "\u202eabc"])
def test_any_id_that_can_be_sent_back_is_accepted(value: object) -> None:
    assert refusal(value) is None
    assert task_id_or_none(value) == str(value)


@pytest.mark.parametrize(
    "value", [*REFUSED_IDS, "t" * (MAX_TASK_ID_CHARS + 1), "a\u2028b", None, True, {"id": 1}]
)
def test_what_cannot_be_sent_back_is_refused_with_a_reason(value: object) -> None:
    assert refusal(value)
    assert task_id_or_none(value) is None


def test_shown_escapes_and_bounds() -> None:
    assert shown("a\x1b[2Jb\n") == "a\\x1b[2Jb\\n"
    assert shown("\u202eabc") == "\\u202eabc"
    assert shown("タスク") == "タスク"
    long = shown("z" * 5000)
    assert long.startswith("z" * 200) and long.endswith("(5000 characters)") and len(long) < 240


def test_file_names_from_task_ids_are_safe_and_distinct(tmp_path: Path) -> None:
    names = set()
    for task_id in [*ODD_IDS, "a/b", "a_b", "a:b", "CON", "task_12345678"]:
        rel = render_filename(
            "{task_id}.mp4", job_id="j", index=0, task_id=task_id, mode="", n_results=1
        )
        dest = safe_output_path(tmp_path, rel)
        assert dest.parent == tmp_path, (task_id, rel)
        names.add(dest.name)
    assert len(names) == len(ODD_IDS) + 5
    assert filename_part("task_12345678") == "task_12345678"  # a plain id is kept as it is


# -- the store ----------------------------------------------------------------------------------


def test_a_task_id_held_by_one_job_is_never_taken_by_another(tmp_path: Path) -> None:
    store = st.Store(tmp_path / "s.db")
    store.jobs.sync([("a", "kling-2-1", {"n": 1}), ("b", "kling-2-1", {"n": 2})])
    a, b = store.jobs.get("a").seq, store.jobs.get("b").seq
    assert store.moves.mark_submitting(a) and store.moves.mark_submitting(b)
    assert store.moves.mark_in_flight(a, "dup")
    assert not store.moves.mark_in_flight(b, "dup")
    assert store.moves.task_owner("dup", besides=b) == "a"
    assert store.jobs.get("b").state == st.SUBMITTING and store.jobs.get("b").task_id is None
    assert store.moves.mark_in_flight(b, "other")
    store.close()


# -- a conforming server that hands out odd ids ----------------------------------------------------


@pytest.mark.parametrize("template", ["{id}.mp4", "{task_id}.mp4", "{task_id}/{index}.mp4"])
async def test_odd_task_ids_are_tracked_sent_back_exactly_and_named_safely(
    tmp_path: Path, template: str
) -> None:
    n = len(ODD_IDS)
    state = prepare_state(tmp_path, mixed_jobs(n))
    out = tmp_path / "out"
    before = files_under(tmp_path)
    async with FakeApi(task_ids=iter(ODD_IDS)) as api:
        outcome = await execute(fast(tmp_path, api, filename_template=template))
    rows = state_rows(state)
    assert outcome.exit_code == 0, [(r["id"], r["state"]) for r in rows]
    assert [r["state"] for r in rows] == [st.DONE] * n
    assert sorted(r["task_id"] for r in rows) == sorted(ODD_IDS)  # stored raw
    assert api.count("submit") == n  # none resubmitted
    # Sent back exactly: every byte outside the unreserved set is percent-encoded, so a server
    # that reads the query as a form and one that decodes it plainly both get the id back.
    polls = [h for h in api.hits if h.kind == "status"]
    assert {h.key for h in polls} == set(ODD_IDS)
    for h in polls:
        query = h.raw_path.split("?", 1)[1]
        assert query.startswith("taskId=") and "&" not in query, h.raw_path
        value = query[len("taskId=") :]
        assert urllib.parse.unquote(value) == urllib.parse.unquote_plus(value) == h.key
    # Every file inside the output folder, one per job, each the bytes of its own task.
    paths = set()
    for r in rows:
        (f,) = r["files"]
        path = (out / f.path).resolve()
        assert path.is_relative_to(out.resolve()) and path.is_file()
        assert sha256_file(path) == sha_of(r["task_id"]) == f.sha256
        paths.add(f.path)
    assert len(paths) == n
    new = files_under(tmp_path) - before
    assert all(p.resolve().is_relative_to(out.resolve()) for p in new)


async def test_ids_that_cannot_be_sent_back_leave_the_job_orphaned(tmp_path: Path) -> None:
    n = len(REFUSED_IDS) + 2
    state = prepare_state(tmp_path, mixed_jobs(n))
    async with FakeApi(task_ids=iter([*REFUSED_IDS, "fine-1", "fine-2"])) as api:
        outcome = await execute(fast(tmp_path, api))
        second = await execute(fast(tmp_path, api))  # a rerun leaves them alone
    rows = state_rows(state)
    by_state = sorted(r["state"] for r in rows)
    assert by_state == sorted([st.ORPHANED] * len(REFUSED_IDS) + [st.DONE] * 2), rows
    assert outcome.exit_code == second.exit_code == 1  # listed, like ambiguous jobs
    assert api.count("submit") == n  # a task exists: never resubmitted
    assert {h.key for h in api.hits if h.kind == "status"} == {"fine-1", "fine-2"}
    assert sum("orphaned" in m for m in outcome.messages) == len(REFUSED_IDS)
    report = [
        json.loads(line) for line in (tmp_path / "out" / "results.jsonl").read_text().splitlines()
    ]
    orphans = [r for r in report if r["status"] == "orphaned"]
    assert len(orphans) == len(REFUSED_IDS)
    notes = " ".join(r["note"] for r in orphans)
    for text in ('""', "a\\x1b[2Jb", "line\\nbreak", f'"{"z" * 5000}"'):
        assert text in notes, (text, notes)  # the whole id, escaped: the user can look it up
    assert "\x1b" not in notes and "\n" not in notes
    assert all(len(m) < 1000 for m in outcome.messages)  # the terminal gets a short form
    assert "no answer to the submit" not in notes and "task exists" in notes
    assert all(r["task_id"] is None and r["files"] == [] for r in orphans)


async def test_one_task_id_given_to_two_submits_is_taken_by_one_job(tmp_path: Path) -> None:
    state = prepare_state(tmp_path, mixed_jobs(3))
    async with FakeApi(task_ids=iter(["same-1", "same-1", "other-3"])) as api:
        outcome = await execute(fast(tmp_path, api))
    rows = state_rows(state)
    assert sorted(r["state"] for r in rows) == [st.AMBIGUOUS, st.DONE, st.DONE], rows
    (loser,) = [r for r in rows if r["state"] == st.AMBIGUOUS]
    (owner,) = [r for r in rows if r["task_id"] == "same-1"]
    assert loser["task_id"] is None and loser["files"] == []
    done_files = [f.path for r in rows if r["state"] == st.DONE for f in r["files"]]
    assert len(done_files) == 2  # one video is never counted as two results
    assert outcome.exit_code == 1
    assert any(loser["id"] in m and owner["id"] in m for m in outcome.messages)
    assert outcome.counts[st.DONE] == 2


# -- callbacks follow the same rule ---------------------------------------------------------------


class _Engine:
    def __init__(self, known: str) -> None:
        self.known = known
        self.notified: list[str] = []

    def knows_task(self, task_id: str) -> bool:
        return task_id == self.known

    def notify(self, task_id: str, status: object = None, **_: object) -> bool:
        self.notified.append(task_id)
        return True


@pytest.mark.parametrize("task_id", ["y" * 299 + "1", "task?a=b&c=d4", "タスク-ユニコード"])
def test_a_callback_names_any_id_the_submit_accepts(task_id: str) -> None:
    engine = _Engine(task_id)
    rec = CallbackReceiver(engine, "s" * 40)  # type: ignore[arg-type]
    body = {"code": 200, "data": {"taskId": task_id, "state": "success"}}
    assert rec.decide(json.dumps(body).encode()).status == 200
    assert engine.notified == [task_id]
