"""FramePack-eichi section exports: ``section_export_*.zip`` (or a ``sections.yaml`` beside its
images) as one shot.

eichi numbers sections in generation order: section 0 is generated first, which under the
inverted model is the last window in time. A window takes its section's prompt when that is
not blank, else the main prompt (``default_prompt``); its clean prefix is the image of the
first section at or after it (in generation order) that has one, else the start image, so in
time an image holds from its section on until the next, as a keyframe does in a shot.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..shot.errors import Mark, ShotError, display_path
from ..shot.yaml_loader import Node, load_yaml_text, read_text
from .draft import (Draft, Picture, Result, Window, check_length, find_loras, fix_seed,
                    model_value, picture_from_bytes, picture_from_file, sections_from_windows,
                    snap_side, window_count)
from .options import Options
from .zips import open_archive

TOOL = "a FramePack-eichi section export"
IMAGE_SUFFIXES = (".png", ".jpeg", ".jpg", ".webp")
MAX_KEYFRAMES = 50  # the sections eichi's import fills
KNOWN_KEYS = {"SEED", "default_prompt", "lora_settings", "section_info", "video_settings"}
NO_LORA = {"", "なし", "none", "無", "無し"}
DEFAULT_LORA_SCALE = 0.8
# eichi's diffusers_helper/bucket_tools.py: (height, width) per resolution.
SAFE_RESOLUTIONS = [512, 640, 768, 960, 1080]
BUCKETS = {
    512: [(352, 704), (384, 640), (416, 608), (448, 576), (480, 544), (512, 512), (544, 480),
          (576, 448), (608, 416), (640, 384), (704, 352)],
    640: [(416, 960), (448, 864), (480, 832), (512, 768), (544, 704), (576, 672), (608, 640),
          (640, 608), (672, 576), (704, 544), (768, 512), (832, 480), (864, 448), (960, 416)],
    768: [(512, 1024), (576, 960), (640, 896), (704, 832), (768, 768), (832, 704), (896, 640),
          (960, 576), (1024, 512)],
    960: [(640, 1280), (704, 1152), (768, 1024), (832, 960), (896, 896), (960, 832),
          (1024, 768), (1152, 704), (1280, 640)],
    1080: [(720, 1440), (768, 1344), (832, 1248), (896, 1152), (960, 1080), (1024, 1024),
           (1080, 960), (1152, 896), (1248, 832), (1344, 768), (1440, 720)],
}
_SECONDS = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(?:秒|s\b|sec|second)", re.IGNORECASE)
_FRAMES = re.compile(r"(\d+)\s*(?:フレーム|frames?|幀|帧)", re.IGNORECASE)


@dataclass
class ImageFile:
    """An image of the export, read only when a shot uses it."""

    path: str  # within the archive or folder, '/' separated
    load: Callable[[], Picture]

    @property
    def basename(self) -> str:
        return self.path.rsplit("/", 1)[-1]


def eichi_bucket(height: int, width: int, resolution: int) -> tuple[int, int]:
    """eichi's find_nearest_bucket: the least |h*bw - w*bh|, the last of equals winning."""
    if resolution not in SAFE_RESOLUTIONS:
        resolution = min(SAFE_RESOLUTIONS, key=lambda r: abs(r - resolution))
    best, least = BUCKETS[resolution][0], float("inf")
    for bucket_h, bucket_w in BUCKETS[resolution]:
        metric = abs(height * bucket_w - width * bucket_h)
        if metric <= least:
            best, least = (bucket_h, bucket_w), metric
    return best


