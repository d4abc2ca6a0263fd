"""A flux-deforum shot in the report. Its units are single frames, so where a FramePack shot is
shown window by window this one is shown at a few evenly spaced frames: the contact sheet, and
the scheduled settings' values at the same frames. Prompt changes are its prompt keyframes, as
the render's sidecar records them for the scorer."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

from ..engines.flux_deforum.plan import FluxPlan
from ..engines.flux_deforum.shot import PROFILE_DEFAULTS, SCHEDULED, FluxShot, PromptKey
from .plots import Mark

SHEET_FRAMES = 8  # thumbnails on a contact sheet, and columns of the schedule table


def sheet_frames(plan: FluxPlan, count: int = SHEET_FRAMES) -> list[int]:
    """``count`` frames evenly spaced from the first to the last (every frame of a shorter
    shot)."""
    total = plan.total_frames
    if total <= count:
        return list(range(total))
    return sorted({round(i * (total - 1) / (count - 1)) for i in range(count)})


def prompt_keyframes(plan: FluxPlan) -> list[PromptKey]:
    """The keyframes after frame 0 and inside the video that change the prompt: the changes
    the scorer measures (a keyframe repeating its prompt changes no frame's input)."""
    return [key for before, key in pairwise(plan.shot.prompts)
            if 0 < key.frame < plan.total_frames and key.prompt != before.prompt]


def prompt_changes(plan: FluxPlan) -> list[float]:
    """Seconds of each prompt change, for an output whose sidecar does not say."""
    return [key.frame / plan.shot.fps for key in prompt_keyframes(plan)]


def plot_marks(plan: FluxPlan) -> list[Mark]:
    """A line across the curves at each prompt change, named by its frame as the contact sheet
    and the prompt table name it."""
    return [Mark(key.frame / plan.shot.fps, f"frame {key.frame}")
            for key in prompt_keyframes(plan)]


def prompt_at_seconds(plan: FluxPlan, seconds: float | None) -> str:
    """The prompt in force at ``seconds``, for changes the scorer knows only by time."""
    if seconds is None:
        return ""
    return plan.shot.prompt_at(round(seconds * plan.shot.fps)).prompt


def describe(plan: FluxPlan) -> list[str]:
    """The shot's settings, one short phrase each, as the page's chips show them."""
    shot = plan.shot
    keys = len(prompt_rows(plan))  # those the video reaches
    init = init_image_name(shot)
    return ["flux-deforum", f"model {shot.model.profile}", f"{shot.size[0]}×{shot.size[1]}",
            f"{shot.fps:g} fps", f"{shot.steps} steps",
            *([f"cfg {shot.cfg:g}"] if shot.cfg != 1 else []),
            f"noise {shot.noise_mode}", f"colour {shot.color_coherence.describe()}",
            f"init {init}" if init else "text to image",
            f"{plan.total_frames} frames ({plan.seconds:.2f} s)",
            f"{keys} prompt" + ("s" if keys != 1 else "")]


@dataclass(frozen=True)
class PromptRow:
    frame: str
    time: str
    prompt: str
    negative: str


def prompt_rows(plan: FluxPlan) -> list[PromptRow]:
    """Each prompt keyframe the video reaches, from the frame it takes effect (the first holds
    from frame 0)."""
    shot = plan.shot
    rows = []
    for index, key in enumerate(shot.prompts):
        first = 0 if index == 0 else key.frame
        if first < plan.total_frames:
            rows.append(PromptRow(str(first), f"{first / shot.fps:.2f} s", key.prompt,
                                  key.negative))
    return rows


@dataclass(frozen=True)
class ScheduleTable:
    frames: list[int]  # the columns
    rows: list[tuple[str, str, list[str]]]  # (setting, as written, its value at each frame)
    constants: list[str]  # "strength 0.5": the settings that hold one value throughout


def schedule_table(plan: FluxPlan) -> ScheduleTable:
    """The settings written as schedules that vary, at the contact sheet's frames; the others
    as one value each."""
    shot = plan.shot
    frames = sheet_frames(plan)
    rows, constants = [], []
    for name in _shown_settings(shot):
        setting = getattr(shot, name)
        label = name.replace("_", " ")
        if setting.constant:
            constants.append(f"{label} {setting[0]:.4g}")
        else:
            rows.append((label, setting.text, [f"{setting[f]:.4g}" for f in frames]))
    return ScheduleTable(frames, rows, constants)


def _shown_settings(shot: FluxShot) -> list[str]:
    """The scheduled settings that act on this shot: schnell has no guidance input, and the
    noise delta steps only the slerp noise mode."""
    skip = set() if PROFILE_DEFAULTS[shot.model.profile].guidance_embeds else {"guidance"}
    if shot.noise_mode != "slerp":
        skip.add("noise_delta")
    return [name for name in SCHEDULED if name not in skip]


def init_image_name(shot: FluxShot) -> str | None:
    """The image frame 0 is made from, by its file name (None: text to image)."""
    if shot.image is None:
        return None
    return Path(shot.image.text).name if shot.image.edit is None else str(shot.image)
