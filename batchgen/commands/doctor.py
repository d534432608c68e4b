"""`batchgen doctor [MANIFEST]`: check the setup before a batch spends anything.

One line per check (batchgen/diagnose.py): the key (as a fingerprint), the API and its proxy,
the balance, the clock, the result CDN's proxy, the image store and the output (a folder, or a
bucket: written, read back, deleted), the callback URL. Exit 0 only when every check passes;
`--json` prints them as a list. With `--sandbox` the API checked is the built-in simulator.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import sys

from batchgen import diagnose, exitcodes
from batchgen.adapters.proxies import Proxies
from batchgen.commands import common
from batchgen.diagnose import Check
from batchgen.errors import UsageError
from batchgen.settings import DEFAULT_BASE_URL, SANDBOX_KEY, read_api_key


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "doctor",
        help="check the key, the API, the balance, stores, output and clock before paying",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    p.add_argument("manifest", nargs="?", help="take the image store and output from it")
    common.add_api_options(p)
    p.add_argument("--image-store", metavar="s3://BUCKET/PREFIX", help="the image store to probe")
    p.add_argument("--output", metavar="DIR|s3://BUCKET/PREFIX", help="the output to probe")
    p.add_argument("--callback-url", metavar="URL", help="the public callback base to check")
    p.add_argument("--json", action="store_true", help="print the checks as JSON")
    p.set_defaults(handler=run)
    return p


def run(args: argparse.Namespace) -> int:
    checks = asyncio.run(_checks(args))
    if args.json:
        json.dump(diagnose.as_json(checks), sys.stdout, indent=1)
        print()
    else:
        for check in checks:
            print(check.line())
        failed = [c.name for c in checks if not c.ok]
        print("all checks passed" if not failed else f"failed: {', '.join(failed)}")
    return exitcodes.OK if all(c.ok for c in checks) else exitcodes.SOME_FAILED


async def _checks(args: argparse.Namespace) -> list[Check]:
    image_store, output = args.image_store, args.output
    if args.manifest:
        from batchgen.manifest import load_manifest, where

        manifest = load_manifest(args.manifest)
        image_store = image_store or manifest.image_store
        output = where.output_of(manifest, output)
    proxies = Proxies(
        enabled=not args.no_proxy_env and not args.sandbox,
        proxy=None if args.sandbox else args.proxy,
    )
    checks: list[Check] = []
    if args.sandbox:
        if args.base_url or args.api_key_file:
            raise UsageError("--sandbox checks the built-in simulator: drop --base-url and key")
        from batchgen.simulator import SimConfig, Simulator

        async with Simulator(SimConfig(api_keys=frozenset({SANDBOX_KEY}))) as sim:
            checks.append(diagnose.check_key(SANDBOX_KEY, None))
            checks += await diagnose.check_api(sim.base_url, SANDBOX_KEY, proxies)
    else:
        base = args.base_url or os.environ.get("APIXO_BASE_URL") or DEFAULT_BASE_URL
        try:
            key: str | None = read_api_key(args.api_key_file)
            problem = None
        except UsageError as exc:
            key, problem = None, str(exc)
        checks.append(diagnose.check_key(key, problem))
        if key:
            checks += await diagnose.check_api(base, key, proxies)
    checks.append(diagnose.check_proxy_for_results(proxies))
    if image_store:
        checks.append(await diagnose.check_store("images", image_store, proxies))
    if output:
        found = diagnose.check_output(output, proxies)
        checks.append(await found if asyncio.iscoroutine(found) else found)
    if args.callback_url:
        checks.append(diagnose.check_callback_url(args.callback_url, _resolve(args.callback_url)))
    return checks


def _resolve(url: str) -> list[str]:
    import yarl

    host = yarl.URL(url).host or ""
    try:
        return sorted({info[4][0] for info in socket.getaddrinfo(host, None)})
    except (OSError, UnicodeError):
        return []
