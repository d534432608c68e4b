"""Table-driven: invalid manifests (YAML and CSV), each with its message and its place."""

from __future__ import annotations

import pytest

from batchgen.errors import ManifestError
from batchgen.manifest import load_manifest

OK_JOB = "  - {id: a, prompt: hi, duration: 5, image_urls: ['https://x.com/a.jpg']}\n"

# (file name, content, where, json_path, words in the message)
CASES = [
    # --- YAML: request rules, placed at the line of the value -------------------------------
    (
        "m.yaml",
        "jobs:\n  - prompt: hi\n    duration: 7\n    image_url: https://x.com/a.jpg\n",
        "m.yaml:3",
        "jobs[0].duration",
        "duration must be 5 or 10 (seconds), got 7",
    ),
    (
        "m.yaml",
        "jobs:\n  - mode: pro-image-to-video\n    prompt: hi\n    duration: 5\n"
        "    image_urls: [https://x.com/1.jpg, https://x.com/2.jpg, https://x.com/3.jpg]\n",
        "m.yaml:5",
        "jobs[0].image_urls",
        "pro-image-to-video takes 1 or 2 images, got 3",
    ),
    (
        "m.yaml",
        "jobs:\n  - input:\n      mode: pro-image-to-video\n      prompt: hi\n"
        "      duration: 5\n      image_urls: [https://x.com/1.jpg, https://x.com/2.jpg,"
        " https://x.com/3.jpg]\n",
        "m.yaml:6",
        "jobs[0].input.image_urls",
        "pro-image-to-video takes 1 or 2 images, got 3",
    ),
    (
        "m.yaml",
        "jobs:\n  - promt: hi\n    duration: 5\n    image_url: https://x.com/a.jpg\n",
        "m.yaml:2",
        "jobs[0].promt",
        "unknown field 'promt'; did you mean 'prompt'?",
    ),
    (
        "m.yaml",
        "jobs:\n  - input: {promt: hi, duration: 5, image_urls: ['https://x.com/a.jpg']}\n",
        "m.yaml:2",
        "jobs[0].input.promt",
        "did you mean 'prompt'?",
    ),
    (
        "m.yaml",
        "jobs:\n  - duration: 5\n    image_url: https://x.com/a.jpg\n",
        "m.yaml:2",
        "jobs[0].input.prompt",
        "is required",
    ),
    (
        "m.yaml",
        "jobs:\n  - prompt: hi\n    duration: 5\n",
        "m.yaml:2",
        "jobs[0].input.image_urls",
        "is required with standard-image-to-video",
    ),
    (
        "m.yaml",
        "jobs:\n  - {prompt: hi, duration: 5, mode: master-text-to-video}\n",
        "m.yaml:2",
        "jobs[0].input.aspect_ratio",
        "is required with master-text-to-video",
    ),
    (
        "m.yaml",
        "jobs:\n  - prompt: hi\n    duration: 5\n    image_url: https://x.com/a.jpg\n"
        "    aspect_ratio: '16:9'\n",
        "m.yaml:5",
        "jobs[0].aspect_ratio",
        "only accepted with master-text-to-video",
    ),
    (
        "m.yaml",
        "jobs:\n  - prompt: ''\n    duration: 5\n    image_url: https://x.com/a.jpg\n",
        "m.yaml:2",
        "jobs[0].prompt",
        "1 to 5000 characters, got 0 characters",
    ),
    (
        "m.yaml",
        "jobs:\n  - prompt: hi\n    duration: 5\n    cfg_scale: 0.25\n"
        "    image_url: https://x.com/a.jpg\n",
        "m.yaml:4",
        "jobs[0].cfg_scale",
        "0 to 1 in steps of 0.1, got 0.25",
    ),
    (
        "m.yaml",
        "jobs:\n  - prompt: hi\n    duration: 5\n    provider: cheap\n"
        "    image_url: https://x.com/a.jpg\n",
        "m.yaml:4",
        "jobs[0].provider",
        "got 'cheap'",
    ),
    (
        "m.yaml",
        "jobs:\n  - prompt: hi\n    duration: 5\n    request_type: callback\n"
        "    image_url: https://x.com/a.jpg\n",
        "m.yaml:2",
        "jobs[0].callback_url",
        "required when request_type is 'callback'",
    ),
    (
        "m.yaml",
        # a local file is allowed now (issue 17), but only an image
        "jobs:\n  - prompt: hi\n    duration: 5\n    image_url: file:///etc/passwd\n",
        "m.yaml:4",
        "jobs[0].image_url",
        "/etc/passwd is not a JPG, PNG or WebP image",
    ),
    (
        "m.yaml",
        "jobs:\n  - prompt: hi\n    duration: 5\n    end_image_url: https://x.com/b.jpg\n",
        "m.yaml:4",
        "jobs[0].end_image_url",
        "needs image_url",
    ),
    (
        "m.yaml",
        "defaults:\n  provider: cheap\njobs:\n" + OK_JOB,
        "m.yaml:2",
        "defaults.provider",
        "got 'cheap' (in jobs[0])",
    ),
    # --- YAML: ids, repeat, manifest shape --------------------------------------------------
    (
        "m.yaml",
        "jobs:\n" + OK_JOB + OK_JOB,
        "m.yaml:3",
        "jobs[1].id",
        "id 'a' is already used at m.yaml:2",
    ),
    (
        "m.yaml",
        "jobs:\n  - {id: 'a b', prompt: hi, duration: 5, image_url: 'https://x.com/a'}\n",
        "m.yaml:2",
        "jobs[0].id",
        "letters, digits",
    ),
    (
        "m.yaml",
        "jobs:\n  - {id: a, repeat: 0, prompt: hi, duration: 5, image_url: 'https://x.com/a'}\n",
        "m.yaml:2",
        "jobs[0].repeat",
        "from 1 to 1000, got 0",
    ),
    (
        "m.yaml",
        "jobs:\n  - {id: a, repaet: 2, prompt: hi, duration: 5, image_url: 'https://x.com/a'}\n",
        "m.yaml:2",
        "jobs[0].repaet",
        "did you mean 'repeat'?",
    ),
    ("m.yaml", "version: 2\njobs:\n" + OK_JOB, "m.yaml:1", "version", "version must be 1, got 2"),
    (
        "m.yaml",
        "jobs:\n" + OK_JOB + "job_csv: x.csv\n",
        "m.yaml:3",
        "job_csv",
        "did you mean 'jobs_csv'?",
    ),
    ("m.yaml", "model: kling-9\njobs:\n" + OK_JOB, "m.yaml:1", "model", "unknown model 'kling-9'"),
    ("m.yaml", "jobs:\n  - just a string\n", "m.yaml:2", "jobs[0]", "a job must be a mapping"),
    ("m.yaml", "jobs: {}\n", "m.yaml:1", "jobs", "jobs must be a list"),
    ("m.yaml", "name: x\n", "m.yaml", "jobs", "the manifest has no jobs"),
    (
        "m.yaml",
        "jobs:\n" + OK_JOB + "output: {filename: '{name}.mp4'}\n",
        "m.yaml:3",
        "output.filename",
        "unknown placeholder {name}",
    ),
    (
        "m.yaml",
        "jobs:\n" + OK_JOB + "output: {filename: 'video.mp4'}\n",
        "m.yaml:3",
        "output.filename",
        "must contain {id}",
    ),
    (
        "m.yaml",
        "jobs:\n" + OK_JOB + "output: {filename: '../{id}.mp4'}\n",
        "m.yaml:3",
        "output.filename",
        "inside output.dir",
    ),
    (
        "m.yaml",
        "jobs:\n" + OK_JOB + "output: {dir: out, fomat: x}\n",
        "m.yaml:3",
        "output.fomat",
        "unknown field 'fomat'",
    ),
    (
        "m.yaml",
        "defaults:\n  id: x\njobs:\n" + OK_JOB,
        "m.yaml:2",
        "defaults.id",
        "belongs to each job",
    ),
    (
        "m.yaml",
        "jobs:\n  - prompt: hi\n    prompt: again\n",
        "m.yaml:3",
        "jobs[0].prompt",
        "duplicate key",
    ),
    (
        "m.yaml",
        "jobs:\n  - {prompt: hi, input: {prompt: ho}, duration: 5, image_url: 'https://x.com/a'}\n",
        "m.yaml:2",
        "jobs[0].prompt",
        "given twice",
    ),
    ("m.yaml", "jobs_csv: missing.csv\n", "m.yaml:1", "jobs_csv", "missing.csv: no such file"),
    # --- YAML: hostile or broken files -----------------------------------------------------
    ("m.yaml", "jobs: [\n", "m.yaml:2", "", "expected"),
    ("m.yaml", "jobs: !!python/object/apply:os.system [echo hi]\n", "m.yaml:1", "jobs", "tag"),
    ("m.yaml", "jobs: !custom 3\n", "m.yaml:1", "jobs", "YAML tag !custom is not allowed"),
    ("m.yaml", "a: &a [*a]\n", "m.yaml:1", "", "refers to its own anchor"),
    ("m.yaml", "- 1\n- 2\n", "m.yaml:1", "", "a manifest must be a mapping"),
    ("m.yaml", "", "m.yaml", "", "is empty"),
    ("m.txt", "jobs: []\n", "m.txt", "", "unknown manifest type"),
    # --- CSV --------------------------------------------------------------------------------
    (
        "m.csv",
        "prompt,duration,image_url\nhi,7,https://x.com/a.jpg\n",
        "m.csv: row 2, column duration",
        "input.duration",
        "must be 5 or 10 (seconds), got 7",
    ),
    (
        "m.csv",
        "prompt,duration,image_url\nhi,five,https://x.com/a.jpg\n",
        "m.csv: row 2, column duration",
        "input.duration",
        "got 'five'",
    ),
    (
        "m.csv",
        "prompt,duration,image_url,cfg_scale\nhi,5,https://x.com/a.jpg,high\n",
        "m.csv: row 2, column cfg_scale",
        "input.cfg_scale",
        "got 'high'",
    ),
    ("m.csv", "promt,duration\nhi,5\n", "m.csv: row 1, column promt", "", "did you mean 'prompt'?"),
    ("m.csv", "prompt,prompt\nhi,ho\n", "m.csv: row 1, column prompt", "", "appears twice"),
    (
        "m.csv",
        "mode,prompt,duration,image_urls\n"
        "pro-image-to-video,hi,5,https://x.com/1.jpg|https://x.com/2.jpg|https://x.com/3.jpg\n",
        "m.csv: row 2, column image_urls",
        "input.image_urls",
        "takes 1 or 2 images, got 3",
    ),
    (
        "m.csv",
        "prompt,duration,image_url,end_image_url\nhi,5,https://x.com/a.jpg,ftp://b\n",
        "m.csv: row 2, column end_image_url",
        "input.image_urls[1]",
        "http(s) URL",
    ),
    (
        "m.csv",
        "mode,prompt,duration\nmaster-text-to-video,hi,5\n",
        "m.csv: row 2, column aspect_ratio",
        "input.aspect_ratio",
        "is required with master-text",
    ),
    (
        "m.csv",
        "id,prompt,duration,image_url\na,hi,5,https://x.com/a\n\na,ho,5,https://x.com/b\n",
        "m.csv: row 4, column id",
        "id",
        "id 'a' is already used at m.csv: row 2",
    ),
    (
        "m.csv",
        "id,prompt,duration,image_url\n-a,hi,5,https://x.com/a\n",
        "m.csv: row 2, column id",
        "id",
        "starting with a letter or digit",
    ),
    (
        "m.csv",
        "prompt,duration,image_url,repeat\nhi,5,https://x.com/a,twice\n",
        "m.csv: row 2, column repeat",
        "",
        "'twice' is not a number",
    ),
    (
        "m.csv",
        "prompt,duration,image_url,repeat\nhi,5,https://x.com/a,0\n",
        "m.csv: row 2, column repeat",
        "repeat",
        "from 1 to 1000, got 0",
    ),
    (
        "m.csv",
        "prompt,duration\nhi,5,extra\n",
        "m.csv: row 2",
        "",
        "3 cells but the header names 2",
    ),
    (
        "m.csv",
        "prompt,duration,request_type,image_url\nhi,5,callback,https://x.com/a\n",
        "m.csv: row 2, column callback_url",
        "callback_url",
        "required when request_type",
    ),
    ("m.csv", "", "m.csv", "", "no header row"),
    ("m.csv", "prompt,duration\n", "m.csv", "jobs", "the manifest has no jobs"),
]


