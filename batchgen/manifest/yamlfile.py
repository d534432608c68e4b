"""Safe YAML for manifests: plain data only, with the line of every node.

PyYAML composes the node graph (with marks); this module then builds the Python values itself,
so it can refuse what a manifest never needs:
- tags other than the standard str/int/float/bool/null/seq/map (no object construction),
- alias bombs ("billion laughs"): few aliases, and a bounded number of nodes after expansion,
- recursive aliases and very deep nesting.
Scalars follow the YAML 1.2 core schema, not YAML 1.1: `16:9` stays the text "16:9" (YAML 1.1
would read the integer 969) and `no`/`on` stay text.
"""

from __future__ import annotations

import re
from typing import Any

import yaml
from yaml.composer import Composer
from yaml.events import AliasEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.parser import Parser
from yaml.reader import Reader
from yaml.resolver import BaseResolver
from yaml.scanner import Scanner

from batchgen.errors import ManifestError, ManifestProblem
from batchgen.manifest.schema import json_path

MAX_ALIASES = 100
MAX_EXPANDED_EXTRA = 1_000_000  # nodes that aliases may add once expanded
MAX_DEPTH = 64

_T = "tag:yaml.org,2002:"
STR, INT, FLOAT, BOOL, NULL = (_T + n for n in ("str", "int", "float", "bool", "null"))
SEQ, MAP, MERGE = _T + "seq", _T + "map", _T + "merge"

_INT_RE = re.compile(r"[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+")
_FLOAT_RE = re.compile(
    r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
    r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)"
)


class _Resolver(BaseResolver):
    pass


_Resolver.add_implicit_resolver(NULL, re.compile(r"^(?:~|null|Null|NULL|)$"), None)
_Resolver.add_implicit_resolver(BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), None)
_Resolver.add_implicit_resolver(INT, re.compile(rf"^(?:{_INT_RE.pattern})$"), None)
_Resolver.add_implicit_resolver(FLOAT, re.compile(rf"^(?:{_FLOAT_RE.pattern})$"), None)
_Resolver.add_implicit_resolver(MERGE, re.compile(r"^(?:<<)$"), ["<"])


class _Refused(Exception):
    def __init__(self, message: str, node_or_mark: Any) -> None:
        super().__init__(message)
        self.mark = getattr(node_or_mark, "start_mark", node_or_mark)


class _Loader(Reader, Scanner, Parser, Composer, _Resolver):
    def __init__(self, text: str) -> None:
        Reader.__init__(self, text)
        Scanner.__init__(self)
        Parser.__init__(self)
        Composer.__init__(self)
        _Resolver.__init__(self)
        self.aliases = 0
        self.depth = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node:
        if self.check_event(AliasEvent):
            self.aliases += 1
            if self.aliases > MAX_ALIASES:
                raise _Refused(f"more than {MAX_ALIASES} YAML aliases (*name)", self.peek_event())
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                raise _Refused(f"nested deeper than {MAX_DEPTH} levels", self.peek_event())
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def load_yaml(text: str, display: str) -> tuple[Any, dict[str, int]]:
    """The document's data and `lines`: JSON path (`jobs[3].input.prompt`) -> 1-based line."""
    loader = None
    try:
        loader = _Loader(text)
        root = loader.get_single_node()
    except _Refused as exc:
        raise _problem(display, exc.mark, str(exc)) from None
    except yaml.MarkedYAMLError as exc:
        text_ = " ".join(p for p in (exc.context, exc.problem) if p) or "not valid YAML"
        raise _problem(display, exc.problem_mark or exc.context_mark, text_) from None
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, max(exc.position, 0)) + 1
        char = exc.character if isinstance(exc.character, int) else 0
        message = f"control character U+{char:04X} is not allowed in YAML text"
        raise ManifestError([ManifestProblem(f"{display}:{line}", "", message)]) from None
    except yaml.YAMLError as exc:
        raise ManifestError([ManifestProblem(display, "", f"not valid YAML: {exc}")]) from None
    finally:
        if loader is not None:
            loader.dispose()
    if root is None:
        return None, {}
    try:
        _check_expansion(root)
    except _Refused as exc:
        raise _problem(display, exc.mark, str(exc)) from None
    builder = _Builder(display)
    value = builder.build(root, ())
    if builder.problems:
        raise ManifestError(builder.problems)
    return value, builder.lines


def _problem(display: str, mark: Any, message: str) -> ManifestError:
    where = f"{display}:{mark.line + 1}" if mark is not None else display
    return ManifestError([ManifestProblem(where, "", message)])


