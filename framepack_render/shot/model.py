"""The typed shot: what the spec layer hands to the planner once every check has passed.

Every setting is resolved (top-level defaults applied to sections and edits) and every path is
absolute, so the planner never needs the YAML again. Marks are kept for messages.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from .errors import Mark
from .schedules import Schedule

VIDEO_FORMATS = {".mp4": "mp4", ".webm": "webm", ".gif": "gif", ".mov": "mov",
                 ".safetensors": "safetensors"}
IMAGE_FORMATS = {".png", ".jpg", ".jpeg", ".webp"}


@dataclass(frozen=True)
class ImageInfo:
    """A decoded-and-checked image file. ``sha256`` is of its bytes: touching it changes nothing."""

    path: Path
    sha256: str
    width: int
    height: int
    mode: str

    @property
    def has_alpha(self) -> bool:
        return self.mode in ("RGBA", "LA", "PA") or self.mode.endswith("A")


@dataclass(frozen=True)
class InputVideo:
    """A video a shot extends (``input_video``), probed at validate time. ``sha256`` is of its
    bytes (a frames folder: of its PNG files), so only a change of content re-keys windows."""

    path: Path
    sha256: str
    width: int
    height: int
    fps: float
    frames: int
    extend: str  # forward: new frames follow the video; backward: they precede it
    keep: bool  # the output holds the video's frames too
    mark: Mark
    text: str  # as written

    @property
    def name(self) -> str:
        return self.path.name


@dataclass(frozen=True)
class ImageRef:
    """An image field: a checked file, the result of the edit named ``edit``, or (``video``)
    the last frame of the video a forward extension continues."""

    mark: Mark
    info: ImageInfo | None = None
    edit: str | None = None
    text: str = ""  # as written, for tables and messages
    video: InputVideo | None = None

    def __str__(self) -> str:
        return f"{{edit: {self.edit}}}" if self.edit else self.text


@dataclass(frozen=True)
class FlowShift:
    """A flow-shift request; the planner turns it into (mu, sigma) per window."""

    preset: str = "balanced"
    detail: str = "standard"
    mu: float | None = None  # None: derived from the window's token count
    sigma: float | None = None  # None: the preset's
    shift: float | None = None  # a fixed shift: mu = ln(shift)

    def describe(self) -> str:
        if self.shift is not None:
            return f"shift {self.shift:g}"
        text = self.preset if self.detail == "standard" else f"{self.preset}/{self.detail}"
        return text if self.mu is None else f"{text} mu={self.mu:g}"


@dataclass(frozen=True)
class Sampling:
    """Settings shared by sections and edits; each is resolved against the shot's defaults."""

    seed: int
    steps: int
    guidance: float
    cfg: float
    negative_prompt: str
    flow_shift: FlowShift
    teacache: float | None  # threshold, or None when off
    # Settings written as schedules ("guidance", "flow_shift.mu", ...): the fields above then
    # hold their value at the first window (edits: at frame 0); each window has its own.
    schedules: tuple[tuple[str, Schedule], ...] = ()


@dataclass(frozen=True)
class Section:
    index: int
    mark: Mark
    name: str | None
    prompt: str
    frames: float  # requested video frames (before rounding to windows)
    exact: bool  # the video is trimmed to the frames asked for (a length in frames, or exact:)
    duration_text: str
    duration_mark: Mark
    image: ImageRef | None  # keyframe
    blend_frames: float  # 0: no blend
    blend_mark: Mark | None
    sampling: Sampling

    @property
    def label(self) -> str:
        return self.name or f"section {self.index + 1}"


@dataclass(frozen=True)
class Control:
    image: ImageRef
    mask: ImageRef | None
    index: int


@dataclass(frozen=True)
class Edit:
    name: str
    mark: Mark
    image: ImageRef
    prompt: str
    controls: tuple[Control, ...]
    target_index: int
    no_2x: bool
    no_4x: bool
    no_post: bool
    output: Path | None
    sampling: Sampling

    def images(self) -> list[ImageRef]:
        """The edit's image, its control images and their masks."""
        return [self.image, *(c.image for c in self.controls),
                *(c.mask for c in self.controls if c.mask is not None)]


@dataclass(frozen=True)
class Lora:
    path: Path
    sha256: str
    scale: float
    mark: Mark


