"""Which URLs and addresses batchgen agrees to fetch, and how a URL is shown, pure.

Result URLs, image URLs and callback URLs come from outside (the API, a manifest), so each is
checked before use: scheme, length, characters, and a host on the public internet (every IPv4
spelling a proxy would read included); shown without its query (presigned signatures) or its
user:password. batchgen/adapters/netguard.py applies the same address rule at connect time.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from urllib.parse import quote, urlsplit

import yarl

from batchgen.errors import UnsafeUrl

MAX_URL_LENGTH = 4096


def is_loopback_host(host: str) -> bool:
    """`localhost` or a loopback address (IPv4 or IPv6, bracketed or not)."""
    host = host.strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_public_address(address: str) -> bool:
    """Whether an IP address is on the public internet: not loopback, private, link-local
    (cloud metadata at 169.254.169.254), shared, reserved or multicast; IPv4-mapped IPv6
    addresses are judged as the IPv4 address they carry."""
    try:
        ip = ipaddress.ip_address(address.strip("[]").split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


_NUMBER_PART = re.compile(r"^(?:0[xX][0-9a-fA-F]*|0[0-7]*|[1-9][0-9]*)$")


def _part_value(part: str) -> int:
    if part[:2].lower() == "0x":
        return int(part[2:] or "0", 16)
    if len(part) > 1 and part[0] == "0":
        return int(part, 8)
    return int(part)


def _inet_aton(host: str) -> ipaddress.IPv4Address | None:
    """`host` read the way inet_aton (glibc, curl, most proxies) reads it: one to four parts,
    each decimal, octal (leading 0) or hex (0x), the last part filling the remaining bytes
    (`127.1`, `2130706433`, `0x7f.0.0.1`, `0177.0.0.1`). None when it is not such a number,
    i.e. a name."""
    parts = host.split(".")
    if not 1 <= len(parts) <= 4 or not all(_NUMBER_PART.match(p) for p in parts):
        return None
    values = [_part_value(p) for p in parts]
    *head, last = values
    if any(v > 255 for v in head) or last >= 256 ** (4 - len(head)):
        return None
    number = last
    for i, v in enumerate(head):
        number += v << (8 * (3 - i))
    return ipaddress.IPv4Address(number)


def literal_address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The IP address a URL host spells, in any spelling a resolver or proxy would accept
    (brackets, an IPv6 zone, a trailing dot, inet_aton's short, octal and hex forms); None for
    a name."""
    h = host.strip()
    if h.startswith("[") and h.endswith("]"):
        h = h[1:-1]
    h = h.split("%", 1)[0]
    if h.endswith(".") and not h.endswith(".."):
        h = h[:-1]
    try:
        return ipaddress.ip_address(h)
    except ValueError:
        return _inet_aton(h)


def check_public_host(url: str, what: str = "result URL") -> None:
    """Refuse a URL whose host is an IP literal off the public internet (an SSRF guard for
    result URLs: a hostile API could point batchgen at services on the user's network). Any
    spelling counts: through a proxy, the proxy reads `2130706433` or `127.1` as 127.0.0.1."""
    host = yarl.URL(url).host or ""
    address = literal_address(host)
    if address is None:
        return  # a name: the download session's resolver checks where it leads
    if not is_public_address(str(address)):
        raise UnsafeUrl(
            f"{what} points at a private or local address: {describe_url(url)} "
            "(--allow-private-result-hosts permits it)"
        )


_ASCII_UNSAFE = re.compile(r"[\x00-\x20\x7f]")  # controls, space, DEL: the ASCII share of the rule


def _has_unsafe_chars(text: str) -> bool:
    """Whitespace or a control/format/unassigned character (Unicode category C) anywhere. URLs
    are nearly always ASCII: one regex scan then, the per-character walk only otherwise."""
    if text.isascii():
        return _ASCII_UNSAFE.search(text) is not None
    return any(c.isspace() or unicodedata.category(c).startswith("C") for c in text)


