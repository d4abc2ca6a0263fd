"""Contact sheets: a thumbnail per generation window of a rendered shot, with what shaped it.

Each window is shown by its middle frame, between the start frame and the last frame, and
labelled with its time span and the marks that explain it (a keyframe, an edit's result, the end
image, a new or blended prompt). Frames are found by time, so an interpolated output (twice the
frame rate) or a looped one maps onto the plan's windows all the same. A flux-deforum shot,
whose units are single frames, is shown at evenly spaced frames instead. Thumbnails are JPEG
data URIs, so the page needs no files beside it.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..plan import Plan, WindowNode
from ..shot.model import ImageRef
from .video import probe, read_frames

if TYPE_CHECKING:
    from ..engines.flux_deforum.plan import FluxPlan

THUMB_SIDE = 256  # pixels on the longer side: sharp at the page's ~170 px on a 1.5x screen
JPEG_QUALITY = 84


@dataclass(frozen=True)
class Thumb:
    title: str  # "window 2", "start", "end"
    span: str  # "1.20–2.40 s"
    image: str  # data URI
    prompt: str = ""
    marks: tuple[tuple[str, str], ...] = field(default=())  # (kind, text) kinds: keyframe,
    # edit, end, prompt, blend


def contact_sheet(plan: Plan, video: Path, *, side: int = THUMB_SIDE) -> list[Thumb]:
    """The start frame, each window's middle frame and the last frame of ``video`` (the shot's
    rendered output). Raises ``video.VideoError`` for a file that does not decode."""
    info = probe(video)
    fps = plan.shot.fps
    wanted = [0] + [_middle(plan, w) for w in plan.windows] + [plan.total_frames - 1]
    indices = [min(info.frames - 1, round(f / fps * info.fps)) for f in wanted]
    frames = _pick(video, indices, side)
    if not frames:
        return []
    last = max(frames)  # decoding has the last word on how many frames there are
    images = [_data_uri(frames[min(i, last)]) for i in indices]
    start, *middles, end = images
    thumbs = [Thumb("start", "0.00 s", start, plan.windows[0].slot.prompt if plan.windows
                    else "", _start_marks(plan))]
    thumbs += [_window_thumb(plan, node, image) for node, image in zip(plan.windows, middles)]
    thumbs.append(Thumb("end", f"{plan.seconds:.2f} s", end,
                        plan.windows[-1].slot.prompt if plan.windows else ""))
    return thumbs


def frame_sheet(plan: FluxPlan, video: Path, *, side: int = THUMB_SIDE) -> list[Thumb]:
    """A flux-deforum shot's frames at even steps through ``video``, each titled with its
    frame number and time. Its units are frames, too many to show one by one. A thumbnail
    marks the prompt keyframes since the one before it, and frame 0 its init image. Raises
    ``video.VideoError`` for a file that does not decode."""
    from .flux import init_image_name, prompt_keyframes, sheet_frames

    info = probe(video)
    fps = plan.shot.fps
    shown = sheet_frames(plan)
    indices = [min(info.frames - 1, round(f / fps * info.fps)) for f in shown]
    frames = _pick(video, indices, side)
    if not frames:
        return []
    last = max(frames)
    keys = prompt_keyframes(plan)
    init = init_image_name(plan.shot)
    thumbs: list[Thumb] = []
    before = -1
    for frame, index in zip(shown, indices):
        marks = [("prompt", f"new prompt at frame {k.frame}") for k in keys
                 if before < k.frame <= frame]
        if frame == 0 and init is not None:
            marks.append(("keyframe", f"init {init}"))
        thumbs.append(Thumb(f"frame {frame}", f"{frame / fps:.2f} s",
                            _data_uri(frames[min(index, last)]),
                            plan.shot.prompt_at(frame).prompt, tuple(marks)))
        before = frame
    return thumbs


def _middle(plan: Plan, node: WindowNode) -> int:
    first, stop = plan.frame_span(node)
    return (first + stop - 1) // 2


def _pick(video: Path, indices: list[int], side: int) -> dict[int, np.ndarray]:
    """The frames at ``indices``, read in one pass that stops after the last one."""
    wanted = set(indices)
    found: dict[int, np.ndarray] = {}
    for index, frame in enumerate(read_frames(video, side)):
        if index in wanted:
            found[index] = frame
            if len(found) == len(wanted):
                break
    return found


def window_seconds(plan: Plan, node: WindowNode) -> tuple[float, float]:
    """Where a window plays: the first window from 0 (it follows the start frame), the others
    from their first frame, each to the frame after its last (the render's timeline)."""
    first, stop = plan.frame_span(node)
    fps = plan.shot.fps
    return (0.0 if node.index == 0 else first / fps), stop / fps


def _window_thumb(plan: Plan, node: WindowNode, image: str) -> Thumb:
    start, end = window_seconds(plan, node)
    return Thumb(f"window {node.index + 1}", f"{start:.2f}–{end:.2f} s", image,
                 node.slot.prompt, _window_marks(plan, node))


def _start_marks(plan: Plan) -> tuple[tuple[str, str], ...]:
    image = plan.shot.image
    return (("edit", f"edit {image.edit}"),) if image.edit else ()


def _window_marks(plan: Plan, node: WindowNode) -> tuple[tuple[str, str], ...]:
    slot = node.slot
    marks: list[tuple[str, str]] = []
    if slot.keyframe and slot.section.image is not None:
        marks.append(_image_mark("keyframe", slot.section.image))
    previous = plan.windows[node.index - 1].slot if node.index > 0 else None
    if previous is not None and previous.prompt != slot.prompt:
        marks.append(("prompt", f"new prompt: {slot.section.label}"))
    if slot.blend_from is not None:
        marks.append(("blend", f"blend {slot.blend_alpha:.0%}"))
    if node.uses_end_image and plan.shot.end_image is not None:
        marks.append(_image_mark("end", plan.shot.end_image, "end"))
    return tuple(marks)


def _image_mark(kind: str, ref: ImageRef, word: str | None = None) -> tuple[str, str]:
    """An image field as a mark: an edit's result is marked as the edit."""
    if ref.edit is not None:
        return "edit", f"{word or kind} ← edit {ref.edit}"
    return kind, f"{word or kind} {Path(ref.text).name}"


def _data_uri(frame: np.ndarray) -> str:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(frame).save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
