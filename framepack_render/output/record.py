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
    return content_key("output", {
        "segments": segment_keys, "format": fmt, "fps": plan.shot.fps,
        "post": [post.color_match, post.loop, post.interpolate, post.crf],
        "windows": [w.key for w in plan.windows], "version": __version__})


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
    }


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
