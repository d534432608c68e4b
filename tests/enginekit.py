"""Helpers for tests that run the real engine against the real simulator over loopback."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from batchgen import store as st
from batchgen.settings import RunOptions
from batchgen.simulator import Simulator
from batchgen.simulator.samples import MODES, sample_body

KEY = "sk-test-0123456789"
SCALE = 0.01  # 75 s of generation -> 0.75 s


def body(
    i: int, mode: str = "standard-image-to-video", *, prompt: str | None = None, duration: int = 5
) -> dict[str, Any]:
    return sample_body(i, mode, prompt or f"job {i}: a calm sea", duration)


def mixed_jobs(
    n: int,
    *,
    violations: tuple[int, ...] = (),
    tag: str = "",
) -> list[tuple[str, str, dict]]:
    """n jobs across the four modes and both durations; `tag` makes bodies distinct between
    batches sent to one simulator (it counts duplicate bodies)."""
    jobs = []
    for i in range(n):
        marker = " [sim:content_violation]" if i in violations else ""
        prompt = f"{tag}job {i}: a calm sea{marker}"
        jobs.append(
            (
                f"job-{i:04d}",
                "kling-2-1",
                body(i, MODES[i % 4], prompt=prompt, duration=5 if i % 3 else 10),
            )
        )
    return jobs


def pace_args(base_url: str, backoff: str = "0.02,0.5") -> list[str]:
    """CLI options that run the engine at the simulator's time scale, with quick retries."""
    return [
        "--base-url", base_url,
        "--poll-after", str(60 * SCALE), "--poll-every", str(5 * SCALE),
        "--rate-limit", f"10000/{60 * SCALE}s", "--backoff", backoff,
    ]  # fmt: skip


def prepare_state(tmp: Path, jobs: list[tuple[str, str, dict]]) -> Path:
    state = tmp / "out" / "batchgen.db"
    store = st.Store(state)
    store.jobs.sync(jobs)
    store.set_meta_many(
        {"output_dir": str(tmp / "out"), "filename_template": "{id}.mp4", "model": "kling-2-1"}
    )
    store.close()
    return state


def options(tmp: Path, base_url: str, **overrides: Any) -> RunOptions:
    opts = RunOptions.from_flat(
        state_path=tmp / "out" / "batchgen.db",
        output_dir=tmp / "out",
        base_url=base_url,
        api_key=KEY,
        drain_s=1.0,
        seed=7,
    ).scaled(SCALE)
    # quick retries
    return opts.replace(**{"backoff_base_s": 0.02, "backoff_cap_s": 0.5, **overrides})


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def state_rows(state: Path) -> list[dict[str, Any]]:
    store = st.Store(state, readonly=True)
    try:
        rows = store.db.execute(
            "SELECT seq, id, state, task_id, fail_code, submit_attempts FROM jobs ORDER BY seq"
        ).fetchall()
        out = []
        for seq, job_id, state_, task_id, code, attempts in rows:
            out.append(
                {
                    "seq": seq,
                    "id": job_id,
                    "state": state_,
                    "task_id": task_id,
                    "fail_code": code,
                    "attempts": attempts,
                    "files": store.jobs.files_of(seq),
                }
            )
        return out
    finally:
        store.close()


def assert_files_verified(sim: Any, state: Path, out: Path) -> int:
    """Every done job's files exist and hash to what the simulator served. Returns file count."""
    n = 0
    for row in state_rows(state):
        if row["state"] != st.DONE:
            continue
        assert row["files"], row
        for f in row["files"]:
            path = out / f.path
            assert path.is_file(), path
            assert sha256_file(path) == sim.expected_sha256(row["task_id"], f.idx) == f.sha256
            n += 1
    return n


def record_bodies(sim: Simulator) -> dict[str, Any]:
    """Remember the body of every task the simulator creates (it keeps only a count), in
    `sim.created_bodies` (task id -> body), which is also returned."""
    bodies: dict[str, Any] = {}
    sim.created_bodies = bodies  # type: ignore[attr-defined]
    create = sim.create_task

    def recording(task_body, now, *more):  # type: ignore[no-untyped-def]
        task = create(task_body, now, *more)  # `more`: the model
        bodies[task.task_id] = task_body
        return task

    sim.create_task = recording  # type: ignore[method-assign]
    return bodies
