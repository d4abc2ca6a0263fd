"""A flux-deforum shot as a chain of frames, each with a content-addressed key. No torch.

Frame k is img2img of frame k-1 warped by the motion at k, so its key hashes every input that
shapes it (prompt, strength, guidance, noise, motion, colour coherence, the model and size)
plus frame k-1's key. Editing the prompt keyframe at frame 40 re-keys frames 40 onwards and
nothing before them; an unchanged shot keeps every key. Frame 0 hashes the init image's bytes
(or nothing: text to image).

The plan answers what the shared render path asks of any engine's plan: its units of
generation (``windows``, frames here, with ``index``, ``order``, ``key`` and ``cached``), the
keys its outputs are made from, the entries a render reads (what `cache gc` keeps), and the
frame counts the output writer and sidecars use.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ...plan.entries import prompt_key
from ...plan.keys import content_key, image_identity, model_identity, snap
from ...plan.tasks import Task, outputs_key
from ...plan.timeline import Trim
from ...shot.errors import Diagnostic
from .shot import PROFILE_DEFAULTS, FluxShot, denoising_steps

FRAME_KIND = "flux-frame"  # the cache kind of one frame: its latent and its pixels
SEED_SPACE = 2**64  # torch generators take unsigned 64-bit seeds


@dataclass(frozen=True)
class Motion:
    """Deforum's 2D camera at one frame: zoom (> 1 zooms in), angle in degrees
    (counter-clockwise), translation in image pixels (x right, y down)."""

    zoom: float = 1.0
    angle: float = 0.0
    x: float = 0.0
    y: float = 0.0

    @property
    def still(self) -> bool:
        return self.zoom == 1.0 and self.angle == 0.0 and self.x == 0.0 and self.y == 0.0

    def as_list(self) -> list[float]:
        return [snap(self.zoom), snap(self.angle), snap(self.x), snap(self.y)]


@dataclass(frozen=True)
class Noise:
    """Where a frame's noise comes from: ``seeds`` and the slerp ``weight`` between the first
    two (subseed), or a random walk from ``seeds[0]`` (slerp: the plan's deltas up to it)."""

    mode: str
    seeds: tuple[int, ...]
    weight: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "seeds": list(self.seeds), "weight": snap(self.weight)}


@dataclass
class FrameNode:
    index: int
    prompt: str
    negative: str  # used only when cfg > 1
    strength: float  # 1.0 for text to image
    guidance: float
    noise_scale: float
    noise: Noise
    motion: Motion  # identity at frame 0
    steps: int  # denoising steps run (after strength)
    sigma: float  # the noise level img2img starts from
    after: str | None  # the previous frame's key
    key: str = ""
    inputs: dict[str, Any] = field(default_factory=dict)
    cached: bool = False

    @property
    def order(self) -> int:
        """Frames are generated in time order."""
        return self.index


@dataclass
class FluxPlan:
    engine: ClassVar[str] = "flux-deforum"
    unit: ClassVar[str] = "frame"  # what `windows` holds, for people
    unit_kind: ClassVar[str] = FRAME_KIND

    shot: FluxShot
    frames: list[FrameNode]
    notes: list[Diagnostic]
    edits: list = field(default_factory=list)  # FramePack's one-frame edits: none here
    trim: Trim = Trim()

    @property
    def windows(self) -> list[FrameNode]:
        """The units of generation, as every engine's plan names them: frames here."""
        return self.frames

    @property
    def generation_order(self) -> list[FrameNode]:
        return self.frames

    @property
    def new_frames(self) -> int:
        return len(self.frames)

    rendered_frames = total_frames = new_frames
    kept_frames: ClassVar[int] = 0  # no input video is kept
    new_offset: ClassVar[int] = 0

    @property
    def seconds(self) -> float:
        return self.total_frames / self.shot.fps

    def frame_span(self, node: FrameNode) -> tuple[int, int]:
        """The video frames [first, last) a unit contributes: its own frame."""
        return node.index, node.index + 1

    @property
    def output_keys(self) -> list[str]:
        """What the outputs are made from, in time order: one entry per frame."""
        return [node.key for node in self.frames]

    @property
    def edit_keys(self) -> dict[str, str]:
        return {}

    def keys(self) -> dict[str, str]:
        return {f"frame {node.index}": node.key for node in self.frames}

    def prompt_keys(self) -> dict[str, str]:
        """Each prompt the frames are conditioned on, once, with its cache key."""
        model = model_identity(self.shot.model)
        texts = dict.fromkeys(text for node in self.frames for text in self.texts(node))
        return {text: prompt_key(model, text) for text in texts}

    def texts(self, node: FrameNode) -> list[str]:
        """The prompts a frame is conditioned on: its own, and its negative under true CFG."""
        return [node.prompt, node.negative] if self.shot.cfg > 1.0 else [node.prompt]

    def referenced(self) -> set[tuple[str, str]]:
        """Every (kind, key) a render of this plan reads: what `cache gc` keeps."""
        found = {(FRAME_KIND, node.key) for node in self.frames}
        return found | {("prompt", key) for key in self.prompt_keys().values()}

    def tasks(self) -> list[Task]:
        """The render as a graph: prompt encodings, then each frame (reading its prompts, the
        frame before it and, for match_first, frame 0), then the outputs."""
        prompts = self.prompt_keys()
        found = [Task("prompt", key, (), f"prompt {text[:40]!r}", text)
                 for text, key in prompts.items()]
        first = self.frames[0].key if self.frames else None
        for node in self.frames:
            reads = [("prompt", prompts[text]) for text in dict.fromkeys(self.texts(node))]
            if node.after is not None:
                reads.append((FRAME_KIND, node.after))
            if self.shot.color_coherence.mode == "match_first" and node.index > 1:
                reads.append((FRAME_KIND, first))
            found.append(Task(FRAME_KIND, node.key, tuple(reads), f"frame {node.index}", node))
        found.append(Task("output", outputs_key(self),  # type: ignore[arg-type]
                          tuple((FRAME_KIND, node.key) for node in self.frames), "outputs"))
        return found

    def mark_cached(self, store: Any) -> None:
        for node in self.frames:
            node.cached = store.has(FRAME_KIND, node.key)


