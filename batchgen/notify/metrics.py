"""--metrics-file: the batch's figures in Prometheus text format, for node_exporter's textfile
collector, written atomically (a temporary file, then a rename) so a scrape never reads half.

One file may serve several batches: each write replaces this batch's series only and keeps
every other line. `batchgen_last_success_timestamp_seconds` is carried over from the file
while runs do not succeed (absent until one does), and `batchgen_api_requests_total` adds this
run's requests to what the file held when the run started, so it only grows.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: writers of one file are not serialised
    fcntl = None  # type: ignore[assignment]

JOBS = "batchgen_jobs"
SPENT = "batchgen_spent_usd"
LAST_RUN = "batchgen_last_run_timestamp_seconds"
LAST_EXIT = "batchgen_last_run_exit_code"
LAST_DURATION = "batchgen_last_run_duration_seconds"
LAST_SUCCESS = "batchgen_last_success_timestamp_seconds"
REQUESTS = "batchgen_api_requests_total"

FAMILIES: dict[str, tuple[str, str]] = {
    JOBS: ("gauge", "Jobs of the batch, by state."),
    SPENT: ("gauge", "USD spent or reserved by the batch's state file, less refunds."),
    LAST_RUN: ("gauge", "When the batch's last run ended, in Unix time."),
    LAST_EXIT: ("gauge", "The exit code of the batch's last run (0 done, 75 work left)."),
    LAST_DURATION: ("gauge", "How long the batch's last run took, in seconds."),
    LAST_SUCCESS: ("gauge", "When a run of the batch last ended with exit 0, in Unix time."),
    REQUESTS: ("counter", "API requests sent for the batch by the runs that wrote this file."),
}
_BATCH = re.compile(r'[{,]\s*batch="((?:[^"\\]|\\.)*)"')
_COMMENT = re.compile(r"#\s+(?:HELP|TYPE)\s+(\S+)")


@dataclass(frozen=True)
class RunEnd:
    exit_code: int
    ended_at: float  # Unix time
    duration_s: float


def escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _unescape(value: str) -> str:
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), value)


def _blocks(text: str) -> list[tuple[str | None, list[str], list[str]]]:
    """The file as (family, its comment lines, its sample lines), in order."""
    blocks: list[tuple[str | None, list[str], list[str]]] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        comment = _COMMENT.match(line)
        if comment:
            if not blocks or blocks[-1][0] != comment.group(1) or blocks[-1][2]:
                blocks.append((comment.group(1), [], []))
            blocks[-1][1].append(line)
        elif line.startswith("#"):
            continue
        else:
            if not blocks:
                blocks.append((None, [], []))
            blocks[-1][2].append(line)
    return blocks


def _batch_of(sample: str) -> str | None:
    found = _BATCH.search(sample)
    return _unescape(found.group(1)) if found else None


def previous(path: Path, batch: str) -> dict[str, float]:
    """This batch's label-less series (beyond `batch`) in the file now: name -> value."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return {}
    out: dict[str, float] = {}
    for _family, _comments, samples in _blocks(text):
        for sample in samples:
            name = re.split(r"[{\s]", sample, maxsplit=1)[0]
            if name in FAMILIES and name != JOBS and _batch_of(sample) == batch:
                with contextlib.suppress(ValueError, IndexError):
                    out[name] = float(sample.rsplit(None, 1)[1])
    return out


def samples(
    batch: str,
    counts: dict[str, int],
    spent_usd: float,
    requests_total: float,
    last: dict[str, float],
) -> dict[str, list[str]]:
    """This batch's sample lines by family. `last` holds the last-run series to write (this
    run's end, else the previous file's)."""
    b = f'batch="{escape(batch)}"'
    out: dict[str, list[str]] = {
        JOBS: [f'{JOBS}{{{b},state="{escape(s)}"}} {n}' for s, n in counts.items()],
        SPENT: [f"{SPENT}{{{b}}} {spent_usd:.6f}"],
        REQUESTS: [f"{REQUESTS}{{{b}}} {requests_total:g}"],
    }
    for name in (LAST_RUN, LAST_EXIT, LAST_DURATION, LAST_SUCCESS):
        if name in last:
            out[name] = [f"{name}{{{b}}} {_number(last[name])}"]
    return out


def _number(value: float) -> str:
    return f"{value:.3f}".rstrip("0").rstrip(".")


def merge(text: str, batch: str, ours: dict[str, list[str]]) -> str:
    """The file's text with this batch's series replaced by `ours`, all else kept."""
    lines: list[str] = []
    written: set[str] = set()
    for family, comments, sample_lines in _blocks(text):
        if family in FAMILIES:
            kept = [s for s in sample_lines if _batch_of(s) != batch]
            mine = ours.get(family, []) if family not in written else []
            written.add(family)
            if kept or mine:
                lines += [*comments, *kept, *mine]
        else:
            lines += [*comments, *sample_lines]
    for family, (kind, help_text) in FAMILIES.items():
        if family not in written and ours.get(family):
            lines += [f"# HELP {family} {help_text}", f"# TYPE {family} {kind}", *ours[family]]
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Two batches writing one file at once: each read-merge-write in turn."""
    if fcntl is None:
        yield
        return
    with open(path.with_name(path.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def write(path: Path, batch: str, ours: dict[str, list[str]]) -> None:
    """Merge `ours` into the file and replace it atomically (blocking: call off the loop)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with _locked(path):
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            text = ""
        merged = merge(text, batch, ours)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(merged)
            os.chmod(tmp, 0o644)  # the collector runs as another user
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
