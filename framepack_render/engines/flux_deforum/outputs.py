"""A flux-deforum render's outputs: the shared writer (every format, atomic, sidecars, the
same up-to-date fingerprint) with this engine's record of what made them."""

from __future__ import annotations

import json

from ... import __version__
from ...output.record import fingerprint
from ...output.write import OutputWriter
from .plan import FluxPlan


def flux_record(plan: FluxPlan, frame_keys: list[str], fmt: str) -> dict:
    """What an output's sidecar and metadata hold: settings, prompts, every frame's key."""
    shot = plan.shot
    factor = shot.post.interpolate
    total = plan.total_frames

    def at(frame: int) -> dict[str, int | float]:
        out = frame * factor if frame < total else (total - 1) * factor + 1
        return {"frame": out, "seconds": round(frame / shot.fps, 6)}

    starts = [max(0, min(key.frame, total)) if i else 0 for i, key in enumerate(shot.prompts)]
    sections = [{"name": f"prompt {key.text}", "prompt": key.prompt, "start": at(first),
                 "end": at(after), "keyframe": None}
                for key, first, after in zip(shot.prompts, starts, [*starts[1:], total])
                if first < after]
    return {
        "framepack_render": __version__,
        "engine": "flux-deforum",
        "shot": str(shot.source),
        "label": shot.label,
        "model": shot.model.profile,
        "size": list(shot.size),
        "fps": shot.fps * factor,
        "frames": total,
        "seed": shot.seed,
        "steps": shot.steps,
        "noise_mode": shot.noise_mode,
        "color_coherence": [shot.color_coherence.mode, shot.color_coherence.space],
        "vars": dict(shot.vars),
        "prompts": [{"frame": key.frame, "prompt": key.prompt, "negative": key.negative}
                    for key in shot.prompts],
        "windows": [node.key for node in plan.frames],  # the units of generation: frames
        "segments": frame_keys,
        "fingerprint": fingerprint(plan, frame_keys, fmt),
        "timeline": {"fps": shot.fps * factor, "frames": at(total)["frame"],
                     "loop": shot.post.loop, "sections": sections, "windows": [],
                     "keyframes": []},
    }


class FluxOutputWriter(OutputWriter):
    """One frame per segment; the record is this engine's."""

    def record(self, fmt: str) -> dict:
        return flux_record(self.plan, self.segment_keys, fmt)

    def _metadata(self, fmt: str) -> dict[str, str]:
        record = self.record(fmt)
        summary = {k: record[k] for k in ("framepack_render", "engine", "model", "seed",
                                          "prompts")}
        return {"title": self.shot.label, "comment": json.dumps(summary, separators=(",", ":"))}
