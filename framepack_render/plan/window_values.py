"""Each window's values of the settings a shot writes as schedules.

A schedule is sampled at the first frame a window contributes to the written video (the
frame ``plan --json`` lists first in its ``frames``), in a video of the written length, with
``s`` the shot's seed. The planner hashes the values, not the schedule text, into each
window's key: editing a schedule re-renders exactly the windows whose values change, and a
constant schedule keys like the number it stands for.

``resolve_schedules`` runs while the shot is checked (no torch): it evaluates every schedule
once, reports values outside a setting's range, and fills the settings' placeholder numbers
(sections: their first window's values; edits: frame 0's; the end image's strength: its
window's; the experimental options: the first window's).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from ..shot.errors import Report, ShotError
from ..shot.model import Edit, Experimental, Sampling, Shot
from ..shot.schedules import Schedule
from ..shot.setting_schedules import RANGES, Schedules
from .keys import snap
from .timeline import Slot, layout_slots


@dataclass(frozen=True)
class WindowValues:
    """What one window samples with once its schedules are evaluated."""

    frame: int  # where its schedules are sampled
    sampling: Sampling
    experimental: Experimental
    values: dict[str, float]  # each scheduled setting's value, for plan --json


def has_schedules(shot: Shot) -> bool:
    return bool(shot.schedules) or any(s.sampling.schedules for s in shot.sections)


def window_values(shot: Shot, slots: list[Slot]) -> list[WindowValues] | None:
    """Each window's values, in time order; None when the shot has no schedules (its windows
    use their section's settings as they are). Raises ShotError for an expression that has no
    value at a window's frame."""
    if not has_schedules(shot):
        return None
    frames, total = schedule_frames(shot, len(slots))
    out = []
    for slot, frame in zip(slots, frames):
        values = _evaluate(slot.section.sampling.schedules + shot.schedules, frame, total,
                           shot)
        out.append(WindowValues(frame, apply_sampling(slot.section.sampling, values),
                                apply_experimental(shot.experimental, values), values))
    return out


def schedule_frames(shot: Shot, count: int) -> tuple[list[int], int]:
    """The frame each of ``count`` windows samples its schedules at, and the frames of the
    written video. Computed by the Plan's own arithmetic, so they agree with its frames."""
    from .graph import Plan  # graph imports this module

    probe = Plan(shot, [_Probe(index) for index in range(count)], [], [])  # type: ignore[list-item]
    total = max(probe.total_frames, 1)
    return [min(probe.frame_span(w)[0], total - 1) for w in probe.windows], total


@dataclass(frozen=True)
class _Probe:
    """A window as far as ``Plan.frame_span`` reads it."""

    index: int


def apply_sampling(settings: Sampling, values: dict[str, float]) -> Sampling:
    """A section's settings with the scheduled ones replaced by their values."""
    flow = settings.flow_shift
    flow = replace(flow, mu=values.get("flow_shift.mu", flow.mu),
                   sigma=values.get("flow_shift.sigma", flow.sigma))
    teacache = settings.teacache
    if "teacache" in values:  # a scheduled threshold of 0 turns TeaCache off there
        teacache = values["teacache"] if values["teacache"] > 0 else None
    return replace(settings, guidance=values.get("guidance", settings.guidance),
                   cfg=values.get("cfg", settings.cfg), teacache=teacache, flow_shift=flow)


def apply_experimental(exp: Experimental, values: dict[str, float]) -> Experimental:
    """The experimental options with the scheduled ones replaced by their values."""
    blur = exp.context_blur
    if blur is not None:
        blur = (values.get("experimental.context_blur.sigma", blur[0]),
                values.get("experimental.context_blur.alpha", blur[1]))
    return replace(
        exp, context_blur=blur,
        context_decay=values.get("experimental.context_decay", exp.context_decay),
        cfg_schedule_beta=values.get("experimental.cfg_schedule.beta", exp.cfg_schedule_beta),
        transition_mu_boost=values.get("experimental.transition_mu_boost",
                                       exp.transition_mu_boost))


def _evaluate(schedules: Schedules, frame: int, total: int, shot: Shot) -> dict[str, float]:
    """Seconds keys count at the shot's fps (an input video may have set it); values are
    snapped as keys snap them, so last-bit differences between math libraries cannot split
    a key or the value a window samples with."""
    return {name: snap(replace(schedule, fps=shot.fps).value(frame, total, shot.seed))
            for name, schedule in schedules}


# ---------------------------------------------------------------- while checking


