"""How the FramePack engine makes each task's entry from the entries the task reads.

The executor decides what runs and where entries come from; a step only computes: it receives
``read(entry)`` for its inputs and returns the tensors of its one output. Steps keep no state
between tasks except the sequential-noise stream and the last decoded chunk (so consecutive
segments decode each chunk once).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch

from ...output.decode import SegmentDecoder, decode_latents, to_uint8
from ...output.input_frames import first_frames, last_frames
from ...plan import EditNode, Plan, WindowNode
from ...plan.entries import Chunk, chunks, image_draw, image_key, prompt_key, video_key
from ...plan.extension import encoded_frames, history_latents, reads_video
from ...plan.keys import model_identity
from ...plan.tasks import Entry, Task
from ...shot.model import Control, ImageRef, InputVideo
from .conditioning import (ImageEmbeds, TextEmbeds, encode_image, encode_text, frame_pixels,
                           image_embeds, load_mask, load_pixels, text_embeds)
from .forward import RopeScaling
from .video_latents import encode_frames
from .window import (HISTORY, CallStats, ContextFilter, WindowJob, forward_context,
                     inverted_context, one_frame_context, sample_window)

Tensors = dict[str, torch.Tensor]
Read = Callable[[Entry], Tensors]
OnStep = Callable[[Any, int], None]


class SequentialNoise:
    """``noise: sequential``: one generator for everything, in the pipeline's order: the start
    and end image latents (draws 0 and 1), then each window's noise in generation order. Any
    draw can be asked for at any time; earlier draws are replayed (they are cheap) so a window
    made again, or made alone, gets exactly the noise a full render gives it."""

    def __init__(self, seed: int, shapes: list[tuple[int, ...]]):
        self.seed = seed
        self.shapes = shapes  # of every draw, in order
        self.generator: torch.Generator | None = None
        self.position = 0  # the draw the generator makes next

    def at(self, draw: int) -> torch.Generator:
        """The generator, about to make ``draw``; the caller makes exactly that draw."""
        if self.generator is None or draw < self.position:
            self.generator = torch.Generator("cpu").manual_seed(self.seed)
            self.position = 0
        while self.position < draw:
            torch.randn(self.shapes[self.position], generator=self.generator,
                        dtype=torch.float32)
            self.position += 1
        self.position = draw + 1
        return self.generator


class FramePackSteps:
    """The makers of prompt, image, edit, window and frames entries for one plan."""

    def __init__(self, plan: Plan, pool: Any, read: Read, *, on_step: OnStep,
                 calls: CallStats):
        self.plan = plan
        self.shot = plan.shot
        self.pool = pool
        self.read = read
        self.on_step = on_step
        self.calls = calls
        self.model = model_identity(self.shot.model)
        rope = self.shot.model.settings.rope_scaling
        self.rope_scaling = None if rope is None else RopeScaling(rope.factor,
                                                                 rope.timestep_threshold)
        width, height = self.shot.size
        self.image_shape = (1, 16, 1, height // 8, width // 8)
        self.window_shape = (1, 16, self.shot.window, height // 8, width // 8)
        self.noise = self._sequential_noise() if self.shot.noise == "sequential" else None
        self.decoder = SegmentDecoder(chunks(len(plan.windows), self.shot.window,
                                             self.shot.sampling), self.shot.window, self._decode)

    def make(self, task: Task) -> Tensors:
        return getattr(self, f"_make_{task.kind}")(task.subject)

    # ------------------------------------------------------------ encodings

    def _make_prompt(self, prompt: str) -> Tensors:
        return encode_text(self.pool, prompt)

    def _make_image(self, ref: ImageRef) -> Tensors:
        draw = image_draw(self.shot, ref)
        generator = self.noise.at(draw) if self.noise is not None and draw is not None else None
        return encode_image(self.pool, self._pixels(ref), generator)

    def _pixels(self, ref: ImageRef) -> torch.Tensor:
        """(1, 3, H, W) in [-1, 1]: an image file covering the frame, or an edit's result
        (exactly the pixels of its PNG)."""
        source = self._source(ref)
        if isinstance(source, np.ndarray):
            return frame_pixels(source)
        return load_pixels(source, *self.shot.size)

    def _source(self, ref: ImageRef):
        """An image file's path, or an edit's result (or an input video's last frame) as an
        (H, W, 3) uint8 frame."""
        if ref.edit is not None:
            return self.read(("edit", self.plan.edit_keys[ref.edit]))["frame"].numpy()
        if ref.video is not None:
            video = ref.video
            return last_frames(video.path, 1, video.frames, video.fps)[-1]
        assert ref.info is not None
        return ref.info.path

    def text(self, prompt: str) -> TextEmbeds:
        return text_embeds(self.read(("prompt", prompt_key(self.model, prompt))))

    def image(self, ref: ImageRef) -> ImageEmbeds:
        return image_embeds(self.read(("image", image_key(self.shot, ref, self.plan.edit_keys))))

    # ------------------------------------------------------------ input video

    def _make_video(self, video: InputVideo) -> Tensors:
        """The video's latents on the side the windows read: its end for a forward
        extension, its start for a backward one."""
        count = encoded_frames(history_latents(self.shot))
        if video.extend == "forward":
            frames = last_frames(video.path, count, video.frames, video.fps)
        else:
            frames = first_frames(video.path, count)
        side = "end" if video.extend == "forward" else "start"
        return {"latents": encode_frames(self.pool, frames, side=side)}

    def video_latents(self) -> torch.Tensor:
        key = video_key(self.shot)
        assert key is not None
        return self.read(("video", key))["latents"]

    # ------------------------------------------------------------ edits

    def _make_edit(self, node: EditNode) -> Tensors:
        """One-frame inference: a single target latent conditioned on the (masked) control
        latents at their indices; the result is decoded to one frame."""
        edit, settings = node.edit, node.edit.sampling
        controls = [self._control(control) for control in edit.controls]
        generator = torch.Generator("cpu").manual_seed(node.noise_seed)
        noise = torch.randn(self.image_shape, generator=generator, dtype=torch.float32)
        job = WindowJob(
            noise=noise, contexts=one_frame_context(controls, node.layout), layout=node.layout,
            text=self.text(edit.prompt),
            negative=self.text(settings.negative_prompt) if settings.cfg > 1 else None,
            image=self.image(edit.image), steps=settings.steps, guidance=settings.guidance,
            cfg=settings.cfg, mu=node.shift.mu, sigma=node.shift.sigma, sampler=self.shot.sampler,
            rope_scaling=self.rope_scaling)
        latents = sample_window(self.pool.transformer, job,
                                on_step=lambda i: self.on_step(node, i), stats=self.calls)
        frame = to_uint8(decode_latents(self.pool.vae, latents))[0]
        return {"latents": latents, "frame": torch.from_numpy(frame)}

    def _control(self, control: Control) -> torch.Tensor:
        """A control image's latent, times its mask: the mask image (a file or an edit's
        result, as grey levels), else the control image file's alpha channel."""
        latent = self.image(control.image).latent
        if control.mask is not None:
            mask = load_mask(self._source(control.mask), *self.shot.size, alpha=False)
        elif control.image.info is not None:
            mask = load_mask(control.image.info.path, *self.shot.size, alpha=True)
        else:  # an edit's result: RGB, no alpha
            mask = None
        return latent if mask is None else latent * mask

    # ------------------------------------------------------------ windows

    def _make_window(self, node: WindowNode) -> Tensors:
        return {"latents": self._sample(node, self.window_noise(node))}

    def window_noise(self, node: WindowNode) -> torch.Tensor:
        if self.noise is not None:
            generator = self.noise.at(self._first_window_draw + node.order)
        else:
            generator = torch.Generator("cpu").manual_seed(node.noise_seed)
        return torch.randn(self.window_shape, generator=generator, dtype=torch.float32)

    def _sample(self, node: WindowNode, noise: torch.Tensor) -> torch.Tensor:
        settings = node.sampling
        prefix = self.image(node.prefix)
        latent = self.window_latents(node.index - 1)[:, :, -1:] if node.bridge else prefix.latent
        job = WindowJob(
            noise=noise, contexts=self._context(node, latent), layout=node.layout,
            text=self._text(node),
            negative=self.text(settings.negative_prompt) if settings.cfg > 1 else None,
            image=prefix, steps=settings.steps, guidance=settings.guidance, cfg=settings.cfg,
            mu=node.shift.mu, sigma=node.shift.sigma, sampler=self.shot.sampler,
            teacache=settings.teacache, cfg_schedule=node.experimental.cfg_schedule_beta,
            rope_scaling=self.rope_scaling)
        return sample_window(self.pool.transformer, job,
                             on_step=lambda i: self.on_step(node, i), stats=self.calls)

    def _text(self, node: WindowNode) -> TextEmbeds:
        slot = node.slot
        text = self.text(slot.prompt)
        if slot.blend_from is None:
            return text
        return TextEmbeds.lerp(self.text(slot.blend_from), text, slot.blend_alpha)

    def _context(self, node: WindowNode, prefix: torch.Tensor):
        windows = self.plan.windows
        video = reads_video(self.shot, node.index, len(windows))
        if self.shot.sampling == "forward":
            # A forward extension's first windows continue from the video's last latents.
            before = [self.video_latents() if video else self.image(self.shot.image).latent]
            before += [self.window_latents(j) for j in range(max(node.index - HISTORY, 0),
                                                               node.index)]
            return forward_context(prefix, torch.cat(before, dim=2), _context_filter(node))
        after = []
        for j in range(node.index + 1, len(windows)):
            if windows[j].order < node.order:  # generated before this one
                after.append(self.window_latents(j))
            else:  # not generated yet (endpoints-first): zeros, as FramePack pads
                after.append(prefix.new_zeros(*prefix.shape[:2], self.shot.window,
                                              *prefix.shape[3:]))
            if sum(a.shape[2] for a in after) >= HISTORY:
                break
        if video:  # a backward extension's last windows lead into the video's first latents
            after.append(self.video_latents())
        history = torch.cat(after, dim=2) if after else prefix[:, :, :0]
        post = None
        if node.uses_end_image and self.shot.end_image is not None:
            post = self.image(self.shot.end_image).latent * self.shot.end_image_strength
        return inverted_context(prefix, history, post, _context_filter(node))

    def window_latents(self, index: int) -> torch.Tensor:
        return self.read(("window", self.plan.windows[index].key))["latents"]

    def all_latents(self) -> torch.Tensor:
        """[start, window 0, ..., window N-1] as one (1, 16, 1 + N*W, h, w) tensor."""
        return self.latents_range(0, 1 + len(self.plan.windows) * self.shot.window)

    def latents_range(self, start: int, stop: int) -> torch.Tensor:
        """Latents [start, stop) of the sequence [start latent, window 0, ...]."""
        window = self.shot.window
        parts = []
        if start == 0:
            parts.append(self.image(self.shot.image).latent)
            start = 1
        first, last = (start - 1) // window, (stop - 2) // window
        latents = torch.cat([self.window_latents(i) for i in range(first, last + 1)], dim=2)
        offset = first * window + 1
        parts.append(latents[:, :, start - offset:stop - offset])
        return torch.cat(parts, dim=2)

    # ------------------------------------------------------------ frames

    def _make_frames(self, index: int) -> Tensors:
        return {"frames": torch.from_numpy(self.decoder.segment(index))}

    def _decode(self, chunk: Chunk) -> torch.Tensor:
        return decode_latents(self.pool.vae, self.latents_range(chunk.start, chunk.stop))

    def preview_frames(self, latents: torch.Tensor) -> np.ndarray:
        return to_uint8(decode_latents(self.pool.vae, latents))

    # ------------------------------------------------------------ noise

    @property
    def _first_window_draw(self) -> int:
        return 1 + (self.shot.end_image is not None)

    def _sequential_noise(self) -> SequentialNoise:
        images = [self.image_shape] * self._first_window_draw
        windows = [self.window_shape] * len(self.plan.windows)
        return SequentialNoise(self.shot.seed, images + windows)


def _context_filter(node: WindowNode) -> ContextFilter:
    """The window's own context options (a schedule gives each window its values)."""
    exp = node.experimental
    return ContextFilter(exp.context_blur, exp.context_decay)