def _check_expansion(root: Node) -> None:
    """Refuse recursive aliases and alias bombs: count the nodes the document expands to."""
    sizes: dict[int, int] = {}
    unique: set[int] = set()
    active: set[int] = set()

    def size(node: Node, depth: int) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in active:
            raise _Refused("a YAML alias refers to its own anchor (recursive data)", node)
        if depth > MAX_DEPTH:
            raise _Refused(f"nested deeper than {MAX_DEPTH} levels once aliases are expanded", node)
        active.add(key)
        unique.add(key)
        total = 1
        if isinstance(node, SequenceNode):
            total += sum(size(child, depth + 1) for child in node.value)
        elif isinstance(node, MappingNode):
            total += sum(size(k, depth + 1) + size(v, depth + 1) for k, v in node.value)
        active.discard(key)
        sizes[key] = total
        if total - len(unique) > MAX_EXPANDED_EXTRA:
            raise _Refused("YAML aliases expand to too much data (an alias bomb?)", node)
        return total

    size(root, 0)


class _Builder:
    def __init__(self, display: str) -> None:
        self.display = display
        self.lines: dict[str, int] = {}
        self.problems: list[ManifestProblem] = []

    def fail(self, node: Node, path: tuple, message: str) -> None:
        where = f"{self.display}:{node.start_mark.line + 1}"
        self.problems.append(ManifestProblem(where, json_path(path), message))

    def build(self, node: Node, path: tuple) -> Any:
        self.lines[json_path(path)] = node.start_mark.line + 1
        tag = node.tag
        if isinstance(node, ScalarNode):
            return self.scalar(node, path)
        if isinstance(node, SequenceNode):
            if tag != SEQ:
                self.fail(node, path, _bad_tag(tag))
                return None
            return [self.build(child, (*path, i)) for i, child in enumerate(node.value)]
        if isinstance(node, MappingNode):
            if tag != MAP:
                self.fail(node, path, _bad_tag(tag))
                return None
            return self.mapping(node, path)
        self.fail(node, path, "unsupported YAML node")  # pragma: no cover
        return None

    def mapping(self, node: MappingNode, path: tuple) -> dict[str, Any]:
        out: dict[str, Any] = {}
        key_lines: dict[str, int] = {}
        explicit: list[tuple[str, Node]] = []
        for key_node, value_node in node.value:
            if isinstance(key_node, ScalarNode) and key_node.tag == MERGE:
                # merged first, so that explicit keys (and their lines) win
                sources = value_node.value if isinstance(value_node, SequenceNode) else [value_node]
                for source in sources:
                    if not isinstance(source, MappingNode) or source.tag != MAP:
                        self.fail(source, path, "'<<' merges only mappings")
                        continue
                    for key, value in self.mapping(source, path).items():
                        out.setdefault(key, value)
                continue
            if not isinstance(key_node, ScalarNode):
                self.fail(key_node, path, "mapping keys must be plain names")
                continue
            if key_node.tag not in (STR, INT, FLOAT, BOOL, NULL):
                self.fail(key_node, path, _bad_tag(key_node.tag))
                continue
            key = key_node.value
            if key in key_lines:
                self.fail(
                    key_node,
                    (*path, key),
                    f"duplicate key {key!r} (first given at line {key_lines[key]})",
                )
                continue
            key_lines[key] = key_node.start_mark.line + 1
            explicit.append((key, value_node))
        for key, value_node in explicit:
            out[key] = self.build(value_node, (*path, key))
            # A field's place is its key's line: a block value (a mapping or list on the lines
            # below) starts a line lower, and a typo in its key was reported there.
            self.lines[json_path((*path, key))] = key_lines[key]
        return out

    def scalar(self, node: ScalarNode, path: tuple) -> Any:
        tag, value = node.tag, node.value
        if tag == STR:
            return value
        if tag == NULL:
            if value not in ("", "~", "null", "Null", "NULL"):
                self.fail(node, path, f"{value!r} is not null")
            return None
        if tag == BOOL:
            if value.lower() not in ("true", "false"):
                self.fail(node, path, f"{value!r} is not true or false")
                return None
            return value.lower() == "true"
        if tag == INT:
            try:
                if value.startswith(("0o", "0x")):
                    return int(value[2:], 8 if value[1] == "o" else 16)
                return int(value)
            except ValueError:
                self.fail(node, path, f"{value[:40]!r} is not a whole number (or is too long)")
                return None
        if tag == FLOAT:
            try:
                text = value.lower()
                if text.lstrip("+-") in (".inf", ".nan"):
                    text = text.replace(".", "")
                return float(text)
            except ValueError:
                self.fail(node, path, f"{value[:40]!r} is not a number")
                return None
        self.fail(node, path, _bad_tag(tag))
        return None


def _bad_tag(tag: str) -> str:
    shown = "!!" + tag[len(_T) :] if tag.startswith(_T) else tag
    return f"YAML tag {shown} is not allowed (plain data only)"
