"""FramePack-Studio jobs: a queue export (ZIP or queue.json), a job's metadata JSON, or a text
file of timestamped prompts (one shot per line, with --seconds and --image).

Prompts are placed in time exactly as FP-Studio places them: ``[2s: text]`` and
``[1.1s-3.3s: text]`` sections are snapped to multiples of (4 x window - 3) / 30 s with Python's
round; for the inverted models they are mirrored (FP-Studio measures them from the end, the
end being generated first); each window then takes the first section that holds its
generation position, (4 x latents generated so far - 3) / 30 s.

Video and Video F1 jobs become forward extensions of their input video (``input_video:``,
``extend: forward``): FP-Studio continues after the video with either model.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..shot.errors import Mark, Report, ShotError, display_path
from ..shot.videos import VideoProblem, probe_video
from ..shot.yaml_loader import read_text
from .draft import (FPS, Caveat, Draft, Picture, Result, Window, check_length, derived_seed,
                    find_loras, fix_seed, load_json, made_picture, model_value,
                    picture_from_bytes, picture_from_file, sections_from_windows, snap_side,
                    window_count)
from .options import Options
from .zips import Archive, open_archive

TIMESTAMP = re.compile(r"\[(\d+(?:\.\d+)?s)(?:-(\d+(?:\.\d+)?s))?\s*:\s*(.*?)\]")
MIRRORED = ("Original", "Original with Endframe", "Video")
MODELS = {"Original": "framepack", "Original with Endframe": "framepack", "F1": "framepack-f1",
          "Video": "framepack", "Video F1": "framepack-f1"}
VIDEO_MODELS = ("Video", "Video F1")
# Where a video job's metadata names its input video, first found wins.
VIDEO_KEYS = ("input_video", "video_path", "input_image_path", "input_image")
SKIPPED_STATUSES = ("completed", "failed", "cancelled")  # FP-Studio skips them on load
LATENT_COLORS = {"Black": (0, 0, 0), "White": (255, 255, 255), "Green Screen": (0, 177, 64)}
# diffusers_helper/bucket_tools.py of FP-Studio: (height, width) per resolution.
BUCKETS = {
    128: [(96, 160), (112, 144), (128, 128), (144, 112), (160, 96)],
    256: [(192, 320), (224, 288), (256, 256), (288, 224), (320, 192)],
    384: [(256, 512), (320, 448), (384, 384), (448, 320), (512, 256)],
    512: [(352, 704), (384, 640), (448, 576), (512, 512), (576, 448), (640, 384), (704, 352)],
    640: [(416, 960), (448, 864), (480, 832), (512, 768), (544, 704), (576, 672), (608, 640),
          (640, 640), (640, 608), (672, 576), (704, 544), (768, 512), (832, 480), (864, 448),
          (960, 416)],
    768: [(512, 1024), (576, 896), (640, 832), (704, 768), (768, 768), (768, 704), (832, 640),
          (896, 576), (1024, 512)],
}
# Keys that carry no setting of a render, or only one handled elsewhere.
QUIET_KEYS = {
    "app_version", "timestamp", "generation_type", "has_input_image", "input_image_path",
    "end_frame_image_path", "end_frame_used", "input_video", "video_path", "x_param", "y_param",
    "x_values", "y_values", "teacache_num_steps", "magcache_threshold",
    "magcache_max_consecutive_skips", "magcache_retention_ratio", "num_cleaned_frames", "id",
    "status", "created_at", "started_at", "completed_at", "error", "result", "queue_position",
    "saved_input_image_path", "saved_end_frame_image_path", "resolutionW", "resolutionH",
    "prompt", "negative_prompt", "seed", "steps", "cfg", "gs", "rs", "latent_type",
    "model_type", "total_second_length", "blend_sections", "latent_window_size",
    "end_frame_strength", "combine_with_source", "use_teacache", "teacache_rel_l1_thresh",
    "use_magcache", "loras", "thumbnail",
}
DEFAULTS = {"steps": 25, "cfg": 1.0, "gs": 10.0, "rs": 0.0, "latent_window_size": 9,
            "blend_sections": 4, "resolutionW": 640, "resolutionH": 640,
            "total_second_length": 6.0, "end_frame_strength": 1.0}


@dataclass(frozen=True)
class _Video:
    path: Path
    width: int
    height: int
    fps: float


def _at_rate(sections: list[dict], fps: float) -> list[dict]:
    """Section lengths as frame counts when the video's rate is not 30 fps: FP-Studio's
    windows are frames, whatever the seconds they last."""
    if fps == FPS:
        return sections
    for section in sections:
        duration = section["duration"]
        if isinstance(duration, str):
            section["duration"] = {"frames": round(float(duration[:-1]) * FPS)}
    return sections


# ------------------------------------------------------------------ FP-Studio's time rules


@dataclass
class Timed:
    prompt: str
    start: float
    end: float | None


def timed_prompts(text: str, total: float, window: int, mirrored: bool) -> list[Timed]:
    """FP-Studio's parse_timestamped_prompt: sections with snapped (and, for the inverted
    models, mirrored) times."""
    if "[" not in text or "]" not in text:
        return [Timed(text.strip(), 0, None)]
    sections = []
    regular = text
    for match in TIMESTAMP.finditer(text):
        end = float(match.group(2).rstrip("s")) if match.group(2) else None
        sections.append(Timed(match.group(3).strip(), float(match.group(1).rstrip("s")), end))
        regular = regular.replace(match.group(0), "")
    regular = regular.strip()
    if regular:
        sections.append(Timed(regular, 0, None))
    sections.sort(key=lambda s: s.start)
    for current, following in itertools.pairwise(sections):
        if current.end is None:
            current.end = following.start
    if sections and sections[-1].end is None:
        sections[-1].end = total
    sections = [_snapped(s, window) for s in sections]
    if not mirrored:
        return sections
    flipped = [Timed(s.prompt, total - s.end if s.end is not None else 0, total - s.start)
               for s in sections]
    return sorted(flipped, key=lambda s: s.start)


def _snapped(section: Timed, window: int) -> Timed:
    length = (window * 4 - 3) / 30
    start = round(section.start / length) * length
    end = None if section.end is None else round(section.end / length) * length
    if end is not None and end <= start:
        end = start + length
    return Timed(section.prompt, start, end)


def window_prompts(sections: list[Timed], total: float, window: int, forward: bool,
                   first: int | None = None) -> list[str]:
    """Each window's prompt in time order, chosen by its generation position. ``first``: the
    latents counted before the first window (F1 counts its start frame, video jobs nothing)."""
    chosen = []
    for generated in range(window_count(total, window)):
        latents = (first if first is not None else int(forward)) + window * generated
        position = (latents * 4 - 3) / 30
        if position < 0:
            position = 0.01
        prompt = sections[0].prompt
        for section in sections:
            if section.start <= position and (section.end is None or position < section.end):
                prompt = section.prompt
                break
        chosen.append(prompt)
    return chosen if forward else chosen[::-1]


def studio_bucket(height: int, width: int, resolution: float) -> tuple[int, int]:
    """FP-Studio's find_nearest_bucket: (height, width) with the nearest aspect ratio."""
    resolution = int(resolution)
    if resolution not in BUCKETS:
        resolution = min(BUCKETS, key=lambda r: abs(r - resolution))
    aspect = width / height if height > 0 else 1.0
    best, least = BUCKETS[resolution][0], float("inf")
    for bucket_h, bucket_w in BUCKETS[resolution]:
        difference = abs(bucket_w / bucket_h - aspect)
        if difference < least:
            best, least = (bucket_h, bucket_w), difference
    return best


