"""Post-processing as streaming transforms: frames in, frames out, state carried across calls."""

from __future__ import annotations

from typing import Iterable, Iterator

import numpy as np

from ..shot.model import Post


def pingpong(forward: Iterable[np.ndarray], backward: Iterable[np.ndarray]
             ) -> Iterator[np.ndarray]:
    """The video, then the video backwards without repeating its last and first frames.
    ``backward`` yields the same batches in reverse order, each already reversed."""
    yield from forward
    skip_first, pending = True, None
    for batch in backward:
        if skip_first:
            batch, skip_first = batch[1:], False
        if not len(batch):
            continue
        if pending is not None:
            yield pending
        pending = batch
    if pending is not None and len(pending) > 1:
        yield pending[:-1]


class Processor:
    """Colour matching to the first frame, then frame interpolation (linear, factor k)."""

    def __init__(self, post: Post):
        self.post = post
        self.reference: tuple[np.ndarray, np.ndarray] | None = None
        self.last: np.ndarray | None = None

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        if len(frames) == 0:
            return frames
        if self.post.color_match == "first":
            frames = self._match(frames)
        if self.post.interpolate > 1:
            frames = self._interpolate(frames)
        return frames

    def _match(self, frames: np.ndarray) -> np.ndarray:
        data = frames.astype(np.float32)
        if self.reference is None:
            first = data[0].reshape(-1, 3)
            self.reference = (first.mean(0), first.std(0) + 1e-6)
        mean, std = self.reference
        flat = data.reshape(len(data), -1, 3)
        own_mean = flat.mean(1, keepdims=True)
        own_std = flat.std(1, keepdims=True) + 1e-6
        matched = (flat - own_mean) / own_std * std + mean
        return np.clip(matched, 0, 255).round().astype(np.uint8).reshape(frames.shape)

    def _interpolate(self, frames: np.ndarray) -> np.ndarray:
        factor = self.post.interpolate
        data = frames.astype(np.float32)
        out = []
        previous = self.last
        for frame in data:
            if previous is not None:
                for k in range(1, factor):
                    out.append(previous + (frame - previous) * (k / factor))
            out.append(frame)
            previous = frame
        self.last = previous
        return np.clip(np.stack(out), 0, 255).round().astype(np.uint8)
