"""`batchgen models [MODEL] [--json]`: every model batchgen can send, with its modes, fields,
prices and generation times, and the APIXO models it lists as not supported yet (and why)."""

from __future__ import annotations

import argparse
import json
import sys

from batchgen import models
from batchgen.errors import UsageError
from batchgen.manifest.modelinfo import describe, field_line, rule_line


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "models",
        help="list the models, or show one: modes, fields, prices, generation times",
        description="Every model batchgen knows (built in, or named in BATCHGEN_MODEL_SPECS).",
    )
    parser.add_argument("model", nargs="?", metavar="MODEL", help="show this model in full")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.set_defaults(handler=run)
    return parser


def run(args: argparse.Namespace) -> int:
    out = sys.stdout
    if args.model is not None:
        try:
            info = describe(args.model)
        except KeyError as exc:
            raise UsageError(str(exc.args[0])) from None
        out.write(json.dumps(info, indent=2) + "\n" if args.json else _text(info))
        return 0
    infos = [describe(m) for m in models.known()]
    if args.json:
        doc = {"models": infos, "not_yet": dict(models.NOT_YET)}
        out.write(json.dumps(doc, indent=2) + "\n")
        return 0
    for info in infos:
        out.write(_summary(info) + "\n")
    for model_id, why in sorted(models.NOT_YET.items()):
        out.write(f"{model_id:<22} not supported yet: {why}\n")
    return 0


def _summary(info: dict) -> str:
    price = "prices known" if info["prices"]["usd"] else "prices unknown"
    lo = min(v[0] for v in info["generation_s"]["rows"].values())
    hi = max(v[1] for v in info["generation_s"]["rows"].values())
    return f"{info['id']:<22} {', '.join(info['modes'])}; {price}; {lo:.0f}-{hi:.0f} s to generate"


def _text(info: dict) -> str:
    lines = [
        f"{info['id']}: {info['title']}",
        f"  endpoints:  {info['endpoints']['submit']}, {info['endpoints']['status']}",
        f"  source:     {info['source'] or '(not recorded)'}"
        + (f" (version {info['doc_version']})" if info["doc_version"] else ""),
    ]
    if info["former_ids"]:
        lines.append(f"  former ids: {', '.join(info['former_ids'])} (accepted, sent as this id)")
    lines.append(f"  modes:      {', '.join(info['modes'])}")
    provider = info["provider"]
    lines.append(f"  provider:   {'|'.join(provider.get('values', [])) or provider.get('type')}")
    lines.append("  fields (input):")
    lines += [f"    {field_line(name, f)}" for name, f in info["fields"].items()]
    if info["rules"]:
        lines.append("  rules:")
        lines += [f"    {rule_line(r)}" for r in info["rules"]]
    if info["durations"]:
        shown = "; ".join(f"{m}: {_span(d)}" for m, d in info["durations"].items())
        lines.append(f"  durations:  {shown}")
    if info["continues"]:
        cont = info["continues"]
        lines.append(
            f"  continues:  a {cont['model']} task named in {cont['field']}"
            " (write `extends: JOB_ID` in a manifest)"
        )
    if info["local_videos"]:
        lines.append(f"  videos:     local files in video_urls: {info['local_videos']}")
    prices = info["prices"]
    table = ", ".join(f"{k} ${v}" for k, v in prices["usd"].items()) or "none"
    lines.append(f"  prices:     {table} (per task; {prices['note']})")
    gen = info["generation_s"]
    rows = ", ".join(f"{k}: {v[0]:.0f}-{v[1]:.0f} s" for k, v in gen["rows"].items())
    lines.append(f"  generation: by {gen['key']}: {rows} ({gen['note']})")
    return "\n".join(lines) + "\n"


def _span(seconds: list[int]) -> str:
    if len(seconds) > 2 and seconds == list(range(seconds[0], seconds[-1] + 1)):
        return f"{seconds[0]}-{seconds[-1]} s"
    return ", ".join(map(str, seconds)) + " s"
