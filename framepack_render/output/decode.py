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

from typing import Callable, Iterator

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


def stream_segments(chunk_list: list[Chunk], window: int,
                    decode: Callable[[Chunk], torch.Tensor],
                    stored: Callable[[int], bool],
                    load: Callable[[int], np.ndarray | None],
                    ) -> Iterator[tuple[int, np.ndarray, bool]]:
    """Yield (segment index, uint8 frames, came from the cache) in time order.

    ``stored(i)`` says whether segment i is cached and ``load(i)`` reads it (None if it turns
    out corrupt). A chunk is decoded only when its own segment or the next one is missing, and
    at most two decoded chunks are held at once.
    """
    overlap = overlap_frames(window)
    bounds = segment_bounds(chunk_list, window)
    present = [stored(i) for i in range(len(chunk_list))]
    last = len(chunk_list) - 1
    previous_tail: torch.Tensor | None = None
    for i, chunk in enumerate(chunk_list):
        frames = None
        if not present[i] or (i < last and not present[i + 1]):
            frames = decode(chunk)
        segment = load(i) if present[i] else None
        if segment is None:
            if frames is None:
                frames = decode(chunk)
            if i > 0 and previous_tail is None:  # the chunk before was not decoded
                previous_tail = decode(chunk_list[i - 1])[-overlap:].clone()
            segment = _segment(frames, previous_tail if i > 0 else None, bounds[i], overlap)
            cached = False
        else:
            cached = True
        # Keep only the tail the next seam needs; drop the chunk before handing frames on.
        previous_tail = frames[-overlap:].clone() if frames is not None and i < last else None
        del frames
        yield i, segment, cached
        del segment
