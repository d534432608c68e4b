"""Wires one run together: options -> state file -> sessions -> engine -> report.

`run` and `resume` both end here; tests call `execute()` directly with RunOptions.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import random
import socket
import sys
from collections.abc import Awaitable, Callable
from typing import TypeVar

import yarl

from batchgen import callbacks, exitcodes
from batchgen import store as st
from batchgen.accounts.poolsetup import PoolSetup, check_accounts, open_pool
from batchgen.accounts.session import AccountLink, join
from batchgen.adapters.client import ApiClient
from batchgen.adapters.download.attempt import Downloader
from batchgen.adapters.limits import SlidingWindowLimiter
from batchgen.adapters.lock import StateLock
from batchgen.adapters.sessions import Sessions, open_sessions, run_proxies
from batchgen.adapters.sinks.local import LocalSinks
from batchgen.adapters.sinks.objectprobe import probe_output
from batchgen.adapters.sinks.objectstore import ObjectSinks
from batchgen.core.policy import Backoff, backoff_delay
from batchgen.core.urls import is_loopback_host, is_public_address
from batchgen.engine import EXIT_ACCOUNT, EXIT_BUDGET, Engine, RunOutcome
from batchgen.engine.config import engine_config
from batchgen.engine.inflight import InFlightCap
from batchgen.errors import (
    ApiConnectionError,
    DownloadError,
    RateLimited,
    ServerError,
)
from batchgen.hooks import RunHooks
from batchgen.inputs.setup import prepare_inputs
from batchgen.money import (
    Money,
    ResubmitPolicy,
    before_spending,
    recorded_settings,
)
from batchgen.money.prices import usd
from batchgen.notify.run import CRASHED, RunNotices
from batchgen.runsettings import check_only
from batchgen.settings import DEFAULT_BASE_URL, Pace, RunOptions
from batchgen.ui import report

log = logging.getLogger("batchgen.run")
T = TypeVar("T")


async def results_public_only(opts: RunOptions) -> bool:
    """Result files may come only from public addresses, unless the user allows otherwise or
    the API itself is on a private or local address (the simulator, a test bed, a proxy, a
    container name on a private network): then its results may well be private too.
    Through a proxy the API's name may not resolve here at all: the guard then stays on."""
    if opts.api.allow_private_result_hosts is not None:
        return not opts.api.allow_private_result_hosts
    return await api_is_public(opts.api.base_url)


async def preflight_by_default(base_url: str) -> bool:
    """Image preflight is on by default against APIXO itself, or an API whose name resolves
    to public addresses; off against a test bed (loopback, private, or a name that does not
    resolve here), whose image URLs are often placeholders."""
    host = (yarl.URL(base_url).host or "").lower()
    if host == (yarl.URL(DEFAULT_BASE_URL).host or ""):
        return True
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        addresses = await _addresses_of(host)
        return bool(addresses) and all(is_public_address(a) for a in addresses)
    return is_public_address(host.strip("[]"))


async def api_is_public(base_url: str) -> bool:
    """Whether the API is on the public internet (not loopback, not a private address)."""
    host = (yarl.URL(base_url).host or "").strip("[]")
    if is_loopback_host(host):
        return False
    try:
        ipaddress.ip_address(host)
    except ValueError:  # a name, such as api.apixo.ai: where does it lead?
        addresses = await _addresses_of(host)
        return not addresses or any(is_public_address(a) for a in addresses)
    return is_public_address(host)


async def _addresses_of(host: str) -> list[str]:
    """Every address `host` resolves to; none if it does not resolve in a few seconds (then
    the guard stays on: the safe side)."""
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(5):
            infos = await loop.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (OSError, TimeoutError, UnicodeError):
        return []
    return [str(info[4][0]) for info in infos]


async def execute(opts: RunOptions, hooks: RunHooks | None = None) -> RunOutcome:
    """One run over an already-populated state file; holds the state lock throughout. The one
    place every run ends (CLI and Python API), so notifications are sent from here. `hooks`
    are this process's attachments (a display, signal handlers, a test's probe)."""
    hooks = hooks or RunHooks()
    with StateLock(opts.files.state_path):
        store = st.Store(opts.files.state_path)
        try:  # the accounts its tasks need, before anything is written (exit 2)
            check_accounts(opts, store)
        except BaseException:
            store.close()
            raise
        run_id = store.runs.start(os.getpid())
        notices = RunNotices(opts, store, run_id) if opts.notify else None
        outcome: RunOutcome | None = None
        try:
            if notices is not None:
                await notices.started()
                hooks = notices.watching(hooks)
            if opts.resubmit_ambiguous:
                n = store.moves.requeue_ambiguous()
                if n:
                    log.warning("resubmitting %d ambiguous job(s), as asked", n)
            check_only(store, opts)
            if hooks.on_result is not None:
                store.moves.on_finished = report.telling(store, hooks.on_result)
            outcome = await _run_engine(store, opts, hooks)
            return outcome
        finally:
            if outcome is not None:
                store.runs.end(run_id, outcome.exit_code, outcome.how)
            else:
                store.runs.end(run_id, exitcodes.CRASHED, "crashed or interrupted")
            if opts.files.write_results:
                with contextlib.suppress(OSError):
                    report.write_jsonl(store, opts.files.output_dir / "results.jsonl")
                if opts.files.result_store and outcome is not None:
                    uploaded = await _upload_report(opts)
                    if notices is not None:
                        notices.report = uploaded  # the summary names the bucket's object
            try:
                if notices is not None:
                    await _tell(notices, outcome, sys.exc_info()[1])
            finally:
                store.close()


