"""A YAML loader that keeps the position of every value.

Built on PyYAML's safe composer, then constructed by hand so that it can
- remember line and column of each key and value (for one-line errors),
- reject duplicate keys and every tag beyond plain YAML types (no Python objects),
- bound alias expansion, so a "billion laughs" file fails in milliseconds,
- report files that are not UTF-8 with the position of the first bad byte.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import yaml

from .errors import Mark, ShotError, display_path

MAX_FILE_BYTES = 4 * 1024 * 1024
MAX_VALUES = 50_000  # scalars and collections after alias expansion
MAX_DEPTH = 64

_PLAIN_TAGS = {
    "tag:yaml.org,2002:null",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:str",
    "tag:yaml.org,2002:timestamp",  # kept as its text: a shot has no dates
    "tag:yaml.org,2002:seq",
    "tag:yaml.org,2002:map",
}
_MERGE_TAG = "tag:yaml.org,2002:merge"


@dataclass(eq=False)
class Node:
    """A value with the place it was written.

    ``value`` is a ``dict[str, Node]``, a ``list[Node]`` or a plain scalar. ``key_marks`` holds
    the position of each mapping key. ``base`` is the folder that a relative path written in
    this value resolves against (the folder of the file that wrote it).
    """

    value: Any
    mark: Mark
    base: str
    key_marks: dict[str, Mark] = field(default_factory=dict)

    @property
    def is_map(self) -> bool:
        return isinstance(self.value, dict)

    @property
    def is_list(self) -> bool:
        return isinstance(self.value, list)

    def get(self, key: str) -> "Node | None":
        return self.value.get(key) if self.is_map else None

    def key_mark(self, key: str) -> Mark:
        return self.key_marks.get(key, self.mark)

    def items(self) -> Iterator[tuple[str, "Node"]]:
        return iter(self.value.items()) if self.is_map else iter(())

    def plain(self) -> Any:
        """The value as plain Python data (for JSON Schema and hashing)."""
        if self.is_map:
            return {k: v.plain() for k, v in self.value.items()}
        if self.is_list:
            return [v.plain() for v in self.value]
        return self.value

    def at(self, path: list[str | int]) -> tuple["Node", Mark]:
        """The deepest node along ``path`` and its mark (a key's mark when the key is the end)."""
        node, mark = self, self.mark
        for step in path:
            if node.is_map and step in node.value:
                node, mark = node.value[step], node.value[step].mark
            elif node.is_list and isinstance(step, int) and 0 <= step < len(node.value):
                node, mark = node.value[step], node.value[step].mark
            else:
                break
        return node, mark


def copy_node(node: Node) -> Node:
    """A deep copy that keeps marks and bases."""
    if node.is_map:
        value: Any = {k: copy_node(v) for k, v in node.value.items()}
    elif node.is_list:
        value = [copy_node(v) for v in node.value]
    else:
        value = node.value
    return Node(value, node.mark, node.base, dict(node.key_marks))


def from_plain(value: Any, mark: Mark, base: str) -> Node:
    """Wrap plain data (from the command line or a CSV cell) as nodes that all point at ``mark``."""
    if isinstance(value, dict):
        return Node({str(k): from_plain(v, mark, base) for k, v in value.items()}, mark, base,
                    {str(k): mark for k in value})
    if isinstance(value, list):
        return Node([from_plain(v, mark, base) for v in value], mark, base)
    return Node(value, mark, base)


def parse_scalar(text: str) -> Any:
    """A command-line or CSV value read the way YAML reads a plain scalar: 30 is a number."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    if value is None or isinstance(value, (bool, int, float, str)):
        if isinstance(value, float) and not math.isfinite(value):
            return text
        return text if value is None and text.strip() not in ("", "null", "~") else value
    return text  # a mapping or list written on the command line stays text


def read_text(path: Path, shown: str) -> str:
    """The file's text, or a one-line error: missing, unreadable, too big or not UTF-8."""
    try:
        if path.is_dir():
            raise ShotError.at(Mark(shown), "is a folder, not a shot file")
        data = path.read_bytes()
    except FileNotFoundError:
        raise ShotError.at(Mark(shown), "no such file") from None
    except PermissionError:
        raise ShotError.at(Mark(shown), "permission denied") from None
    except OSError as exc:
        raise ShotError.at(Mark(shown), f"cannot read: {exc.strerror or exc}") from None
    if len(data) > MAX_FILE_BYTES:
        raise ShotError.at(Mark(shown), f"file is {len(data) // 1024} KiB; shot files are limited "
                                        f"to {MAX_FILE_BYTES // (1024 * 1024)} MiB")
    if data.startswith((b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff")):
        raise ShotError.at(Mark(shown, 1, 1), "file is UTF-32 text; save it as UTF-8")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise ShotError.at(Mark(shown, 1, 1), "file is UTF-16 text; save it as UTF-8")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        line_start = data.rfind(b"\n", 0, exc.start) + 1
        # Columns count characters, as every other mark does.
        col = len(data[line_start:exc.start].decode("utf-8", errors="replace")) + 1
        raise ShotError.at(Mark(shown, line, col),
                           f"file is not UTF-8 text (byte 0x{data[exc.start]:02x}); "
                           "save it as UTF-8") from None


def load_yaml(path: str | os.PathLike[str]) -> Node:
    """Load one YAML document from ``path`` as a Node tree, or raise ShotError."""
    path = Path(path)
    shown = display_path(path)
    text = read_text(path, shown)
    return load_yaml_text(text, shown, str(path.resolve().parent))


def load_yaml_text(text: str, shown: str, base: str) -> Node:
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        raise ShotError.at(_mark(shown, exc.problem_mark), _yaml_message(exc)) from None
    except yaml.YAMLError as exc:  # reader errors carry no mark of the usual kind
        raise ShotError.at(Mark(shown, 1, 1), str(exc).splitlines()[0]) from None
    finally:
        loader.dispose()
    if root is None:
        raise ShotError.at(Mark(shown, 1, 1), "file is empty")
    return _Builder(shown, base, loader).build(root)


def _mark(shown: str, mark: Any) -> Mark:
    if mark is None:
        return Mark(shown, 1, 1)
    return Mark(shown, mark.line + 1, mark.column + 1)


def _yaml_message(exc: yaml.MarkedYAMLError) -> str:
    problem = exc.problem or "invalid YAML"
    if "'\\t'" in problem:
        return "a tab character; YAML indents with spaces only"
    if "expected a single document" in (exc.context or "") or "expected <document end>" in problem:
        return "more than one YAML document ('---'); a shot file holds one"
    if exc.context and exc.context not in problem:
        return f"{problem} ({exc.context})"
    return problem


class _Builder:
    def __init__(self, shown: str, base: str, loader: yaml.SafeLoader):
        self.shown = shown
        self.base = base
        self.loader = loader
        self.count = 0
        self.active: set[int] = set()

    def build(self, node: yaml.Node, depth: int = 0) -> Node:
        mark = _mark(self.shown, node.start_mark)
        self.count += 1
        if self.count > MAX_VALUES:
            raise ShotError.at(mark, f"the document expands to more than {MAX_VALUES} values "
                                     "through aliases; a shot file is far smaller")
        if depth > MAX_DEPTH:
            raise ShotError.at(mark, f"values nested more than {MAX_DEPTH} levels deep")
        if id(node) in self.active:
            raise ShotError.at(mark, "an alias refers to a value that contains it")
        if node.tag not in _PLAIN_TAGS:
            raise ShotError.at(mark, f"unsupported YAML tag '{node.tag}'; "
                                     "shot files hold plain values only")
        self.active.add(id(node))
        try:
            if isinstance(node, yaml.MappingNode):
                return self._mapping(node, mark, depth)
            if isinstance(node, yaml.SequenceNode):
                return Node([self.build(item, depth + 1) for item in node.value], mark, self.base)
            return Node(self._scalar(node, mark), mark, self.base)
        finally:
            self.active.discard(id(node))

    def _scalar(self, node: yaml.ScalarNode, mark: Mark) -> Any:
        if node.tag == "tag:yaml.org,2002:timestamp":
            return node.value
        try:
            value = self.loader.construct_object(node)
        except yaml.YAMLError as exc:
            raise ShotError.at(mark, str(getattr(exc, "problem", exc))) from None
        if isinstance(value, float) and not math.isfinite(value):
            raise ShotError.at(mark, f"'{node.value}' is not a finite number")
        if isinstance(value, str) and "\x00" in value:
            raise ShotError.at(mark, "text contains a NUL character (\\0)")
        return value

    def _mapping(self, node: yaml.MappingNode, mark: Mark, depth: int) -> Node:
        values: dict[str, Node] = {}
        key_marks: dict[str, Mark] = {}
        merged: list[Node] = []
        for key_node, value_node in node.value:
            key_mark = _mark(self.shown, key_node.start_mark)
            if key_node.tag == _MERGE_TAG:
                merged.extend(self._merge_sources(value_node, depth))
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                raise ShotError.at(key_mark, "a list or mapping cannot be a key; keys are text")
            key = self.build(key_node, depth + 1).value
            if not isinstance(key, str):
                raise ShotError.at(key_mark, f"key {key_node.value!r} must be text; quote it")
            if key in values:
                first = key_marks[key]
                raise ShotError.at(key_mark, f"duplicate key '{key}' (first at line {first.line})")
            values[key] = self.build(value_node, depth + 1)
            key_marks[key] = key_mark
        for source in merged:  # YAML merge keys: explicit keys win
            for key, value in source.items():
                if key not in values:
                    values[key] = value
                    key_marks[key] = source.key_mark(key)
        return Node(values, mark, self.base, key_marks)

    def _merge_sources(self, node: yaml.Node, depth: int) -> list[Node]:
        built = self.build(node, depth + 1)
        sources = built.value if built.is_list else [built]
        for source in sources:
            if not source.is_map:
                raise ShotError.at(source.mark, "'<<' merges mappings only")
        return sources
