"""The run's settings: every option of a run with its default, written here once.

A leaf module (it imports no other part of batchgen but errors and the model table), so the
components built from these settings can take their defaults from here too: the engine's
group (engine/config.py), the API client's timeouts, the downloader's limits.

RunOptions is grouped by question (files, api, limits, timing, callbacks, money, accounts,
notify), frozen, and built from flat option names by `RunOptions.from_flat`: the CLI
(batchgen/commands/common.py, the only code that turns argparse into RunOptions) and the
Python API (batchgen/api.py) both take the flat names. Durations left as None follow the poll
schedule and are resolved once by `paced()` into a `Pace`; the sandbox scales every service
time (`scaled()`).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from batchgen.errors import UsageError
from batchgen.models import DEFAULT_MODEL

DEFAULT_BASE_URL = "https://api.apixo.ai/api/v1"
SANDBOX_KEY = "sk-sim-demo"
SANDBOX_TIME_SCALE = 0.02
RESULT_LIFETIME_S = 15 * 86400.0  # result URLs live 15 days after the task (the reference)
TRANSIENT_CODES = ("PROCESSING_TIMEOUT", "MODEL_UNAVAILABLE", "GENERATION_FAILED")
"""Fail codes the reference calls transient: resubmitted automatically by default."""
DEFAULT_FILENAME_TEMPLATE = "{id}.mp4"  # output.filename / a result's file name
POLL_AFTER_S = 60.0  # the reference: first status check about a minute after the submit
POLL_EVERY_S = 5.0  # then every 5 seconds
CONNECT_TIMEOUT_S = 10.0
READ_TIMEOUT_S = 30.0
DOWNLOAD_STALL_S = 60.0
DOWNLOAD_CONCURRENCY = 8
MAX_FILE_BYTES = 2 * 1024**3
POLL_GRID = 0.1
"""Poll wake-ups end on a grid of 10% of the poll interval (500 ms at the default 5 s, which
the ±20% jitter already spreads over 2 s). Trackers due in the same slot wake in one loop pass,
so their requests and answers share event-loop turns and system calls: about 10% less CPU per
job (bench: scenarios overhead), for polls at most one slot late (batchgen/engine/wakes.py)."""
API_KEEPALIVE_S = 1.0
"""How long an idle connection to the API is kept for reuse. Servers close idle connections
after a few seconds (uvicorn and Node 5 s, gunicorn 2 s); a submit written onto one at that
instant is lost with no way to tell whether the server read it, so its job turns ambiguous
(tests/test_keepalive.py). aiohttp retries only idempotent requests in that race, so a POST
must never get a connection idle that long. While a batch runs, connections are busy and stay
warm; a quiet one costs a new connection."""


# Durations a run does not get from the user follow its poll schedule, so a run against a
# faster or slower server (a scaled test bed, the sandbox) keeps their proportions. The
# multiples give the documented defaults at --poll-after 60 --poll-every 5 (README: "Every
# duration follows the run's options").
CALLBACK_GRACE_PER_POLL_AFTER = 1.0  # 60 s after the expected end, then a fallback poll
CALLBACK_POLL_PER_POLL_EVERY = 6.0  # fallback polls every 30 s
CALLBACK_GUARD_PER_POLL_EVERY = POLL_GRID  # news confirmed at most once per 0.5 s per task
STUCK_PER_POLL_AFTER = 60.0  # 1 h: 30 times the documented generation time
POLL_BACKOFF_CAP_PER_POLL_AFTER = 5.0  # 5 min between polls of an unreadable status, at most
STATUS_OUTAGE_PER_POLL_AFTER = 30.0  # 30 min unreadable: left for the next run
BACKOFF_BASE_PER_POLL_EVERY = 0.2  # retries start about 1 s apart
BACKOFF_CAP_PER_POLL_AFTER = 1.0  # and grow to 60 s at most
METRICS_EVERY_PER_POLL_AFTER = 1.0  # --metrics-file rewritten every minute while a run goes on

NOTIFY_WHEN = ("success", "failure", "incomplete")  # --notify-on: exit 0, any other, exit 75
NOTIFY_TRIES = 3  # a receiver down or erroring gets this many tries, within the deadline


@dataclass(frozen=True)
class NotifySettings:
    """Who hears how a run ended (batchgen/notify). Never recorded in the state file, and
    kept out of reprs: notifier URLs often hold tokens."""

    apprise_urls: tuple[str, ...] = field(default=(), repr=False)  # --notify
    json_urls: tuple[str, ...] = field(default=(), repr=False)  # --notify-json
    on: frozenset[str] = frozenset({"failure"})  # --notify-on
    ping_url: str | None = field(default=None, repr=False)  # --ping (healthchecks)
    metrics_file: Path | None = None  # --metrics-file (Prometheus textfile)
    tries: int = NOTIFY_TRIES
    # All sends at the end of a run share one deadline; None: the run's drain_s (5 s).
    deadline_s: float | None = None
    # None: METRICS_EVERY_PER_POLL_AFTER x poll_after_s, so it scales with the run's clock.
    metrics_every_s: float | None = None

    def __bool__(self) -> bool:
        return bool(self.apprise_urls or self.json_urls or self.ping_url or self.metrics_file)


@dataclass(frozen=True)
class FileSettings:
    """Where the run reads and writes: the state file, the outputs, input images."""

    state_path: Path
    output_dir: Path
    filename_template: str = DEFAULT_FILENAME_TEMPLATE
    write_results: bool = True
    # s3://BUCKET/PREFIX: results go to this bucket (adapters/sinks/objectstore.py); then
    # output_dir is the local folder beside the state file (spool, results.jsonl, gallery)
    result_store: str | None = None
    # Input images (batchgen/inputs). preflight None: check remote image URLs before paying
    # unless the API itself is local (a test bed, whose image URLs are often placeholders).
    preflight: bool | None = None
    image_store: str | None = None  # s3://BUCKET/PREFIX for local image files
    image_url_ttl_s: float = 6 * 3600.0  # presigned GET URLs: the provider may queue, retry
    serve_local_images: bool = False  # --sandbox without a store: the run serves its files


@dataclass(frozen=True)
class ApiSettings:
    """The API and the network under it. Deadlines of the network itself are in real
    seconds: not scaled (see `RunOptions.scaled`)."""

    base_url: str = DEFAULT_BASE_URL
    api_key: str = field(default="", repr=False)
    connect_timeout_s: float = CONNECT_TIMEOUT_S
    read_timeout_s: float = READ_TIMEOUT_S  # a submit cut by it is ambiguous: never shorten it
    api_keepalive_s: float = API_KEEPALIVE_S  # see API_KEEPALIVE_S
    # None: refuse result hosts off the public internet unless the API itself is local.
    allow_private_result_hosts: bool | None = None
    proxy_env: bool = True  # honour HTTP(S)_PROXY, ALL_PROXY, NO_PROXY (adapters/proxies.py)
    proxy: str | None = field(default=None, repr=False)  # --proxy URL; may hold a password


@dataclass(frozen=True)
class LimitSettings:
    """How much at once: the API's rate window, the in-flight cap, downloads, a partial run."""

    page_size: int = 256  # pending jobs read from the state file at a time
    rate_limit: int = 10_000
    rate_period_s: float = 60.0
    rate_margin_s: float | None = None  # default: runner.default_rate_margin(rate_period_s)
    # After a 429 without Retry-After every request waits: first this base, doubled while
    # 429s continue, up to the cap. None: 1/60 of the rate window, and the window itself.
    rate_pause_base_s: float | None = None
    rate_pause_cap_s: float | None = None
    max_in_flight: int = 1000
    download_concurrency: int = DOWNLOAD_CONCURRENCY
    max_file_bytes: int = MAX_FILE_BYTES
    # A partial run: submit at most `submit_limit` jobs in this run, and only those named in
    # `only_ids` (None: every job). The rest stay pending for the next run.
    submit_limit: int | None = None
    only_ids: tuple[str, ...] | None = None