@dataclass(frozen=True)
class RopeScalingSpec:
    factor: float  # spatial RoPE positions times this ...
    timestep_threshold: float  # ... at timesteps (0-1000) at or above this


@dataclass(frozen=True)
class ModelSettings:
    """How the model runs. ``dtype`` None: the profile's own (bfloat16; float32 for tiny)."""

    dtype: str | None = None
    attention: str = "sdpa"
    offload: str = "none"  # none | model | blocks
    vram_gb: float | None = None  # the resident budget of offload: blocks
    rope_scaling: RopeScalingSpec | None = None
    vae_tiling: bool = False
    loras: tuple[Lora, ...] = ()


@dataclass(frozen=True)
class ModelSpec:
    profile: str
    mark: Mark
    paths: dict[str, str] = field(default_factory=dict)  # component -> absolute path
    settings: ModelSettings = ModelSettings()


@dataclass(frozen=True)
class Output:
    path: Path
    format: str  # mp4 | webm | gif | mov | safetensors | frames
    mark: Mark


@dataclass(frozen=True)
class Destination:
    """Outputs under an fsspec URL (``--output-root s3://...``): each is written under
    ``staging`` on this machine, then uploaded whole (see ``output.remote``)."""
    url: str
    shown: str  # the URL without credentials, for messages
    staging: Path
    storage_options: dict[str, object] = field(default_factory=dict)

    def url_of(self, path: Path, *, shown: bool = False) -> str:
        relative = Path(path).relative_to(self.staging).as_posix()
        return f"{(self.shown if shown else self.url).rstrip('/')}/{relative}"


@dataclass(frozen=True)
class Post:
    color_match: str = "none"
    loop: str = "none"
    interpolate: int = 1
    crf: int = 16


@dataclass(frozen=True)
class Experimental:
    context_blur: tuple[float, float] | None = None  # (sigma, alpha)
    context_decay: float = 0.0
    cfg_schedule_beta: float | None = None
    transition_mu_boost: float = 0.0


@dataclass(frozen=True)
class Shot:
    engine: ClassVar[str] = "framepack"  # other engines' shots are their own types

    source: Path  # the shot (or CSV) file
    label: str  # "shot.yaml", or "shot.yaml [seed=1]" for a matrix expansion
    vars: dict[str, object]
    model: ModelSpec
    outputs: tuple[Output, ...]
    size: tuple[int, int]  # width, height
    fps: float
    window: int
    sampling: str  # inverted | forward | endpoints-first
    sampler: str  # unipc | euler
    noise: str  # per-window | sequential
    seed: int  # the shot's own seed (sequential noise draws from it)
    image: ImageRef
    end_image: ImageRef | None
    end_image_strength: float
    sections: tuple[Section, ...]
    edits: tuple[Edit, ...]  # only the edits that are used or written
    post: Post
    experimental: Experimental
    row: Mark | None = None  # the CSV row this shot came from
    files: tuple[Path, ...] = ()  # the shot (or CSV) file and every template it extends
    destination: Destination | None = None  # outputs go to a URL, not beside the shot
    input_video: InputVideo | None = None  # the video this shot extends
    # end_image_strength and experimental.* written as schedules, evaluated per window
    schedules: tuple[tuple[str, Schedule], ...] = ()

    @property
    def unit_frames(self) -> int:
        """Video frames each unit of generation (a window) adds."""
        return 4 * self.window

    def locate(self, path: Path) -> str:
        """Where an output really goes, for people and programs: its path, or its URL."""
        return str(path) if self.destination is None else \
            self.destination.url_of(path, shown=True)

    def output_paths(self) -> list[Path]:
        """Every file a render writes: the outputs, then the edits' images."""
        return [o.path for o in self.outputs] + [e.output for e in self.edits
                                                  if e.output is not None]

    def images(self) -> list[ImageRef]:
        """Every image field that names a file (edit results excluded)."""
        refs = [self.image, self.end_image, *(s.image for s in self.sections)]
        refs += [ref for edit in self.edits for ref in edit.images()]
        return [r for r in refs if r is not None and r.info is not None]

    def dependencies(self) -> set[Path]:
        """The files whose change can change this shot's render (what `watch` watches)."""
        return {*self.files, *(ref.info.path.resolve() for ref in self.images()
                               if ref.info is not None),
                *(lora.path for lora in self.model.settings.loras),
                *([self.input_video.path] if self.input_video is not None else [])}
