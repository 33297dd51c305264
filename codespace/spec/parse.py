"""YAML and JSON-with-comments parsers that remember where every value came from.

Both return a :class:`Document`: plain data (dicts, lists, scalars) and a map from each
value's path (a tuple of keys and list indexes) to its :class:`Location`, so that a
validation error on ``("ports", 0, "port")`` points at the line and column a user typed.
"""

from __future__ import annotations

import bisect
import json
import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from .errors import Location, SpecError

Path_ = tuple[str | int, ...]

# libyaml's parser when available (several times faster); same nodes and marks.
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

MAX_NODES = 100_000
MAX_DEPTH = 64


@dataclass
class Document:
    """Parsed data plus the location of every value (``values``) and mapping key (``keys``)."""

    file: str
    data: Any
    values: dict[Path_, Location] = field(default_factory=dict)
    keys: dict[Path_, Location] = field(default_factory=dict)

    def locate(self, path: Path_, *, key: bool = False) -> Location:
        """The location of ``path`` or of its nearest located parent."""
        path = tuple(path)
        if key and path in self.keys:
            return self.keys[path]
        while path:
            if path in self.values:
                return self.values[path]
            if path in self.keys:
                return self.keys[path]
            path = path[:-1]
        return self.values.get((), Location(self.file))


# --------------------------------------------------------------------------- YAML


def parse_yaml(text: str, file: str) -> Document:
    """Parse one YAML document; alias/anchor bombs and deep nesting are errors."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        problem = error.problem or "invalid YAML"
        if error.context and error.context not in problem:
            problem = f"{problem} ({error.context})"
        raise SpecError.at(_mark(file, mark), f"YAML syntax error: {problem}") from None
    except yaml.YAMLError as error:
        raise SpecError.at(Location(file), f"YAML error: {error}") from None
    finally:
        loader.dispose()
    document = Document(file, None)
    if node is None:
        document.data = {}
        document.values[()] = Location(file, 1, 1)
        return document
    walker = _YamlWalker(loader, document)
    document.data = walker.walk(node, (), 0)
    return document


def _mark(file: str, mark: Any) -> Location:
    if mark is None:
        return Location(file)
    return Location(file, mark.line + 1, mark.column + 1)


class _YamlWalker:
    def __init__(self, loader: Any, document: Document) -> None:
        self.loader = loader
        self.document = document
        self.count = 0

    def walk(self, node: yaml.Node, path: Path_, depth: int) -> Any:
        self.count += 1
        file = self.document.file
        if self.count > MAX_NODES:
            raise SpecError.at(
                _mark(file, node.start_mark),
                f"document expands to more than {MAX_NODES} values (YAML alias bomb?)",
            )
        if depth > MAX_DEPTH:
            raise SpecError.at(
                _mark(file, node.start_mark), f"nesting deeper than {MAX_DEPTH} levels"
            )
        self.document.values.setdefault(path, _mark(file, node.start_mark))
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path, depth)
        if isinstance(node, yaml.SequenceNode):
            return [self.walk(item, (*path, i), depth + 1) for i, item in enumerate(node.value)]
        try:
            return self.loader.construct_object(node, deep=True)
        except yaml.constructor.ConstructorError as error:
            raise SpecError.at(
                _mark(file, error.problem_mark or node.start_mark), f"YAML error: {error.problem}"
            ) from None

    def _mapping(self, node: yaml.MappingNode, path: Path_, depth: int) -> dict[str, Any]:
        file = self.document.file
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                if key_node.value in seen:
                    raise SpecError.at(
                        _mark(file, key_node.start_mark), f"duplicate key {key_node.value!r}"
                    )
                seen.add(key_node.value)
        try:
            self.loader.flatten_mapping(node)  # resolves `<<: *anchor` merge keys
        except yaml.constructor.ConstructorError as error:
            raise SpecError.at(
                _mark(file, error.problem_mark or node.start_mark), f"YAML error: {error.problem}"
            ) from None
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise SpecError.at(_mark(file, key_node.start_mark), "mapping keys must be scalars")
            key = self.loader.construct_object(key_node)
            key = key if isinstance(key, str) else str(key_node.value)
            self.document.keys[(*path, key)] = _mark(file, key_node.start_mark)
            self.document.values.pop((*path, key), None)  # a later duplicate (merge) wins
            result[key] = self.walk(value_node, (*path, key), depth + 1)
        return result


# --------------------------------------------------------------------------- JSONC

_WHITESPACE = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()


def strip_jsonc(text: str) -> str:
    """Blank out ``//`` and ``/* */`` comments and trailing commas, keeping every offset."""
    out = list(text)
    i, n = 0, len(text)
    last_comma: int | None = None
    while i < n:
        ch = text[i]
        if ch == '"':
            last_comma = None
            i += 1
            while i < n and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
            i += 1
        elif ch == "/" and text.startswith("//", i):
            while i < n and text[i] != "\n":
                out[i] = " "
                i += 1
        elif ch == "/" and text.startswith("/*", i):
            end = text.find("*/", i + 2)
            end = n if end < 0 else end + 2
            for j in range(i, end):
                if out[j] not in "\r\n":
                    out[j] = " "
            i = end
        elif ch == ",":
            last_comma = i
            i += 1
        elif ch in "}]":
            if last_comma is not None:
                out[last_comma] = " "
            last_comma = None
            i += 1
        else:
            if not ch.isspace():
                last_comma = None
            i += 1
    return "".join(out)


