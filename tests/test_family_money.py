"""Durations as lists or ranges, prices per video or per second, and generation times per model:
what the estimate, the spend cap and the poll schedule read for each model of the family."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

from batchgen import models
from batchgen.cli import main
from batchgen.manifest import requests_for
from batchgen.models.base import ModelSpec
from batchgen.models.specfile import durations_of, spec_from_file
from batchgen.money.prices import PriceBook, table_prices, unknown_prices
from batchgen.simulator.billing import Billing
from batchgen.simulator.config import SimConfig
from batchgen.simulator.tasks import draw_task


def test_durations_are_written_as_lists_or_ranges() -> None:
    assert durations_of([5, 10]) == (5, 10)
    assert durations_of("3-6") == (3, 4, 5, 6)
    assert models.get("vidu-q3").durations["*"] == tuple(range(1, 17))
    assert models.get("hailuo-2-3").durations["pro-text-to-video"] == (5,)


def test_a_per_second_price_becomes_a_price_per_duration(tmp_path: Path) -> None:
    (tmp_path / "s.json").write_text("{}")
    spec_file = tmp_path / "per-second.spec.json"
    spec_file.write_text(
        json.dumps({"id": "per-second", "schema": "s.json", "price_unit": "second",
                    "prices": {"t2v": "0.05"}, "durations": {"*": "4-6"}})
    )  # fmt: skip
    spec = spec_from_file(spec_file)
    assert spec.price_table() == {"t2v:4": "0.20", "t2v:5": "0.25", "t2v:6": "0.30"}


def test_veo_is_priced_per_video_as_its_pages_say() -> None:
    assert table_prices("veo-3-1") == {("fast", 5): 200_000, ("quality", 5): 1_500_000}
    book = PriceBook()
    assert book.price("veo-3-1/quality/5s") == 1_500_000  # a job without a duration: the 5 s class
    body = {"input": {"mode": "fast", "prompt": "p", "generationType": "TEXT_2_VIDEO"}}
    assert Billing(None, "", False).price(body, "veo-3-1") == Decimal("0.20")


def test_the_estimate_names_the_models_whose_prices_are_unknown(tmp_path: Path, capsys) -> None:
    jobs = [
        {"model": "veo-3-1", "mode": "fast", "prompt": "p", "generationType": "TEXT_2_VIDEO"},
        {"model": "hailuo-2-3", "mode": "standard-text-to-video", "prompt": "p", "duration": 6},
        {"model": "kling-2-1", "mode": "master-text-to-video", "prompt": "p", "duration": 5,
         "aspect_ratio": "1:1"},
    ]
    path = tmp_path / "m.yaml"
    path.write_text(json.dumps({"jobs": jobs}))
    assert main(["validate", str(path)]) == 0
    out = capsys.readouterr().out
    assert "prices unknown for hailuo-2-3:" in out
    assert unknown_prices([("veo-3-1", "fast", None), ("sora-2", "text-to-video", 8)]) == ["sora-2"]


def test_generation_times_are_read_by_the_field_the_page_keys_them_by() -> None:
    ltx = models.get("ltx-2-19b")
    assert ltx.generation_for({"resolution": "480p", "duration": 10}) == (40.0, 60.0)
    assert ltx.generation_for({"resolution": "1080p"}) == (40.0, 90.0)  # cut off: the whole span
    assert ltx.generation(10) == (40.0, 90.0)  # the engine knows a duration only
    seed = models.get("seedance-1-5-pro")
    assert seed.generation(8) == (60.0, 90.0) and seed.poll_factor(4) == 40 / 60
    veo = models.get("veo-3-1")
    assert veo.generation(None) == veo.generation_for({}) == (90.0, 150.0)
    assert veo.stuck_factor(None) == 150 / 120  # waits longer than Kling before calling it stuck
    sora = models.get("sora-2")
    assert sora.poll_factor(4) == 2.0  # first poll at 2 minutes, as its pages advise


def test_the_request_estimate_follows_each_model_s_time() -> None:
    fast = {"input": {"mode": "text-to-video", "resolution": "480p", "duration": 10}}
    slow = {"input": {"mode": "text-to-video", "resolution": "720p", "duration": 10}}
    assert requests_for(fast, "ltx-2-19b") < requests_for(slow, "ltx-2-19b")
    sora = {"input": {"mode": "text-to-video", "duration": 4}}
    assert requests_for(sora, "sora-2") > requests_for(sora, "kling-2-1")


def test_the_simulator_takes_each_model_s_own_time() -> None:
    config = SimConfig(time_scale=1.0, seed=7)
    body = {"input": {"mode": "text-to-video", "prompt": "p", "resolution": "480p"}}
    for n in range(20):
        task = draw_task(config, f"t{n}", body, 0.0, 0, 0, "ltx-2-19b")
        if task.fail_code is None:
            assert 40.0 <= task.end_s <= 60.0 + 10.0  # generation, plus at most the pending time


def test_every_spec_records_its_source_and_version() -> None:
    for model_id in models.known():
        spec = models.get(model_id)
        if model_id.startswith("kling-2-"):
            continue  # Kling 2.1 and 2.5 Turbo Pro: their own reference files
        assert spec.source.startswith("https://apixo.ai/") and spec.doc_version in "CDE", model_id
        assert spec.generation_note and spec.price_note, model_id


def test_a_spec_s_durations_agree_with_its_schema() -> None:
    from batchgen.manifest.schema import request_schema

    for model_id in models.known():
        spec = models.get(model_id)
        field = request_schema(model_id)["properties"]["input"]["properties"].get("duration")
        if field is None or not spec.durations:
            continue
        allowed = set(field.get("enum") or range(field["minimum"], field["maximum"] + 1))
        for mode, seconds in spec.durations.items():
            if mode.startswith("pro-"):
                continue  # hailuo pro: a fixed length, and no duration field sent
            assert set(seconds) <= allowed, (model_id, mode)
    assert isinstance(ModelSpec(id="x", schema="x").durations, dict)
