"""FLUX img2img by hand: the operations of diffusers' ``FluxImg2ImgPipeline``, one function each.

1. Encode the prompt: T5's last hidden state (padded to ``max_sequence_length``) and CLIP's
   pooled output (padded to 77 tokens).
2. Encode the init image through the VAE: (latent - shift_factor) * scaling_factor.
3. Timesteps: sigmas linspace(1, 1/n, n), shifted by mu (linear in the packed token count)
   when the scheduler shifts dynamically.
4. Strength: t_start = int(n - n * strength); only timesteps[t_start:] run.
5. Noise: x = sigma * noise + (1 - sigma) * x0 at the first timestep run (``scale_noise``).
6. Pack 2x2 latent patches into tokens; image ids (0, row, column).
7. The transformer loop with ``FlowMatchEulerDiscreteScheduler`` (true CFG when cfg > 1).
8. Unpack and decode: latent / scaling_factor + shift_factor through the VAE.

With the same components, seed and strength a frame equals the pipeline's output bit for bit
(tests/test_flux_deforum.py). ``noise_scale`` below 1 mixes less noise in than the schedule's
sigma (Deforum's knob; 1 is the pipeline).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

# The schedulers of FLUX.1-dev (dynamic shifting) and -schnell (none); tiny-flux uses dev's.
SCHEDULER_CONFIGS: dict[str, dict[str, Any]] = {
    "flux-dev": dict(base_image_seq_len=256, base_shift=0.5, max_image_seq_len=4096,
                     max_shift=1.15, num_train_timesteps=1000, shift=3.0,
                     use_dynamic_shifting=True),
    "flux-schnell": dict(base_image_seq_len=256, base_shift=0.5, max_image_seq_len=4096,
                         max_shift=1.15, num_train_timesteps=1000, shift=1.0,
                         use_dynamic_shifting=False),
}
SCHEDULER_CONFIGS["tiny-flux"] = SCHEDULER_CONFIGS["flux-dev"]
MAX_SEQUENCE_LENGTH = {"flux-schnell": 256, "flux-dev": 512, "tiny-flux": 512}


@dataclass
class TextEmbeds:
    hidden: torch.Tensor  # (1, L, D): T5's last hidden state
    pooled: torch.Tensor  # (1, P): CLIP's pooled output

    def tensors(self) -> dict[str, torch.Tensor]:
        """For the cache: on the CPU, in the encoders' dtype."""
        return {"hidden": self.hidden.cpu(), "pooled": self.pooled.cpu()}


# ---------------------------------------------------------------- 1. prompt


@torch.no_grad()
def encode_prompt(components: Any, prompt: str, max_sequence_length: int) -> TextEmbeds:
    """T5 (``tokenizer_2``, ``text_encoder_2``) and CLIP pooled (``tokenizer``,
    ``text_encoder``), as the pipeline's ``encode_prompt`` with prompt_2 = prompt."""
    clip_ids = components.tokenizer(
        [prompt], padding="max_length", max_length=components.tokenizer.model_max_length,
        truncation=True, return_overflowing_tokens=False, return_length=False,
        return_tensors="pt").input_ids
    encoder = components.text_encoder
    pooled = encoder(clip_ids.to(encoder.device), output_hidden_states=False).pooler_output
    t5_ids = components.tokenizer_2(
        [prompt], padding="max_length", max_length=max_sequence_length, truncation=True,
        return_length=False, return_overflowing_tokens=False, return_tensors="pt").input_ids
    encoder_2 = components.text_encoder_2
    hidden = encoder_2(t5_ids.to(encoder_2.device), output_hidden_states=False)[0]
    return TextEmbeds(hidden.to(encoder_2.dtype), pooled.to(encoder.dtype))


# ---------------------------------------------------------------- 2. and 8. the VAE


@torch.no_grad()
def encode_image(vae: Any, pixels: torch.Tensor, generator: torch.Generator | None,
                 dtype: torch.dtype) -> torch.Tensor:
    """(1, 3, H, W) in [-1, 1] -> (1, 16, H/8, W/8) scaled latents. With a generator the
    posterior is sampled (the pipeline's draw); without, its mode."""
    posterior = vae.encode(pixels.to(vae.device, dtype)).latent_dist
    latent = posterior.sample(generator) if generator is not None else posterior.mode()
    return (latent - vae.config.shift_factor) * vae.config.scaling_factor


@torch.no_grad()
def decode_latents(vae: Any, latents: torch.Tensor) -> torch.Tensor:
    """(1, 16, h, w) scaled latents -> (1, 3, H, W) in [-1, 1] (unclamped), the VAE's dtype."""
    latents = latents.to(vae.device, vae.dtype) / vae.config.scaling_factor \
        + vae.config.shift_factor
    return vae.decode(latents, return_dict=False)[0].cpu()


def to_uint8(pixels: torch.Tensor) -> np.ndarray:
    """(1, 3, H, W) in [-1, 1] -> (H, W, 3) uint8, as the pipeline's postprocess: scaled to
    [0, 1] in the VAE's dtype, then to float32, times 255, rounded."""
    scaled = (pixels[0] / 2 + 0.5).clamp(0, 1).permute(1, 2, 0).float().numpy()
    return (scaled * 255).round().astype(np.uint8)


