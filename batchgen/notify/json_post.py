"""--notify-json: the run's summary POSTed as JSON, signed when BATCHGEN_NOTIFY_SECRET is set.

The signature is `X-Batchgen-Signature: sha256=<hex HMAC-SHA256 of the exact body>`, so a
receiver can check that the POST came from this batch before acting on it. The secret is read
from the environment at send time and never stored.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
from typing import Any

import aiohttp

from batchgen.notify.deliver import Budget, send

SECRET_ENV = "BATCHGEN_NOTIFY_SECRET"
SIGNATURE_HEADER = "X-Batchgen-Signature"


def encode(summary: dict[str, Any]) -> bytes:
    return json.dumps(summary, ensure_ascii=False, sort_keys=True).encode("utf-8")


def signature(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def headers_for(body: bytes, secret: str | None) -> dict[str, str]:
    headers = {"Content-Type": "application/json", "User-Agent": "batchgen"}
    if secret:
        headers[SIGNATURE_HEADER] = signature(body, secret)
    return headers


async def post_all(
    http: aiohttp.ClientSession, urls: tuple[str, ...], summary: dict[str, Any], budget: Budget
) -> list[bool]:
    """POST the same body to every URL at once; whether each was delivered."""
    body = encode(summary)
    headers = headers_for(body, os.environ.get(SECRET_ENV) or None)
    return await asyncio.gather(
        *(
            send(http, "POST", url, budget, what="JSON summary", body=body, headers=headers)
            for url in urls
        )
    )