# ------------------------------------------------------------------ reading sources


def read(path: Path, options: Options) -> Result:
    if path.suffix.lower() == ".zip":
        with open_archive(path) as archive:
            member = archive.find("queue.json")
            if member is None:
                raise ShotError.at(Mark(archive.shown), "no queue.json in the archive (is it "
                                                        "an FP-Studio queue export?)")
            shown = archive.shown_member(member)
            text = _decode(archive.read(member), shown)
            return _read_json(text, shown, path, options, archive)
    shown = display_path(path)
    if path.suffix.lower() == ".json":
        return _read_json(read_text(path, shown, "a JSON file"), shown, path, options, None)
    return read_prompts(path, options)


def is_queue(data: Any) -> bool:
    return isinstance(data, dict) and bool(data) and all(isinstance(v, dict)
                                                         for v in data.values())


def is_metadata(data: Any) -> bool:
    return isinstance(data, dict) and isinstance(data.get("prompt"), str) and \
        any(k in data for k in ("model_type", "total_second_length", "resolutionW", "seed"))


def _decode(data: bytes, shown: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ShotError.at(Mark(shown), f"not UTF-8 text ({exc.reason})") from None


def _read_json(text: str, shown: str, path: Path, options: Options,
               archive: Archive | None) -> Result:
    data = load_json(text, shown)
    where = _JsonText(text, shown)
    context = _Context(shown, path, options, archive)
    if is_queue(data):
        return _read_queue(data, where, context)
    if is_metadata(data):
        job = _Job(data, where, 0, path.stem)
        draft = _build(job, context, metadata_file=True)
        return Result([draft] if draft else [], context.skipped)
    raise ShotError.at(Mark(shown, 1, 1), "neither an FP-Studio queue ({job id: job, ...}) "
                                          "nor a job's metadata ({\"prompt\": ..., ...})")


def _read_queue(data: dict, where: "_JsonText", context: "_Context") -> Result:
    result = Result()
    report = Report()
    cursor = 0
    for job_id, meta in data.items():
        _, cursor = where.find(job_id, cursor)
        job = _Job(meta, where, cursor, str(meta.get("id") or job_id))
        status = meta.get("status")
        if status in SKIPPED_STATUSES:
            context.skipped.append(job.caveat(f"job {job.id} is {status}; FP-Studio skips it "
                                              "when it loads a queue, and so does the import"))
            continue
        try:
            draft = _build(job, context, metadata_file=False)
        except ShotError as error:
            for diagnostic in error.diagnostics:
                report.error(diagnostic.mark, diagnostic.message)
            continue
        if draft is not None:
            result.drafts.append(draft)
    report.raise_if_errors()
    result.caveats = context.skipped
    return result


def read_prompts(path: Path, options: Options) -> Result:
    """A text file of timestamped prompts: one shot per line, --seconds long, on --image."""
    shown = display_path(path)
    text = read_text(path, shown, "a prompt file")
    if options.seconds is None:
        raise ShotError.at(Mark(shown), "timestamped prompts need the video's length: pass "
                                        "--seconds S")
    if options.image is None:
        raise ShotError.at(Mark(shown), "timestamped prompts need a start image: pass "
                                        "--image IMG")
    context = _Context(shown, path, options, None)
    drafts = []
    model_type = "F1" if options.model == "framepack-f1" else "Original"
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        meta = {"prompt": line, "model_type": model_type,
                "total_second_length": options.seconds}
        job = _Job(meta, _JsonText("", shown), 0, f"{path.stem}-{number:03d}", number)
        draft = _build(job, context, metadata_file=False, text_line=True)
        assert draft is not None
        drafts.append(draft)
    return Result(drafts)


# ------------------------------------------------------------------ one job


@dataclass
class _Context:
    shown: str
    path: Path
    options: Options
    archive: Archive | None
    skipped: list[Caveat] = field(default_factory=list)  # jobs that give no shot


class _JsonText:
    """Where keys are written in a JSON text, for messages that name a line."""

    def __init__(self, text: str, shown: str):
        self.text = text
        self.shown = shown

    def find(self, key: str, start: int = 0) -> tuple[Mark, int]:
        for spelled in (json.dumps(key, ensure_ascii=False), json.dumps(key)):
            match = re.compile(re.escape(spelled) + r"\s*:").search(self.text, start)
            if match:
                return self.mark_at(match.start()), match.start()
        return self.mark_at(start), start

    def mark_at(self, offset: int) -> Mark:
        line = self.text.count("\n", 0, offset) + 1
        return Mark(self.shown, line, offset - (self.text.rfind("\n", 0, offset) + 1) + 1)


class _Job:
    """One job's metadata with typed, positioned access to its keys."""

    def __init__(self, meta: dict, where: _JsonText, offset: int, job_id: str,
                 line: int | None = None):
        self.meta = meta
        self.where = where
        self.offset = offset
        self.id = job_id
        self.line = line if line is not None else where.mark_at(offset).line

    def mark(self, key: str | None = None) -> Mark:
        if key is None or key not in self.meta or not self.where.text:
            return Mark(self.where.shown, self.line, 1)
        return self.where.find(key, self.offset)[0]

    def caveat(self, message: str, key: str | None = None) -> Caveat:
        return Caveat(self.where.shown, self.mark(key).line, message)

    def number(self, key: str, *, whole: bool = False, low: float | None = None,
               high: float | None = None) -> Any:
        value = self.meta.get(key, DEFAULTS.get(key))
        if value is None:
            return None
        if isinstance(value, str):  # FP-Studio's UI sometimes stores numbers as text
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
            raise ShotError.at(self.mark(key), f"{key} must be a number, not {value!r}")
        if whole:
            if value != int(value):
                raise ShotError.at(self.mark(key), f"{key} must be a whole number, not "
                                                   f"{value!r}")
            value = int(value)
        if (low is not None and value < low) or (high is not None and value > high):
            raise ShotError.at(self.mark(key), f"{key} {value!r} is out of framepack-render's "
                                               f"range ({low:g} to {high:g})")
        return value

    def text(self, key: str) -> str | None:
        value = self.meta.get(key)
        if value is not None and not isinstance(value, str):
            raise ShotError.at(self.mark(key), f"{key} must be text, not {value!r}")
        return value

    def flag(self, key: str) -> bool:
        value = self.meta.get(key)
        return value is True or (isinstance(value, str) and value.strip().lower() == "true")


def _build(job: _Job, context: _Context, *, metadata_file: bool,
           text_line: bool = False) -> Draft | None:
    model_type = job.text("model_type") or "Original"
    if model_type not in MODELS:
        context.skipped.append(job.caveat(
            f"job {job.id} uses FP-Studio's '{model_type}' model, which framepack-render "
            "cannot import (XY plots and video end frames are not shots); skipped",
            "model_type"))
        return None
    label = f"{context.shown}:{job.line}" if text_line else \
        (context.shown if metadata_file else f"{context.shown} job {job.id}")
    draft = Draft(context.shown, job.line, label, "FramePack-Studio " + (
        "timestamped prompts" if text_line else "job metadata" if metadata_file else "queue"),
        job.id)
    _Settings(job, context, draft, model_type, text_line).fill()
    return draft


class _Settings:
    """Fills a draft from one job's metadata."""

    def __init__(self, job: _Job, context: _Context, draft: Draft, model_type: str,
                 text_line: bool):
        self.job = job
        self.context = context
        self.draft = draft
        self.model_type = model_type
        self.text_line = text_line
        self.forward = MODELS[model_type] == "framepack-f1"

    def fill(self) -> None:
        job, doc = self.job, self.draft.doc
        self._unknown_keys()
        window = job.number("latent_window_size", whole=True, low=1, high=33)
        total = job.number("total_second_length", low=1e-3, high=3600)
        steps = job.number("steps", whole=True, low=1, high=200)
        cfg = job.number("cfg", low=1, high=100)
        guidance = job.number("gs", low=0, high=100)
        video = self._input_video() if self.model_type in VIDEO_MODELS else None
        start, size = (None, (video.width, video.height)) if video else self._start_image()
        loras = self._loras()
        doc["model"] = model_value(MODELS[self.model_type], loras)
        doc["size"] = f"{size[0]}x{size[1]}"
        if window != 9:
            doc["window"] = window
        doc["seed"] = fix_seed(self.draft, self._seed(), job.mark("seed").line,
                               self.context.path.name, job.id, job.meta.get("prompt"))
        doc["steps"] = steps
        doc["guidance"] = float(guidance)
        self._cfg(cfg)
        self._caches()
        if video is not None:
            self._extension(video)
            doc["sections"] = _at_rate(self._sections(total, window, None), video.fps)
            return
        doc["image"] = start
        self._end_image()
        doc["sections"] = self._sections(total, window, start)

    def _unknown_keys(self) -> None:
        for key in self.job.meta:
            if key not in QUIET_KEYS:
                self.draft.warn(f"'{key}' is not carried over (framepack-render has no such "
                                "setting)", self.job.mark(key).line)
        rescale = self.job.number("rs")
        if rescale:
            self.draft.warn(f"rs {rescale:g} (CFG re-scale) is not carried over",
                            self.job.mark("rs").line)

    def _seed(self) -> int | None:
        if self.text_line or self.job.meta.get("seed") is None:
            return None
        seed = self.job.number("seed", whole=True)
        if not 0 <= seed < 2 ** 64:
            raise ShotError.at(self.job.mark("seed"), f"seed {seed}: framepack-render takes "
                                                      "seeds from 0 to 2**64-1")
        return seed

    def _cfg(self, cfg: float) -> None:
        negative = self.job.text("negative_prompt") or ""
        if cfg > 1:
            self.draft.doc["cfg"] = float(cfg)
            self.draft.doc["negative_prompt"] = negative
        elif negative:
            self.draft.note(f"negative_prompt is left out: FP-Studio uses it only with cfg "
                            f"above 1 (it was: {negative})")

    def _caches(self) -> None:
        job = self.job
        if job.flag("use_magcache"):
            self.draft.warn("MagCache is not carried over (framepack-render has none); the "
                            "shot renders every step", job.mark("use_magcache").line)
            return  # FP-Studio turns TeaCache off whenever MagCache is on
        if job.flag("use_teacache"):
            threshold = job.number("teacache_rel_l1_thresh") or 0.15
            if 0 < threshold <= 1:
                self.draft.doc["teacache"] = float(threshold)
            else:
                self.draft.warn(f"TeaCache threshold {threshold:g} is out of range; left off",
                                job.mark("teacache_rel_l1_thresh").line)

    def _loras(self) -> list[tuple[Path, float]]:
        loras = self.job.meta.get("loras") or {}
        if not isinstance(loras, dict):
            raise ShotError.at(self.job.mark("loras"), "loras must be a mapping {name: weight}")
        wanted = []
        for name, weight in loras.items():
            if isinstance(weight, bool) or not isinstance(weight, (int, float)):
                raise ShotError.at(self.job.mark("loras"), f"LoRA '{name}' has weight "
                                                           f"{weight!r}; expected a number")
            wanted.append((str(name), float(weight)))
        folders = list(self.context.options.lora_dirs) + [
            self.context.path.parent / "loras", self.context.path.parent.parent / "loras",
            Path.cwd() / "loras"]
        return find_loras(self.draft, wanted, folders, self.job.mark("loras").line)

    # -------------------------------------------------------------- images

    def _start_image(self) -> tuple[Picture, tuple[int, int]]:
        job = self.job
        width, height = (job.number(k, whole=True, low=1) for k in ("resolutionW",
                                                                     "resolutionH"))
        has_image = self.text_line or job.meta.get("has_input_image", True) is not False
        if has_image:
            picture = self._find_image("input")
            if picture is None:
                raise ShotError.at(job.mark("input_image_path"), f"job {job.id}: start image "
                                   "not found; pass --image IMG")
            bucket = studio_bucket(picture.height, picture.width, width)
        else:
            bucket = studio_bucket(height, width, (width + height) / 2)
            picture = self._latent_image((bucket[1], bucket[0]))
        size = snap_side(self.draft, bucket[1], bucket[0], job.line)
        return picture, size

    def _latent_image(self, size: tuple[int, int]) -> Picture:
        kind = self.job.text("latent_type") or "Black"
        if kind in LATENT_COLORS:
            self.draft.note(f"text-to-video job: the start image is FP-Studio's {kind} "
                            "latent image")
            return made_picture(f"{kind.lower().replace(' ', '-')}.png", size,
                                LATENT_COLORS[kind])
        seed = derived_seed(self.context.path.name, self.job.id, "noise")
        if kind != "Noise":
            self.draft.warn(f"latent_type '{kind}' is unknown; FP-Studio falls back to black",
                            self.job.mark("latent_type").line)
            return made_picture("black.png", size, (0, 0, 0))
        self.draft.warn("latent_type Noise: FP-Studio draws a new noise image each run; this "
                        "shot's start image is fixed noise", self.job.mark("latent_type").line)
        return made_picture("noise.png", size, None, seed)

    def _find_image(self, role: str) -> Picture | None:
        """The job's start ('input') or end ('end_frame') image, looked up where FP-Studio
        keeps it: the archive, the saved path, the path the job names, <job id>.png."""
        job = self.job
        saved = job.text(f"saved_{role}_image_path") if not self.text_line else None
        named = job.text(f"{role}_image_path") if not self.text_line else None
        archive = self.context.archive
        if archive is not None:
            for wanted in (saved, f"queue_images/{job.id}_{role}.png"):
                member = archive.find(Path(wanted).name) if wanted else None
                if member is not None:
                    return picture_from_bytes(member.basename, archive.read(member),
                                              Mark(archive.shown_member(member)))
        folder = self.context.path.parent
        candidates = [p for p in (saved, named) if p]
        if role == "input" and not self.text_line:
            candidates += [str(folder / f"{job.id}.png"), str(folder.parent / f"{job.id}.png")]
        for written in candidates:
            for path in (Path(written).expanduser(), folder / written):
                if path.is_file():
                    return picture_from_file(path, job.mark(f"{role}_image_path"), written)
        if role == "input" and self.context.options.image is not None:
            image = self.context.options.image
            return picture_from_file(image, job.mark(), str(image))
        return None

    def _end_image(self) -> None:
        job = self.job
        wanted = job.flag("end_frame_used") or job.meta.get("end_frame_image_path") or \
            job.meta.get("saved_end_frame_image_path")
        if not wanted or self.text_line:
            return
        if self.model_type != "Original with Endframe":
            self.draft.warn(f"the end frame is not used by FP-Studio's '{self.model_type}' "
                            "model; left out", job.mark("end_frame_image_path").line)
            return
        picture = self._find_image("end_frame")
        if picture is None:
            self.draft.warn("the end frame image was not found; the shot has no end image",
                            job.mark("end_frame_image_path").line)
            return
        self.draft.doc["end_image"] = picture
        strength = job.number("end_frame_strength", low=0, high=1)
        if strength != 1.0:
            self.draft.doc["end_image_strength"] = float(strength)

    # -------------------------------------------------------------- input video

    def _input_video(self) -> _Video:
        """The video a Video / Video F1 job extends, looked up as FP-Studio opens it: the path
        as written (relative to FP-Studio's folder, the one holding the queue or metadata)."""
        job = self.job
        key, written = self._video_key()
        folder = self.context.path.parent
        candidates = [Path(written).expanduser(), folder / written,
                      folder / "input_files" / Path(written).name]
        found = next((path for path in candidates if path.exists()), None)
        if found is None:
            raise ShotError.at(job.mark(key), f"job {job.id}: input video '{written}' not "
                                              f"found (looked beside {display_path(folder)})")
        try:
            probed = probe_video(found)
        except VideoProblem as problem:
            raise ShotError.at(job.mark(key), f"input video '{written}' {problem}") from None
        return _Video(found.resolve(), probed.width, probed.height, probed.fps)

    def _video_key(self) -> tuple[str, str]:
        for key in VIDEO_KEYS:
            value = self.job.meta.get(key)
            if isinstance(value, str) and value.strip():
                return key, value.strip()
        raise ShotError.at(self.job.mark("model_type"), f"job {self.job.id}: a "
                           f"'{self.model_type}' job without its input video (input_video)")

    def _extension(self, video: _Video) -> None:
        """input_video and the FP-Studio video options that have no counterpart here."""
        job, doc = self.job, self.draft.doc
        doc["input_video"] = video.path
        doc["extend"] = "forward"  # FP-Studio's video modes always continue after the video
        doc["keep_input"] = True
        self._video_resize(video)
        self._video_end_frame()
        line = job.mark("num_cleaned_frames").line
        context = "its last 19 latents as 1x/2x/4x history" if self.forward else \
            "its last frame as the clean prefix"
        if "num_cleaned_frames" in job.meta:
            cleaned = job.number("num_cleaned_frames")
            self.draft.warn(f"num_cleaned_frames {cleaned:g} (FP-Studio's context frames) is "
                            f"not carried over: the new windows read {context}", line)
        if job.flag("combine_with_source"):
            self.draft.warn("combine_with_source: FP-Studio also writes a second file with the "
                            "source frames; this shot writes one video, the input's frames as "
                            "decoded then the new ones (keep_input: false for the new frames "
                            "alone)", job.mark("combine_with_source").line)
        if video.fps != FPS:
            self.draft.note(f"the input video runs at {video.fps:g} fps, the shot's rate; "
                            "section lengths are FP-Studio's frame counts")
        self.draft.note(f"'{self.model_type}' job: extends input_video forward from its last "
                        "frame; the length counts the new frames")

    def _video_resize(self, video: _Video) -> None:
        """FP-Studio resizes the input to its resolution bucket; a shot never resizes it."""
        job = self.job
        resolution = job.number("resolutionW", whole=True, low=1)
        bucket_h, bucket_w = studio_bucket(video.height, video.width, resolution)
        if (bucket_w, bucket_h) != (video.width, video.height):
            self.draft.warn(f"FP-Studio resizes the {video.width}x{video.height} input video to "
                            f"{bucket_w}x{bucket_h} (resolution {resolution}); this shot "
                            "extends it at its own size (resize the video first for "
                            "FP-Studio's framing)", job.mark("resolutionW").line)

    def _video_end_frame(self) -> None:
        job = self.job
        if job.flag("end_frame_used") or job.meta.get("end_frame_image_path") or \
                job.meta.get("saved_end_frame_image_path"):
            self.draft.warn("the end frame of a video job is not carried over; the shot has "
                            "no end image", job.mark("end_frame_image_path").line)

    # -------------------------------------------------------------- time

    def _sections(self, total: float, window: int, start: Picture | None) -> list[dict]:
        job = self.job
        text = job.text("prompt") or ""
        timed = timed_prompts(text, total, window, self.model_type in MIRRORED)
        first = 0 if self.model_type in VIDEO_MODELS else None
        prompts = window_prompts(timed, total, window, self.forward, first)
        check_length(len(prompts), window, job.mark("total_second_length"))
        blend = job.number("blend_sections")
        if blend and len(timed) > 1 and len(set(prompts)) > 1:
            self.draft.warn(f"blend_sections {blend:g}: FP-Studio mixes 1/{blend:g} of the next "
                            "prompt into one window at each prompt change; not carried over "
                            "(add blend: to a section for a gradual change)",
                            job.mark("blend_sections").line)
        if len(timed) > 1:
            self.draft.note("sections follow FP-Studio's placement of the timestamps (snapped"
                            + (", mirrored for the inverted model" if not self.forward else "")
                            + ")")
        return sections_from_windows([Window(p) for p in prompts], start, window)
