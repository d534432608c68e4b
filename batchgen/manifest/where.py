"""Where a manifest's run writes: one rule for every path.

A relative path written *in a manifest* (an image, `jobs_csv`, `output.dir`) is read against
the manifest's own folder, so a manifest means the same wherever it is run from; a path given
*on the command line* (`--output`, `--state`) and the default `output/<name>` are read against
the current directory, as any command's arguments are. Before issue 26, `output.dir` alone was
read against the current directory: `former_output` finds a state file left there, so a run
never starts a second, empty state file beside a batch already paid for.
"""

from __future__ import annotations

import os
from pathlib import Path

from batchgen.errors import UsageError
from batchgen.manifest.jobs import Manifest

STATE_NAME = "batchgen.db"


def is_url(text: str) -> bool:
    return "://" in text


def written_output(manifest: Manifest) -> str | None:
    """`output.dir` as the manifest means it: relative to the manifest's folder (a bucket URL
    as written)."""
    written = manifest.output_dir
    if not written or is_url(written) or os.path.isabs(written):
        return written
    return os.path.normpath(os.path.join(os.path.dirname(manifest.path) or ".", written))


def output_of(manifest: Manifest, given: str | os.PathLike[str] | None = None) -> str:
    """The output: `given` (--output, relative to the current directory), else the manifest's
    `output.dir` (relative to the manifest), else `output/<name>`. A path or a bucket URL."""
    if given:
        return str(given)
    return written_output(manifest) or str(Path("output") / manifest.name)


def shown(path: str | os.PathLike[str]) -> str:
    """A path as the user would type it from here: relative when under the current folder."""
    text = str(path)
    if is_url(text):
        return text
    try:
        rel = os.path.relpath(text)
    except ValueError:  # another drive (Windows)
        return text
    return text if rel.startswith("..") else rel


def check_former_output(manifest: Manifest, output: str, state: str | None) -> None:
    """Refuse (exit 2) when `output.dir`, read the old way (against the current directory),
    holds a state file and the new place holds none: a run there would pay again for the
    batch. The user moves the folder, or names it with --output."""
    written = manifest.output_dir
    if state or not written or is_url(written) or os.path.isabs(written):
        return
    old = Path(written)
    new = Path(output)
    if old.resolve() == new.resolve() or (new / STATE_NAME).exists():
        return
    if (old / STATE_NAME).exists():
        raise UsageError(
            f"{manifest.path}: output.dir {written!r} is now read against the manifest's "
            f"folder ({shown(new)}), and holds no state file, but {shown(old)} (the same dir "
            f"read against the current folder, as before) does. Run with --output {shown(old)} "
            f"to continue that batch, or move {shown(old)} to {shown(new)}"
        )
