"""ModelSpec: everything that differs between APIXO models, as data.

APIXO serves every model through one task API (`POST /generateTask/<id>`, `GET
/statusTask/<id>`, the same envelopes, fail codes and account limits), so a model is only:
its request schema, its id in the path, the manifest spellings it accepts, how long it takes,
what a report shows of a job, and (for the money issue) its prices. A new model is one spec and
one schema file; engine, store and client never name a model.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

MODEL_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
"""A model id is one path segment of the API's URL: nothing a server could read otherwise.
Capitals are allowed because APIXO spells some ids in camelCase (`happyHorse`)."""

REFERENCE_GENERATION_S = (60.0, 120.0)
"""Kling 2.1's documented fastest and slowest generation (5 s video: 60 s, 10 s video: 120 s).
The run's options are written against it: `--poll-after 60` is the earliest finish, and the
stuck rule is 30x the slowest. A model's own table scales both (see `poll_factor`)."""


class SpecError(ValueError):
    """A model spec (or its file) is not usable; the message says why and where."""


@dataclass(frozen=True)
class ModelSpec:
    """One model. `schema` is a file name in batchgen's `schemas/` or an absolute path.

    `generation_s` maps a video duration (s) to the expected (fastest, slowest) generation time
    in seconds; `aliases` maps a list field to the manifest keys that spell its items one by one
    (Kling: `image_url`, `end_image_url` -> `image_urls`); `display` names the `input` fields the
    report and gallery show; `prices` is left to the billing code (issue 19): any mapping it
    defines, None when unknown."""

    id: str
    schema: str
    title: str = ""
    generation_s: Mapping[int | str, tuple[float, float]] = field(
        default_factory=lambda: {5: (60.0, 90.0), 10: (90.0, 120.0)}
    )
    aliases: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    display: tuple[str, ...] = ("mode", "duration", "aspect_ratio")
    prices: Mapping[str, Any] | None = None
    # Where the rules come from, so they can be checked again: the page(s) and the version
    # of the page built to (../shared/apixo-video-models.md labels them A to E).
    source: str = ""
    doc_version: str = ""
    # Ids APIXO used before (wan-2-5 -> wan-2-5-video): accepted in manifests, and said so.
    former_ids: tuple[str, ...] = ()
    # The input field `generation_s` is keyed by: "duration" (seconds), "resolution" ("720p"),
    # or "" for one row ("*") whatever the job asks.
    generation_key: str = "duration"
    generation_note: str = ""  # where the times come from, or "not documented: assumed ..."
    # Prices: "video" (a "MODE:DURATION" or "MODE" key is the price of one task) or "second"
    # ("MODE" is USD per second of video). `durations` lists each mode's (or "*"'s) durations,
    # written [5, 10] or "3-15", so per-mode and per-second prices expand to price classes.
    price_unit: str = "video"
    price_note: str = ""
    durations: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    # A model that builds on another model's task (veo-3-1-extend): the input field holding
    # the parent's APIXO task id, and the parent's model.
    parent_field: str = ""
    parent_model: str = ""
    # What local videos in `video_urls` must be (batchgen/core/media.py VideoLimits.of):
    # formats, seconds each and in total, bytes; empty: any video batchgen can read.
    video_limits: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not MODEL_ID.fullmatch(self.id):
            raise SpecError(f"model id {self.id!r} must be 1 to 64 of A-Z, a-z, 0-9, '.', '_', '-'")
        if not self.generation_s:
            raise SpecError(f"model {self.id}: generation_s needs at least one row")
        for key, span in self.generation_s.items():
            lo, hi = span
            if not (isinstance(key, int | str) and 0 < lo <= hi):
                raise SpecError(f"model {self.id}: generation_s[{key!r}] must be 0 < lo <= hi")
        if self.price_unit not in ("video", "second"):
            raise SpecError(f"model {self.id}: price_unit must be 'video' or 'second'")

    def price_table(self) -> dict[str, str]:
        """The prices as "MODE:DURATION" -> USD text, per-mode and per-second entries expanded
        over the mode's durations. A model without durations (veo-3-1) is priced under 5 s,
        the class a job without a duration falls in (batchgen/money/prices.py: price_key)."""
        out: dict[str, str] = {}
        for name, usd in (self.prices or {}).items():
            mode, sep, duration = str(name).rpartition(":")
            if sep and duration.isdigit():
                out[str(name)] = str(usd)
                continue
            mode = str(name)
            for seconds in self.durations.get(mode, self.durations.get("*", ())) or (5,):
                if self.price_unit == "second":
                    out[f"{mode}:{seconds}"] = str(Decimal(str(usd)) * seconds)
                else:
                    out[f"{mode}:{seconds}"] = str(usd)
        return out

    @property
    def submit_path(self) -> str:
        return f"/generateTask/{self.id}"

    @property
    def status_path(self) -> str:
        return f"/statusTask/{self.id}"

    @property
    def alias_names(self) -> frozenset[str]:
        return frozenset(name for names in self.aliases.values() for name in names)

    def generation(self, duration: Any) -> tuple[float, float]:
        """The expected (fastest, slowest) generation time of a video of `duration` seconds:
        its row, else the nearest shorter one, else the shortest (an odd duration is the
        schema's business, not the scheduler's). A table keyed by another field answers with
        its whole span: the engine knows a job's duration only."""
        table = self.generation_s
        if self.generation_key != "duration" or not all(isinstance(k, int) for k in table):
            return self._span()
        if isinstance(duration, int) and duration in table:
            return table[duration]
        keys = sorted(table)  # type: ignore[type-var]
        shorter = [k for k in keys if isinstance(duration, int | float) and k <= duration]
        return table[shorter[-1] if shorter else keys[0]]

    def generation_for(self, inp: Mapping[str, Any]) -> tuple[float, float]:
        """The expected generation time of a job with these `input` fields: by the field the
        table is keyed by (the simulator and the estimate know the whole body)."""
        if self.generation_key == "duration" or not self.generation_key:
            return self.generation(inp.get("duration"))
        row = self.generation_s.get(inp.get(self.generation_key))  # type: ignore[arg-type]
        return row if row is not None else self._span()

    def _span(self) -> tuple[float, float]:
        rows = list(self.generation_s.values())
        return (min(lo for lo, _ in rows), max(hi for _, hi in rows))

    def poll_factor(self, duration: Any) -> float:
        """The first poll's delay as a multiple of `--poll-after` (Kling 2.1: 1 for 5 s
        videos, 1.5 for 10 s): polling before the earliest finish is a wasted request."""
        return self.generation(duration)[0] / REFERENCE_GENERATION_S[0]

    def stuck_factor(self, duration: Any) -> float:
        """The stuck rule as a multiple of `--stuck-after`: never shorter than for Kling 2.1,
        longer for a model documented as slower than its slowest (120 s)."""
        return max(1.0, self.generation(duration)[1] / REFERENCE_GENERATION_S[1])

    def schema_path(self, schema_dir: Path) -> Path:
        path = Path(self.schema)
        return path if path.is_absolute() else schema_dir / path
