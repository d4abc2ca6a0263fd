"""`framepack watch --serve`: a live page of the watch, on a web server on this machine.

Event flow: the watch's render thread calls a ``LivePage`` (a watch Reporter and a render
Observer at once), which records what the page shows (files, their shots, each shot's windows
and edits, a log) in a ``Hub`` and publishes every change as a Server-Sent Event. A page that
connects gets a snapshot of the whole state, then the events after it (both taken under one
lock, so none falls between), so a page opened mid-render is current at once. The server
(starlette on uvicorn) runs on its own thread and only reads the hub: thumbnails of finished
windows (JPEG, by window cache key), the preview video while a shot renders, its output after.

starlette and uvicorn are imported only when serving: `watch` alone needs neither.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import ipaddress
import json
import socket
import threading
import time
from collections import OrderedDict, deque
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from queue import SimpleQueue
from typing import TYPE_CHECKING, Any, AsyncIterator, Callable, Iterator

import numpy as np

from ..plan import EditNode, Plan, WindowNode
from ..shot.errors import Diagnostic, display_path

if TYPE_CHECKING:
    from starlette.applications import Starlette
    from starlette.requests import Request

    from ..shot import Shot

STATIC = Path(__file__).with_name("static")
DEFAULT_PORT = 8765
INSTALL_HINT = "the live page needs starlette and uvicorn: pip install 'framepack-render[serve]'"
THUMB_WIDTH = 320  # px; the page shows them at about half that, sharp on a HiDPI screen
THUMBS_KEPT = 2048  # window thumbnails kept in memory (a few MB), oldest dropped first
LOG_LINES = 200
STEP_INTERVAL = 0.1  # s between two step events of one window: a fast sampler would flood
PING_SECONDS = 15.0  # an idle stream sends a comment this often, which finds closed pages
# Outputs a browser shows in place; the others (mov, frames, latents) are listed by path.
SHOWN = {"mp4": ("video", "video/mp4"), "webm": ("video", "video/webm"),
         "gif": ("image", "image/gif")}


def missing_dependency() -> str | None:
    """The install hint when the server libraries are not installed, else None."""
    import importlib

    try:
        for name in ("starlette", "uvicorn"):
            importlib.import_module(name)
    except ImportError:
        return INSTALL_HINT
    return None


# ---------------------------------------------------------------- what the page shows


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
    per = 4 * shot.window / shot.fps
    return f"{index * per:.2f}-{(index + 1) * per:.2f} s"


def thumbnail(frame: np.ndarray) -> bytes:
    """A JPEG of one uint8 RGB frame, at most THUMB_WIDTH wide."""
    from PIL import Image

    image = Image.fromarray(frame)
    image.thumbnail((THUMB_WIDTH, THUMB_WIDTH * 4))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=85)
    return out.getvalue()


_CLOSED = object()  # ends every event stream


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
                queue.put_nowait(_CLOSED)
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
                _put(loop, queue, _CLOSED)
        self.backfill.close()


def _put(loop: asyncio.AbstractEventLoop, queue: asyncio.Queue, item: object) -> None:
    try:
        loop.call_soon_threadsafe(queue.put_nowait, item)
    except RuntimeError:  # the server's loop has closed
        pass


def thumb_url(key: str) -> str:
    return f"/thumb/{key}.jpg"


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
        step = 4 * shot.window * shot.post.interpolate  # output frames per window
        # A window's last frame; the start frame comes first, then the windows in time order.
        wanted = {key: (index + 1) * step for key, index in windows}
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

    from ..output.encode import FRAME_NAME

    paths = {index: folder / FRAME_NAME.format(index) for index in indices}
    return {index: np.asarray(Image.open(path).convert("RGB"))
            for index, path in paths.items() if path.is_file()}


# ---------------------------------------------------------------- the watch's events


class LivePage:
    """What the watch reports (Reporter) and what a render reports (Observer), as changes to
    the hub. Called on the render thread only."""

    def __init__(self, hub: Hub, line: Callable[[object], str] = str):
        self.hub = hub
        self.line = line
        self.current: "Shot | None" = None
        self.planned = False  # the current render reached the executor (not up to date)
        self.last_step = 0.0

    # ------------------------------------------------------------ Reporter

    def watching(self, shots: list[Path], folders: list[Path]) -> None:
        with self.hub.lock:
            self.hub.folders = [display_path(p) for p in folders]
            for path in shots:
                with self.hub.file(path):
                    pass

    def invalid(self, path: Path, diagnostics: list[Diagnostic]) -> None:
        lines = [str(d) for d in diagnostics]
        with self.hub.file(path) as view:
            view.errors = lines
        for diagnostic, text in zip(diagnostics, lines):
            self.hub.note("error" if diagnostic.severity == "error" else "warning", text)

    def loaded(self, path: Path, shots: list["Shot"]) -> None:
        with self.hub.lock:
            idents = [shot_id(s) for s in shots]
            with self.hub.file(path) as view:
                gone = set(view.shots) - set(idents)
                view.errors, view.shots = [], idents
            for ident in gone:
                self.hub.shots.pop(ident, None)
                self.hub.previews.pop(ident, None)
                self.hub.outputs.pop(ident, None)
            for shot, ident in zip(shots, idents):
                name = shot.label.removeprefix(display_path(path)).strip()
                self.hub.shots.setdefault(ident, ShotView(ident, shot.label, str(path), name))
                with self.hub.shot(ident) as shown:
                    shown.status, shown.detail, shown.error = "queued", "", ""
                    shown.outputs = [display_path(o.path) if shot.destination is None
                                     else shot.locate(o.path) for o in shot.outputs]
                    shown.width, shown.height = shot.size

    def started(self, shot: "Shot") -> None:
        self.current, self.planned = shot, False
        with self.hub.shot(shot_id(shot)) as view:
            if view is not None:
                view.status, view.detail, view.error = "rendering", "planning", ""

    def rendered(self, shot: "Shot", result: object) -> None:
        ident = shot_id(shot)
        line = self.line(result).strip()
        with self.hub.shot(ident) as view:
            if view is None:
                return
            if not self.planned:  # up to date (or rendered elsewhere): windows from the result
                state = "done" if getattr(result, "windows_rendered", 0) else "cached"
                view.windows = [WindowView(i, span_text(shot, i), key, i, state,
                                           thumb=self.hub.thumb_of(key))
                                for i, key in enumerate(getattr(result, "keys", []))]
            view.status, view.detail, view.renders = "done", "", view.renders + 1
            view.summary, view.finished = line, time.time()
            self.hub.previews.pop(ident, None)
            view.video = self._output_video(shot, ident)
            missing = [(w.key, w.index) for w in view.windows if w.thumb is None]
        if missing:
            self.hub.backfill.add(ident, shot, missing)
        self.hub.note("info", line if line.startswith(shot.label) else f"{shot.label}: {line}")
        self.current = None

    def cancelled(self, shot: "Shot") -> None:
        with self.hub.shot(shot_id(shot)) as view:
            if view is not None:
                view.status, view.detail = "cancelled", "changed during its render"
                self._stop_sampling(view)
        self.hub.note("warning", f"{shot.label}: changed during its render; starting again")
        self.current = None

    def failed(self, shot: "Shot", message: str) -> None:
        with self.hub.shot(shot_id(shot)) as view:
            if view is not None:
                view.status, view.detail, view.error = "failed", "", message
                self._stop_sampling(view)
        self.hub.note("error", f"error: {message}")
        self.current = None

    # ------------------------------------------------------------ Observer

    def shot_started(self, plan: Plan, to_sample: int) -> None:
        self.current, self.planned = plan.shot, True
        with self.hub.shot(shot_id(plan.shot)) as view:
            if view is None:
                return
            view.windows = [WindowView(w.index, span_text(plan.shot, w.index), w.key, w.order,
                                       thumb=self.hub.thumb_of(w.key)) for w in plan.windows]
            view.edits = [EditView(e.edit.name) for e in plan.edits]
            view.detail = f"{to_sample} of {len(plan.windows)} windows to sample"
        count = len(plan.windows)
        self.hub.note("info", f"{plan.shot.label}: {count} windows, {to_sample} to sample, "
                              f"{count - to_sample} cached")

    def window_started(self, node: WindowNode, steps: int) -> None:
        with self._current() as view:
            if (window := _window(view, node)) is not None:
                window.state, window.step, window.steps = "sampling", 0, steps
                view.detail = f"sampling window {node.index + 1}"

    def edit_started(self, node: EditNode, steps: int) -> None:
        with self._current() as view:
            if (edit := _edit(view, node)) is not None:
                edit.state, edit.step, edit.steps = "sampling", 0, steps
                view.detail = f"sampling edit {node.edit.name}"

    def step(self, node: WindowNode | EditNode, index: int) -> None:
        now = time.monotonic()
        if now - self.last_step < STEP_INTERVAL:
            return
        self.last_step = now
        with self._current() as view:
            item = _window(view, node) if isinstance(node, WindowNode) else _edit(view, node)
            if item is not None:
                item.step = index + 1

    def window_frames(self, node: WindowNode, frames: np.ndarray) -> None:
        """A sampled window decoded for the preview: its last frame becomes its thumbnail
        and the preview video (rewritten just before) is taken in memory, where the page can
        still fetch it when the render ends and removes the file."""
        if not len(frames) or self.current is None:
            return
        url = self.hub.add_thumb(node.key, thumbnail(frames[-1]))
        shot, ident = self.current, shot_id(self.current)
        data = _preview_bytes(shot)
        with self.hub.shot(ident) as view:
            if (window := _window(view, node)) is not None:
                window.thumb = url
            if view is not None and data is not None:
                self.hub.previews[ident] = data
                view.video = {"url": self.hub.video_url(ident), "kind": "preview",
                              "type": "video"}

    def window_done(self, node: WindowNode, cached: bool, seconds: float) -> None:
        with self._current() as view:
            if (window := _window(view, node)) is not None:
                window.state = "cached" if cached else "done"
                window.step = window.steps
                window.seconds = None if cached else round(seconds, 2)
                window.thumb = window.thumb or self.hub.thumb_of(node.key)
        if not cached and view is not None and window is not None:
            self.hub.note("info", f"{view.label}: window {node.index + 1}/{len(view.windows)} "
                                  f"({window.span}) sampled in {seconds:.1f} s")

    def edit_done(self, node: EditNode, cached: bool, seconds: float) -> None:
        with self._current() as view:
            if (edit := _edit(view, node)) is not None:
                edit.state, edit.step = ("cached" if cached else "done"), edit.steps

    def phase(self, name: str) -> None:
        with self._current() as view:
            if view is not None:
                view.detail = {"decode": "decoding and writing"}.get(name, name)

    def waiting(self, kind: str, key: str) -> None:
        with self._current() as view:
            if view is not None and not view.detail.startswith("waiting"):
                view.detail = f"waiting for another process making a {kind} entry"

    # ------------------------------------------------------------ helpers

    @contextmanager
    def _current(self) -> Iterator[ShotView | None]:
        if self.current is None:
            yield None
            return
        with self.hub.shot(shot_id(self.current)) as view:
            yield view

    @staticmethod
    def _stop_sampling(view: ShotView) -> None:
        for item in [*view.windows, *view.edits]:
            if item.state == "sampling":
                item.state, item.step = "queued", 0

    def _output_video(self, shot: "Shot", ident: str) -> dict[str, str] | None:
        """The first output a browser shows in place, when it is a file here."""
        self.hub.outputs.pop(ident, None)
        if shot.destination is not None:
            return None
        for output in shot.outputs:
            if output.format in SHOWN and output.path.is_file():
                kind, media = SHOWN[output.format]
                self.hub.outputs[ident] = (output.path, media)
                return {"url": self.hub.video_url(ident), "kind": "output", "type": kind}
        return None


def _window(view: ShotView | None, node: object) -> WindowView | None:
    if view is None or not isinstance(node, WindowNode):
        return None
    return next((w for w in view.windows if w.key == node.key), None)


def _edit(view: ShotView | None, node: object) -> EditView | None:
    if view is None or not isinstance(node, EditNode):
        return None
    return next((e for e in view.edits if e.name == node.edit.name), None)


def _preview_bytes(shot: "Shot") -> bytes | None:
    from ..output.preview import preview_path

    if not shot.outputs:
        return None
    try:
        return preview_path(shot.outputs[0].path).read_bytes()
    except OSError:
        return None


# ---------------------------------------------------------------- the server


def sse(name: str, data: str) -> str:
    return f"event: {name}\ndata: {data}\n\n"


async def event_stream(hub: Hub) -> AsyncIterator[str]:
    """The snapshot, then each event as it comes; a page that falls behind gets only the
    latest state of each shot and file."""
    snapshot, queue = hub.subscribe(asyncio.get_running_loop())
    try:
        yield "retry: 1000\n" + sse("snapshot", snapshot)
        while True:
            try:
                first = await asyncio.wait_for(queue.get(), PING_SECONDS)
            except TimeoutError:
                yield ": ping\n\n"
                continue
            batch = [first]
            while not queue.empty():
                batch.append(queue.get_nowait())
            done = _CLOSED in batch
            items = batch[:batch.index(_CLOSED)] if done else batch
            latest = {item[2]: i for i, item in enumerate(items) if item[2]}
            yield "".join(sse(name, data) for i, (name, data, merge) in enumerate(items)
                          if not merge or latest[merge] == i)
            if done:
                return
    finally:
        hub.unsubscribe(queue)


def make_app(hub: Hub) -> "Starlette":
    from starlette.applications import Starlette
    from starlette.responses import FileResponse, Response, StreamingResponse
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles

    fresh = {"Cache-Control": "no-cache"}

    async def page(request: "Request") -> "Response":
        return FileResponse(STATIC / "live.html", headers=fresh)

    async def events(request: "Request") -> "Response":
        return StreamingResponse(event_stream(hub), media_type="text/event-stream",
                                 headers={**fresh, "X-Accel-Buffering": "no"})

    async def thumb(request: "Request") -> "Response":
        with hub.lock:
            data = hub.thumbs.get(request.path_params["key"])
        if data is None:
            return Response("no such window", status_code=404)
        return Response(data, media_type="image/jpeg",
                        headers={"Cache-Control": "max-age=86400"})

    async def video(request: "Request") -> "Response":
        ident = request.path_params["shot"]
        with hub.lock:
            preview, output = hub.previews.get(ident), hub.outputs.get(ident)
        if preview is not None:
            return Response(preview, media_type="video/mp4", headers=fresh)
        if output is not None and output[0].is_file():
            return FileResponse(output[0], media_type=output[1], headers=fresh)
        return Response("no video yet", status_code=404)

    return Starlette(routes=[
        Route("/", page), Route("/events", events), Route("/thumb/{key}.jpg", thumb),
        Route("/video/{shot}", video), Mount("/static", StaticFiles(directory=STATIC)),
    ])


def listen(host: str, port: int) -> socket.socket:
    """A listening socket (raises OSError when the address is taken or not ours)."""
    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    return socket.create_server((host, port), family=family)


def page_url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


class LiveServer:
    """The page's server on a thread of its own; ``close()`` ends the streams, stops the
    server and joins its thread."""

    def __init__(self, hub: Hub, host: str = "127.0.0.1", port: int = DEFAULT_PORT):
        self.hub = hub
        self.host = host
        self.port = port
        self.url = ""
        self.server: Any = None
        self.thread: threading.Thread | None = None

    def __enter__(self) -> "LiveServer":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def local(self) -> bool:
        """Whether only this machine can reach the page (a loopback address)."""
        host = self.url.split("//")[1].rsplit(":", 1)[0].strip("[]")
        return ipaddress.ip_address(host).is_loopback

    def start(self) -> str:
        import uvicorn

        sock = listen(self.host, self.port)
        self.url = page_url(sock)
        config = uvicorn.Config(make_app(self.hub), log_config=None, log_level="warning",
                                access_log=False, lifespan="off", timeout_graceful_shutdown=2)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]},
                                       name="framepack-live-page", daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started and self.thread.is_alive():
            if time.monotonic() > deadline:
                break
            time.sleep(0.01)
        if not self.server.started:
            self.close()
            raise OSError(f"the live page's server did not start on {self.url}")
        return self.url

    def close(self) -> None:
        self.hub.close()
        if self.server is not None:
            self.server.should_exit = True
        if self.thread is not None:
            self.thread.join(timeout=5)
            self.thread = None
