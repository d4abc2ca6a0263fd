"""Render farms on Ray: `framepack render --farm ADDRESS` and `framepack watch --farm ADDRESS`.

Workers are Ray actors, one per GPU (``num_gpus=1``; Ray sets each one's CUDA_VISIBLE_DEVICES),
or on a cluster without GPUs one per node (local:N: N, sharing the cores). Each holds a resident
``Session``, so its models load once and stay loaded for every shot it renders. A shot is one
actor call: its chain of windows runs on one worker (each window reads the ones generated
before it), and independent shots run in parallel on different workers. The driver keeps a
plain dispatch loop over ``ray.wait``: an idle worker takes a shot of the model it already holds
when there is one.

Faults: workers restart for ever (``max_restarts=-1``) and a call cut short by a worker's death
runs again on its restarted worker (``max_task_retries``). The cache commits every window as
soon as it is sampled and its writes are idempotent, so the retry resumes from the cache and a
kill costs at most the window in flight. Nothing is held by the driver: if it dies, its workers
die with it, the cache stays consistent and running the command again resumes.

Progress travels from the workers to the driver through a small hub actor (fire-and-forget
pushes, drained by the driver between waits) and is drawn by one Rich display for the farm.

Ray is imported only here, and only when ``--farm`` is given; `validate` and `plan` never load it.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import socket
import sys
import time
from collections import deque
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, NamedTuple

from .events import Cancel, ModelError, Observer, RenderCancelled, RenderError, RenderResult

if TYPE_CHECKING:
    from rich.console import Console

    from ..plan import EditNode, Plan, WindowNode
    from ..shot import Loaded, Shot

EXIT_OK, EXIT_FAILED, EXIT_INVALID = 0, 1, 2
TASK_RETRIES = 3  # re-runs of a shot whose worker died under it (each resumes from the cache)
STEP_EVENTS_EVERY = 0.25  # seconds between step events from one worker: progress, not a log
POLL_SECONDS = 0.1  # the driver's wait between draining progress events
PROBE_SECONDS = 5.0  # Ray retries an unreachable address for minutes: try the port first
LOCAL_OBJECT_STORE = 150 * 1024 * 1024  # shots and results are small; Ray's default is 30% of RAM
INSTALL_HINT = "pip install 'framepack-render[farm]'"
ADDRESS_FORMS = "auto, ray://HOST:PORT, HOST:PORT or local:N"


class FarmError(Exception):
    """The farm cannot start (bad address, Ray missing, cluster unreachable): one line, exit 2."""


# ---------------------------------------------------------------- addresses and clusters


@dataclass(frozen=True)
class Address:
    kind: str  # "auto" | "client" (ray://) | "cluster" (HOST:PORT) | "local"
    text: str
    host: str = ""
    port: int = 0
    workers: int = 0  # local:N


_HOST_PORT = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):(\d{1,5})")


def parse_address(text: str) -> Address:
    """``auto``, ``ray://HOST:PORT``, ``HOST:PORT`` or ``local:N``; FarmError otherwise."""
    if text == "auto":
        return Address("auto", text)
    if match := re.fullmatch(r"local:(\d+)", text):
        workers = int(match[1])
        if not 1 <= workers <= 256:
            raise FarmError(f"--farm {text}: local:N takes 1 to 256 workers")
        return Address("local", text, workers=workers)
    client = text.startswith("ray://")
    kind, rest = ("client", text[len("ray://"):]) if client else ("cluster", text)
    match = _HOST_PORT.fullmatch(rest)
    if match is None or not 0 < int(match[2]) < 65536:
        raise FarmError(f"--farm {text!r} is not a cluster address; write {ADDRESS_FORMS}")
    return Address(kind, text, host=match[1].strip("[]"), port=int(match[2]))


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise FarmError(f"--farm needs Ray, which is not installed: {INSTALL_HINT}") from None
    return ray


def _probe(address: Address) -> None:
    """Fail in seconds, in one line, where Ray would retry an unreachable address for minutes."""
    try:
        socket.create_connection((address.host, address.port), timeout=PROBE_SECONDS).close()
    except OSError as error:
        raise FarmError(f"--farm {address.text}: cannot reach the cluster "
                        f"({error.strerror or error})") from None


def _loopback_only() -> None:
    """Make a cluster started from this process use 127.0.0.1 for every address and listening
    socket (Ray's rule for machines it does not cluster): a local farm is not reachable from
    the network. The environment variable reaches Ray's own processes; the constant covers a
    Ray module that was imported before this was called."""
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    if "ray._private.ray_constants" in sys.modules:
        sys.modules["ray._private.ray_constants"].ENABLE_RAY_CLUSTER = False


