"""The FramePack transformer's forward pass, over diffusers' own modules.

``transformer(...)`` cannot do four things a render needs, so this module runs the same steps
itself:
- leave out the 2x or 4x context (one-frame ``no_2x`` / ``no_4x``; diffusers' forward raises
  UnboundLocalError when either is None);
- embed a window's clean context once, not at every call (it is the same at every step);
- skip the transformer blocks on TeaCache's cached calls;
- scale RoPE's spatial positions at high timesteps (higher resolutions).
With none of them in use it computes exactly what diffusers' forward computes; a test holds it to
equality. Batch size is 1: true CFG runs the negative prompt as a second call.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from ...plan.layout import IndexLayout

# FramePack's TeaCache rescale polynomial, highest power first.
TEACACHE_COEFFICIENTS = (7.33226126e+02, -4.01131952e+02, 6.75869174e+01, -3.14987800e+00,
                         9.61237896e-02)


@dataclass(frozen=True)
class RopeScaling:
    """Spatial RoPE positions times ``factor`` at timesteps (0-1000) >= ``threshold``."""

    factor: float
    threshold: float

    def at(self, timestep: float) -> float:
        return self.factor if timestep >= self.threshold else 1.0


@dataclass
class TeaCache:
    """FramePack's TeaCache for one stream of calls (one window, one prompt).

    The first and last calls always compute. Between them, the relative L1 change of the first
    block's modulated input, through the rescale polynomial, accumulates; a call computes when
    the sum reaches ``threshold`` (and resets it), otherwise it reuses the last computed
    residual of the blocks. Positive and negative prompts keep separate streams, so the
    schedule holds with true CFG too.
    """

    threshold: float
    calls: int  # the stream's length: the sampler's steps
    count: int = 0
    accumulated: float = 0.0
    previous: torch.Tensor | None = None
    residual: torch.Tensor | None = None
    skipped: int = 0

    def compute(self, modulated: torch.Tensor) -> bool:
        if self.count == 0 or self.count == self.calls - 1 or self.residual is None:
            should = True
            self.accumulated = 0.0
        else:
            previous = self.previous
            assert previous is not None
            change = ((modulated - previous).abs().mean() / previous.abs().mean()).item()
            self.accumulated += float(np.polyval(TEACACHE_COEFFICIENTS, change))
            should = self.accumulated >= self.threshold
            if should:
                self.accumulated = 0.0
        self.previous = modulated
        self.count += 1
        self.skipped += not should
        return should


@dataclass
class Contexts:
    """The clean latents a call attends to, each (1, 16, n, h, w); None leaves that one out."""

    clean: torch.Tensor | None
    history_2x: torch.Tensor | None
    history_4x: torch.Tensor | None


@dataclass
class _Embedded:
    """A context part: its tokens and its RoPE index tensor and pooling kernel."""

    tokens: torch.Tensor
    indices: torch.Tensor
    kernel: tuple[int, int, int] | None  # None: full resolution


@dataclass
class WindowForward:
    """``forward(x, timestep, text, guidance)`` for one window: the clean context is embedded
    once, RoPE tables are built once per scaling factor."""

    transformer: torch.nn.Module
    layout: IndexLayout
    contexts: Contexts
    image_embeds: torch.Tensor  # SigLIP, (1, N, D)
    rope_scaling: RopeScaling | None = None
    _parts: list[_Embedded] = field(default_factory=list)
    _rope: dict[tuple[float, int, int], tuple[torch.Tensor, torch.Tensor]] = \
        field(default_factory=dict)

    def __post_init__(self) -> None:
        model = self.transformer
        device, dtype = model.device, model.dtype
        embedder = model.clean_x_embedder
        with torch.no_grad():
            parts = ((self.contexts.clean, self.layout.clean, embedder.proj, None),
                     (self.contexts.history_2x, self.layout.history_2x, embedder.proj_2x,
                      (2, 4, 4)),
                     (self.contexts.history_4x, self.layout.history_4x, embedder.proj_4x,
                      (4, 8, 8)))
            for latents, indices, proj, kernel in parts:
                if latents is None or indices is None:
                    continue
                x = latents.to(device, dtype)
                if kernel is not None:
                    x = _pad_replicate(x, kernel)
                tokens = proj(x).flatten(2).transpose(1, 2)
                self._parts.append(_Embedded(
                    tokens, torch.tensor(indices, dtype=torch.long, device=device),
                    None if kernel is None else (kernel[0], kernel[1] // 2, kernel[2] // 2)))
            self._image = model.image_projection(self.image_embeds.to(device, dtype))

    @torch.no_grad()
    def __call__(self, x: torch.Tensor, timestep: torch.Tensor, hidden: torch.Tensor,
                 mask: torch.Tensor, pooled: torch.Tensor, guidance: float,
                 teacache: TeaCache | None = None) -> torch.Tensor:
        model = self.transformer
        device, dtype = model.device, model.dtype
        p, p_t = model.config.patch_size, model.config.patch_size_t
        x = x.to(device, dtype)
        _, _, frames, height, width = x.shape
        post_frames, post_height, post_width = frames // p_t, height // p, width // p
        own_tokens = post_frames * post_height * post_width
        timestep = timestep.to(device)
        factor = self.rope_scaling.at(float(timestep.flatten()[0])) \
            if self.rope_scaling is not None else 1.0

        hidden_states = model.x_embedder(x)
        cos, sin = self._rope_table(factor, post_height, post_width)
        # Contexts go in front, the coarsest first: [4x, 2x, clean, noisy].
        tokens = [part.tokens for part in reversed(self._parts)] + [hidden_states]
        hidden_states = torch.cat(tokens, dim=1)

        guidance_tensor = torch.tensor([guidance * 1000.0], dtype=dtype, device=device)
        temb, _ = model.time_text_embed(timestep, pooled.to(device, dtype), guidance_tensor)
        mask = mask.to(device, dtype)
        text = model.context_embedder(hidden.to(device, dtype), timestep, mask)
        text = torch.cat([self._image, text], dim=1)
        text_mask = torch.cat([mask.new_ones((1, self._image.shape[1])), mask], dim=1)
        text = text[:, : int(text_mask.sum(dim=1, dtype=torch.int)[0])]  # batch 1: no mask

        rotary = (cos, sin)
        compute = True
        if teacache is not None:
            modulated = model.transformer_blocks[0].norm1(hidden_states, emb=temb)[0]
            compute = teacache.compute(modulated)
        if compute:
            before = hidden_states
            for block in model.transformer_blocks:
                hidden_states, text = block(hidden_states, text, temb, None, rotary)
            for block in model.single_transformer_blocks:
                hidden_states, text = block(hidden_states, text, temb, None, rotary)
            if teacache is not None:
                teacache.residual = hidden_states - before
        else:
            assert teacache is not None and teacache.residual is not None
            hidden_states = hidden_states + teacache.residual

        hidden_states = hidden_states[:, -own_tokens:]
        hidden_states = model.proj_out(model.norm_out(hidden_states, temb))
        hidden_states = hidden_states.reshape(1, post_frames, post_height, post_width, -1,
                                              p_t, p, p)
        hidden_states = hidden_states.permute(0, 4, 1, 5, 2, 6, 3, 7)
        return hidden_states.flatten(6, 7).flatten(4, 5).flatten(2, 3)

    def _rope_table(self, factor: float, height: int, width: int
                    ) -> tuple[torch.Tensor, torch.Tensor]:
        key = (factor, height, width)
        if key not in self._rope:
            device = self.transformer.device
            own = torch.tensor(self.layout.latents, dtype=torch.long, device=device)
            tables = [_rope(self.transformer.rope, own, height, width, factor, device)]
            for part in self._parts:  # in front of the noisy tokens, coarsest first
                table = _rope(self.transformer.rope, part.indices, height, width, factor, device)
                if part.kernel is not None:
                    table = tuple(_pool_rope(t, height, width, part.kernel) for t in table)
                tables.insert(0, table)
            self._rope[key] = (torch.cat([t[0] for t in tables]), torch.cat([t[1] for t in tables]))
        return self._rope[key]


def _rope(rope: torch.nn.Module, indices: torch.Tensor, height: int, width: int, factor: float,
          device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """diffusers' FramePack RoPE table over (time, y, x), with y and x positions times
    ``factor``. ``height`` and ``width`` are in patches."""
    from diffusers.models.embeddings import get_1d_rotary_pos_embed

    ys = torch.arange(0, height, device=device, dtype=torch.float32)
    xs = torch.arange(0, width, device=device, dtype=torch.float32)
    if factor != 1.0:
        ys, xs = ys * factor, xs * factor
    grid = torch.stack(torch.meshgrid(indices.to(device=device, dtype=torch.float32), ys, xs,
                                      indexing="ij"))
    freqs = [get_1d_rotary_pos_embed(rope.rope_dim[i], grid[i].reshape(-1), rope.theta,
                                     use_real=True) for i in range(3)]
    return torch.cat([f[0] for f in freqs], dim=1), torch.cat([f[1] for f in freqs], dim=1)


def _pool_rope(table: torch.Tensor, height: int, width: int, kernel: tuple[int, int, int]
               ) -> torch.Tensor:
    """A RoPE table averaged down to a coarser context's tokens (as diffusers pools it)."""
    grid = table.unsqueeze(0).permute(0, 2, 1).unflatten(2, (-1, height, width))
    pooled = F.avg_pool3d(_pad_replicate(grid, kernel), kernel, stride=kernel)
    return pooled.flatten(2).permute(0, 2, 1).squeeze(0)


def _pad_replicate(x: torch.Tensor, kernel: tuple[int, int, int]) -> torch.Tensor:
    """Pad (t, h, w) up to multiples of ``kernel`` by repeating the last entries."""
    pads = [(k - (n % k)) % k for n, k in zip(x.shape[2:], kernel)]
    return F.pad(x, (0, pads[2], 0, pads[1], 0, pads[0]), mode="replicate")
