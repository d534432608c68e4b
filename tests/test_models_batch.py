"""Kling 2.5 Turbo Pro beside Kling 2.1: its examples, its rules with their places, mixed
batches (YAML and CSV) run end to end, and a third model added without touching engine, store
or client code (tests/toymodel/)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from batchgen import models
from batchgen import store as st
from batchgen.cli import main
from batchgen.errors import ManifestError
from batchgen.manifest import load_manifest
from batchgen.manifest.schema import validate_request
from batchgen.runner import execute
from batchgen.simulator import Simulator
from tests.enginekit import KEY, SCALE, assert_files_verified, options, prepare_state, sha256_file

ROOT = Path(__file__).resolve().parent.parent
MANIFESTS = ROOT / "manifests"
TOY = Path(__file__).resolve().parent / "toymodel"
TURBO = "kling-2-5-turbo-pro"

# ../shared/apixo-kling-2-5-turbo-pro.md, "Example requests", verbatim.
TURBO_EXAMPLES = [
    json.loads(line)
    for line in (
        '{"request_type":"async","input":{"mode":"text-to-video","prompt":"a cinematic drone '
        'shot over snowy mountains at sunrise","duration":10,"aspect_ratio":"16:9",'
        '"negative_prompt":"low quality, jitter","cfg_scale":0.6}}',
        '{"request_type":"callback","callback_url":"https://your-server.com/callback",'
        '"provider":"official","input":{"mode":"image-to-video","prompt":"smooth camera '
        'transition from first to last frame","duration":5,"image_urls":'
        '["https://example.com/start.jpg","https://example.com/end.jpg"]}}',
        '{"request_type":"async","input":{"mode":"text-to-video","prompt":"a cinematic drone '
        'shot over snowy mountains at sunrise","duration":5,"aspect_ratio":"16:9"}}',
    )
]


def test_the_reference_examples_validate_and_are_printed_as_written(capsys):
    for body in TURBO_EXAMPLES:
        assert validate_request(body, TURBO) == []
    path = MANIFESTS / "kling-2-5-examples.yaml"
    assert main(["validate", "--print-requests", str(path)]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["body"] for line in lines] == TURBO_EXAMPLES
    # Sent as written: the same bytes as the reference, key order included.
    assert [json.dumps(x["body"]) for x in lines] == [json.dumps(b) for b in TURBO_EXAMPLES]
    assert {(x["model"], x["endpoint"]) for x in lines} == {
        (TURBO, "POST /generateTask/kling-2-5-turbo-pro")
    }


# --- invalid Kling 2.5 Turbo Pro jobs: each problem with its message and its place ------------

I2V = {
    "mode": "image-to-video",
    "prompt": "a fox",
    "duration": 5,
    "image_url": "https://x.io/a.jpg",
}
T2V = {"mode": "text-to-video", "prompt": "a fox", "duration": 5}

MODE = "mode must be text-to-video or image-to-video (Kling 2.5 Turbo Pro), got "
IMAGES = "image-to-video takes 1 or 2 images (start frame, then end frame), got "

INVALID = [
    # (the job, the key whose line the problem is on (None: the job's first line), path, message)
    ({**T2V, "prompt": "p" * 2501}, "prompt", "jobs[0].prompt",
     "prompt must be text of 1 to 2500 characters, got 2501 characters"),
    ({**T2V, "negative_prompt": "n" * 2501}, "negative_prompt", "jobs[0].negative_prompt",
     "negative_prompt must be text of at most 2500 characters, got 2501 characters"),
    ({**I2V, "aspect_ratio": "16:9"}, "aspect_ratio", "jobs[0].aspect_ratio",
     "aspect_ratio is only accepted with text-to-video (image-to-video follows its image)"),
    ({**T2V, "mode": "image-to-video", "image_urls": ["https://x.io/1.jpg"] * 3}, "image_urls",
     "jobs[0].image_urls", IMAGES + "3"),
    ({**T2V, "mode": "image-to-video"}, None, "jobs[0].input.image_urls",
     "is required with image-to-video"),
    ({**T2V, "duration": 7}, "duration", "jobs[0].duration",
     "duration must be 5 or 10 (seconds), got 7"),
    ({**T2V, "duration": "five"}, "duration", "jobs[0].duration",
     "duration must be 5 or 10 (seconds), got 'five'"),
    ({**I2V, "mode": "pro-image-to-video"}, "mode", "jobs[0].mode",
     MODE + "'pro-image-to-video'"),
    ({**T2V, "mode": "master-text-to-video"}, "mode", "jobs[0].mode",
     MODE + "'master-text-to-video'"),
    ({**T2V, "image_url": "https://x.io/a.jpg"}, "image_url", "jobs[0].image_url",
     "text-to-video takes no images, got 1"),
    ({**T2V, "cfg_scale": 1.5}, "cfg_scale", "jobs[0].cfg_scale",
     "cfg_scale must be a number from 0 to 1 in steps of 0.1, got 1.5"),
    ({**T2V, "cfg_scale": 0.25}, "cfg_scale", "jobs[0].cfg_scale",
     "cfg_scale must be a number from 0 to 1 in steps of 0.1, got 0.25"),
    ({**T2V, "aspect_ratio": "4:3"}, "aspect_ratio", "jobs[0].aspect_ratio",
     "aspect_ratio must be '16:9', '9:16' or '1:1', got '4:3'"),
    ({**T2V, "prompt": ""}, "prompt", "jobs[0].prompt",
     "prompt must be text of 1 to 2500 characters, got 0 characters"),
    ({"mode": "text-to-video", "duration": 5}, None, "jobs[0].input.prompt", "is required"),
    ({**I2V, "image_url": "ftp://x.io/a.jpg"}, "image_url", "jobs[0].image_url",
     "must be an http(s) URL of at most 2048 characters, got 'ftp://x.io/a.jpg'"),
    ({**T2V, "request_type": "callback"}, None, "jobs[0].callback_url",
     "is required when request_type is 'callback'"),
    ({**T2V, "provider": "cheap"}, "provider", "jobs[0].provider",
     "provider must be one of 'auto', 'value', 'official', got 'cheap'"),
    ({**T2V, "qualty": "high"}, "qualty", "jobs[0].qualty", "unknown field 'qualty'"),
    ({**{k: v for k, v in I2V.items() if k != "image_url"}, "end_image_url": "https://x.io/b.jpg"},
     "end_image_url", "jobs[0].end_image_url", "end_image_url needs image_url (the start frame)"),
    ({**T2V, "model": "kling-3"}, "model", "jobs[0].model",
     "unknown model 'kling-3'; known: grok-video, hailuo-2-3"),
]  # fmt: skip


@pytest.mark.parametrize(("job", "key", "path", "message"), INVALID)
def test_an_invalid_kling_2_5_job_is_named_at_its_place(tmp_path, job, key, path, message):
    manifest = tmp_path / "turbo.yaml"
    # One field per line after `jobs:` (line 3): the job starts on line 4.
    text = f"model: {TURBO}\nname: t\njobs:\n"
    keys = list(job)
    for i, k in enumerate(keys):
        text += ("  - " if i == 0 else "    ") + f"{k}: {json.dumps(job[k])}\n"
    manifest.write_text(text, encoding="utf-8")
    with pytest.raises(ManifestError) as caught:
        load_manifest(manifest)
    line = 4 + (keys.index(key) if key is not None else 0)
    found = [(p.where, p.json_path, p.message) for p in caught.value.problems]
    # An end frame without a start frame also leaves image-to-video without images: 2 problems.
    assert len(found) == (2 if key == "end_image_url" else 1), found
    where, got_path, got = found[0]
    assert (where, got_path) == (f"{manifest}:{line}", path)
    assert got.startswith(message), got


def test_an_unknown_model_is_exit_2_at_its_place_listing_the_known_ones(tmp_path, capsys):
    csv_path = tmp_path / "m.csv"
    csv_path.write_text(
        "model,mode,prompt,duration\nkling-2-5-turbo-pro,text-to-video,a fox,5\n"
        "kling-9-9,text-to-video,a fox,5\n",
        encoding="utf-8",
    )
    top = tmp_path / "top.yaml"
    top.write_text("name: x\nmodel: veo-3\njobs:\n  - {prompt: a, duration: 5}\n", encoding="utf-8")
    assert main(["validate", str(csv_path), str(top)]) == 2
    err = capsys.readouterr().err
    known = "known: grok-video, hailuo-2-3, hailuo-2-3-fast, happyHorse, kling-2-1, kling-2-5-"
    assert f"{csv_path}: row 3, column model: model: unknown model 'kling-9-9'; {known}" in err
    assert f"{top}:2: model: unknown model 'veo-3'; {known}" in err
    assert "Traceback" not in err


def test_one_prompt_under_two_models_gives_two_stable_ids(tmp_path):
    manifest = tmp_path / "m.yaml"
    job = "{mode: text-to-video, prompt: a fox, duration: 5, aspect_ratio: '1:1'}"
    old = "{mode: master-text-to-video, prompt: a fox, duration: 5, aspect_ratio: '1:1'}"
    manifest.write_text(
        f"jobs:\n  - {old}\n  - {{model: {TURBO}, {job[1:]}\n  - {{model: {TURBO}, {job[1:]}\n",
        encoding="utf-8",
    )
    first = load_manifest(manifest).jobs
    ids = [j.id for j in first]
    assert len(set(ids)) == 3
    assert ids[0].startswith("master-t2v-")  # Kling 2.1 ids stay as earlier versions made them
    assert ids[1].startswith(f"{TURBO}-t2v-") and ids[2] == ids[1] + ".2"
    assert [j.model for j in first] == ["kling-2-1", TURBO, TURBO]
    assert [j.id for j in load_manifest(manifest).jobs] == ids  # stable


# --- mixed batches, end to end ----------------------------------------------------------------


def _by_model(jobs) -> dict[str, int]:
    out: dict[str, int] = {}
    for job in jobs:
        out[job.model] = out.get(job.model, 0) + 1
    return out


@pytest.mark.parametrize("name", ["mixed-models.yaml", "mixed-models.csv"])
async def test_a_mixed_batch_sends_each_task_to_its_own_model(tmp_path, name):
    manifest = load_manifest(MANIFESTS / name)
    want = _by_model(manifest.jobs)
    assert set(want) == {"kling-2-1", TURBO}
    state = prepare_state(tmp_path, [(j.id, j.model, j.body) for j in manifest.jobs])
    async with Simulator(api_keys=frozenset({KEY}), time_scale=SCALE, seed=5) as sim:
        outcome = await execute(options(tmp_path, sim.base_url))
        stats = sim.stats()
        assert outcome.exit_code == 0
        assert assert_files_verified(sim, state, tmp_path / "out") == len(manifest.jobs)
    assert stats["tasks_by_model"] == want
    for model, n in want.items():
        assert stats["requests_by_model"][model]["submit"] == {"200": n}
        assert stats["requests_by_model"][model]["status"].get("404", 0) == 0
    report = [json.loads(x) for x in (tmp_path / "out" / "results.jsonl").read_text().splitlines()]
    assert {r["id"]: r["model"] for r in report} == {j.id: j.model for j in manifest.jobs}
    assert {r["status"] for r in report} == {"done"}


def test_a_mixed_batch_in_the_sandbox(tmp_path, capsys):
    out = tmp_path / "out"
    for name in ("mixed-models.yaml", "mixed-models.csv"):
        assert main(["run", str(MANIFESTS / name), "--sandbox", "--output", str(out / name)]) == 0
        state = out / name / "batchgen.db"
        store = st.Store(state, readonly=True)
        try:
            assert store.jobs.counts()[st.DONE] == 5
            rows = store.db.execute("SELECT seq, id, model FROM jobs").fetchall()
            for seq, _id, _model in rows:
                for f in store.jobs.files_of(seq):
                    assert sha256_file(out / name / str(f.path)) == f.sha256
        finally:
            store.close()
        # The in-process simulator's journal: the model at whose endpoint each task was made.
        journal = (out / name / "batchgen.db.sandbox.jsonl").read_text().splitlines()[1:]
        made = sorted(json.loads(line)["model"] for line in journal)
        assert made == sorted(model for _seq, _id, model in rows)
        assert set(made) == {"kling-2-1", TURBO}
        assert main(["gallery", str(state)]) == 0
        assert TURBO in (out / name / "gallery.html").read_text()


# --- a third model, from the test folder ------------------------------------------------------


@pytest.fixture
def toy_model():
    spec = models.register(models.spec_from_file(TOY / "toy-clip.spec.json"))
    yield spec
    models.unregister(spec.id)


def test_the_toy_model_validates_by_its_own_schema(toy_model, tmp_path):
    manifest = load_manifest(TOY / "toy.yaml")
    assert [(j.id, j.model) for j in manifest.jobs] == [
        ("toy-1", "toy-clip"),
        ("toy-2", "toy-clip"),
        ("kling-1", "kling-2-1"),
    ]
    assert manifest.jobs[1].body == {
        "input": {"style": "sketch", "prompt": "a sketched boat", "seconds": 6}
    }
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: toy-clip\njobs:\n  - prompt: x\n    seconds: 4\n", encoding="utf-8")
    with pytest.raises(ManifestError) as caught:
        load_manifest(bad)
    assert [(p.where, p.message) for p in caught.value.problems] == [
        (f"{bad}:4", "seconds must be 3 or 6, got 4")
    ]


async def test_the_toy_model_runs_end_to_end_and_is_in_the_report(toy_model, tmp_path):
    manifest = load_manifest(TOY / "toy.yaml")
    state = prepare_state(tmp_path, [(j.id, j.model, j.body) for j in manifest.jobs])
    async with Simulator(api_keys=frozenset({KEY}), time_scale=SCALE, seed=9) as sim:
        outcome = await execute(options(tmp_path, sim.base_url))
        stats = sim.stats()
        assert outcome.exit_code == 0
        assert assert_files_verified(sim, state, tmp_path / "out") == 3
    assert stats["tasks_by_model"] == {"toy-clip": 2, "kling-2-1": 1}
    assert stats["requests_by_model"]["toy-clip"]["submit"] == {"200": 2}
    report = [json.loads(x) for x in (tmp_path / "out" / "results.jsonl").read_text().splitlines()]
    assert [(r["id"], r["model"], r["status"]) for r in report] == [
        ("toy-1", "toy-clip", "done"),
        ("toy-2", "toy-clip", "done"),
        ("kling-1", "kling-2-1", "done"),
    ]


async def test_a_model_without_a_spec_is_404_at_the_simulator(sim, http):
    body = {"input": {"mode": "text-to-video", "prompt": "a fox", "duration": 5}}
    auth = {"Authorization": "Bearer sk-sim-demo"}
    async with http.post(f"{sim.base_url}/generateTask/kling-9", json=body, headers=auth) as r:
        assert r.status == 404
    async with http.post(f"{sim.base_url}/generateTask/{TURBO}", json=body, headers=auth) as r:
        assert r.status == 200
        task_id = (await r.json())["data"]["taskId"]
    # A task is known at its own model's status endpoint only.
    url = f"{sim.base_url}/statusTask/kling-2-1?taskId={task_id}"
    async with http.get(url, headers=auth) as r:
        assert r.status == 404
    async with http.get(url.replace("kling-2-1", TURBO), headers=auth) as r:
        assert r.status == 200
    # Kling 2.5's rules at its endpoint: a Kling 2.1 mode is refused there, accepted at 2.1's.
    old = {
        "input": {
            "mode": "master-text-to-video",
            "prompt": "a",
            "duration": 5,
            "aspect_ratio": "1:1",
        }
    }
    async with http.post(f"{sim.base_url}/generateTask/{TURBO}", json=old, headers=auth) as r:
        assert (await r.json())["code"] == 400
    async with http.post(f"{sim.base_url}/generateTask/kling-2-1", json=old, headers=auth) as r:
        assert (await r.json())["code"] == 200


async def test_a_task_is_billed_at_its_own_models_price(make_sim, http):
    prices = f"{TURBO}/text-to-video:5=0.30,master-text-to-video:5=1.00"
    sim = await make_sim(time_scale=0.001, prices=prices)
    auth = {"Authorization": "Bearer sk-sim-demo"}
    turbo = {"input": {"mode": "text-to-video", "prompt": "a fox", "duration": 5}}
    old = {"input": {**turbo["input"], "mode": "master-text-to-video", "aspect_ratio": "1:1"}}
    for model, body in ((TURBO, turbo), ("kling-2-1", old)):
        url = f"{sim.base_url}/generateTask/{model}"
        async with http.post(url, json=body, headers=auth) as r:
            assert (await r.json())["code"] == 200
    assert sim.stats()["billing"]["charged"] == 1.30


def test_a_user_adds_a_model_through_the_environment(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(models.ENV_VAR, str(TOY / "toy-clip.spec.json"))
    try:
        assert main(["validate", "--print-requests", str(TOY / "toy.yaml")]) == 0
    finally:
        models.unregister("toy-clip")
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [x["endpoint"] for x in lines] == ["POST /generateTask/toy-clip"] * 2 + [
        "POST /generateTask/kling-2-1"
    ]
    assert os.environ[models.ENV_VAR]  # untouched for the next command in the same shell
