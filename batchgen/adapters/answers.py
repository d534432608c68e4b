"""Reading the API's answers, pure: JSON bodies and their envelope, a task's status, the
balance. Liberal in what it accepts (a
`resultJson` string or object, states in any case, numbers as text), strict in what it
believes (an answer about another task is not this task's)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

import yarl

from batchgen.core.taskids import shown, task_id_or_none
from batchgen.errors import BadAnswer, WrongEndpoint

# Liberal reading of `state`: the documented four, plus names other APIs of this shape use.
_STATES = {
    "pending": "pending",
    "queued": "pending",
    "queue": "pending",
    "waiting": "pending",
    "submitted": "pending",
    "created": "pending",
    "processing": "processing",
    "running": "processing",
    "generating": "processing",
    "in_progress": "processing",
    "started": "processing",
    "success": "success",
    "succeeded": "success",
    "completed": "success",
    "complete": "success",
    "done": "success",
    "finished": "success",
    "failed": "failed",
    "fail": "failed",
    "failure": "failed",
    "error": "failed",
    "cancelled": "failed",
    "canceled": "failed",
}


@dataclass(frozen=True, slots=True)
class TaskStatus:
    task_id: str
    state: str  # pending | processing | success | failed (normalized)
    raw_state: str
    result_urls: list[str] = field(default_factory=list)
    fail_code: str | None = None
    fail_msg: str | None = None
    create_time_ms: int | None = None
    complete_time_ms: int | None = None
    cost_time_ms: int | None = None

    @property
    def terminal(self) -> bool:
        return self.state in ("success", "failed")


def _first(data: dict[str, Any], *keys: str) -> Any:
    """The first of `keys` present and not null: the documented name first, then the spellings
    other implementations of this API shape use."""
    for key in keys:
        value = data.get(key)
        if value is not None:
            return value
    return None


def _int_or_none(value: Any) -> int | None:
    """An integer sent as a number, a float or a string of either ("41388", "41388.0")."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        text = value.strip()
        if text.lstrip("-").isdigit():
            return int(text)
        try:
            value = float(text)
        except ValueError:
            return None
    if isinstance(value, float) and value == value and abs(value) < 1e16:
        return int(value)
    return None


def _positive(value: Any) -> int | None:
    """A duration in ms: zero or negative is nonsense, not believed."""
    n = _int_or_none(value)
    return n if n is not None and n > 0 else None


def _time_ms(value: Any) -> int | None:
    """A Unix time in ms (the reference). Unix seconds (below 1e11 ms, which is 1973) are read
    as the moment they plainly mean; anything before 2001 is dropped: the engine dates a
    result's 15-day expiry from completeTime, and a 1970 one would expire it at once."""
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        return None
    if 1e9 <= value < 1e11:
        value *= 1000
    return int(value) if 1e12 <= value < 1e16 else None


def _maybe_json(value: Any, depth: int = 3) -> Any:
    """A JSON document sent as a string (the reference's resultJson), or encoded once more by
    a sloppy server: decoded while it still is one. Anything else comes back as is."""
    while depth > 0 and isinstance(value, str) and value.strip()[:1] in ("{", "[", '"'):
        try:
            value = json.loads(value)
        except ValueError:
            break
        depth -= 1
    return value


_MESSAGE_KEYS = ("message", "msg", "error", "errorMessage", "error_message", "detail")


def decode_answer(raw: bytes, charset: str | None = None) -> Any:
    """Parse a JSON body whatever its Content-Type says: UTF-8/16/32 (with or without BOM) as
    JSON allows, else the declared charset (a latin-1 `message` must not make a submit's
    answer unreadable). Raises ValueError when it is not JSON."""
    try:
        return json.loads(raw)
    except UnicodeDecodeError:
        pass
    try:
        text = raw.decode(charset or "latin-1", "replace")
    except LookupError:
        text = raw.decode("latin-1")
    return json.loads(text)


def envelope_data(payload: Any) -> Any:
    """The `data` of an envelope. Liberal: `data` sent as a JSON string, or the fields sent at
    the top level when `data` is missing or null, but only if they name the task: a top-level
    "status" alone is as often the envelope's own word ("error") as the task's state."""
    if not isinstance(payload, dict):
        return None
    data = _maybe_json(payload.get("data"))
    if data is None and _first(payload, "taskId", "task_id") is not None:
        return payload
    return data


def _text(value: Any, limit: int = 2000) -> str | None:
    if value is None:
        return None
    text = value if isinstance(value, str) else json.dumps(value)[:limit]
    return "".join(ch if ch.isprintable() else " " for ch in text[:limit])


