"""musubi-tuner prompt files (``fpack_generate_video.py --from_file``): one shot per job line.

The grammar is musubi-tuner's own: a line is stripped; blank lines and lines starting with
'#' are skipped; the line splits on " --", part 0 is the prompt, each other part is an
option and its value (split at the first space). Unknown options are ignored by musubi-tuner
and warned about here; a repeated option's last value wins; ``--ci``/``--cim`` repeat.

The prompt and ``--i`` may hold sections: ``0:text;;;-1:text;;;2-3:text``. For the window at
time index i of N, musubi-tuner takes the entry at i - N (counted from the end), else at i,
else at 0; each window uses its own entry, so an image does not persist past its window.
Paths are relative to the working directory, as they are for musubi-tuner.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..shot.errors import Mark, Report, ShotError, display_path
from ..shot.yaml_loader import read_text
from .draft import (EDIT_OUTPUT, FPS, MAX_SECTIONS, Draft, Picture, Result, Window,
                    check_length, fix_seed, made_picture, model_value, picture_from_file,
                    sections_from_windows, snap_side, window_count)
from .options import Options

TOOL = "a musubi-tuner prompt file"
WINDOW = 9  # --latent_window_size is a command-line setting, 9 unless changed there
INTS = {"w", "h", "d", "s", "vs", "mck"}
FLOATS = {"f", "g", "l", "fs", "mcrr", "mct"}
TEXTS = {"i", "n", "ei", "ci", "cim", "of"}
MAGCACHE = {"mcrr", "mct", "mck"}
IGNORED = {"im": "image masks", "cn": "control videos"}
ONE_FRAME_FLAGS = {"no_2x", "no_4x", "no_post", "default"}
_INDEX = re.compile(r"^(-?\d+)(-\d+)?$")


@dataclass
class Option:
    name: str
    value: str
    col: int  # of the value (of the option when it has none)


@dataclass
class Job:
    line: int
    text: str
    prompt: str
    options: dict[str, Option] = field(default_factory=dict)
    repeated: dict[str, list[Option]] = field(default_factory=dict)  # --ci, --cim


def read(path: Path, options: Options) -> Result:
    shown = display_path(path)
    text = read_text(path, shown, "a prompt file")
    report = Report()
    drafts = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        try:
            job = parse_line(raw, number, shown)
            drafts.append(_Builder(job, shown, path, options).build())
        except ShotError as error:
            for diagnostic in error.diagnostics:
                report.error(diagnostic.mark, diagnostic.message)
    report.raise_if_errors()
    return Result(drafts)


def parse_line(raw: str, number: int, shown: str) -> Job:
    """One job line, as musubi-tuner's parse_prompt_line splits it, with columns kept."""
    start = len(raw) - len(raw.lstrip())
    line = raw.strip()
    pieces = line.split(" --")
    prompt = pieces[0].strip()
    job = Job(number, line, prompt)
    offset = start + len(pieces[0]) + 3  # where the next piece starts in the raw line
    for piece in pieces[1:]:
        here, offset = offset, offset + len(piece) + 3
        if not piece.strip():
            continue
        name, _, rest = piece.partition(" ")
        name = name.strip()
        value = rest.strip()
        col = here + 1 + (len(name) + 1 + len(rest) - len(rest.lstrip()) if value else 0)
        option = Option(name, value, col)
        if name in ("ci", "cim"):
            job.repeated.setdefault(name, []).append(option)
        job.options[name] = option
        if not value and (name in INTS or name in FLOATS or name in ("i", "ei", "ci", "cim")):
            raise ShotError.at(Mark(shown, number, here - 1),
                               f"option --{name} needs a value (musubi-tuner stops here)")
    return job


