"""Which proxy, if any, carries a request: the environment's proxy variables, read by our code.

Users behind a corporate proxy reach nothing without it. The rules, as curl and most tools read
the variables:
- an https URL goes through `https_proxy`, else `all_proxy`; an http URL through `http_proxy`,
  else `all_proxy`. Each name is read in lower case first, then upper case; empty means unset.
- `no_proxy` lists hosts that go direct: `*` (all), names and domain suffixes (`example.com`
  and `.example.com` both cover `cdn.example.com`), `host:port`, IP addresses and CIDR ranges.
- loopback hosts (localhost, 127.0.0.0/8, ::1) always go direct: no proxy can reach this
  machine's loopback, and the --sandbox simulator lives there.
- a proxy URL without a scheme is http://; http:// and https:// proxies are supported, others
  (socks5://...) are refused with a clear error rather than silently bypassed.
- `user:pass@` in a proxy URL is taken out of the URL and sent as Proxy-Authorization: it never
  reaches aiohttp's URL objects, whose reprs end up in error messages and the state file.

Not aiohttp's `trust_env`: that also reads ~/.netrc and would send the credentials it finds
there as Basic auth to whatever host a result URL names. `--no-proxy-env` turns all of this off;
`--proxy URL` names one proxy for both schemes, over the variables.
"""

from __future__ import annotations

import base64
import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yarl

from batchgen.core.urls import is_loopback_host
from batchgen.errors import UsageError

__all__ = ["Proxies", "Proxy"]

_SCHEMES = ("http", "https")


@dataclass(frozen=True)
class Proxy:
    url: yarl.URL  # without credentials
    source: str  # the variable it came from, e.g. HTTPS_PROXY
    authorization: str | None = field(default=None, repr=False)  # "Basic ...": a secret

    def describe(self) -> str:
        """scheme://host:port, for messages: never the credentials."""
        host = self.url.host or "?"
        host = f"[{host}]" if ":" in host else host
        return f"{self.url.scheme}://{host}:{self.url.port}"

    def url_with_credentials(self) -> str:
        """The proxy URL with its `user:pass@` put back, for a client that takes only a URL
        (obstore's `proxy_url`). A secret: never for a message."""
        if self.authorization is None:
            return str(self.url)
        pair = base64.b64decode(self.authorization.removeprefix("Basic ")).decode()
        user, _, password = pair.partition(":")
        return str(self.url.with_user(user).with_password(password))

    def request_kwargs(self, target: yarl.URL, headers: Mapping[str, str]) -> dict[str, Any]:
        """aiohttp keyword arguments to send a request for `target` through this proxy. An
        https target is tunnelled (CONNECT carries the proxy's credentials, the tunnel's inner
        request must not); a plain http request is read by the proxy, so it carries them."""
        kwargs: dict[str, Any] = {"proxy": self.url, "headers": headers}
        if self.authorization is not None:
            auth = {"Proxy-Authorization": self.authorization}
            if target.scheme == "https":
                kwargs["proxy_headers"] = auth
            else:
                kwargs["headers"] = {**headers, **auth}
        return kwargs


class Proxies:
    """The proxy choice for any URL, from a snapshot of the environment taken once per run."""

    def __init__(
        self,
        env: Mapping[str, str] | None = None,
        *,
        enabled: bool = True,
        proxy: str | None = None,
    ) -> None:
        """`enabled`: read the environment's variables; `proxy` (--proxy URL) carries both
        schemes over them, NO_PROXY still applying when `enabled`."""
        env = os.environ if env is None else env
        self.enabled = enabled or bool(proxy)
        self._by_scheme: dict[str, Proxy | None] = {"http": None, "https": None}
        self._no_proxy: list[str] = []
        given = _parse("--proxy", proxy) if proxy else None
        if given is not None:
            self._by_scheme = {"http": given, "https": given}
        if not enabled:
            return
        fallback = _read(env, "all_proxy")
        for scheme in _SCHEMES:
            found = _read(env, f"{scheme}_proxy") or fallback
            if given is None:
                self._by_scheme[scheme] = _parse(*found) if found else None
        no_proxy = _read(env, "no_proxy")
        if no_proxy:
            self._no_proxy = [p.strip().lower() for p in no_proxy[1].split(",") if p.strip()]

    def __repr__(self) -> str:
        shown = {k: v.describe() if v else None for k, v in self._by_scheme.items()}
        return f"<Proxies enabled={self.enabled} {shown} no_proxy={self._no_proxy}>"

    def for_url(self, url: str | yarl.URL) -> Proxy | None:
        """The proxy for `url`, or None to connect directly."""
        target = url if isinstance(url, yarl.URL) else yarl.URL(url, encoded=True)
        proxy = self._by_scheme.get(target.scheme)
        if proxy is None:
            return None
        host = (target.host or "").lower().rstrip(".")
        if not host or is_loopback_host(host) or self._bypassed(host, target.explicit_port):
            return None
        return proxy

    def request_kwargs(self, url: str | yarl.URL, headers: Mapping[str, str]) -> dict[str, Any]:
        """aiohttp keyword arguments (headers, and the proxy if any) for a request to `url`."""
        target = url if isinstance(url, yarl.URL) else yarl.URL(url, encoded=True)
        proxy = self.for_url(target)
        return {"headers": headers} if proxy is None else proxy.request_kwargs(target, headers)

    def proxy_hosts(self) -> frozenset[str]:
        """The proxies' own host names: the run connects to them, wherever they are."""
        return frozenset(p.url.host.lower() for p in self._by_scheme.values() if p and p.url.host)

    def _bypassed(self, host: str, port: int | None) -> bool:
        try:
            address = ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            address = None
        for entry in self._no_proxy:
            if entry == "*":
                return True
            name, entry_port = entry, None
            if entry.count(":") == 1 and entry.rsplit(":", 1)[1].isdigit():  # host:port
                name, entry_port = entry.rsplit(":", 1)[0], int(entry.rsplit(":", 1)[1])
            if entry_port is not None and entry_port != port:
                continue
            name = name.strip("[]").lstrip(".").rstrip(".")
            if address is not None and "/" in name:
                try:
                    if address in ipaddress.ip_network(name, strict=False):
                        return True
                except ValueError:
                    pass
                continue
            if name and (host == name or host.endswith("." + name)):
                return True
        return False


def _read(env: Mapping[str, str], name: str) -> tuple[str, str] | None:
    """(variable, value) for `name` in lower case, else upper case; None if unset or empty."""
    for var in (name, name.upper()):
        value = env.get(var, "").strip()
        if value:
            return var, value
    return None


def _parse(source: str, text: str) -> Proxy:
    if "://" not in text:
        text = "http://" + text
    try:
        url = yarl.URL(text)
        url.port  # noqa: B018 - raises on a bad port
    except ValueError:
        fix = "fix it" if source == "--proxy" else "fix it or pass --no-proxy-env"
        raise UsageError(f"{source} is not a proxy URL; {fix}") from None
    shown = f"{url.scheme}://{url.host}"
    if url.scheme not in _SCHEMES or not url.host:
        fix, sep = (
            ("give another", " ")
            if source == "--proxy"
            else ("unset it or pass --no-proxy-env", "=")
        )
        raise UsageError(
            f"{source}{sep}{shown}: batchgen supports http:// and https:// proxies only; {fix}"
        )
    authorization = None
    if url.user is not None or url.password is not None:
        pair = f"{url.user or ''}:{url.password or ''}".encode()
        authorization = "Basic " + base64.b64encode(pair).decode("ascii")
    return Proxy(url=url.origin(), source=source, authorization=authorization)
