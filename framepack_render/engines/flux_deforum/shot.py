"""A flux-deforum shot: its keys checked against each other and the disk, and typed.

The schema (``$defs/fluxShot``) has vouched for every key and type; here schedules are parsed and
evaluated at every frame (each value checked against its range), prompt keyframes are placed
on frames, the size is settled and the image, outputs and post-processing are checked with the
same code FramePack shots use. No torch.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar

from ...profiles import PROFILES
from ...shot.errors import Mark, Report, ShotError, display_path
from ...shot.files import resolve
from ...shot.model import Destination, ImageRef, ModelSpec, Output, Post
from ...shot.schema import check_schema
from ...shot.semantic import _Checker, _frames_of, _round16
from ...shot.setting_schedules import read_schedule
from ...shot.templates import Expansion
from ...shot.yaml_loader import Node

ENGINE = "flux-deforum"
NOISE_MODES = ("fixed", "incremental", "subseed", "slerp")
COHERENCE_MODES = ("none", "match_first", "match_frame")
COLOR_SPACES = ("lab", "hsv", "rgb")
NATIVE_SIZE = (1024, 1024)  # FLUX's own default, for a shot without an image
NEGATIVE_MARKER = "--neg"  # Deforum's: "a prompt --neg what to avoid"


@dataclass(frozen=True)
class ProfileDefaults:
    steps: int
    guidance: float
    guidance_embeds: bool  # schnell has no guidance input: its guidance does nothing


PROFILE_DEFAULTS: dict[str, ProfileDefaults] = {
    "flux-schnell": ProfileDefaults(4, 0.0, False),
    "flux-dev": ProfileDefaults(28, 3.5, True),
    "tiny-flux": ProfileDefaults(4, 3.5, True),
}

DEFAULTS: dict[str, Any] = {
    "model": "flux-schnell",
    "fps": 24,
    "seed": 31337,
    "cfg": 1.0,
    "strength": 0.5,
    "noise_scale": 1.0,
    "noise_mode": "fixed",
    "noise_delta": 0.1,
    "zoom": 1.0,
    "angle": 0.0,
    "translation_x": 0.0,
    "translation_y": 0.0,
}


@dataclass(frozen=True)
class Range:
    """What a scheduled setting's values may be, and the words that say so."""

    low: float = -math.inf
    high: float = math.inf
    low_open: bool = False  # the low end itself is not allowed

    def allows(self, value: float) -> bool:
        if not math.isfinite(value) or value > self.high:
            return False
        return value > self.low if self.low_open else value >= self.low

    def words(self) -> str:
        if self.high == math.inf:
            if self.low == -math.inf:
                return "a finite number"
            return f"{'greater than' if self.low_open else 'at least'} {self.low:g}"
        if self.low_open:
            return f"greater than {self.low:g} and at most {self.high:g}"
        return f"between {self.low:g} and {self.high:g}"


SCHEDULED: dict[str, Range] = {
    "zoom": Range(0.0, low_open=True),
    "angle": Range(),
    "translation_x": Range(),
    "translation_y": Range(),
    "strength": Range(0.0, 1.0, low_open=True),
    "guidance": Range(0.0, 100.0),
    "noise_scale": Range(0.0, 1.0),
    "noise_delta": Range(0.0, 1.0),
}


@dataclass(frozen=True)
class Scheduled:
    """A numeric setting over the frames: its value at each frame and how it was written."""

    values: tuple[float, ...]
    text: str  # as written: "0:(1.0), 60:(1.1)", or "1" for a constant
    mark: Mark | None  # None: the default

    def __getitem__(self, frame: int) -> float:
        return self.values[frame]

    @cached_property
    def constant(self) -> bool:
        return all(v == self.values[0] for v in self.values)


@dataclass(frozen=True)
class PromptKey:
    """A prompt keyframe: it holds from ``frame`` to the next keyframe."""

    frame: int
    prompt: str
    negative: str  # after Deforum's --neg, "" when none
    text: str  # the key as written: "60" or "2.5s"
    mark: Mark


@dataclass(frozen=True)
class ColorCoherence:
    mode: str = "none"  # none | match_first | match_frame
    space: str = "lab"  # lab | hsv | rgb

    def describe(self) -> str:
        return "none" if self.mode == "none" else f"{self.mode} ({self.space})"


