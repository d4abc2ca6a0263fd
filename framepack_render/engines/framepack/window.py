"""One generation window (or one-frame edit): its clean context, its model calls, its sampler.

The context follows FramePack's layouts. Inverted orders read the latents that come *after* the
window in time (1x, then 2x, then 4x); forward order reads those *before* it. Windows not
generated yet count as zeros, as FramePack's zero-initialised history does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ...plan.layout import HISTORY_2X, HISTORY_4X, IndexLayout
from .conditioning import ImageEmbeds, TextEmbeds
from .forward import Contexts, RopeScaling, TeaCache, WindowForward
from .samplers import flow_sigmas, sample_euler, sample_unipc

HISTORY = 1 + HISTORY_2X + HISTORY_4X  # 19 latents of context


@dataclass(frozen=True)
class ContextFilter:
    """The experimental anti-memory options, applied to the history by temporal distance d
    (0 for the nearest latent): a spatial Gaussian blur of sigma * (1 + alpha * d) latent
    pixels, and a weight of exp(-decay * d)."""

    blur: tuple[float, float] | None = None  # (sigma, alpha)
    decay: float = 0.0

    def __call__(self, history: torch.Tensor) -> torch.Tensor:
        """``history``: (1, 16, HISTORY, h, w), nearest first."""
        if self.blur is None and self.decay <= 0:
            return history
        frames = []
        for d in range(history.shape[2]):
            frame = history[:, :, d]
            if self.blur is not None and self.blur[0] > 0:
                frame = gaussian_blur(frame, self.blur[0] * (1 + self.blur[1] * d))
            if self.decay > 0:
                frame = frame * math.exp(-self.decay * d)
            frames.append(frame)
        return torch.stack(frames, dim=2)


def gaussian_blur(image: torch.Tensor, sigma: float) -> torch.Tensor:
    """A separable Gaussian blur of (1, C, h, w) with edges replicated."""
    radius = max(1, math.ceil(3 * sigma))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-(x ** 2) / (2 * sigma ** 2))
    kernel = (kernel / kernel.sum()).to(image.dtype)
    channels = image.shape[1]
    out = F.pad(image, (radius, radius, radius, radius), mode="replicate")
    out = F.conv2d(out, kernel.view(1, 1, 1, -1).repeat(channels, 1, 1, 1), groups=channels)
    return F.conv2d(out, kernel.view(1, 1, -1, 1).repeat(channels, 1, 1, 1), groups=channels)


def inverted_context(prefix: torch.Tensor, after: torch.Tensor,
                     post: torch.Tensor | None = None,
                     context_filter: ContextFilter = ContextFilter()) -> Contexts:
    """``after``: the latents following the window in time. ``post`` replaces the 1x latent
    (the end image for the first generated window)."""
    history = context_filter(_pad(after, HISTORY, at_end=True)[:, :, :HISTORY])
    x1, x2, x4 = history.split([1, HISTORY_2X, HISTORY_4X], dim=2)
    if post is not None:
        x1 = post
    return Contexts(torch.cat([prefix, x1], dim=2), x2, x4)


def forward_context(prefix: torch.Tensor, before: torch.Tensor,
                    context_filter: ContextFilter = ContextFilter()) -> Contexts:
    """``before``: the start latent and the windows preceding this one, in time order."""
    history = _pad(before, HISTORY, at_end=False)[:, :, -HISTORY:]
    history = context_filter(history.flip(2)).flip(2)  # the filter counts from the nearest
    x4, x2, x1 = history.split([HISTORY_4X, HISTORY_2X, 1], dim=2)
    return Contexts(torch.cat([prefix, x1], dim=2), x2, x4)


def one_frame_context(controls: list[torch.Tensor], layout: IndexLayout) -> Contexts:
    """One-frame inference: the control latents, then zeros for the post latent and the 2x and
    4x history, each present only where the layout has indices for it."""
    reference = controls[0]

    def zeros(n: int) -> torch.Tensor:
        return reference.new_zeros(*reference.shape[:2], n, *reference.shape[3:])

    post = len(layout.clean) - len(controls)
    clean = torch.cat(controls + ([zeros(post)] if post else []), dim=2)
    return Contexts(clean,
                    zeros(HISTORY_2X) if layout.history_2x is not None else None,
                    zeros(HISTORY_4X) if layout.history_4x is not None else None)


def _pad(latents: torch.Tensor, length: int, *, at_end: bool) -> torch.Tensor:
    missing = length - latents.shape[2]
    if missing <= 0:
        return latents
    zeros = latents.new_zeros(*latents.shape[:2], missing, *latents.shape[3:])
    return torch.cat([latents, zeros] if at_end else [zeros, latents], dim=2)


@dataclass
class CallStats:
    """Transformer calls a render made, and how many TeaCache answered from its cache."""

    calls: int = 0
    skipped: int = 0
    teacache: bool = False  # whether any call ran with TeaCache


@dataclass
class WindowJob:
    noise: torch.Tensor  # (1, 16, T, h, w) float32
    contexts: Contexts
    layout: IndexLayout
    text: TextEmbeds
    negative: TextEmbeds | None  # only when cfg > 1
    image: ImageEmbeds  # SigLIP of the prefix image
    steps: int
    guidance: float
    cfg: float
    mu: float
    sigma: float
    sampler: str
    teacache: float | None = None  # threshold
    cfg_schedule: float | None = None  # beta: guidance * (1 - beta * t / 1000)
    rope_scaling: RopeScaling | None = None


def sample_window(transformer: torch.nn.Module, job: WindowJob, on_step=None,
                  stats: CallStats | None = None) -> torch.Tensor:
    """The clean latents, (1, 16, T, h, w) float32."""
    forward = WindowForward(transformer, job.layout, job.contexts, job.image.siglip,
                            job.rope_scaling)
    streams = {name: TeaCache(job.teacache, job.steps) if job.teacache is not None else None
               for name in ("positive", "negative")}
    stats = stats if stats is not None else CallStats()
    stats.teacache |= job.teacache is not None

    def predict(x: torch.Tensor, timestep: torch.Tensor, text: TextEmbeds, guidance: float,
                stream: str) -> torch.Tensor:
        stats.calls += 1
        cache = streams[stream]
        skipped = cache.skipped if cache is not None else 0
        v = forward(x, timestep, text.hidden, text.mask, text.pooled, guidance, cache)
        if cache is not None:
            stats.skipped += cache.skipped - skipped
        return v

    def velocity(x: torch.Tensor, timestep: torch.Tensor) -> torch.Tensor:
        scale = 1.0
        if job.cfg_schedule is not None:
            scale = 1.0 - job.cfg_schedule * float(timestep.flatten()[0]) / 1000.0
        # The schedule scales the guidance in use: true CFG when cfg > 1, else the distilled one.
        guidance = job.guidance * (scale if job.negative is None else 1.0)
        v = predict(x, timestep, job.text, guidance, "positive")
        if job.negative is not None:
            negative = predict(x, timestep, job.negative, guidance, "negative")
            v = negative + job.cfg * scale * (v - negative)
        return v.float().cpu()

    sigmas = flow_sigmas(job.steps, job.mu, job.sigma)
    sampler = sample_unipc if job.sampler == "unipc" else sample_euler
    return sampler(velocity, job.noise.float(), sigmas, on_step).float()
