"""Every knob of the simulator in one dataclass.

Times named `*_s` are *service* seconds, multiplied by `time_scale` before use, unless their
help says "real seconds" (those target client timeouts, which do not scale).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from batchgen.simulator.billing import parse_prices

# Fault probabilities that `Simulator.set_faults` may change while the server runs.
FAULT_FIELDS = (
    "p_5xx",
    "p_429",
    "p_reset",
    "p_reset_after_create",
    "p_502_after_create",
    "p_slow",
    "p_error_in_200",
    "p_file_cut",
    "p_file_ignore_range",
    "p_file_gzip",
    "p_file_trickle",
    "p_callback_fail",
    "p_callback_duplicate",
    "p_callback_early",
    "p_callback_forged",
    "p_callback_notice",
    "p_content_violation",
    "p_invalid_image",
    "p_transient",
)


def _knob(default: Any, help: str, **kw: Any) -> Any:
    return field(default=default, metadata={"help": help, **kw})


@dataclass
class SimConfig:
    host: str = _knob("127.0.0.1", "interface to listen on (loopback by default)")
    port: int = _knob(0, "TCP port; 0 picks a free one")
    api_keys: frozenset[str] = _knob(frozenset({"sk-sim-demo"}), "accepted Bearer keys")
    time_scale: float = _knob(0.01, "multiplier for every service time (0.01: 75 s -> 0.75 s)")
    seed: int = _knob(0, "seed for task ids, outcomes, durations and faults")
    keepalive_s: float = _knob(
        75.0, "close a keep-alive connection idle this long (real seconds; uvicorn uses 5)"
    )

    rate_limit: int = _knob(10_000, "API requests allowed in any sliding window")
    rate_period_s: float = _knob(60.0, "length of the rate window (scaled)")
    max_in_flight: int = _knob(1000, "tasks pending or processing at once; beyond: 429")
    concurrency_message: str = _knob(
        "Too many concurrent tasks (limit {limit})",
        "the 429's message past max_in_flight ({limit} is filled in); APIXO's reference "
        "words it as any 429: 'Rate limit exceeded'",
    )
    credits: int | None = _knob(None, "credits; one per accepted submit; None = unlimited")
    balance: float | None = _knob(
        None, "the key's balance in USD; a submit priced above it gets 402; None = unlimited"
    )
    prices: str = _knob(
        "", "prices overriding the defaults (billing.py): MODE:DURATION=USD,... (USD per task)"
    )
    refund_failed: bool = _knob(False, "refund a failed task's price when it fails")

    fetch_images: str = _knob(
        "off",
        "fetch each task's image URLs as the provider does and fail it INVALID_IMAGE_URL when "
        "one can't be fetched or is no image: off, loopback (only loopback URLs) or all",
    )
    p_content_violation: float = _knob(0.0, "fraction of tasks failing CONTENT_VIOLATION")
    p_invalid_image: float = _knob(0.0, "fraction of tasks failing INVALID_IMAGE_URL")
    p_transient: float = _knob(
        0.0, "fraction of tasks failing PROCESSING_TIMEOUT, MODEL_UNAVAILABLE or GENERATION_FAILED"
    )
    results_per_task: int = _knob(1, "result URLs per successful task (1 or 2)")
    result_size: int | None = _knob(None, "bytes per result file; None = tiny real MP4")
    result_lifetime_s: float = _knob(15 * 86400.0, "result file lifetime (scaled); then 403/404")
    expired_status: int | None = _knob(None, "403 or 404 after expiry; None = per task, seeded")

    # API faults, each drawn from its own seeded stream
    p_5xx: float = _knob(0.0, "answer 500, 502 or 503 before doing anything")
    p_429: float = _knob(0.0, "start a burst of 429 answers (see burst_429_len)")
    burst_429_len: int = _knob(5, "API requests answered 429 in one burst")
    p_reset: float = _knob(0.0, "close the connection before doing anything")
    p_reset_after_create: float = _knob(0.0, "submit: create the task, then close the connection")
    p_502_after_create: float = _knob(
        0.0, "submit: create the task, then answer a proxy's 502 HTML page (nginx, AWS ALB)"
    )
    p_slow: float = _knob(0.0, "delay the answer by slow_s")
    slow_s: float = _knob(1.0, "delay of a slow answer (real seconds)")
    p_error_in_200: float = _knob(0.0, "answer HTTP 200 with code 429 or 500 in the body")
    retry_after_integer: bool = _knob(False, "Retry-After as whole seconds (>=1), not a float")

    # result file faults
    p_file_cut: float = _knob(0.0, "close a download part way through its body")
    p_file_ignore_range: float = _knob(0.0, "answer a Range request with the full 200")
    p_file_gzip: float = _knob(0.0, "gzip a whole-file answer (Content-Encoding: gzip)")
    p_file_trickle: float = _knob(0.0, "send the body in small slow chunks")
    trickle_chunks: int = _knob(20, "chunks of a trickled body")
    trickle_delay_s: float = _knob(0.02, "pause between trickled chunks (real seconds)")

    # callbacks
    p_callback_fail: float = _knob(0.0, "drop a delivery attempt (counts as failed, retried)")
    p_callback_duplicate: float = _knob(
        0.0,
        "deliver a callback again, as a delivery retry would (callback_retry_delays_s[0] later)",
    )
    p_callback_early: float = _knob(
        0.0, "deliver a callback callback_early_s before the status shows the task's end"
    )
    callback_early_s: float = _knob(2.0, "how early an early callback comes (scaled)")
    p_callback_forged: float = _knob(
        0.0,
        "post a forged 'success' for a task halfway through its generation, as anyone holding "
        "the callback URL could (the status still says processing)",
    )
    p_callback_notice: float = _knob(
        0.0, "post a 'processing' notice a quarter of the way through a task's generation"
    )
    callback_timeout_s: float = _knob(30.0, "the receiver must answer 200 within this (scaled)")
    callback_retry_delays_s: tuple[float, ...] = _knob(
        (30.0, 60.0, 120.0), "delays before retries 1..3 (scaled)"
    )
    callback_allow_remote: bool = _knob(False, "POST callbacks to non-loopback hosts too")

    log_path: str | None = _knob(None, "append a JSONL line per request to this file")

    def __post_init__(self) -> None:
        if isinstance(self.api_keys, str):
            self.api_keys = frozenset({self.api_keys})
        else:
            self.api_keys = frozenset(self.api_keys)
        self.callback_retry_delays_s = tuple(self.callback_retry_delays_s)
        problems = []
        if self.time_scale <= 0:
            problems.append("time_scale must be > 0")
        if self.keepalive_s <= 0:
            problems.append("keepalive_s must be > 0")
        if self.rate_limit < 1 or self.rate_period_s <= 0:
            problems.append("rate_limit must be >= 1 and rate_period_s > 0")
        if self.max_in_flight < 1:
            problems.append("max_in_flight must be >= 1")
        if self.results_per_task not in (1, 2):
            problems.append("results_per_task must be 1 or 2")
        if self.result_size is not None and self.result_size < 1:
            problems.append("result_size must be >= 1")
        if self.expired_status not in (None, 403, 404):
            problems.append("expired_status must be 403, 404 or None")
        if self.burst_429_len < 1 or self.trickle_chunks < 1:
            problems.append("burst_429_len and trickle_chunks must be >= 1")
        for name in FAULT_FIELDS:
            p = getattr(self, name)
            if not 0.0 <= p <= 1.0:
                problems.append(f"{name} must be a probability in [0, 1], got {p}")
        if self.p_content_violation + self.p_invalid_image + self.p_transient > 1.0:
            problems.append("p_content_violation + p_invalid_image + p_transient must be <= 1")
        if self.balance is not None and not self.balance >= 0:
            problems.append("balance must be >= 0")
        try:
            parse_prices(self.prices)
        except ValueError as exc:
            problems.append(str(exc))
        if problems:
            raise ValueError("; ".join(problems))

    def scaled(self, seconds: float) -> float:
        """Service seconds -> real seconds."""
        return seconds * self.time_scale

    def replace(self, **overrides: Any) -> SimConfig:
        unknown = set(overrides) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise TypeError(f"unknown SimConfig field(s): {', '.join(sorted(unknown))}")
        return dataclasses.replace(self, **overrides)