@dataclass(frozen=True)
class FluxShot:
    engine: ClassVar[str] = ENGINE
    unit_frames: ClassVar[int] = 1  # video frames each unit of generation adds
    edits: ClassVar[tuple] = ()  # one-frame edits are FramePack's
    input_video: ClassVar[None] = None  # as is extending a video

    source: Path
    label: str
    vars: dict[str, object]
    model: ModelSpec
    outputs: tuple[Output, ...]
    size: tuple[int, int]  # width, height
    fps: float
    frames: int
    image: ImageRef | None  # frame 0 is img2img of it; None: text-to-image
    prompts: tuple[PromptKey, ...]  # by frame, the first at frame 0 or later
    seed: int
    steps: int
    cfg: float  # > 1: true CFG with the negative prompts
    guidance: Scheduled
    strength: Scheduled
    noise_scale: Scheduled
    noise_mode: str
    noise_delta: Scheduled
    zoom: Scheduled
    angle: Scheduled
    translation_x: Scheduled
    translation_y: Scheduled
    color_coherence: ColorCoherence
    post: Post
    row: Mark | None = None
    files: tuple[Path, ...] = ()
    destination: Destination | None = None

    def prompt_at(self, frame: int) -> PromptKey:
        """The keyframe in effect at ``frame``: the last at or before it (the first before it)."""
        current = self.prompts[0]
        for key in self.prompts:
            if key.frame > frame:
                break
            current = key
        return current

    def locate(self, path: Path) -> str:
        return str(path) if self.destination is None else \
            self.destination.url_of(path, shown=True)

    def output_paths(self) -> list[Path]:
        return [o.path for o in self.outputs]

    def images(self) -> list[ImageRef]:
        return [self.image] if self.image is not None and self.image.info is not None else []

    def dependencies(self) -> set[Path]:
        return {*self.files, *(ref.info.path.resolve() for ref in self.images()
                               if ref.info is not None)}


def is_flux(doc: Node) -> bool:
    """Does this (merged, substituted) document ask for the flux-deforum engine?"""
    engine = doc.get("engine")
    return engine is not None and engine.value == ENGINE


def build_flux_shot(exp: Expansion, report: Report, output_root: Path | None = None, *,
                    root_shown: str | None = None) -> FluxShot | None:
    """Check one expanded flux-deforum shot; None (errors in ``report``) when it has any."""
    errors_before = report.made
    check_schema(exp.doc, report)
    if report.made > errors_before:
        return None
    return _FluxChecker(exp, report, output_root, root_shown).build()


