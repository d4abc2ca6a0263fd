"""Templates and batches: `extends`, `vars` with ${name}, `--set`, `matrix`, and CSV jobs.

Each function takes and returns Node trees so that every value keeps the place it was
written: an error in a value that came from a template points into the template, and one that
came from a CSV cell points at the cell.
"""

from __future__ import annotations

import csv
import io
import itertools
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from .errors import Diagnostic, Mark, ShotError, display_path, suggest, suggest_file
from .files import FileProblem, check_regular, resolve
from .limits import MAX_SECTIONS_CHECKED, MAX_VARS, check_counts, section_count
from .yaml_loader import Node, copy_node, load_yaml, parse_scalar, read_text

_VAR_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
COMMAND_LINE = "<command line>"
# `--set frames=N` / `--set duration=2.4s` set a shot's length even where it has no such var.
LENGTH_KEYS = ("frames", "duration")
MAX_EXPANSIONS = 1000


@dataclass
class Expansion:
    """One shot to check and plan: a merged, substituted document and where it came from."""

    doc: Node
    source: Path  # the shot or CSV file: outputs resolve against its folder
    label: str
    vars: dict[str, object] = field(default_factory=dict)
    files: tuple[Path, ...] = ()  # the shot and every template it extends
    row: Mark | None = None  # the CSV row it came from
    warnings: list[Diagnostic] = field(default_factory=list)


# ---------------------------------------------------------------- extends


def load_with_extends(path: Path) -> tuple[Node, tuple[Path, ...]]:
    """The shot merged over its chain of templates, and the files of that chain."""
    chain: list[Path] = []
    docs: list[Node] = []
    target: Path | None = path
    via: Mark | None = None
    while target is not None:  # a loop, not recursion: a chain may be long
        doc, target, via = _load_link(target, chain, via)
        docs.append(doc)
    merged = docs[-1]
    for doc in reversed(docs[:-1]):
        merged = merge(merged, doc)
    check_counts(merged)
    return merged, tuple(chain)


def _load_link(written: Path, chain: list[Path], via: Mark | None
               ) -> tuple[Node, Path | None, Mark | None]:
    """One file of an extends chain (as written at ``via``), and the template it extends with
    where it says so."""
    path = resolve(written)
    if path in chain:
        names = " -> ".join(display_path(p) for p in chain[chain.index(path):] + [path])
        raise ShotError.at(via or Mark(display_path(path)), f"extends cycle: {names}")
    _require_file(written, via)  # the path as written, so that a broken link is named as one
    chain.append(path)
    doc = load_yaml(path)
    if not doc.is_map:
        raise ShotError.at(doc.mark, "a shot file is a mapping of keys such as prompt, image "
                                     "and output")
    parent_node = doc.value.pop("extends", None)
    if parent_node is None:
        return doc, None, None
    if not isinstance(parent_node.value, str) or not parent_node.value.strip():
        raise ShotError.at(parent_node.mark, "extends must be the path of a template file")
    return doc, Path(parent_node.base) / parent_node.value, parent_node.mark


def _require_file(path: Path, via: Mark | None) -> None:
    """A one-line error unless ``path`` is a regular file: the shot, or a template it names at
    ``via``."""
    try:
        check_regular(path, "a shot file")
    except FileProblem as problem:
        if via is None:
            raise ShotError.at(Mark(display_path(path)),
                               "no such file" if problem.missing else str(problem)) from None
        raise ShotError.at(via, f"template {display_path(path)} {problem}"
                                + (suggest_file(path) if problem.missing else "")) from None


def merge(base: Node, over: Node) -> Node:
    """``over`` merged onto ``base``: mappings merge deeply, everything else replaces."""
    if not (base.is_map and over.is_map):
        return copy_node(over)
    merged = copy_node(base)
    for key, value in over.items():
        if key in merged.value:
            merged.value[key] = merge(merged.value[key], value)
        else:
            merged.value[key] = copy_node(value)
        merged.key_marks[key] = over.key_mark(key)
    merged.mark, merged.base = over.mark, over.base
    return merged


# ---------------------------------------------------------------- vars