@dataclass(frozen=True)
class TimingSettings:
    """When things happen: the poll schedule and every duration that follows it. None:
    follow the poll schedule (`RunOptions.paced` resolves it, once)."""

    poll_after_s: float = POLL_AFTER_S
    poll_every_s: float = POLL_EVERY_S
    result_lifetime_s: float = RESULT_LIFETIME_S  # result URLs live 15 days (the reference)
    no_wait: bool = False
    max_runtime_s: float | None = None
    stuck_after_s: float | None = None  # see EngineConfig.stuck_after_s; 0: never
    # An unreadable status never fails a task (engine/outage.py): its polls back off up to
    # this cap, and after status_outage_s of it the task is left for the next run (0: never).
    poll_backoff_cap_s: float | None = None
    status_outage_s: float | None = None
    backoff_base_s: float | None = None
    backoff_cap_s: float | None = None
    drain_s: float = 5.0  # on a stop, calls on the wire get this long; then they are cut
    download_stall_s: float = DOWNLOAD_STALL_S  # a download receiving nothing this long is cut


@dataclass(frozen=True)
class CallbackSettings:
    """Callback mode (batchgen/callbacks.py); None durations follow the poll schedule."""

    callback_listen: tuple[str, int] | None = None  # run the receiver on (host, port)
    callback_public_url: str | None = None  # public base forwarding to it; None: its own
    trust_callbacks: bool = False
    callback_grace_s: float | None = None
    callback_poll_every_s: float | None = None
    callback_guard_s: float | None = None  # see batchgen.engine.wakes


