"""`framepack watch`: re-render a shot whenever it, a template it extends or an image it uses
changes, with the models kept resident between renders.

File events come from watchdog (inotify, FSEvents, ReadDirectoryChangesW). Bursts of events (an
editor's save is often several) are debounced into one re-render. A change to the shot being
rendered cancels that render at its next sampling step; everything cached so far stays, so the
new render resumes from it. An invalid save prints its one-line errors and the watch goes on.
Renders happen on the calling thread; the event thread only records paths and cancels.
"""

from __future__ import annotations

import json
import os
import queue
import sys
import threading
import warnings
from dataclasses import asdict, dataclass, field, is_dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Protocol

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer as FileObserver

from ..shot import Loaded, Shot, ShotError
from ..shot.discover import is_shot_name, shot_files
from ..shot.errors import Diagnostic, display_path, print_diagnostics
from ..store.protocol import StoreError
from .events import Cancel, ModelError, RenderCancelled, RenderError

if TYPE_CHECKING:
    from rich.console import Console

# Event types that can mean new content ("opened" and "closed_no_write" cannot).
CHANGES = {"created", "modified", "moved", "deleted", "closed"}

# inotify reports a folder renamed into a watched tree (a cache entry committed under a watched
# folder) as a second watch on that path; watchdog replaces the first and says so. Harmless.
warnings.filterwarnings("ignore", message="Callback with id", category=RuntimeWarning,
                        module="watchdog")


class Reporter(Protocol):
    def watching(self, shots: list[Path], folders: list[Path]) -> None: ...
    def invalid(self, path: Path, diagnostics: list[Diagnostic]) -> None: ...
    def loaded(self, path: Path, shots: list[Shot]) -> None: ...
    def started(self, shot: Shot) -> None: ...
    def rendered(self, shot: Shot, result: object) -> None: ...
    def cancelled(self, shot: Shot) -> None: ...
    def failed(self, shot: Shot, message: str) -> None: ...


@dataclass
class _Target:
    """A watched shot file (or CSV of jobs): what it depends on, and whether it loads."""

    path: Path
    dependencies: set[Path] = field(default_factory=set)
    valid: bool = False


class Watcher:
    """``load(path)`` gives a file's shots (raising ShotError); ``render(shot, cancel)``
    renders one and returns its result (raising RenderCancelled when ``cancel`` is set)."""

    def __init__(self, paths: list[Path], load: Callable[[Path], Loaded],
                 render: Callable[[Shot, Cancel], object], report: Reporter, *,
                 debounce: float = 0.4, csv: bool = False):
        self.paths = paths
        self.load = load
        self.render_shot = render
        self.report = report
        self.debounce = debounce
        self.csv = csv
        self.targets: dict[Path, _Target] = {}
        self.changes: queue.Queue[Path] = queue.Queue()
        self.observer = FileObserver()
        self.watched: dict[Path, bool] = {}  # folder -> recursive
        self._relevant: frozenset[Path] = frozenset()
        self._current: tuple[set[Path], Cancel] | None = None
        self._lock = threading.Lock()

    # ------------------------------------------------------------ the loop

    def run(self, *, stop: threading.Event | None = None) -> None:
        """Watch until interrupted (KeyboardInterrupt) or ``stop`` is set."""
        stop = stop or threading.Event()
        for path in self.paths:
            if path.is_dir():
                self._watch(path.resolve(), recursive=True)
            else:
                self._watch(path.resolve().parent, recursive=False)
        self.observer.start()
        try:
            dirty = self._discover()
            self.report.watching(sorted(self.targets), sorted(self.watched))
            while not stop.is_set():
                for path in sorted(dirty):
                    self._render_target(self.targets[path])
                dirty = self._affected(self._next_changes(stop))
        finally:
            self.observer.stop()
            self.observer.join(timeout=5)

    def _next_changes(self, stop: threading.Event) -> set[Path]:
        """Block until something relevant changed, then gather the burst it belongs to."""
        changed: set[Path] = set()
        while not changed and not stop.is_set():
            try:
                changed.add(self.changes.get(timeout=0.25))
            except queue.Empty:
                continue
        while True:  # debounce: wait for a quiet spell
            try:
                changed.add(self.changes.get(timeout=self.debounce))
            except queue.Empty:
                return changed

    # ------------------------------------------------------------ targets

    def _discover(self) -> set[Path]:
        """Refresh the set of shot files; returns the new ones."""
        found: list[Path] = []
        for path in self.paths:
            try:
                found += shot_files([path], csv=self.csv)
            except ShotError:  # a file argument that does not exist (yet)
                found.append(path.resolve())
        new = {p for p in found if p not in self.targets}
        for path in new:
            self.targets[path] = _Target(path, {path})
        for path in set(self.targets) - set(found):
            del self.targets[path]
        self._update_relevant()
        return new

    def _affected(self, changed: set[Path]) -> set[Path]:
        dirty = {t.path for t in self.targets.values() if t.dependencies & changed}
        if any(self._is_spec_file(p) for p in changed):
            dirty |= self._discover()
            # A broken shot may have been broken by a template: try it again.
            dirty |= {t.path for t in self.targets.values() if not t.valid}
        return {p for p in dirty if p in self.targets}

    def _render_target(self, target: _Target) -> None:
        try:
            loaded = self.load(target.path)
        except ShotError as error:
            target.valid = False
            target.dependencies = {target.path}
            self._update_relevant()
            self.report.invalid(target.path, error.diagnostics)
            return
        target.valid = True
        target.dependencies = {target.path}.union(*(s.dependencies() for s in loaded.shots))
        self._update_relevant()
        self.report.loaded(target.path, list(loaded.shots))
        for folder in {p.parent for p in target.dependencies}:
            if not self._covered(folder):
                self._watch(folder, recursive=False)
        for shot in loaded.shots:
            cancel = Cancel()
            with self._lock:
                self._current = (target.dependencies, cancel)
            try:
                self.report.started(shot)
                result = self.render_shot(shot, cancel)
            except RenderCancelled:
                self.report.cancelled(shot)
                return  # the change that cancelled it brings the file back
            except (RenderError, ModelError, StoreError) as error:  # the watch goes on
                where = f"{shot.model.mark}: " if isinstance(error, ModelError) else ""
                self.report.failed(shot, f"{where}{error}")
                continue
            finally:
                with self._lock:
                    self._current = None
            self.report.rendered(shot, result)

    # ------------------------------------------------------------ file events

    def _is_spec_file(self, path: Path) -> bool:
        return is_shot_name(path) or (self.csv and path.suffix.lower() == ".csv")

    def _update_relevant(self) -> None:
        self._relevant = frozenset().union(*(t.dependencies for t in self.targets.values()))

    def _covered(self, folder: Path) -> bool:
        return any(folder == w or (recursive and folder.is_relative_to(w))
                   for w, recursive in self.watched.items())

    def _watch(self, folder: Path, *, recursive: bool) -> None:
        if not folder.is_dir() or self._covered(folder):
            return
        self.watched[folder] = recursive
        self.observer.schedule(_Handler(self._on_path), str(folder), recursive=recursive)

    def _on_path(self, path: Path) -> None:
        """On the event thread: record a relevant change and cancel a render it makes stale."""
        if path not in self._relevant and not self._is_spec_file(path):
            return  # our own outputs, editors' swap files, unrelated files
        with self._lock:
            if self._current is not None and path in self._current[0]:
                self._current[1].set()
        self.changes.put(path)


