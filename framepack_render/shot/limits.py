"""How many of each thing one shot may hold.

Far above any real shot (an hour-long shot changing prompt every few seconds has a thousand
sections) yet low enough that checking and planning the largest allowed shot stays quick. A
larger count is refused at once, naming the count and the limit, before any work per item.
The YAML loader has its own bounds on the file as text (size, values, nesting, aliases).
"""

from __future__ import annotations

from .errors import Report
from .yaml_loader import Node

MAX_SECTIONS = 1000
MAX_EDITS = 100
MAX_CONTROLS = 16  # per edit
MAX_LORAS = 16
MAX_OUTPUTS = 16
MAX_VARS = 1000  # vars, matrix axes or CSV columns: every shot carries them all
MAX_SECTIONS_CHECKED = 20_000  # sections over every shot a matrix or CSV expands to


def check_counts(doc: Node) -> None:
    """Raise ShotError naming every list of ``doc`` (a merged shot) that is too long."""
    report = Report()
    _check(report, doc, "sections", MAX_SECTIONS)
    _check(report, doc, "output", MAX_OUTPUTS, "outputs")
    _check(report, doc, "vars", MAX_VARS)
    _check(report, doc, "matrix", MAX_VARS, "matrix axes")
    edits = _check(report, doc, "edits", MAX_EDITS)
    for index, edit in enumerate(edits[:MAX_EDITS]):
        _check(report, edit, "controls", MAX_CONTROLS, f"controls in edits[{index}]")
    model = doc.get("model")
    if model is not None:
        _check(report, model, "lora", MAX_LORAS, "LoRAs")
    report.raise_if_errors()


def section_count(doc: Node) -> int:
    """The sections one shot of ``doc`` checks (the one-section shorthand counts one)."""
    sections = doc.get("sections")
    return len(sections.value) if sections is not None and sections.is_list else 1


def _check(report: Report, parent: Node, key: str, limit: int, what: str = "") -> list[Node]:
    """The items of ``parent[key]`` when it is a list (entries of a mapping are counted too);
    an error when there are too many."""
    node = parent.get(key)
    if node is None or not (node.is_list or node.is_map):
        return []  # absent, or the schema's error to report
    if len(node.value) > limit:
        report.error(parent.key_mark(key), f"too many {what or key}: {len(node.value)} "
                                           f"(at most {limit})")
    return node.value if node.is_list else []

