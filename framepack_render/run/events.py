"""What a render reports: results, progress callbacks, cancellation and errors. No torch.

The command line imports this to answer an unchanged shot (outputs up to date) without
importing torch or loading any model.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from ..output.record import up_to_date
from ..plan import EditNode, Plan, WindowNode
from ..plan.entries import segment_keys

__all__ = ["Cancel", "ModelError", "Observer", "RenderCancelled", "RenderError", "RenderResult",
           "up_to_date_result"]


class ModelError(Exception):
    """A model could not be loaded. ``str()`` is one line, meant for the user (exit status 2:
    missing weights are a problem with the input, not a failed render)."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))


class RenderError(Exception):
    """A render that cannot proceed, as one line for the user (exit status 1)."""


class RenderCancelled(Exception):
    """The render was cancelled (its shot changed again); what was cached so far stays."""


class Cancel(threading.Event):
    """Set from any thread; the render stops at its next sampling step or segment."""

    def check(self) -> None:
        if self.is_set():
            raise RenderCancelled()


class Observer:
    """Progress callbacks; the default does nothing. The CLI draws Rich progress from these."""

    def shot_started(self, plan: Plan, to_sample: int) -> None: ...
    def window_started(self, node: WindowNode, steps: int) -> None: ...
    def step(self, node: WindowNode | EditNode, index: int) -> None: ...
    def window_done(self, node: WindowNode, cached: bool, seconds: float) -> None: ...
    def window_frames(self, node: WindowNode, frames: Any) -> None:
        """A sampled window's preview frames (uint8, T x H x W x 3), when previews are on."""
    def edit_started(self, node: EditNode, steps: int) -> None: ...
    def edit_done(self, node: EditNode, cached: bool, seconds: float) -> None: ...
    def phase(self, name: str) -> None: ...
    def waiting(self, kind: str, key: str) -> None:
        """Another process is making this entry; called repeatedly until it is done."""


@dataclass
class RenderResult:
    shot: str
    outputs: list[str]
    windows_rendered: int = 0
    windows_cached: int = 0
    edits_rendered: int = 0
    edits_cached: int = 0
    segments_decoded: int = 0
    segments_cached: int = 0
    outputs_written: int = 0
    edit_outputs_written: int = 0
    outputs_up_to_date: int = 0
    corrupt_entries: int = 0
    components_loaded: list[str] = field(default_factory=list)  # constructed by this render
    transformer_calls: int = 0  # made by this render (cached windows make none)
    teacache_skipped: int = 0  # of those, answered from TeaCache's cached residual
    teacache_skipped_share: float | None = None  # skipped / calls, when TeaCache ran
    seconds: dict[str, float] = field(default_factory=dict)
    keys: list[str] = field(default_factory=list)


def up_to_date_result(plan: Plan, store: Any, keys: list[str] | None = None
                      ) -> RenderResult | None:
    """The result of rendering a shot whose outputs are all up to date, else None.
    ``keys``: the plan's segment keys, when the caller has them already."""
    started = time.perf_counter()
    if keys is None:  # another engine's outputs are made from its own units
        keys = segment_keys(plan) if plan.engine == "framepack" else plan.output_keys
    if not up_to_date(plan, keys):
        return None
    shot = plan.shot
    return RenderResult(
        shot=shot.label, outputs=[shot.locate(p) for p in shot.output_paths()],
        windows_cached=sum(store.has(plan.unit_kind, w.key) for w in plan.windows),
        edits_cached=sum(store.has("edit", e.key) for e in plan.edits),
        outputs_up_to_date=len(shot.outputs), keys=[w.key for w in plan.windows],
        seconds={"total": time.perf_counter() - started})