def read(path: Path, options: Options) -> Result:
    if path.suffix.lower() == ".zip":
        with open_archive(path) as archive:
            member = next((m for m in archive.members
                           if m.name.endswith(("sections.yaml", "sections.yml"))), None)
            if member is None:
                raise ShotError.at(Mark(archive.shown), "no sections.yaml in the archive (is it "
                                                        "an eichi section export?)")
            shown = archive.shown_member(member)
            try:
                text = archive.read(member).decode("utf-8-sig")
            except UnicodeDecodeError as exc:
                raise ShotError.at(Mark(shown), f"not UTF-8 text ({exc.reason})") from None
            images = [ImageFile(m.name, _member_loader(archive, m)) for m in archive.members
                      if m.name.lower().endswith(IMAGE_SUFFIXES)]
            draft = _Export(text, shown, path, images, options, path.stem).draft()
            return Result([draft])
    shown = display_path(path)
    text = read_text(path, shown, "a sections.yaml file")
    folder = path.parent
    images = [ImageFile(p.name, _file_loader(p)) for p in sorted(folder.iterdir())
              if p.is_file() and p.name.lower().endswith(IMAGE_SUFFIXES)]
    name = folder.resolve().name or "sections"
    return Result([_Export(text, shown, path, images, options, name).draft()])


def _member_loader(archive: Any, member: Any) -> Callable[[], Picture]:
    return lambda: picture_from_bytes(member.basename, archive.read(member),
                                      Mark(archive.shown_member(member)))


def _file_loader(path: Path) -> Callable[[], Picture]:
    return lambda: picture_from_file(path, Mark(display_path(path)), path.name)


