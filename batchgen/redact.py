"""What may be a secret, and text with it taken out.

A key pasted into the wrong option, a stray argument or a signed URL ends up in an error
message, and error messages land in cron mail and CI logs. So anything that may be a secret
is found here, by where it was typed (after an option named like key, token, secret or
password) or by its shape (a key's prefix, a long high-entropy word, a URL carrying a
password or a signature), and replaced before any text reaches a user. A leaf: imports
nothing of batchgen, so every layer may use it.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable

REDACTED = "[redacted]"

# An option whose name says its value is secret (its value is never shown).
_SECRET_OPTION = re.compile(r"key|token|secret|passw|pwd|credential|auth|signature", re.I)
# Common key prefixes: OpenAI-style sk-, Stripe sk_/rk_, GitHub ghp_, Slack xox?-, AWS AKIA.
_KEY_PREFIX = re.compile(
    r"(?<![A-Za-z0-9])(?:sk|rk|pk)[-_][A-Za-z0-9_\-]{6,}|gh[pousr]_[A-Za-z0-9]{10,}"
    r"|xox[abprs]-[A-Za-z0-9\-]{6,}|(?:AKIA|ASIA)[A-Z0-9]{12,}"
)
# user:password@ in a URL, and the query parameters of presigned URLs.
_URL_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)[^/\s@'\"]*:[^/\s@'\"]*@")
_SIGNED_PARAM = re.compile(
    r"(?<=[?&])(?P<name>(?:X-Amz-(?:Signature|Credential|Security-Token)|X-Goog-(?:Signature|Credential)"
    r"|Signature|sig|se|sv|token|access_token|api_key|apikey|key)=)[^&\s'\"]+",
    re.I,
)
_WORD = re.compile(r"[A-Za-z0-9_\-+=]{24,}")


def _entropy(text: str) -> float:
    """Shannon entropy in bits per character."""
    counts = Counter(text)
    n = len(text)
    return -sum(c / n * math.log2(c / n) for c in counts.values())


def high_entropy(word: str) -> bool:
    """A long random-looking word (letters and digits mixed, few repeats): a key, not a name."""
    if not _WORD.fullmatch(word):
        return False
    has_digit = any(ch.isdigit() for ch in word)
    has_alpha = any(ch.isalpha() for ch in word)
    return has_digit and has_alpha and _entropy(word) >= 3.6


def looks_secret(text: str) -> bool:
    """True when `text` has a secret's shape: a key, a high-entropy word, a URL with a
    password or a signature. Paths and ordinary words do not."""
    if _KEY_PREFIX.search(text) or _URL_USERINFO.search(text):
        return True
    if "://" in text and _SIGNED_PARAM.search(text):
        return True
    return high_entropy(text)


def secret_option(name: str) -> bool:
    """An option (or argparse dest) whose name says its value is a secret."""
    return _SECRET_OPTION.search(name) is not None


def secret_words(argv: Iterable[str]) -> set[str]:
    """The words of a command line that must never be shown: the value of any option named
    like a secret (`--api-key X`, `--token=X`), and any word with a secret's shape."""
    out: set[str] = set()
    after_secret_option = False
    for word in argv:
        if after_secret_option:
            out.add(word)
            after_secret_option = False
            continue
        if word.startswith("-"):
            name, eq, value = word.partition("=")
            if _SECRET_OPTION.search(name):
                if eq:
                    out.add(value)
                else:
                    after_secret_option = True
                continue
        if looks_secret(word):
            out.add(word)
    return {w for w in out if w}


def redact(text: str, words: Iterable[str] = ()) -> str:
    """`text` with the given words (and their repr) replaced, and every key, URL password
    and URL signature in it. Long random words are only taken out when given: a message's
    own hashes and task ids stay readable."""
    for word in sorted(set(words), key=len, reverse=True):
        text = text.replace(repr(word), REDACTED).replace(word, REDACTED)
    text = _URL_USERINFO.sub(lambda m: m["scheme"] + REDACTED + "@", text)
    text = _SIGNED_PARAM.sub(lambda m: m["name"] + REDACTED, text)
    return _KEY_PREFIX.sub(REDACTED, text)