def start_local_cluster(num_cpus: int, num_gpus: int | None = None,
                        object_store_memory: int = LOCAL_OBJECT_STORE) -> None:
    """A private Ray cluster in this process: listening on 127.0.0.1 only, no dashboard.
    ``num_gpus`` may exceed the real count (Ray then hands out GPU slots without devices:
    GPU placement becomes testable anywhere). Stopped with ``ray.shutdown()``."""
    _loopback_only()
    ray = _import_ray()
    ray.init(address="local", num_cpus=num_cpus, num_gpus=num_gpus, include_dashboard=False,
             object_store_memory=object_store_memory, logging_level=logging.ERROR,
             log_to_driver=False)
    node = ray.util.get_node_ip_address()
    if node != "127.0.0.1":
        ray.shutdown()
        raise FarmError(f"the local Ray cluster would listen on {node}, not 127.0.0.1; "
                        "not starting it")


def connect(address: Address) -> bool:
    """Connect this process to the farm's cluster; True when it started (and so owns) it."""
    if address.kind == "local":
        try:
            start_local_cluster(address.workers * local_threads(address.workers))
        except FarmError:
            raise
        except Exception as error:  # Ray's start-up failures: a port, /tmp, shared memory
            raise FarmError(f"--farm {address.text}: could not start a local Ray cluster: "
                            f"{_first_line(error)}") from None
        return True
    ray = _import_ray()
    target = address.text
    if address.kind == "auto" and ray.is_initialized():  # embedded in a connected driver
        return False
    if address.kind == "auto":  # RAY_ADDRESS (set inside `ray job submit` jobs) or this host's
        try:
            inner = parse_address(os.environ.get("RAY_ADDRESS", "auto"))
        except FarmError:  # a form Ray knows and we do not: let Ray judge it
            inner = address
        if inner.kind in ("client", "cluster"):
            _probe(inner)
    else:
        _probe(address)
    try:
        ray.init(address=target, logging_level=logging.ERROR, log_to_driver=False)
    except Exception as error:  # ConnectionError (no cluster), a client/version mismatch
        raise FarmError(f"--farm {address.text}: cannot connect: {_first_line(error)}") from None
    return False


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


# ---------------------------------------------------------------- the store in every process


def cache_location(cache: str | None) -> str:
    """The cache as every worker must name it: a URL unchanged, a folder made absolute on the
    driver (workers have their own working folder and environment)."""
    from ..store import default_cache_dir
    from ..urls import is_url

    cache = cache or os.environ.get("FRAMEPACK_CACHE") or None
    if cache is not None and is_url(cache):
        return cache
    return str((Path(cache).expanduser() if cache else default_cache_dir()).resolve())


def open_cache(location: str, storage_options: dict[str, Any] | None = None) -> Any:
    """The one place a cache location becomes a store, in the driver and in each worker."""
    from ..store import StoreUnavailable, open_store

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

        from .executor import Session

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
        from ..plan import build_plan
        from ..store import StoreError

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
        self._send("shot_started", len(plan.windows), to_sample, os.getpid())

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
    from ..plan.keys import canonical, model_identity, transformer_identity

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
                _import_ray().shutdown()
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
        from ..plan import build_plan
        from .events import up_to_date_result

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
        from ..plan import build_plan
        from .events import up_to_date_result

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
                                 f"{_first_line(error.cause or error)}")
        except exceptions.RayError as error:  # died more than TASK_RETRIES times under it
            return Outcome(job.tag, {"name": slot.name},
                           error=f"{job.shot.label}: {slot.name} died during the render "
                                 f"({type(error).__name__}); run again to resume")


@dataclass
class _Job:
    tag: int
    shot: "Shot"
    affinity: str


