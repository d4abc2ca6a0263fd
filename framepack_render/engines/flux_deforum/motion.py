"""Deforum's 2D camera as an affine warp, applied to the previous frame's latent.

Deforum rotates the previous image by ``angle`` degrees about its centre with scale ``zoom``
(OpenCV's ``getRotationMatrix2D``), then translates it by (translation_x, translation_y)
pixels, replicating the border. As ``affine_grid``'s matrix for a W x H image, which maps each
output position (normalised to [-1, 1]) to the input position it samples:

    [[ c/z,          -s H / (W z),  -2 tx / W ],
     [ s W / (H z),   c / z,        -2 ty / H ]]        c = cos(angle), s = sin(angle)

so zoom > 1 zooms in, a positive angle turns the content counter-clockwise, and positive
translations move it right and down. The latent grid is the image's divided by 8 in each
direction: tx image pixels are tx / 8 latent cells, and in normalised coordinates both are
2 tx / W, so the same matrix warps the latent. Bicubic sampling smooths and shifts the
latent's statistics a little every frame; each channel's mean and standard deviation are put
back as they were, as the seed pipeline does, so they do not drift over a long shot.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .plan import Motion


def motion_matrix(motion: Motion, width: int, height: int) -> torch.Tensor:
    """(1, 2, 3) float64 ``affine_grid`` matrix of ``motion`` for a ``width`` x ``height``
    image (the aspect ratio is what counts)."""
    z, radians = motion.zoom, math.radians(motion.angle)
    c, s = math.cos(radians), math.sin(radians)
    return torch.tensor([[[c / z, -s * height / (width * z), -2.0 * motion.x / width],
                          [s * width / (height * z), c / z, -2.0 * motion.y / height]]],
                        dtype=torch.float64)


def warp(tensor: torch.Tensor, motion: Motion, width: int, height: int, *,
         keep_statistics: bool = True) -> torch.Tensor:
    """``tensor`` (1, C, h, w), any grid with the image's aspect ratio (pixels or latents),
    seen through Deforum's camera at ``motion``: bicubic, border replicated."""
    if motion.still:
        return tensor
    source = tensor.float()
    theta = motion_matrix(motion, width, height).to(source.device, torch.float32)
    grid = F.affine_grid(theta, list(source.shape), align_corners=False)
    moved = F.grid_sample(source, grid, mode="bicubic", padding_mode="border",
                          align_corners=False)
    if keep_statistics:
        moved = match_statistics(moved, source)
    return moved.to(tensor.dtype)


def match_statistics(moved: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Each channel of ``moved`` given ``reference``'s mean and standard deviation."""
    dims = (2, 3)
    mean, std = moved.mean(dims, keepdim=True), moved.std(dims, keepdim=True)
    target_mean = reference.mean(dims, keepdim=True)
    target_std = reference.std(dims, keepdim=True)
    return (moved - mean) / std.clamp_min(1e-6) * target_std + target_mean
