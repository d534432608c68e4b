"""Pure decisions: retry or not, how long to back off, when to poll next.

No I/O, no clock reads, no global random: time (`now_wall`) and randomness (`rng`) are passed
in, so every function here is tested with tables and a seeded `random.Random`.
"""

from __future__ import annotations

import enum
import math
import random
import re
from dataclasses import dataclass
from datetime import UTC
from email.utils import parsedate_to_datetime

MAX_RETRY_AFTER = 3600.0
"""Cap on a server's Retry-After: a buggy or hostile value must not park the run for days."""


@dataclass(frozen=True)
class Backoff:
    """Capped exponential backoff with full jitter. How many tries a caller makes is the
    caller's own rule (submits: --max-submit-tries; polls: never give up on a task)."""

    base: float = 1.0
    cap: float = 60.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.base) and self.base > 0):
            raise ValueError(f"Backoff.base must be > 0, got {self.base!r}")
        if not (math.isfinite(self.cap) and self.cap >= self.base):
            raise ValueError(f"Backoff.cap must be >= base, got {self.cap!r}")


def _ceiling(attempt: int, policy: Backoff) -> float:
    """min(cap, base * 2**attempt) without overflowing for huge attempt numbers."""
    if attempt < 0:
        raise ValueError(f"attempt must be >= 0, got {attempt}")
    if attempt >= 1024:
        return policy.cap
    try:
        return min(policy.cap, math.ldexp(policy.base, attempt))
    except OverflowError:  # base >= 2 at attempt 1023 already passes the largest float
        return policy.cap


def backoff_delay(attempt: int, policy: Backoff, rng: random.Random) -> float:
    """Full jitter: uniform(0, min(cap, base * 2**attempt)). `attempt` is 0 for the first retry.

    Full jitter (not "exponential plus a little noise") spreads clients that failed together
    over the whole interval, so they don't come back in lockstep."""
    return rng.uniform(0.0, _ceiling(attempt, policy))


_SECONDS = re.compile(r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)$")


def parse_retry_after(value: str | None, now_wall: float) -> float | None:
    """Seconds to wait from a Retry-After header: delay-seconds (int or float) or an HTTP-date
    (compared with `now_wall`, Unix seconds). Past or negative -> 0; values over an hour -> an
    hour; missing or junk -> None (the caller falls back to its own backoff)."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if _SECONDS.match(text):
        seconds = float(text)
    else:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        if when is None:  # older Pythons returned None for junk
            return None
        if when.tzinfo is None:  # "-0000" or no zone: HTTP dates are GMT
            when = when.replace(tzinfo=UTC)
        try:
            seconds = when.timestamp() - now_wall
        except (OverflowError, OSError, ValueError):
            return None
    if not math.isfinite(seconds):
        return None
    return min(max(0.0, seconds), MAX_RETRY_AFTER)


def retry_delay(
    attempt: int, policy: Backoff, rng: random.Random, retry_after: float | None
) -> float:
    """How long this request waits before its next try.

    Retry-After is a floor: max(retry_after, full-jitter backoff). The server's word is never
    undercut, and repeated failures still grow the wait. Spreading the requests that come back
    after a 429 is the shared limiter's job (it is paused for everyone, then meters them)."""
    delay = backoff_delay(attempt, policy, rng)
    if retry_after is None:
        return delay
    return max(min(max(0.0, retry_after), MAX_RETRY_AFTER), delay)


def rate_limit_pause(consecutive_429s: int, policy: Backoff, retry_after: float | None) -> float:
    """How long the whole client pauses after a 429 (`SlidingWindowLimiter.pause_for`).

    With Retry-After: exactly that. Without: base * 2**(n-1), capped, no jitter (one pause
    for everyone has no herd to spread), so a run of 429s slows the client down harder.
    `policy` is the run's rate pause (RunOptions.rate_pause_base_s / rate_pause_cap_s): it
    starts well under the API's 60 s window and grows to it only while 429s continue."""
    if retry_after is not None:
        return min(max(0.0, retry_after), MAX_RETRY_AFTER)
    return _ceiling(max(0, consecutive_429s - 1), policy)


class Limit(enum.Enum):
    """Which of the API's two limits a 429 names (the reference: "10,000 requests per minute
    and 1,000 concurrent tasks per account; beyond either, 429")."""

    RATE = "rate"  # requests per window: everyone waits for the window
    CONCURRENCY = "concurrency"  # tasks at once: submits wait for a task to end, polls go on
    UNKNOWN = "unknown"


_CONCURRENCY_WORDS = re.compile(
    r"concurren|in[ -]?flight|parallel|simultaneous|at (?:the same|one|a) time|at once"
    r"|(?:running|active|pending|queued|open|ongoing|unfinished) (?:tasks?|jobs?|generations?)"
    r"|(?:tasks?|jobs?|generations?) (?:limit|cap|quota)|too many (?:tasks?|jobs?|generations?)"
    r"|(?:task|job) queue",
    re.IGNORECASE,
)
_RATE_WORDS = re.compile(
    r"\brate\b|per (?:second|minute|hour|min|sec)|/ ?(?:s|sec|min|m|h)\b|\brpm\b|\brps\b"
    r"|requests? (?:limit|quota)|throttl|slow down",
    re.IGNORECASE,
)


def rate_limit_kind(message: str) -> Limit:
    """Which limit a 429's message names, read liberally; UNKNOWN when it names neither or
    both. "Too Many Requests" alone is HTTP's reason phrase for any 429: it names no limit,
    unless nothing else is said either (then the caller decides from what is in flight)."""
    text = message or ""
    concurrency = bool(_CONCURRENCY_WORDS.search(text))
    rate = bool(_RATE_WORDS.search(text))
    if concurrency and not rate:
        return Limit.CONCURRENCY
    if rate and not concurrency:
        return Limit.RATE
    return Limit.UNKNOWN