@dataclass(frozen=True)
class MoneySettings:
    """batchgen/money/: a cap on what this state file spends, in micro-dollars; price
    overrides by price key; go ahead when the estimate exceeds the balance (up to it); learn
    prices from the balance; which fail codes are resubmitted, how many times."""

    max_spend_micros: int | None = None
    price_overrides: dict[str, int] = field(default_factory=dict)
    spend_past_balance: bool = False
    learn_prices: bool = True
    resubmit_codes: tuple[str, ...] = TRANSIENT_CODES
    max_resubmits: int = 2


@dataclass(frozen=True)
class AccountSettings:
    """The account database (batchgen/accounts): runs of one account share its limits. None:
    $BATCHGEN_ACCOUNT_DB or ~/.local/state/batchgen/accounts.db; "none": off (the sandbox)."""

    account_db: str | None = None
    account_name: str | None = None  # --account NAME: several keys of one account
    # --accounts FILE: several accounts, each its own key and limits (accounts/pool.py). The
    # keys are read from the places the file names when the run starts, never recorded.
    accounts_file: str | None = None
    account_every_s: float | None = None  # heartbeat and dead-run check; None: the polls'
    account_clock_offset_s: float = 0.0  # tests: this process's clock is off by this much


@dataclass(frozen=True)
class Pace:
    """Every duration of a run, resolved once from its options (`RunOptions.paced`): what the
    user gave, else what follows the poll schedule. Never None, so no reader checks."""

    poll_after_s: float
    poll_every_s: float
    rate_period_s: float
    stuck_after_s: float  # 0: never
    poll_backoff_cap_s: float
    status_outage_s: float  # 0: never
    backoff_base_s: float
    backoff_cap_s: float
    callback_grace_s: float
    callback_poll_every_s: float
    callback_guard_s: float
    rate_pause_base_s: float
    rate_pause_cap_s: float


_GROUPS = {
    "files": FileSettings,
    "api": ApiSettings,
    "limits": LimitSettings,
    "timing": TimingSettings,
    "callbacks": CallbackSettings,
    "money": MoneySettings,
    "accounts": AccountSettings,
}
_TOP = ("model", "seed", "resubmit_ambiguous", "notify")
FLAT_NAMES: dict[str, str] = {
    f.name: group for group, cls in _GROUPS.items() for f in dataclasses.fields(cls)
} | {name: "" for name in _TOP}
"""Each flat option name (the CLI's and the Python API's) -> its group ("": RunOptions')."""


