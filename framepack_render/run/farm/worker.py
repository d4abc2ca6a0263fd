"""The worker: a Ray actor holding a resident Session, one per GPU. Its renders report progress
through a hub actor; every process opens the same store from its location."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from ..events import Cancel, ModelError, Observer, RenderCancelled, RenderError, RenderResult
from .cluster import FarmError

if TYPE_CHECKING:
    from ...plan import EditNode, Plan, WindowNode
    from ...shot import Shot

STEP_EVENTS_EVERY = 0.25  # seconds between step events from one worker: progress, not a log


# ---------------------------------------------------------------- the store in every process


def cache_location(cache: str | None) -> str:
    """The cache as every worker must name it: a URL unchanged, a folder made absolute on the
    driver (workers have their own working folder and environment)."""
    from ...store import default_cache_dir
    from ...urls import is_url

    cache = cache or os.environ.get("FRAMEPACK_CACHE") or None
    if cache is not None and is_url(cache):
        return cache
    return str((Path(cache).expanduser() if cache else default_cache_dir()).resolve())


def open_cache(location: str, storage_options: dict[str, Any] | None = None) -> Any:
    """The one place a cache location becomes a store, in the driver and in each worker."""
    from ...store import StoreUnavailable, open_store

    try:
        return open_store(location, storage_options)
    except StoreUnavailable as error:
        raise FarmError(str(error)) from None


# ---------------------------------------------------------------- the worker (a Ray actor)


class Event(NamedTuple):
    """A progress callback made in a worker, as the driver receives it."""

    tag: int  # the submission it belongs to
    worker: str
    kind: str  # an Observer method's name
    args: tuple


@dataclass
class Outcome:
    """One shot's render on the farm: its result, or a one-line error."""

    tag: int
    worker: dict[str, Any] | None = None  # None: answered by the driver (up to date)
    result: RenderResult | None = None
    error: str | None = None
    model_error: bool = False
    cancelled: bool = False
    seconds: float = 0.0  # the call as the driver saw it: waiting for a worker, transfers, render


class Hub:
    """A Ray actor collecting progress events from every worker for the driver to drain."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def push(self, events: list[Event]) -> None:
        self.events.extend(events)

    def drain(self) -> list[Event]:
        events, self.events = self.events, []
        return events


class Worker:
    """A Ray actor that renders whole shots with a resident Session: its models load on first
    use and stay loaded for every later shot. Restarted by Ray after a crash (the constructor
    runs again, so the models load again, lazily)."""

    def __init__(self, name: str, cache: str, storage_options: dict[str, Any] | None,
                 device: str | None):
        import torch

        from ..executor import Session

        self.name = name
        self.threads = torch.get_num_threads()  # from OMP_NUM_THREADS, which Ray sets
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.session = Session(open_cache(cache, storage_options), self.device)

    def info(self) -> dict[str, Any]:
        import ray

        context = ray.get_runtime_context()
        return {"name": self.name, "actor": context.get_actor_id(),
                "node": ray.util.get_node_ip_address(), "pid": os.getpid(),
                "device": str(self.device), "gpus": [str(g) for g in ray.get_gpu_ids()],
                "threads": self.threads}

    def render(self, tag: int, shot: "Shot", hub: Any, force: bool, preview: bool) -> Outcome:
        from ...plan import build_plan
        from ...store import StoreError

        forward = _Forward(hub, tag, self.name)
        try:
            result = self.session.render(build_plan(shot), force=force, observer=forward,
                                         preview=preview, cancel=_RayCancel())
        except RenderCancelled:
            return Outcome(tag, self.info(), cancelled=True)
        except ModelError as error:
            return Outcome(tag, self.info(), error=str(error), model_error=True)
        except (RenderError, StoreError) as error:  # StoreError: one line naming the cache
            return Outcome(tag, self.info(), error=str(error))
        finally:
            forward.flush()
        return Outcome(tag, self.info(), result=result)


class _RayCancel(Cancel):
    """Set by ``ray.cancel`` on the running call (a watch whose shot changed again)."""

    def check(self) -> None:
        import ray

        if not self.is_set() and ray.get_runtime_context().is_canceled():
            self.set()
        super().check()


class _Forward(Observer):
    """An Observer in a worker that sends each callback to the hub, without waiting."""

    def __init__(self, hub: Any, tag: int, worker: str):
        self.hub, self.tag, self.worker = hub, tag, worker
        self.last_step = 0.0
        self.waited: set[str] = set()

    def _send(self, kind: str, *args: Any) -> None:
        self.hub.push.remote([Event(self.tag, self.worker, kind, args)])

    def flush(self) -> None:
        """Wait until the hub holds everything sent so far (calls from one caller run in
        order), so the driver sees a shot's last events before its result."""
        import ray

        ray.get(self.hub.push.remote([]))

    def shot_started(self, plan: "Plan", to_sample: int) -> None:
        self._send("shot_started", len(plan.windows), to_sample, os.getpid(), plan.unit)

    def window_started(self, node: "WindowNode", steps: int) -> None:
        self._send("window_started", node.index, steps)

    def edit_started(self, node: "EditNode", steps: int) -> None:
        self._send("edit_started", node.edit.name, steps)

    def step(self, node: "WindowNode | EditNode", index: int) -> None:
        now = time.monotonic()
        if now - self.last_step >= STEP_EVENTS_EVERY:
            self.last_step = now
            self._send("step", index)

    def window_done(self, node: "WindowNode", cached: bool, seconds: float) -> None:
        self._send("window_done", node.index, cached, seconds)

    def edit_done(self, node: "EditNode", cached: bool, seconds: float) -> None:
        self._send("edit_done", node.edit.name, cached, seconds)

    def phase(self, name: str) -> None:
        self._send("phase", name)

    def waiting(self, kind: str, key: str) -> None:
        if key not in self.waited:
            self.waited.add(key)
            self._send("waiting", kind, key)


