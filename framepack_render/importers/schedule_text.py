"""Schedules as an import writes them: a constant as its number, a curve as keyframes.

The text is always a Deforum schedule that our parser reads back to the same values frame for
frame: plain numbers are written as decimals (an exponent would make Deforum's number test
call them expressions, and change how they interpolate).
"""

from __future__ import annotations

from decimal import Decimal

from ..shot.schedules import Schedule

TOLERANCE = 1e-9  # relative: how far a rebuilt curve may stray from the frame's value


def decimal_text(value: float) -> str:
    """The shortest text that reads back as ``value``, without an exponent."""
    text = format(Decimal(repr(float(value))), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def written(schedule: Schedule, frames: int, seed: int) -> float | str:
    """What a shot writes for a schedule read from a source: its number when every frame has
    the same value, else its text as the source wrote it."""
    if schedule.is_constant:
        return schedule.value(0, frames, seed)
    return " ".join(schedule.text.split())


def complement(schedule: Schedule, frames: int, seed: int) -> float | str:
    """The schedule of 1 - value: Deforum's strength (what is kept of the previous frame) as
    img2img's (what is redrawn). A plain number stays a plain number and an expression
    becomes 1-(expression), so each frame's value is exactly 1 minus the original's."""
    if schedule.is_constant:
        return 1.0 - schedule.value(0, frames, seed)
    parts = []
    for keyframe in schedule.keyframes:
        key = f'"{keyframe.key_text}"' if keyframe.frame_expr is not None else keyframe.key_text
        if keyframe.expr is None:
            value = decimal_text(1.0 - float(keyframe.number))  # type: ignore[arg-type]
        else:
            value = f"1-({keyframe.value_text})"
        parts.append(f"{key}:({value})")
    return ", ".join(parts)


def curve(values: list[float]) -> float | str:
    """A per-frame curve as a schedule: its number when constant, else keyframes where the
    curve bends, so that linear interpolation between them gives back every frame's value."""
    if all(v == values[0] for v in values):
        return float(values[0])
    keys = breakpoints(values)
    last = keys[-2]
    if all(abs(v - values[last]) <= TOLERANCE * max(1.0, abs(v)) for v in values[last:]):
        keys.pop()  # a flat end: the value holds after the last keyframe anyway
    return ", ".join(f"{frame}:({decimal_text(values[frame])})" for frame in keys)


def breakpoints(values: list[float]) -> list[int]:
    """The fewest frames, greedily, whose straight lines pass within TOLERANCE of every value
    between them: from each keyframe, the segment grows while one slope still fits all the
    values it spans (a narrowing cone of slopes, so the whole walk is linear in frames)."""
    keys = [0]
    anchor, count = 0, len(values)
    while anchor < count - 1:
        low, high = -float("inf"), float("inf")
        end = anchor + 1
        for frame in range(anchor + 1, count):
            span = frame - anchor
            slope = (values[frame] - values[anchor]) / span
            if not low <= slope <= high:
                break
            end = frame
            slack = TOLERANCE * max(1.0, abs(values[frame]))
            low = max(low, (values[frame] - slack - values[anchor]) / span)
            high = min(high, (values[frame] + slack - values[anchor]) / span)
        keys.append(end)
        anchor = end
    return keys