OWN_RATE_SHARE = 0.5
"""A submit's 429 that comes while this client has used less than this share of its own rate
budget in the window is not read as our rate limit (judge_429)."""


def judge_429(
    words: Limit,
    *,
    submit: bool,
    tasks_held: int,
    own_in_window: int,
    own_limit: int,
    polls_refused_lately: bool,
) -> Limit:
    """Which limit a 429 hit, from what this client can see rather than from the words alone:
    APIXO's reference words both limits "Rate limit exceeded", and a proxy may say "Too Many
    Requests" for either.

    - A status or balance request takes no task slot: its 429 is the request rate.
    - Words that name the concurrency cap are believed.
    - With no task of ours at the provider, our share of the cap says nothing: the words
      decide (unknown words pause everyone, as for the rate).
    - A poll refused within the last window says the account's rate is spent (perhaps by
      other clients): the rate.
    - Otherwise, with tasks of ours held and our own requests in the window well under our
      rate budget, the refusal is the cap on tasks, whatever its words.
    Pure: the caller passes what it counted."""
    if not submit:
        return Limit.RATE
    if words is Limit.CONCURRENCY:
        return Limit.CONCURRENCY
    if tasks_held <= 0 or polls_refused_lately:
        return words
    if words is Limit.UNKNOWN or own_in_window < OWN_RATE_SHARE * own_limit:
        return Limit.CONCURRENCY
    return words


class Outcome(enum.Enum):
    """What a caller does with an API answer."""

    OK = "ok"
    RETRY = "retry"  # transient (5xx, 408): back off and try again
    RATE_LIMITED = "rate_limited"  # 429: slow the whole client down, then retry
    JOB_FAILED = "job_failed"  # this request is bad (400 invalid params): fail the job
    ACCOUNT = "account"  # key or credits (401/402/403, 400 "insufficient credits"): stop
    NOT_FOUND = "not_found"  # 404/410: no such task


_MONEY = re.compile(r"\b(?:credits?|balance|quota|funds)\b", re.IGNORECASE)
_SHORT = re.compile(
    r"insufficient|not enough|exhausted|exceeded|depleted|\b(?:ran|run) out\b|\bout of\b"
    r"|too low|\bno (?:more|remaining)\b|top[ -]?up|recharge|\bzero\b",
    re.IGNORECASE,
)
_PAYMENT = re.compile(r"payment required", re.IGNORECASE)


def _says_out_of_credits(message: str) -> bool:
    """Both a money word and a shortage word, so a prompt echoed in an error ("a gymnast on
    a balance beam") does not stop the whole run."""
    if not message:
        return False
    if _PAYMENT.search(message):
        return True
    return bool(_MONEY.search(message) and _SHORT.search(message))


def says_out_of_credits(code: int, message: str) -> bool:
    """Which account error an ACCOUNT outcome is: 402, or a message about credits running out
    (the reference's 400 "Insufficient credits"); anything else is the key (401/403)."""
    return code == 402 or _says_out_of_credits(message)


def deciding_code(http_status: int, body_code: int | None) -> int:
    """The code `classify_status` decides on, so an error reports that one (never a body's
    "success" 0 under an HTTP error, nor a body 400 under an HTTP 401)."""
    codes = [http_status] if body_code is None else [http_status, body_code]
    if 429 in codes:
        return 429
    for c in codes:
        if 500 <= c <= 599:
            return c
    # Under HTTP 2xx the body code decides; 0 is the other common way APIs of this shape say
    # "success", and reading it as an error would fail a job whose task may exist.
    if 200 <= http_status <= 299 and body_code is not None and body_code != 0:
        return body_code
    # A generic HTTP 400 whose body names the account (401 key, 402/403): stop the run rather
    # than fail every job in turn with "HTTP_400".
    if http_status == 400 and body_code in (401, 402, 403):
        return body_code
    return http_status


def classify_status(http_status: int, body_code: int | None, message: str) -> Outcome:
    """Map an answer to an Outcome. Errors come as HTTP statuses or as HTTP 200 with a `code`
    in the body, so both are read liberally:

    - a body code other than 2xx (or 0, read as success) wins over an HTTP 2xx;
    - 429 in either place -> RATE_LIMITED; 5xx in either place -> RETRY (a retry is always
      safe to try, a wrong permanent verdict is not);
    - a 504-like gateway timeout is RETRY here; a submit answered so is ambiguous instead
      (core/verdicts.py: SUBMIT_OUTCOME_UNKNOWN);
    - otherwise the HTTP status decides when it is an error (except a generic 400 whose body
      says 401/402/403), else the body code:
      408/425 -> RETRY; 401/402/403/407 -> ACCOUNT; 404/410 -> NOT_FOUND;
      400 (or any 4xx) saying credits/balance/quota ran out -> ACCOUNT; other 4xx -> JOB_FAILED;
      anything else that is not 2xx (1xx, 3xx, made-up codes) -> JOB_FAILED, which fails one
      job visibly instead of retrying forever.
    """
    code = deciding_code(http_status, body_code)
    if code == 429:
        return Outcome.RATE_LIMITED
    if 500 <= code <= 599:
        return Outcome.RETRY
    if 200 <= code <= 299:
        return Outcome.OK
    if code in (408, 425):
        return Outcome.RETRY
    if code in (401, 402, 403, 407):  # 407: a proxy of ours wants credentials, for every job
        return Outcome.ACCOUNT
    if code in (404, 410):
        return Outcome.NOT_FOUND
    if _says_out_of_credits(message):
        return Outcome.ACCOUNT
    return Outcome.JOB_FAILED
