"""The Python entry point: load a manifest, run it to completion (or for a while), read the
outcome, from a notebook or a scheduler task, with no command line.

    import batchgen

    manifest = batchgen.load("manifests/example.yaml")   # ManifestError names file and line
    outcome = batchgen.run(manifest, output="output/demo", sandbox=True)
    print(outcome.exit_code, outcome.counts["done"])
    print(batchgen.outcome("output/demo/batchgen.db"))    # later, from the state file alone

`run` takes the same settings as `batchgen run` (RunOptions' flat names,
settings.FLAT_NAMES, e.g. `max_in_flight=50`, `poll_after_s=30`, `max_spend_micros=...`) and
the same promises hold: one run per state file (StateLock), a second run continues the first,
nothing paid twice. It returns the engine's RunOutcome; its `exit_code` is the CLI's (0, 1,
3, 5, 75). Bad input raises the CLI's exceptions (ManifestError, UsageError, StateError), each
with the message the CLI prints.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from batchgen import exitcodes
from batchgen import store as st
from batchgen.adapters.lock import StateLock
from batchgen.durations import parse_duration
from batchgen.engine import RunOutcome
from batchgen.errors import UsageError
from batchgen.hooks import RunHooks
from batchgen.manifest import Manifest, load_manifest, notify_block, where
from batchgen.money.prices import parse_key, to_micros
from batchgen.notify import config as notify_config
from batchgen.runner import execute
from batchgen.runsettings import record_manifest
from batchgen.sandbox import refuse_other_world, sandbox
from batchgen.settings import (
    FLAT_NAMES,
    SANDBOX_KEY,
    SANDBOX_TIME_SCALE,
    NotifySettings,
    RunOptions,
    read_api_key,
)
from batchgen.states import UNSUCCESSFUL, WORK_LEFT
from batchgen.store import Store

__all__ = ["load", "outcome", "results", "run", "run_async"]


def load(path: str | os.PathLike[str]) -> Manifest:
    """Read and validate a YAML or CSV manifest (ManifestError lists every problem, each
    with its file and line or row)."""
    return load_manifest(str(path))


def budget_settings(budget: dict[str, Any] | None, model: str) -> dict[str, Any]:
    """A manifest's `budget:` block as RunOptions fields (the CLI's options win over it)."""
    budget = budget or {}
    out: dict[str, Any] = {}
    try:
        if budget.get("max_spend") is not None:
            out["max_spend_micros"] = to_micros(budget["max_spend"])
        given = (budget.get("prices") or {}).items()
        prices = {parse_key(str(k), model): to_micros(v) for k, v in given}
    except ValueError as exc:
        raise UsageError(f"budget: {exc}") from None
    if prices:
        out["price_overrides"] = prices
    if budget.get("yes") is True:
        out["spend_past_balance"] = True
    return out


def run(
    manifest: Manifest | str | os.PathLike[str],
    *,
    output: str | os.PathLike[str] | None = None,
    state: str | os.PathLike[str] | None = None,
    sandbox: bool = False,
    resubmit_changed: bool = False,
    add_to_state: bool = False,
    notify: dict[str, Any] | NotifySettings | None = None,
    on_result: Callable[[dict[str, Any]], None] | None = None,
    **settings: Any,
) -> RunOutcome:
    """Run a manifest to completion (or until `max_runtime_s`): see `run_async`."""
    return asyncio.run(
        run_async(
            manifest,
            output=output,
            state=state,
            sandbox=sandbox,
            resubmit_changed=resubmit_changed,
            add_to_state=add_to_state,
            notify=notify,
            on_result=on_result,
            **settings,
        )
    )


async def run_async(
    manifest: Manifest | str | os.PathLike[str],
    *,
    output: str | os.PathLike[str] | None = None,
    state: str | os.PathLike[str] | None = None,
    sandbox: bool = False,
    resubmit_changed: bool = False,
    add_to_state: bool = False,
    notify: dict[str, Any] | NotifySettings | None = None,
    on_result: Callable[[dict[str, Any]], None] | None = None,
    **settings: Any,
) -> RunOutcome:
    """`batchgen run` as a coroutine. `settings` are RunOptions fields; the API key comes
    from `api_key=` or APIXO_API_KEY. `sandbox=True` runs against the built-in simulator at
    its usual time scale (no key, no network). `notify` takes the manifest's `notify:` keys
    (urls, json, on, ping, metrics_file), each replacing the manifest's, or NotifySettings.
    `add_to_state=True` adds the jobs to a state file another manifest ran in (else refused).
    `on_result` is called with each job's record (`batchgen report`'s fields) as the job
    finishes (done, failed, ambiguous, ...); one that raises never changes the run."""
    m = manifest if isinstance(manifest, Manifest) else load(manifest)
    output_dir = Path(where.output_of(m, output))
    if not output:
        where.check_former_output(m, str(output_dir), str(state) if state else None)
    state_path = Path(state) if state else output_dir / "batchgen.db"
    fields = {**budget_settings(m.budget, m.model), **_image_settings(m), **_usd(settings)}
    fields |= _notify_settings(m, notify)
    unknown = sorted(set(fields) - FLAT_NAMES.keys())
    if unknown:
        raise UsageError(f"not a run setting: {', '.join(map(_did_you_mean, unknown))}")
    if sandbox and ("base_url" in fields or "api_key" in fields):
        raise UsageError("sandbox=True runs against the built-in simulator: drop base_url/api_key")
    opts = RunOptions.from_flat(
        state_path=state_path,
        output_dir=output_dir,
        model=m.model,
        filename_template=m.filename_template,
        **fields,
    )
    if m.local_images and not opts.files.image_store and not sandbox:
        n = len(m.local_images)
        raise UsageError(f"{m.path}: {n} local image or video file(s) need image_store=")
    if sandbox:
        opts = opts.replace(
            api_key=SANDBOX_KEY,
            serve_local_images=True,  # image files without a store: served on loopback
            proxy_env=False,  # the simulator and its files are on loopback
            proxy=None,
            account_db="none",  # the run's own simulator: no other run shares its account
        ).scaled(SANDBOX_TIME_SCALE)
    elif not opts.api.api_key:
        opts = opts.replace(api_key=read_api_key(None))
    with StateLock(state_path):
        refuse_other_world(state_path, sandbox)
        record_manifest(m, opts, resubmit_changed=resubmit_changed, add_to_state=add_to_state)
        async with _simulator(opts, sandbox) as run_opts:
            return await execute(run_opts, RunHooks(on_result=on_result))


async def results(
    manifest: Manifest | str | os.PathLike[str], **kwargs: Any
) -> AsyncIterator[dict[str, Any]]:
    """Run a manifest and yield each job's record as the job finishes, for notebooks and
    schedulers: `async for job in batchgen.results("m.yaml", sandbox=True): ...`. Takes
    `run_async`'s arguments; the run's own exception, if any, comes out of the loop. The
    outcome is in `batchgen.outcome(state)` after it."""
    if "on_result" in kwargs:
        raise UsageError("results() yields the records itself: drop on_result=")
    queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
    task = asyncio.ensure_future(run_async(manifest, on_result=queue.put_nowait, **kwargs))
    task.add_done_callback(lambda _: queue.put_nowait(None))
    try:
        while (record := await queue.get()) is not None:
            yield record
        task.result()  # the run's exception, if it raised
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _usd(settings: dict[str, Any]) -> dict[str, Any]:
    """`max_spend=3` (USD, as the CLI's --max-spend and the manifest's budget take it) is the
    setting `max_spend_micros=3_000_000`; "none" removes a recorded cap, as `--max-spend none`
    does; None is not given (a recorded cap stays)."""
    if settings.get("max_spend") is None:
        return {k: v for k, v in settings.items() if k != "max_spend"}
    out = dict(settings)
    value = out.pop("max_spend")
    if "max_spend_micros" in out:
        raise UsageError("give max_spend (USD) or max_spend_micros, not both")
    try:
        none = isinstance(value, str) and value.strip().lower() == "none"
        out["max_spend_micros"] = -1 if none else to_micros(value)
    except ValueError as exc:
        raise UsageError(f"max_spend: {exc}") from None
    return out


def _did_you_mean(name: str) -> str:
    import difflib

    close = difflib.get_close_matches(name, list(FLAT_NAMES), n=1)
    return f"{name} (did you mean {close[0]}?)" if close else name


def _notify_settings(m: Manifest, given: dict[str, Any] | NotifySettings | None) -> dict[str, Any]:
    """notify= over the manifest's `notify:` block, key by key (a NotifySettings: as is)."""
    if isinstance(given, NotifySettings):
        return {"notify": given}
    if given is not None and not isinstance(given, dict):
        raise UsageError("notify= takes a dict (urls, json, on, ping, metrics_file)")
    chosen = notify_config.combine(given or {}, notify_block(m), "notify")
    return {"notify": chosen} if chosen else {}