def substitute(node: Node, variables: dict[str, Node]) -> Node:
    """Replace ${name} in every string below ``node``. ``$${`` writes a literal ``${``."""
    if node.is_map:
        return Node({k: substitute(v, variables) for k, v in node.items()}, node.mark, node.base,
                    dict(node.key_marks))
    if node.is_list:
        return Node([substitute(v, variables) for v in node.value], node.mark, node.base)
    if not isinstance(node.value, str) or "$" not in node.value:
        return node
    text = node.value
    whole = re.fullmatch(r"\$\{([^}]*)\}", text)
    if whole:  # exactly one var: keep the value's type and where it was written
        value = _lookup(whole.group(1), variables, node.mark)
        # A value from the command line has no file: errors point where it is used.
        mark = node.mark if value.mark.file == COMMAND_LINE else value.mark
        return Node(value.value, mark, value.base)
    parts: list[str] = []
    base = node.base
    i = 0
    while i < len(text):
        if text.startswith("$${", i):
            parts.append("${")
            i += 3
        elif text.startswith("${", i):
            end = text.find("}", i + 2)
            if end < 0:
                raise ShotError.at(node.mark, f"unclosed '${{' in '{text}'; write $${{ for a "
                                              "literal ${")
            value = _lookup(text[i + 2:end], variables, node.mark)
            if i == 0:  # a path that starts with a var resolves where the var was defined
                base = value.base
            parts.append(_as_text(value.value))
            i = end + 1
        else:
            parts.append(text[i])
            i += 1
    return Node("".join(parts), node.mark, base)


def _lookup(name: str, variables: dict[str, Node], mark: Mark) -> Node:
    name = name.strip()
    if not _VAR_NAME.match(name):
        raise ShotError.at(mark, f"'${{{name}}}' is not a var reference; var names use letters, "
                                 "digits and '_' (write $${ for a literal ${)")
    if name not in variables:
        hint = suggest(name, variables) or (
            "; define it under vars:" if not variables else "")
        raise ShotError.at(mark, f"undefined var '{name}'{hint}")
    return variables[name]


def _as_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def referenced_vars(node: Node) -> set[str]:
    """Names used as ${name} anywhere below ``node``."""
    found: set[str] = set()
    if node.is_map:
        for _, v in node.items():
            found |= referenced_vars(v)
    elif node.is_list:
        for v in node.value:
            found |= referenced_vars(v)
    elif isinstance(node.value, str):
        text = node.value.replace("$${", "")
        found |= {m.strip() for m in re.findall(r"\$\{([^}]*)\}", text)}
    return found


# ---------------------------------------------------------------- expansion


def expand_shot(path: Path, sets: dict[str, Node]) -> list[Expansion]:
    """A shot file as the list of shots it stands for (one, or one per matrix combination)."""
    doc, files = load_with_extends(path)
    return _expand(doc, path, display_path(path), sets, {}, files)


def _expand(doc: Node, source: Path, label: str, sets: dict[str, Node],
            row: dict[str, Node], files: tuple[Path, ...]) -> list[Expansion]:
    declared = _declared_vars(doc)
    matrix = _matrix(doc)
    known = set(declared) | set(matrix) | set(row)
    used = referenced_vars(doc)
    lengths = {}
    for name, value in sets.items():
        if name in LENGTH_KEYS and name not in known and name not in used:
            lengths[name] = value
        elif name not in known and name not in used:
            raise ShotError.at(Mark(display_path(source)),
                               f"--set {name}=...: this shot has no var '{name}'"
                               f"{suggest(name, known | used | set(LENGTH_KEYS))}")
    if lengths:
        doc = _with_length(doc, source, lengths)
        sets = {k: v for k, v in sets.items() if k not in lengths}
    # --set wins over a CSV row, which wins over matrix values, which win over vars.
    axes = {k: v for k, v in matrix.items() if k not in sets and k not in row}
    combos = list(itertools.product(*axes.values())) if axes else [()]
    if len(combos) > MAX_EXPANSIONS:
        raise ShotError.at(doc.key_mark("matrix"), f"the matrix expands to {len(combos)} shots; "
                                                   f"the limit is {MAX_EXPANSIONS}")
    _check_sections_checked(len(combos), doc, doc.key_mark("matrix"), "the matrix")
    body = Node({k: v for k, v in doc.items() if k not in ("vars", "matrix")}, doc.mark,
                doc.base, {k: m for k, m in doc.key_marks.items() if k not in ("vars", "matrix")})
    expansions = []
    for combo in combos:
        chosen = dict(zip(axes, combo))
        variables = {**declared, **{k: v[0] for k, v in matrix.items()}, **chosen, **row, **sets}
        shown = ", ".join(f"{k}={_as_text(v.value)}" for k, v in chosen.items())
        expansions.append(Expansion(
            doc=substitute(body, variables),
            source=source,
            label=f"{label} [{shown}]" if shown else label,
            vars={k: v.value for k, v in variables.items()},
            files=files,
        ))
    return expansions


