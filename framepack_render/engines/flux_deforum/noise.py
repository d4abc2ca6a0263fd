"""Each frame's noise, from its seeds alone, so any frame re-renders identically on its own.

A seed's noise is the second draw of a generator seeded with it: the first is the init
image's posterior sample, as in diffusers' img2img pipeline, so frame 0 gets the pipeline's
noise exactly and every later frame of ``fixed`` noise the same pattern.
"""

from __future__ import annotations

import math

import torch

from .plan import FluxPlan, FrameNode

DOT_THRESHOLD = 0.9995  # closer than this, slerp is a plain lerp (Deforum's threshold)


def seed_noise(seed: int, shape: tuple[int, ...]) -> torch.Tensor:
    """The second float32 draw of a generator seeded with ``seed``."""
    generator = torch.Generator("cpu").manual_seed(seed)
    torch.randn(shape, generator=generator, dtype=torch.float32)
    return torch.randn(shape, generator=generator, dtype=torch.float32)


def slerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """Spherical interpolation from ``a`` (t = 0) to ``b`` (t = 1): keeps the noise's norm
    where a straight blend would shrink it."""
    if t == 0.0:
        return a
    dot = float((a.flatten() / a.norm()) @ (b.flatten() / b.norm()))
    if abs(dot) > DOT_THRESHOLD:
        return (1.0 - t) * a + t * b
    theta = math.acos(dot)
    return (math.sin((1.0 - t) * theta) * a + math.sin(t * theta) * b) / math.sin(theta)


class FrameNoise:
    """The noise each frame is rendered with (its ``Noise`` says how). The slerp walk is
    carried from frame to frame, so frames made in order cost one draw each; a frame asked
    for out of order walks from the nearest earlier one it has, or from frame 0."""

    def __init__(self, plan: FluxPlan, shape: tuple[int, ...]):
        self.plan = plan
        self.shape = shape
        self.walk: tuple[int, torch.Tensor] | None = None  # the last slerp step made

    def __call__(self, node: FrameNode) -> torch.Tensor:
        noise, shape = node.noise, self.shape
        if noise.mode == "subseed":
            return slerp(seed_noise(noise.seeds[0], shape), seed_noise(noise.seeds[1], shape),
                         noise.weight)
        if noise.mode == "slerp":
            return self._walk(node.index, noise.seeds[0])
        return seed_noise(noise.seeds[0], shape)

    def _walk(self, index: int, seed: int) -> torch.Tensor:
        if self.walk is None or self.walk[0] > index:
            self.walk = (0, seed_noise(seed, self.shape))
        done, current = self.walk
        deltas = self.plan.shot.noise_delta  # the walk's step at each frame
        for step in range(done + 1, index + 1):
            current = slerp(current, seed_noise((seed + step) % 2**64, self.shape),
                            deltas[step])
        self.walk = (index, current)
        return current


def frame_noise(plan: FluxPlan, node: FrameNode, shape: tuple[int, ...]) -> torch.Tensor:
    """One frame's noise, on its own (walking the slerp noise from frame 0)."""
    return FrameNoise(plan, shape)(node)
