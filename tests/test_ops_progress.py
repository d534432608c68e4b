"""Progress: the renderers, the one-line and JSON formats off a terminal, and the live display
checked on a real pseudo-terminal (tmux): what the screen shows, not what bytes were sent."""

from __future__ import annotations

import asyncio
import io
import json
import re
import shlex
import shutil
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from batchgen.simulator import Simulator
from batchgen.ui.progress import Progress
from batchgen.ui.snapshot import Meter, Readings, Snapshot, read_engine, render_line
from tests.enginekit import KEY, SCALE, mixed_jobs, prepare_state
from tests.opskit import env, finish, resume_argv, spawn

ANSI = re.compile(r"\x1b\[")


def _snap(**kw) -> Snapshot:
    base = dict(elapsed_s=75, counts={"pending": 3, "in_flight": 4, "done": 12, "failed": 1},
                in_flight=4, cap=5, requests_sent=90, requests_in_window=40, rate_limit=100,
                rate_period_s=60.0, requests_per_s=2.5, downloaded_bytes=3_000_000,
                bytes_per_s=1_500_000, eta_s=125)  # fmt: skip
    base.update(kw)
    return Snapshot(**base)


def test_one_line_summary_has_every_figure() -> None:
    line = render_line(_snap())
    assert line == (
        "progress 1m15s: done 12/20, failed 1, ambiguous 0, pending 3, in flight 4/5, "
        "downloading 0, requests 2.5/s (window 40/100 per 60s), download 1.5 MB/s, eta 2m05s"
    )


def test_live_frame_is_cut_to_the_terminal_width_and_redrawn_in_place() -> None:
    out = io.StringIO()
    p = Progress(out, "live", width=lambda: 40)
    p.draw(_snap())
    first = out.getvalue()
    assert "\x1b[" not in first.split("\n")[0][4:]  # a first frame moves nothing up
    lines = first.split("\n")[:-1]
    assert all(len(ANSI.sub("", line).replace("2K", "")) <= 39 for line in lines)
    p.draw(_snap())
    assert out.getvalue()[len(first) :].startswith(f"\r\x1b[{len(lines)}A\x1b[J")


def test_meter_and_eta_from_the_completion_rate() -> None:
    m = Meter(horizon=5.0)
    assert m.rate() is None
    for t in range(11):
        m.add(float(t), 10.0 * t)
    assert m.rate() == pytest.approx(10.0)
    engine = SimpleNamespace(
        stats=SimpleNamespace(downloaded_bytes=0, started_at=time.monotonic(), rate_limited=0),
        cap=SimpleNamespace(in_flight=2, cap=4),
        client=SimpleNamespace(
            requests_sent=0, _limiter=SimpleNamespace(in_window=0, limit=10, period=1.0)
        ),
        stopping=False,
    )
    r = Readings()
    snap = read_engine(engine, r, 0.0, {"pending": 10, "done": 0})
    assert snap.eta_s is None  # nothing finished yet: no estimate
    snap = read_engine(engine, r, 10.0, {"pending": 5, "done": 5})
    assert snap.eta_s == pytest.approx(10.0)  # 5 left at 0.5 per second
    assert read_engine(engine, r, 11.0, {"done": 10}).eta_s == 0.0


async def _run_piped(tmp_path: Path, *extra: str) -> tuple[int, str]:
    state = prepare_state(tmp_path, mixed_jobs(12, tag=tmp_path.name))
    async with Simulator(api_keys=frozenset({KEY}), time_scale=SCALE, seed=2) as sim:
        code, _, err = await finish(await spawn(resume_argv(state, sim.base_url, *extra)))
    return code, err


async def test_off_a_terminal_one_line_summaries_at_a_steady_interval(tmp_path: Path) -> None:
    code, err = await _run_piped(tmp_path, "--progress-every", "0.2")
    assert code == 0, err
    assert not ANSI.search(err), err
    lines = [line for line in err.splitlines() if line.startswith("progress ")]
    assert len(lines) >= 3, err
    pattern = re.compile(
        r"progress \S+: done \d+/12, failed \d+, ambiguous \d+, pending \d+, in flight \d+/8, "
        r"downloading \d+, requests \S+ \(window \d+/10000 per 0.6s\), download .+/s, eta \S+"
    )
    assert all(pattern.fullmatch(line) for line in lines), lines
    assert lines[-1].startswith("progress") and "done 12/12" in lines[-1]
    assert err.splitlines()[-2] == "finished: done 12"


async def test_json_log_format_is_one_object_per_line(tmp_path: Path) -> None:
    code, err = await _run_piped(tmp_path, "--log-format", "json", "--progress-every", "0.2")
    assert code == 0, err
    events = [json.loads(line) for line in err.splitlines()]  # every line is JSON
    kinds = [e["event"] for e in events]
    assert kinds.count("progress") >= 2 and kinds[-2:] == ["final", "summary"], kinds
    assert events[-1]["exit_code"] == 0 and events[-1]["counts"]["done"] == 12
    p = events[-2]
    assert {"counts", "in_flight", "cap", "requests_per_s", "requests_in_window", "rate_limit",
            "bytes_per_s", "eta_s", "ts"} <= set(p)  # fmt: skip


async def test_quiet_prints_nothing_on_success(tmp_path: Path) -> None:
    code, err = await _run_piped(tmp_path, "--quiet", "--progress-every", "0.1")
    assert (code, err) == (0, "")


async def _tmux(sock: Path, *args: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        "tmux", "-S", str(sock), *args, env=env(),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err
    return out.decode()


@pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")
async def test_live_display_on_a_pseudo_terminal(tmp_path: Path) -> None:
    state = prepare_state(tmp_path, mixed_jobs(30, tag="tty"))
    sock = tmp_path / "tmux.sock"
    async with Simulator(api_keys=frozenset({KEY}), time_scale=SCALE, seed=8) as sim:
        argv = resume_argv(state, sim.base_url, in_flight=6)
        command = f"{shlex.join(argv)}; echo EXIT=$?; sleep 120"
        await _tmux(sock, "new-session", "-d", "-x", "120", "-y", "40", command)
        try:
            frames: list[str] = []
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                screen = await _tmux(sock, "capture-pane", "-p")
                frames.append(screen)
                if "EXIT=" in screen:
                    break
                await asyncio.sleep(0.1)
        finally:
            await _tmux(sock, "kill-server")
    final = frames[-1]
    assert "EXIT=0" in final, final
    mid = [f for f in frames if "batchgen  running" in f]
    assert mid, frames[-3:]
    live = "\n".join(mid)
    assert re.search(r"  tasks     [1-6]/6 in flight \(cap\)", live), live
    assert re.search(r"  requests  [\d.]+/s of 16666\.7/s allowed · \d+/10000 in the 0\.6s", live)
    assert re.search(r"  jobs      .*in flight \d+", live)
    assert re.search(r"  eta       (\d+s|\dm\d\ds) left", live), live  # an estimate appeared
    assert re.search(r"  download  [\d.]+ KB/s", live), live
    # Redrawn in place: every screen holds one display, never a scroll of old frames.
    assert all(f.count("batchgen  ") <= 1 and f.count("  tasks ") <= 1 for f in frames)
    # The last frame stays, with the final counts, above the summary.
    assert "30/30 finished (100%)" in final and "  jobs      done 30" in final
    assert "finished: done 30" in final
    assert not ANSI.search(final)  # the screen shows text, not escape codes