def _with_length(doc: Node, source: Path, lengths: dict[str, Node]) -> Node:
    """The shot with its top-level length replaced by ``--set frames=N`` (or duration=...):
    the length of a one-section shot, or of every section that gives none."""
    if len(lengths) > 1:
        raise ShotError.at(Mark(COMMAND_LINE), "--set frames and --set duration: give one")
    sections = doc.get("sections")
    if sections is not None and sections.is_list and sections.value and all(
            s.is_map and (s.get("frames") is not None or s.get("duration") is not None)
            for s in sections.value):
        name = next(iter(lengths))
        raise ShotError.at(Mark(display_path(source)),
                           f"--set {name}=...: every section of this shot gives its own length; "
                           "change them there, or make them vars")
    value = {k: v for k, v in doc.items() if k not in LENGTH_KEYS}
    marks = {k: m for k, m in doc.key_marks.items() if k not in LENGTH_KEYS}
    for name, node in lengths.items():
        value[name] = node
        marks[name] = node.mark
    return Node(value, doc.mark, doc.base, marks)


def _check_sections_checked(shots: int, doc: Node, mark: Mark, what: str) -> None:
    """A few lines of matrix or CSV must not multiply into more sections than anyone checks:
    the bound is on shots times sections."""
    total = shots * section_count(doc)
    if total > MAX_SECTIONS_CHECKED:
        raise ShotError.at(mark, f"{what} expands to {shots} shots of {section_count(doc)} "
                                 f"sections: {total} sections to check (at most "
                                 f"{MAX_SECTIONS_CHECKED})")


def _declared_vars(doc: Node) -> dict[str, Node]:
    node = doc.get("vars")
    if node is None:
        return {}
    if not node.is_map:
        raise ShotError.at(node.mark, "vars must be a mapping of name: value")
    for name, value in node.items():
        _check_var(name, value, node.key_mark(name))
    return dict(node.value)


def _matrix(doc: Node) -> dict[str, list[Node]]:
    node = doc.get("matrix")
    if node is None:
        return {}
    if not node.is_map or not node.value:
        raise ShotError.at(node.mark, "matrix must be a mapping of name: [value, ...]")
    axes: dict[str, list[Node]] = {}
    for name, values in node.items():
        if not values.is_list or not values.value:
            raise ShotError.at(values.mark, f"matrix.{name} must be a non-empty list of values")
        for value in values.value:
            _check_var(name, value, node.key_mark(name))
        axes[name] = list(values.value)
    return axes


def _check_var(name: str, value: Node, mark: Mark) -> None:
    if not _VAR_NAME.match(name):
        raise ShotError.at(mark, f"'{name}' is not a var name: use letters, digits and '_', "
                                 "not starting with a digit")
    if value.is_map or value.is_list or value.value is None:
        raise ShotError.at(value.mark, f"var '{name}' must be text, a number or true/false")


def split_set(item: str) -> tuple[str, str]:
    """'name=value' from --set, or ValueError saying what is wrong."""
    name, sep, text = item.partition("=")
    name = name.strip()
    if not sep or not _VAR_NAME.match(name):
        raise ValueError(f"'{item}' is not NAME=VALUE (a var name, '=', then the value)")
    return name, text


def parse_sets(items: list[str]) -> dict[str, Node]:
    """--set name=value pairs as var nodes; relative paths in them resolve from the cwd."""
    cwd = os.getcwd()
    sets = {}
    for item in items:
        try:
            name, text = split_set(item)
        except ValueError as exc:
            raise ShotError.at(Mark("--set"), str(exc)) from None
        sets[name] = Node(parse_scalar(text), Mark(COMMAND_LINE), cwd)
    return sets