async def _tell(
    notices: RunNotices, outcome: RunOutcome | None, error: BaseException | None
) -> None:
    """The end of the run, told: its outcome, or the error that ends it with that error's
    exit code (a cancel or Ctrl-C only updates the metrics file: nothing waits on the wire)."""
    if outcome is not None:
        await notices.ended(outcome.exit_code, outcome.how)
    elif isinstance(error, Exception):
        code = getattr(error, "exit_code", CRASHED)
        await notices.ended(code, f"stopped by an error: {type(error).__name__}")
    else:
        notices.abandoned(CRASHED)


async def _upload_report(opts: RunOptions) -> str | None:
    """results.jsonl also goes to PREFIX/results.jsonl, replacing the last run's: its
    `s3://` URL, or None when the upload failed (the local file is the report then)."""
    assert opts.files.result_store is not None
    sinks = ObjectSinks(opts.files.result_store, opts.files.output_dir, proxies=run_proxies(opts))
    try:
        return await sinks.put_report(opts.files.output_dir / "results.jsonl")
    except DownloadError as exc:
        log.warning("results.jsonl was not uploaded: %s", exc)
        return None


def default_rate_margin(period_s: float) -> float:
    """How much longer than the API's window the limiter counts each request: 2 % of the
    window (1.2 s of 60 s), and never under 50 ms, plus 10 ms. A request is counted when it
    leaves; the server counts it when it gets to it, and the gap between the two (network
    jitter, a garbage-collection or scheduling pause on either side: 20 ms measured in the
    test suite) does not shrink with a shorter window, such as a scaled test bed's."""
    return max(0.02 * period_s, 0.05) + 0.01


async def _run_engine(store: st.Store, opts: RunOptions, hooks: RunHooks) -> RunOutcome:
    pace = opts.paced()  # every duration, resolved once for the whole run
    period = pace.rate_period_s
    margin = opts.limits.rate_margin_s
    margin = margin if margin is not None else default_rate_margin(period)
    if opts.accounts.accounts_file:  # several accounts: each joins on its own (poolsetup.py)
        link = AccountLink(None, None, opts)
    else:  # the account's limits, shared
        link = await join(opts, store, period + margin, pace=pace)
    try:
        return await _run_linked(store, opts, pace, hooks, link, period, margin)
    finally:
        await link.leave()


async def _run_linked(
    store: st.Store,
    opts: RunOptions,
    pace: Pace,
    hooks: RunHooks,
    link: AccountLink,
    period: float,
    margin: float,
) -> RunOutcome:
    limiter = link.limiter(period, margin)
    backoff = Backoff(base=pace.backoff_base_s, cap=pace.backoff_cap_s)
    proxies = run_proxies(opts)
    public_only = await results_public_only(opts)
    sinks = None
    if opts.files.image_store and not opts.files.serve_local_images:
        # Before anything is spent: a store that cannot take a write would fail every job
        # with an image file, one paid submit at a time (issue 26).
        await probe_output(opts.files.image_store, proxies=proxies, option="--image-store")
    if opts.files.result_store:  # before anything is spent: a batch must have somewhere to go
        await probe_output(opts.files.result_store, proxies=proxies)
        sinks = ObjectSinks(opts.files.result_store, opts.files.output_dir, proxies=proxies)
    api_public = (
        await preflight_by_default(opts.api.base_url) if opts.files.preflight is None else True
    )
    if not api_public:
        log.info(
            "image preflight is off: the API at %s is local or private (a test server, whose "
            "image URLs are often placeholders); --preflight turns it on",
            yarl.URL(opts.api.base_url).host,
        )
    async with open_sessions(opts, public_only=public_only, proxies=proxies) as sessions:

        def make_client(key: str, limiter: SlidingWindowLimiter) -> ApiClient:
            return ApiClient(
                sessions.api,
                opts.api.base_url,
                key,
                limiter=limiter,
                model=opts.model,
                backoff=backoff,
                proxies=proxies,
                connect_timeout=opts.api.connect_timeout_s,
                read_timeout=opts.api.read_timeout_s,
                rate_pause=Backoff(base=pace.rate_pause_base_s, cap=pace.rate_pause_cap_s),
            )

        setup = None
        if opts.accounts.accounts_file:
            setup = await open_pool(opts, store, make_client, _margin_of(opts), pace=pace)
            client = setup.pool.first_client  # every request goes by the pool's choice
        else:
            client = make_client(opts.api.api_key, limiter)
        try:
            return await _run_clients(
                store, opts, pace, hooks, link, client, setup, sessions, sinks, public_only,
                api_public,
            )  # fmt: skip
        finally:
            if setup is not None:
                await setup.leave()


