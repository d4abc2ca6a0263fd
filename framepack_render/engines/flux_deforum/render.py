"""Render a flux-deforum plan with a resident model, through the shared cache and outputs.

Frames are made in time order, each only when the cache lacks it: frame k reads frame k-1's
latent (warped by the camera), its prompt encodings and, for ``match_first``, frame 0's
pixels, and is committed as soon as it exists (an interrupted render resumes at the frame in
flight). The outputs are written from the cached frames by the shared writer under the
output lock, and an unchanged shot is answered by the shared up-to-date check, loading
nothing. Progress reports each frame as a window (``render --json`` counts frames in
``windows_rendered`` and ``windows_cached``).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from ...output.preview import Preview, preview_path
from ...output.record import up_to_date
from ...plan.tasks import outputs_key
from ...run.events import Cancel, Observer, RenderResult, up_to_date_result
from ...store.tensors import TensorCache
from .color_coherence import match_colors
from .models import FluxPool, pool_identity
from .motion import warp
from .noise import FrameNoise
from .outputs import FluxOutputWriter
from .plan import FRAME_KIND, FluxPlan, FrameNode
from .sampler import (TextEmbeds, add_noise, decode_latents, denoise, encode_image,
                      encode_prompt, from_uint8, img2img_timesteps, load_frame, to_uint8)

Tensors = dict[str, torch.Tensor]
PREVIEW_EVERY = 8  # frames sampled between rewrites of the preview video


def render(session: Any, plan: FluxPlan, *, force: bool = False,
           observer: Observer | None = None, preview: bool = False,
           cancel: Cancel | None = None) -> RenderResult:
    """``Session.render`` for a flux-deforum plan: the session's store, memo and device, and
    a FLUX pool kept resident in the session beside FramePack's."""
    identity = pool_identity(plan.shot.model)
    if identity not in session.pools:
        session.pools[identity] = FluxPool(plan.shot.model, session.device)
    run = _FrameRun(plan, session.pools[identity], session.store, force=force,
                    observer=observer or Observer(), cancel=cancel or Cancel(),
                    memo=None if force else session.memo, preview=preview)
    # Before anything is looked up: a concurrent `cache gc` keeps what this render touches.
    with session.store.lease(plan.referenced()) as lease:
        return run.render(lease)