def local_threads(workers: int) -> int:
    """CPU cores for each of local:N's workers: an equal share of this machine."""
    return max(1, (os.cpu_count() or workers) // workers)


def worker_shape(local_workers: int | None = None) -> tuple[int, dict[str, Any]]:
    """How many workers the connected cluster takes and what each asks Ray for: one per GPU
    (``num_gpus=1``); without GPUs, local:N makes N with an equal share of the cores each, and
    a cluster one per node with the smallest node's cores. Ray sets each worker's
    OMP_NUM_THREADS to its ``num_cpus``, which is how many threads torch then uses."""
    import ray

    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0))
    if local_workers is not None:
        if gpus >= local_workers:
            return local_workers, {"num_gpus": 1}
        return local_workers, {"num_cpus": max(1, int(resources.get("CPU", 1)) // local_workers)}
    if gpus:
        return gpus, {"num_gpus": 1}
    nodes = [node for node in ray.nodes() if node.get("Alive")]
    cores = min((int(node["Resources"].get("CPU", 1)) for node in nodes), default=1)
    return max(len(nodes), 1), {"num_cpus": max(cores, 1), "scheduling_strategy": "SPREAD"}


# ---------------------------------------------------------------- progress


class FarmProgress(FarmObserver):
    """One Rich display for the farm: a line per running shot with its worker, windows
    sampled of those to sample, and an ETA; a line per sampled window on the console."""

    def __init__(self, console: "Console"):
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                   TimeElapsedColumn, TimeRemainingColumn)

        self.console = console
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(),
                                 MofNCompleteColumn(), TextColumn("windows"),
                                 TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
                                 console=console, transient=True)
        self.tasks: dict[int, Any] = {}
        self.shots: dict[int, tuple[str, str]] = {}  # tag -> (label, worker)
        self.totals: dict[int, int] = {}
        self.steps: dict[int, int] = {}  # tag -> steps of the window being sampled
        self.done: dict[int, int] = {}

    def __enter__(self) -> "FarmProgress":
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def submitted(self, tag: int, shot: "Shot", worker: str) -> None:
        self.shots[tag] = (shot.label, worker)
        self.tasks[tag] = self.progress.add_task(f"{shot.label} · {worker}", total=None)

    def event(self, event: Event) -> None:
        tag = event.tag
        if tag not in self.tasks:
            return
        task = self.tasks[tag]
        label = self.shots[tag][0]
        if event.kind == "shot_started":  # again after a worker restart: start over
            windows, to_sample, _pid = event.args
            self.totals[tag], self.done[tag] = max(to_sample, 1), 0
            self.progress.reset(task, total=self.totals[tag], completed=0 if to_sample else 1)
            self.console.print(f"[bold]{label}[/] on {event.worker}: {windows} windows, "
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
            self.console.print(f"  {label}: window {index + 1} sampled in {seconds:.1f} s "
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


# ---------------------------------------------------------------- the commands


def worker_label(worker: dict[str, Any] | None) -> str:
    if not worker:
        return ""
    node = f"@{worker['node']}" if worker.get("node") else ""
    return f" on {worker['name']}{node}"


def farm_from_args(args: argparse.Namespace) -> Farm:
    """The farm for `render` and `watch`; FarmError (one line) when it cannot start."""
    from ..housekeeping import storage_options

    return Farm.open(args.farm, args.cache, storage_options=storage_options(args) or None,
                     device=args.device)


def render_on_farm(args: argparse.Namespace, loaded: list["Loaded"],
                   line: Callable[[RenderResult], str]) -> int:
    """`framepack render --farm`: every shot of every file, in parallel across the workers."""
    from rich.console import Console

    from ..shot.errors import print_diagnostics

    started = time.perf_counter()
    try:
        farm = farm_from_args(args)
    except FarmError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_INVALID
    start_seconds = time.perf_counter() - started
    console = Console(stderr=True, highlight=False)
    preview = sys.stderr.isatty() if args.preview is None else args.preview
    finished: list[tuple[int, RenderResult, dict[str, Any] | None]] = []  # tag, result, worker
    status = EXIT_OK
    with farm, FarmProgress(console) as progress:
        for item in loaded:
            print_diagnostics(item.warnings)
        shots = [shot for item in loaded for shot in item.shots]
        for shot, outcome in farm.render(shots, force=args.force, preview=preview,
                                         observer=progress):
            if outcome.model_error:
                print(f"{shot.model.mark}: {outcome.error}", file=sys.stderr)
                return EXIT_INVALID
            if outcome.error is not None:
                print(f"error: {outcome.error}", file=sys.stderr)
                status = EXIT_FAILED
                continue
            assert outcome.result is not None
            worker = outcome.worker and {**outcome.worker,
                                         "call_seconds": round(outcome.seconds, 3)}
            finished.append((outcome.tag, outcome.result, worker))
            console.print(line(outcome.result) + worker_label(outcome.worker), soft_wrap=True)
        cache = farm.store.url
        workers = len(farm.slots)
    if args.json:
        finished.sort(key=lambda item: item[0])  # the order the shots were given
        summaries = [result for _, result, _ in finished]
        json.dump({"shots": [{**asdict(result), "worker": worker}
                             for _, result, worker in finished],
                   "windows_rendered": sum(s.windows_rendered for s in summaries),
                   "windows_cached": sum(s.windows_cached for s in summaries),
                   "outputs": [o for s in summaries for o in s.outputs],
                   "seconds": round(time.perf_counter() - started, 3),
                   "cache": cache, "ok": status == EXIT_OK,
                   "farm": {"address": args.farm, "workers": workers,
                            "start_seconds": round(start_seconds, 3)}}, sys.stdout, indent=2)
        print()
    return status


class FarmRenders:
    """`framepack watch --farm`: the ``render(shot, cancel)`` a Watcher calls, on a worker
    (the same one while the model stays the same, so its models stay loaded)."""

    def __init__(self, farm: Farm, args: argparse.Namespace, observer: FarmObserver):
        self.farm = farm
        self.args = args
        self.observer = observer

    def __call__(self, shot: "Shot", cancel: Cancel | None = None) -> RenderResult:
        preview = sys.stderr.isatty() if self.args.preview is None else self.args.preview
        return self.farm.render_one(shot, force=self.args.force, preview=preview,
                                    observer=self.observer, cancel=cancel)


@contextmanager
def farm_renders(args: argparse.Namespace, console: "Console") -> Iterator[FarmRenders]:
    """The farm and its progress display for `framepack watch --farm`, closed on exit.
    Raises FarmError before anything starts when the farm cannot."""
    with farm_from_args(args) as farm, FarmProgress(console) as progress:
        yield FarmRenders(farm, args, progress)