@dataclass(frozen=True)
class RunOptions:
    """Everything a run needs, grouped by question; the one place where the run's defaults
    are written. Frozen: the CLI or the Python API builds it once, from flat option names,
    with `from_flat` (the one constructor callers use); `replace`, `scaled` make new ones;
    `paced` resolves every duration."""

    files: FileSettings
    api: ApiSettings = field(default_factory=ApiSettings)
    limits: LimitSettings = field(default_factory=LimitSettings)
    timing: TimingSettings = field(default_factory=TimingSettings)
    callbacks: CallbackSettings = field(default_factory=CallbackSettings)
    money: MoneySettings = field(default_factory=MoneySettings)
    accounts: AccountSettings = field(default_factory=AccountSettings)
    notify: NotifySettings | None = None  # notifications, pings, metrics (batchgen/notify)
    model: str = DEFAULT_MODEL
    seed: int | None = None
    resubmit_ambiguous: bool = False

    @classmethod
    def from_flat(cls, state_path: Path, output_dir: Path, **flat: Any) -> RunOptions:
        """RunOptions from flat option names (`max_in_flight=50`, `poll_after_s=6`): each goes
        to its group (FLAT_NAMES); an unknown name is a TypeError, as a dataclass's is."""
        unknown = sorted(set(flat) - FLAT_NAMES.keys())
        if unknown:
            raise TypeError(f"RunOptions: unknown settings {', '.join(unknown)}")
        by_group: dict[str, dict[str, Any]] = {g: {} for g in _GROUPS}
        top: dict[str, Any] = {}
        for name, value in flat.items():
            group = FLAT_NAMES[name]
            (by_group[group] if group else top)[name] = value
        groups = {g: _GROUPS[g](**kw) for g, kw in by_group.items() if kw and g != "files"}
        files = FileSettings(state_path, output_dir, **by_group["files"])
        return cls(files=files, **groups, **top)

    def flat(self) -> dict[str, Any]:
        """Every setting by its flat name: the inverse of `from_flat`."""
        out = {name: getattr(self, name) for name in _TOP}
        for group in _GROUPS:
            part = getattr(self, group)
            out |= {f.name: getattr(part, f.name) for f in dataclasses.fields(part)}
        return out

    def replace(self, **flat: Any) -> RunOptions:
        """A copy with these settings (flat names) changed."""
        return RunOptions.from_flat(**(self.flat() | flat))

    def paced(self) -> Pace:
        """Every duration, resolved once: the user's, else from the poll schedule."""
        t, c, lim = self.timing, self.callbacks, self.limits
        after, every = t.poll_after_s, t.poll_every_s

        def pick(value: float | None, default: float) -> float:
            return default if value is None else value

        base = pick(t.backoff_base_s, BACKOFF_BASE_PER_POLL_EVERY * every)
        return Pace(
            poll_after_s=after,
            poll_every_s=every,
            rate_period_s=lim.rate_period_s,
            stuck_after_s=pick(t.stuck_after_s, STUCK_PER_POLL_AFTER * after),
            poll_backoff_cap_s=pick(t.poll_backoff_cap_s, POLL_BACKOFF_CAP_PER_POLL_AFTER * after),
            status_outage_s=pick(t.status_outage_s, STATUS_OUTAGE_PER_POLL_AFTER * after),
            backoff_base_s=base,
            backoff_cap_s=max(base, pick(t.backoff_cap_s, BACKOFF_CAP_PER_POLL_AFTER * after)),
            callback_grace_s=pick(c.callback_grace_s, CALLBACK_GRACE_PER_POLL_AFTER * after),
            callback_poll_every_s=pick(
                c.callback_poll_every_s, CALLBACK_POLL_PER_POLL_EVERY * every
            ),
            callback_guard_s=pick(c.callback_guard_s, CALLBACK_GUARD_PER_POLL_EVERY * every),
            rate_pause_base_s=pick(lim.rate_pause_base_s, lim.rate_period_s / 60),
            rate_pause_cap_s=pick(lim.rate_pause_cap_s, lim.rate_period_s),
        )

    def scaled(self, scale: float) -> RunOptions:
        """A copy with every service time multiplied by `scale`, for a simulator that runs its
        clock `1/scale` times faster (--sandbox, tests, benchmarks): the poll schedule and
        everything that follows it, backoff included, with no floor.

        The API's connect and read timeouts and the drain deadline stay in real seconds: they
        only cost time when a call hangs, the network and this machine do not get faster with
        the simulator's clock, and a submit cut short by them is ambiguous (may be paid twice)."""

        def times(value: float | None) -> float | None:
            return None if value is None else value * scale

        t, c, lim = self.timing, self.callbacks, self.limits
        return dataclasses.replace(
            self,
            limits=dataclasses.replace(
                lim,
                rate_period_s=lim.rate_period_s * scale,
                rate_pause_base_s=times(lim.rate_pause_base_s),
                rate_pause_cap_s=times(lim.rate_pause_cap_s),
            ),
            timing=dataclasses.replace(
                t,
                poll_after_s=t.poll_after_s * scale,
                poll_every_s=t.poll_every_s * scale,
                result_lifetime_s=t.result_lifetime_s * scale,
                stuck_after_s=times(t.stuck_after_s),
                backoff_base_s=times(t.backoff_base_s),
                backoff_cap_s=times(t.backoff_cap_s),
                poll_backoff_cap_s=times(t.poll_backoff_cap_s),
                status_outage_s=times(t.status_outage_s),
                download_stall_s=t.download_stall_s * scale,
            ),
            callbacks=dataclasses.replace(
                c,
                callback_grace_s=times(c.callback_grace_s),
                callback_poll_every_s=times(c.callback_poll_every_s),
                callback_guard_s=times(c.callback_guard_s),
            ),
        )


def check_base_url(url: str) -> str:
    if not url.lower().startswith(("http://", "https://")):
        raise UsageError(f"--base-url must be an http(s) URL, got {url!r}")
    return url.rstrip("/")


def read_api_key(key_file: str | None) -> str:
    """The key from --api-key-file or APIXO_API_KEY. It is kept in memory only."""
    if key_file:
        try:
            key = Path(key_file).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(
                f"cannot read the API key file {key_file}: {exc.__class__.__name__}"
            ) from None
        if not key:
            raise UsageError(f"the API key file {key_file} is empty")
        return key
    key = os.environ.get("APIXO_API_KEY", "").strip()
    if not key:
        raise UsageError(
            "no API key: set APIXO_API_KEY or pass --api-key-file FILE "
            "(or try the built-in simulator with --sandbox)"
        )
    return key
