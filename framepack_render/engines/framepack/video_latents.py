"""An input video's frames as the latents windows read as history.

The HunyuanVideo VAE is causal and 4x in time: 4T - 3 frames encode to T latents, the first
frame alone (like an image's latent) and every later latent from 4 frames. A video's end is
encoded from its last 4T - 3 frames, so the last latent ends on its last frame and sits right
before the first new window; its start from its first frames, so the first latent is its first
frame and sits right after the last new window.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .conditioning import frame_pixels


@torch.no_grad()
def encode_frames(pool: Any, frames: list[np.ndarray], *, side: str) -> torch.Tensor:
    """(1, 16, T, h, w) float32 latents (scaled, the distribution's mode) of the video's
    ``side`` ("end" or "start"): the most frames of the form 4T - 3 there are."""
    if not frames:
        raise ValueError("the input video gave no frames to encode")
    latents = (len(frames) + 3) // 4
    count = 4 * latents - 3
    frames = frames[len(frames) - count:] if side == "end" else frames[:count]
    pixels = torch.cat([frame_pixels(f) for f in frames]).permute(1, 0, 2, 3).unsqueeze(0)
    vae = pool.vae
    encoded = vae.encode(pixels.to(vae.device, vae.dtype)).latent_dist.mode()
    return (encoded * vae.config.scaling_factor).float().cpu().contiguous()
