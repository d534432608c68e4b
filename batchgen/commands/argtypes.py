"""argparse types for durations, sizes, rates and backoff pairs: each turns a command-line
word into a value or an ArgumentTypeError whose text argparse shows (redacted); and the
parser every command uses, which takes no abbreviations and never echoes a secret."""

from __future__ import annotations

import argparse
import contextvars
import sys
from typing import Any, NoReturn

from batchgen.adapters.limits import parse_rate
from batchgen.durations import parse_duration
from batchgen.errors import UsageError
from batchgen.redact import looks_secret, redact, secret_option


def seconds(text: str) -> float:
    """'5', '0.05', '500ms', '2m', '1h' -> seconds (batchgen.durations), as argparse wants."""
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def proxy_url(text: str) -> str:
    """--proxy: an http:// or https:// URL with a host (checked again, whole, by Proxies).
    The message never repeats the value: it may hold a password."""
    scheme, sep, rest = text.strip().partition("://")
    if not sep or scheme.lower() not in ("http", "https") or not rest.strip("/@:"):
        raise argparse.ArgumentTypeError(
            "takes an http:// or https:// proxy URL (http://[user:password@]host:port)"
        )
    return text.strip()


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def size(text: str) -> int:
    t = text.strip().upper().removesuffix("B")
    factor = 1
    for suffix, f in (("K", 1024), ("M", 1024**2), ("G", 1024**3), ("T", 1024**4)):
        if t.endswith(suffix):
            t, factor = t[:-1], f
            break
    try:
        return int(float(t) * factor)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (try 500M, 2G)") from None


def backoff(text: str) -> tuple[float, float]:
    try:
        base, cap = (seconds(x) for x in text.split(","))
    except (ValueError, argparse.ArgumentTypeError):
        raise argparse.ArgumentTypeError(
            f"--backoff takes BASE,CAP seconds, got {text!r} (e.g. 1,60)"
        ) from None
    if not 0 < base <= cap:
        raise argparse.ArgumentTypeError(f"--backoff needs 0 < BASE <= CAP, got {text!r}")
    return base, cap


def pause(text: str) -> tuple[float, float]:
    try:
        base, cap = (float(x) for x in text.split(","))
    except ValueError:
        base = cap = -1.0
    if not (0 < base <= cap < float("inf")):
        raise argparse.ArgumentTypeError(
            f"--rate-pause takes BASE,CAP seconds with 0 < BASE <= CAP, got {text!r}"
        )
    return base, cap


def rate(text: str) -> tuple[int, float]:
    try:
        return parse_rate(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


# The words of the command line being parsed that must never be shown (redact.secret_words).
SECRET_WORDS: contextvars.ContextVar[frozenset[str]] = contextvars.ContextVar(
    "batchgen_secret_words", default=frozenset()
)


class SafeParser(argparse.ArgumentParser):
    """An ArgumentParser for batchgen's commands: no abbreviations (`--api-key` must not
    silently mean `--api-key-file`), and errors that never echo a secret (they end up in cron
    mail and CI logs). Subparsers made from it are SafeParsers too."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {redact(message, SECRET_WORDS.get())}\n")


# Options whose values carry their own credentials by design (a webhook or ping URL with its
# token, an apprise URL with user:password@, a --proxy URL with user:password@): their code
# keeps them out of every output and file. Errors still redact them; they are not refused for
# their shape.
SECRET_CARRIERS = frozenset({"notify", "notify_json", "ping", "proxy"})


def refuse_secret_values(args: argparse.Namespace) -> None:
    """A parsed value with a secret's shape (a key pasted into --output, a URL carrying a
    password) would be used, printed and recorded: refuse it, naming the option only. An
    option made for a secret (`simulate --api-key`, SECRET_CARRIERS) takes it, of course."""
    for dest, value in sorted(vars(args).items()):
        if secret_option(dest) or dest in SECRET_CARRIERS:
            continue
        values = value if isinstance(value, list | tuple) else [value]
        for item in values:
            items = item if isinstance(item, tuple) else (item,)
            if any(isinstance(x, str) and looks_secret(x) for x in items):
                raise UsageError(
                    f"the value given for {dest.replace('_', '-')} looks like a secret (an API "
                    "key, or a URL with a password or a signature); it was not used and is not "
                    "shown. Give the key through $APIXO_API_KEY or --api-key-file FILE."
                )


def id_list(text: str) -> tuple[str, ...]:
    """'a,b, c,a' -> ('a', 'b', 'c'): the argparse type of every comma list of ids or codes
    (--only, --ids, --codes); an empty list is refused rather than meaning "all"."""
    items = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    if not items:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list, got {text!r}")
    return items
