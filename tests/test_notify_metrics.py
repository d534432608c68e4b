"""Issue 30: --metrics-file, read back with the official Prometheus text parser. Written at
the end of every run and every "minute" of the run's clock while it runs; other batches'
series kept; the last success kept through a failing run."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

import batchgen
from batchgen.notify import metrics
from batchgen.notify.run import RunNotices
from batchgen.settings import SANDBOX_TIME_SCALE, NotifySettings, RunOptions
from tests.notifykit import manifest

pytestmark = pytest.mark.timeout(180)

OTHER = """# HELP batchgen_jobs Jobs of the batch, by state.
# TYPE batchgen_jobs gauge
batchgen_jobs{batch="other",state="done"} 7
# HELP node_textfile_custom Someone else's metric.
# TYPE node_textfile_custom gauge
node_textfile_custom 42
"""


def parse(path: Path) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the file: (name, sorted labels) -> value (raises if malformed)."""
    out = {}
    for family in text_string_to_metric_families(path.read_text()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def one(samples: dict, name: str, batch: str = "nightly") -> float | None:
    return samples.get((name, (("batch", batch),)))


async def test_a_batch_that_fails_after_a_success_keeps_the_success_time(tmp_path: Path) -> None:
    prom = tmp_path / "textfile" / "batchgen.prom"
    prom.parent.mkdir()
    prom.write_text(OTHER)
    out = tmp_path / "out"
    first = await batchgen.run_async(
        manifest(tmp_path, ok=2), output=out, sandbox=True, notify={"metrics_file": str(prom)}
    )
    assert first.exit_code == 0
    after_ok = parse(prom)
    success = one(after_ok, metrics.LAST_SUCCESS)
    assert success is not None and success == one(after_ok, metrics.LAST_RUN)
    assert one(after_ok, metrics.LAST_EXIT) == 0
    requests_first = one(after_ok, metrics.REQUESTS)
    assert requests_first and requests_first > 0
    # The same batch, now with a job the provider refuses: the run fails.
    second = await batchgen.run_async(
        manifest(tmp_path, ok=2, failing=1),
        output=out,
        sandbox=True,
        notify={"metrics_file": str(prom)},
    )
    assert second.exit_code == 1
    after_fail = parse(prom)
    assert one(after_fail, metrics.LAST_EXIT) == 1
    assert one(after_fail, metrics.LAST_SUCCESS) == success  # kept from the previous file
    assert one(after_fail, metrics.LAST_RUN) >= success
    assert one(after_fail, metrics.LAST_DURATION) >= 0
    assert one(after_fail, metrics.REQUESTS) > requests_first  # a counter: it only grows
    assert one(after_fail, metrics.SPENT) > 0
    jobs = {
        dict(labels)["state"]: v
        for (name, labels), v in after_fail.items()
        if name == metrics.JOBS and dict(labels)["batch"] == "nightly"
    }
    # batchgen.run's sandbox starts each run's simulator with the same seed, so the new job's
    # task id may repeat an old one: the engine then calls it ambiguous, also exit 1.
    assert jobs["done"] == 2 and jobs["failed"] + jobs["ambiguous"] == 1 and jobs["pending"] == 0
    # Other batches' series and other exporters' metrics are kept as they were.
    assert after_fail[(metrics.JOBS, (("batch", "other"), ("state", "done")))] == 7
    assert after_fail[("node_textfile_custom", ())] == 42
    assert not list(prom.parent.glob("*.tmp"))  # written through a temporary file, renamed


async def test_no_success_no_success_time(tmp_path: Path) -> None:
    prom = tmp_path / "batchgen.prom"
    outcome = await batchgen.run_async(
        manifest(tmp_path, failing=1, ok=0),
        output=tmp_path / "o",
        sandbox=True,
        notify={"metrics_file": str(prom)},
    )
    assert outcome.exit_code == 1
    samples = parse(prom)
    assert one(samples, metrics.LAST_EXIT) == 1
    assert one(samples, metrics.LAST_SUCCESS) is None  # absent until a run succeeds


async def test_the_file_is_written_while_the_run_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Writes during the run carry no last-run series yet (none before this run); the one at
    the end does. Counted, not timed: the run lasts at least its first poll (1.2 s in the
    sandbox) and the ticker here comes every 50 ms."""
    writes: list[set[str]] = []
    real = metrics.write

    def counting(path: Path, batch: str, ours: dict[str, list[str]]) -> None:
        writes.append(set(ours))
        real(path, batch, ours)

    monkeypatch.setattr(metrics, "write", counting)
    prom = tmp_path / "m.prom"
    outcome = await batchgen.run_async(
        manifest(tmp_path, ok=1),
        output=tmp_path / "o",
        sandbox=True,
        notify=NotifySettings(metrics_file=prom, metrics_every_s=0.05),
    )
    assert outcome.exit_code == 0
    assert len(writes) >= 2
    assert all(metrics.LAST_EXIT not in w for w in writes[:-1])
    assert metrics.LAST_EXIT in writes[-1]
    parse(prom)


def test_the_minute_follows_the_runs_clock(tmp_path: Path) -> None:
    """Every poll_after (60 s by default), so --sandbox and --time-scale scale it."""
    from batchgen import store as st

    opts = RunOptions.from_flat(
        state_path=tmp_path / "s.db",
        output_dir=tmp_path,
        notify=NotifySettings(metrics_file=tmp_path / "m.prom"),
    )
    store = st.Store(opts.files.state_path)
    try:
        assert RunNotices(opts, store, 1)._every_s == 60.0
        scaled = opts.scaled(SANDBOX_TIME_SCALE)
        assert RunNotices(scaled, store, 1)._every_s == pytest.approx(60.0 * SANDBOX_TIME_SCALE)
        slower = opts.replace(poll_after_s=120.0)
        assert RunNotices(slower, store, 1)._every_s == 120.0
    finally:
        store.close()


def test_merge_replaces_only_this_batch() -> None:
    ours = metrics.samples('a"b', {"done": 1}, 0.5, 3, {})
    text = metrics.merge(OTHER, 'a"b', ours)
    again = metrics.merge(text, 'a"b', metrics.samples('a"b', {"done": 2}, 0.5, 4, {}))
    families = {f.name: f for f in text_string_to_metric_families(again)}
    jobs = {
        (s.labels["batch"], s.labels["state"]): s.value for s in families["batchgen_jobs"].samples
    }
    assert jobs == {("other", "done"): 7, ('a"b', "done"): 2}
    assert again.count("# TYPE batchgen_jobs gauge") == 1
