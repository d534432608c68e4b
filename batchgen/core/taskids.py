"""Task ids: data from the API, accepted by one rule and used safely everywhere.

The reference shows ids like `task_12345678` but promises no shape, and a created task is paid
for: refusing an id the API can read back loses a paid task. So any id is accepted that can be
sent back in a status query: non-empty, at most MAX_TASK_ID_CHARS characters, no control
characters (which a server cannot be expected to round-trip, and which would reach terminals
and logs). Everything else about it (any script, spaces, `/`, `?`, `&`, `=`, `..`, base64 `=`)
is just text: it is percent-encoded in the query, stored as is in the state file, shown
escaped, and never used raw in a path (`filename_part`).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
import urllib.parse
from typing import Any

MAX_TASK_ID_CHARS = 1024  # real ids are tens of characters; 1024 leaves room for signed tokens
SHOWN_CHARS = 200  # how much of an id a terminal line or a log message shows
KEPT_CHARS = 65_536  # how much of a refused id the state file keeps: all of any real one,
# so the user can look the paid task up with the provider; a bound still, as it is hostile data

_PLAIN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}(?:\.[A-Za-z0-9_-]{1,16})?$")
_NOT_SENDABLE = frozenset({"Cc", "Cs", "Zl", "Zp"})  # controls, lone surrogates, line breaks


def refusal(value: Any) -> str | None:
    """Why `value` (the taskId field of an answer) cannot be used as a task id; None if it can.
    Numbers are read as their decimal text, as the JSON may carry them."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        return f"the task id is not text but {type(value).__name__}"
    text = str(value)
    if not text:
        return "the task id is empty"
    if len(text) > MAX_TASK_ID_CHARS:
        return f"the task id is {len(text)} characters long (limit {MAX_TASK_ID_CHARS})"
    if any(unicodedata.category(ch) in _NOT_SENDABLE for ch in text):
        return "the task id holds control characters"
    return None


def task_id_or_none(value: Any) -> str | None:
    """`value` as a task id when the rule above accepts it, else None."""
    if refusal(value) is not None:
        return None
    return str(value)


def shown(value: Any, limit: int = SHOWN_CHARS) -> str:
    """A task id fit for a terminal, a log or a note: anything not printable is
    backslash-escaped (no escape sequence, line break or bidi override gets through), and a
    long id is cut with its length said."""
    text = value if isinstance(value, str) else repr(value)
    cut = text[:limit]
    out = "".join(
        ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in cut
    )
    if len(text) > limit:
        out += f"… ({len(text)} characters)"
    return out


def query_value(task_id: str) -> str:
    """The id percent-encoded for `?taskId=`: every byte outside RFC 3986's unreserved set is
    escaped (`+`, `&`, `=`, `/`, `?`, `%`, space), so any server decodes back the exact id,
    whether it reads the query as a form (`+` is a space) or plainly."""
    return urllib.parse.quote(task_id, safe="")


def filename_part(task_id: str) -> str:
    """The id as a piece of a file name. A plain short id (`task_12345678`, `kl21-ab.cd`) is
    used as it is; any other gets a readable prefix and 16 hex digits of its SHA-256, so two
    ids that sanitize alike (`a/b`, `a_b`, or 300-character ids cut at the same place) never
    share a file, and nothing in the id can make a folder or a device name."""
    if _PLAIN.match(task_id):
        return task_id
    prefix = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in task_id[:40])
    digest = hashlib.sha256(task_id.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return f"{prefix.strip('_-') or 'task'}-{digest}"
