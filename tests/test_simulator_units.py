"""The simulator's pure parts, with a fake clock: windows, lifecycle draws, file bytes, ranges."""

from __future__ import annotations

import hashlib
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from batchgen.simulator import SimConfig, expected_sha256
from batchgen.simulator.faults import FaultDice
from batchgen.simulator.files import UNSATISFIABLE, ResultFile, asset_bytes, parse_range
from batchgen.simulator.ratelimit import SlidingWindow, WindowMax
from batchgen.simulator.tasks import TaskStore, draw_task, task_id_for
from tests.conftest import make_body

# -- sliding window -------------------------------------------------------------------------


def test_window_exact_at_limit():
    w = SlidingWindow(limit=3, period=10.0)
    assert [w.try_acquire(t) for t in (0.0, 1.0, 2.0)] == [True, True, True]
    assert not w.try_acquire(9.999)  # request N+1 inside the window
    assert w.retry_after(9.999) == pytest.approx(0.001)
    assert w.try_acquire(10.0)  # the first one left the window (t - period, t]
    assert not w.try_acquire(10.5)
    assert w.try_acquire(11.0)


def test_window_rejections_do_not_consume():
    w = SlidingWindow(limit=2, period=1.0)
    assert w.try_acquire(0.0) and w.try_acquire(0.1)
    for t in (0.2, 0.5, 0.9):
        assert not w.try_acquire(t)
    assert w.try_acquire(1.0)
    assert w.count(1.0) == 2


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(0, 0.5, allow_nan=False), min_size=1, max_size=200),
    st.integers(1, 10),
    st.floats(0.1, 3.0),
)
def test_window_never_exceeds_limit_in_any_window(gaps, limit, period):
    w = SlidingWindow(limit, period)
    t, accepted = 0.0, []
    for g in gaps:
        t += g
        if w.try_acquire(t):
            accepted.append(t)
    for i, start in enumerate(accepted):  # every window (start - period, start]
        inside = [a for a in accepted[: i + 1] if a > start - period]
        assert len(inside) <= limit


def test_window_max_measures_busiest_window():
    m = WindowMax(1.0)
    for t in (0.0, 0.1, 0.2, 1.15, 1.16, 1.17, 1.18, 5.0):
        m.add(t)
    assert m.max == 5  # 0.2 and 1.15..1.18 all lie in (0.18, 1.18]


# -- lifecycle ------------------------------------------------------------------------------


@pytest.mark.parametrize(("duration", "lo", "hi"), [(5, 60, 90), (10, 90, 120)])
def test_generation_time_in_documented_range(duration, lo, hi):
    cfg = SimConfig(time_scale=0.01)
    for n in range(200):
        t = draw_task(cfg, task_id_for(0, n), make_body(duration=duration), 100.0, 0)
        assert lo * 0.01 <= t.end_s <= hi * 0.01
        assert 2 * 0.01 <= t.pending_s <= 10 * 0.01 < t.end_s
        assert t.state_at(100.0) == "pending"
        assert t.state_at(100.0 + t.pending_s + 1e-9) == "processing"
        assert t.state_at(100.0 + t.end_s - 1e-9) == "processing"
        assert t.state_at(100.0 + t.end_s + 1e-9) == "success"
        data = t.status_data(100.0 + t.end_s, "http://h")
        assert data["costTime"] == data["completeTime"] - data["createTime"]


def test_markers_give_exact_control():
    cfg = SimConfig(time_scale=1.0)
    cv = draw_task(cfg, "task_a", make_body("x [sim:content_violation]"), 0.0, 0)
    ii = draw_task(cfg, "task_b", make_body("x [sim:invalid_image]"), 0.0, 0)
    two = draw_task(cfg, "task_c", make_body("x [sim:two_results]"), 0.0, 0)
    slow = draw_task(cfg, "task_d", make_body("x [sim:slow]", duration=10), 0.0, 0)
    assert (cv.fail_code, ii.fail_code, two.fail_code) == (
        "CONTENT_VIOLATION",
        "INVALID_IMAGE_URL",
        None,
    )
    assert cv.state_at(cv.end_s) == "failed"
    data = cv.status_data(1000.0, "http://h")
    assert data["failMsg"] and "resultJson" not in data
    assert two.n_results == 2 and len(two.result_urls("http://h")) == 2
    assert slow.end_s == 120.0


