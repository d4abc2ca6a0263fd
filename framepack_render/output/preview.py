"""A preview of what is finished so far, refreshed after every sampled window.

Each finished window is decoded on its own (4W - 3 frames, no seam blending: it is a preview)
and kept as a small uint8 file; the preview video is then re-encoded from those files in time
order, so memory holds one window at a time. The preview is removed once the real outputs are
in place.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np

from .encode import open_sink


def preview_path(output: Path) -> Path:
    stem = output.name.rstrip("/") if output.suffix == "" else output.stem
    return output.parent / f"{stem}.preview.mp4"


class Preview:
    def __init__(self, path: Path, width: int, height: int, fps: float):
        self.path = path
        self.size = (width, height)
        self.fps = fps
        self.folder = Path(tempfile.mkdtemp(prefix="framepack-preview-"))
        self.windows: set[int] = set()

    def add(self, index: int, frames: np.ndarray) -> None:
        """Record a finished window's frames and rewrite the preview video."""
        np.save(self.folder / f"{index:06d}.npy", frames)
        self.windows.add(index)
        with open_sink(self.path, "mp4", width=self.size[0], height=self.size[1],
                       fps=self.fps, crf=28, metadata={"title": "preview"}) as sink:
            for window in sorted(self.windows):
                sink.write(np.load(self.folder / f"{window:06d}.npy"))

    def close(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
        self.path.unlink(missing_ok=True)
