"""Rich progress for renders: a bar over windows, a bar over steps, a line per finished window."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)

from ..plan import EditNode, Plan, WindowNode
from .events import Observer
from rich.markup import escape


class RichObserver(Observer):
    def __init__(self, console: Console):
        self.console = console
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(),
                                 MofNCompleteColumn(), TimeElapsedColumn(),
                                 TextColumn("eta"), TimeRemainingColumn(), console=console,
                                 transient=True)
        self.windows = None
        self.steps = None
        self.plan: Plan | None = None
        self.waited: set[str] = set()

    def __enter__(self) -> "RichObserver":
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def shot_started(self, plan: Plan, to_sample: int) -> None:
        self.plan = plan
        for task in list(self.progress.task_ids):
            self.progress.remove_task(task)
        unit = _unit(plan)
        self.console.print(f"[bold]{escape(plan.shot.label)}[/]: {len(plan.windows)} {unit}s, "
                           f"{to_sample} to sample, {len(plan.windows) - to_sample} cached",
                           soft_wrap=True)
        self.waited = set()
        # Nothing to sample shows as one finished step rather than an empty bar.
        self.windows = self.progress.add_task(f"{unit}s", total=max(to_sample, 1),
                                              completed=0 if to_sample else 1)
        self.steps = None

    def window_started(self, node: WindowNode, steps: int) -> None:
        if self.steps is not None:
            self.progress.remove_task(self.steps)
        self.steps = self.progress.add_task(f"  {_unit(self.plan)} {node.index + 1} steps",
                                            total=steps)

    def edit_started(self, node: EditNode, steps: int) -> None:
        if self.steps is not None:
            self.progress.remove_task(self.steps)
        self.steps = self.progress.add_task(f"  edit {node.edit.name} steps", total=steps)

    def edit_done(self, node: EditNode, cached: bool, seconds: float) -> None:
        if not cached:
            self.console.print(f"  edit {node.edit.name} sampled in {seconds:.1f} s",
                               soft_wrap=True)

    def step(self, node: WindowNode | EditNode, index: int) -> None:
        if self.steps is not None:
            self.progress.update(self.steps, completed=index + 1)

    def window_done(self, node: WindowNode, cached: bool, seconds: float) -> None:
        assert self.plan is not None
        per = self.plan.shot.unit_frames / self.plan.shot.fps
        span = f"{node.index * per:.2f}-{(node.index + 1) * per:.2f} s"
        if cached:
            return
        self.console.print(f"  {_unit(self.plan)} {node.index + 1}/{len(self.plan.windows)} "
                           f"({span}) sampled in {seconds:.1f} s", soft_wrap=True)
        if self.windows is not None:
            self.progress.advance(self.windows)

    def phase(self, name: str) -> None:
        if self.steps is not None:
            self.progress.remove_task(self.steps)
            self.steps = None
        self.console.print(f"  {name}…")

    def waiting(self, kind: str, key: str) -> None:
        if key in self.waited:
            return
        self.waited.add(key)
        names = {w.key: f"{_unit(self.plan)} {w.index + 1}" for w in self.plan.windows} \
            if self.plan else {}
        what = names.get(key, "the outputs" if kind == "output" else f"a {kind} entry")
        self.console.print(f"  waiting for another process making {what}…")


def _unit(plan: Plan | None) -> str:
    """What the plan's engine generates at a time: a window, or a frame."""
    return plan.unit if plan is not None else "window"
