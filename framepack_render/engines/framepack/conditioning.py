"""Text and image conditioning: what a window is conditioned on (each encoding a cache entry).

Prompts go through the Llama encoder (hidden_states[-3], template cropped off) and CLIP-L's
pooled output; images are resized and centre-cropped to the shot's size, VAE-encoded (the clean
latent) and SigLIP-encoded. Each step reproduces HunyuanVideoFramepackPipeline's operations so
that the same components give the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image


@dataclass
class TextEmbeds:
    hidden: torch.Tensor  # (1, L, D)
    mask: torch.Tensor  # (1, L)
    pooled: torch.Tensor  # (1, P)

    @staticmethod
    def lerp(a: "TextEmbeds", b: "TextEmbeds", weight: float) -> "TextEmbeds":
        """``weight`` of ``b`` blended into ``a``; the mask covers the tokens of either."""
        return TextEmbeds(torch.lerp(a.hidden, b.hidden, weight), torch.maximum(a.mask, b.mask),
                          torch.lerp(a.pooled, b.pooled, weight))


@dataclass
class ImageEmbeds:
    latent: torch.Tensor  # (1, 16, 1, h, w) float32, scaled by the VAE's scaling factor
    siglip: torch.Tensor  # (1, N, D)


def _cover(image: Image.Image, width: int, height: int) -> Image.Image:
    """Resized to cover the frame, centre-cropped (FramePack's rule)."""
    if image.size == (width, height):
        return image
    scale = max(width / image.width, height / image.height)
    resized = (round(image.width * scale), round(image.height * scale))
    image = image.resize(resized, Image.LANCZOS)
    left, top = (resized[0] - width) // 2, (resized[1] - height) // 2
    return image.crop((left, top, left + width, top + height))


def load_pixels(path: Path, width: int, height: int) -> torch.Tensor:
    """(1, 3, H, W) in [-1, 1], covering the frame."""
    with Image.open(path) as image:
        array = np.array(_cover(image.convert("RGB"), width, height)).astype(np.float32)
    return frame_pixels(array / 255.0)


def frame_pixels(frame: np.ndarray) -> torch.Tensor:
    """(H, W, 3) in [0, 1] (or uint8) -> (1, 3, H, W) in [-1, 1]."""
    if frame.dtype == np.uint8:
        frame = frame.astype(np.float32) / 255.0
    pixels = torch.from_numpy(np.ascontiguousarray(frame)).permute(2, 0, 1).unsqueeze(0)
    return 2.0 * pixels - 1.0


def load_mask(source: Path | np.ndarray, width: int, height: int, *, alpha: bool
              ) -> torch.Tensor | None:
    """A control mask at latent resolution, (1, 1, 1, H/8, W/8) in [0, 1]: 255 keeps that
    region of the control latent, 0 zeroes it. ``source`` is an image file or an (H, W, 3)
    uint8 frame (an edit's result), read as grey levels; with ``alpha`` the file's alpha
    channel is the mask (None when it has none). Cropped like the image, then resized to the
    latent grid with LANCZOS."""
    if isinstance(source, np.ndarray):
        return _mask(Image.fromarray(source).convert("L"), width, height)
    with Image.open(source) as image:
        if not alpha:
            return _mask(image.convert("L"), width, height)
        if "A" not in image.getbands() and "transparency" not in image.info:
            return None
        return _mask(image.convert("RGBA").getchannel("A"), width, height)


def _mask(grey: Image.Image, width: int, height: int) -> torch.Tensor:
    grey = _cover(grey, width, height).resize((width // 8, height // 8), Image.LANCZOS)
    return torch.from_numpy(np.array(grey).astype(np.float32) / 255.0)[None, None, None]


@torch.no_grad()
def encode_text(pool: Any, prompt: str) -> dict[str, torch.Tensor]:
    """A prompt's entry: Llama hidden states (template cropped off), their mask, CLIP's pooled
    output."""
    template = pool.prompt_template
    tokenizer, encoder = pool.tokenizer, pool.text_encoder
    crop = int(template["crop_start"])
    tokens = tokenizer([template["template"].format(prompt)], max_length=256 + crop,
                       padding="max_length", truncation=True, return_tensors="pt",
                       return_attention_mask=True)
    device = encoder.device
    mask = tokens.attention_mask.to(device)
    hidden = encoder(input_ids=tokens.input_ids.to(device), attention_mask=mask,
                     output_hidden_states=True).hidden_states[-3].to(encoder.dtype)
    clip_tokens = pool.tokenizer_2([prompt], padding="max_length", max_length=77,
                                   truncation=True, return_tensors="pt")
    clip = pool.text_encoder_2
    pooled = clip(clip_tokens.input_ids.to(clip.device), output_hidden_states=False).pooler_output
    return {"hidden": hidden[:, crop:].cpu().contiguous(),
            "mask": mask[:, crop:].cpu().contiguous(), "pooled": pooled.cpu().contiguous()}


@torch.no_grad()
def encode_image(pool: Any, pixels: torch.Tensor, generator: torch.Generator | None = None
                 ) -> dict[str, torch.Tensor]:
    """An image's entry: its clean latent and SigLIP embedding. With ``generator`` the latent
    is sampled from the VAE's distribution (the key names which draw); without, it is the
    distribution's mode, so the encoding is a pure function of the image."""
    vae = pool.vae
    distribution = vae.encode(pixels.unsqueeze(2).to(vae.device, vae.dtype)).latent_dist
    latent = distribution.sample(generator=generator) if generator is not None \
        else distribution.mode()
    latent = (latent * vae.config.scaling_factor).float()
    encoder, processor = pool.image_encoder, pool.feature_extractor
    features = processor(images=(pixels + 1) / 2.0, return_tensors="pt", do_rescale=False)
    features = features.to(device=encoder.device, dtype=encoder.dtype)
    siglip = encoder(**features).last_hidden_state
    return {"latent": latent.cpu().contiguous(), "siglip": siglip.cpu().contiguous()}


def text_embeds(tensors: dict[str, torch.Tensor]) -> TextEmbeds:
    return TextEmbeds(tensors["hidden"], tensors["mask"], tensors["pooled"])


def image_embeds(tensors: dict[str, torch.Tensor]) -> ImageEmbeds:
    return ImageEmbeds(tensors["latent"], tensors["siglip"])
