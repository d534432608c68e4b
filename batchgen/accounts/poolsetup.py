"""Building a run's account pool from `--accounts FILE`: each account's key (from its variable
or file), its client, its rate window and in-flight cap, and, with the account database on,
its own link there (shared limiter and cap, a keeper of its dead runs' tasks), as a run of one
key would have (accounts/session.py)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from batchgen import store as st
from batchgen.accounts.accountsfile import AccountSpec, load_accounts, with_keys
from batchgen.accounts.keeper import Keeper
from batchgen.accounts.pool import AccountPool, PooledAccount, missing_accounts
from batchgen.accounts.session import AccountLink, join
from batchgen.adapters.client import ApiClient
from batchgen.adapters.limits import SlidingWindowLimiter
from batchgen.engine.context import RunContext
from batchgen.engine.inflight import InFlightCap
from batchgen.engine.stops import StopReason
from batchgen.errors import AccountError, UsageError
from batchgen.settings import Pace, RunOptions

log = logging.getLogger("batchgen.accounts")

MakeClient = Callable[[str, SlidingWindowLimiter], ApiClient]  # (key, limiter) -> client


def check_accounts(opts: RunOptions, store: st.Store) -> list[AccountSpec]:
    """The accounts file's accounts (keys not read yet), or UsageError (exit 2, nothing
    written) when the state file needs an account the run does not have: a batch that ran
    over accounts resumed without the file, or a file missing an account that made tasks."""
    file = opts.accounts.accounts_file
    specs = load_accounts(file, opts.limits.rate_period_s) if file else None
    names = {s.name for s in specs} if specs is not None else None
    missing = missing_accounts(store, names)
    if missing:
        raise UsageError("; ".join(missing))
    return specs or []


class PoolSetup:
    """The pool, and each account's link to the account database (None: off)."""

    def __init__(self, pool: AccountPool, links: dict[str, AccountLink]) -> None:
        self.pool = pool
        self.links = links

    def attach(self, run: RunContext) -> list[Keeper]:
        """Bind each account's link to the engine (fail closed: no submits at all; stopped by
        another run of that account: that account only) and return the keepers to run."""

        def fail_closed(why: str) -> None:
            first = not run.stops.stopped_by(StopReason.ACCOUNT_DB)
            run.stops.stop_submitting(StopReason.ACCOUNT_DB, why)
            if first:
                log.error("%s", why)

        keepers: list[Keeper] = []
        for name, link in self.links.items():
            client = self.pool.accounts[name].client

            def stopped(why: str, name: str = name) -> None:
                run.account_stop(AccountError(402, why), name)

            async def ended(task_id: str, model: str, client: ApiClient = client) -> bool:
                return (await client.status(task_id, model=model or None)).terminal

            link.bind(fail_closed, stopped)
            keeper = link.keeper(ended)
            if keeper is not None:
                keepers.append(keeper)
        return keepers

    async def leave(self) -> None:
        for link in self.links.values():
            await link.leave()


async def open_pool(
    opts: RunOptions,
    store: st.Store,
    make_client: MakeClient,
    margin_of: Callable[[float], float],
    *,
    pace: Pace,
) -> PoolSetup:
    """Every account of the file, keys read (UsageError naming the account, never a key).
    `pace`: the run's durations, resolved once (accounts/session.py's `join`)."""
    specs = with_keys(check_accounts(opts, store))
    links: dict[str, AccountLink] = {}
    accounts: list[PooledAccount] = []
    store.set_meta("accounts", ",".join(s.name for s in specs))  # resume needs them all
    try:
        for spec in specs:
            limit, period = spec.rate or (opts.limits.rate_limit, opts.limits.rate_period_s)
            own = opts.replace(
                api_key=spec.key,
                rate_limit=limit,
                rate_period_s=period,
                max_in_flight=spec.max_in_flight or opts.limits.max_in_flight,
                account_name=None,
            )
            margin = margin_of(period)
            link = await join(own, store, period + margin, pace=pace, tasks_of=spec.name)
            links[spec.name] = link
            recovered = store.accounts.in_flight().get(spec.name, 0)
            cap = link.make_cap(recovered) or InFlightCap(
                own.limits.max_in_flight, recovered=recovered, slow_start=not opts.timing.no_wait
            )
            client = make_client(spec.key, link.limiter(period, margin))
            accounts.append(PooledAccount(spec, client, cap, store))
    except BaseException:
        for link in links.values():
            await link.leave()
        raise
    log.info("accounts: %s", ", ".join(s.name for s in specs))
    return PoolSetup(AccountPool(accounts, store), links)