class _FluxChecker:
    def __init__(self, exp: Expansion, report: Report, output_root: Path | None,
                 root_shown: str | None):
        self.exp = exp
        self.doc = exp.doc
        self.report = report
        # Image fields, outputs, the model mapping and post are checked as FramePack's are.
        self.shared = _Checker(exp, report, output_root, root_shown)

    def raw(self, key: str) -> Any:
        node = self.doc.get(key)
        return node.plain() if node is not None else DEFAULTS.get(key)

    def build(self) -> FluxShot | None:
        errors_before = self.report.made
        model = self.shared._model() if self.doc.get("model") is not None else \
            ModelSpec(DEFAULTS["model"], self.doc.mark)
        defaults = PROFILE_DEFAULTS.get(model.profile)
        if defaults is None:  # a FramePack profile, which the schema's model enum lets by
            self.report.error(model.mark, f"model '{model.profile}' is a "
                                          f"{PROFILES[model.profile].engine} model; "
                                          f"flux-deforum takes {', '.join(PROFILE_DEFAULTS)}")
            return None
        if model.profile == "tiny-flux" and model.paths:
            self.report.error(model.mark, "tiny-flux is built in code and takes no weights; "
                                          "name flux-schnell or flux-dev as the profile")
        seed = int(self.raw("seed"))
        fps = float(self.raw("fps"))
        frames = self._frames(fps)
        image = self.shared._image_ref(self.doc.get("image"))
        size = self._size(image)
        outputs = self.shared._outputs()
        prompts = self._prompts(fps, frames)
        steps = int(self.doc.get("steps").value) if self.doc.get("steps") is not None \
            else defaults.steps
        settings = {key: self._scheduled(key, fps, frames, seed, defaults)
                    for key in SCHEDULED}
        coherence = self._coherence()
        if self.report.made > errors_before or frames is None or size is None:
            return None
        shot = FluxShot(
            source=self.exp.source, label=self.exp.label, vars=dict(self.exp.vars),
            model=model, outputs=tuple(outputs), size=size, fps=fps, frames=frames,
            image=image, prompts=tuple(prompts), seed=seed, steps=steps,
            cfg=float(self.raw("cfg")), noise_mode=self.raw("noise_mode"),
            color_coherence=coherence, post=self.shared._post(), row=self.exp.row,
            files=tuple(dict.fromkeys([resolve(self.exp.source), *self.exp.files])),
            **settings)
        self._cross_checks(shot, defaults)
        return None if self.report.made > errors_before else shot

    # ------------------------------------------------------------ length and size

    def _frames(self, fps: float) -> int | None:
        given = [k for k in ("frames", "duration") if self.doc.get(k) is not None]
        if len(given) == 2:
            self.report.error(self.doc.key_mark("duration"),
                              "give either frames or duration, not both")
            return None
        if not given:
            self.report.error(self.doc.mark, "a flux-deforum shot needs frames (such as 120) "
                                             "or duration (such as \"5s\")")
            return None
        node = self.doc.get(given[0])
        count = int(node.value) if given[0] == "frames" else \
            math.floor(_frames_of(node.plain(), fps) + 0.5)
        if count < 1:
            self.report.error(node.mark, f"{given[0]} must make at least one frame at "
                                         f"{fps:g} fps")
            return None
        return count

    def _size(self, image: ImageRef | None) -> tuple[int, int] | None:
        node = self.doc.get("size")
        raw = node.plain() if node is not None else "auto"
        if raw == "auto":
            if image is None:
                if self.doc.get("image") is not None:
                    return None  # the image's own error says why
                return NATIVE_SIZE
            assert image.info is not None
            width, height = image.info.width, image.info.height
            mark = image.mark
        else:
            width, height = (int(v) for v in raw.split("x")) if isinstance(raw, str) else raw
            mark = node.mark
        clamped = (min(max(_round16(width), 64), 2048), min(max(_round16(height), 64), 2048))
        if clamped != (width, height):
            what = "the image's size" if raw == "auto" else "size"
            self.report.warn(mark, f"{what} {width}x{height} rounded to {clamped[0]}x"
                                   f"{clamped[1]} (FLUX sides are multiples of 16, 64 to 2048)")
        return clamped

    # ------------------------------------------------------------ prompts

    def _prompts(self, fps: float, frames: int | None) -> list[PromptKey]:
        node = self.doc.get("prompts")
        if node is None:
            self.report.error(self.doc.mark, "a flux-deforum shot needs prompts, such as "
                                             "prompts: {0: \"a red fox in the snow\"}")
            return []
        found: dict[int, PromptKey] = {}
        for text, child in node.items():
            mark = node.key_mark(text)
            try:
                frame = frame_of_key(text, fps)
            except ValueError as problem:
                self.report.error(mark, f"prompt key '{_short(text)}' {problem}")
                continue
            if frame is None:
                self.report.error(mark, f"prompt key '{_short(text)}' is not a frame or a time; write "
                                        "a frame number such as 60 or seconds such as 2.5s")
                continue
            if frame in found:
                self.report.error(mark, f"prompts '{found[frame].text}' and '{text}' both fall "
                                        f"on frame {frame}")
                continue
            if frames is not None and frame >= frames:
                self.report.warn(mark, f"prompt at frame {frame} is past the last frame "
                                       f"({frames - 1}); it is never used")
            prompt, negative = split_negative(child.value)
            found[frame] = PromptKey(frame, prompt, negative, text, mark)
        return [found[frame] for frame in sorted(found)]

    # ------------------------------------------------------------ schedules

    def _scheduled(self, key: str, fps: float, frames: int | None, seed: int,
                   defaults: ProfileDefaults) -> Scheduled:
        node = self.doc.get(key)
        default = defaults.guidance if key == "guidance" else DEFAULTS[key]
        count = frames or 1
        if node is None:
            return Scheduled((float(default),) * count, f"{default:g}", None)
        if not isinstance(node.value, str):
            value = float(node.value)
            return Scheduled((value,) * count, f"{value:g}", node.mark)
        schedule = read_schedule(node, key, fps, self.report)
        try:
            if schedule is None:
                raise ShotError([])
            values = tuple(float(v) for v in schedule.values(count, seed))
            ignored = schedule.ignored(count, seed)
        except ShotError as error:  # an expression that fails at some frame
            for diagnostic in error.diagnostics:
                self.report.error(diagnostic.mark, diagnostic.message)
            return Scheduled((float(default),) * count, node.value, node.mark)
        for frame, _ in ignored[:1]:
            self.report.warn(node.mark, f"{key}: the keyframe at frame {frame} is outside the "
                                        f"shot's {count} frames; it is ignored")
        allowed = SCHEDULED[key]
        bad = next((i for i, v in enumerate(values) if not allowed.allows(v)), None)
        if bad is not None:
            self.report.error(node.mark, f"{key} is {values[bad]:g} at frame {bad}; it must be "
                                         f"{allowed.words()}")
        return Scheduled(values, node.value, node.mark)

    def _coherence(self) -> ColorCoherence:
        raw = self.raw("color_coherence")
        if raw is None:
            return ColorCoherence()
        if isinstance(raw, str):
            return ColorCoherence(raw)
        return ColorCoherence(raw.get("mode", "match_first"), raw.get("space", "lab"))

    # ------------------------------------------------------------ together

    def _cross_checks(self, shot: FluxShot, defaults: ProfileDefaults) -> None:
        report, doc = self.report, self.doc
        if not defaults.guidance_embeds and doc.get("guidance") is not None:
            report.warn(doc.get("guidance").mark, f"{shot.model.profile} has no guidance input; "
                                                  "guidance has no effect (use cfg with a "
                                                  "--neg prompt for true guidance)")
        negatives = [p for p in shot.prompts if p.negative]
        if negatives and shot.cfg <= 1.0:
            report.warn(negatives[0].mark, "a --neg prompt has no effect unless cfg > 1")
        if shot.cfg > 1.0 and not negatives:
            report.warn(doc.get("cfg").mark, "cfg > 1 compares against a negative prompt; add "
                                             "one with --neg (it is empty otherwise)")
        if doc.get("noise_delta") is not None and shot.noise_mode != "slerp":
            report.warn(doc.get("noise_delta").mark, "noise_delta has no effect unless "
                                                     "noise_mode: slerp")
        if shot.prompts and shot.prompts[0].frame > 0:
            first = shot.prompts[0]
            report.warn(first.mark, f"no prompt at frame 0; '{first.text}' holds from frame 0")


