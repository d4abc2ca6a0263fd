"""Latent index layouts: where each latent sits on the RoPE time axis.

Pure functions over the facts of FramePack's samplers, shared by the planner (to show and
hash them) and the render layer (to build the tensors).
"""

from __future__ import annotations

from dataclasses import dataclass

HISTORY_2X = 2
HISTORY_4X = 16


@dataclass(frozen=True)
class IndexLayout:
    """Indices of the noisy latents and of each clean context; None drops that context."""

    latents: tuple[int, ...]
    clean: tuple[int, ...]
    history_2x: tuple[int, ...] | None
    history_4x: tuple[int, ...] | None

    def as_dict(self) -> dict[str, list[int] | None]:
        return {name: None if value is None else list(value)
                for name, value in (("latents", self.latents), ("clean", self.clean),
                                    ("history_2x", self.history_2x),
                                    ("history_4x", self.history_4x))}


def latent_paddings(count: int) -> list[int]:
    """FramePack's padding per window, in generation order (the last entry, 0, is generated last).

    Up to 4 windows: count-1, ..., 1, 0. Beyond: 3, 2, ..., 2, 1, 0 (repeating 2 looks better
    than the full range, as FramePack notes).
    """
    if count <= 4:
        return list(range(count - 1, -1, -1))
    return [3] + [2] * (count - 3) + [1, 0]


def inverted_layout(window: int, padding: int) -> IndexLayout:
    """[prefix 1 | blank padding*window | window | post 1 | 2x 2 | 4x 16]."""
    blank = padding * window
    start = 1 + blank
    post = start + window
    return IndexLayout(
        latents=tuple(range(start, post)),
        clean=(0, post),
        history_2x=tuple(range(post + 1, post + 1 + HISTORY_2X)),
        history_4x=tuple(range(post + 1 + HISTORY_2X, post + 1 + HISTORY_2X + HISTORY_4X)),
    )


def forward_layout(window: int) -> IndexLayout:
    """FramePack-F1: [prefix 1 | 4x 16 | 2x 2 | 1x 1 | window], the same for every window."""
    x4 = tuple(range(1, 1 + HISTORY_4X))
    x2 = tuple(range(1 + HISTORY_4X, 1 + HISTORY_4X + HISTORY_2X))
    x1 = 1 + HISTORY_4X + HISTORY_2X
    return IndexLayout(latents=tuple(range(x1 + 1, x1 + 1 + window)), clean=(0, x1),
                       history_2x=x2, history_4x=x4)


def one_frame_layout(window: int, target_index: int, control_indices: list[int], *,
                     no_post: bool, no_2x: bool, no_4x: bool) -> IndexLayout:
    """One-frame inference: one target latent; controls, then a zero post latent at 1+window,
    zero 2x history at window+2.., zero 4x history after it; each flag drops its part."""
    post = 1 + window
    clean = tuple(control_indices) + (() if no_post else (post,))
    x2 = tuple(range(post + 1, post + 1 + HISTORY_2X))
    x4 = tuple(range(post + 1 + HISTORY_2X, post + 1 + HISTORY_2X + HISTORY_4X))
    return IndexLayout(latents=(target_index,), clean=clean,
                       history_2x=None if no_2x else x2, history_4x=None if no_4x else x4)
