"""The simulator serves the family as the pages say: veo-3-1-extend's taskId must name a
finished veo-3-1 task, else the new task fails with TASKID_ERROR."""

from __future__ import annotations

from batchgen.simulator.config import SimConfig
from batchgen.simulator.tasks import TaskStore

VEO = {"input": {"mode": "fast", "prompt": "a city", "generationType": "TEXT_2_VIDEO"}}
KLING = {"input": {"mode": "master-text-to-video", "prompt": "a fox", "duration": 5}}


def _extend(task_id: str) -> dict:
    return {"input": {"taskId": task_id, "mode": "fast", "prompt": "go on"}}


def test_an_extension_needs_a_finished_task_of_its_parent_model() -> None:
    config = SimConfig(time_scale=1.0, seed=3, p_content_violation=0.0, p_invalid_image=0.0,
                       p_transient=0.0)  # fmt: skip
    store = TaskStore(config)
    parent = store.create(VEO, 0.0, 0, "veo-3-1")
    kling = store.create(KLING, 0.0, 0, "kling-2-1")
    early = store.create(_extend(parent.task_id), parent.ends - 1.0, 0, "veo-3-1-extend")
    assert early.fail_code == "TASKID_ERROR"  # the parent is still processing
    later = parent.ends + 1.0
    assert store.create(_extend(parent.task_id), later, 0, "veo-3-1-extend").fail_code is None
    for other in ("task_nope", kling.task_id):  # unknown, or not a veo-3-1 task
        failed = store.create(_extend(other), later, 0, "veo-3-1-extend")
        assert failed.fail_code == "TASKID_ERROR" and failed.n_results == 0
        assert failed.end_s <= failed.pending_s + 1.0
        data = failed.status_data(later + failed.end_s, "http://x")
        assert data["failCode"] == "TASKID_ERROR" and "taskId" in data["failMsg"]


def test_an_extension_names_a_task_of_its_own_account() -> None:
    """Another key's finished veo-3-1 task is as good as an unknown id: TASKID_ERROR."""
    config = SimConfig(time_scale=1.0, seed=3, p_content_violation=0.0, p_invalid_image=0.0,
                       p_transient=0.0)  # fmt: skip
    store = TaskStore(config)
    parent = store.create(VEO, 0.0, 0, "veo-3-1", owner="alice")
    later = parent.ends + 1.0
    theirs = store.create(_extend(parent.task_id), later, 0, "veo-3-1-extend", owner="bob")
    ours = store.create(_extend(parent.task_id), later, 0, "veo-3-1-extend", owner="alice")
    assert theirs.fail_code == "TASKID_ERROR" and ours.fail_code is None


def test_a_grok_video_without_task_id_needs_no_parent() -> None:
    store = TaskStore(SimConfig(time_scale=1.0, seed=3, p_content_violation=0.0,
                                p_invalid_image=0.0, p_transient=0.0))  # fmt: skip
    body = {"input": {"mode": "text-to-video", "prompt": "a lake", "duration": 6}}
    assert store.create(body, 0.0, 0, "grok-video").fail_code is None
