"""One image URL's verdict, as a value: made by inputs/preflight.py, kept by the store's image
records (store/images.py), so the store needs no import of the check that makes it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ImageCheck:
    """One URL's verdict. `error` None: the provider should be able to use it."""

    url: str
    kind: str | None = None
    size: int | None = None
    width: int | None = None
    height: int | None = None
    warnings: tuple[str, ...] = ()
    error: str | None = None