def parse_jsonc(text: str, file: str) -> Document:
    """Parse JSON with comments and trailing commas (as VS Code reads devcontainer.json)."""
    parser = _JsoncParser(strip_jsonc(text), file)
    data = parser.value(0, (), 0)
    end = parser.skip(parser.end)
    if end != len(parser.text):
        raise SpecError.at(parser.at(end), "JSON syntax error: extra data after the document")
    parser.document.data = data
    return parser.document


class _JsoncParser:
    def __init__(self, text: str, file: str) -> None:
        self.text = text
        self.document = Document(file, None)
        self.line_starts = [0] + [m.end() for m in re.finditer("\n", text)]
        self.end = 0
        self.count = 0

    def at(self, offset: int) -> Location:
        line = bisect.bisect_right(self.line_starts, offset)
        return Location(self.document.file, line, offset - self.line_starts[line - 1] + 1)

    def skip(self, offset: int) -> int:
        return _WHITESPACE.match(self.text, offset).end()  # type: ignore[union-attr]

    def fail(self, offset: int, message: str) -> SpecError:
        return SpecError.at(self.at(offset), f"JSON syntax error: {message}")

    def value(self, offset: int, path: Path_, depth: int) -> Any:
        self.count += 1
        if self.count > MAX_NODES or depth > MAX_DEPTH:
            raise self.fail(offset, "document too large or too deeply nested")
        offset = self.skip(offset)
        self.document.values.setdefault(path, self.at(offset))
        if offset >= len(self.text):
            raise self.fail(offset, "unexpected end of file")
        ch = self.text[offset]
        if ch == "{":
            return self.object(offset + 1, path, depth)
        if ch == "[":
            return self.array(offset + 1, path, depth)
        try:
            result, self.end = _DECODER.raw_decode(self.text, offset)
        except json.JSONDecodeError as error:
            raise self.fail(error.pos, error.msg) from None
        return result

    def object(self, offset: int, path: Path_, depth: int) -> dict[str, Any]:
        result: dict[str, Any] = {}
        offset = self.skip(offset)
        if self.text.startswith("}", offset):
            self.end = offset + 1
            return result
        while True:
            offset = self.skip(offset)
            if not self.text.startswith('"', offset):
                raise self.fail(offset, "expected a property name in double quotes")
            start = offset
            try:
                key, offset = json.decoder.scanstring(self.text, offset + 1)
            except json.JSONDecodeError as error:
                raise self.fail(error.pos, error.msg) from None
            if key in result:
                raise SpecError.at(self.at(start), f"duplicate key {key!r}")
            self.document.keys[(*path, key)] = self.at(start)
            offset = self.skip(offset)
            if not self.text.startswith(":", offset):
                raise self.fail(offset, "expected ':' after a property name")
            result[key] = self.value(offset + 1, (*path, key), depth + 1)
            offset = self.skip(self.end)
            if self.text.startswith(",", offset):
                offset += 1
                continue
            if self.text.startswith("}", offset):
                self.end = offset + 1
                return result
            raise self.fail(offset, "expected ',' or '}'")

    def array(self, offset: int, path: Path_, depth: int) -> list[Any]:
        result: list[Any] = []
        offset = self.skip(offset)
        if self.text.startswith("]", offset):
            self.end = offset + 1
            return result
        while True:
            result.append(self.value(offset, (*path, len(result)), depth + 1))
            offset = self.skip(self.end)
            if self.text.startswith(",", offset):
                offset += 1
                continue
            if self.text.startswith("]", offset):
                self.end = offset + 1
                return result
            raise self.fail(offset, "expected ',' or ']'")
