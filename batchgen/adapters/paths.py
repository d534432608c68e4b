"""Where result files land, and which URLs batchgen agrees to fetch.

Everything here is pure (no I/O but `Path.resolve`): names come from a manifest template filled
with values from outside (job ids from the manifest, task ids and URLs from the API), so every
piece is treated as hostile until it has been sanitized or checked.
"""

from __future__ import annotations

import functools
import ipaddress
import re
import unicodedata
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import yarl

from batchgen.core.taskids import filename_part
from batchgen.errors import UnsafeUrl
from batchgen.settings import DEFAULT_FILENAME_TEMPLATE

__all__ = [
    "DEFAULT_TEMPLATE",
    "MAX_COMPONENT_BYTES",
    "MAX_URL_LENGTH",
    "check_url",
    "exact_url",
    "render_filename",
    "safe_output_path",
]

DEFAULT_TEMPLATE = DEFAULT_FILENAME_TEMPLATE
FIELDS = ("id", "index", "task_id", "mode")
MAX_COMPONENT_BYTES = 255
# The download writes "<name>.part" and "<name>.part.json" beside the final file: keep room.
PART_SUFFIX_RESERVE = len(".part.json")
MAX_URL_LENGTH = 4096

_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")
_NUMBER_SPEC = re.compile(r"^0?[1-9]?[0-9]?d?$")  # {index:03d}, {index:4}: widths only
_LITERAL_EXT = re.compile(r"\.[A-Za-z0-9]{1,12}$")
_WINDOWS_RESERVED = frozenset(
    ["CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"]
    + [f"COM{i}" for i in "123456789¹²³"]
    + [f"LPT{i}" for i in "123456789¹²³"]
)
_WINDOWS_FORBIDDEN = frozenset('<>:"|?*')


def render_filename(
    template: str,
    *,
    job_id: str,
    index: int,
    task_id: str | None,
    mode: str,
    n_results: int,
    job_index: int = 1,
    meta: Mapping[str, Any] | None = None,
) -> str:
    """Fill an `output.filename` template for result `index` (0-based) of a job.

    Placeholders: `{id}`, `{index}` (the job's 1-based position in the manifest, with an
    optional number format such as `{index:04d}`), `{task_id}`, `{mode}`; `{{` and `}}` are
    literal braces. Anything else in braces is a ValueError (no attribute access, unlike
    `str.format`). Values cannot add folders: `/` and `\\` inside a value become `_`; folders
    come only from the template itself. A job's `meta` keys are placeholders too (`{season}`),
    never shadowing the four above. A task id comes from the API: only a plain short one is
    used as it is, any other as a readable prefix and a hash (`taskids.filename_part`), so two
    ids never share a file. Result `index > 0` gets `-{index+1}` before the
    extension: `{id}.mp4` gives `a.mp4`, `a-2.mp4`, `a-3.mp4`.
    The result still has to go through `safe_output_path`.
    """
    if n_results < 1 or not 0 <= index < n_results:
        raise ValueError(f"result index {index} out of range for {n_results} result(s)")
    if task_id is None and "{task_id}" in template:
        raise ValueError("the filename template uses {task_id}, but the job has no task id yet")
    values: dict[str, Any] = {
        **(meta or {}),
        "id": job_id,
        "index": job_index,
        "task_id": filename_part(task_id) if task_id else "",
        "mode": mode,
    }

    def substitute(match: re.Match[str]) -> str:
        token = match.group(0)
        if token == "{{":
            return "{"
        if token == "}}":
            return "}"
        field = match.group(1)
        name, _, spec = (field or "").partition(":")
        if field is None or name not in values or (spec and not _NUMBER_SPEC.match(spec)):
            raise ValueError(
                f"unknown placeholder {token!r} in filename template {template!r}; "
                f"use {', '.join('{' + f + '}' for f in FIELDS)}"
            )
        value = values[name]
        try:
            text = format(value, spec) if spec else str(value)
        except ValueError as exc:
            raise ValueError(f"placeholder {token!r} does not fit its value: {exc}") from None
        return text.replace("/", "_").replace("\\", "_")

    rendered = _PLACEHOLDER.sub(substitute, template)
    if index > 0:
        rendered = _insert_suffix(template, rendered, f"-{index + 1}")
    return rendered