def _image_settings(m: Manifest) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if m.image_store:
        out["image_store"] = m.image_store
    if m.image_url_ttl:
        try:
            out["image_url_ttl_s"] = parse_duration(m.image_url_ttl)
        except ValueError as exc:
            raise UsageError(f"images.url_ttl: {exc}") from None
    return out


@contextlib.asynccontextmanager
async def _simulator(opts: RunOptions, on: bool) -> AsyncIterator[RunOptions]:
    """The run's settings, pointed at the sandbox's simulator when `on` (sandbox.py: the same
    journal as the CLI's --sandbox, so a second run meets the first run's tasks)."""
    if not on:
        yield opts
        return
    async with sandbox(opts, time_scale=SANDBOX_TIME_SCALE) as run_opts:
        yield run_opts


def outcome(state: str | os.PathLike[str]) -> RunOutcome:
    """How the state file's batch stands, read without changing it (a run may hold it): a
    RunOutcome as `run` returns, its exit code the one a run would end with now (75 work
    left, 5 jobs left by the money, 1 some unsuccessful, 0 done). Its counts are also
    reachable by state (`outcome(s)["done"]`), as when this returned a dict of them."""
    store = Store(Path(state), readonly=True)
    try:
        counts = {str(k): v for k, v in store.jobs.counts().items()}
        money = store.ledger.budget_noted() if counts.get(st.PENDING) else 0
    finally:
        store.close()
    if money:
        code, how = exitcodes.BUDGET, f"{money} job(s) pending, not submitted for the money"
    elif any(counts.get(s) for s in WORK_LEFT):
        code, how = exitcodes.WORK_LEFT, "work left"
    elif any(counts.get(s) for s in UNSUCCESSFUL):
        code, how = exitcodes.SOME_FAILED, "finished, some jobs did not succeed"
    else:
        code, how = exitcodes.OK, "finished"
    return RunOutcome(exit_code=code, how=how, counts=counts)
