"""What an importer builds for each job before anything is written: a draft shot.

A draft is the shot as plain data (images as ``Picture`` objects, LoRA files as paths, both
turned into paths relative to the output folder when written), with the notes and warnings
that go into its leading comment. The helpers here are shared by every importer: images read
and checked, windows grouped into sections, random seeds fixed, LoRA names looked up.
"""

from __future__ import annotations

import hashlib
import io
import json
import random
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from ..shot.errors import Mark, ShotError, display_path
from ..shot.images import ImageProblem, probe_image
from ..shot.lora import lora_problem

FPS = 30  # every tool imported here renders at 30 fps
MAX_SHOT_SECONDS = 3600.0  # the shot format's limit
MAX_SECTIONS = 1000
EDIT_OUTPUT = "\x00edit-output"  # replaced by the writer with the shot's own PNG name


@dataclass(frozen=True)
class Caveat:
    """Something that did not carry over, printed as ``FILE:LINE: warning: ...``."""

    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: warning: {' '.join(self.message.split())}"


@dataclass(frozen=True, eq=False)
class Picture:
    """An image a shot names: a file on disk, or bytes (from an archive, or made here)."""

    name: str  # the file name it came with, kept in the copy's name
    width: int
    height: int
    sha256: str
    path: Path | None = None
    data: bytes | None = None

    def same(self, other: "Picture | None") -> bool:
        return other is not None and other.sha256 == self.sha256


@dataclass
class Draft:
    """One job of a source file, as a shot to write."""

    file: str  # the source as shown in messages
    line: int
    label: str  # "prompts.txt:3", "queue.json job 250101_..."
    tool: str  # what the source is, for the leading comment
    name: str  # the shot file's stem (the writer makes it unique)
    doc: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    caveats: list[Caveat] = field(default_factory=list)

    def warn(self, message: str, line: int | None = None) -> None:
        self.caveats.append(Caveat(self.file, self.line if line is None else line, message))

    def note(self, message: str) -> None:
        self.notes.append(message)


@dataclass
class Result:
    """What one source file gave: its drafts, and warnings about jobs that gave no shot."""

    drafts: list[Draft] = field(default_factory=list)
    caveats: list[Caveat] = field(default_factory=list)


@dataclass(frozen=True)
class Window:
    """One generation window, in time order: its prompt and its clean-prefix image."""

    prompt: str
    image: Picture | None = None  # None: the start image


# ------------------------------------------------------------------ images


def picture_from_file(path: Path, mark: Mark, written: str) -> Picture:
    """A checked image on disk; ShotError at ``mark`` when it is missing or does not decode."""
    try:
        info = probe_image(path)
    except ImageProblem as problem:
        raise ShotError.at(mark, f"image '{written}' {problem}") from None
    return Picture(path.name, info.width, info.height, info.sha256, path=path.resolve())