class _FrameRun:
    def __init__(self, plan: FluxPlan, pool: FluxPool, store: Any, *, force: bool,
                 observer: Observer, cancel: Cancel, memo: Any, preview: bool):
        self.plan = plan
        self.shot = plan.shot
        self.pool = pool
        self.store = store
        self.force = force
        self.observer = observer
        self.cancel = cancel
        self.memo = memo
        self.preview_on = preview
        self.last: tuple[str, Tensors] | None = None  # the frame made or read last
        self.first: np.ndarray | None = None  # frame 0's pixels (match_first's reference)
        self.calls = 0
        self.prompt_keys = plan.prompt_keys()
        width, height = plan.shot.size
        self.noise = FrameNoise(plan, (1, 16, height // 8, width // 8))

    def render(self, lease: Any) -> RenderResult:
        started = time.perf_counter()
        plan, shot = self.plan, self.shot
        keys = plan.output_keys
        if not self.force and (current := up_to_date_result(plan, self.store, keys)):
            return current
        result = RenderResult(shot=shot.label, outputs=[shot.locate(p) for p in
                                                        shot.output_paths()], keys=keys)
        self.cache = TensorCache(self.store, read=not self.force, memo=self.memo,
                                 wait=self._wait, lease=lease)
        # Reads what this render made too, --force or not.
        self.reader = TensorCache(self.store, memo=self.cache.memo, wait=self._wait,
                                  lease=lease)
        pending = {node.key for node in plan.frames
                   if not self.cache.has(FRAME_KIND, node.key)}
        if pending:
            self.pool.check()  # fail fast, the transformer first, before anything loads
        self.observer.shot_started(plan, len(pending))
        loaded_before = self.pool.loaded
        preview = self._preview() if pending else None
        batch: list[tuple[int, np.ndarray]] = []  # sampled frames not in the preview yet
        try:
            for node in plan.frames:
                self.cancel.check()
                if node.key not in pending:
                    result.windows_cached += 1
                    self.observer.window_done(node, True, 0.0)
                    continue
                began = time.perf_counter()
                tensors, cached = self.cache.obtain(FRAME_KIND, node.key,
                                                    lambda node=node: self._make(node))
                self.last = (node.key, tensors)
                if cached:  # another process made it meanwhile
                    result.windows_cached += 1
                else:
                    result.windows_rendered += 1
                self.observer.window_done(node, cached, time.perf_counter() - began)
                if not cached:
                    frame = tensors["frame"].numpy()
                    self.observer.window_frames(node, frame)
                    batch.append((node.index, frame))
                    if preview is not None and len(batch) == PREVIEW_EVERY:
                        batch = _show(preview, batch)
            if preview is not None and batch:
                _show(preview, batch)
            result.seconds["sampling"] = time.perf_counter() - started
            self.observer.phase("encode")
            self._write_outputs(result)
        finally:
            if preview is not None:
                preview.close()
            result.components_loaded = sorted(self.pool.loaded - loaded_before)
        result.transformer_calls = self.calls
        result.corrupt_entries = len(self.cache.corrupt) + len(self.reader.corrupt)
        result.seconds["decode_and_encode"] = (time.perf_counter() - started
                                               - result.seconds["sampling"])
        result.seconds["total"] = time.perf_counter() - started
        return result

    def _preview(self) -> Preview | None:
        shot = self.shot
        if not self.preview_on or not shot.outputs or shot.destination is not None:
            return None
        return Preview(preview_path(shot.outputs[0].path), *shot.size, shot.fps)

    def _wait(self, kind: str, key: str) -> None:
        self.cancel.check()
        self.observer.waiting(kind, key)

    # ------------------------------------------------------------ entries

    def frame(self, key: str) -> Tensors:
        """A frame's entry; one missing or found corrupt is made again."""
        if self.last is not None and self.last[0] == key:
            return self.last[1]
        tensors = self.reader.load(FRAME_KIND, key)
        if tensors is None:
            node = next(n for n in self.plan.frames if n.key == key)
            tensors, _ = self.cache.obtain(FRAME_KIND, key, lambda: self._make(node))
        self.last = (key, tensors)
        return tensors

    def text(self, prompt: str) -> TextEmbeds:
        key = self.prompt_keys[prompt]
        tensors, _ = self.cache.obtain("prompt", key, lambda: encode_prompt(
            self.pool, prompt, self.pool.max_sequence_length).tensors())
        return TextEmbeds(tensors["hidden"].to(self.pool.device),
                          tensors["pooled"].to(self.pool.device))

    def reference(self, node: FrameNode) -> np.ndarray | None:
        """The pixels ``node`` is colour-matched to, if it is."""
        mode = self.shot.color_coherence.mode
        if mode == "none" or node.index == 0:
            return None
        if mode == "match_frame":
            return self.frame(node.after)["frame"].numpy()[0]
        if self.first is None:
            self.first = self.frame(self.plan.frames[0].key)["frame"].numpy()[0].copy()
        return self.first

    # ------------------------------------------------------------ one frame

    def _make(self, node: FrameNode) -> Tensors:
        """Deforum's step: warp the previous latent, noise it to the strength's sigma, denoise
        with FLUX, decode, match colours (the matched frame is what the next one warps)."""
        shot, pool = self.shot, self.pool
        width, height = shot.size
        shape = (1, 16, height // 8, width // 8)
        self.observer.window_started(node, node.steps)
        text = self.text(node.prompt)
        negative = self.text(node.negative) if shot.cfg > 1.0 else None
        reference = self.reference(node)
        scheduler = pool.scheduler()
        timesteps = img2img_timesteps(scheduler, shot.steps, node.strength, width, height,
                                      pool.device)
        dtype = text.hidden.dtype
        if node.index == 0 and shot.image is not None:
            # The pipeline's draws: the posterior sample, then the noise, from one generator.
            from diffusers.utils.torch_utils import randn_tensor

            assert shot.image.info is not None
            generator = torch.Generator("cpu").manual_seed(node.noise.seeds[0])
            pixels = from_uint8(load_frame(shot.image.info.path, width, height))
            init = encode_image(pool.vae, pixels, generator, dtype)
            noise = randn_tensor(shape, generator=generator, device=pool.device, dtype=dtype)
        else:
            if node.index == 0:  # text to image: strength 1 starts from noise alone
                init = torch.zeros(shape, device=pool.device, dtype=dtype)
            else:
                previous = self.frame(node.after)["latents"].to(pool.device)
                init = warp(previous, node.motion, width, height).to(dtype)
            noise = self.noise(node).to(pool.device, dtype)
        noisy = add_noise(scheduler, init, timesteps[:1], noise, node.noise_scale)

        def on_step(index: int) -> None:
            self.calls += 2 if negative is not None else 1
            self.cancel.check()
            self.observer.step(node, index)

        latents = denoise(pool.transformer, scheduler, noisy, timesteps, text, negative,
                          node.guidance, shot.cfg, on_step)
        frame = to_uint8(decode_latents(pool.vae, latents))
        if reference is not None:
            frame = match_colors(frame, reference, shot.color_coherence.space)
            latents = encode_image(pool.vae, from_uint8(frame), None, dtype)
        return {"latents": latents.float().cpu().contiguous(),
                "frame": torch.from_numpy(np.ascontiguousarray(frame[None]))}

    # ------------------------------------------------------------ outputs

    def _write_outputs(self, result: RenderResult) -> None:
        plan, keys = self.plan, self.plan.output_keys
        with self.cache.locked("output", outputs_key(plan)):
            if not self.force and up_to_date(plan, keys):
                result.outputs_up_to_date = len(self.shot.outputs)
                return
            FluxOutputWriter(plan, keys).write(self._segments(), self._pixels, self._latents)
            result.outputs_written = len(self.shot.outputs)

    def _segments(self):
        for key in self.plan.output_keys:
            self.cancel.check()
            yield key, self._pixels(key)

    def _pixels(self, key: str) -> np.ndarray:
        return self.frame(key)["frame"].numpy()

    def _latents(self) -> torch.Tensor:
        return torch.cat([self.frame(key)["latents"] for key in self.plan.output_keys])


def _show(preview: Preview, batch: list[tuple[int, np.ndarray]]) -> list:
    """Add sampled frames to the preview video, rewritten once per batch (not per frame:
    it is encoded whole each time). Returns the empty batch."""
    preview.add(batch[0][0], np.concatenate([frame for _, frame in batch]))
    return []
