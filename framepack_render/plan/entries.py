"""Every cache entry a plan reads or writes, keyed without torch.

Besides windows and edits (keyed in ``graph``), a render caches prompt encodings, image
encodings and decoded *segments* of frames. Their keys live here so that ``plan``, ``cache gc``
and the no-op check of ``render`` can name them without loading anything.

Decoding follows the pipeline's slices: the latent sequence [start, window 0, ..., window N-1]
is decoded in overlapping chunks, consecutive chunks blended over 4W - 3 frames. A segment (a
seam plus the chunk's own frames) is keyed by the chunks around it, so a re-render decodes only
near the windows that changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..shot.model import ImageRef, Shot
from .extension import history_latents, video_identity
from .graph import Plan
from .keys import content_key, image_identity, model_identity

KINDS = ("prompt", "image", "video", "edit", "window", "frames", "flux-frame")


@dataclass(frozen=True)
class Chunk:
    start: int  # latent index range [start, stop) in [start latent, windows...]
    stop: int

    @property
    def frames(self) -> int:
        return 4 * (self.stop - self.start) - 3


def overlap_frames(window: int) -> int:
    return 4 * window - 3


def chunks(count: int, window: int, sampling: str) -> list[Chunk]:
    """The decode slices in time order for ``count`` windows of ``window`` latents."""
    def span(first_window: int, windows: int) -> Chunk:
        return Chunk(1 + first_window * window, 1 + (first_window + windows) * window)

    if count == 1:
        return [Chunk(0, 1 + window)]
    if sampling == "forward":  # decoded as generated: each new window with the one before it
        return [Chunk(0, 1 + window)] + [span(k - 1, 2) for k in range(1, count)]
    # Inverted orders: the start latent with the first two windows, then pairs, then the last.
    return [Chunk(0, 1 + 2 * window)] + [span(j, 2) for j in range(1, count - 1)] + \
        [span(count - 1, 1)]


def segment_bounds(chunk_list: list[Chunk], window: int) -> list[tuple[int, int]]:
    """For each chunk, the frame range [a, b) of its own frames that its segment emits."""
    overlap = overlap_frames(window)
    bounds = []
    for i, chunk in enumerate(chunk_list):
        first = overlap if i > 0 else 0
        last = chunk.frames - overlap if i < len(chunk_list) - 1 else chunk.frames
        bounds.append((first, last))
    return bounds


# ---------------------------------------------------------------- encodings


def prompt_key(model: dict[str, Any], prompt: str) -> str:
    """The profile's revision in ``model`` pins its encoders and prompt template."""
    return content_key("prompt", {"model": model, "prompt": prompt})


def image_draw(shot: Shot, ref: ImageRef) -> int | None:
    """With sequential noise the start and end images are *sampled* from the VAE's latent
    distribution, as the pipeline does (draws 0 and 1 of the shot's generator); otherwise every
    image is encoded to the distribution's mode, a pure function of its pixels."""
    if shot.noise != "sequential":
        return None
    if ref is shot.image:
        return 0
    if ref is shot.end_image:
        return 1
    return None


def image_key(shot: Shot, ref: ImageRef, edit_keys: dict[str, str] | None = None) -> str:
    return content_key("image", {"model": model_identity(shot.model),
                                 "image": image_identity(ref, edit_keys or {}),
                                 "size": list(shot.size), "draw": image_draw(shot, ref)})


def video_key(shot: Shot) -> str | None:
    """The input video's latents the windows read as history (None when they read none)."""
    latents = history_latents(shot)
    if shot.input_video is None or not latents:
        return None
    return content_key("video", {"model": model_identity(shot.model), "size": list(shot.size),
                                 "video": video_identity(shot.input_video, latents)})


def window_prompts(plan: Plan) -> list[str]:
    """The prompts the windows are conditioned on, each once, in time order."""
    prompts: dict[str, None] = {}
    for node in plan.windows:
        prompts[node.slot.prompt] = None
        if node.slot.blend_from is not None:
            prompts[node.slot.blend_from] = None
        if node.sampling.cfg > 1:
            prompts[node.sampling.negative_prompt] = None
    return list(prompts)


def window_images(plan: Plan) -> list[ImageRef]:
    """The images windows and decoding read: the start image, prefixes and the end image."""
    shot = plan.shot
    refs = [shot.image, *(node.prefix for node in plan.windows)]
    if shot.end_image is not None and any(node.uses_end_image for node in plan.windows):
        refs.append(shot.end_image)
    unique: dict[int, ImageRef] = {id(ref): ref for ref in refs}
    return list(unique.values())


# ---------------------------------------------------------------- segments


def segment_keys(plan: Plan) -> list[str]:
    """One key per decoded segment, in time order."""
    shot = plan.shot
    model = model_identity(shot.model)
    start = image_key(shot, shot.image, plan.edit_keys)
    window = shot.window

    def chunk_key(chunk: Chunk) -> str:
        ids = [start if position == 0 else
               f"{plan.windows[(position - 1) // window].key}/{(position - 1) % window}"
               for position in range(chunk.start, chunk.stop)]
        return content_key("chunk", {"model": model, "latents": ids})

    chunk_keys = [chunk_key(c) for c in chunks(len(plan.windows), window, shot.sampling)]
    tiled = {"vae_tiling": True} if shot.model.settings.vae_tiling else {}
    return [content_key("frames", {"previous": chunk_keys[i - 1] if i else None, "chunk": key,
                                   "last": i == len(chunk_keys) - 1, "window": window, **tiled})
            for i, key in enumerate(chunk_keys)]


def referenced(plan: Plan) -> set[tuple[str, str]]:
    """Every (kind, key) a render of this plan reads: what `cache gc` keeps."""
    if plan.engine != "framepack":  # another engine's plan knows its own entries
        return plan.referenced()
    shot = plan.shot
    model = model_identity(shot.model)
    found = {("window", node.key) for node in plan.windows}
    found |= {("edit", node.key) for node in plan.edits}
    found |= {("prompt", prompt_key(model, p)) for p in window_prompts(plan)}
    found |= {("prompt", prompt_key(model, node.edit.prompt)) for node in plan.edits}
    found |= {("prompt", prompt_key(model, node.edit.sampling.negative_prompt))
              for node in plan.edits if node.edit.sampling.cfg > 1}
    found |= {("image", image_key(shot, ref, plan.edit_keys)) for ref in window_images(plan)}
    # An edit encodes its image (for SigLIP) and its control images; masks are read as pixels.
    found |= {("image", image_key(shot, ref, plan.edit_keys)) for node in plan.edits
              for ref in (node.edit.image, *(c.image for c in node.edit.controls))}
    found |= {("frames", key) for key in segment_keys(plan)}
    if (key := video_key(shot)) is not None:
        found.add(("video", key))
    return found
