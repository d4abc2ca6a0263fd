"""The watch's reporter and render observer at once: turns each event into what the page
shows, in the hub."""

from __future__ import annotations

import time
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator

import numpy as np

from ...plan import EditNode, Plan, WindowNode
from ...shot.errors import Diagnostic, display_path
from .backfill import thumbnail
from .state import EditView, Hub, ShotView, WindowView, shot_id, span_text

if TYPE_CHECKING:
    from ...shot import Shot

STEP_INTERVAL = 0.1  # s between two step events of one window: a fast sampler would flood
# Outputs a browser shows in place; the others (mov, frames, latents) are listed by path.
SHOWN = {"mp4": ("video", "video/mp4"), "webm": ("video", "video/webm"),
         "gif": ("image", "image/gif")}


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
    from ...output.preview import preview_path

    if not shot.outputs:
        return None
    try:
        return preview_path(shot.outputs[0].path).read_bytes()
    except OSError:
        return None


