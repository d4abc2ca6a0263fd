"""Walk a plan: sample the windows the cache lacks, in generation order, then decode and write.

Every window, prompt encoding, image encoding and decoded segment is a cache entry, written
atomically as soon as it exists: an interrupted render loses at most the window in flight.
Components load only for work the cache cannot answer (text encoders for a new prompt, the VAE
and image encoder for a new image, the transformer for a window, the VAE for frames), so an
unchanged shot loads none. A ``Session`` keeps models and encodings resident across renders.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..store import LocalStore, Lease
from ..output.decode import decode_latents, stream_segments, to_uint8
from ..output.encode import write_image, write_sidecar
from ..output.preview import Preview, preview_path
from ..output.record import edit_output_up_to_date, edit_record, sidecar_path, up_to_date
from ..output.write import OutputWriter
from ..plan import EditNode, Plan, WindowNode
from ..plan.entries import Chunk, chunks, image_draw, image_key, referenced, segment_keys
from ..plan.keys import canonical, content_key, model_identity
from ..spec.model import Control, ImageRef, ModelSpec
from ..engines.framepack.conditioning import (Conditioner, ImageEmbeds, TextEmbeds, frame_pixels, load_mask,
                           load_pixels)
from .events import Cancel, Observer, RenderError, RenderResult, up_to_date_result
from ..engines.framepack.forward import RopeScaling
from .memory import release_large_buffers
from ..engines.framepack.models import ModelPool, pool_identity
from ..store.tensors import Memo, TensorCache
from ..engines.framepack.window import (HISTORY, CallStats, ContextFilter, WindowJob, forward_context,
                     inverted_context, one_frame_context, sample_window)


class Session:
    """What stays resident between renders in one process (several shots, a watch): a model
    pool per model identity, each component loaded once, and the encodings shared by all."""

    def __init__(self, store: LocalStore, device: str | torch.device = "cpu"):
        self.store = store
        self.device = device
        self.pools: dict[str, ModelPool] = {}
        self.memo = Memo()

    def pool(self, model: ModelSpec) -> ModelPool:
        identity = canonical(pool_identity(model))
        if identity not in self.pools:
            self.pools[identity] = ModelPool(model, device=self.device)
        return self.pools[identity]

    def render(self, plan: Plan, *, force: bool = False, observer: Observer | None = None,
               preview: bool = False, cancel: Cancel | None = None) -> RenderResult:
        return Renderer(self.pool(plan.shot.model), self.store, force=force, observer=observer,
                        preview=preview, memo=None if force else self.memo,
                        cancel=cancel).render(plan)


class Renderer:
    def __init__(self, pool: Any, store: LocalStore, *, force: bool = False,
                 observer: Observer | None = None, preview: bool = False,
                 memo: Memo | None = None, cancel: Cancel | None = None):
        self.pool = pool
        self.store = store
        self.force = force
        self.preview = preview
        self.observer = observer or Observer()
        self.memo = memo
        self.cancel = cancel or Cancel()
        release_large_buffers()

    def render(self, plan: Plan) -> RenderResult:
        # Before anything is looked up: a concurrent `cache gc` keeps what this render reads
        # and writes, and one that ran before it has finished deleting.
        with self.store.lease(referenced(plan)) as lease:
            return self._render(plan, lease)

    def _render(self, plan: Plan, lease: Lease) -> RenderResult:
        shot = plan.shot
        started = time.perf_counter()
        keys = segment_keys(plan)
        if not self.force and (current := up_to_date_result(plan, self.store, keys)) is not None:
            return current
        result = RenderResult(shot=shot.label, outputs=[str(p) for p in shot.output_paths()],
                              keys=[w.key for w in plan.windows])
        cache = TensorCache(self.store, read=not self.force, memo=self.memo, wait=self._wait,
                            lease=lease)
        run = _Run(plan, keys, self.pool, cache, self.observer, self.cancel)
        if self.preview and shot.outputs:
            run.preview = Preview(preview_path(shot.outputs[0].path), *shot.size, shot.fps)
        loaded_before = self.pool.loaded
        try:
            run.render_edits(result)
            run.sample_windows(result, latents_needed=run.needs_latents())
            result.seconds["sampling"] = time.perf_counter() - started
            encode_start = time.perf_counter()
            # One writer per output set: a process rendering the same shot meanwhile finds
            # the outputs up to date once it gets the lock, instead of writing them again.
            outputs = content_key("outputs", {"paths": sorted(str(o.path) for o in shot.outputs)})
            with cache.locked("output", outputs):
                if not self.force and up_to_date(plan, keys):
                    result.outputs_up_to_date = len(shot.outputs)
                else:
                    self.observer.phase("decode")
                    OutputWriter(plan, keys).write(run.segments(result), run.reload_segment,
                                                   run.all_latents)
                    result.outputs_written = len(shot.outputs)
            result.seconds["decode_and_encode"] = time.perf_counter() - encode_start
        finally:
            if run.preview is not None:
                run.preview.close()
            result.components_loaded = sorted(self.pool.loaded - loaded_before)
        result.transformer_calls = run.calls.calls
        result.teacache_skipped = run.calls.skipped
        if run.calls.calls and run.calls.teacache:
            result.teacache_skipped_share = round(run.calls.skipped / run.calls.calls, 4)
        result.corrupt_entries = len(cache.corrupt)
        result.seconds["total"] = time.perf_counter() - started
        return result

    def _wait(self, kind: str, key: str) -> None:
        self.cancel.check()
        self.observer.waiting(kind, key)


class _Run:
    """The state of one shot's render: conditioning, window latents and decode."""

    def __init__(self, plan: Plan, segment_keys: list[str], pool: Any, cache: TensorCache,
                 observer: Observer, cancel: Cancel):
        self.plan = plan
        self.shot = plan.shot
        self.segment_keys = segment_keys
        self.pool = pool
        self.cache = cache
        self.observer = observer
        self.cancel = cancel
        self.conditioner = Conditioner(pool, cache, model_identity(self.shot.model))
        self.latents: dict[int, torch.Tensor] = {}
        self.images: dict[str, ImageEmbeds] = {}
        self.edits: dict[str, dict[str, torch.Tensor]] = {}
        self.generator: torch.Generator | None = None
        self.preview: Preview | None = None
        self.calls = CallStats()
        exp = self.shot.experimental
        self.context_filter = ContextFilter(exp.context_blur, exp.context_decay)
        rope = self.shot.model.settings.rope_scaling
        self.rope_scaling = None if rope is None else RopeScaling(rope.factor,
                                                                 rope.timestep_threshold)

    # ------------------------------------------------------------ images

    def image(self, ref: ImageRef) -> ImageEmbeds:
        key = image_key(self.shot, ref, self.plan.edit_keys)
        draw = image_draw(self.shot, ref)
        if key not in self.images:  # once per render: a sequential draw must happen once
            self.images[key] = self.conditioner.image(
                key, lambda: self.pixels(ref),
                generator=self.generator if draw is not None else None)
        return self.images[key]

    def pixels(self, ref: ImageRef) -> torch.Tensor:
        """(1, 3, H, W) in [-1, 1]: an image file covering the frame, or an edit's result
        (exactly the pixels of its PNG)."""
        source = self._source(ref)
        if isinstance(source, np.ndarray):
            return frame_pixels(source)
        return load_pixels(source, *self.shot.size)

    # ------------------------------------------------------------ edits

    def render_edits(self, result: RenderResult) -> None:
        """Each edit in dependency order, from the cache or sampled; then their images."""
        for node in self.plan.edits:
            self.cancel.check()
            began = time.perf_counter()
            stored, cached = self.cache.obtain("edit", node.key, lambda: self._make_edit(node))
            self.edits[node.edit.name] = stored
            if cached:
                result.edits_cached += 1
            else:
                result.edits_rendered += 1
            self.observer.edit_done(node, cached, time.perf_counter() - began)
            output = node.edit.output
            if output is not None and (not self.cache.read or not edit_output_up_to_date(node)):
                record = edit_record(node)
                write_image(output, stored["frame"].numpy(),
                            {"framepack_render": canonical(record)})
                write_sidecar(sidecar_path(output, "image"), record)
                result.edit_outputs_written += 1

    def _make_edit(self, node: EditNode) -> dict[str, torch.Tensor]:
        """One-frame inference: a single target latent conditioned on the (masked) control
        latents at their indices; the result is decoded to one frame."""
        self.pool.check()
        edit, settings = node.edit, node.edit.sampling
        self.observer.edit_started(node, settings.steps)
        controls = [self._control(control) for control in edit.controls]
        width, height = self.shot.size
        generator = torch.Generator("cpu").manual_seed(node.noise_seed)
        noise = torch.randn((1, 16, 1, height // 8, width // 8), generator=generator,
                            dtype=torch.float32)
        job = WindowJob(
            noise=noise, contexts=one_frame_context(controls, node.layout), layout=node.layout,
            text=self.conditioner.text(edit.prompt),
            negative=self.conditioner.text(settings.negative_prompt) if settings.cfg > 1 else None,
            image=self.image(edit.image), steps=settings.steps, guidance=settings.guidance,
            cfg=settings.cfg, mu=node.shift.mu, sigma=node.shift.sigma, sampler=self.shot.sampler,
            rope_scaling=self.rope_scaling)

        def on_step(i: int) -> None:
            self.cancel.check()
            self.observer.step(node, i)

        latents = sample_window(self.pool.transformer, job, on_step=on_step, stats=self.calls)
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

    def _source(self, ref: ImageRef) -> Path | np.ndarray:
        """An image file's path, or an edit's result as an (H, W, 3) uint8 frame."""
        if ref.edit is not None:
            return self.edits[ref.edit]["frame"].numpy()
        assert ref.info is not None
        return ref.info.path

    def _start_generator(self) -> None:
        """``noise: sequential``: one generator for everything, in the pipeline's order: the
        start and end image latents (draws 0 and 1), then each window's noise."""
        self.generator = torch.Generator("cpu").manual_seed(self.shot.seed)
        self.image(self.shot.image)
        if self.shot.end_image is not None:
            self.image(self.shot.end_image)

    # ------------------------------------------------------------ windows

    def needs_latents(self) -> bool:
        """Whether writing the outputs reads window latents (not only cached segments)."""
        if any(o.format == "safetensors" for o in self.shot.outputs):
            return True
        return not all(self.cache.has("frames", key) for key in self.segment_keys)

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
            self._start_generator()
        for node in order:
            self.cancel.check()
            noise = self._noise(node) if self.generator is not None else None
            began = time.perf_counter()
            stored, cached = self.cache.obtain("window", node.key,
                                               lambda: self._make_window(node, noise))
            self.latents[node.index] = stored["latents"]
            if cached:
                result.windows_cached += 1
            else:
                result.windows_rendered += 1
            self.observer.window_done(node, cached, time.perf_counter() - began)
            if not cached and self.preview is not None:
                self.preview.add(node.index, to_uint8(decode_latents(self.pool.vae,
                                                                      stored["latents"])))

    def _make_window(self, node: WindowNode, noise: torch.Tensor | None
                     ) -> dict[str, torch.Tensor]:
        self.observer.window_started(node, node.sampling.steps)
        return {"latents": self._sample(node, noise if noise is not None else self._noise(node))}

    def _noise(self, node: WindowNode) -> torch.Tensor:
        width, height = self.shot.size
        shape = (1, 16, self.shot.window, height // 8, width // 8)
        generator = self.generator or torch.Generator("cpu").manual_seed(node.noise_seed)
        return torch.randn(shape, generator=generator, dtype=torch.float32)

    def _sample(self, node: WindowNode, noise: torch.Tensor) -> torch.Tensor:
        settings = node.sampling
        prefix = self.image(node.prefix)
        latent = self.window_latents(node.index - 1)[:, :, -1:] if node.bridge else prefix.latent
        job = WindowJob(
            noise=noise, contexts=self._context(node, latent), layout=node.layout,
            text=self._text(node),
            negative=self.conditioner.text(settings.negative_prompt) if settings.cfg > 1 else None,
            image=prefix, steps=settings.steps, guidance=settings.guidance, cfg=settings.cfg,
            mu=node.shift.mu, sigma=node.shift.sigma, sampler=self.shot.sampler,
            teacache=settings.teacache, cfg_schedule=self.shot.experimental.cfg_schedule_beta,
            rope_scaling=self.rope_scaling)

        def on_step(i: int) -> None:
            self.cancel.check()
            self.observer.step(node, i)

        return sample_window(self.pool.transformer, job, on_step=on_step, stats=self.calls)

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
            return forward_context(prefix, torch.cat(before, dim=2), self.context_filter)
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
        return inverted_context(prefix, history, post, self.context_filter)

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

        chunk_list = chunks(len(self.plan.windows), self.shot.window, self.shot.sampling)
        for i, frames, cached in stream_segments(
                chunk_list, self.shot.window, self._decode,
                lambda i: self.cache.has("frames", keys[i]), load):
            self.cancel.check()
            if cached:
                result.segments_cached += 1
            else:
                self.cache.save("frames", keys[i], {"frames": torch.from_numpy(frames)})
                result.segments_decoded += 1
            yield keys[i], frames