def build_plan(shot: FluxShot) -> FluxPlan:
    model = model_identity(shot.model)
    embeds = PROFILE_DEFAULTS[shot.model.profile].guidance_embeds
    frames: list[FrameNode] = []
    previous: str | None = None
    for index in range(shot.frames):
        keyframe = shot.prompt_at(index)
        first = index == 0
        strength = 1.0 if first and shot.image is None else shot.strength[index]
        motion = Motion() if first else Motion(shot.zoom[index], shot.angle[index],
                                               shot.translation_x[index],
                                               shot.translation_y[index])
        steps = denoising_steps(shot.steps, strength)
        node = FrameNode(
            index=index, prompt=keyframe.prompt, negative=keyframe.negative, strength=strength,
            guidance=shot.guidance[index], noise_scale=shot.noise_scale[index],
            noise=noise_of(shot, index), motion=motion, steps=steps,
            sigma=start_sigma(shot, steps), after=previous)
        node.inputs = {
            "model": model,
            "size": list(shot.size),
            "steps": shot.steps,
            "strength": snap(strength),
            "guidance": snap(node.guidance) if embeds else None,
            "cfg": snap(shot.cfg),
            "prompt": node.prompt,
            "negative": node.negative if shot.cfg > 1.0 else None,
            "noise": node.noise.as_dict(),
            "noise_scale": snap(node.noise_scale),
            "motion": None if first else motion.as_list(),
            "image": image_identity(shot.image, {}) if first and shot.image else None,
            "color_coherence": None if first or shot.color_coherence.mode == "none" else
            [shot.color_coherence.mode, shot.color_coherence.space],
            "after": previous,
        }
        node.key = previous = content_key(FRAME_KIND, node.inputs)
        frames.append(node)
    return FluxPlan(shot, frames, [])


def noise_of(shot: FluxShot, index: int) -> Noise:
    """Deforum's noise modes: the same seed every frame (fixed), seed + frame (incremental),
    a slerp from seed to seed + 1 across the shot (subseed), or a random walk that slerps
    towards seed + frame by noise_delta at each frame (slerp)."""
    seed, mode = shot.seed, shot.noise_mode
    if mode == "incremental":
        return Noise(mode, ((seed + index) % SEED_SPACE,))
    if mode == "subseed":
        weight = index / (shot.frames - 1) if shot.frames > 1 else 0.0
        return Noise(mode, (seed, (seed + 1) % SEED_SPACE), weight)
    if mode == "slerp":
        return Noise(mode, (seed,), snap(shot.noise_delta[index]) if index else 0.0)
    return Noise("fixed", (seed,))


def start_sigma(shot: FluxShot, steps_run: int) -> float:
    """The noise level img2img starts from (1.0 = pure noise), as diffusers schedules it:
    sigmas linspace(1, 1/n, n), shifted by mu (dynamic shifting) where the model uses it."""
    steps = shot.steps
    sigma = 1.0 - (steps - steps_run) * (1.0 - 1.0 / steps) / max(steps - 1, 1)
    if not PROFILE_DEFAULTS[shot.model.profile].guidance_embeds:  # schnell: shift 1
        return sigma
    mu = dynamic_mu(shot.size)
    return math.exp(mu) / (math.exp(mu) + (1.0 / sigma - 1.0))


def dynamic_mu(size: tuple[int, int]) -> float:
    """FLUX's mu: linear in the packed token count, 0.5 at 256 tokens to 1.15 at 4096."""
    tokens = (size[0] // 16) * (size[1] // 16)
    slope = (1.15 - 0.5) / (4096 - 256)
    return tokens * slope + (0.5 - slope * 256)
