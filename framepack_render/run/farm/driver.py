"""The driver: hands out shots to workers with a plain dispatch loop over ``ray.wait`` (an idle
worker takes a shot of the model it already holds when there is one) and drains progress."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable, Iterator

from ..events import Cancel, ModelError, RenderCancelled, RenderError, RenderResult
from .cluster import connect, first_line, import_ray, parse_address, worker_shape
from .worker import Event, Hub, Outcome, Worker, cache_location, open_cache

if TYPE_CHECKING:
    from ...shot import Shot

TASK_RETRIES = 3  # re-runs of a shot whose worker died under it (each resumes from the cache)
POLL_SECONDS = 0.1  # the driver's wait between draining progress events


# ---------------------------------------------------------------- the driver


class FarmObserver:
    """What the driver reports; the default does nothing. ``FarmProgress`` draws it."""

    def submitted(self, tag: int, shot: "Shot", worker: str) -> None: ...
    def event(self, event: Event) -> None: ...
    def finished(self, tag: int, shot: "Shot", outcome: Outcome) -> None: ...


@dataclass
class _Slot:
    """A worker as the driver sees it."""

    name: str
    handle: Any
    affinities: set[str] = field(default_factory=set)  # model identities it has loaded
    busy: bool = False


def affinity(shot: "Shot") -> str:
    """What a worker keeps loaded between shots: the weights and what changes the transformer
    (dtype, attention, RoPE scaling, LoRAs). Computed without torch."""
    from ...plan.keys import canonical, model_identity, transformer_identity

    return canonical({"model": model_identity(shot.model),
                      "transformer": transformer_identity(shot.model)})


class Farm:
    """Workers on a connected Ray cluster, started as shots need them (up to ``capacity``)."""

    def __init__(self, cache: str, *, storage_options: dict[str, Any] | None = None,
                 device: str | None = None, capacity: int | None = None,
                 resources: dict[str, Any] | None = None, owns_cluster: bool = False,
                 address: str = "", store: Any = None):
        import ray

        self.ray = ray
        self.cache = cache
        self.storage_options = storage_options
        self.device = device
        self.address = address
        self.owns_cluster = owns_cluster
        if capacity is None or resources is None:
            capacity, resources = worker_shape()
        self.capacity, self.resources = capacity, resources
        self.store = store if store is not None else open_cache(cache, storage_options)
        self.hub = ray.remote(num_cpus=0)(Hub).remote()
        self.worker_class = ray.remote(Worker)
        self.slots: list[_Slot] = []
        self.tags = 0

    @classmethod
    def open(cls, address: str, cache: str | None, *,
             storage_options: dict[str, Any] | None = None, device: str | None = None
             ) -> "Farm":
        """Parse ``--farm``, connect (or start local:N) and make the farm; FarmError else."""
        parsed = parse_address(address)
        location = cache_location(cache)
        store = open_cache(location, storage_options)  # a bad cache fails before Ray starts
        owns = connect(parsed)
        try:
            capacity, resources = worker_shape(parsed.workers or None)
            return cls(location, storage_options=storage_options, device=device,
                       capacity=capacity, resources=resources, owns_cluster=owns,
                       address=address, store=store)
        except BaseException:
            if owns:
                import_ray().shutdown()
            raise

    def __enter__(self) -> "Farm":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop this farm's workers; shut the cluster down only if this process started it."""
        ray = self.ray
        if not ray.is_initialized():
            return
        for slot in self.slots:
            ray.kill(slot.handle, no_restart=True)
        ray.kill(self.hub, no_restart=True)
        self.slots = []
        if self.owns_cluster:
            ray.shutdown()

    # ------------------------------------------------------------ workers

    def start_worker(self, resources: dict[str, Any] | None = None) -> Any:
        """A new worker actor (its constructor runs once Ray has placed it)."""
        name = f"worker-{len(self.slots) + 1}"
        options = dict(resources or self.resources, max_restarts=-1,
                       max_task_retries=TASK_RETRIES)
        handle = self.worker_class.options(**options).remote(
            name, self.cache, self.storage_options, self.device)
        self.slots.append(_Slot(name, handle))
        return handle

    def _take(self, pending: deque["_Job"]) -> tuple[_Slot, "_Job"] | None:
        """An idle worker and the pending job it should render next: first fill the farm,
        then prefer a worker that already holds the job's models."""
        if not pending:
            return None
        idle = [s for s in self.slots if not s.busy]
        if not idle and len(self.slots) < self.capacity:
            self.start_worker()
            idle = [self.slots[-1]]
        if not idle:
            return None
        held = set().union(*(s.affinities for s in self.slots))
        for slot in idle:
            for job in pending:
                if job.affinity in slot.affinities:
                    pending.remove(job)
                    return slot, job
        slot = next((s for s in idle if not s.affinities), idle[0])
        job = next((j for j in pending if j.affinity not in held), pending[0])
        pending.remove(job)
        return slot, job

    # ------------------------------------------------------------ rendering

    def render(self, shots: Iterable["Shot"], *, force: bool = False, preview: bool = False,
               observer: FarmObserver | None = None) -> Iterator[tuple["Shot", Outcome]]:
        """Render shots in parallel across the workers; yield each as it finishes. Shots whose
        outputs are up to date are answered here, from their sidecars."""
        from ...plan import build_plan
        from ..events import up_to_date_result

        observer = observer or FarmObserver()
        pending: deque[_Job] = deque()
        for shot in shots:
            tag = self._tag()
            if not force and (done := up_to_date_result(build_plan(shot), self.store)):
                yield shot, Outcome(tag, result=done)
                continue
            pending.append(_Job(tag, shot, affinity(shot)))
        running: dict[Any, tuple[_Slot, _Job, float]] = {}
        try:
            while pending or running:
                while (taken := self._take(pending)) is not None:
                    slot, job = taken
                    slot.busy = True
                    ref = self._submit(slot, job, force, preview)
                    running[ref] = (slot, job, time.perf_counter())
                    observer.submitted(job.tag, job.shot, slot.name)
                ready, _ = self.ray.wait(list(running), num_returns=1, timeout=POLL_SECONDS)
                self._pump(observer)
                for ref in ready:
                    slot, job, began = running.pop(ref)
                    slot.busy = False
                    outcome = self._outcome(ref, job, slot)
                    outcome.seconds = time.perf_counter() - began
                    if outcome.result is not None:
                        slot.affinities.add(job.affinity)
                    observer.finished(job.tag, job.shot, outcome)
                    yield job.shot, outcome
        finally:
            for ref in running:  # a ModelError or Ctrl-C ends the batch: stop the rest
                self.ray.cancel(ref)

    def render_one(self, shot: "Shot", *, force: bool = False, preview: bool = False,
                   observer: FarmObserver | None = None, cancel: Cancel | None = None
                   ) -> RenderResult:
        """Render one shot on a worker and wait for it, as a local Session does: raises
        RenderError, ModelError, or RenderCancelled once ``cancel`` is set."""
        from ...plan import build_plan
        from ..events import up_to_date_result

        observer = observer or FarmObserver()
        if not force and (done := up_to_date_result(build_plan(shot), self.store)):
            return done
        pending = deque([_Job(self._tag(), shot, affinity(shot))])
        taken = self._take(pending)
        assert taken is not None  # renders come one at a time: a worker is always idle
        slot, job = taken
        slot.busy = True
        ref = self._submit(slot, job, force, preview)
        observer.submitted(job.tag, shot, slot.name)
        cancelled = False
        try:
            while not self.ray.wait([ref], timeout=POLL_SECONDS)[0]:
                self._pump(observer)
                if cancel is not None and cancel.is_set() and not cancelled:
                    self.ray.cancel(ref)
                    cancelled = True
            self._pump(observer)
        finally:
            slot.busy = False
        outcome = self._outcome(ref, job, slot)
        observer.finished(job.tag, shot, outcome)
        if outcome.cancelled:
            raise RenderCancelled()
        if outcome.model_error:
            raise ModelError(outcome.error or "")
        if outcome.error is not None:
            raise RenderError(outcome.error)
        assert outcome.result is not None
        slot.affinities.add(job.affinity)
        return outcome.result

    def _tag(self) -> int:
        self.tags += 1
        return self.tags

    def _submit(self, slot: _Slot, job: "_Job", force: bool, preview: bool) -> Any:
        return slot.handle.render.remote(job.tag, job.shot, self.hub, force, preview)

    def _pump(self, observer: FarmObserver) -> None:
        for event in self.ray.get(self.hub.drain.remote()):
            observer.event(event)

    def _outcome(self, ref: Any, job: "_Job", slot: _Slot) -> Outcome:
        """The call's Outcome; a worker that crashed past its retries, or a bug, as an error."""
        exceptions = self.ray.exceptions
        try:
            return self.ray.get(ref)
        except exceptions.TaskCancelledError:
            return Outcome(job.tag, {"name": slot.name}, cancelled=True)
        except exceptions.RayTaskError as error:  # an unexpected exception in the worker
            return Outcome(job.tag, {"name": slot.name},
                           error=f"{job.shot.label}: {slot.name} failed: "
                                 f"{first_line(error.cause or error)}")
        except exceptions.RayError as error:  # died more than TASK_RETRIES times under it
            return Outcome(job.tag, {"name": slot.name},
                           error=f"{job.shot.label}: {slot.name} died during the render "
                                 f"({type(error).__name__}); run again to resume")


@dataclass
class _Job:
    tag: int
    shot: "Shot"
    affinity: str


