"""The one S3 client factory: what the image store (batchgen/inputs/objectstore.py) and the
result sink (batchgen/adapters/sinks/objectstore.py) both build their obstore client with.

Credentials and the endpoint come from where every AWS tool looks: the AWS_* environment
variables (AWS_ENDPOINT_URL for R2, MinIO, GCS interoperability), then the shared files
(~/.aws/credentials and ~/.aws/config, AWS_PROFILE). They stay in memory: never printed,
logged or stored, and messages about store errors are cut to their class and a short text
with any URL query (a signature) removed. The proxy is the run's rule's choice, never the
one obstore's HTTP client would read from the environment by itself.

obstore is imported only when a store is actually opened.
"""

from __future__ import annotations

import configparser
import contextlib
import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from batchgen.adapters.proxies import Proxies
from batchgen.errors import UsageError

_STORE_URL = re.compile(r"^s3://([a-z0-9][a-z0-9.-]{1,62})(?:/(.*))?$")
_QUERY = re.compile(r"\?\S*")
_SECRETISH = re.compile(r"(?i)(x-amz-(?:signature|credential|security-token)=)[^&\s]+")

_ENV_SETTINGS = (
    ("AWS_ACCESS_KEY_ID", "access_key_id"),
    ("AWS_SECRET_ACCESS_KEY", "secret_access_key"),
    ("AWS_SESSION_TOKEN", "token"),
    ("AWS_REGION", "region"),
    ("AWS_DEFAULT_REGION", "region"),
    ("AWS_ENDPOINT_URL", "endpoint"),
    ("AWS_ENDPOINT", "endpoint"),
)
# Where credentials may come from without a key in the environment or the shared files.
_INDIRECT_CREDENTIALS = (
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
)

_PROXY_VARS = tuple(
    v for name in ("http_proxy", "https_proxy", "all_proxy") for v in (name, name.upper())
)
_ENV_LOCK = threading.Lock()


@contextlib.contextmanager
def _without_proxy_env() -> Iterator[None]:
    """obstore's HTTP client (reqwest) reads the proxy variables itself when it is built; the
    store's proxy must follow batchgen's one rule instead (batchgen/adapters/proxies.py:
    NO_PROXY as batchgen reads it, and --no-proxy-env), so they are hidden while it is built."""
    with _ENV_LOCK:
        saved = {v: os.environ.pop(v) for v in _PROXY_VARS if v in os.environ}
        try:
            yield
        finally:
            os.environ.update(saved)


def parse_store_url(url: str, option: str = "--image-store") -> tuple[str, str]:
    """`s3://BUCKET/PREFIX` -> (bucket, prefix without slashes at its ends)."""
    found = _STORE_URL.match(url.strip())
    if not found:
        raise UsageError(f"{option} must be s3://BUCKET/PREFIX, got {url!r}")
    return found.group(1), (found.group(2) or "").strip("/")


def is_store_url(text: str | None) -> bool:
    return bool(text) and str(text).strip().lower().startswith("s3://")


def object_url(bucket: str, prefix: str, rel: str) -> str:
    """`s3://BUCKET/PREFIX/rel`: what the state file and the report name (no signature)."""
    return f"s3://{bucket}/{prefix + '/' if prefix else ''}{rel}"


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


def store_settings(env: dict[str, str] | None = None) -> dict[str, str]:
    """Every setting for obstore: the shared files, then the AWS_* variables over them."""
    env = dict(os.environ) if env is None else env
    settings = aws_settings(env)
    for var, name in _ENV_SETTINGS:  # explicit: they win over anything obstore infers
        if env.get(var) and name not in settings:
            settings[name] = env[var]
    return settings


def credentials_source(env: dict[str, str] | None = None) -> str | None:
    """Where this run's credentials come from, in words, or None when nothing names any
    (obstore would then ask the instance metadata service, the last resort of the chain)."""
    env = dict(os.environ) if env is None else env
    if env.get("AWS_ACCESS_KEY_ID") and env.get("AWS_SECRET_ACCESS_KEY"):
        return "AWS_ACCESS_KEY_ID"
    found = aws_settings(env)
    if found.get("access_key_id") and found.get("secret_access_key"):
        return f"profile {env.get('AWS_PROFILE') or env.get('AWS_DEFAULT_PROFILE') or 'default'}"
    for var in _INDIRECT_CREDENTIALS:
        if env.get(var):
            return var
    return None


def safe_message(exc: BaseException) -> str:
    """An obstore error cut to its class and first line, without any URL query."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    text = _QUERY.sub("?…", _SECRETISH.sub(r"\1…", text))[:200]
    return f"{exc.__class__.__name__}: {text}" if text else exc.__class__.__name__


def client_options(settings: dict[str, str], proxies: Proxies) -> dict[str, Any]:
    """obstore's client options: plain http only for an http endpoint, and the proxy the
    run's rule picks for the endpoint (AWS's own when none is set)."""
    endpoint = settings.get("endpoint", "")
    options: dict[str, Any] = {"allow_http": endpoint.startswith("http://")}
    target = endpoint or f"https://s3.{settings.get('region', 'us-east-1')}.amazonaws.com"
    proxy = proxies.for_url(target)
    if proxy is not None:
        options["proxy_url"] = proxy.url_with_credentials()
    return options


def open_store(
    bucket: str,
    prefix: str,
    *,
    env: dict[str, str] | None = None,
    proxies: Proxies | None = None,
    **extra: Any,
) -> Any:
    """An obstore S3Store on `bucket`/`prefix` with the run's credentials and proxy; `extra`
    adds S3 settings (such as `checksum_algorithm`)."""
    from obstore.store import S3Store

    settings = store_settings(env)
    options = client_options(settings, proxies if proxies is not None else Proxies(enabled=False))
    with _without_proxy_env():
        return S3Store(bucket, prefix=prefix or None, client_options=options, **settings, **extra)