# ---------------------------------------------------------------- CSV jobs


def expand_csv(csv_path: Path, template: Path, sets: dict[str, Node]) -> list[Expansion]:
    """One shot per CSV row: the template with the row's columns as vars."""
    shown = display_path(csv_path)
    text = read_text(csv_path, shown, "a CSV file")
    header_line, header_cols, rows = _csv_rows(text, shown)
    doc, files = load_with_extends(template)
    base = str(resolve(csv_path).parent)
    known = set(_declared_vars(doc)) | set(_matrix(doc)) | referenced_vars(doc)
    expansions: list[Expansion] = []
    for line, cells in rows:
        row = {name: Node(parse_scalar(value), Mark(shown, line, col), base)
               for name, (value, col) in cells.items()}
        label = f"{shown}:{line}"
        for expansion in _expand(doc, csv_path, label, sets, row, files):
            expansion.row = Mark(shown, line, 1)
            expansions.append(expansion)
        if len(expansions) > MAX_EXPANSIONS:
            raise ShotError.at(Mark(shown, line, 1), f"the CSV expands to more than "
                                                     f"{MAX_EXPANSIONS} shots; the limit is "
                                                     f"{MAX_EXPANSIONS}")
        _check_sections_checked(len(expansions), doc, Mark(shown, line, 1), "the CSV")
    if expansions:
        for name, col in header_cols.items():
            if name not in known:
                expansions[0].warnings.append(Diagnostic(
                    Mark(shown, header_line, col), f"column '{name}' is not used by the template"
                    f"{suggest(name, known)}", "warning"))
    return expansions


def _csv_rows(text: str, shown: str
              ) -> tuple[int, dict[str, int], list[tuple[int, dict[str, tuple[str, int]]]]]:
    """(header line, column of each name, rows of name -> (value, column))."""
    lines = text.splitlines()
    numbered = [(n, line) for n, line in enumerate(lines, 1) if line.strip()]
    if not numbered:
        raise ShotError.at(Mark(shown, 1, 1), "the CSV is empty; its first row names the vars")
    try:
        dialect = csv.Sniffer().sniff(numbered[0][1], delimiters=",;\t")
        delimiter = dialect.delimiter
    except csv.Error:
        delimiter = ","
    header_line, header_text = numbered[0]
    header, header_cols = _split_csv_line(header_text, delimiter, shown, header_line)
    if len(header) > MAX_VARS:
        raise ShotError.at(Mark(shown, header_line, 1), f"too many columns: {len(header)} (at "
                                                        f"most {MAX_VARS})")
    for name, col in zip(header, header_cols):
        if not _VAR_NAME.match(name.strip()):
            raise ShotError.at(Mark(shown, header_line, col),
                               f"column '{name}' is not a var name: use letters, digits and '_'")
    names = [h.strip() for h in header]
    for i, name in enumerate(names):
        if name in names[:i]:
            raise ShotError.at(Mark(shown, header_line, header_cols[i]),
                               f"duplicate column '{name}'")
    rows = []
    for line_no, line in numbered[1:]:
        values, cols = _split_csv_line(line, delimiter, shown, line_no)
        if len(values) != len(names):
            raise ShotError.at(Mark(shown, line_no, 1),
                               f"row has {len(values)} values for {len(names)} columns")
        rows.append((line_no, {n: (v, c) for n, v, c in zip(names, values, cols)}))
    if not rows:
        raise ShotError.at(Mark(shown, header_line, 1), "the CSV has a header but no jobs")
    return header_line, dict(zip(names, header_cols)), rows


def _split_csv_line(line: str, delimiter: str, shown: str, line_no: int
                    ) -> tuple[list[str], list[int]]:
    """Cells of one CSV line with the 1-based column where each starts."""
    try:
        values = next(csv.reader(io.StringIO(line), delimiter=delimiter, strict=True))
    except (csv.Error, StopIteration) as exc:
        raise ShotError.at(Mark(shown, line_no, 1), f"malformed CSV row: {exc}") from None
    cols, quoted = [1], False
    for i, ch in enumerate(line):
        if ch == '"':
            quoted = not quoted
        elif ch == delimiter and not quoted:
            cols.append(i + 2)
    return values, cols[: len(values)]
