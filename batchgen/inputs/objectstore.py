"""The image store: local files uploaded once, by content, to S3-compatible storage, and
presigned GET URLs for the provider to fetch them.

Library: obstore (Rust, no Python dependencies, async, presigns; see README "Images from your
disk" for the measurement against aiobotocore). Imported only when a store is used.

Credentials and the endpoint come from where every AWS tool looks: the AWS_* environment
variables (AWS_ENDPOINT_URL for R2, MinIO, GCS interoperability), then the shared files
(~/.aws/credentials and ~/.aws/config, AWS_PROFILE). They stay in memory: never printed,
logged or stored, and messages about store errors are cut to their class and a short text
with any URL query (a signature) removed.
"""

from __future__ import annotations

import asyncio
import configparser
import contextlib
import os
import re
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

from batchgen.adapters.proxies import Proxies
from batchgen.errors import UsageError
from batchgen.inputs.local import read_verified
from batchgen.inputs.sniff import CONTENT_TYPES

_STORE_URL = re.compile(r"^s3://([a-z0-9][a-z0-9.-]{1,62})(?:/(.*))?$")
_QUERY = re.compile(r"\?\S*")
_KIND_OF_EXT = {".jpg": "jpeg", ".png": "png", ".webp": "webp"}


_ENV_SETTINGS = (
    ("AWS_ACCESS_KEY_ID", "access_key_id"),
    ("AWS_SECRET_ACCESS_KEY", "secret_access_key"),
    ("AWS_SESSION_TOKEN", "token"),
    ("AWS_REGION", "region"),
    ("AWS_DEFAULT_REGION", "region"),
    ("AWS_ENDPOINT_URL", "endpoint"),
    ("AWS_ENDPOINT", "endpoint"),
)


_PROXY_VARS = tuple(
    v for name in ("http_proxy", "https_proxy", "all_proxy") for v in (name, name.upper())
)
_ENV_LOCK = threading.Lock()


@contextlib.contextmanager
def _without_proxy_env() -> Iterator[None]:
    """obstore's HTTP client (reqwest) reads the proxy variables itself when it is built; the
    store's proxy must follow batchgen's one rule instead (batchgen/adapters/proxies.py: NO_PROXY as
    batchgen reads it, and --no-proxy-env), so they are hidden while it is built."""
    with _ENV_LOCK:
        saved = {v: os.environ.pop(v) for v in _PROXY_VARS if v in os.environ}
        try:
            yield
        finally:
            os.environ.update(saved)


class StoreError(Exception):
    """An upload or a signature failed; the message is safe to show."""


def parse_store_url(url: str) -> tuple[str, str]:
    """`s3://BUCKET/PREFIX` -> (bucket, prefix without slashes at its ends)."""
    found = _STORE_URL.match(url.strip())
    if not found:
        raise UsageError(f"--image-store must be s3://BUCKET/PREFIX, got {url!r}")
    return found.group(1), (found.group(2) or "").strip("/")


