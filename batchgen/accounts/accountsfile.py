"""`--accounts FILE`: the accounts one run spreads its jobs over, read and checked before any
work (schemas/accounts.schema.json; every problem at file:line, as the manifest's).

A key is never written in the file, only where it is: an environment variable (`key_env`) or
a key file (`key_file`, relative to the accounts file). A value with a key's shape anywhere in
the file is refused without being shown, and no error here quotes a value of the file."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema

from batchgen.adapters.limits import parse_rate
from batchgen.errors import ManifestError, ManifestProblem, UsageError
from batchgen.manifest.schema import load_schema
from batchgen.manifest.yamlfile import load_yaml
from batchgen.money.prices import to_micros
from batchgen.redact import looks_secret

SCHEMA_FILE = "accounts.schema.json"
INLINE_KEY = (
    "a key is never written in the accounts file: name the environment variable that holds "
    "it (key_env) or a file (key_file); the value was not used and is not shown"
)


@dataclass(frozen=True)
class AccountSpec:
    """One account as the file describes it: its name, where its key is, its limits."""

    name: str
    key_env: str | None = None
    key_file: Path | None = None
    rate: tuple[int, float] | None = None  # (N, period s); None: the run's --rate-limit
    max_in_flight: int | None = None  # None: the run's --max-in-flight
    max_spend_micros: int | None = None  # None: only the run's --max-spend
    key: str = field(default="", repr=False, compare=False)  # read by `with_keys`, kept in memory

    @property
    def key_source(self) -> str:
        """Where the key comes from, for messages (a variable's name or a path, never the key)."""
        return f"${self.key_env}" if self.key_env else str(self.key_file)


def load_accounts(path: str | Path, default_period_s: float = 60.0) -> list[AccountSpec]:
    """The file's accounts, checked (ManifestError with file:line problems; exit 2). Keys are
    not read here: `with_keys` does, so `resume` can name a missing account before it needs
    any key."""
    path = Path(path)
    display = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read the accounts file {display}: {type(exc).__name__}") from None
    doc, lines = load_yaml(text, display)
    problems = _problems(doc, lines, display)
    if problems:
        raise ManifestError(problems)
    out: list[AccountSpec] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(doc["accounts"]):
        where = _where(display, lines, f"accounts[{i}]")
        name = item["name"]
        if name in seen:
            message = f"account {name} is named twice (also accounts[{seen[name]}])"
            raise ManifestError([ManifestProblem(where, f"accounts[{i}].name", message)])
        seen[name] = i
        try:
            rate = _rate(item.get("rate_limit"), default_period_s)
            spend = to_micros(item["max_spend"]) if "max_spend" in item else None
        except ValueError:
            message = f"account {name}: rate_limit is N/PERIOD (600/60s), max_spend is USD"
            raise ManifestError([ManifestProblem(where, f"accounts[{i}]", message)]) from None
        key_file = item.get("key_file")
        out.append(
            AccountSpec(
                name=name,
                key_env=item.get("key_env"),
                key_file=(path.parent / key_file) if key_file else None,
                rate=rate,
                max_in_flight=item.get("max_in_flight"),
                max_spend_micros=spend,
            )
        )
    return out


def with_keys(specs: list[AccountSpec]) -> list[AccountSpec]:
    """Each account with its key read from its variable or file (UsageError naming the account
    and the place, never a key, when one cannot be read); two accounts with one key are one
    account, and refused."""
    out: list[AccountSpec] = []
    for spec in specs:
        key = _read_key(spec)
        for other in out:
            if other.key == key:
                raise UsageError(
                    f"accounts {other.name} and {spec.name} have the same key: one key is one "
                    "account (its limits and balance are the key's)"
                )
        out.append(AccountSpec(**{**spec.__dict__, "key": key}))
    return out


def _read_key(spec: AccountSpec) -> str:
    if spec.key_env:
        key = os.environ.get(spec.key_env, "").strip()
        if not key:
            raise UsageError(f"account {spec.name}: ${spec.key_env} is not set or empty")
        return key
    assert spec.key_file is not None
    try:
        key = spec.key_file.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(
            f"account {spec.name}: cannot read its key file {spec.key_file}: {type(exc).__name__}"
        ) from None
    if not key:
        raise UsageError(f"account {spec.name}: its key file {spec.key_file} is empty")
    return key


def _rate(value: Any, default_period_s: float) -> tuple[int, float] | None:
    if value is None:
        return None
    if isinstance(value, int):
        return value, default_period_s
    return parse_rate(str(value))


def _problems(doc: Any, lines: dict[str, int], display: str) -> list[ManifestProblem]:
    """Every problem, in file order; a value with a key's shape first and never shown."""
    problems: list[ManifestProblem] = []
    for path, value in dict(_strings(doc, "")).items():
        if looks_secret(value) or path.endswith((".key", ".api_key", ".apikey")):
            problems.append(ManifestProblem(_where(display, lines, path), path, INLINE_KEY))
    if problems:
        return problems
    schema = load_schema(SCHEMA_FILE)
    validator = jsonschema.Draft202012Validator(schema)
    for error in sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.path))):
        path = _json_path(error.absolute_path)
        if error.validator == "additionalProperties" and isinstance(error.instance, dict):
            extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
            path = f"{path}.{extra[0]}" if path and extra else path
        problems.append(ManifestProblem(_where(display, lines, path), path, _say(error)))
    return problems


def _strings(value: Any, path: str) -> list[tuple[str, str]]:
    """(json path, text) of every string and every mapping key in the document."""
    out: list[tuple[str, str]] = []
    if isinstance(value, dict):
        for k, v in value.items():
            sub = f"{path}.{k}" if path else str(k)
            if k in ("key", "api_key", "apikey") and v is not None:
                out.append((sub, str(v)))
            out.extend(_strings(v, sub))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out.extend(_strings(v, f"{path}[{i}]"))
    elif isinstance(value, str):
        out.append((path, value))
    return out


def _json_path(parts: Any) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _where(display: str, lines: dict[str, int], path: str) -> str:
    """file:line of `path`, or of its nearest parent the loader placed."""
    while path:
        if path in lines:
            return f"{display}:{lines[path]}"
        cut = max(path.rfind("."), path.rfind("["))
        path = path[:cut] if cut > 0 else ""
    return f"{display}:{lines['']}" if "" in lines else display


def _say(error: jsonschema.ValidationError) -> str:
    """The schema's complaint in words that quote no value of the file (it may be a key)."""
    field_ = str(error.path[-1]) if error.path else "the file"
    v = error.validator
    if v == "required":
        missing = [r for r in error.validator_value if r not in (error.instance or {})]
        return f"{', '.join(missing) or 'a field'} is required"
    if v == "additionalProperties":
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        return f"unknown field(s): {', '.join(map(str, extra))}"
    if v == "oneOf":
        return "give exactly one of key_env (a variable's name) or key_file (a path)"
    if v == "pattern" and field_ == "key_env":
        return "key_env is the name of an environment variable (letters, digits, _)"
    if v == "pattern" and field_ == "name":
        return "name: letters, digits, '.', '_' or '-', at most 64, starting with a letter or digit"
    if v == "type":
        kinds = error.validator_value
        return f"{field_} must be {' or '.join(kinds) if isinstance(kinds, list) else kinds}"
    if v in ("minimum", "minItems", "minLength"):
        return f"{field_} is too small (at least {error.validator_value})"
    return f"{field_}: not valid ({v})"
