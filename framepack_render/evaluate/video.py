"""Read a video as a stream of RGB frames, whatever wrote it: a container PyAV can open (mp4,
webm, gif, mov) or a folder of PNG frames as the ``frames`` output writes it.

Frames come one at a time as uint8 (H, W, 3) arrays, so memory stays flat however long the
video is. Metrics look at frames no larger than ``ANALYSIS_SIDE`` pixels on their longer side
(box-filtered down; smaller frames are left as they are), which keeps scoring a 1280x720 video
about as fast as a 512x288 one and makes sharpness comparable between sizes of one aspect.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

ANALYSIS_SIDE = 512
DEFAULT_FPS = 30.0  # a frames folder without render.json says nothing about its rate
CONTAINER_SUFFIXES = (".mp4", ".webm", ".gif", ".mov", ".mkv", ".avi", ".m4v")
FRAMES_SIDECAR = "render.json"


class VideoError(Exception):
    """A path that is not a readable video; ``str`` is the message without the path."""

    def __init__(self, path: Path | str, message: str):
        super().__init__(message)
        self.path = Path(path)


@dataclass(frozen=True)
class VideoInfo:
    path: Path
    fps: float
    frames: int  # as the container declares or its packets count; decoding has the last word
    width: int
    height: int
    folder: bool  # a folder of PNG frames


def frame_files(folder: Path) -> list[Path]:
    """The PNG frames of a frames folder, in name order (000000.png, 000001.png, ...)."""
    return sorted(p for p in folder.iterdir()
                  if p.suffix.lower() == ".png" and p.is_file() and not p.name.startswith("."))


def is_frames_folder(path: Path) -> bool:
    return path.is_dir() and bool(frame_files(path))


def probe(path: Path | str) -> VideoInfo:
    """What a video holds, without decoding it. Raises VideoError."""
    path = Path(path)
    if not path.exists():
        raise VideoError(path, "no such file or folder")
    if path.is_dir():
        return _probe_folder(path)
    return _probe_container(path)


def _probe_folder(path: Path) -> VideoInfo:
    files = frame_files(path)
    if not files:
        raise VideoError(path, "not a video: a folder without PNG frames")
    sizes = [_png_size(file) for file in files]
    for file, size in zip(files, sizes):  # headers only: cheap, and no frame is decoded
        _check_size(file, size, sizes[0])
    height, width = sizes[0]
    return VideoInfo(path, _folder_fps(path), len(files), width, height, folder=True)


def _png_size(file: Path) -> tuple[int, int]:
    """(height, width) from a PNG's header."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(file) as image:
            return image.size[1], image.size[0]
    except (OSError, UnidentifiedImageError) as error:
        raise VideoError(file, f"not a PNG frame ({error})") from None


def _folder_fps(path: Path) -> float:
    """The rate the render recorded beside its frames, else DEFAULT_FPS."""
    try:
        fps = json.loads((path / FRAMES_SIDECAR).read_text()).get("fps")
    except (OSError, ValueError, AttributeError):
        return DEFAULT_FPS
    return float(fps) if isinstance(fps, (int, float)) and fps > 0 else DEFAULT_FPS


def _probe_container(path: Path) -> VideoInfo:
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise VideoError(path, "not a video: no video stream")
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate or stream.base_rate
            count = stream.frames or sum(1 for packet in container.demux(stream)
                                         if packet.size)
            return VideoInfo(path, float(rate) if rate else DEFAULT_FPS, int(count),
                             stream.codec_context.width, stream.codec_context.height,
                             folder=False)
    except av.FFmpegError as error:
        raise VideoError(path, f"not a video ({_reason(error)})") from None


def _reason(error: Exception) -> str:
    return getattr(error, "strerror", None) or str(error)


def read_frames(path: Path | str, side: int | None = ANALYSIS_SIDE) -> Iterator[np.ndarray]:
    """Every frame in order as uint8 RGB, at most ``side`` pixels on its longer side (None:
    full size). Raises VideoError for a file that stops decoding part way."""
    path = Path(path)
    frames = _folder_frames(path) if path.is_dir() else _container_frames(path)
    for frame in frames:
        yield shrink(frame, side) if side else frame


def _folder_frames(path: Path) -> Iterator[np.ndarray]:
    from PIL import Image, UnidentifiedImageError

    first: tuple[int, int] | None = None
    for file in frame_files(path):
        try:
            with Image.open(file) as image:
                frame = np.asarray(image.convert("RGB"))
        except (OSError, UnidentifiedImageError) as error:
            raise VideoError(file, f"not a PNG frame ({error})") from None
        first = first or frame.shape[:2]
        _check_size(file, frame.shape[:2], first)
        yield frame


def _check_size(file: Path, size: tuple[int, ...], first: tuple[int, ...]) -> None:
    """Every metric compares frames pixel for pixel, so a folder's frames share one size."""
    if size != first:
        raise VideoError(file.parent, f"frame {file.name} is {size[1]}x{size[0]}, but the first "
                                      f"is {first[1]}x{first[0]}; a frames folder holds one size")


def _container_frames(path: Path) -> Iterator[np.ndarray]:
    import av

    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for frame in container.decode(stream):
                yield frame.to_ndarray(format="rgb24")
    except av.FFmpegError as error:
        raise VideoError(path, f"cannot decode ({_reason(error)})") from None


def shrink(frame: np.ndarray, side: int) -> np.ndarray:
    """``frame`` (uint8 RGB, or float32 luma) box-filtered down so its longer side is at most
    ``side``."""
    height, width = frame.shape[:2]
    longest = max(height, width)
    if longest <= side:
        return frame
    from PIL import Image

    size = (max(1, round(width * side / longest)), max(1, round(height * side / longest)))
    return np.asarray(Image.fromarray(frame).resize(size, Image.Resampling.BOX))


def content_hash(path: Path | str) -> str:
    """SHA-256 of a video's bytes; for a frames folder, of its PNG files' names and bytes (its
    render.json is left out: rewriting a sidecar does not change the pictures)."""
    path = Path(path)
    digest = hashlib.sha256()
    files = frame_files(path) if path.is_dir() else [path]
    for file in files:
        if path.is_dir():  # name and size first, so no two folders hash alike
            digest.update(f"{file.name}\0{file.stat().st_size}\0".encode())
        with open(file, "rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest()
