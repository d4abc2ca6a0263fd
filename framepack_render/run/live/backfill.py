"""Pictures for windows cached before the watch began, taken from the shot's output video or
PNG frames on a thread of their own."""

from __future__ import annotations

import io
import threading
from pathlib import Path
from queue import SimpleQueue
from typing import TYPE_CHECKING, Callable

import numpy as np

if TYPE_CHECKING:
    from ...shot import Shot
    from .state import Hub

THUMB_WIDTH = 320  # px; the page shows them at about half that, sharp on a HiDPI screen


class Backfill:
    """Thumbnails for windows no render of this watch sampled (cached before it started),
    taken from the shot's output on a thread of its own, so the watch never waits on them."""

    def __init__(self, hub: Hub):
        self.hub = hub
        self.jobs: SimpleQueue = SimpleQueue()
        self.thread: threading.Thread | None = None

    def add(self, ident: str, shot: "Shot", windows: list[tuple[str, int]]) -> None:
        """``windows``: (cache key, time index) of each window without a thumbnail."""
        source = _frame_source(shot)
        if source is None:
            return
        step = shot.unit_frames * shot.post.interpolate  # output frames per window
        # A window's last frame; the start frame comes first, then the windows in time order.
        # (An engine without a start frame generates frame by frame: a unit is its frame.)
        lead = step if shot.engine == "framepack" else 0
        wanted = {key: index * step + lead for key, index in windows}
        if self.thread is None:
            self.thread = threading.Thread(target=self._run, name="framepack-live-thumbs",
                                           daemon=True)
            self.thread.start()
        self.jobs.put((ident, source, wanted))

    def close(self) -> None:
        if self.thread is not None:
            self.jobs.put(None)
            self.thread.join(timeout=5)
            self.thread = None

    def _run(self) -> None:
        while (job := self.jobs.get()) is not None:
            ident, source, wanted = job
            try:
                frames = source(sorted(set(wanted.values())))
            except Exception:  # noqa: BLE001 - an unreadable output just leaves a blank tile
                continue
            urls = {key: self.hub.add_thumb(key, thumbnail(frames[index]))
                    for key, index in wanted.items() if index in frames}
            with self.hub.shot(ident) as view:
                for window in view.windows if view is not None else []:
                    window.thumb = window.thumb or urls.get(window.key)


def _frame_source(shot: "Shot") -> Callable[[list[int]], dict[int, np.ndarray]] | None:
    """A reader of the shot's frames by index from its first local video or frames
    output, if it has one (a gif may drop frames; latents are not frames)."""
    if shot.destination is not None:
        return None
    for output in shot.outputs:
        if output.format in ("mp4", "webm", "mov") and output.path.is_file():
            return lambda indices, path=output.path: _video_frames(path, indices)
        if output.format == "frames" and output.path.is_dir():
            return lambda indices, path=output.path: _png_frames(path, indices)
    return None


def _video_frames(path: Path, indices: list[int]) -> dict[int, np.ndarray]:
    """Frames by index, decoded in one pass up to the last one wanted."""
    import av

    found: dict[int, np.ndarray] = {}
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for index, frame in enumerate(container.decode(stream)):
            if index in indices:
                found[index] = frame.to_ndarray(format="rgb24")
            if index >= indices[-1]:
                break
    return found


def _png_frames(folder: Path, indices: list[int]) -> dict[int, np.ndarray]:
    from PIL import Image

    from ...output.encode import FRAME_NAME

    paths = {index: folder / FRAME_NAME.format(index) for index in indices}
    return {index: np.asarray(Image.open(path).convert("RGB"))
            for index, path in paths.items() if path.is_file()}

def thumbnail(frame: np.ndarray) -> bytes:
    """A JPEG of one uint8 RGB frame, at most THUMB_WIDTH wide."""
    from PIL import Image

    image = Image.fromarray(frame)
    image.thumbnail((THUMB_WIDTH, THUMB_WIDTH * 4))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=85)
    return out.getvalue()