def from_uint8(frame: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 -> (1, 3, H, W) in [-1, 1], as the pipeline's preprocess, memory
    layout included: a channels-last view of the array, which CPU convolutions compute with
    other kernels (other last bits) than a contiguous tensor."""
    array = frame[None].astype(np.float32) / 255.0
    return 2.0 * torch.from_numpy(array.transpose(0, 3, 1, 2)) - 1.0


def load_frame(path: Path, width: int, height: int) -> np.ndarray:
    """An image file as (H, W, 3) uint8 covering the frame (resized, centre-cropped)."""
    from PIL import Image

    from ..framepack.conditioning import _cover

    with Image.open(path) as image:
        return np.array(_cover(image.convert("RGB"), width, height))


# ---------------------------------------------------------------- 3. to 5. schedule and noise


def make_scheduler(profile: str):
    from diffusers import FlowMatchEulerDiscreteScheduler

    return FlowMatchEulerDiscreteScheduler(**SCHEDULER_CONFIGS[profile])


def calculate_shift(tokens: int, config: Any) -> float:
    """mu, linear in the packed token count (the pipeline's ``calculate_shift``)."""
    base, top = config.get("base_image_seq_len", 256), config.get("max_image_seq_len", 4096)
    low, high = config.get("base_shift", 0.5), config.get("max_shift", 1.15)
    slope = (high - low) / (top - base)
    return tokens * slope + (low - slope * base)


def img2img_timesteps(scheduler: Any, steps: int, strength: float, width: int, height: int,
                      device: torch.device) -> torch.Tensor:
    """The timesteps img2img runs at ``strength``; sets the scheduler's begin index."""
    sigmas = np.linspace(1.0, 1 / steps, steps)
    mu = calculate_shift((height // 16) * (width // 16), scheduler.config)
    scheduler.set_timesteps(sigmas=sigmas, device=device, mu=mu)
    start = int(max(steps - min(steps * strength, steps), 0))
    scheduler.set_begin_index(start * scheduler.order)
    return scheduler.timesteps[start * scheduler.order:]


def add_noise(scheduler: Any, latents: torch.Tensor, timestep: torch.Tensor,
              noise: torch.Tensor, scale: float) -> torch.Tensor:
    """Flow matching's x_t = sigma * noise + (1 - sigma) * x0 at ``timestep``; Deforum's
    ``noise_scale`` s mixes in s * sigma of noise instead."""
    if scale == 1.0:
        return scheduler.scale_noise(latents, timestep, noise)
    sigma = float(scheduler.sigmas[scheduler.begin_index])
    return latents * (1.0 - sigma * scale) + noise * (sigma * scale)


# ---------------------------------------------------------------- 6. packing


def pack(latents: torch.Tensor) -> torch.Tensor:
    """(B, C, h, w) -> (B, h/2 * w/2, 4C): 2x2 patches as tokens."""
    b, c, h, w = latents.shape
    patches = latents.view(b, c, h // 2, 2, w // 2, 2).permute(0, 2, 4, 1, 3, 5)
    return patches.reshape(b, (h // 2) * (w // 2), c * 4)


def unpack(tokens: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """The inverse of ``pack`` for a (h, w) latent."""
    b, _, channels = tokens.shape
    patches = tokens.view(b, h // 2, w // 2, channels // 4, 2, 2).permute(0, 3, 1, 4, 2, 5)
    return patches.reshape(b, channels // 4, h, w)


def image_ids(h: int, w: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """(h/2 * w/2, 3) RoPE positions of the packed tokens: (0, row, column)."""
    ids = torch.zeros(h // 2, w // 2, 3)
    ids[..., 1] = ids[..., 1] + torch.arange(h // 2)[:, None]
    ids[..., 2] = ids[..., 2] + torch.arange(w // 2)[None, :]
    return ids.reshape(-1, 3).to(device=device, dtype=dtype)


# ---------------------------------------------------------------- 7. the loop


@torch.no_grad()
def denoise(transformer: Any, scheduler: Any, latents: torch.Tensor, timesteps: torch.Tensor,
            text: TextEmbeds, negative: TextEmbeds | None, guidance: float, cfg: float,
            on_step: Callable[[int], None] = lambda i: None) -> torch.Tensor:
    """Run the transformer over ``timesteps`` from the noisy (B, C, h, w) ``latents``; returns
    the clean latents, unpacked."""
    _, _, h, w = latents.shape
    device, dtype = latents.device, text.hidden.dtype
    tokens = pack(latents)
    ids = image_ids(h, w, device, dtype)
    text_ids = torch.zeros(text.hidden.shape[1], 3, device=device, dtype=text.pooled.dtype)
    guidance_in = torch.full([1], guidance, device=device, dtype=torch.float32).expand(
        tokens.shape[0]) if transformer.config.guidance_embeds else None

    def velocity(embeds: TextEmbeds, timestep: torch.Tensor) -> torch.Tensor:
        return transformer(hidden_states=tokens, timestep=timestep / 1000, guidance=guidance_in,
                           pooled_projections=embeds.pooled, encoder_hidden_states=embeds.hidden,
                           txt_ids=text_ids, img_ids=ids, joint_attention_kwargs={},
                           return_dict=False)[0]

    for i, t in enumerate(timesteps):
        timestep = t.expand(tokens.shape[0]).to(tokens.dtype)
        prediction = velocity(text, timestep)
        if negative is not None and cfg > 1.0:
            against = velocity(negative, timestep)
            prediction = against + cfg * (prediction - against)
        tokens = scheduler.step(prediction, t, tokens, return_dict=False)[0]
        on_step(i)
    return unpack(tokens, h, w)
