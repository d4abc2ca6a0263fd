"""Write a shot's outputs: every video format at once from one pass over the segments.

Each output goes to a temporary file renamed into place, with the shot's prompts, seeds, model
and cache keys in the container's metadata and a sidecar JSON (see ``record``).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch

from ..plan import EditNode, Plan
from ..plan.keys import canonical
from .encode import open_sink, write_image, write_sidecar
from .post import Processor, pingpong
from ..shot.model import Destination, Shot
from .input_frames import frame_batches
from .record import edit_record, record, sidecar_path
from .remote import publish

Segments = Iterator[tuple[str, np.ndarray]]


class OutputWriter:
    def __init__(self, plan: Plan, segment_keys: list[str]):
        self.plan = plan
        self.shot = plan.shot
        self.segment_keys = segment_keys

    def record(self, fmt: str) -> dict:
        return record(self.plan, self.segment_keys, fmt)

    def write(self, segments: Segments, reload: Callable[[str], np.ndarray],
              latents: Callable[[], torch.Tensor]) -> list[Path]:
        shot = self.shot
        width, height = shot.size
        fps = shot.fps * shot.post.interpolate
        videos = [o for o in shot.outputs if o.format != "safetensors"]
        sinks = [open_sink(o.path, o.format, width=width, height=height, fps=fps,
                           crf=shot.post.crf, metadata=self._metadata(o.format))
                 for o in videos]
        try:
            processor = Processor(shot.post)
            for frames in self._frames(segments, reload):
                frames = processor(frames)
                for sink in sinks:
                    sink.write(frames)
            written = [sink.close() for sink in sinks]
        except BaseException:
            for sink in sinks:
                sink.abort()
            raise
        for output in videos:
            write_sidecar(sidecar_path(output.path, output.format), self.record(output.format))
        for output in shot.outputs:
            if output.format == "safetensors":
                written.append(self._write_latents(output.path, latents()))
                write_sidecar(sidecar_path(output.path, output.format),
                              self.record(output.format))
        for output in shot.outputs:  # on object storage: upload each, its sidecar last
            publish(shot.destination, output.path, sidecar_path(output.path, output.format))
        return written

    def _frames(self, segments: Segments, reload: Callable[[str], np.ndarray]
                ) -> Iterator[np.ndarray]:
        trim, total = self.plan.trim, self.plan.new_frames
        forward = with_input(self.shot, clip((frames for _, frames in segments), trim.start,
                                             total))
        if self.shot.post.loop != "pingpong":
            yield from forward
            return
        backward = clip((reload(key)[::-1] for key in reversed(self.segment_keys)), trim.end,
                        total)
        yield from pingpong(forward, backward)

    def _metadata(self, fmt: str) -> dict[str, str]:
        record = self.record(fmt)
        summary = {k: record[k] for k in ("framepack_render", "model", "seed", "sections",
                                          "windows")}
        return {"title": self.shot.label, "comment": json.dumps(summary, separators=(",", ":"))}

    def _write_latents(self, path: Path, latents: torch.Tensor) -> Path:
        from safetensors.torch import save_file

        path.parent.mkdir(parents=True, exist_ok=True)
        meta = {k: json.dumps(v) if not isinstance(v, str) else v
                for k, v in self.record("safetensors").items()}
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
        os.close(handle)
        try:
            save_file({"latents": latents.contiguous()}, temporary, metadata=meta)
            os.replace(temporary, path)
        finally:
            if os.path.exists(temporary):
                os.unlink(temporary)
        return path


def with_input(shot: Shot, frames: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
    """The new frames after (or before) the input video's, when the output keeps them."""
    video = shot.input_video
    if video is None or not video.keep:
        yield from frames
        return
    if video.extend == "backward":
        yield from frames
    yield from frame_batches(video.path)
    if video.extend == "forward":
        yield from frames


def clip(chunks: Iterator[np.ndarray], skip: int, keep: int) -> Iterator[np.ndarray]:
    """Frames [skip, skip + keep) of a stream of chunks of frames (an exact shot's trim);
    chunks past the end are never read."""
    seen = 0
    for chunk in chunks:
        low, high = max(skip - seen, 0), min(skip + keep - seen, len(chunk))
        seen += len(chunk)
        if low < high:
            yield chunk[low:high]
        if seen >= skip + keep:
            return


def write_edit_image(node: EditNode, frame: np.ndarray,
                     destination: Destination | None = None) -> Path:
    """An edit's ``output:`` image with its settings (PNG iTXt) and a sidecar."""
    output = node.edit.output
    assert output is not None
    record = edit_record(node)
    write_image(output, frame, {"framepack_render": canonical(record)})
    write_sidecar(sidecar_path(output, "image"), record)
    publish(destination, output, sidecar_path(output, "image"))
    return output