def picture_from_bytes(name: str, data: bytes, mark: Mark) -> Picture:
    """A checked image held in memory (an archive member)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                image.load()
                size = image.size
    except UnidentifiedImageError:
        raise ShotError.at(mark, f"image '{name}' is not an image Pillow can read") from None
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        raise ShotError.at(mark, f"image '{name}' is too large to be a frame") from None
    except Exception as exc:  # noqa: BLE001 - decoders raise many types for broken files
        raise ShotError.at(mark, f"image '{name}' does not decode: {exc}") from None
    return Picture(name, size[0], size[1], hashlib.sha256(data).hexdigest(), data=data)


def made_picture(name: str, size: tuple[int, int], color: tuple[int, int, int] | None,
                 seed: int = 0) -> Picture:
    """A PNG made here: a solid colour, or (``color`` None) reproducible RGB noise."""
    from PIL import Image

    if color is None:
        noise = random.Random(seed).randbytes(size[0] * size[1] * 3)
        image = Image.frombytes("RGB", size, noise)
    else:
        image = Image.new("RGB", size, color)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    data = buffer.getvalue()
    return Picture(name, size[0], size[1], hashlib.sha256(data).hexdigest(), data=data)


# ------------------------------------------------------------------ time


def duration_value(frames: int) -> str | dict[str, int]:
    """A section length of whole windows as the shot writes it: "2.4s" when that is exact,
    else {frames: N}."""
    seconds = frames / FPS
    text = repr(seconds)
    if "e" not in text and len(text) <= 8 and abs(float(text) * FPS - frames) < 1e-6:
        return f"{text[:-2] if text.endswith('.0') else text}s"
    return {"frames": frames}


def sections_from_windows(windows: list[Window], start: Picture | None,
                          window: int) -> list[dict]:
    """Consecutive windows with the same prompt and prefix image become one section; a
    section whose prefix image differs from the one before it gets it as its keyframe.
    The first window's image must be the start image (callers warn when it is not); ``start``
    is None when the shot's start is an input video's last frame."""
    sections: list[dict] = []
    current = start
    for index, (prompt, count, image) in enumerate(_runs(windows, start)):
        section: dict[str, Any] = {"prompt": prompt,
                                   "duration": duration_value(count * 4 * window)}
        if index and not _same(image, current):
            section["image"] = image
            current = image
        sections.append(section)
    return sections


def _same(one: Picture | None, other: Picture | None) -> bool:
    return one is other or (one is not None and one.same(other))


def _runs(windows: list[Window], start: Picture | None
          ) -> Iterable[tuple[str, int, Picture | None]]:
    """(prompt, number of windows, prefix image) for each run of equal windows."""
    runs: list[list[Any]] = []
    for item in windows:
        image = item.image or start
        if runs and runs[-1][0] == item.prompt and _same(runs[-1][2], image):
            runs[-1][1] += 1
        else:
            runs.append([item.prompt, 1, image])
    return [(prompt, count, image) for prompt, count, image in runs]


def check_length(count: int, window: int, mark: Mark) -> None:
    """A video the shot format cannot hold is an input error, not a shot that fails later."""
    seconds = count * 4 * window / FPS
    if seconds > MAX_SHOT_SECONDS:
        raise ShotError.at(mark, f"the video lasts {seconds:.0f} s; framepack-render's limit "
                                 f"is {MAX_SHOT_SECONDS:.0f} s")


def window_count(seconds: float, window: float) -> int:
    """FramePack's section count: Python's round (halves to even), at least one."""
    return int(max(round(seconds * FPS / (window * 4)), 1))


# ------------------------------------------------------------------ settings


def load_json(text: str, shown: str) -> Any:
    """A source file's JSON; malformed JSON is one line at its line and column."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ShotError.at(Mark(shown, exc.lineno, exc.colno), f"not valid JSON: {exc.msg}") \
            from None
    except RecursionError:
        raise ShotError.at(Mark(shown), "JSON nested too deeply") from None
    except ValueError as exc:  # Python refuses integers of more than 4300 digits
        raise ShotError.at(Mark(shown, 1, 1), f"not valid JSON: {exc}".split(";")[0]) from None


def derived_seed(*parts: object) -> int:
    """A fixed seed for a job whose tool would have drawn a random one: the same source gives
    the same seed on every import."""
    text = "\x1f".join(str(p) for p in parts)
    return int(hashlib.sha256(text.encode("utf-8")).hexdigest()[:8], 16)


def fix_seed(draft: Draft, seed: int | None, line: int, *parts: object) -> int:
    """``seed`` itself, or a derived one with a warning when the source leaves it random."""
    if seed is not None:
        return seed
    fixed = derived_seed(*parts)
    draft.warn(f"the seed is random in the source; fixed to {fixed} so that renders repeat",
               line)
    return fixed


def snap_side(draft: Draft, width: int, height: int, line: int) -> tuple[int, int]:
    """Sides as multiples of 16 (the shot format's rule), with a warning when they move."""
    snapped = tuple(max(64, int(side / 16 + 0.5) * 16) for side in (width, height))
    if snapped != (width, height):
        draft.warn(f"size {width}x{height} is rendered as {snapped[0]}x{snapped[1]} (sides "
                   "are multiples of 16 in framepack-render)", line)
    return snapped[0], snapped[1]


def model_value(profile: str, loras: list[tuple[Path, float]]) -> str | dict[str, Any]:
    if not loras:
        return profile
    return {"profile": profile, "lora": [{"path": path, "scale": scale}
                                         for path, scale in loras]}


def find_loras(draft: Draft, wanted: list[tuple[str, float]], folders: list[Path],
               line: int) -> list[tuple[Path, float]]:
    """LoRA files named by the source, looked up in ``folders``; each one not found (or not
    a LoRA framepack-render can merge) is a warning and left out."""
    found = []
    folders = list({folder.resolve(): folder for folder in folders})
    for name, scale in wanted:
        path = _lora_file(name, folders)
        if path is None:
            where = ", ".join(display_path(f) for f in folders) or "no folder"
            draft.warn(f"LoRA '{name}' (weight {scale:g}) not found (looked in {where}; "
                       "pass --lora-dir DIR); the shot renders without it", line)
            continue
        problem = lora_problem(path)
        if problem:
            draft.warn(f"LoRA '{name}' ({path}) {problem}; the shot renders without it", line)
            continue
        found.append((path.resolve(), scale))
    return found


def _lora_file(name: str, folders: list[Path]) -> Path | None:
    names = [name] if name.lower().endswith(".safetensors") else [f"{name}.safetensors", name]
    for folder in folders:
        for candidate in names:
            path = folder / candidate
            if path.is_file():
                return path
    return None
