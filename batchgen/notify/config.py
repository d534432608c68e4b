"""Notification settings from their three sources (command line, manifest `notify:` block,
Python API), checked once, and how a notifier URL may be shown: scheme and host only.

Notifier URLs carry their secret in the path (Slack, Discord, healthchecks' uuid) or the
query, so nothing else of them ever reaches a message, a log line or a file.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from batchgen.errors import UsageError
from batchgen.settings import NOTIFY_WHEN, NotifySettings

APPRISE_MISSING = (
    "--notify needs apprise, an optional extra: pip install 'batchgen[notify]' "
    "(or pip install apprise)"
)
BLOCK_KEYS = ("urls", "json", "on", "ping", "metrics_file")


def redact(url: str) -> str:
    """scheme://host[:port] of a notifier URL: never its user, path or query."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<unparsable URL>"
    return f"{parts.scheme or '?'}://{host}{port}"


def parse_on(value: str | list[str] | tuple[str, ...] | frozenset[str]) -> frozenset[str]:
    """'failure,incomplete' (or a list) -> the outcomes that send; unknown words: exit 2."""
    words = value.split(",") if isinstance(value, str) else list(value)
    chosen = {str(w).strip().lower() for w in words if str(w).strip()}
    unknown = sorted(chosen - set(NOTIFY_WHEN))
    if unknown or not chosen:
        raise UsageError(
            f"notify on: expected a comma list of {', '.join(NOTIFY_WHEN)}, got {value!r}"
        )
    return frozenset(chosen)


def _http_url(url: Any, what: str) -> str:
    if not isinstance(url, str) or urlsplit(url).scheme.lower() not in ("http", "https"):
        shown = redact(url) if isinstance(url, str) else repr(url)
        raise UsageError(f"{what} must be an http(s) URL, got {shown}")
    if not urlsplit(url).hostname:
        raise UsageError(f"{what} must name a host, got {redact(url)}")
    return url


def _apprise_url(url: Any) -> str:
    if not isinstance(url, str) or "://" not in url:
        raise UsageError("--notify takes an apprise URL such as slack://... or json://host/path")
    return url


def _urls(value: Any, what: str) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)):
        return list(value)
    raise UsageError(f"{what} must be a URL or a list of URLs")


def build(
    *,
    urls: Any = None,
    json: Any = None,
    on: Any = None,
    ping: Any = None,
    metrics_file: Any = None,
    base: NotifySettings | None = None,
) -> NotifySettings | None:
    """Settings from given values over `base` (each one given replaces base's); None when
    nothing is asked for. Checks every URL and word, and that apprise is installed."""
    out = base or NotifySettings()
    changes: dict[str, Any] = {}
    if urls is not None:
        changes["apprise_urls"] = tuple(_apprise_url(u) for u in _urls(urls, "notify urls"))
    if json is not None:
        changes["json_urls"] = tuple(_http_url(u, "--notify-json") for u in _urls(json, "json"))
    if on is not None:
        changes["on"] = parse_on(on)
    if ping is not None:
        changes["ping_url"] = _http_url(ping, "--ping").rstrip("/")
    if metrics_file is not None:
        if not isinstance(metrics_file, (str, Path)) or not str(metrics_file):
            raise UsageError("--metrics-file must be a file path")
        changes["metrics_file"] = Path(metrics_file)
    out = dataclasses.replace(out, **changes)
    if out.apprise_urls and importlib.util.find_spec("apprise") is None:
        raise UsageError(APPRISE_MISSING)
    return out if out else None


def from_block(block: Any, where: str = "notify") -> NotifySettings | None:
    """A manifest's `notify:` block (or the Python API's notify= dict)."""
    if block is None:
        return None
    if isinstance(block, NotifySettings):
        return build(base=block)
    if not isinstance(block, dict):
        raise UsageError(f"{where} must be a mapping with {', '.join(BLOCK_KEYS)}")
    unknown = sorted(set(block) - set(BLOCK_KEYS))
    if unknown:
        raise UsageError(f"{where}: unknown key(s) {', '.join(map(str, unknown))}")
    return build(**{k: block[k] for k in BLOCK_KEYS if k in block})


def combine(
    given: dict[str, Any], manifest_block: Any, where: str = "notify"
) -> NotifySettings | None:
    """The run's settings: those `given` (command line, notify=) win, key by key, over the
    manifest's block."""
    base = from_block(manifest_block, where)
    values = {k: v for k, v in given.items() if v is not None}
    if not values:
        return base
    return build(**values, base=base)
