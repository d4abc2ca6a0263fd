"""From sections in seconds to whole generation windows, with every rounding reported.

A window of W latent frames adds 4W video frames (36 at W = 9); the video also holds the start
frame, so N windows make 4WN + 1 frames. Section lengths round half up to whole windows, at
least one; blends round the same way, at least one window, at most the section.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..shot.errors import Diagnostic
from ..shot.model import Section, Shot


@dataclass(frozen=True)
class Slot:
    """One window's place in time and the text it is conditioned on."""

    index: int  # in time order
    section: Section
    within: int  # index inside its section
    prompt: str
    blend_from: str | None
    blend_alpha: float  # weight of ``prompt``; 1.0 when not blending
    keyframe: bool  # the first window of a section that has its own image


def frames_per_window(window: int) -> int:
    return 4 * window


def round_windows(frames: float, window: int) -> int:
    return max(1, math.floor(frames / frames_per_window(window) + 0.5))


def layout_slots(shot: Shot) -> tuple[list[Slot], list[Diagnostic]]:
    """Every window in time order, and a note for each rounding."""
    per_window = frames_per_window(shot.window)
    slots: list[Slot] = []
    notes: list[Diagnostic] = []
    previous_prompt: str | None = None
    for section in shot.sections:
        count = round_windows(section.frames, shot.window)
        got = count * per_window
        if abs(got - section.frames) > 1e-6:
            notes.append(Diagnostic(section.duration_mark,
                                    f"{section.label}: {section.duration_text} "
                                    f"({_frames(section.frames)} frames) rounds to {count} "
                                    f"window{'s' if count > 1 else ''} = {got} frames "
                                    f"({got / shot.fps:.2f} s)", "note"))
        blend = 0
        if section.blend_frames > 0 and previous_prompt is not None \
                and previous_prompt != section.prompt:
            wanted = section.blend_frames / per_window
            blend = min(count, max(1, math.floor(wanted + 0.5)))
            if abs(blend * per_window - section.blend_frames) > 1e-6:
                assert section.blend_mark is not None
                notes.append(Diagnostic(section.blend_mark,
                                        f"{section.label}: blend of "
                                        f"{_frames(section.blend_frames)} frames rounds to "
                                        f"{blend} window{'s' if blend > 1 else ''} = "
                                        f"{blend * per_window} frames", "note"))
        for within in range(count):
            blending = within < blend
            slots.append(Slot(
                index=len(slots), section=section, within=within, prompt=section.prompt,
                blend_from=previous_prompt if blending else None,
                blend_alpha=(within + 1) / (blend + 1) if blending else 1.0,
                keyframe=within == 0 and section.image is not None,
            ))
        previous_prompt = section.prompt
    return slots, notes


def _frames(value: float) -> str:
    return f"{value:g}" if value == int(value) else f"{value:.1f}"
