"""`batchgen validate MANIFEST...`: check manifests without sending anything.

Prints a summary per manifest, or with `--print-requests` one JSON line per job,
`{"id": ..., "model": ..., "endpoint": "POST /generateTask/<model>", "body": {...}}`, holding
the exact body that would be POSTed and where. Every manifest is
checked before anything is printed; all their problems are reported together (exit 2).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections import Counter
from typing import TextIO

from batchgen import models
from batchgen.adapters.proxies import Proxies
from batchgen.commands.common import add_proxy_option
from batchgen.commands.images import warn_without_store
from batchgen.errors import ManifestError, ManifestProblem
from batchgen.manifest import (
    FIRST_POLL_S,
    POLL_EVERY_S,
    Manifest,
    estimate_requests,
    load_manifest,
    where,
)
from batchgen.money.prices import (
    MICROS,
    PriceBook,
    cost_by_mode,
    describe_costs,
    parse_key,
    to_micros,
    unknown_prices,
    usd,
)


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "validate",
        allow_abbrev=False,
        help="check manifests and show what would be sent",
        description="Check manifests (YAML or CSV) and report every problem with its place.",
    )
    parser.add_argument("manifests", nargs="+", metavar="MANIFEST", help="a .yaml or .csv file")
    parser.add_argument(
        "--print-requests",
        action="store_true",
        help='print one JSON line per job: {"id", "model", "endpoint", "body"}: the exact body '
        "to send and where",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object per manifest on stdout (jobs by model, mode and duration, "
        "estimated requests and cost in USD, where the run writes); problems stay on stderr",
    )
    parser.add_argument(
        "--check-images",
        action="store_true",
        help="also fetch the first bytes of every distinct remote image URL, as a run's "
        "preflight does (JPG, PNG or WebP, at most 10 MB, reachable); submits nothing. "
        "Local image files are always checked on disk, whole",
    )
    parser.add_argument(
        "--allow-private-result-hosts",
        action="store_true",
        help="with --check-images: fetch images from private or local addresses too",
    )
    parser.add_argument(
        "--no-proxy-env",
        action="store_true",
        help="with --check-images: ignore HTTP_PROXY, HTTPS_PROXY, ALL_PROXY and NO_PROXY and "
        "connect directly, as `run --no-proxy-env` does",
    )
    add_proxy_option(parser)
    parser.set_defaults(handler=run)
    return parser


def run(args: argparse.Namespace) -> int:
    manifests: list[Manifest] = []
    problems: list[ManifestProblem] = []
    for path in args.manifests:
        try:
            manifests.append(load_manifest(path))
        except ManifestError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ManifestError(problems)
    for old, new in models.former_used().items():
        note = f"note: model {old!r} is now {new!r} (APIXO renamed it): sent as {new}"
        print(note, file=sys.stderr)
    if args.check_images:
        _check_images(
            manifests,
            public_only=not args.allow_private_result_hosts,
            proxies=Proxies(enabled=not args.no_proxy_env, proxy=args.proxy),
        )
    out = sys.stdout
    for manifest in manifests:
        warn_without_store(manifest)
        if args.print_requests:
            print_requests(manifest, out)
        elif args.json:
            out.write(json.dumps(summary_json(manifest)) + "\n")
        else:
            out.write(summary(manifest) + "\n")
    out.flush()
    return 0


def _check_images(manifests: list[Manifest], *, public_only: bool, proxies: Proxies) -> None:
    """Every image problem at once (exit 2); Kling's size rules as warnings on stderr. Local
    files were read and decoded when the manifest loaded: only remote URLs go on the wire
    (a local file's reference, https://local.batchgen.invalid/..., resolves nowhere)."""
    import asyncio

    from batchgen.inputs.check_manifest import check_images, remote_urls
    from batchgen.inputs.local import is_ref

    urls = remote_urls(manifests, is_local=is_ref)
    problems, warnings = [], []
    if urls:
        problems, warnings = asyncio.run(
            check_images(urls, public_only=public_only, proxies=proxies)
        )
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if problems:
        raise ManifestError(problems)
    files = sum(len(m.local_images) for m in manifests)
    local = f", {files} local file(s) read and decoded" if files else ""
    print(f"images: {len(urls)} distinct URL(s) checked{local}, all usable", file=sys.stderr)


def print_requests(manifest: Manifest, out: TextIO) -> None:
    lines: list[str] = []
    for job in manifest.jobs:
        line = {
            "id": job.id,
            "model": job.model,
            "endpoint": f"POST {models.get(job.model).submit_path}",
            "body": job.body,
        }
        lines.append(json.dumps(line, separators=(", ", ": ")))
        if len(lines) >= 1000:
            out.write("\n".join(lines) + "\n")
            lines.clear()
    if lines:
        out.write("\n".join(lines) + "\n")


def summary(manifest: Manifest) -> str:
    jobs = manifest.jobs
    modes = Counter(str(job.body.get("input", {}).get("mode")) for job in jobs)
    by_model: dict[str, Counter[str]] = {}
    for job in jobs:
        mode = str(job.body.get("input", {}).get("mode"))
        by_model.setdefault(job.model, Counter())[mode] += 1
    durations = Counter(job.body.get("input", {}).get("duration") for job in jobs)
    callbacks = sum(1 for job in jobs if job.body.get("request_type") == "callback")
    # Where a run without --output writes (batchgen/manifest/where.py), not the bare template.
    output = f"{where.shown(where.output_of(manifest)).rstrip('/')}/{manifest.filename_template}"
    lines = [
        f"{manifest.path}: OK, {len(jobs)} job{'s' if len(jobs) != 1 else ''} "
        f"(name {manifest.name!r}, model {manifest.model})",
        "  by model:    "
        + "; ".join(
            f"{model} {sum(c.values())} ("
            + ", ".join(f"{m} {n}" for m, n in sorted(c.items()))
            + ")"
            for model, c in sorted(by_model.items())
        ),
        "  by mode:     " + ", ".join(f"{m} {n}" for m, n in sorted(modes.items())),
        "  by duration: "
        + ", ".join(
            f"{d} s: {n}" if d is not None else f"none (the model's own length): {n}"
            for d, n in sorted(durations.items(), key=_numbers_first)
        ),
        f"  API requests at the advised polling (first poll at {FIRST_POLL_S} s, then every "
        f"{POLL_EVERY_S} s): about {estimate_requests(jobs)}"
        + (
            f" ({callbacks} callback job{'s' if callbacks != 1 else ''}: 1 each)"
            if callbacks
            else ""
        ),
        f"  output:      {output}",
    ]
    classes = [
        (getattr(job, "model", None) or manifest.model, _input(job).get("mode"),
         _input(job).get("duration"))
        for job in jobs
    ]  # fmt: skip
    book = _book(manifest)
    costs = cost_by_mode(classes, book)
    lines += ["  " + line for line in describe_costs(costs, unknown_prices(classes, book))]
    lines += _matrices(jobs, classes, book)
    return "\n".join(lines)


def summary_json(manifest: Manifest) -> dict[str, object]:
    """`summary` for scripts: the same figures, money as USD numbers (as `status --json`)."""
    jobs = manifest.jobs
    classes = [
        (job.model or manifest.model, _input(job).get("mode"), _input(job).get("duration"))
        for job in jobs
    ]
    book = _book(manifest)
    costs = cost_by_mode(classes, book)
    by_model: dict[str, Counter[str]] = {}
    for model, mode, _ in classes:
        by_model.setdefault(model, Counter())[str(mode)] += 1
    return {
        "manifest": str(manifest.path),
        "name": manifest.name,
        "model": manifest.model,
        "jobs": len(jobs),
        "by_model": {model: dict(sorted(c.items())) for model, c in sorted(by_model.items())},
        "by_duration": {str(d): n for d, n in Counter(c[2] for c in classes).items()},
        "requests_estimate": estimate_requests(jobs),
        "output": f"{where.shown(where.output_of(manifest)).rstrip('/')}/"
        f"{manifest.filename_template}",
        "estimated_cost_usd": round(sum(m for _, m in costs.values()) / MICROS, 6),
        "prices_unknown_for": sorted(unknown_prices(classes, book)),
    }


def _matrices(jobs: list, classes: list[tuple], book: PriceBook) -> list[str]:
    """One line per matrix job: where it is, how many jobs it gave, what they cost."""
    groups: dict[str, list[tuple]] = {}
    for job, key in zip(jobs, classes, strict=True):
        if getattr(job, "matrix", None):
            groups.setdefault(job.matrix, []).append(key)
    lines = []
    for place, keys in groups.items():
        total = sum(micros for _, micros in cost_by_mode(keys, book).values())
        n = len(keys)
        lines.append(f"  matrix at {place}: {n} job{'s' if n != 1 else ''}, {usd(total)}")
    return lines


def _book(manifest: Manifest) -> PriceBook:
    """The price table with the manifest's `budget: prices:` over it (names checked by `run`)."""
    book = PriceBook()
    for name, value in (manifest.budget.get("prices") or {}).items():
        with contextlib.suppress(ValueError):
            book.overrides[parse_key(str(name), manifest.model)] = to_micros(value)
    return book


def _input(job) -> dict:  # type: ignore[no-untyped-def,type-arg]
    inp = job.body.get("input")
    return inp if isinstance(inp, dict) else {}


def _numbers_first(item: tuple) -> tuple:
    key = item[0]
    return (0, key, "") if isinstance(key, int | float) else (1, 0, str(key))
