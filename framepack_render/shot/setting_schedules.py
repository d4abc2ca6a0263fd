"""Which FramePack settings a schedule may set, and reading them from a shot's nodes.

A setting that acts per window (guidance, cfg, TeaCache, the flow shift's mu and sigma, the
end image's strength, the experimental options) may be a Deforum schedule. Here the strings
are parsed where they are written; the planner evaluates them at each window's first frame
(``plan.window_values``). Until then the setting's number field holds NaN.
"""

from __future__ import annotations

import math
from typing import Any

from .errors import Report, ShotError
from .schedules import Schedule, is_schedule, parse_schedule
from .yaml_loader import Node

SAMPLING = ("guidance", "cfg", "teacache")  # per section (and inherited by edits)
FLOW_SHIFT = ("mu", "sigma")  # inside flow_shift, merged like it
SHOT: dict[str, tuple[str, ...]] = {  # the shot's own, by where they are written
    "end_image_strength": ("end_image_strength",),
    "experimental.context_blur.sigma": ("experimental", "context_blur", "sigma"),
    "experimental.context_blur.alpha": ("experimental", "context_blur", "alpha"),
    "experimental.context_decay": ("experimental", "context_decay"),
    "experimental.cfg_schedule.beta": ("experimental", "cfg_schedule", "beta"),
    "experimental.transition_mu_boost": ("experimental", "transition_mu_boost"),
}
# Each setting's range as the schema gives it for numbers: (low, high, low included). A
# schedule may reach 0 where 0 means off: TeaCache, the context blur.
RANGES: dict[str, tuple[float, float, bool]] = {
    "guidance": (0, 100, True), "cfg": (1, 100, True), "teacache": (0, 1, True),
    "flow_shift.mu": (0, 3, True), "flow_shift.sigma": (0, 4, False),
    "end_image_strength": (0, 1, True),
    "experimental.context_blur.sigma": (0, 10, True),
    "experimental.context_blur.alpha": (0, 10, True),
    "experimental.context_decay": (0, 10, True),
    "experimental.cfg_schedule.beta": (0, 1, True),
    "experimental.transition_mu_boost": (0, 2, True),
}

Schedules = tuple[tuple[str, Schedule], ...]


def scheduled_number(value: Any) -> float:
    """A setting's number; NaN stands in for a schedule until each window has its value."""
    return math.nan if is_schedule(value) else float(value)


def read_schedule(node: Node, what: str, fps: float, report: Report) -> Schedule | None:
    """The schedule a node writes, or None (after reporting why) when it is malformed."""
    try:
        return parse_schedule(node.value, node.mark, fps=fps, what=what)
    except ShotError as error:
        for diagnostic in error.diagnostics:
            report.error(diagnostic.mark, diagnostic.message)
        return None


def sampling_schedules(doc: Node, nodes: tuple[Node | None, ...], fps: float, report: Report,
                       *, one_frame: bool = False) -> Schedules:
    """The schedules among a section's (or an edit's) sampling settings, wherever each is
    written: its own node, else the shot. An edit renders one frame, so its own settings must
    be numbers; the shot's schedules it inherits are taken at frame 0."""
    found: list[tuple[str, Node]] = []
    for key in SAMPLING:
        source = _first_setting(key, (*nodes, doc))
        if source is not None and is_schedule(source.value):
            found.append((key, source))
    found += [(f"flow_shift.{key}", node) for key, node in _flow_shift_sources(doc, nodes)
              if is_schedule(node.value)]
    schedules: list[tuple[str, Schedule]] = []
    for name, node in found:
        if one_frame and any(node is _child(n, name) for n in nodes if n is not None):
            report.error(node.mark, f"an edit renders one frame: {name} must be a number, "
                                    "not a schedule")
            continue
        schedule = read_schedule(node, name, fps, report)
        if schedule is not None:
            schedules.append((name, schedule))
    return tuple(schedules)


def shot_schedules(doc: Node, fps: float, report: Report) -> Schedules:
    """The schedules among the shot's own per-window settings. The shot's sampling schedules
    are read too, so that a malformed one is reported even where every section sets its own."""
    for key, node in [(k, doc.get(k)) for k in SAMPLING] + [
            (f"flow_shift.{k}", n) for k, n in _flow_shift_sources(doc, ())]:
        if node is not None and is_schedule(node.value):
            read_schedule(node, key, fps, report)
    schedules: list[tuple[str, Schedule]] = []
    for name, path in SHOT.items():
        node: Node | None = doc
        for step in path:
            node = node.get(step) if node is not None else None
        if node is not None and is_schedule(node.value):
            schedule = read_schedule(node, name, fps, report)
            if schedule is not None:
                schedules.append((name, schedule))
    return tuple(schedules)


def _first_setting(key: str, nodes: tuple[Node | None, ...]) -> Node | None:
    for node in nodes:
        if node is not None and node.get(key) is not None:
            return node.get(key)
    return None


def _child(node: Node, name: str) -> Node | None:
    """The node a section or edit writes for ``name`` ("guidance", "flow_shift.mu")."""
    first, _, rest = name.partition(".")
    child = node.get(first)
    return child.get(rest) if rest and child is not None else child


def _flow_shift_sources(doc: Node, nodes: tuple[Node | None, ...]) -> list[tuple[str, Node]]:
    """Where mu and sigma come from once the flow_shift values merge (the shot's first, a
    section's over it; a preset name or a number starts afresh), as the checker merges them."""
    sources: dict[str, Node] = {}
    for node in (doc, *reversed(nodes)):
        value = node.get("flow_shift") if node is not None else None
        if value is None:
            continue
        if not value.is_map:
            sources = {}
            continue
        for key in FLOW_SHIFT:
            if value.get(key) is not None:
                sources[key] = value.get(key)
    return list(sources.items())
