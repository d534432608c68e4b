"""A local input file (image or video) checked before anything reads it: named, there, a
regular file, and not over its size limit."""

from __future__ import annotations

import os
import stat
from pathlib import Path


def regular_file(path: Path, max_bytes: int, limit: str) -> os.stat_result | str:
    """A local input file's stat, or why it cannot be sent (a message for the user): the
    first checks of every local image and video."""
    if "\x00" in str(path):  # os.stat raises ValueError, not OSError, on a NUL byte
        return f"not a file name (it holds a NUL character): {str(path)!r}"
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return f"no such file: {path}"
    except OSError as exc:
        return f"cannot read {path}: {exc.strerror or exc.__class__.__name__}"
    if not stat.S_ISREG(info.st_mode):
        return f"not a regular file: {path}"
    if info.st_size > max_bytes:
        return f"{path} is {info.st_size / 1e6:.1f} MB, over {limit}"
    return info