async def _run_clients(
    store: st.Store,
    opts: RunOptions,
    pace: Pace,
    hooks: RunHooks,
    link: AccountLink,
    client: ApiClient,
    setup: PoolSetup | None,
    sessions: Sessions,
    sinks: ObjectSinks | None,
    public_only: bool,
    api_public: bool,
) -> RunOutcome:
    """The engine over the run's one client, or its accounts' (`setup`), to its outcome."""
    rng = random.Random(opts.seed)
    backoff = Backoff(base=pace.backoff_base_s, cap=pace.backoff_cap_s)
    downloader = Downloader(
        sessions.cdn,
        public_only=public_only,
        proxies=run_proxies(opts),
        concurrency=opts.limits.download_concurrency,
        max_bytes=opts.limits.max_file_bytes,
        rng=random.Random(rng.random()),
        # The downloader's own retries (cut bodies, 5xx) pace with the API's, a bit quicker.
        backoff=(pace.backoff_base_s / 2, pace.backoff_cap_s / 2),
        read_timeout=opts.timing.download_stall_s,
        sinks=sinks if sinks is not None else LocalSinks(),
    )
    cap, overrides = recorded_settings(
        store, opts.money.max_spend_micros, opts.money.price_overrides
    )
    money = Money.build(
        store,
        # Several accounts: their balances together; prices from the table, not learned.
        retried(client.balance if setup is None else setup.pool.balance, backoff, rng),
        cap=cap,
        overrides=overrides,
        learn=opts.money.learn_prices and setup is None,
        resubmit=ResubmitPolicy(
            frozenset(opts.money.resubmit_codes), opts.money.max_resubmits
        ),
        model=opts.model,
    )
    await before_spending(money, opts.money.spend_past_balance)
    inputs = prepare_inputs(
        opts,
        pace,
        store.images,
        sessions,
        public_only=public_only,
        preflight=opts.files.preflight if opts.files.preflight is not None else api_public,
    )
    in_flight = store.jobs.counts()[st.IN_FLIGHT]
    if setup is None:
        run_cap = link.make_cap(in_flight)
    else:  # the run's own cap: the accounts' together (each also holds its own)
        cap_n = min(opts.limits.max_in_flight, setup.pool.total_cap)
        run_cap = InFlightCap(cap_n, recovered=in_flight, slow_start=not opts.timing.no_wait)
    engine = Engine(
        store,
        client,
        downloader,
        engine_config(opts, pace),
        rng=rng,
        inputs=inputs,
        money=money,
        cap=run_cap,
        pool=setup.pool if setup is not None else None,
    )
    hooks.engine(engine)
    if setup is None:
        keeper = link.attach(engine.context, client)  # fail closed; dead runs' tasks
        keepers = [keeper] if keeper is not None else []
    else:
        keepers = setup.attach(engine.context)
    deadline = None
    if opts.timing.max_runtime_s is not None:
        deadline = asyncio.get_running_loop().call_later(
            opts.timing.max_runtime_s, engine.request_stop, "stopped at --max-runtime"
        )
    keeping = [asyncio.ensure_future(k.run()) for k in keepers]
    try:
        async with callbacks.receiving(engine, store, opts, hooks.receiver):
            outcome = await engine.run()
        balance = await money.finish_run()  # refunds seen, the balance as the run leaves it
        if outcome.account_error is not None and balance is not None:
            outcome.how += f" (balance {usd(balance)})"
        if money.spending.cap is not None or outcome.exit_code in (EXIT_ACCOUNT, EXIT_BUDGET):
            outcome.messages.append(money.summary())
        if setup is not None:
            outcome.messages.extend(setup.pool.summary())
        return outcome
    finally:
        for task in keeping:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if deadline is not None:
            deadline.cancel()
        await inputs.aclose()


def _margin_of(opts: RunOptions) -> Callable[[float], float]:
    """The rate margin for an account's window: the run's --rate-margin, or the default."""
    given = opts.limits.rate_margin_s
    return lambda period: given if given is not None else default_rate_margin(period)


def retried(
    call: Callable[[], Awaitable[T]], backoff: Backoff, rng: random.Random, tries: int = 4
) -> Callable[[], Awaitable[T]]:
    """`call` tried again, with the run's backoff, after answers that say nothing about it (a
    5xx, a 429, a cut connection): a balance read is a GET and creates nothing."""

    async def again() -> T:
        for attempt in range(tries - 1):
            try:
                return await call()
            except (ServerError, RateLimited, ApiConnectionError):
                await asyncio.sleep(backoff_delay(attempt, backoff, rng))
        return await call()

    return again