class _Export:
    """One sections.yaml with its images, turned into a draft."""

    def __init__(self, text: str, shown: str, path: Path, images: list[ImageFile],
                 options: Options, name: str):
        self.root = load_yaml_text(text, shown, str(path.parent))
        if not self.root.is_map:
            raise ShotError.at(self.root.mark, "sections.yaml must be a mapping (SEED, "
                                               "section_info, ...)")
        self.text = text
        self.shown = shown
        self.path = path
        self.images = images
        self.loaded: dict[str, Picture] = {}
        self.options = options
        self.forward = options.model == "framepack-f1"
        self.draft_ = Draft(shown, 1, shown, TOOL, name)

    def line(self, node: Node | None) -> int:
        return node.mark.line if node is not None else 1

    def draft(self) -> Draft:
        draft, doc, root = self.draft_, self.draft_.doc, self.root
        for key in root.value:
            if key not in KNOWN_KEYS:
                draft.warn(f"'{key}' is not carried over (unknown to this import)",
                           root.key_mark(key).line)
        video = self._mapping(root.get("video_settings"), "video_settings")
        window = self._window(video)
        latent_window = 5 if window == 4.5 else int(window)
        seconds = self._seconds(video)
        count = window_count(seconds, window)
        check_length(count, latent_window, self._mark(video.get("video_length")))
        start = self._start(seconds, window)
        size = self._size(video, start)
        doc["model"] = model_value("framepack-f1" if self.forward else "framepack",
                                   self._loras())
        doc["size"] = f"{size[0]}x{size[1]}"
        if latent_window != 9:
            doc["window"] = latent_window
            draft.warn("0.5-second sections: eichi computes them with latent_window_size 4.5 "
                       "(17 frames, 5 latents); imported as window 5, whose latent padding "
                       "differs slightly", self.line(video.get("frame_size")))
        doc["seed"] = fix_seed(draft, self._seed(), self.line(root.get("SEED")),
                               self.path.name, self.text)
        doc["steps"] = 25
        doc["guidance"] = 10.0
        draft.warn("a section export does not record steps, distilled guidance, cfg, TeaCache "
                   "or the end frame's strength; FramePack's defaults are used (25 steps, "
                   "guidance 10, cfg 1, no TeaCache, strength 1)")
        doc["image"] = start
        self._end_image(doc)
        doc["sections"] = self._sections(count, latent_window, start)
        self._padding(video)
        draft.note("eichi numbers sections in generation order: section 0 is generated first"
                   + ("" if self.forward else ", which is the last window in time"))
        return draft

    def _mark(self, node: Node | None) -> Mark:
        return node.mark if node is not None else Mark(self.shown)

    def _mapping(self, node: Node | None, what: str) -> dict[str, Node]:
        if node is None:
            return {}
        if not node.is_map:
            raise ShotError.at(node.mark, f"{what} must be a mapping")
        return dict(node.value)

    # -------------------------------------------------------------- time

    def _window(self, video: dict[str, Node]) -> float:
        node = video.get("frame_size")
        if node is None:
            return 9
        label = str(node.value)
        frames = _FRAMES.search(label)
        if frames and int(frames.group(1)) in (17, 33):
            return 4.5 if int(frames.group(1)) == 17 else 9
        if label.strip().startswith("0.5"):
            return 4.5
        if not label.strip().startswith("1"):
            self.draft_.warn(f"frame_size '{label}' is a UI label this import does not know; "
                             "1-second sections (33 frames) assumed", node.mark.line)
            return 9
        return 9

    def _seconds(self, video: dict[str, Node]) -> float:
        node = video.get("video_length")
        if node is not None:
            match = _SECONDS.match(str(node.value))
            if match:
                return float(match.group(1))
            self.draft_.warn(f"video_length '{node.value}' is a UI label this import does not "
                             "know", node.mark.line)
        if self.options.seconds is not None:
            return self.options.seconds
        raise ShotError.at(self._mark(node), "the export does not say how long the video is; "
                                             "pass --seconds S")

    def _sections(self, count: int, window: int, start: Picture) -> list[dict]:
        draft, root = self.draft_, self.root
        prompts = self._section_prompts()
        default = root.get("default_prompt")
        main = str(default.value) if default is not None and default.value is not None else ""
        keyed = self._section_images()
        by_generation = []
        for generated in range(count):
            prompt = prompts.get(generated, "")
            later = [k for k in keyed if k >= generated]
            image = self._load(keyed[min(later)]) if later else None
            by_generation.append(Window(prompt if prompt.strip() else main, image))
        windows = by_generation if self.forward else by_generation[::-1]
        if default is None and any(not prompts.get(g, "").strip() for g in range(count)):
            draft.warn("no default_prompt: windows without a section prompt get an empty "
                       "prompt (eichi would use whatever its main prompt box held)")
        for number in sorted(prompts):
            if number >= count and prompts[number].strip():
                draft.warn(f"section {number}'s prompt is beyond the video's {count} sections; "
                           "eichi does not use it either")
        first = windows[0].image
        if first is not None and not first.same(start):
            draft.warn("eichi conditions the first window on a section image while the video "
                       "starts from the start image; framepack-render conditions it on the "
                       "start image")
        sections = sections_from_windows(windows, start, window)
        if any("image" in s for s in sections) and not self.forward:
            draft.warn("section images: eichi keeps FramePack's latent padding and the start "
                       "image's SigLIP embedding in a keyframe's windows; framepack-render "
                       "starts a keyframe section at padding 0 with the keyframe's embedding")
        return sections

    def _section_prompts(self) -> dict[int, str]:
        """{section: prompt} as eichi's import reads section_info (the first entry wins)."""
        node = self.root.get("section_info")
        if node is None:
            return {}
        if not node.is_list:
            raise ShotError.at(node.mark, "section_info must be a list of {section, prompt}")
        found: dict[int, str] = {}
        for item in node.value:
            number = item.get("section") if item.is_map else None
            if number is None or isinstance(number.value, bool) or \
                    not isinstance(number.value, int):
                raise ShotError.at(item.mark, "each section_info entry needs a whole-number "
                                              "'section'")
            prompt = item.get("prompt")
            text = "" if prompt is None or prompt.value is None else str(prompt.value)
            if number.value >= MAX_KEYFRAMES or number.value < 0:
                self.draft_.warn(f"section {number.value} is outside eichi's "
                                 f"{MAX_KEYFRAMES} section slots; ignored, as eichi does",
                                 item.mark.line)
                continue
            found.setdefault(number.value, text)
        return found

    def _section_images(self) -> dict[int, ImageFile]:
        """Images named NNN.*, by section number (of equal numbers, the last name sorted)."""
        keyed: dict[int, ImageFile] = {}
        for image in sorted((i for i in self.images if i.basename[:3].isdigit()),
                            key=lambda i: i.path):
            number = int(image.basename[:3])
            if number < MAX_KEYFRAMES:
                keyed[number] = image
        return keyed

    # -------------------------------------------------------------- images

    def _named(self, word: str) -> ImageFile | None:
        """eichi's search for start.* and end.*: a name beginning with the word, else a path
        holding word.png (or .jpg, .jpeg, .webp)."""
        for image in self.images:
            if image.basename.lower().startswith(word):
                return image
        for image in self.images:
            if any(f"{word}{suffix}" in image.path.lower() for suffix in IMAGE_SUFFIXES):
                return image
        return None

    def _load(self, image: ImageFile) -> Picture:
        if image.path not in self.loaded:
            self.loaded[image.path] = image.load()
        return self.loaded[image.path]

    def _start(self, seconds: float, window: float) -> Picture:
        found = self._named("start")
        if found is not None:
            return self._load(found)
        if self.options.image is not None:
            return picture_from_file(self.options.image, Mark(self.shown),
                                     str(self.options.image))
        shown = int(max(round(int(seconds * 30) / (window * 4 - 3)), 1))
        keyed = {k: v for k, v in self._section_images().items() if k < shown}
        if not keyed:
            raise ShotError.at(Mark(self.shown), "the export has no start image (start.png) "
                                                 "and no section image; pass --image IMG")
        number = max(keyed)
        self.draft_.warn(f"no start image in the export: eichi starts from section {number}'s "
                         "image, and so does the shot")
        return self._load(keyed[number])

    def _end_image(self, doc: dict[str, Any]) -> None:
        found = self._named("end")
        if found is None:
            return
        if self.forward:
            self.draft_.warn("the end image is left out: F1 sampling has none")
            return
        doc["end_image"] = self._load(found)

    def _size(self, video: dict[str, Node], start: Picture) -> tuple[int, int]:
        node = video.get("resolution")
        resolution = 640
        if node is not None:
            try:
                resolution = int(float(str(node.value)))
            except ValueError:
                self.draft_.warn(f"resolution '{node.value}' is not a number; 640 assumed",
                                 node.mark.line)
        height, width = eichi_bucket(start.height, start.width, resolution)
        return snap_side(self.draft_, width, height, self.line(node))

    def _padding(self, video: dict[str, Node]) -> None:
        node = video.get("padding_mode")
        if node is not None and node.value not in (False, None, 0, "", "False", "false"):
            value = video.get("padding_value")
            self.draft_.warn("all-padding mode (one latent padding for every section"
                             + (f", {value.value}" if value is not None else "")
                             + ") is not carried over; FramePack's padding schedule is used",
                             node.mark.line)

    # -------------------------------------------------------------- settings

    def _seed(self) -> int | None:
        node = self.root.get("SEED")
        if node is None or node.value == -1:
            return None
        if isinstance(node.value, bool) or not isinstance(node.value, int) or \
                not 0 <= node.value < 2 ** 64:
            raise ShotError.at(node.mark, f"SEED must be -1 (random) or a seed from 0 to "
                                          f"2**64-1, not {node.value!r}")
        return node.value

    def _loras(self) -> list[tuple[Path, float]]:
        settings = self._mapping(self.root.get("lora_settings"), "lora_settings")
        use = settings.get("use_lora")
        if use is None or use.value is not True:
            return []
        selections = settings.get("selections")
        names = [str(n.value) for n in (selections.value if selections is not None and
                                        selections.is_list else [])
                 if n.value is not None and str(n.value).strip().lower() not in NO_LORA]
        line = self.line(self.root.get("lora_settings"))
        if not names:
            self.draft_.warn("LoRA is on but the export names no LoRA file (uploaded files "
                             "are not recorded); the shot renders without LoRA", line)
            return []
        scales = _scales(settings.get("scales"), len(names))
        folders = list(self.options.lora_dirs) + [
            self.path.parent / "lora", self.path.parent / "loras", Path.cwd() / "lora",
            Path.cwd() / "loras"]
        return find_loras(self.draft_, list(zip(names, scales)), folders, line)


def _scales(node: Node | None, count: int) -> list[float]:
    """eichi's reading of "0.8,0.8": any unreadable value makes them all 0.8; missing ones are
    0.8 and extra ones are dropped."""
    text = str(node.value).strip() if node is not None and node.value is not None else ""
    try:
        scales = [float(v.strip()) for v in text.split(",")] if text else []
    except ValueError:
        scales = []
    if not scales:
        scales = [DEFAULT_LORA_SCALE] * count
    return (scales + [DEFAULT_LORA_SCALE] * count)[:count]