# ---------------------------------------------------------------- pure helpers

_SECONDS = re.compile(r"^\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*s\s*$")
_FRAME = re.compile(r"[0-9]+")  # ASCII: str.isdigit() also takes other scripts' digits
FRAME_KEY_LIMIT = 10**9  # far past any video; a 400-digit key would overflow the float maths


def frame_of_key(text: str, fps: float) -> int | None:
    """A prompt key as a frame: "60" is frame 60, "2.5s" the frame nearest 2.5 s.
    None when the key is not a frame or a time; ValueError when it is past FRAME_KEY_LIMIT."""
    text = text.strip()
    if _FRAME.fullmatch(text):
        digits = text.lstrip("0")
        if len(digits) > len(str(FRAME_KEY_LIMIT)):  # int() of 5000 digits is slow, and pointless
            raise _too_far()
        return _bounded(int(digits or "0"))
    match = _SECONDS.match(text)
    if match is None:
        return None
    frames = float(match.group(1)) * fps
    if not frames <= FRAME_KEY_LIMIT:  # inf and NaN too, before floor() overflows
        raise _too_far()
    # Rounded to the nearest frame, as schedules' seconds keys are.
    return math.floor(frames + 0.5 + 1e-9)


def _bounded(frame: int) -> int:
    if frame > FRAME_KEY_LIMIT:
        raise _too_far()
    return frame


def _too_far() -> ValueError:
    return ValueError(f"is past any video (frames up to {FRAME_KEY_LIMIT:,} only)")


def _short(text: str) -> str:
    """A key quoted in one readable line, however long it was written."""
    return text if len(text) <= 24 else text[:21] + "..."


def split_negative(text: str) -> tuple[str, str]:
    """Deforum's negative suffix: "a fox --neg blurry" is ("a fox", "blurry")."""
    prompt, marker, negative = text.partition(NEGATIVE_MARKER)
    return prompt.strip(), negative.strip() if marker else ""


def denoising_steps(steps: int, strength: float) -> int:
    """The steps img2img runs at ``strength``: diffusers' rule, t_start = int(n - n s), so
    at least one for any strength above 0."""
    start = int(max(steps - min(steps * strength, steps), 0))
    return steps - start


def shown_image(shot: FluxShot) -> str:
    if shot.image is None:
        return "none (text to image)"
    return display_path(shot.image.info.path) if shot.image.info is not None else str(shot.image)
