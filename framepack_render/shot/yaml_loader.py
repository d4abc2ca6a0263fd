"""A YAML loader that keeps the position of every value.

PyYAML's safe parser (libyaml's when PyYAML has it: many times faster) turns the text into
events; the document is composed here, without recursion, so that it can
- remember line and column of each key and value (for one-line errors),
- reject duplicate keys and every tag beyond plain YAML types (no Python objects),
- refuse nesting deeper than MAX_DEPTH as soon as the parser reaches it, so ten thousand '['
  are one error and never a stack overflow,
- bound the values a file writes (MAX_VALUES) and, apart from those, what aliases add by
  repeating values (MAX_ALIAS_VALUES), so a "billion laughs" file fails in milliseconds,
- report files that are not UTF-8, or hold control characters, at the first bad one.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import yaml

from .errors import Mark, ShotError, display_path
from .files import FileProblem, read_regular, resolve

MAX_FILE_BYTES = 4 * 1024 * 1024
FRAME_KEYED = ("prompts",)  # mappings whose keys may be written as bare frame numbers
MAX_VALUES = 100_000  # keys, scalars and collections written in the file
MAX_ALIAS_VALUES = 50_000  # values that aliases add by repeating others
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
_STR_TAG = "tag:yaml.org,2002:str"
_TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"
_PARSER = yaml.CSafeLoader if getattr(yaml, "__with_libyaml__", False) else yaml.SafeLoader
# What YAML allows in a file (PyYAML's Reader.NON_PRINTABLE), and its line breaks.
_NOT_ALLOWED = re.compile("[^\x09\x0A\x0D\x20-\x7E\x85\xA0-\uD7FF\uE000-\uFFFD"
                          "\U00010000-\U0010FFFF]")
_BREAK = re.compile("\r\n|[\r\n\x85\u2028\u2029]")
_REPARSE_CHARS = 256 * 1024  # about a second of the pure-Python parser at worst


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
    """A command-line or CSV value read the way YAML reads a plain scalar: 30 is a number.
    Read by this loader, so a cell of ten thousand '[' is as harmless here as in a file."""
    if not text.strip():
        return None
    try:
        node = load_yaml_text(text, "<value>", "")
    except ShotError:  # not YAML, or not a plain value (a NaN, a tag, only a comment...)
        return text
    if node.is_map or node.is_list:
        return text  # a mapping or list written on the command line stays text
    if node.value is None and text.strip() not in ("null", "~"):
        return text
    return node.value


def read_text(path: Path, shown: str, noun: str = "a shot file") -> str:
    """The file's text, or a one-line error: missing, not a regular file, too big or not UTF-8.
    ``noun`` is what the file should be, for those errors."""
    try:
        data = read_regular(path, noun, MAX_FILE_BYTES)
    except FileProblem as problem:
        message = "no such file" if problem.missing else str(problem)
        raise ShotError.at(Mark(shown), f"file {message}" if problem.too_big else message) \
            from None
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
    return load_yaml_text(text, shown, str(resolve(path).parent))


def load_yaml_text(text: str, shown: str, base: str) -> Node:
    """The one YAML document in ``text`` (shown as ``shown`` in errors), or ShotError."""
    _check_characters(text, shown)
    loader = _PARSER(text)
    try:
        root = _Composer(shown, base, loader).compose()
    except yaml.MarkedYAMLError as exc:
        if "maximum nesting depth" in (exc.problem or ""):
            raise _nesting_error(text, shown, base, exc) from None
        raise ShotError.at(_mark(shown, exc.problem_mark), _yaml_message(exc, text)) from None
    except (yaml.YAMLError, UnicodeError) as exc:  # no mark of the usual kind
        raise ShotError.at(Mark(shown, 1, 1), str(exc).splitlines()[0]) from None
    finally:
        loader.dispose()
    if root is None:
        raise ShotError.at(Mark(shown, 1, 1), "file is empty")
    return root


def _nesting_error(text: str, shown: str, base: str, exc: yaml.MarkedYAMLError) -> ShotError:
    """libyaml stops at 1000 levels of flow nesting on one line before it hands any of them
    over; PyYAML's own parser, over the text up to there, hands over each level, so that the
    error names the first one too deep (when that text is short enough to parse quickly)."""
    end = getattr(exc.problem_mark, "index", -1)
    if 0 < end <= _REPARSE_CHARS:
        loader = yaml.SafeLoader(text[:end])
        try:
            _Composer(shown, base, loader).compose()
        except ShotError as error:
            return error
        except yaml.YAMLError:
            pass
        finally:
            loader.dispose()
    return ShotError.at(_mark(shown, exc.problem_mark),
                        f"values nested more than {MAX_DEPTH} levels deep")


def _check_characters(text: str, shown: str) -> None:
    """Control characters (a NUL above all) are not YAML: say where the first one is."""
    found = _NOT_ALLOWED.search(text)
    if found is None:
        return
    line, col = _position(text, found.start())
    code = ord(found.group())
    if code == 0:
        message = "file holds a NUL byte; it is binary or UTF-16/32 data, not UTF-8 text"
    else:
        message = f"control character U+{code:04X} is not allowed in a YAML file"
    raise ShotError.at(Mark(shown, line, col), message)


def _position(text: str, index: int) -> tuple[int, int]:
    """1-based line and column of ``text[index]``, breaking lines where YAML does."""
    line, start = 1, 0
    for found in _BREAK.finditer(text, 0, index):
        line, start = line + 1, found.end()
    return line, index - start + 1


def _mark(shown: str, mark: Any) -> Mark:
    if mark is None:
        return Mark(shown, 1, 1)
    return Mark(shown, mark.line + 1, mark.column + 1)


def _yaml_message(exc: yaml.MarkedYAMLError, text: str) -> str:
    problem = exc.problem or "invalid YAML"
    mark = exc.problem_mark
    index = getattr(mark, "index", -1)
    char = text[index] if 0 <= index < len(text) else ""
    if "'\\t'" in problem or "tab character" in problem or (
            char == "\t" and "cannot start any token" in problem):
        return "a tab character; YAML indents with spaces only"
    if problem == "found character that cannot start any token" and char:
        problem = f"found character {char!r} that cannot start any token"  # as PyYAML says it
    if exc.context and exc.context not in problem:
        return f"{problem} ({exc.context})"
    return problem


@dataclass(eq=False)
class _Open:
    """A list or mapping being composed."""

    node: Node
    anchor: str | None
    size: int = 1  # values in it, itself and keys included: what an alias to it repeats
    height: int = 0  # levels of values below it
    key: str | None = None  # a mapping's key waiting for its value
    key_mark: Mark | None = None
    merging: bool = False  # the value awaited is a '<<' merge
    merged: list[Node] = field(default_factory=list)

    @property
    def wants_key(self) -> bool:
        return self.node.is_map and self.key is None and not self.merging


class _Composer:
    """Builds the Node tree from parser events with an explicit stack (no recursion)."""

    def __init__(self, shown: str, base: str, loader: Any):
        self.shown = shown
        self.base = base
        self.loader = loader
        self.stack: list[_Open] = []
        self.anchors: dict[str, tuple[Node, int, int]] = {}  # node, size, height
        self.open_anchors: dict[str, _Open] = {}
        self.written = 0
        self.repeated = 0
        self.root: Node | None = None
        self.memo: dict[tuple[str, Any], tuple[str, Any]] = {}

    def compose(self) -> Node | None:
        documents = 0
        while True:
            event = self.loader.get_event()
            kind = type(event)
            if kind is yaml.ScalarEvent:
                self._scalar(event)
            elif kind is yaml.MappingStartEvent:
                self._start(event, {}, yaml.MappingNode)
            elif kind is yaml.SequenceStartEvent:
                self._start(event, [], yaml.SequenceNode)
            elif kind is yaml.MappingEndEvent or kind is yaml.SequenceEndEvent:
                self._end()
            elif kind is yaml.AliasEvent:
                self._alias(event)
            elif kind is yaml.DocumentStartEvent:
                documents += 1
                if documents > 1:
                    raise ShotError.at(self._mark(event), "more than one YAML document ('---'); "
                                                          "a shot file holds one")
            elif kind is yaml.StreamEndEvent:
                return self.root

    # ------------------------------------------------------------ events

    def _scalar(self, event: yaml.ScalarEvent) -> None:
        mark = self._mark(event)
        self._count(mark)
        parent = self.stack[-1] if self.stack else None
        wants_key = parent is not None and parent.wants_key
        tag, value = self._scalar_value(event, mark)
        if wants_key and tag == _MERGE_TAG:
            parent.merging, parent.key_mark = True, mark
            return
        self._check_tag(tag, mark)
        node = Node(value, mark, self.base)
        if event.anchor is not None:
            self._anchor(event.anchor, mark)
            self.anchors[event.anchor] = (node, 1, 0)
        if wants_key:
            self._key(parent, node, event.value)
        else:
            self._attach(node, 1, 0)

    def _start(self, event: Any, value: dict | list, kind: type) -> None:
        mark = self._mark(event)
        self._count(mark)
        if self.stack and self.stack[-1].wants_key:
            raise ShotError.at(mark, "a list or mapping cannot be a key; keys are text")
        tag = event.tag
        if tag is None or tag == "!":
            tag = self.loader.resolve(kind, None, event.implicit)
        self._check_tag(tag, mark)
        frame = _Open(Node(value, mark, self.base), event.anchor)
        if event.anchor is not None:
            self._anchor(event.anchor, mark)
            self.open_anchors[event.anchor] = frame
        self.stack.append(frame)

    def _end(self) -> None:
        frame = self.stack.pop()
        node = frame.node
        for source in frame.merged:  # YAML merge keys: explicit keys win, earlier sources next
            for key, value in source.items():
                if key not in node.value:
                    node.value[key] = value
                    node.key_marks[key] = source.key_mark(key)
        if frame.anchor is not None:
            del self.open_anchors[frame.anchor]
            self.anchors[frame.anchor] = (node, frame.size, frame.height)
        self._attach(node, frame.size, frame.height)

    def _alias(self, event: yaml.AliasEvent) -> None:
        mark = self._mark(event)
        name = event.anchor
        if name in self.open_anchors:
            raise ShotError.at(self.open_anchors[name].node.mark,
                               "an alias refers to a value that contains it")
        if name not in self.anchors:
            raise ShotError.at(mark, f"found undefined alias '{name}'")
        node, size, height = self.anchors[name]
        if len(self.stack) + height > MAX_DEPTH:
            raise ShotError.at(mark, f"values nested more than {MAX_DEPTH} levels deep")
        self.repeated += size
        if self.repeated > MAX_ALIAS_VALUES:
            raise ShotError.at(mark, f"the document expands to more than {MAX_ALIAS_VALUES} "
                                     "values through aliases; a shot file is far smaller")
        parent = self.stack[-1] if self.stack else None
        if parent is not None and parent.wants_key:
            if node.is_map or node.is_list:
                raise ShotError.at(mark, "a list or mapping cannot be a key; keys are text")
            self._key(parent, Node(node.value, mark, self.base), str(node.value))
        else:
            self._attach(copy_node(node), size, height)

    # ------------------------------------------------------------ helpers

    def _mark(self, event: Any) -> Mark:
        return Mark(self.shown, event.start_mark.line + 1, event.start_mark.column + 1)

    def _count(self, mark: Mark) -> None:
        self.written += 1
        if self.written > MAX_VALUES:
            raise ShotError.at(mark, f"the file holds more than {MAX_VALUES} values; a shot "
                                     "file is far smaller")
        if len(self.stack) > MAX_DEPTH:
            raise ShotError.at(mark, f"values nested more than {MAX_DEPTH} levels deep")

    def _anchor(self, name: str, mark: Mark) -> None:
        first = self.anchors.get(name)
        other = first[0].mark if first else (self.open_anchors[name].node.mark
                                              if name in self.open_anchors else None)
        if other is not None:
            raise ShotError.at(mark, f"anchor '&{name}' is defined twice (first at line "
                                     f"{other.line})")

    def _check_tag(self, tag: str, mark: Mark) -> None:
        if tag not in _PLAIN_TAGS:
            raise ShotError.at(mark, f"unsupported YAML tag '{tag}'; "
                                     "shot files hold plain values only")

    def _key(self, parent: _Open, node: Node, written: str) -> None:
        key = node.value
        if not isinstance(key, str):
            if not self._frame_key(key):
                raise ShotError.at(node.mark, f"key {written!r} must be text; quote it")
            key = written if written.isdigit() else str(key)
        if key in parent.node.value:
            first = parent.node.key_marks[key]
            raise ShotError.at(node.mark, f"duplicate key '{key}' (first at line {first.line})")
        parent.key, parent.key_mark = key, node.mark
        parent.size += 1

    def _attach(self, node: Node, size: int, height: int) -> None:
        """Put a finished value where it belongs: the root, a list item or a mapping value."""
        if not self.stack:
            self.root = node
            return
        parent = self.stack[-1]
        parent.size += size
        parent.height = max(parent.height, height + 1)
        if parent.node.is_list:
            parent.node.value.append(node)
        elif parent.merging:
            parent.merged.extend(self._merge_sources(node))
            parent.merging = False
        else:
            assert parent.key is not None and parent.key_mark is not None
            parent.node.value[parent.key] = node
            parent.node.key_marks[parent.key] = parent.key_mark
            parent.key = None

    def _frame_key(self, key: Any) -> bool:
        """A whole number keys a frame in a mapping of keyframes (``prompts: {0: ..., 60:
        ...}``); it is kept as the text it was written as."""
        holder = self.stack[-2] if len(self.stack) > 1 else None
        return type(key) is int and holder is not None and holder.key in FRAME_KEYED

    @staticmethod
    def _merge_sources(node: Node) -> list[Node]:
        sources = node.value if node.is_list else [node]
        for source in sources:
            if not source.is_map:
                raise ShotError.at(source.mark, "'<<' merges mappings only")
        return sources

    def _scalar_value(self, event: yaml.ScalarEvent, mark: Mark) -> tuple[str, Any]:
        """The tag and Python value of a scalar; the same short plain text (keys above all)
        recurs often, so its answer is remembered."""
        plain = event.tag is None or event.tag == "!"
        memo_key = (event.value, event.implicit) if plain and len(event.value) <= 64 else None
        known = self.memo.get(memo_key) if memo_key is not None else None
        if known is not None:
            return known
        tag = self.loader.resolve(yaml.ScalarNode, event.value, event.implicit) if plain \
            else event.tag
        if tag == _STR_TAG or tag == _TIMESTAMP_TAG:  # a timestamp stays text: shots hold no dates
            value: Any = event.value
        elif tag in _PLAIN_TAGS:
            value = self._construct(tag, event, mark)
        else:
            return tag, None  # a merge key, or a tag the caller refuses
        if isinstance(value, str):
            _check_text(value, mark)
        if memo_key is not None and len(self.memo) < 10_000:
            self.memo[memo_key] = (tag, value)
        return tag, value

    def _construct(self, tag: str, event: yaml.ScalarEvent, mark: Mark) -> Any:
        node = yaml.ScalarNode(tag, event.value, event.start_mark, event.end_mark)
        try:
            value = self.loader.yaml_constructors[tag](self.loader, node)
        except yaml.YAMLError as exc:
            raise ShotError.at(mark, str(getattr(exc, "problem", exc))) from None
        except ValueError:  # Python's bound on the digits of an int
            raise ShotError.at(mark, f"number of {len(event.value)} characters is too long "
                                     "to read") from None
        if isinstance(value, float) and not math.isfinite(value):
            raise ShotError.at(mark, f"'{event.value}' is not a finite number")
        return value


def _check_text(value: str, mark: Mark) -> None:
    if "\x00" in value:
        raise ShotError.at(mark, "text contains a NUL character (\\0)")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:  # an escape such as "\ud800" names half a character
            raise ShotError.at(mark, f"text contains a lone surrogate escape "
                                     f"(\\u{ord(value[exc.start]):04x}); write the character "
                                     "itself") from None
