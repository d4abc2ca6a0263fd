"""Walk a plan: sample the windows the cache lacks, in generation order, then decode and write.

Every window, prompt encoding, image encoding and decoded segment is a cache entry, written
atomically as soon as it exists: an interrupted render loses at most the window in flight.
Models are touched only for work the cache cannot answer, so an unchanged shot loads none.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..cache import CacheStore
from ..output.decode import Chunk, chunks, decode_latents, stream_segments, to_uint8
from ..output.preview import Preview, preview_path
from ..output.write import OutputWriter
from ..plan import Plan, WindowNode
from ..plan.keys import content_key, image_identity, model_identity
from ..spec.model import ImageRef
from .conditioning import Conditioner, ImageEmbeds, TextEmbeds
from .memory import release_large_buffers
from .tensors import TensorCache
from .window import HISTORY, WindowJob, forward_context, inverted_context, sample_window


class RenderError(Exception):
    """A render that cannot proceed, as one line for the user (exit status 1)."""


class Observer:
    """Progress callbacks; the default does nothing. The CLI draws Rich progress from these."""

    def shot_started(self, plan: Plan, to_sample: int) -> None: ...
    def window_started(self, node: WindowNode, steps: int) -> None: ...
    def step(self, node: WindowNode, index: int) -> None: ...
    def window_done(self, node: WindowNode, cached: bool, seconds: float) -> None: ...
    def phase(self, name: str) -> None: ...


@dataclass
class RenderResult:
    shot: str
    outputs: list[str]
    windows_rendered: int = 0
    windows_cached: int = 0
    segments_decoded: int = 0
    segments_cached: int = 0
    outputs_written: int = 0
    outputs_up_to_date: int = 0
    corrupt_entries: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    keys: list[str] = field(default_factory=list)


class Renderer:
    def __init__(self, pool: Any, store: CacheStore, *, force: bool = False,
                 observer: Observer | None = None, preview: bool = False):
        self.pool = pool
        self.store = store
        self.force = force
        self.preview = preview
        self.observer = observer or Observer()
        release_large_buffers()

    def render(self, plan: Plan) -> RenderResult:
        shot = plan.shot
        if shot.edits:
            raise RenderError(f"{shot.label}: one-frame edits are not rendered by this version "
                              "yet; remove `edits` (and {edit: ...} images) to render")
        started = time.perf_counter()
        run = _Run(plan, self.pool, TensorCache(self.store, read=not self.force), self.observer)
        if self.preview and shot.outputs:
            run.preview = Preview(preview_path(shot.outputs[0].path), *shot.size, shot.fps)
        result = RenderResult(shot=shot.label, outputs=[str(o.path) for o in shot.outputs],
                              keys=[w.key for w in plan.windows])
        try:
            self._render(run, result, started)
        finally:
            if run.preview is not None:
                run.preview.close()
        result.corrupt_entries = len(run.cache.corrupt)
        result.seconds["total"] = time.perf_counter() - started
        return result

    def _render(self, run: "_Run", result: RenderResult, started: float) -> None:
        plan, shot = run.plan, run.shot
        writer = OutputWriter(plan, run.segment_keys)
        current = writer.up_to_date() and not self.force
        run.sample_windows(result, latents_needed=not current and run.needs_latents(writer))
        result.seconds["sampling"] = time.perf_counter() - started
        if current:
            result.outputs_up_to_date = len(shot.outputs)
        else:
            self.observer.phase("decode")
            encode_start = time.perf_counter()
            writer.write(run.segments(result), run.reload_segment, run.all_latents)
            result.outputs_written = len(shot.outputs)
            result.seconds["decode_and_encode"] = time.perf_counter() - encode_start


class _Run:
    """The state of one shot's render: conditioning, window latents and decode."""

    def __init__(self, plan: Plan, pool: Any, cache: TensorCache, observer: Observer):
        self.plan = plan
        self.shot = plan.shot
        self.pool = pool
        self.cache = cache
        self.observer = observer
        self.model = model_identity(self.shot.model)
        self.conditioner = Conditioner(pool, cache, self.model)
        self.latents: dict[int, torch.Tensor] = {}
        self.images: dict[str, ImageEmbeds] = {}
        self.generator: torch.Generator | None = None
        self.preview: Preview | None = None

    # ------------------------------------------------------------ images

    def image(self, ref: ImageRef) -> ImageEmbeds:
        assert ref.info is not None  # edits are refused before this point
        identity = image_identity(ref, {})
        name = identity["sha256"]
        if name not in self.images:
            draw = None
            if self.generator is not None and ref is self.shot.image:
                draw = 0
            elif self.generator is not None and ref is self.shot.end_image:
                draw = 1
            self.images[name] = self.conditioner.image(
                identity, ref.info.path, self.shot.size,
                generator=self.generator if draw is not None else None, draw=draw)
        return self.images[name]

    def start_key(self) -> str:
        ref = self.shot.image
        draw = 0 if self.shot.noise == "sequential" else None
        return self.conditioner.image_key(image_identity(ref, {}), self.shot.size, draw)

    # ------------------------------------------------------------ windows

    def needs_latents(self, writer: OutputWriter) -> bool:
        """Whether writing the outputs reads window latents (not only cached segments)."""
        if any(o.format == "safetensors" for o in self.shot.outputs):
            return True
        return not all(self.cache.has("frames", key) for key in writer.segment_keys)

    def sample_windows(self, result: RenderResult, latents_needed: bool) -> None:
        """Sample what the cache lacks. When later steps read latents, every cached window is
        read (and so verified) here, and a corrupt one is sampled again."""
        order = self.plan.generation_order
        missing = [node for node in order if not self.cache.has("window", node.key)]
        self.observer.shot_started(self.plan, len(missing))
        if not missing and not latents_needed:
            result.windows_cached = len(order)
            for node in order:
                self.observer.window_done(node, True, 0.0)
            return
        if missing:
            self.pool.check()  # fail fast, transformer first, before any model loads
        if self.shot.noise == "sequential":
            # One generator for everything, in the pipeline's order: image latents, then noise.
            self.generator = torch.Generator("cpu").manual_seed(self.shot.seed)
            self.image(self.shot.image)
            if self.shot.end_image is not None:
                self.image(self.shot.end_image)
        for node in order:
            noise = self._noise(node) if self.generator is not None else None
            stored = self.cache.load("window", node.key)
            if stored is not None:
                self.latents[node.index] = stored["latents"]
                result.windows_cached += 1
                self.observer.window_done(node, True, 0.0)
                continue
            began = time.perf_counter()
            self.observer.window_started(node, node.sampling.steps)
            latents = self._sample(node, noise if noise is not None else self._noise(node))
            self.cache.save("window", node.key, {"latents": latents})
            self.latents[node.index] = latents
            result.windows_rendered += 1
            self.observer.window_done(node, False, time.perf_counter() - began)
            if self.preview is not None:
                self.preview.add(node.index, to_uint8(decode_latents(self.pool.vae, latents)))

    def _noise(self, node: WindowNode) -> torch.Tensor:
        width, height = self.shot.size
        shape = (1, 16, self.shot.window, height // 8, width // 8)
        generator = self.generator or torch.Generator("cpu").manual_seed(node.noise_seed)
        return torch.randn(shape, generator=generator, dtype=torch.float32)

    def _sample(self, node: WindowNode, noise: torch.Tensor) -> torch.Tensor:
        settings = node.sampling
        prefix = self.image(node.prefix)
        job = WindowJob(
            noise=noise, context=self._context(node, prefix.latent), layout=node.layout,
            text=self._text(node),
            negative=self.conditioner.text(settings.negative_prompt) if settings.cfg > 1 else None,
            image=prefix, steps=settings.steps, guidance=settings.guidance, cfg=settings.cfg,
            mu=node.shift.mu, sigma=node.shift.sigma, sampler=self.shot.sampler)
        return sample_window(self.pool.transformer, job,
                             on_step=lambda i: self.observer.step(node, i))

    def _text(self, node: WindowNode) -> TextEmbeds:
        slot = node.slot
        text = self.conditioner.text(slot.prompt)
        if slot.blend_from is None:
            return text
        return TextEmbeds.lerp(self.conditioner.text(slot.blend_from), text, slot.blend_alpha)

    def _context(self, node: WindowNode, prefix: torch.Tensor):
        count = len(self.plan.windows)
        if self.shot.sampling == "forward":
            before = [self.image(self.shot.image).latent]
            before += [self.window_latents(j) for j in range(node.index)][-HISTORY:]
            return forward_context(prefix, torch.cat(before, dim=2))
        after = []
        for j in range(node.index + 1, count):
            missing = prefix.new_zeros(*prefix.shape[:2], self.shot.window, *prefix.shape[3:])
            after.append(self.latents.get(j, missing))
            if sum(a.shape[2] for a in after) >= HISTORY:
                break
        history = torch.cat(after, dim=2) if after else prefix[:, :, :0]
        post = None
        if node.uses_end_image and self.shot.end_image is not None:
            post = self.image(self.shot.end_image).latent * self.shot.end_image_strength
        return inverted_context(prefix, history, post)

    def window_latents(self, index: int) -> torch.Tensor:
        if index not in self.latents:
            stored = self.cache.load("window", self.plan.windows[index].key)
            if stored is None:
                raise RenderError(f"window {index + 1} vanished from the cache during the render")
            self.latents[index] = stored["latents"]
        return self.latents[index]

    def all_latents(self) -> torch.Tensor:
        """[start, window 0, ..., window N-1] as one (1, 16, 1 + N*W, h, w) tensor."""
        return self.all_latents_range(0, 1 + len(self.plan.windows) * self.shot.window)

    # ------------------------------------------------------------ decode

    def _chunks(self) -> list[Chunk]:
        return chunks(len(self.plan.windows), self.shot.window, self.shot.sampling)

    def _chunk_key(self, chunk: Chunk) -> str:
        window = self.shot.window
        ids = []
        for position in range(chunk.start, chunk.stop):
            if position == 0:
                ids.append(self.start_key())
            else:
                ids.append(f"{self.plan.windows[(position - 1) // window].key}/"
                           f"{(position - 1) % window}")
        return content_key("chunk", {"model": self.model, "latents": ids})

    @cached_property
    def segment_keys(self) -> list[str]:
        keys = []
        chunk_list = self._chunks()
        chunk_keys = [self._chunk_key(c) for c in chunk_list]
        for i, key in enumerate(chunk_keys):
            keys.append(content_key("frames", {
                "previous": chunk_keys[i - 1] if i else None, "chunk": key,
                "last": i == len(chunk_keys) - 1, "window": self.shot.window}))
        return keys

    def _decode(self, chunk: Chunk) -> torch.Tensor:
        self.pool.check(("vae",))
        latents = self.all_latents_range(chunk.start, chunk.stop)
        return decode_latents(self.pool.vae, latents)

    def all_latents_range(self, start: int, stop: int) -> torch.Tensor:
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

    def reload_segment(self, key: str) -> np.ndarray:
        stored = self.cache.load("frames", key)
        if stored is None:
            raise RenderError("a decoded segment vanished from the cache during the render")
        return stored["frames"].numpy()

    def segments(self, result: RenderResult):
        """Decoded segments in time order as uint8 arrays, cached as they are made."""
        keys = self.segment_keys

        def load(i: int) -> np.ndarray | None:
            stored = self.cache.load("frames", keys[i])
            return stored["frames"].numpy() if stored is not None else None

        for i, frames, cached in stream_segments(
                self._chunks(), self.shot.window, self._decode,
                lambda i: self.cache.has("frames", keys[i]), load):
            if cached:
                result.segments_cached += 1
            else:
                self.cache.save("frames", keys[i], {"frames": torch.from_numpy(frames)})
                result.segments_decoded += 1
            yield keys[i], frames
