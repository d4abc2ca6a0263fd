"""Parseq manifests: per-frame values as flux-deforum schedules.

A manifest holds Parseq's keyframes (``keyframes``, each field with its own interpolation
formula) and the values those give on every frame (``rendered_frames``). The import reads
``rendered_frames``, because that is all Deforum reads, so the shot animates as Deforum would
have; Parseq's formulas (beziers, oscillators, its own expression language) have no Deforum
schedule that equals them. Each field becomes a schedule keyframed where its curve bends,
which gives back every rendered value (to 1e-9). Motion fields are read as Deforum reads them
by default (``parseq_use_deltas``): their per-frame ``_delta``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..shot.errors import Mark, ShotError
from .schedule_text import curve

MOTION = ("zoom", "angle", "translation_x", "translation_y")
MOTION_3D = ("translation_z", "rotation_3d_x", "rotation_3d_y", "rotation_3d_z")
STILL_3D = {"translation_z": 0.0, "rotation_3d_x": 0.0, "rotation_3d_y": 0.0,
            "rotation_3d_z": 0.0}


@dataclass
class Rendered:
    """A manifest's rendered frames, checked: one mapping per frame, frames 0 to N - 1."""

    frames: list[dict[str, Any]]
    mark: Mark  # where rendered_frames is written, for messages
    fps: float | None  # options.output_fps

    def has(self, field: str) -> bool:
        """Parseq's contract: a field it manages is in the first frame."""
        return field in self.frames[0]

    def series(self, field: str, count: int) -> list[float]:
        """The field on frames 0 to count - 1; the last value holds past the manifest's end,
        as Deforum holds it."""
        values = []
        for frame in range(count):
            value = self.frames[min(frame, len(self.frames) - 1)].get(field)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ShotError.at(self.mark, f"rendered_frames[{frame}].{field} must be a "
                                              f"number, not {value!r}")
            values.append(float(value))
        return values

    def motion(self, field: str, count: int, deltas: bool) -> float | str | None:
        """A motion field as Deforum uses it (its _delta unless deltas are off), or None."""
        name = f"{field}_delta" if deltas and self.has(f"{field}_delta") else field
        return curve(self.series(name, count)) if self.has(name) else None

    def prompts(self, count: int) -> dict[int, str] | None:
        """deforum_prompt as prompt keyframes: a keyframe wherever the text changes."""
        if not self.has("deforum_prompt"):
            return None
        found: dict[int, str] = {}
        previous = None
        for frame in range(count):
            text = self.frames[min(frame, len(self.frames) - 1)].get("deforum_prompt")
            if not isinstance(text, str):
                raise ShotError.at(self.mark, f"rendered_frames[{frame}].deforum_prompt must "
                                              f"be text, not {text!r}")
            if text != previous:
                found[frame] = text
                previous = text
        return found

    def seeds(self, count: int) -> tuple[int, str, bool] | None:
        """(seed, noise_mode, exact): a constant seed is fixed noise, seed + frame is
        incremental; any other sequence is not a flux-deforum noise mode (exact False)."""
        if not self.has("seed"):
            return None
        seeds = [int(v) for v in self.series("seed", count)]
        if all(s == seeds[0] for s in seeds):
            return seeds[0], "fixed", True
        exact = all(s == seeds[0] + frame for frame, s in enumerate(seeds))
        return seeds[0], "incremental", exact

    def moves_in_3d(self, count: int) -> list[str]:
        """The 3D fields the manifest moves (they do not carry over)."""
        return [f for f in MOTION_3D if self.has(f)
                and any(v != STILL_3D[f] for v in self.series(f, count))]


def rendered(data: dict[str, Any], mark: Mark) -> Rendered:
    """The manifest's rendered frames in frame order; ShotError when they are not whole."""
    frames = data.get("rendered_frames")
    if not isinstance(frames, list) or not frames:
        raise ShotError.at(mark, "rendered_frames must be a non-empty list of frames")
    by_frame: dict[int, dict[str, Any]] = {}
    for index, frame in enumerate(frames):
        number = frame.get("frame") if isinstance(frame, dict) else None
        if isinstance(number, bool) or not isinstance(number, (int, float)) or \
                number != int(number) or number < 0:
            raise ShotError.at(mark, f"rendered_frames[{index}] needs a whole 'frame' number")
        by_frame[int(number)] = frame  # Deforum: a frame given twice, the later wins
    missing = next((f for f in range(max(by_frame) + 1) if f not in by_frame), None)
    if missing is not None:
        raise ShotError.at(mark, f"rendered_frames has no frame {missing} (Parseq renders "
                                 "every frame from 0)")
    options = data.get("options")
    fps = options.get("output_fps") if isinstance(options, dict) else None
    fps = float(fps) if isinstance(fps, (int, float)) and not isinstance(fps, bool) \
        and 0 < fps <= 240 else None
    return Rendered([by_frame[f] for f in range(len(by_frame))], mark, fps)
