"""Frames of an input video (``input_video``): all of them in order, its first n or its last n.

Frames are uint8 (H, W, 3) RGB at the video's own size. Reading the last n frames keeps only n
in memory: it seeks near the end (a container's keyframe at or before the point) and decodes
from there, and only when that falls short does it decode from the start.
"""

from __future__ import annotations

from collections import deque
from itertools import islice
from pathlib import Path
from typing import Iterator

import numpy as np

from ..evaluate.video import frame_files, read_frames

SEEK_MARGIN_SECONDS = 2.0  # before the frames wanted: keyframes are rarely further apart


def all_frames(path: Path) -> Iterator[np.ndarray]:
    """Every frame, in order, one at a time."""
    return read_frames(path, side=None)


def frame_batches(path: Path, size: int = 16) -> Iterator[np.ndarray]:
    """Every frame, in order, as (T, H, W, 3) batches of at most ``size`` frames."""
    frames = all_frames(path)
    while batch := list(islice(frames, size)):
        yield np.stack(batch)


def first_frames(path: Path, count: int) -> list[np.ndarray]:
    return list(islice(all_frames(path), count))


def last_frames(path: Path, count: int, total: int, fps: float) -> list[np.ndarray]:
    """The last ``count`` frames of a video of about ``total`` frames at ``fps``."""
    if count <= 0:
        return []
    if path.is_dir():
        from PIL import Image

        frames = []
        for file in frame_files(path)[-count:]:
            with Image.open(file) as image:
                frames.append(np.asarray(image.convert("RGB")))
        return frames
    start = max(0.0, (total - count) / fps - SEEK_MARGIN_SECONDS)
    if start > 0:
        found = _decode_tail(path, count, start)
        if len(found) == count:
            return found
    return list(deque(all_frames(path), maxlen=count))


def _decode_tail(path: Path, count: int, seconds: float) -> list[np.ndarray]:
    """The last ``count`` frames decoded from a keyframe at or before ``seconds``; fewer when
    the seek landed too late (the caller then reads from the start)."""
    import av

    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            if stream.time_base is None:
                return []
            container.seek(int(seconds / stream.time_base), stream=stream, backward=True)
            tail = deque((frame.to_ndarray(format="rgb24")
                          for frame in container.decode(stream)), maxlen=count)
            return list(tail)
    except av.FFmpegError:
        return []
