"""One generation window: its clean context, its transformer calls and its sampler.

The context follows FramePack's layouts. Inverted orders read the latents that come *after* the
window in time (1x, then 2x, then 4x); forward order reads those *before* it. Windows not
generated yet count as zeros, as FramePack's zero-initialised history does.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..plan.layout import HISTORY_2X, HISTORY_4X, IndexLayout
from .conditioning import ImageEmbeds, TextEmbeds
from .samplers import flow_sigmas, sample_euler, sample_unipc

HISTORY = 1 + HISTORY_2X + HISTORY_4X  # 19 latents of context


@dataclass
class Context:
    """The clean latents of one window, each (1, 16, n, h, w)."""

    clean: torch.Tensor  # prefix + 1x
    history_2x: torch.Tensor
    history_4x: torch.Tensor


def inverted_context(prefix: torch.Tensor, after: torch.Tensor,
                     post: torch.Tensor | None = None) -> Context:
    """``after``: the latents following the window in time. ``post`` replaces the 1x latent
    (the end image for the first generated window)."""
    history = _pad(after, HISTORY, at_end=True)[:, :, :HISTORY]
    x1, x2, x4 = history.split([1, HISTORY_2X, HISTORY_4X], dim=2)
    if post is not None:
        x1 = post
    return Context(torch.cat([prefix, x1], dim=2), x2, x4)


def forward_context(prefix: torch.Tensor, before: torch.Tensor) -> Context:
    """``before``: the start latent and the windows preceding this one, in time order."""
    history = _pad(before, HISTORY, at_end=False)[:, :, -HISTORY:]
    x4, x2, x1 = history.split([HISTORY_4X, HISTORY_2X, 1], dim=2)
    return Context(torch.cat([prefix, x1], dim=2), x2, x4)


def _pad(latents: torch.Tensor, length: int, *, at_end: bool) -> torch.Tensor:
    missing = length - latents.shape[2]
    if missing <= 0:
        return latents
    zeros = latents.new_zeros(*latents.shape[:2], missing, *latents.shape[3:])
    return torch.cat([latents, zeros] if at_end else [zeros, latents], dim=2)


@dataclass
class WindowJob:
    noise: torch.Tensor  # (1, 16, W, h, w) float32
    context: Context
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


@torch.no_grad()
def sample_window(transformer: torch.nn.Module, job: WindowJob, on_step=None) -> torch.Tensor:
    """The window's clean latents, (1, 16, W, h, w) float32."""
    dtype = transformer.dtype
    device = transformer.device

    def indices(values: tuple[int, ...] | None) -> torch.Tensor:
        return torch.tensor(values or (), dtype=torch.long, device=device)

    fixed = {
        "image_embeds": job.image.siglip.to(device, dtype),
        "indices_latents": indices(job.layout.latents),
        "guidance": torch.tensor([job.guidance], dtype=dtype, device=device) * 1000.0,
        "latents_clean": job.context.clean.to(device, dtype),
        "indices_latents_clean": indices(job.layout.clean),
        "latents_history_2x": job.context.history_2x.to(device, dtype),
        "indices_latents_history_2x": indices(job.layout.history_2x),
        "latents_history_4x": job.context.history_4x.to(device, dtype),
        "indices_latents_history_4x": indices(job.layout.history_4x),
        "return_dict": False,
    }

    def predict(x: torch.Tensor, timestep: torch.Tensor, text: TextEmbeds) -> torch.Tensor:
        return transformer(hidden_states=x.to(device, dtype), timestep=timestep.to(device),
                           encoder_hidden_states=text.hidden.to(device, dtype),
                           encoder_attention_mask=text.mask.to(device, dtype),
                           pooled_projections=text.pooled.to(device, dtype), **fixed)[0]

    def velocity(x: torch.Tensor, timestep: torch.Tensor) -> torch.Tensor:
        v = predict(x, timestep, job.text)
        if job.negative is not None:
            negative = predict(x, timestep, job.negative)
            v = negative + job.cfg * (v - negative)
        return v.float().cpu()

    sigmas = flow_sigmas(job.steps, job.mu, job.sigma)
    sampler = sample_unipc if job.sampler == "unipc" else sample_euler
    return sampler(velocity, job.noise.float(), sigmas, on_step).float()
