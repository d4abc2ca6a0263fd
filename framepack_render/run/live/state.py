"""What the live page shows: the files, their shots and windows, a log; and the hub that
records it and hands every change to the open event streams (a snapshot first, then events,
both under one lock)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
import time
from collections import OrderedDict, deque
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from ...shot.errors import display_path
from .backfill import Backfill

if TYPE_CHECKING:
    from ...shot import Shot

THUMBS_KEPT = 2048  # window thumbnails kept in memory (a few MB), oldest dropped first
LOG_LINES = 200


@dataclass
class WindowView:
    index: int  # time order, from 0
    span: str  # "1.20-2.40 s"
    key: str  # cache key: thumbnails are stored by it, so an unchanged window keeps its own
    order: int  # generation order, from 0
    state: str = "queued"  # queued | sampling | done | cached
    step: int = 0
    steps: int = 0
    seconds: float | None = None
    thumb: str | None = None  # URL of its last frame


@dataclass
class EditView:
    name: str
    state: str = "queued"  # queued | sampling | done | cached
    step: int = 0
    steps: int = 0


@dataclass
class ShotView:
    id: str
    label: str
    file: str
    name: str = ""  # the label less its file's name: "[seed=1]" in a matrix, else empty
    width: int = 0  # frame size, so a window without a picture yet keeps its shape
    height: int = 0
    status: str = "queued"  # queued | rendering | done | cancelled | failed
    detail: str = ""  # what the render is doing now
    windows: list[WindowView] = field(default_factory=list)
    edits: list[EditView] = field(default_factory=list)
    video: dict[str, str] | None = None  # {"url", "kind": preview|output, "type": video|image}
    outputs: list[str] = field(default_factory=list)
    summary: str = ""  # the console's line for the last render
    error: str = ""
    renders: int = 0  # finished renders, the page shows it so a new one is visible
    finished: float = 0.0  # when the last render finished (seconds since the epoch)
    updated: float = 0.0


@dataclass
class FileView:
    path: str  # absolute, the key
    name: str  # as the console shows it
    errors: list[str] = field(default_factory=list)  # FILE:LINE:COL: message
    shots: list[str] = field(default_factory=list)  # shot ids, in the file's order


def shot_id(shot: "Shot") -> str:
    return hashlib.sha1(f"{shot.source}\0{shot.label}".encode()).hexdigest()[:12]


def span_text(shot: "Shot", index: int) -> str:
    per = shot.unit_frames / shot.fps
    return f"{index * per:.2f}-{(index + 1) * per:.2f} s"


CLOSED = object()  # ends every event stream


class Hub:
    """The page's state and the pages connected to it. The render thread changes the state;
    the server's thread takes snapshots and streams; one lock orders them."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.files: dict[str, FileView] = {}
        self.shots: dict[str, ShotView] = {}
        self.log: deque[dict[str, str]] = deque(maxlen=LOG_LINES)
        self.folders: list[str] = []
        self.thumbs: OrderedDict[str, bytes] = OrderedDict()
        self.previews: dict[str, bytes] = {}  # shot id -> the preview video so far
        self.outputs: dict[str, tuple[Path, str]] = {}  # shot id -> (file, media type)
        self.streams: dict[asyncio.Queue, asyncio.AbstractEventLoop] = {}
        self.versions = 0  # makes each new video URL differ from the last
        self.closed = False
        self.backfill = Backfill(self)

    # ------------------------------------------------------------ changes

    @contextmanager
    def shot(self, ident: str) -> Iterator[ShotView | None]:
        """The shot to change (None when it is gone); its new state goes to every page."""
        with self.lock:
            view = self.shots.get(ident)
            yield view
            if view is not None:
                view.updated = time.time()
                self.publish("shot", asdict(view), merge=ident)

    @contextmanager
    def file(self, path: Path) -> Iterator[FileView]:
        with self.lock:
            key = str(path)
            view = self.files.setdefault(key, FileView(key, display_path(path)))
            yield view
            self.publish("file", asdict(view), merge=key)

    def note(self, level: str, text: str) -> None:
        """A line of the page's log: the console's lines for errors and results."""
        with self.lock:
            line = {"time": time.strftime("%H:%M:%S"), "level": level, "text": text}
            self.log.append(line)
            self.publish("log", line)

    def add_thumb(self, key: str, data: bytes) -> str:
        with self.lock:
            self.thumbs[key] = data
            self.thumbs.move_to_end(key)
            while len(self.thumbs) > THUMBS_KEPT:
                self.thumbs.popitem(last=False)
        return thumb_url(key)

    def thumb_of(self, key: str) -> str | None:
        with self.lock:
            return thumb_url(key) if key in self.thumbs else None

    def video_url(self, ident: str) -> str:
        self.versions += 1
        return f"/video/{ident}?v={self.versions}"

    # ------------------------------------------------------------ pages

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {"files": [asdict(f) for f in self.files.values()],
                    "shots": [asdict(s) for s in self.shots.values()],
                    "log": list(self.log), "folders": self.folders}

    def subscribe(self, loop: asyncio.AbstractEventLoop) -> tuple[str, asyncio.Queue]:
        """The current state and a queue of the events after it."""
        queue: asyncio.Queue = asyncio.Queue()
        with self.lock:
            if self.closed:
                queue.put_nowait(CLOSED)
            self.streams[queue] = loop
            return json.dumps(self.snapshot()), queue

    def unsubscribe(self, queue: asyncio.Queue) -> None:
        with self.lock:
            self.streams.pop(queue, None)

    def publish(self, name: str, payload: dict[str, Any], merge: str | None = None) -> None:
        """Queue an event for every page. Events with the same ``merge`` key replace one
        another when a page falls behind (each carries its whole shot or file)."""
        with self.lock:
            item = (name, json.dumps(payload), merge and f"{name}:{merge}")
            for queue, loop in list(self.streams.items()):
                _put(loop, queue, item)

    def close(self) -> None:
        """End every stream (the server can then stop without waiting for pages) and the
        thumbnail worker."""
        with self.lock:
            self.closed = True
            for queue, loop in list(self.streams.items()):
                _put(loop, queue, CLOSED)
        self.backfill.close()


def _put(loop: asyncio.AbstractEventLoop, queue: asyncio.Queue, item: object) -> None:
    try:
        loop.call_soon_threadsafe(queue.put_nowait, item)
    except RuntimeError:  # the server's loop has closed
        pass


def thumb_url(key: str) -> str:
    return f"/thumb/{key}.jpg"