def resolve_schedules(shot: Shot, report: Report) -> Shot | None:
    """The shot with its placeholders filled, or None after reporting a schedule that has no
    valid value at some window."""
    edits_scheduled = any(e.sampling.schedules for e in shot.edits)
    if not has_schedules(shot) and not edits_scheduled:
        return shot
    errors_before = report.made
    slots, _ = layout_slots(shot)
    _, total = schedule_frames(shot, len(slots))
    try:
        windows = window_values(shot, slots) or []
        edits = [(edit, _edit_values(edit, total, shot)) for edit in shot.edits]
    except ShotError as error:
        for diagnostic in error.diagnostics:
            report.error(diagnostic.mark, diagnostic.message)
        return None
    _check_ranges(shot, slots, windows, edits, total, report)
    _warn_ignored(shot, total, report)
    if report.made > errors_before:
        return None
    return _filled(shot, slots, windows, [_edit_filled(e, values) for e, values in edits])


def _edit_values(edit: Edit, total: int, shot: Shot) -> dict[str, float]:
    """An edit takes the shot's schedules at frame 0 (it has no TeaCache)."""
    schedules = tuple((n, s) for n, s in edit.sampling.schedules if n != "teacache")
    return _evaluate(schedules, 0, total, shot)


def _edit_filled(edit: Edit, values: dict[str, float]) -> Edit:
    sampling = apply_sampling(edit.sampling, values)
    return replace(edit, sampling=replace(sampling, teacache=None))


def _filled(shot: Shot, slots: list[Slot], windows: list[WindowValues],
            edits: list[Edit]) -> Shot:
    first = {}
    for slot, values in zip(slots, windows):
        first.setdefault(slot.section.index, values)
    sections = tuple(replace(s, sampling=first[s.index].sampling)
                     if s.index in first and s.sampling.schedules else s
                     for s in shot.sections)
    strength = shot.end_image_strength
    if math.isnan(strength):
        strength = windows[-1].values["end_image_strength"]
    experimental = windows[0].experimental if shot.schedules else shot.experimental
    return replace(shot, sections=sections, edits=tuple(edits), end_image_strength=strength,
                   experimental=experimental)


def _check_ranges(shot: Shot, slots: list[Slot], windows: list[WindowValues],
                  edits: list[tuple[Edit, dict[str, float]]], total: int,
                  report: Report) -> None:
    """Each scheduled setting's values must stay in its range (reported once a schedule)."""
    reported: set[tuple[str, str]] = set()
    for number, (slot, window) in enumerate(zip(slots, windows), start=1):
        schedules = dict(slot.section.sampling.schedules + shot.schedules)
        for name, value in window.values.items():
            if name == "end_image_strength" and number != len(windows):
                continue  # only the last window uses it
            problem = _out_of_range(name, value)
            if problem is None or (name, schedules[name].text) in reported:
                continue
            reported.add((name, schedules[name].text))
            _report(schedules[name], window.frame, f"(window {number})", problem, value,
                    total, shot.seed, report)
    for edit, values in edits:
        schedules = dict(edit.sampling.schedules)
        for name, value in values.items():
            problem = _out_of_range(name, value)
            if problem is not None and (name, schedules[name].text) not in reported:
                reported.add((name, schedules[name].text))
                _report(schedules[name], 0, f"(edit {edit.name})", problem, value, total,
                        shot.seed, report)


def _report(schedule: Schedule, frame: int, where: str, problem: str, value: float,
            total: int, seed: int, report: Report) -> None:
    """An error at the keyframe in force at ``frame``."""
    name = schedule.what or ""
    offset = schedule.offset_at(frame, total, seed,
                                bad=lambda v: _out_of_range(name, v) is not None)
    error = schedule.error(offset, f"{value:.6g} at frame {frame} {where}; {problem}")
    report.error(error.diagnostics[0].mark, error.diagnostics[0].message)


def _out_of_range(name: str, value: float) -> str | None:
    low, high, low_included = RANGES[name]
    if value > high or value < low or (value == low and not low_included):
        bound = f"from {low:g} to" if low_included else f"above {low:g} and at most"
        return f"{name} must be {bound} {high:g}"
    return None


def _warn_ignored(shot: Shot, total: int, report: Report) -> None:
    """Keyframes outside the video change nothing (Deforum ignores them too): say so."""
    seen: set[int] = set()
    every: list[tuple[str, Schedule]] = [*shot.schedules]
    every += [pair for s in shot.sections for pair in s.sampling.schedules]
    for _, schedule in every:
        if id(schedule) in seen:
            continue
        seen.add(id(schedule))
        for frame, keyframe in schedule.ignored(total, shot.seed):
            warning = schedule.error(keyframe.key_offset, f"the keyframe at frame {frame} is "
                                                          f"outside the video (frames 0 to "
                                                          f"{total - 1}) and changes nothing")
            report.warn(warning.diagnostics[0].mark, warning.diagnostics[0].message)


def scheduled_json(values: WindowValues | None) -> dict[str, Any] | None:
    """A window's schedules for plan --json: the frame they were sampled at, and each value."""
    if values is None or not values.values:
        return None
    return {"frame": values.frame, "values": dict(values.values)}
