"""One Rich display for the whole farm: a line per running shot with its worker, windows done
and ETA."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.markup import escape

from .driver import FarmObserver
from .worker import Event, Outcome

if TYPE_CHECKING:
    from rich.console import Console

    from ...shot import Shot


# ---------------------------------------------------------------- progress


class FarmProgress(FarmObserver):
    """One Rich display for the farm: a line per running shot with its worker, windows
    sampled of those to sample, and an ETA; a line per sampled window on the console."""

    def __init__(self, console: "Console"):
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                   TimeElapsedColumn, TimeRemainingColumn)

        self.console = console
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(),
                                 MofNCompleteColumn(),
                                 TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
                                 console=console, transient=True)
        self.tasks: dict[int, Any] = {}
        self.shots: dict[int, tuple[str, str]] = {}  # tag -> (label, worker)
        self.totals: dict[int, int] = {}
        self.steps: dict[int, int] = {}  # tag -> steps of the window being sampled
        self.units: dict[int, str] = {}  # tag -> what its engine generates at a time
        self.done: dict[int, int] = {}

    def __enter__(self) -> "FarmProgress":
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def submitted(self, tag: int, shot: "Shot", worker: str) -> None:
        self.shots[tag] = (shot.label, worker)
        self.tasks[tag] = self.progress.add_task(f"{escape(shot.label)} · {worker}", total=None)

    def event(self, event: Event) -> None:
        tag = event.tag
        if tag not in self.tasks:
            return
        task = self.tasks[tag]
        label = escape(self.shots[tag][0])
        if event.kind == "shot_started":  # again after a worker restart: start over
            windows, to_sample, _pid, unit = event.args
            self.units[tag] = unit
            self.totals[tag], self.done[tag] = max(to_sample, 1), 0
            self.progress.reset(task, total=self.totals[tag], completed=0 if to_sample else 1)
            self.console.print(f"[bold]{label}[/] on {event.worker}: {windows} {unit}s, "
                               f"{to_sample} to sample, {windows - to_sample} cached",
                               soft_wrap=True)
        elif event.kind == "window_started":
            self.steps[tag] = max(event.args[1], 1)
        elif event.kind == "step" and tag in self.steps:
            fraction = (event.args[0] + 1) / self.steps[tag]
            self.progress.update(task, completed=self.done.get(tag, 0) + min(fraction, 0.99))
        elif event.kind == "window_done" and not event.args[1]:
            index, _, seconds = event.args
            self.done[tag] = self.done.get(tag, 0) + 1
            self.steps.pop(tag, None)
            self.progress.update(task, completed=self.done[tag])
            unit = self.units.get(tag, "window")
            self.console.print(f"  {label}: {unit} {index + 1} sampled in {seconds:.1f} s "
                               f"on {event.worker}", soft_wrap=True)
        elif event.kind == "edit_done" and not event.args[1]:
            self.console.print(f"  {label}: edit {event.args[0]} sampled in "
                               f"{event.args[2]:.1f} s on {event.worker}", soft_wrap=True)
        elif event.kind == "waiting":
            self.console.print(f"  {label}: waiting for another process making the "
                               f"{event.args[0]} entry it needs…", soft_wrap=True)

    def finished(self, tag: int, shot: "Shot", outcome: Outcome) -> None:
        if tag in self.tasks:
            self.progress.remove_task(self.tasks.pop(tag))