@pytest.mark.parametrize(("name", "content", "where", "path", "words"), CASES)
def test_invalid_manifest(tmp_path, name, content, where, path, words):
    file = tmp_path / name
    file.write_text(content, encoding="utf-8")
    with pytest.raises(ManifestError) as info:
        load_manifest(file)
    prefix = str(tmp_path) + "/"
    found = [
        (p.where.replace(prefix, ""), p.json_path, p.message.replace(prefix, ""))
        for p in info.value.problems
    ]
    assert any(w == where and p == path and words in m for w, p, m in found), found


def test_at_least_thirty_cases_in_both_formats():
    assert sum(1 for c in CASES if c[0].endswith(".yaml")) >= 30
    assert sum(1 for c in CASES if c[0].endswith(".csv")) >= 10


def test_all_problems_are_reported_at_once(tmp_path):
    file = tmp_path / "m.yaml"
    file.write_text(
        "jobs:\n  - {prompt: '', duration: 7, image_url: 'x'}\n  - {promt: a}\n"
        "output: {filename: '{nope}'}\n"
    )
    with pytest.raises(ManifestError) as info:
        load_manifest(file)
    paths = [p.json_path for p in info.value.problems]
    assert paths == [
        "jobs[0].image_url",  # 'x' is a path now (issue 17): a missing file, found first
        "jobs[0].duration",
        "jobs[0].prompt",
        "jobs[1].promt",
        "jobs[1].input.duration",
        "jobs[1].input.image_urls",
        "jobs[1].input.prompt",
        "output.filename",
    ]
    text = str(info.value)
    assert f"{file}:2: jobs[0].duration: duration must be 5 or 10 (seconds), got 7" in text
