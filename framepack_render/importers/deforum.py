"""Deforum settings files and Parseq manifests as flux-deforum shots (one shot per file).

A Deforum settings file (``*_settings.txt``, JSON) carries over its length, fps, size, prompts
(with the global positive and negative prompts folded in as Deforum folds them), steps, seed
and seed behaviour, the 2D motion schedules, strength, guidance and colour coherence. Its
schedules are copied as written: flux-deforum evaluates them as Deforum does. Deforum's
strength is what is kept of the previous frame and img2img's is what is redrawn, so the
strength schedule is written as 1 - it. A Parseq manifest, alone or inside the settings
(``parseq_manifest``), gives the fields it renders (see ``parseq``). What has no flux-deforum
equivalent (3D motion, depth warping, ControlNet, hybrid video, cadence, masks...) is a
``FILE:LINE: warning:`` and a comment in the shot.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from pathlib import Path
from typing import Any

from ..shot.errors import Mark, ShotError, display_path
from ..shot.expressions import ExpressionError, evaluate, parse_expression
from ..shot.schedules import KEY_NAMES, Schedule, as_schedule, parse_schedule
from ..shot.yaml_loader import read_text
from .draft import Draft, Result, fix_seed, load_json, picture_from_file, snap_side
from .options import Options
from .parseq import MOTION, Rendered, rendered
from .schedule_text import complement, curve, written

ENGINE = "flux-deforum"
DEFAULT_MODEL = "flux-dev"
# Deforum's defaults, for keys a settings file leaves out.
DEFAULTS: dict[str, Any] = {
    "W": 512, "H": 512, "fps": 15, "max_frames": 120, "steps": 25, "seed": -1,
    "seed_behavior": "iter", "seed_iter_N": 1, "animation_mode": "2D",
    "zoom": "0: (1.0)", "angle": "0: (0)", "translation_x": "0: (0)",
    "translation_y": "0: (0)", "strength_schedule": "0: (0.65)",
    "cfg_scale_schedule": "0: (7)", "color_coherence": "LAB", "diffusion_cadence": 1,
    "border": "replicate",
}
COHERENCE = {"none": None, "lab": "lab", "hsv": "hsv", "rgb": "rgb",
             "match frame 0 lab": "lab", "match frame 0 hsv": "hsv", "match frame 0 rgb": "rgb"}
SEED_BEHAVIOURS = {"iter": "incremental", "fixed": "fixed"}
# Switches whose feature has no flux-deforum equivalent: warned when on.
SWITCHES = {
    "enable_perspective_flip": "perspective flip",
    "use_looper": "guided images (the looper)",
    "use_mask": "the init mask",
    "use_noise_mask": "the noise mask",
    "use_mask_video": "the mask video",
    "enable_steps_scheduling": "steps_schedule (steps per frame)",
    "enable_sampler_scheduling": "sampler scheduling",
    "enable_checkpoint_scheduling": "checkpoint scheduling",
    "enable_clipskip_scheduling": "CLIP skip scheduling",
    "enable_subseed_scheduling": "subseed scheduling",
}
# Schedules with no flux-deforum equivalent: warned when they differ from Deforum's default.
DROPPED_SCHEDULES = {
    "noise_schedule": ("0: (0.065)", "Deforum's added noise"),
    "contrast_schedule": ("0: (1.0)", "contrast"),
    "amount_schedule": ("0: (0.1)", "anti-blur"),
}
_WEIGHTED = re.compile(r"\([^()]*:\s*-?[0-9.]+\s*\)")


def is_settings(data: Any) -> bool:
    """A Deforum settings file's shape: its length and something it animates."""
    return isinstance(data, dict) and "max_frames" in data and any(
        k in data for k in ("prompts", "animation_prompts", "strength_schedule", "zoom"))


def is_parseq(data: Any) -> bool:
    return isinstance(data, dict) and isinstance(data.get("rendered_frames"), list)


def read(path: Path, options: Options) -> Result:
    shown = display_path(path)
    text = read_text(path, shown, "a Deforum settings file or Parseq manifest")
    data = load_json(text, shown)
    where = _Where(text, shown)
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
    if is_parseq(data):
        draft = Draft(shown, 1, shown, "a Parseq manifest", path.stem)
        _Parseq(data, where, draft, options, digest).fill()
    elif is_settings(data):
        draft = Draft(shown, 1, shown, "Deforum settings", path.stem)
        _Settings(data, where, draft, path, options, digest).fill()
    else:
        raise ShotError.at(Mark(shown, 1, 1), "neither Deforum settings (max_frames, prompts, "
                                              "schedules...) nor a Parseq manifest "
                                              "(rendered_frames)")
    return Result([draft])


