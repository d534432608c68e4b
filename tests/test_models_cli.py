"""`batchgen models`: every model with its modes, fields, prices and generation times, the
not-yet models with why, and one model in full as JSON for scripts."""

from __future__ import annotations

import json
from pathlib import Path

from batchgen import models
from batchgen.cli import main

TOY = Path(__file__).resolve().parent / "toymodel" / "toy-clip.spec.json"


def test_the_list_names_every_model_and_every_not_yet_one(capsys) -> None:
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for model_id in models.known():
        assert f"\n{model_id} " in "\n" + out
    assert "wan-2-7-video" in out and "not supported yet" in out
    assert "veo-3-1                quality, fast; prices known; 90-150 s" in out


def test_one_model_as_json_holds_modes_fields_prices_and_times(capsys) -> None:
    assert main(["models", "ltx-2-19b", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["modes"] == ["text-to-video", "image-to-video", "text-to-video-LoRA",
                             "image-to-video-LoRA"]  # fmt: skip
    duration = info["fields"]["duration"]
    assert duration == {"type": "integer", "min": 5, "max": 20, "default": 10, "required": True}
    assert info["fields"]["image_urls"]["required"] == [
        {"mode": ["image-to-video", "image-to-video-LoRA"]}
    ]
    refused = info["fields"]["loras"]["refused_when"]
    assert refused == [{"mode": ["text-to-video", "image-to-video"]}]
    assert info["generation_s"]["key"] == "resolution"
    assert info["generation_s"]["rows"]["480p"] == [40.0, 60.0]
    assert info["prices"]["usd"] == {} and "not documented" in info["prices"]["note"]
    assert info["source"].startswith("https://apixo.ai/") and info["doc_version"] == "E"


def test_the_text_of_one_model_shows_rules_and_prices(capsys) -> None:
    assert main(["models", "veo-3-1"]) == 0
    out = capsys.readouterr().out
    assert "when generationType REFERENCE_2_VIDEO: needs image_urls; image_urls 1-3 items" in out
    assert "fast:5 $0.20, quality:5 $1.50" in out


def test_a_former_id_shows_today_s_model_and_an_unknown_one_exits_2(capsys) -> None:
    assert main(["models", "wan-2-5", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["id"] == "wan-2-5-video"
    assert main(["models", "wan-2-7-video"]) == 2
    assert "not supported yet" in capsys.readouterr().err


def test_a_user_added_model_is_listed(monkeypatch, capsys) -> None:
    monkeypatch.setenv(models.ENV_VAR, str(TOY))
    try:
        assert main(["models", "--json"]) == 0
        ids = [m["id"] for m in json.loads(capsys.readouterr().out)["models"]]
        assert "toy-clip" in ids
    finally:
        models.unregister("toy-clip")


def test_the_models_page_lists_every_model_and_every_not_yet_one() -> None:
    """docs/models.md is written by hand (a line on what is particular to each model); the
    reference page beside it is generated from the specs."""
    page = (Path(__file__).resolve().parents[1] / "docs" / "models.md").read_text(encoding="utf-8")
    for model_id in [*models.known(), *models.NOT_YET]:
        assert f"`{model_id}`" in page, model_id
