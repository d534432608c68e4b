"""What `run` and `validate` say and do about a manifest's local image files."""

from __future__ import annotations

import argparse
import sys

from batchgen.errors import UsageError
from batchgen.manifest import Manifest

NEEDS_STORE = (
    "needs --image-store s3://BUCKET/PREFIX (or images: {store: s3://BUCKET/PREFIX} in the "
    "manifest) so the provider can fetch them; --sandbox serves them itself"
)


def settle_store(args: argparse.Namespace, manifest: Manifest) -> None:
    """The store and URL lifetime a run uses: the command line's, else the manifest's. A run
    with image files and no store stops here (exit 2), before anything is recorded or sent."""
    from batchgen.commands.argtypes import seconds as _seconds

    if getattr(args, "image_store", None) is None and manifest.image_store:
        args.image_store = manifest.image_store
    if getattr(args, "image_url_ttl", None) is None and manifest.image_url_ttl:
        args.image_url_ttl = _seconds(manifest.image_url_ttl)
    if manifest.local_images and not args.image_store and not args.sandbox:
        n = len(manifest.local_images)
        raise UsageError(f"{manifest.path}: {n} local image or video file(s) {NEEDS_STORE}")


def warn_small_files(manifest: Manifest) -> None:
    """Kling's size rules for each local file, as `validate --check-images` says them for
    URLs: warnings, never a refusal."""
    for image in manifest.local_images.values():
        for warning in image.warnings:
            print(f"warning: image {image.path}: {warning}", file=sys.stderr)


def warn_without_store(manifest: Manifest) -> None:
    """validate: said once per manifest, as a warning (the files themselves were checked)."""
    warn_small_files(manifest)
    if manifest.local_images and not manifest.image_store:
        n = len(manifest.local_images)
        print(
            f"warning: {manifest.path}: {n} local image or video file(s): a run {NEEDS_STORE}",
            file=sys.stderr,
        )