def check_url(url: str, what: str = "result URL") -> str:
    """Return `url` if batchgen may fetch it, else raise UnsafeUrl.

    Only absolute http(s) URLs with a host, no credentials (`user:pass@`), no whitespace,
    control characters or backslashes, at most 4096 characters. Both the standard library and
    yarl (what aiohttp uses) must read the same scheme, host and absence of credentials, so a
    URL that parsers disagree on is refused.
    """
    if not isinstance(url, str):
        raise UnsafeUrl(f"{what} is not a string: {type(url).__name__}")
    if len(url) > MAX_URL_LENGTH:
        raise UnsafeUrl(f"{what} is {len(url)} characters long (limit {MAX_URL_LENGTH})")
    shown = describe_url(url)
    if _has_unsafe_chars(url) or "\\" in url:
        raise UnsafeUrl(f"{what} contains whitespace, control characters or '\\': {shown}")
    try:
        parts = urlsplit(url)
        port = parts.port  # raises ValueError on a bad port
        parsed = yarl.URL(url)
    except ValueError as exc:
        raise UnsafeUrl(f"{what} cannot be parsed ({exc}): {shown}") from None
    del port
    if parts.scheme.lower() not in ("http", "https") or parsed.scheme not in ("http", "https"):
        raise UnsafeUrl(f"{what} scheme must be http or https: {shown}")
    if "@" in parts.netloc or parsed.user is not None or parsed.password is not None:
        raise UnsafeUrl(f"{what} must not carry credentials (user:pass@): {shown}")
    if not parts.hostname or not parsed.host or not parsed.is_absolute():
        raise UnsafeUrl(f"{what} has no host: {shown}")
    if parts.hostname.lower().rstrip(".") != parsed.host.lower().rstrip("."):
        raise UnsafeUrl(f"{what} is ambiguous (parsers disagree on the host): {shown}")
    return url


_NON_ASCII = re.compile(r"[^\x00-\x7f]+")


def exact_url(url: str, what: str = "result URL") -> yarl.URL:
    """The URL to request for `url`, keeping its path and query byte for byte.

    Given a string, yarl decodes and re-encodes the query (`%2F` becomes `/`, `%7E` `~`), and a
    CDN that signs the exact bytes (edge HMAC tokens) then answers 403. The URL is checked by
    check_url first, and the exact reading must name the same scheme, host and port as the
    ordinary one, so keeping the bytes never lets a URL reach another host. Characters outside
    ASCII (never valid on the wire) are percent-encoded as UTF-8; an internationalized host
    name falls back to the ordinary reading, which converts it."""
    check_url(url, what)
    plain = yarl.URL(url)
    host = urlsplit(url).hostname or ""
    if not host.isascii():
        return plain
    raw = _NON_ASCII.sub(lambda m: quote(m.group(0), safe=""), url)
    try:
        exact = yarl.URL(raw, encoded=True).with_fragment(None)
    except ValueError as exc:
        raise UnsafeUrl(f"{what} cannot be parsed ({exc}): {describe_url(url)}") from None
    same = (
        exact.scheme == plain.scheme
        and (exact.host or "").lower().rstrip(".") == (plain.host or "").lower().rstrip(".")
        and exact.port == plain.port
        and exact.user is None
        and exact.password is None
        and exact.is_absolute()
    )
    if not same:
        raise UnsafeUrl(f"{what} is ambiguous (parsers disagree on the host): {describe_url(url)}")
    return exact


def describe_url(url: str) -> str:
    """A URL fit for messages: scheme, host and path, without query string or credentials
    (signed CDN URLs carry their secret in the query)."""
    try:
        p = urlsplit(str(url)[:MAX_URL_LENGTH])
        host = p.hostname or "?"
        host = f"[{host}]" if ":" in host else host
        port = f":{p.port}" if p.port else ""
    except ValueError:
        return "<unparsable URL>"
    path = p.path if len(p.path) <= 200 else p.path[:200] + "…"
    shown = f"{p.scheme}://{host}{port}{path}"
    return shown.encode("ascii", "backslashreplace").decode("ascii")


_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>)\]]*")


def describe_error(exc: BaseException) -> str:
    """An exception fit for a message, a log line or the state file: its type and text, with
    every URL in it cut to what describe_url keeps. aiohttp's reprs carry the request's full
    URL (InvalidURL, TooManyRedirects, a ClientResponseError's request_info), and a signed
    result URL's query is a credential."""
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return _URL_IN_TEXT.sub(lambda m: describe_url(m.group(0)), text)[:500]