def _insert_suffix(template: str, rendered: str, suffix: str) -> str:
    # The extension is taken from the template's literal tail (after its last placeholder), so a
    # dot inside a value (`{id}` = "v1.2") is never mistaken for the extension.
    last = re.split(r"[/\\]", template)[-1]
    tail = last[last.rfind("}") + 1 :]
    ext = _LITERAL_EXT.search(tail)
    if ext and rendered.endswith(ext.group(0)):
        cut = len(rendered) - len(ext.group(0))
        return rendered[:cut] + suffix + rendered[cut:]
    return rendered + suffix


def safe_output_path(output_dir: Path, relative: str) -> Path:
    """`output_dir / relative`, each component sanitized; never outside `output_dir`.

    Separators are `/` and `\\`; empty, `.` components and a leading `/` are dropped (an
    absolute path becomes relative). In each component: control and format characters (NUL,
    newlines, bidi overrides...) and `<>:"|?*` become `_`; leading dots and dashes become `_`
    (so `..` is `__`, no hidden files, no `-rf`); trailing dots and spaces are removed;
    Windows device names (`CON`, `nul.mp4`, `COM1`...) get a `_` prefix; a component is cut to
    255 UTF-8 bytes (the last one to 245, leaving room for `.part.json`), keeping its extension.
    Finally the path is resolved (following any symlinks already in `output_dir`) and must lie
    strictly inside `output_dir.resolve()`, else ValueError.
    """
    raw = [c for c in re.split(r"[/\\]", relative) if c not in ("", ".")]
    if not raw:
        raise ValueError(f"empty output file name {relative!r}")
    parts = [_sanitize_component(c, last=i == len(raw) - 1) for i, c in enumerate(raw)]
    candidate = Path(output_dir).joinpath(*parts)
    root = _resolved_folder(str(output_dir))
    if len(parts) == 1 and not candidate.is_symlink():
        # The common case, a plain name in the folder itself: one lstat instead of a walk of
        # every component (resolve() costs a syscall per component, per file).
        resolved = root / parts[0]
    else:
        resolved = candidate.resolve()
    if resolved == root or not resolved.is_relative_to(root):
        raise ValueError(f"output file {relative!r} would land outside {output_dir}")
    return candidate


@functools.lru_cache(maxsize=16)
def _resolved_folder(folder: str) -> Path:
    """The output folder with its symlinks resolved, once per folder and process: a batch
    writes thousands of files into the same one."""
    return Path(folder).resolve()


def _sanitize_component(name: str, *, last: bool) -> str:
    name = unicodedata.normalize("NFC", name)
    out = []
    for ch in name:
        if unicodedata.category(ch).startswith("C") or ch in _WINDOWS_FORBIDDEN:
            out.append("_")
        else:
            out.append(ch)
    name = "".join(out)
    stripped = name.lstrip(".-")
    name = "_" * (len(name) - len(stripped)) + stripped
    name = name.rstrip(". ")
    if not name:
        name = "_"
    stem = name.split(".", 1)[0].rstrip(" ").upper()
    if stem in _WINDOWS_RESERVED:
        name = "_" + name
    limit = MAX_COMPONENT_BYTES - (PART_SUFFIX_RESERVE if last else 0)
    return _truncate_bytes(name, limit)


def _truncate_bytes(name: str, limit: int) -> str:
    if len(name.encode("utf-8")) <= limit:
        return name
    ext_match = _LITERAL_EXT.search(name)
    ext = ext_match.group(0) if ext_match else ""
    stem = name[: len(name) - len(ext)]
    budget = limit - len(ext.encode("utf-8"))
    cut = stem.encode("utf-8")[:budget].decode("utf-8", errors="ignore")
    cut = cut.rstrip(". ") or "_"
    return cut + ext


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
