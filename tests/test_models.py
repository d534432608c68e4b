"""Model specs and the registry (batchgen/models), and the state file's per-job model."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from batchgen import models
from batchgen import store as st
from batchgen.core.schedule import PollSchedule, first_poll_delay
from batchgen.manifest.schema import known_models, validate_request
from batchgen.models import ModelSpec, SpecError, spec_from_file

DATA = Path(__file__).parent / "data"


class Low:
    def uniform(self, a: float, b: float) -> float:
        return a


def test_built_in_models_and_their_endpoints():
    assert {"kling-2-1", "kling-2-5-turbo-pro"} <= set(models.known())
    assert known_models() == models.known()
    spec = models.get("kling-2-5-turbo-pro")
    assert spec.submit_path == "/generateTask/kling-2-5-turbo-pro"
    assert spec.status_path == "/statusTask/kling-2-5-turbo-pro"
    assert models.get("kling-2-1").alias_names == {"image_url", "end_image_url"}


def test_unknown_model_names_the_known_ones():
    with pytest.raises(KeyError, match=r"kling-2-1.*kling-2-5-turbo-pro"):
        models.get("kling-9")
    assert models.find("kling-9") is None


@pytest.mark.parametrize(
    ("duration", "after", "stuck"), [(5, 60.0, 1.0), (10, 90.0, 1.0), (7, 60.0, 1.0)]
)
def test_kling_2_1_keeps_the_documented_poll_schedule(duration, after, stuck):
    spec = models.get("kling-2-1")
    sched = PollSchedule(poll_after=60.0, jitter=0.2)
    assert first_poll_delay(duration, sched, Low(), spec.poll_factor(duration)) == after  # type: ignore[arg-type]
    assert spec.stuck_factor(duration) == stuck


def test_a_slower_model_polls_later_and_is_stuck_later():
    slow = ModelSpec(id="slow-model", schema="x.json", generation_s={5: (300.0, 600.0)})
    assert slow.poll_factor(5) == 5.0
    assert slow.stuck_factor(5) == 5.0
    fast = ModelSpec(id="fast-model", schema="x.json", generation_s={5: (15.0, 30.0)})
    assert fast.poll_factor(10) == 0.25  # nearest shorter row
    assert fast.stuck_factor(5) == 1.0  # never shorter than Kling 2.1's


@pytest.mark.parametrize("bad", ["", "_kling", "a/b", "x" * 65, "../etc", "a b", "é"])
def test_a_model_id_is_one_safe_path_segment(bad):
    with pytest.raises(SpecError):
        ModelSpec(id=bad, schema="x.json")


def test_a_model_id_may_be_camel_case_as_apixo_spells_it():
    assert ModelSpec(id="happyHorse", schema="x.json").submit_path == "/generateTask/happyHorse"


def test_register_refuses_to_replace_a_built_in_by_accident():
    other = ModelSpec(id="kling-2-1", schema="other.json")
    with pytest.raises(SpecError, match="already registered"):
        models.register(other)
    assert models.get("kling-2-1").schema == "kling-2-1.request.schema.json"


def test_a_spec_file_and_the_environment_variable(tmp_path, monkeypatch):
    (tmp_path / "m.schema.json").write_text(
        json.dumps({"type": "object", "required": ["input"]}), encoding="utf-8"
    )
    spec_file = tmp_path / "m.json"
    spec_file.write_text(
        json.dumps({"id": "env-model", "schema": "m.schema.json", "generation_s": {"5": [6, 9]}}),
        encoding="utf-8",
    )
    spec = spec_from_file(spec_file)
    assert spec.schema == str(tmp_path / "m.schema.json")
    assert spec.generation_s == {5: (6.0, 9.0)}
    monkeypatch.setenv(models.ENV_VAR, str(spec_file))
    try:
        assert "env-model" in models.known()
        assert validate_request({"input": {}}, "env-model") == []
        assert [i.path for i in validate_request({}, "env-model")] == ["input"]
    finally:
        models.unregister("env-model")


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"id": "m"}, "with 'id' and 'schema'"),
        ({"id": "m", "schema": "missing.json"}, "does not exist"),
        ({"id": "m", "schema": "s.json", "colour": 1}, "unknown key"),
        ({"id": "m", "schema": "s.json", "generation_s": {"5": 3}}, "wrong shape"),
        ({"id": "M!", "schema": "s.json"}, "model id"),
    ],
)
def test_a_bad_spec_file_is_a_clear_error(tmp_path, doc, message):
    (tmp_path / "s.json").write_text("{}", encoding="utf-8")
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(SpecError, match=message):
        spec_from_file(path)


# --- the state file --------------------------------------------------------------------------


def _v1_state(tmp_path: Path) -> Path:
    """A state file as the previous version wrote it (tests/data/state-v1.sql is its dump)."""
    path = tmp_path / "batchgen.db"
    db = sqlite3.connect(path)
    db.executescript((DATA / "state-v1.sql").read_text(encoding="utf-8"))
    db.close()
    return path


def test_a_state_file_of_version_1_is_migrated(tmp_path):
    path = _v1_state(tmp_path)
    store = st.Store(path, readonly=True)  # status and report read it as it is
    assert store.get_meta("schema_version") == "1"
    assert store.jobs.get("job-0").model == "kling-2-1"  # type: ignore[union-attr]
    store.close()
    store = st.Store(path)
    assert store.get_meta("schema_version") == str(st.SCHEMA_VERSION)
    assert store.jobs.models() == {"kling-2-1": 3}
    flying = store.jobs.get("job-2")
    assert flying is not None and (flying.state, flying.task_id) == (st.IN_FLIGHT, "task_v1_0003")
    assert flying.model == "kling-2-1"
    # The same manifest again: nothing changed. A Kling 2.5 job joins the same batch.
    bodies = [(r.id, r.model, r.body_dict()) for r in store.jobs.in_state(st.PENDING)]
    turbo = {"input": {"mode": "text-to-video", "prompt": "a fox", "duration": 5}}
    sync = store.jobs.sync([*bodies, ("turbo-1", "kling-2-5-turbo-pro", turbo)])
    assert (sync.added, sync.unchanged, sync.changed) == (1, 2, [])
    assert store.jobs.models() == {"kling-2-1": 3, "kling-2-5-turbo-pro": 1}
    assert store.jobs.get("turbo-1").model == "kling-2-5-turbo-pro"  # type: ignore[union-attr]
    store.close()
    assert st.Store(path).get_meta("schema_version") == str(st.SCHEMA_VERSION)  # idempotent


def test_a_job_moved_to_another_model_counts_as_changed(tmp_path):
    store = st.Store(tmp_path / "s.db")
    body = {"input": {"mode": "text-to-video", "prompt": "a fox", "duration": 5}}
    store.jobs.sync([("a", "kling-2-1", body)])
    assert store.jobs.sync([("a", "kling-2-5-turbo-pro", body)]).changed == ["a"]
    assert store.jobs.get("a").model == "kling-2-1"  # type: ignore[union-attr]
    sync = store.jobs.sync([("a", "kling-2-5-turbo-pro", body)], resubmit_changed=True)
    assert sync.resubmitted == ["a"]
    assert store.jobs.get("a").model == "kling-2-5-turbo-pro"  # type: ignore[union-attr]
