"""Streaming decode: latents to frames, chunk by chunk, in time order.

The latent sequence is [start, window 0, ..., window N-1]. The video is decoded in overlapping
chunks (the same slices FramePack and diffusers' pipeline decode), and consecutive chunks are
blended over 4W - 3 frames, the earlier chunk's weight falling linearly from 1 to 0. So the
frames match the pipeline's, but only one or two chunks are ever in memory.

Each *segment* (the blended seam plus the chunk's own frames up to its next seam) is final
once its two chunks are decoded; segments are cached by the keys of those chunks, so a
re-render decodes only around the windows that changed.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from ..plan.entries import Chunk, overlap_frames, segment_bounds


@torch.no_grad()
def decode_latents(vae: torch.nn.Module, latents: torch.Tensor) -> torch.Tensor:
    """(1, 16, n, h, w) scaled latents -> (4n - 3, 3, H, W) float frames in [-1, 1] (unclamped)."""
    scaled = latents.to(vae.device, vae.dtype) / vae.config.scaling_factor
    video = vae.decode(scaled, return_dict=False)[0]
    return video[0].permute(1, 0, 2, 3).float().cpu()


def to_uint8(frames: torch.Tensor) -> np.ndarray:
    """(T, 3, H, W) in [-1, 1] -> (T, H, W, 3) uint8, rounding as diffusers' postprocessing.
    One float temporary, modified in place: the same arithmetic with a third of the memory."""
    scaled = frames * 0.5
    scaled.add_(0.5).clamp_(0, 1).mul_(255).round_()
    return scaled.to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()


def blend(earlier: torch.Tensor, later: torch.Tensor) -> torch.Tensor:
    """Linear cross-fade over the overlap: the earlier chunk's weight falls from 1 to 0."""
    weights = torch.linspace(1, 0, earlier.shape[0], dtype=earlier.dtype).view(-1, 1, 1, 1)
    return weights * earlier + (1 - weights) * later


def _segment(frames: torch.Tensor, previous_tail: torch.Tensor | None, bounds: tuple[int, int],
             overlap: int) -> np.ndarray:
    """A segment's final frames: the blended seam (if any), then the chunk's own frames."""
    body = frames[bounds[0]:bounds[1]]
    if previous_tail is not None:
        body = torch.cat([blend(previous_tail, frames[:overlap]), body])
    return to_uint8(body)


class SegmentDecoder:
    """Segments one at a time: segment i is chunk i's own frames after the seam blended from
    chunk i - 1's tail. The last decoded chunk's tail is kept, so segments asked for in time
    order decode each chunk once and hold at most two decoded chunks; a segment asked for
    alone decodes the chunk before it for its seam."""

    def __init__(self, chunk_list: list[Chunk], window: int,
                 decode: Callable[[Chunk], torch.Tensor]):
        self.chunks = chunk_list
        self.overlap = overlap_frames(window)
        self.bounds = segment_bounds(chunk_list, window)
        self.decode = decode
        self.tail: tuple[int, torch.Tensor] | None = None  # (chunk index, its last frames)

    def segment(self, i: int) -> np.ndarray:
        """Segment ``i``'s final uint8 frames, (T, H, W, 3)."""
        previous = self._tail(i - 1) if i > 0 else None
        frames = self.decode(self.chunks[i])
        self.tail = (i, frames[-self.overlap:].clone()) if i < len(self.chunks) - 1 else None
        segment = _segment(frames, previous, self.bounds[i], self.overlap)
        del frames  # before the next decode
        return segment

    def _tail(self, i: int) -> torch.Tensor:
        if self.tail is not None and self.tail[0] == i:
            return self.tail[1]
        return self.decode(self.chunks[i])[-self.overlap:].clone()
