"""From sections in seconds to whole generation windows, with every rounding reported.

A window of W latent frames adds 4W video frames (36 at W = 9); the video also holds the start
frame, so N windows make 4WN + 1 frames. Section lengths round half up to whole windows, at
least one; blends round the same way, at least one window, at most the section.

Exact lengths (every section given in frames, or ``exact: true``): the shot renders the fewest
windows that reach its requested end, each section ending at the window boundary nearest its
own, and the video is trimmed to the frames asked for.
The trimmed end is the one the sampling order reaches last, where the surplus is: the start
for inverted sampling, the end for forward and endpoints-first. An extension of a video counts
only its new frames and drops the surplus at the end away from the video.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..shot.errors import Diagnostic
from ..shot.model import Section, Shot
from .extension import lead_frames


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


@dataclass(frozen=True)
class Trim:
    """Video frames dropped from the rendered windows' start and end (exact lengths)."""

    start: int = 0
    end: int = 0

    def __bool__(self) -> bool:
        return bool(self.start or self.end)


def exact_counts(shot: Shot) -> list[int] | None:
    """Windows per section for an exact shot: the last section ends in the first window that
    reaches the shot's end, the others at the window boundary nearest theirs (at least one
    window each); None when lengths round."""
    if not shot.sections or not all(s.exact for s in shot.sections):
        return None
    per_window = frames_per_window(shot.window)
    sections = len(shot.sections)
    # Frames counted from the first decoded one: the start frame is new, unless it is the
    # last frame of the video a forward extension continues.
    start = 1 - lead_frames(shot)
    total = max(sections, math.ceil((round(sum(s.frames for s in shot.sections)) - start)
                                    / per_window - 1e-9))
    counts, asked, windows = [], 0.0, 0
    for number, section in enumerate(shot.sections):
        asked += section.frames
        later = sections - number - 1  # each needs a window of its own
        nearest = math.floor((round(asked) - start) / per_window + 0.5)
        reach = total if not later else min(max(windows + 1, nearest), total - later)
        counts.append(reach - windows)
        windows = reach
    return counts


def trim_of(shot: Shot, windows: int) -> tuple[Trim, Diagnostic | None]:
    """How an exact shot's rendered frames are trimmed to the frames asked for, and the note
    that says so. Sections shorter than a window cannot be exact: then nothing is trimmed.
    An extension's lengths count its new frames, and its surplus is dropped at the end away
    from the video."""
    lead = lead_frames(shot)
    if not shot.sections or not all(s.exact for s in shot.sections):
        return Trim(start=lead), None
    per_window = frames_per_window(shot.window)
    asked = max(1, round(sum(s.frames for s in shot.sections)))
    rendered = per_window * windows + 1 - lead
    surplus = rendered - asked
    mark = shot.sections[0].duration_mark
    if surplus <= 0:
        return Trim(start=lead), None
    if surplus >= per_window:
        return Trim(start=lead), Diagnostic(mark, f"{asked} frames cannot be exact: every "
                                                  f"section needs at least one window, so "
                                                  f"{windows} windows make {rendered} frames",
                                            "note")
    video = shot.input_video
    if video is not None and video.extend == "forward":
        trim, which = Trim(start=lead, end=surplus), (f"the last {surplus}",
                                                      "the end away from input_video")
    elif video is not None:
        trim, which = Trim(start=surplus), (f"the first {surplus}",
                                            "the start away from input_video")
    elif shot.sampling == "inverted":
        trim, which = Trim(start=surplus), (f"the first {surplus}", "inverted sampling "
                                                                     "reaches the start last")
    else:
        trim, which = Trim(end=surplus), (f"the last {surplus}", f"{shot.sampling} sampling "
                                                                 "reaches the end last")
    new = "new " if video is not None else ""
    return trim, Diagnostic(mark, f"exact: {windows} window{'s' if windows > 1 else ''} = "
                                  f"{rendered} {new}frames, trimmed to {asked}: {which[0]} "
                                  f"dropped ({which[1]})", "note")


def layout_slots(shot: Shot) -> tuple[list[Slot], list[Diagnostic]]:
    """Every window in time order, and a note for each rounding."""
    per_window = frames_per_window(shot.window)
    slots: list[Slot] = []
    notes: list[Diagnostic] = []
    previous_prompt: str | None = None
    exact = exact_counts(shot)
    for number, section in enumerate(shot.sections):
        count = exact[number] if exact else round_windows(section.frames, shot.window)
        got = count * per_window
        if not exact and abs(got - section.frames) > 1e-6:
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
    trim, note = trim_of(shot, len(slots))
    if note is not None:
        notes.append(note)
    return slots, notes


def _frames(value: float) -> str:
    return f"{value:g}" if value == int(value) else f"{value:.1f}"