class _Where:
    """Where a key's value is written in the JSON text (its first occurrence)."""

    def __init__(self, text: str, shown: str):
        self.text = text
        self.shown = shown

    def mark(self, key: str) -> Mark:
        found = re.search(re.escape(json.dumps(key)) + r"\s*:\s*", self.text)
        return self._at(found.end()) if found else Mark(self.shown, 1, 1)

    def line(self, key: str) -> int:
        return self.mark(key).line

    def _at(self, offset: int) -> Mark:
        line = self.text.count("\n", 0, offset) + 1
        return Mark(self.shown, line, offset - (self.text.rfind("\n", 0, offset) + 1) + 1)


# ---------------------------------------------------------------- Deforum settings


class _Settings:
    """Fills a draft from a Deforum settings file."""

    def __init__(self, data: dict[str, Any], where: _Where, draft: Draft, path: Path,
                 options: Options, digest: str):
        self.data = data
        self.where = where
        self.draft = draft
        self.path = path
        self.options = options
        self.digest = digest
        self.fps = float(self.number("fps", low=1e-3, high=240))
        self.frames = int(self.number("max_frames", whole=True, low=1, high=100_000))
        seed = self.number("seed", whole=True)
        self.seed = fix_seed(draft, None if seed < 0 else seed, where.line("seed"), "deforum",
                             path.name, digest)
        self.manifest = self._manifest()

    # ------------------------------------------------------------ values

    def get(self, key: str) -> Any:
        return self.data.get(key, DEFAULTS.get(key))

    def number(self, key: str, *, whole: bool = False, low: float | None = None,
               high: float | None = None) -> float:
        value = self.get(key)
        if isinstance(value, str):  # Deforum's UI stores some numbers as text
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                not math.isfinite(value):
            raise ShotError.at(self.where.mark(key), f"{key} must be a number, not {value!r}")
        if whole and value != int(value):
            raise ShotError.at(self.where.mark(key), f"{key} must be a whole number, not "
                                                     f"{value!r}")
        if low is not None and value < low:
            raise ShotError.at(self.where.mark(key), f"{key} must be at least {low:g}, not "
                                                     f"{value!r}")
        if high is not None and value > high:
            raise ShotError.at(self.where.mark(key), f"{key} must be at most {high:g}, not "
                                                     f"{value!r}")
        return int(value) if whole else float(value)

    def schedule(self, key: str) -> Schedule:
        """A schedule of the file, checked on every frame (errors point into the JSON)."""
        value = self.get(key)
        mark = self.where.mark(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            schedule = as_schedule(value, mark, fps=self.fps, what=key)
        elif isinstance(value, str):
            schedule = parse_schedule(value, mark, fps=self.fps, what=key)
        else:
            raise ShotError.at(mark, f"{key} must be a schedule such as \"0: (1.0)\", not "
                                     f"{value!r}")
        schedule.values(self.frames, self.seed)
        if all(k.frame != 0 for k in schedule.keyframes) and isinstance(value, str):
            self.draft.warn(f"{key} has no keyframe at frame 0 (Deforum stops there); its first "
                            "value holds back to frame 0", mark.line)
        return schedule

    # ------------------------------------------------------------ the shot

    def fill(self) -> None:
        doc = self.draft.doc
        doc["engine"] = ENGINE
        doc["model"] = self._model()
        width, height = snap_side(self.draft, self.number("W", whole=True, low=64),
                                  self.number("H", whole=True, low=64), self.where.line("W"))
        doc["size"] = f"{width}x{height}"
        doc["fps"] = self.fps
        doc["frames"] = self.frames
        image = self._init_image()
        if image is not None:
            doc["image"] = image
        doc["prompts"] = self._prompts()
        doc["steps"] = self.number("steps", whole=True, low=1, high=200)
        doc["guidance"] = self._guidance()
        doc["strength"] = self._strength()
        doc["seed"] = self.seed
        doc["noise_mode"] = self._noise_mode()
        for key in MOTION:
            doc[key] = self._motion(key)
        doc["color_coherence"] = self._coherence()
        self._dropped()

    def _model(self) -> str:
        name = str(self.data.get("sd_model_name") or "")
        lowered = name.lower()
        if "flux" in lowered:
            return "flux-schnell" if "schnell" in lowered else "flux-dev"
        if name:
            self.draft.warn(f"model '{name}' is not a FLUX.1 model; the shot uses "
                            f"{DEFAULT_MODEL}", self.where.line("sd_model_name"))
        return DEFAULT_MODEL

    def _init_image(self) -> Any:
        if self.options.image is not None:
            image = self.options.image
            return picture_from_file(image, Mark(display_path(image)), str(image))
        if self.data.get("use_init") is not True or not self.data.get("init_image"):
            return None
        written_path = str(self.data["init_image"])
        line = self.where.line("init_image")
        if written_path.startswith(("http://", "https://")):
            self.draft.warn(f"init_image {written_path} is a URL, which the import does not "
                            "fetch; download it and pass --image FILE (the shot starts from "
                            "text)", line)
            return None
        path = Path(written_path).expanduser()
        path = path if path.is_absolute() else self.path.parent / path
        if not path.is_file():
            self.draft.warn(f"init_image '{written_path}' not found; pass --image FILE (the "
                            "shot starts from text)", line)
            return None
        picture = picture_from_file(path, self.where.mark("init_image"), written_path)
        self.draft.warn("the init image's own strength does not carry over: frame 0 takes "
                        "strength_schedule's, as every frame does", self.where.line("strength"))
        return picture

    def _prompts(self) -> dict[int, str]:
        if self.manifest is not None and (found := self.manifest.prompts(self.frames)):
            return found
        prompts = self.data.get("prompts", self.data.get("animation_prompts"))
        if isinstance(prompts, str):
            prompts = load_json(prompts, self.where.shown) if prompts.strip() else None
        mark = self.where.mark("prompts" if "prompts" in self.data else "animation_prompts")
        if not isinstance(prompts, dict) or not prompts:
            raise ShotError.at(mark, "the settings hold no prompts ({\"0\": \"a prompt\", ...})")
        positive = _text(self.data.get("positive_prompts",
                                       self.data.get("animation_prompts_positive")))
        negative = _text(self.data.get("negative_prompts",
                                       self.data.get("animation_prompts_negative")))
        found: dict[int, str] = {}
        for key, text in prompts.items():
            frame = self._prompt_frame(str(key), mark)
            if not 0 <= frame < self.frames:
                self.draft.warn(f"the prompt at frame {frame} ('{key}') is outside the video "
                                f"(frames 0 to {self.frames - 1}); left out", mark.line)
                continue
            found[frame] = _folded(str(text), positive, negative)
            self._prompt_syntax(found[frame], mark.line)
        if not found:
            raise ShotError.at(mark, "no prompt falls inside the video")
        return dict(sorted(found.items()))

    def _prompt_frame(self, key: str, mark: Mark) -> int:
        """A prompt key: a frame number, or an expression of max_f and s (as Deforum's)."""
        if re.fullmatch(r"\s*[0-9]+\s*", key):
            return int(key)
        try:
            expr = parse_expression(key.strip().strip("'\""), KEY_NAMES)
            return math.trunc(evaluate(expr, {"max_f": self.frames - 1, "s": self.seed}))
        except ExpressionError as problem:
            raise ShotError.at(mark, f"prompt key '{key}': {problem.message}") from None

    def _prompt_syntax(self, text: str, line: int) -> None:
        if "`" in text:
            self.draft.warn("prompt weights computed with `math` are Deforum's syntax; FLUX "
                            "reads them as text", line)
        elif _WEIGHTED.search(text):
            self.draft.warn("attention weights such as (word:1.2) are A1111's syntax; FLUX "
                            "reads them as text", line)

    def _guidance(self) -> float | str:
        if self.manifest is not None and self.manifest.has("scale"):
            return _from_manifest_scale(self.draft, self.manifest, self.frames,
                                        self.where.line("parseq_manifest"))
        if "distilled_cfg_scale_schedule" in self.data:
            return written(self.schedule("distilled_cfg_scale_schedule"), self.frames,
                           self.seed)
        self.draft.warn("cfg_scale_schedule (Stable Diffusion's CFG scale) is written as "
                        "FLUX's distilled guidance; FLUX.1-dev is usually run near 3.5",
                        self.where.line("cfg_scale_schedule"))
        return written(self.schedule("cfg_scale_schedule"), self.frames, self.seed)

    def _strength(self) -> float | str:
        if self.manifest is not None and self.manifest.has("strength"):
            kept = self.manifest.series("strength", self.frames)
            return curve([1.0 - v for v in kept])
        return complement(self.schedule("strength_schedule"), self.frames, self.seed)

    def _noise_mode(self) -> str:
        if self.manifest is not None and (seeds := self.manifest.seeds(self.frames)):
            return _manifest_noise(self.draft, seeds, self.where.line("parseq_manifest"))
        behaviour = str(self.get("seed_behavior"))
        line = self.where.line("seed_behavior")
        mode = SEED_BEHAVIOURS.get(behaviour)
        if mode is None:
            self.draft.warn(f"seed_behavior '{behaviour}' has no flux-deforum noise mode; the "
                            "shot draws seed + frame (incremental)", line)
            return "incremental"
        iterations = self.number("seed_iter_N", whole=True, low=1)
        if mode == "incremental" and iterations != 1:
            self.draft.warn(f"seed_iter_N {iterations} (a new seed every {iterations} frames) "
                            "does not carry over: the seed changes every frame", line)
        return mode

    def _motion(self, key: str) -> float | str:
        if self.manifest is not None:
            deltas = self.data.get("parseq_use_deltas", True) is not False
            found = self.manifest.motion(key, self.frames, deltas)
            if found is not None:
                return found
        return written(self.schedule(key), self.frames, self.seed)

    def _coherence(self) -> Any:
        value = str(self.get("color_coherence"))
        space = COHERENCE.get(value.strip().lower(), "unknown")
        if space == "unknown":
            self.draft.warn(f"color_coherence '{value}' does not carry over (flux-deforum "
                            "matches colours to the first or the previous frame); none",
                            self.where.line("color_coherence"))
            return "none"
        if space is None:
            return "none"
        return "match_first" if space == "lab" else {"mode": "match_first", "space": space}

    def _manifest(self) -> Rendered | None:
        """A Parseq manifest inside the settings, which Deforum lets override schedules."""
        value = self.data.get("parseq_manifest")
        mark = self.where.mark("parseq_manifest")
        if value is not None and not isinstance(value, str):  # ignoring it would drop motion
            raise ShotError.at(mark, "parseq_manifest must be the manifest as JSON text or a "
                                     f"URL, not {_kind(value)}")
        if not value or not value.strip():
            return None
        if value.strip().startswith("http"):
            self.draft.warn("parseq_manifest is a URL, which the import does not fetch; the "
                            "settings' own schedules are used", mark.line)
            return None
        manifest = load_json(value, self.where.shown)
        if not is_parseq(manifest):
            raise ShotError.at(mark, "parseq_manifest holds no rendered_frames")
        self.draft.note("Parseq's rendered frames (in the settings' parseq_manifest) give "
                        "the fields they define, as in Deforum.")
        found = rendered(manifest, mark)
        for field in found.moves_in_3d(self.frames):
            self.draft.warn(f"Parseq's {field} (3D motion) does not carry over", mark.line)
        return found

    # ------------------------------------------------------------ what does not carry over

    def _dropped(self) -> None:
        self._mode()
        cadence = self.number("diffusion_cadence", whole=True, low=1)
        if cadence > 1:
            self.draft.warn(f"diffusion_cadence {cadence} (a frame generated every {cadence}, "
                            "those between blended) does not carry over: every frame is "
                            "generated", self.where.line("diffusion_cadence"))
        for key, what in SWITCHES.items():
            if self.data.get(key) is True:
                self.draft.warn(f"{what} ({key}) does not carry over", self.where.line(key))
        if self.data.get("hybrid_motion", "None") not in ("None", None) or \
                self.data.get("hybrid_composite", "None") not in ("None", None, False):
            self.draft.warn("hybrid video (hybrid_motion, hybrid_composite) does not carry "
                            "over", self.where.line("hybrid_motion"))
        for unit in range(1, 6):
            if self.data.get(f"cn_{unit}_enabled") is True:
                model = self.data.get(f"cn_{unit}_model", "?")
                self.draft.warn(f"ControlNet unit {unit} ({model}) does not carry over",
                                self.where.line(f"cn_{unit}_enabled"))
        if self.get("border") == "wrap":
            self.draft.warn("border: wrap does not carry over; the warp replicates the edges",
                            self.where.line("border"))
        for key, (default, what) in DROPPED_SCHEDULES.items():
            if key in self.data and self._differs(key, default):
                self.draft.warn(f"{key} ({what}) does not carry over", self.where.line(key))
        sampler = self.data.get("sampler")
        if sampler:
            self.draft.note(f"Deforum's sampler '{sampler}' is Stable Diffusion's; FLUX samples "
                            "with its own flow-matching Euler.")

    def _mode(self) -> None:
        mode = str(self.get("animation_mode"))
        line = self.where.line("animation_mode")
        if mode == "3D":
            self.draft.warn("3D animation (translation_z, rotation_3d_*, depth warping, fov) "
                            "does not carry over: flux-deforum moves in 2D, with the zoom, angle "
                            "and translation schedules the settings hold (Deforum ignores zoom "
                            "and angle in 3D)", line)
        elif mode != "2D":
            self.draft.warn(f"animation_mode '{mode}' does not carry over; the shot is a 2D "
                            "animation", line)

    def _differs(self, key: str, default: str) -> bool:
        try:
            ours = self.schedule(key).values(self.frames, self.seed)
        except ShotError:
            return True  # unreadable: it is dropped all the same, so say so
        return ours != parse_schedule(default, fps=self.fps).values(self.frames, self.seed)


# ---------------------------------------------------------------- Parseq manifests


class _Parseq:
    """Fills a draft from a Parseq manifest on its own."""

    def __init__(self, data: dict[str, Any], where: _Where, draft: Draft, options: Options,
                 digest: str):
        self.where = where
        self.draft = draft
        self.options = options
        self.digest = digest
        self.manifest = rendered(data, where.mark("rendered_frames"))
        self.frames = len(self.manifest.frames)
        self.line = where.line("rendered_frames")

    def fill(self) -> None:
        doc, manifest = self.draft.doc, self.manifest
        doc["engine"] = ENGINE
        doc["model"] = DEFAULT_MODEL
        if manifest.fps is None:
            self.draft.warn("the manifest gives no options.output_fps; the shot runs at 15 "
                            "fps, Deforum's default", self.where.line("options"))
        doc["fps"] = manifest.fps or 15.0
        doc["frames"] = self.frames
        self.draft.note("A Parseq manifest holds no size: the shot's size is auto (the "
                        "image's, else 1024x1024).")
        if self.options.image is not None:
            image = self.options.image
            doc["image"] = picture_from_file(image, Mark(display_path(image)), str(image))
        prompts = manifest.prompts(self.frames)
        if prompts is None:
            raise ShotError.at(manifest.mark, "the manifest renders no deforum_prompt; a shot "
                                              "needs prompts")
        doc["prompts"] = prompts
        if manifest.has("scale"):
            doc["guidance"] = _from_manifest_scale(self.draft, manifest, self.frames, self.line)
        if manifest.has("strength"):
            doc["strength"] = curve([1.0 - v for v in manifest.series("strength",
                                                                       self.frames)])
        seeds = manifest.seeds(self.frames)
        seed = seeds[0] if seeds is not None else None
        doc["seed"] = fix_seed(self.draft, seed, self.line, "parseq", self.digest)
        if seeds is not None:
            doc["noise_mode"] = _manifest_noise(self.draft, seeds, self.line)
        for key in MOTION:
            found = manifest.motion(key, self.frames, deltas=True)
            if found is not None:
                doc[key] = found
        for field in manifest.moves_in_3d(self.frames):
            self.draft.warn(f"{field} (3D motion) does not carry over", self.line)


# ---------------------------------------------------------------- shared


def _from_manifest_scale(draft: Draft, manifest: Rendered, frames: int, line: int) -> Any:
    draft.warn("Parseq's scale (Stable Diffusion's CFG scale) is written as FLUX's distilled "
               "guidance; FLUX.1-dev is usually run near 3.5", line)
    return curve(manifest.series("scale", frames))


def _manifest_noise(draft: Draft, seeds: tuple[int, str, bool], line: int) -> str:
    seed, mode, exact = seeds
    if not exact:
        draft.warn(f"Parseq's per-frame seeds are neither constant nor seed + frame; the shot "
                   f"draws {seed} + frame (incremental)", line)
    return mode


def _text(value: Any) -> str:
    return " ".join(str(value).split()) if value else ""


def _folded(prompt: str, positive: str, negative: str) -> str:
    """Deforum's fold: the global positive words before each prompt, the global negative
    words after its own negative ones, as "positive --neg negative"."""
    own, _, own_negative = prompt.partition("--neg")
    text = " ".join(part for part in (positive, " ".join(own.split())) if part)
    avoid = " ".join(part for part in (" ".join(own_negative.split()), negative) if part)
    return f"{text} --neg {avoid}" if avoid else text


def _kind(value: object) -> str:
    """A JSON value named in one short line, however large it was."""
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value)[:40]