def aws_settings(env: dict[str, str] | None = None) -> dict[str, str]:
    """obstore S3 settings from the shared AWS files, for what the environment does not set
    (obstore reads the AWS_* variables itself)."""
    env = dict(os.environ) if env is None else env
    profile = env.get("AWS_PROFILE") or env.get("AWS_DEFAULT_PROFILE") or "default"
    home = Path(env.get("HOME", "~")).expanduser()
    found: dict[str, str] = {}
    creds = _ini(env.get("AWS_SHARED_CREDENTIALS_FILE") or home / ".aws" / "credentials")
    section = creds.get(profile, {})
    config = _ini(env.get("AWS_CONFIG_FILE") or home / ".aws" / "config")
    conf = config.get(profile if profile == "default" else f"profile {profile}", {})
    if not env.get("AWS_ACCESS_KEY_ID"):
        for key, name in (
            ("aws_access_key_id", "access_key_id"),
            ("aws_secret_access_key", "secret_access_key"),
            ("aws_session_token", "token"),
        ):
            value = section.get(key) or conf.get(key)
            if value:
                found[name] = value
    if not (env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")) and conf.get("region"):
        found["region"] = conf["region"]
    if not env.get("AWS_ENDPOINT_URL") and not env.get("AWS_ENDPOINT"):
        endpoint = conf.get("endpoint_url")
        if endpoint:
            found["endpoint"] = endpoint
    return found


def _ini(path: str | Path) -> dict[str, dict[str, str]]:
    parser = configparser.RawConfigParser()
    try:
        parser.read(path, encoding="utf-8")
    except (configparser.Error, OSError, UnicodeDecodeError):
        return {}
    return {name: dict(parser.items(name)) for name in parser.sections()}


def safe_message(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    text = _QUERY.sub("?…", text)[:200]
    return f"{exc.__class__.__name__}: {text}" if text else exc.__class__.__name__


class ImageStore:
    """One bucket and prefix. Objects are named `<sha256><ext>`: the same file is the same
    object in every run and every batch, so it is uploaded once."""

    def __init__(
        self,
        url: str,
        ttl_s: float,
        *,
        env: dict[str, str] | None = None,
        proxies: Proxies | None = None,
    ) -> None:
        self.url = url
        self._proxies = proxies if proxies is not None else Proxies(enabled=False)
        self.bucket, self.prefix = parse_store_url(url)
        self.ttl_s = ttl_s
        self._env = env
        self._store: Any = None
        self.uploads = 0  # files sent in this run (tests, the summary)

    def __repr__(self) -> str:  # never the credentials
        return f"<ImageStore s3://{self.bucket}/{self.prefix} uploads={self.uploads}>"

    def key(self, name: str) -> str:
        """`s3://bucket/prefix/name`: what the state file records (no signature)."""
        return f"s3://{self.bucket}/{self.prefix + '/' if self.prefix else ''}{name}"

    def _open(self) -> Any:
        if self._store is None:
            from obstore.store import S3Store

            env = dict(os.environ) if self._env is None else self._env
            settings = aws_settings(env)
            for var, name in _ENV_SETTINGS:  # explicit: they win over anything obstore infers
                if env.get(var) and name not in settings:
                    settings[name] = env[var]
            self._store = self._build(S3Store, settings)
        return self._store

    def client_options(self, settings: dict[str, str]) -> dict[str, Any]:
        """obstore's client options: plain http only for an http endpoint, and the proxy the
        run's rule picks for the endpoint (AWS's own when none is set)."""
        endpoint = settings.get("endpoint", "")
        options: dict[str, Any] = {"allow_http": endpoint.startswith("http://")}
        target = endpoint or f"https://s3.{settings.get('region', 'us-east-1')}.amazonaws.com"
        proxy = self._proxies.for_url(target)
        if proxy is not None:
            options["proxy_url"] = proxy.url_with_credentials()
        return options

    def _build(self, factory: Any, settings: dict[str, str]) -> Any:
        with _without_proxy_env():
            return factory(
                self.bucket,
                prefix=self.prefix or None,
                client_options=self.client_options(settings),
                **settings,
            )

    async def ensure(self, name: str, path: str, sha256: str) -> str:
        """Upload `path` as `name` unless the object is there already; returns its key.
        The file must still hold the content the job was made from."""
        import obstore
        from obstore.exceptions import NotFoundError

        store = self._open()
        try:
            await obstore.head_async(store, name)
            return self.key(name)
        except (NotFoundError, FileNotFoundError):  # obstore raises the builtin for a 404
            pass
        except Exception as exc:
            raise StoreError(f"cannot reach the image store: {safe_message(exc)}") from None
        data = await asyncio.to_thread(read_verified, path, sha256)
        if data is None:
            raise StoreError(f"{path} changed or vanished since the manifest was read")
        content_type = CONTENT_TYPES[_KIND_OF_EXT.get(Path(name).suffix, "png")]
        try:
            await obstore.put_async(store, name, data, attributes={"Content-Type": content_type})
        except Exception as exc:
            raise StoreError(f"upload of {path} failed: {safe_message(exc)}") from None
        self.uploads += 1
        return self.key(name)

    async def presign(self, name: str) -> str:
        import obstore

        try:
            return await obstore.sign_async(
                self._open(), "GET", name, timedelta(seconds=self.ttl_s)
            )
        except Exception as exc:
            raise StoreError(f"cannot sign a URL for {name}: {safe_message(exc)}") from None
