"""`batchgen doctor`: the setup checked before a batch spends anything, one check at a time.

Each check answers one question a new user gets wrong in their first hour, in words they can
act on: is the key set (shown only as a fingerprint), does the API answer it and with what
balance, which proxy the API and the result CDN go through, does the image store or the bucket
output take a write, read it back and delete it, can the output folder be written and how much
room is left, is the callback URL one the provider can reach, and does this machine's clock
agree with the API's. Nothing here prints a secret: not the key, not a proxy's or a store's
credentials, not a presigned query.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from decimal import Decimal
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import aiohttp
import yarl

from batchgen.adapters.answers import decode_answer, envelope_data, parse_balance
from batchgen.adapters.proxies import Proxies
from batchgen.adapters.s3client import is_store_url
from batchgen.adapters.sinks.objectprobe import probe_output
from batchgen.core.urls import describe_url, is_public_address
from batchgen.errors import BatchgenError
from batchgen.money.prices import usd

CLOCK_SKEW_S = 60.0
"""A clock further than this from the API's is said: the stuck rule, result lifetimes and the
spend ledger's times all read this machine's clock."""
TIMEOUT_S = 15.0


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str

    def line(self) -> str:
        return f"{'ok  ' if self.ok else 'FAIL'} {self.name:<12} {self.detail}"


def fingerprint(key: str) -> str:
    """Eight hex digits that tell two keys apart without showing either."""
    return hashlib.sha256(key.encode()).hexdigest()[:8]


def check_key(key: str | None, problem: str | None) -> Check:
    if not key:
        return Check("key", False, problem or "no API key")
    return Check(
        "key", True, f"set (fingerprint {fingerprint(key)}; the key itself is never shown)"
    )


@dataclass(frozen=True)
class BalanceAnswer:
    """One GET of the balance, as it came: where it went, the HTTP status, the amount (None:
    unreadable), the API's Date header; `error` when nothing answered."""

    route: str
    status: int = 0
    amount: Decimal | None = None
    date: str | None = None
    error: str | None = None


async def fetch_balance(base_url: str, key: str, proxies: Proxies) -> BalanceAnswer:
    """GET /apikeys/current-balance with the key, through the proxy rule."""
    url = yarl.URL(f"{base_url.rstrip('/')}/apikeys/current-balance")
    proxy = proxies.for_url(url)
    route = f"through {proxy.describe()}" if proxy is not None else "directly"
    headers = {"Authorization": f"Bearer {key}", "Accept": "application/json"}
    timeout = aiohttp.ClientTimeout(total=TIMEOUT_S)
    try:
        async with (
            aiohttp.ClientSession(trust_env=False, timeout=timeout) as session,
            session.get(url, allow_redirects=False, **proxies.request_kwargs(url, headers)) as r,
        ):
            raw = await r.read()
            status, date = r.status, r.headers.get("Date")
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        reason = str(exc).split(":")[0] if str(exc) else type(exc).__name__
        return BalanceAnswer(route, error=reason)
    try:
        amount = parse_balance(envelope_data(decode_answer(raw, None)))
    except ValueError:
        amount = None
    return BalanceAnswer(route, status, amount if 200 <= status < 300 else None, date)


async def check_api(base_url: str, key: str, proxies: Proxies) -> list[Check]:
    """One GET of the balance: the base URL and its proxy, the key, the balance, the clock."""
    got = await fetch_balance(base_url, key, proxies)
    where = f"{describe_url(base_url)} ({got.route})"
    if got.error is not None:
        return [Check("api", False, f"{where}: no answer: {got.error}")]
    status = got.status
    out = [Check("api", status < 500, f"{where}: HTTP {status}")]
    if status in (401, 403):
        out.append(Check("balance", False, f"the API refused the key (HTTP {status})"))
    elif 300 <= status < 400:
        out.append(Check("balance", False, "the base URL redirects: check --base-url"))
    elif got.amount is None:
        out.append(Check("balance", False, f"HTTP {status}: no balance in the answer"))
    else:
        micros = int(got.amount * 1_000_000)
        out.append(Check("balance", micros > 0, f"{usd(micros)} on this key"))
    out.append(_clock(got.date))
    return out


def _clock(date: str | None) -> Check:
    if not date:
        return Check("clock", True, "the API sent no Date header: not compared")
    try:
        theirs = parsedate_to_datetime(date).timestamp()
    except (TypeError, ValueError):
        return Check("clock", True, "the API's Date header cannot be read: not compared")
    skew = time.time() - theirs
    if abs(skew) > CLOCK_SKEW_S:
        return Check("clock", False, f"this machine's clock is {skew:+.0f} s off the API's")
    return Check("clock", True, f"within {max(1.0, abs(skew)):.0f} s of the API's")


def check_proxy_for_results(proxies: Proxies) -> Check:
    proxy = proxies.for_url("https://cdn.example/result.mp4")
    if proxy is None:
        return Check("proxy", True, "results are fetched directly (no HTTPS_PROXY applies)")
    return Check("proxy", True, f"results are fetched through {proxy.describe()}")


async def check_store(name: str, url: str, proxies: Proxies) -> Check:
    """A small object written, read back and deleted under the store's prefix."""
    try:
        option = "--image-store" if name == "images" else "--output"
        done = await probe_output(url, proxies=proxies, option=option)
    except BatchgenError as exc:
        return Check(name, False, str(exc))
    return Check(name, True, f"{url}: " + "; ".join(done))


def check_folder(folder: Path) -> Check:
    """The output folder can be made, written and cleaned; the free space said."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".batchgen-doctor-") as f:
            f.write(b"ok")
            f.flush()
            os.fsync(f.fileno())
        free = shutil.disk_usage(folder).free
    except OSError as exc:
        return Check("output", False, f"{folder}: cannot write: {exc.strerror or exc}")
    return Check("output", True, f"{folder}: writable, {free / 1e9:.1f} GB free")


def check_output(target: str, proxies: Proxies) -> Any:
    """The output: a bucket (probed) or a folder (written)."""
    if is_store_url(target):
        return check_store("output", target, proxies)
    return check_folder(Path(target))


def check_callback_url(url: str, addresses: list[str]) -> Check:
    """Whether the provider can reach the callback base at all: https, and a public address.
    Reachability from the internet itself cannot be seen from here."""
    parts = yarl.URL(url)
    if parts.scheme not in ("http", "https") or not parts.host:
        return Check("callback", False, f"{describe_url(url)} is not an http(s) URL")
    if not addresses:
        return Check("callback", False, f"{parts.host} does not resolve from here")
    if not all(is_public_address(a) for a in addresses):
        return Check("callback", False, f"{parts.host} resolves to a private or local address")
    warn = (
        " (plain http: the callback secret travels in clear text)" if parts.scheme == "http" else ""
    )
    return Check(
        "callback",
        True,
        f"{parts.host} resolves to a public address{warn}; whether the provider reaches it "
        "through your proxy or tunnel cannot be seen from here",
    )


def as_json(checks: list[Check]) -> list[dict[str, Any]]:
    return [asdict(c) for c in checks]