def test_outcome_fractions_and_determinism():
    cfg = SimConfig(p_content_violation=0.2, p_invalid_image=0.1, seed=7)
    tasks = [draw_task(cfg, task_id_for(7, n), make_body(), 0.0, 0) for n in range(2000)]
    cv = sum(t.fail_code == "CONTENT_VIOLATION" for t in tasks) / 2000
    ii = sum(t.fail_code == "INVALID_IMAGE_URL" for t in tasks) / 2000
    assert 0.15 < cv < 0.25 and 0.06 < ii < 0.14
    again = [draw_task(cfg, task_id_for(7, n), make_body(), 0.0, 0) for n in range(2000)]
    assert tasks == again
    other = draw_task(cfg.replace(seed=8), task_id_for(7, 0), make_body(), 0.0, 0)
    assert other.end_s != tasks[0].end_s


def test_store_counts_in_flight_lazily():
    store = TaskStore(SimConfig(time_scale=0.01))
    tasks = [store.create(make_body(), float(i) * 0.1, 0) for i in range(5)]
    assert store.in_flight(0.4) == 5 and store.max_in_flight_seen == 5
    first_end = min(t.ends for t in tasks)
    assert store.next_free(0.4) == pytest.approx(first_end - 0.4)
    assert store.in_flight(max(t.ends for t in tasks)) == 0
    assert store.counts(100.0) == {"pending": 0, "processing": 0, "success": 5, "failed": 0}


# -- result bytes ---------------------------------------------------------------------------


def _boxes(data: bytes) -> list[tuple[bytes, int]]:
    out, i = [], 0
    while i < len(data):
        n, kind = struct.unpack(">I4s", data[i : i + 8])
        assert n >= 8
        out.append((kind, n))
        i += n
    assert i == len(data)
    return out


def test_default_file_is_the_mp4_plus_a_free_box_naming_the_task():
    f = ResultFile("task_1")
    data = f.read(0, f.size)
    assert data.startswith(asset_bytes())
    kinds = [k for k, _ in _boxes(data)]
    assert kinds[0] == b"ftyp" and b"moov" in kinds and kinds[-1] == b"free"
    assert b"task_1" in data
    assert hashlib.sha256(data).hexdigest() == f.sha256 == expected_sha256("task_1")
    assert expected_sha256("task_2") != f.sha256
    assert expected_sha256("task_1", index=1) != f.sha256
    assert expected_sha256("task_1", version=1) != f.sha256


@pytest.mark.parametrize("size", [1, 100, 2000, 70_000, 300_001])
def test_sized_files_are_exact_and_slices_agree(size):
    f = ResultFile("task_9", size=size)
    data = f.read(0, size)
    assert len(data) == size
    assert hashlib.sha256(data).hexdigest() == f.sha256
    for a, b in ((0, 1), (size // 3, size // 2 + 1), (size - 1, size), (5, 10**9)):
        assert f.read(a, b) == data[a:b]
    if size >= len(asset_bytes()) + 64:
        _boxes(data)  # still a well-formed box sequence (a playable MP4)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("bytes=0-", (0, 100)),
        ("bytes=10-19", (10, 20)),
        ("bytes=90-500", (90, 100)),
        ("bytes=-10", (90, 100)),
        ("bytes=-500", (0, 100)),
        ("bytes=100-", UNSATISFIABLE),
        ("bytes=-0", UNSATISFIABLE),
        ("bytes=5-3", None),
        ("bytes=0-1,5-6", None),
        ("items=0-1", None),
        ("bytes=abc", None),
    ],
)
def test_parse_range(header, expected):
    assert parse_range(header, 100) == expected


# -- config and dice ------------------------------------------------------------------------


def test_config_validates_and_scales():
    assert SimConfig(time_scale=0.01).scaled(75) == pytest.approx(0.75)
    assert SimConfig(api_keys="k").api_keys == frozenset({"k"})
    with pytest.raises(ValueError, match="p_5xx"):
        SimConfig(p_5xx=1.5)
    with pytest.raises(ValueError, match="results_per_task"):
        SimConfig(results_per_task=3)
    with pytest.raises(TypeError, match="nope"):
        SimConfig().replace(nope=1)


def test_fault_dice_are_seeded_and_independent():
    a = FaultDice(SimConfig(seed=3, p_5xx=0.3, p_slow=0.5))
    b = FaultDice(SimConfig(seed=3, p_5xx=0.3, p_slow=0.0))
    assert [a.roll("p_5xx") for _ in range(50)] == [b.roll("p_5xx") for _ in range(50)]
    assert not b.roll("p_slow")
    with pytest.raises(TypeError, match="p_bogus"):
        a.set(p_bogus=0.1)


def test_429_bursts_have_their_length():
    d = FaultDice(SimConfig(p_429=1.0, burst_429_len=3))
    assert all(d.in_429_burst() for _ in range(5))
    d.set(p_429=0.0)
    assert not d.in_429_burst()
    d.set(p_429=1.0)
    d.in_429_burst()
    d.set(p_429=0.5)
    d.p["p_429"] = 0.0  # the burst already started still runs its course
    assert [d.in_429_burst() for _ in range(3)] == [True, True, False]
