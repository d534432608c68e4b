"""Issue 26: the Python API says what it is and takes what the CLI takes.

`batchgen.outcome()` returned a dict while `run` returned a RunOutcome; `dir(batchgen)` showed
nothing of the API; `max_spend=3` was refused (only `max_spend_micros`) without a did-you-mean.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import batchgen
from batchgen import store as st
from batchgen.errors import UsageError

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    shutil.copy(ROOT / "manifests" / "example.yaml", tmp_path / "example.yaml")
    monkeypatch.chdir(tmp_path)
    return tmp_path / "example.yaml"


def test_dir_shows_the_api() -> None:
    shown = dir(batchgen)
    for name in ("load", "run", "run_async", "results", "outcome", "RunOutcome", "ManifestError"):
        assert name in shown and name in batchgen.__all__, name
        assert getattr(batchgen, name) is not None
    assert "annotations" not in shown and "Any" not in shown


def test_outcome_is_a_run_outcome_like_run_and_keeps_the_counts_by_state(example: Path) -> None:
    ran = batchgen.run(example, sandbox=True)
    later = batchgen.outcome("output/demo/batchgen.db")
    assert isinstance(later, batchgen.RunOutcome) and isinstance(ran, batchgen.RunOutcome)
    assert (later.exit_code, later.counts) == (ran.exit_code, ran.counts) == (0, ran.counts)
    assert later["done"] == later.counts["done"] == 8  # the dict's use still works


def test_max_spend_in_usd_and_a_did_you_mean(example: Path) -> None:
    with pytest.raises(UsageError, match=r"max_inflight \(did you mean max_in_flight\?\)"):
        batchgen.run(example, sandbox=True, max_inflight=3)
    ran = batchgen.run(example, sandbox=True, max_spend=1)  # $6.30 of jobs under a $1 cap
    assert ran.exit_code == 5, ran.how
    store = st.Store(Path("output/demo/batchgen.db"), readonly=True)
    try:
        assert store.get_meta("max_spend_micros") == "1000000"
    finally:
        store.close()
    assert batchgen.outcome("output/demo/batchgen.db").exit_code == 5
    with pytest.raises(UsageError, match="not both"):
        batchgen.run(example, sandbox=True, max_spend=1, max_spend_micros=1)
    with pytest.raises(UsageError, match="max_spend: not an amount of USD"):
        batchgen.run(example, sandbox=True, max_spend="lots")
    assert batchgen.run(example, sandbox=True, max_spend="none").exit_code == 0


def test_a_sandbox_batch_is_not_continued_against_the_api(example: Path) -> None:
    batchgen.run(example, sandbox=True)
    with pytest.raises(UsageError, match="holds a --sandbox batch"):
        batchgen.run(example, api_key="sk-test-0123456789", base_url="http://127.0.0.1:9/api/v1")
