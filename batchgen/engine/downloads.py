"""Results to disk: the download queue and workers, file names, what a failed download means,
and the start-up audit of files recorded as done. One `Downloads` per run, on the run's context."""

from __future__ import annotations

import logging
from pathlib import Path

from batchgen import store as st
from batchgen.adapters.download.attempt import Downloader
from batchgen.adapters.paths import render_filename, safe_output_path
from batchgen.core import verdicts
from batchgen.core.policy import (
    backoff_delay,
)
from batchgen.core.verdicts import Act
from batchgen.engine.context import RunContext
from batchgen.store import views

log = logging.getLogger("batchgen.engine")


class Downloads:
    """Fetching and recording a finished job's files, through `downloader`."""

    def __init__(self, run: RunContext, downloader: Downloader) -> None:
        self.run = run
        self.downloader = downloader

    async def worker(self) -> None:
        """Takes succeeded jobs off the run's queue until it hands out None."""
        run = self.run
        while True:
            seq = await run.downloads.get()
            try:
                if seq is None:
                    return
                if not run.stops.all.is_set() and run.stops.disk_full is None:
                    await self._download_job(seq)
            finally:
                run.downloads.task_done()

    async def _download_job(self, seq: int) -> None:
        run = self.run
        row = run.store.jobs.by_seq(seq)
        if row is None or row.state != st.SUCCEEDED:
            return
        files = run.store.jobs.files_of(seq)
        mode = row.mode or ""
        missing = [f for f in files if f.done_at is None]
        if not missing:
            run.store.moves.mark_done(seq)
            run.stats.done += 1
            return
        for f in missing:
            try:
                rel = render_filename(
                    run.config.filename_template,
                    job_id=row.id,
                    index=f.idx,
                    task_id=row.task_id,
                    mode=mode,
                    n_results=len(files),
                    job_index=row.seq,
                    meta=run.store.job_meta.of(seq),
                )
                dest = safe_output_path(run.config.output_dir, rel)
            except ValueError as exc:  # a hostile id or task id, or a symlink pointing out
                self._expire_or_fail(row, f"no safe file name: {exc}", fail=True)
                return
            # The last file's record and the job's `done` share one transaction.
            ok = await self._download_file(row, f.idx, f.url, dest, last=f is missing[-1])
            if not ok:
                return
        run.stats.done += 1

    async def _download_file(
        self, row: st.JobRow, idx: int, url: str, dest: Path, *, last: bool = False
    ) -> bool:
        run = self.run
        for attempt in range(run.config.download_tries):
            try:
                result = await self.downloader.fetch(url, dest)
            except Exception as exc:
                verdict = verdicts.on_download(
                    exc,
                    now=run.wall(),
                    expires_at=run.store.jobs.expires_at(row.seq) or 0.0,
                    last_try=attempt + 1 >= run.config.download_tries,
                )
                if verdict is None:
                    raise
                if verdict.act is Act.STOP_RUN:
                    run.stops.disk_full = verdict.note
                    run.messages.append(f"output folder unusable: {verdict.note}")
                    run.request_stop("output folder full or not writable")
                    return False
                if verdict.act is Act.FAIL:
                    self._expire_or_fail(row, verdict.note, fail=True, code=verdict.code or "")
                    return False
                if verdict.act is Act.EXPIRE:
                    self._expire_or_fail(row, verdict.note)
                    return False
                if verdict.act is Act.LEAVE:
                    run.messages.append(f"{row.id}: {verdict.note}")
                    return False
                log.warning("%s: %s", row.id, verdict.note)  # Act.RETRY: back off, again
            else:
                run.stats.downloaded_bytes += result.fetched_bytes
                stamp = await self.downloader.sinks.stamp(result)
                run.store.moves.mark_file_done(
                    row.seq,
                    idx,
                    path=str(result.path.relative_to(run.config.output_dir)),
                    size=result.bytes,
                    sha256=result.sha256,
                    mtime_ns=stamp,
                    job_done=last,
                )
                return True
            if not await run.sleep(backoff_delay(attempt + 2, run.config.backoff, run.rng)):
                return False
        return False

    def _expire_or_fail(
        self, row: st.JobRow, message: str, *, fail: bool = False, code: str = "DOWNLOAD_REFUSED"
    ) -> None:
        run = self.run
        if fail:
            run.store.moves.mark_download_failed(row.seq, code, message)
            run.stats.failed += 1
        else:
            run.store.moves.mark_expired(row.seq, message)
            run.stats.expired += 1
        log.warning("%s: %s", row.id, message)

    async def audit(self) -> None:
        """Results recorded as done must still be where they were put, as they were (the
        sink judges: on a disk size and mtime, in a bucket the object's size and sha256): a
        missing or altered one is fetched again while its URL lives. One sink call per page."""
        run = self.run
        last = (0, -1)
        while not run.stops.all.is_set():
            rows = views.done_files_after(run.store.db, last, run.config.page_size)
            if not rows:
                return
            last = (rows[-1][0], rows[-1][1])
            intact = await self.downloader.sinks.intact(
                [
                    (run.config.output_dir / rel, size, sha, mtime)
                    for _, _, rel, size, sha, mtime, _, _ in rows
                    if rel is not None
                ]
            )
            marks = iter(intact)
            intact = [rel is None or next(marks) for _, _, rel, *_ in rows]
            requeue: set[int] = set()
            for (seq, idx, rel, _, _, _, expires, job_id), ok in zip(rows, intact, strict=True):
                if ok:
                    continue
                if expires is not None and run.wall() < expires:
                    run.store.moves.mark_file_missing(seq, idx)
                    requeue.add(seq)
                    log.warning("%s: %s is missing or altered; fetching it again", job_id, rel)
                else:
                    run.messages.append(
                        f"{job_id}: {rel} is missing or altered and its URL has expired"
                    )
            for seq in sorted(requeue):
                run.downloads.put_nowait(seq)