def parse_status(data: Any, expected_task_id: str) -> TaskStatus:
    """Read the `data` of a status answer (or of a callback body). Raises BadAnswer."""
    if not isinstance(data, dict):
        raise BadAnswer(200, "status answer has no data object")
    raw_state = _first(data, "state", "status")
    if not isinstance(raw_state, str):
        raise BadAnswer(200, "status answer has no state")
    state = normalize_state(raw_state) or "processing"  # unknown word: keep polling
    named = task_id_or_none(_first(data, "taskId", "task_id"))
    if named is not None and named != expected_task_id:
        # Another task's answer (a mixed-up cache or proxy): it must not finish this job. Ids
        # are case-sensitive data: base64 ids of two tasks may differ only by case.
        raise BadAnswer(200, f"status answer is about another task ({shown(named)})")
    task_id = expected_task_id
    times = {
        "create_time_ms": _time_ms(data.get("createTime")),
        "complete_time_ms": _time_ms(data.get("completeTime")),
        "cost_time_ms": _positive(data.get("costTime")),
    }
    if state == "failed":
        return TaskStatus(
            task_id,
            state,
            raw_state,
            fail_code=_text(_first(data, "failCode", "fail_code", "errorCode", "error_code"), 100)
            or "FAILED",
            fail_msg=_text(_first(data, "failMsg", "fail_msg", "errorMessage", "error_message"))
            or f"the provider reported state {raw_state!r}",
            **times,
        )
    urls: list[str] = []
    if state == "success":
        urls = _result_urls(data)
        if not urls:
            raise BadAnswer(200, "task succeeded but its answer holds no result URL")
    return TaskStatus(task_id, state, raw_state, result_urls=urls, **times)


def normalize_state(word: str) -> str | None:
    """pending | processing | success | failed for a state word in any case or spacing
    ("In Progress", " SUCCESS\n"); None for a word we do not know."""
    return _STATES.get("_".join(word.strip().lower().replace("-", " ").split()))


def _result_urls(data: dict[str, Any]) -> list[str]:
    """The result URLs, from the reference's shape (resultJson: a JSON string holding
    resultUrls) and the shapes a sloppy server gives: resultJson already an object, encoded
    twice, a bare list or URL, `result` instead, resultUrls beside it, items as {"url": ...}.
    A broken resultJson is not fatal when the URLs are found elsewhere. Each URL is only
    trimmed here; the downloader decides whether it may be fetched."""
    urls: Any = None
    result = _maybe_json(_first(data, "resultJson", "result"))
    if isinstance(result, dict):
        urls = _maybe_json(_first(result, "resultUrls", "result_urls", "urls", "url"))
    elif isinstance(result, list) or (
        isinstance(result, str) and result.strip().lower().startswith(("http://", "https://"))
    ):
        urls = result  # a bare URL; a cut '{"resultUrls": ["http://x/' stays unreadable
    if not urls:
        urls = _maybe_json(_first(data, "resultUrls", "result_urls"))
    if isinstance(urls, str | dict):
        urls = [urls]
    if not isinstance(urls, list):
        return []
    found = []
    for item in urls:
        if isinstance(item, dict):
            item = _first(item, "url", "resultUrl")
        if isinstance(item, str) and 0 < len(item.strip()) <= 4096:
            found.append(item.strip())
    return found


def parse_balance(data: Any) -> Decimal | None:
    """A balance in USD from the envelope's `data`: a number, a numeric string, or an object
    with `balance`/`amount`/`credits`/`remaining`. None when it is none of these (or not finite)."""
    if isinstance(data, dict):
        data = _first(data, "balance", "currentBalance", "amount", "credits", "remaining")
    if isinstance(data, bool) or not isinstance(data, int | float | str):
        return None
    try:
        amount = Decimal(str(data).strip().lstrip("$").replace(",", ""))
    except InvalidOperation:
        return None
    return amount if amount.is_finite() else None


def redirected(status: int, location: str | None) -> WrongEndpoint:
    """Only the scheme and host of the Location are named: the rest is the server's to say."""
    where = ""
    try:
        target = yarl.URL((location or "").strip()[:2000])
    except (ValueError, TypeError):
        target = None
    if target is not None and target.scheme in ("http", "https") and target.host:
        where = f" to {target.scheme}://{_text(target.host, 255)}"
    return WrongEndpoint(
        status,
        f"the API answered HTTP {status}, a redirect{where}: check --base-url "
        "(batchgen never follows an API redirect)",
    )


def read_answer(raw: bytes, charset: str | None) -> tuple[Any, int | None, str, bool]:
    """(payload, the body's `code`, its message, whether it is the API's own envelope) of a
    body; payload None when it is not JSON. The API's own envelope, as opposed to a proxy's
    page, is a JSON object with a `code`, or with `message` and `data` (a gateway's bare
    {"message": ...}, as AWS API Gateway sends, is not). Only that can prove a failed submit
    made no task (policy)."""
    payload: Any = None
    try:
        payload = decode_answer(raw, charset) if raw else None
    except ValueError:
        payload = None
    if not isinstance(payload, dict):
        return payload, None, "", False
    envelope = "code" in payload or ("message" in payload and "data" in payload)
    # The reference says `message`; other spellings carry the same words, and the words
    # matter: "Insufficient credits" stops the run instead of failing each job.
    said = next((payload[k] for k in _MESSAGE_KEYS if payload.get(k)), "")
    return payload, _int_or_none(payload.get("code")), _text(said, 500) or "", envelope