class _Handler(FileSystemEventHandler):
    def __init__(self, on_path: Callable[[Path], None]):
        self.on_path = on_path

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.is_directory or event.event_type not in CHANGES:
            return
        for raw in (event.src_path, getattr(event, "dest_path", "")):
            if raw:
                self.on_path(Path(os.fsdecode(raw)).resolve())


class FanOut:
    """Hands each call to several reporters or observers in turn (the console and the live
    page). Forwarding by name keeps it in step with every Observer callback, and a name that no
    target defines stays missing, so ``getattr(fan_out, name, None)`` answers as they would."""

    def __init__(self, *targets: object):
        self.targets = targets

    def __getattr__(self, name: str) -> Callable[..., None]:
        methods = [getattr(t, name) for t in self.targets if hasattr(t, name)]
        if name.startswith("_") or not methods:
            raise AttributeError(name)

        def call(*args: object, **kwargs: object) -> None:
            for method in methods:
                method(*args, **kwargs)
        return call


class ConsoleReport:
    """What `framepack watch` prints: lines on the console (stderr) and, with ``json_lines``,
    one JSON object per event on stdout for tools."""

    def __init__(self, console: "Console", *, json_lines: bool = False,
                 line: Callable[[object], str] = str):
        self.console = console
        self.json_lines = json_lines
        self.line = line

    def _emit(self, event: str, **fields: object) -> None:
        if self.json_lines:
            print(json.dumps({"event": event, **fields}, default=str), flush=True)

    def watching(self, shots: list[Path], folders: list[Path]) -> None:
        names = ", ".join(display_path(p) for p in shots) or "no shot files yet"
        self.console.print(f"watching {names} (Ctrl-C to stop)", soft_wrap=True, markup=False)
        self._emit("watching", shots=[str(p) for p in shots],
                   folders=[str(p) for p in folders])

    def invalid(self, path: Path, diagnostics: list[Diagnostic]) -> None:
        print_diagnostics(diagnostics)
        self._emit("invalid", file=str(path), errors=[str(d) for d in diagnostics])

    def loaded(self, path: Path, shots: list[Shot]) -> None:
        pass  # the console speaks when each shot starts

    def started(self, shot: Shot) -> None:
        self._emit("started", shot=shot.label)

    def rendered(self, shot: Shot, result: object) -> None:
        self.console.print(self.line(result), soft_wrap=True, markup=False)
        self._emit("rendered", **(asdict(result) if is_dataclass(result) else {}))

    def cancelled(self, shot: Shot) -> None:
        self.console.print(f"{shot.label}: changed during its render; starting again",
                           soft_wrap=True, markup=False)
        self._emit("cancelled", shot=shot.label)

    def failed(self, shot: Shot, message: str) -> None:
        print(f"error: {message}", file=sys.stderr, flush=True)
        self._emit("failed", shot=shot.label, error=message)