def section_strings(text: str | None) -> dict[int, str]:
    """musubi-tuner's parse_section_strings: {section index: text}."""
    found: dict[int, str] = {}
    if text is None:
        return found
    if ";;;" not in text:
        found[0] = text
    else:
        for part in text.split(";;;"):
            if ":" not in part:
                start = end = 0
                part = part.strip()
            else:
                index, part = part.split(":", 1)
                part = part.strip()
                match = _INDEX.match(index.strip())
                if match:
                    start = int(match.group(1))
                    end = int(match.group(2)[1:]) if match.group(2) is not None else start
                else:
                    start = end = 0
            for i in range(start, end + 1):
                found[i] = part
    if found and 0 not in found:
        indices = list(found)
        fallback = min(indices) if all(i < 0 for i in indices) else \
            min(i for i in indices if i >= 0)
        found[0] = found[fallback]
    return found


def entry_for(entries: dict[int, Any], index: int, count: int) -> int:
    """Which entry the window at time ``index`` of ``count`` uses (from-end first)."""
    from_end = index - count
    if from_end in entries:
        return from_end
    return index if index in entries else 0


class _Builder:
    """Turns one parsed job into a draft shot."""

    def __init__(self, job: Job, shown: str, path: Path, options: Options):
        self.job = job
        self.shown = shown
        self.options = options
        self.model = options.model or "framepack"
        self.draft = Draft(shown, job.line, f"{shown}:{job.line}", TOOL,
                           f"{path.stem}-{job.line:03d}")

    def mark(self, name: str) -> Mark:
        option = self.job.options.get(name)
        return Mark(self.shown, self.job.line, option.col if option else 1)

    def value(self, name: str, kind: type, default: Any = None) -> Any:
        option = self.job.options.get(name)
        if option is None:
            return default
        try:
            return kind(option.value)
        except ValueError:
            word = "a whole number" if kind is int else "a number"
            raise ShotError.at(self.mark(name), f"--{name} must be {word}, not "
                                                f"'{option.value}'") from None

    def build(self) -> Draft:
        self._unsupported()
        width, height = self._size()
        count = self._count()
        prompts = section_strings(self.job.prompt if self.job.prompt else " ")
        images = self._images(width, height)
        doc: dict[str, Any] = self.draft.doc
        doc["model"] = model_value(self.model, [])
        doc["size"] = f"{width}x{height}"
        doc["seed"] = fix_seed(self.draft, self._seed(), self.job.line,
                               Path(self.shown).name, self.job.line, self.job.text)
        doc["steps"] = self._steps()
        self._guidance(doc)
        self._flow_shift(doc)
        if "of" in self.job.options:
            self._one_frame(doc, prompts, images)
        else:
            self._video(doc, count, prompts, images)
        return self.draft

    # -------------------------------------------------------------- settings

    def _unsupported(self) -> None:
        for name in self.job.options:
            if name in MAGCACHE:
                self.draft.warn(f"--{name} is a MagCache setting; framepack-render has no "
                                "MagCache, so the shot renders every step")
            elif name in IGNORED:
                self.draft.warn(f"--{name} ({IGNORED[name]}) is ignored by musubi-tuner too")
            elif name not in INTS | FLOATS | TEXTS:
                self.draft.warn(f"unknown option --{name}; musubi-tuner ignores it too")

    def _size(self) -> tuple[int, int]:
        width, height = self.value("w", int, 256), self.value("h", int, 256)
        if width % 8 or height % 8:
            raise ShotError.at(self.mark("w" if width % 8 else "h"),
                               f"size {width}x{height}: musubi-tuner needs multiples of 8")
        if not (64 <= width <= 2048 and 64 <= height <= 2048):
            raise ShotError.at(self.mark("w" if not 64 <= width <= 2048 else "h"),
                               f"size {width}x{height}: framepack-render renders sides of "
                               "64 to 2048")
        return snap_side(self.draft, width, height, self.job.line)

    def _count(self) -> int:
        seconds = self.value("f", float, 5.0)
        if not math.isfinite(seconds):
            raise ShotError.at(self.mark("f"), "--f must be a finite number of seconds")
        if "vs" in self.job.options:
            seconds = (self.value("vs", int) * WINDOW * 4 + 1) / FPS
        count = window_count(seconds, WINDOW)
        check_length(count, WINDOW, self.mark("vs" if "vs" in self.job.options else "f"))
        return count

    def _seed(self) -> int | None:
        seed = self.value("d", int)
        if seed is not None and not 0 <= seed < 2 ** 64:
            raise ShotError.at(self.mark("d"), f"seed {seed}: framepack-render takes seeds "
                                               "from 0 to 2**64-1")
        return seed

    def _steps(self) -> int:
        steps = self.value("s", int, 25)
        if not 1 <= steps <= 200:
            raise ShotError.at(self.mark("s"), f"--s {steps}: framepack-render takes 1 to "
                                               "200 steps")
        return steps

    def _guidance(self, doc: dict[str, Any]) -> None:
        """musubi-tuner's --g and --l set guidance_scale, its true CFG; the distilled guidance
        (--embedded_cfg_scale) is a command-line setting, 10 unless changed there."""
        name = "l" if "l" in self.job.options and (
            "g" not in self.job.options or self.job.options["l"].col >
            self.job.options["g"].col) else "g"
        cfg = self.value(name, float, 1.0)
        if not 1.0 <= cfg <= 100.0:
            raise ShotError.at(self.mark(name), f"--{name} {cfg:g} is musubi-tuner's true CFG "
                                                "scale; framepack-render takes 1 to 100")
        negative = self.job.options.get("n")
        if cfg != 1.0:
            doc["cfg"] = cfg
            self.draft.note(f"--{name} {cfg:g} is musubi-tuner's true CFG scale (cfg); the "
                            "distilled guidance stays at 10")
            doc["negative_prompt"] = negative.value if negative else ""
        elif negative is not None and negative.value:
            self.draft.note("--n is left out: musubi-tuner uses the negative prompt only "
                            f"with --g above 1 (it was: {negative.value})")

    def _flow_shift(self, doc: dict[str, Any]) -> None:
        shift = self.value("fs", float)
        if shift is None:
            return
        if not 1.0 <= shift <= 20.0:
            raise ShotError.at(self.mark("fs"), f"--fs {shift:g}: framepack-render takes a "
                                                "fixed flow shift of 1 to 20")
        doc["flow_shift"] = shift

    # -------------------------------------------------------------- images

    def _images(self, width: int, height: int) -> dict[int, Picture]:
        option = self.job.options.get("i")
        written = section_strings(option.value) if option else {}
        pictures = {index: self._picture(text, "i") for index, text in written.items()}
        if 0 not in pictures:
            if self.options.image is not None:
                pictures[0] = picture_from_file(self.options.image, Mark(self.shown,
                                                self.job.line), str(self.options.image))
            else:
                pictures[0] = made_picture("black.png", (width, height), (0, 0, 0))
                self.draft.warn("no --i: musubi-tuner starts from a black image, and so does "
                                "this shot (or pass --image IMG)")
        return pictures

    def _picture(self, written: str, name: str) -> Picture:
        return picture_from_file(Path(written).expanduser(), self.mark(name), written)

    # -------------------------------------------------------------- video

    def _video(self, doc: dict[str, Any], count: int, prompts: dict[int, str],
               images: dict[int, Picture]) -> None:
        for name in ("ci", "cim"):
            if name in self.job.options:
                self.draft.warn(f"--{name} is used only with --of (one-frame inference); "
                                "musubi-tuner ignores it here too")
        forward = self.model == "framepack-f1"
        windows = [Window(prompts[entry_for(prompts, i, count)],
                          images[entry_for(images, i, count)]) for i in range(count)]
        start = images[0] if forward else windows[0].image
        assert start is not None
        if forward and not windows[0].image.same(start):
            self.draft.warn("the first window's --i section image is dropped: under F1 "
                            "sampling the shot starts from --i section 0")
        doc["image"] = start
        self._end_image(doc, forward)
        sections = sections_from_windows(windows, start, WINDOW)
        if len(sections) > MAX_SECTIONS:
            raise ShotError.at(Mark(self.shown, self.job.line), f"{len(sections)} sections; "
                               f"framepack-render's limit is {MAX_SECTIONS}")
        if not forward and any("image" in s for s in sections):
            self.draft.warn("--i section images: musubi-tuner keeps FramePack's latent "
                            "padding in an image's window; framepack-render starts a keyframe "
                            "section at padding 0, so the video passes through the image there")
        doc["sections"] = sections

    def _end_image(self, doc: dict[str, Any], forward: bool) -> None:
        option = self.job.options.get("ei")
        if option is None:
            return
        picture = self._picture(option.value, "ei")
        if forward:
            self.draft.warn("--ei is ignored under F1 sampling, by musubi-tuner too")
            return
        doc["end_image"] = picture

    # -------------------------------------------------------------- one frame

    def _one_frame(self, doc: dict[str, Any], prompts: dict[int, str],
                   images: dict[int, Picture]) -> None:
        flags, target, control_indices = self._one_frame_options()
        if len(prompts) > 1 or len(images) > 1:
            self.draft.warn("one-frame inference uses section 0 of the prompt and of --i "
                            "only, in musubi-tuner too")
        if "ei" in self.job.options:
            self.draft.warn("--ei is ignored in one-frame inference, by musubi-tuner too")
        controls = self._controls(control_indices, "no_post" not in flags)
        edit: dict[str, Any] = {"name": "edit", "image": images[0], "prompt": prompts[0]}
        if controls:
            edit["controls"] = controls
        else:
            self.draft.warn("no --ci: musubi-tuner conditions on an all-zero latent; the "
                            "edit uses the start image as its control at index 0")
        if target is not None:
            edit["target_index"] = target
        for flag in ("no_2x", "no_4x", "no_post"):
            if flag in flags:
                edit[flag] = True
        edit["output"] = EDIT_OUTPUT
        doc["image"] = {"edit": "edit"}
        doc["sections"] = [{"prompt": prompts[0], "duration": "1.2s"}]
        doc["edits"] = [edit]
        self.draft.warn("one-frame job: the edit writes the PNG; the shot also animates it "
                        "for one window (a shot always renders a video)")

    def _one_frame_options(self) -> tuple[set[str], int | None, list[int]]:
        option = self.job.options["of"]
        flags: set[str] = set()
        target, indices = None, []
        for item in (part.strip() for part in option.value.split(",")):
            if item.startswith("target_index="):
                target = self._index(item.split("=")[1], "target_index")
            elif item.startswith("control_index="):
                indices = [self._index(v, "control_index") for v in item.split("=")[1].split(";")]
            elif item in ONE_FRAME_FLAGS:
                flags.add(item)
            elif item:
                self.draft.warn(f"unknown one-frame option '{item}'; musubi-tuner ignores it "
                                "too")
        return flags, target, indices

    def _index(self, text: str, what: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise ShotError.at(self.mark("of"), f"{what} must be a whole number, not "
                                                f"'{text}'") from None
        if not 0 <= value <= 100:
            raise ShotError.at(self.mark("of"), f"{what} {value}: framepack-render takes 0 "
                                                "to 100")
        return value

    def _controls(self, indices: list[int], post: bool) -> list[dict[str, Any]]:
        images = self.job.repeated.get("ci", [])
        masks = self.job.repeated.get("cim", [])
        if len(indices) > len(images):
            what = "also moves the zero post latent" if post else "ignores the rest"
            self.draft.warn(f"control_index lists {len(indices)} indices for {len(images)} "
                            f"--ci images; musubi-tuner {what}, which is not carried over")
        if len(masks) > len(images):
            self.draft.warn(f"{len(masks)} --cim masks for {len(images)} --ci images; the "
                            "extra masks are ignored, by musubi-tuner too")
        controls = []
        for number, option in enumerate(images):
            control: dict[str, Any] = {"image": picture_from_file(
                Path(option.value).expanduser(), Mark(self.shown, self.job.line, option.col),
                option.value)}
            if number < len(masks):
                mask = masks[number]
                control["mask"] = picture_from_file(Path(mask.value).expanduser(),
                                                    Mark(self.shown, self.job.line, mask.col),
                                                    mask.value)
            control["index"] = indices[number] if number < len(indices) else 0
            controls.append(control)
        return controls
