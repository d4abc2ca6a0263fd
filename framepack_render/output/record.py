"""What an output records about itself, and whether it is already up to date. No torch, no av.

Each output gets a sidecar JSON (prompts, seeds, model, cache keys) whose ``fingerprint`` hashes
the decoded segments and settings it was made from. An output whose sidecar holds the current
fingerprint is up to date: `render` answers an unchanged shot from this alone, loading nothing.
"""

from __future__ import annotations

from pathlib import Path

from .. import __version__
from ..plan import EditNode, Plan
from ..plan.keys import content_key
from ..shot.model import Destination
from .remote import current

FRAME_FORMATS = ("mp4", "webm", "gif", "mov", "frames")
SIDECAR_FORMATS = (*FRAME_FORMATS, "safetensors", "image")  # image: an edit's output
FRAMES_JSON = "render.json"


def sidecar_path(path: Path, format: str) -> Path:
    """Where the JSON sidecar of an output goes: ``<file>.json`` for files (so cat.mp4 and
    cat.gif never collide), ``<folder>/render.json`` for a frames folder."""
    if format not in SIDECAR_FORMATS:
        raise ValueError(f"unknown output format {format!r}; "
                         f"expected one of {', '.join(SIDECAR_FORMATS)}")
    path = Path(path)
    if format == "frames":
        return path / FRAMES_JSON
    return path.with_name(path.name + ".json")


def fingerprint(plan: Plan, segment_keys: list[str], fmt: str) -> str:
    post = plan.shot.post
    trim = plan.trim  # only when trimming, so outputs of other shots keep their fingerprint
    return content_key("output", {
        "segments": segment_keys, "format": fmt, "fps": plan.shot.fps,
        "post": [post.color_match, post.loop, post.interpolate, post.crf],
        "windows": [w.key for w in plan.windows], "version": __version__,
        **({"trim": [trim.start, trim.end]} if trim else {}),
        **({"input_video": _input_identity(plan)} if plan.shot.input_video else {})})


def _input_identity(plan: Plan) -> dict:
    """What of the input video the written frames depend on (not its path)."""
    record = input_record(plan)
    assert record is not None
    return {k: v for k, v in record.items() if k != "path"}


def input_record(plan: Plan) -> dict | None:
    """The video an extension continues: its bytes' hash, the side and whether it is kept."""
    video = plan.shot.input_video
    if video is None:
        return None
    return {"path": str(video.path), "sha256": video.sha256, "frames": video.frames,
            "extend": video.extend, "keep_input": video.keep}


def record(plan: Plan, segment_keys: list[str], fmt: str) -> dict:
    shot = plan.shot
    return {
        "framepack_render": __version__,
        "shot": str(shot.source),
        "label": shot.label,
        "model": shot.model.profile,
        "size": list(shot.size),
        "fps": shot.fps * shot.post.interpolate,
        "frames": plan.total_frames,
        "sampling": shot.sampling,
        "sampler": shot.sampler,
        "noise": shot.noise,
        "seed": shot.seed,
        "vars": dict(shot.vars),
        "sections": [{"prompt": s.prompt, "seed": s.sampling.seed, "steps": s.sampling.steps,
                      "guidance": s.sampling.guidance, "cfg": s.sampling.cfg}
                     for s in shot.sections],
        "windows": [w.key for w in plan.windows],
        "segments": segment_keys,
        "fingerprint": fingerprint(plan, segment_keys, fmt),
        "timeline": timeline(plan),
        "input_video": input_record(plan),
    }


def timeline(plan: Plan) -> dict:
    """Where sections, windows and keyframes fall in the written video, for `score` and
    `report`. Frames count the output's frames (after interpolation), ``end`` is exclusive, and
    with a pingpong loop everything describes the forward half, which plays first."""
    shot = plan.shot
    factor = shot.post.interpolate
    total = plan.total_frames  # before interpolation: k frames become (k - 1) * factor + 1

    def at(frame: int) -> dict[str, int | float]:
        out = frame * factor if frame < total else (total - 1) * factor + 1
        return {"frame": out, "seconds": round(frame / shot.fps, 6)}

    firsts: dict[int, int] = {}
    for node in plan.windows:
        firsts.setdefault(node.slot.section.index, node.index)
    starts = [plan.new_offset if index == 0 else plan.frame_span(plan.windows[window])[0]
              for index, window in sorted(firsts.items())]
    new_end = plan.new_offset + plan.new_frames
    sections = [{"name": section.label, "prompt": section.prompt, "start": at(first),
                 "end": at(after), "keyframe": str(section.image) if section.image else None}
                for section, first, after in zip(shot.sections, starts, [*starts[1:], new_end])]
    windows = [{"index": node.index, "section": node.slot.section.index,
                "start": at(plan.new_offset if node.index == 0 else plan.frame_span(node)[0]),
                "end": at(plan.frame_span(node)[1])} for node in plan.windows]
    found = {"fps": shot.fps * factor, "frames": at(total)["frame"], "loop": shot.post.loop,
             "sections": sections, "windows": windows,
             "keyframes": [{"section": index, "image": section["keyframe"], **section["start"]}
                           for index, section in enumerate(sections) if section["keyframe"]]}
    if plan.kept_frames:  # where the input video's own frames are
        first = 0 if plan.new_offset else new_end
        found["input_video"] = {"start": at(first), "end": at(first + plan.kept_frames)}
    return found


def edit_record(node: EditNode) -> dict:
    """The sidecar of an edit's image: its settings and the edit's key, which is its
    fingerprint (the PNG is a pure function of the edit)."""
    edit = node.edit
    return {
        "framepack_render": __version__,
        "edit": edit.name,
        "prompt": edit.prompt,
        "seed": edit.sampling.seed,
        "steps": edit.sampling.steps,
        "target_index": edit.target_index,
        "layout": node.layout.as_dict(),
        "key": node.key,
        "fingerprint": content_key("edit-output", {"edit": node.key, "version": __version__}),
    }


def up_to_date(plan: Plan, segment_keys: list[str]) -> bool:
    """Every output (edit images included) exists and its sidecar records the current
    fingerprint."""
    destination = plan.shot.destination
    for output in plan.shot.outputs:
        if not current(destination, output.path, sidecar_path(output.path, output.format),
                       fingerprint(plan, segment_keys, output.format)):
            return False
    return all(edit_output_up_to_date(node, destination) for node in plan.edits)


def edit_output_up_to_date(node: EditNode, destination: Destination | None = None) -> bool:
    """True when the edit writes no image, or its image and sidecar are current."""
    output = node.edit.output
    return output is None or current(destination, output, sidecar_path(output, "image"),
                                     edit_record(node)["fingerprint"])
