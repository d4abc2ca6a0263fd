"""The local executor: run a plan's task graph in this process, taking what it can from the cache.

A render is the graph of ``plan.tasks``: prompt and image encodings, edits, windows, decoded
segments and the outputs, each task declaring the entries it reads and the one it writes.
Working back from what must be produced (stale outputs, every edit and window), a task runs
only when its entry is missing, and an entry is read only when a running task needs it. So an
unchanged shot loads no model, a new seed loads only the transformer and the VAE, and an fps
change re-encodes from cached segments. Each entry is committed as soon as it exists: an
interrupted render loses at most the task in flight. A ``Session`` keeps models and encodings
resident across renders.
"""

from __future__ import annotations

import time
from typing import Any

import torch

from ..engines.framepack.models import ModelPool, pool_identity
from ..engines.framepack.steps import FramePackSteps, Tensors
from ..engines.framepack.window import CallStats
from ..output.preview import Preview, preview_path
from ..output.record import edit_output_up_to_date, up_to_date
from ..output.write import OutputWriter, write_edit_image
from ..plan import Plan
from ..plan.entries import referenced, segment_keys
from ..plan.keys import canonical
from ..plan.tasks import Entry, Task, tasks
from ..shot.model import ModelSpec
from ..store.protocol import Store, StoreLease
from ..store.tensors import Memo, TensorCache
from .events import Cancel, Observer, RenderResult, up_to_date_result
from .memory import release_large_buffers

WINDOW_MEMO_BYTES = 256 << 20  # window latents read back, for the next windows' contexts


class Session:
    """What stays resident between renders in one process (several shots, a watch): a model
    pool per model identity, each component loaded once, and the encodings shared by all."""

    def __init__(self, store: Store, device: str | torch.device = "cpu"):
        self.store = store
        self.device = device
        self.pools: dict[str, ModelPool] = {}
        self.memo = Memo()

    def pool(self, model: ModelSpec) -> ModelPool:
        identity = canonical(pool_identity(model))
        if identity not in self.pools:
            self.pools[identity] = ModelPool(model, device=self.device)
        return self.pools[identity]

    def render(self, plan: Plan, *, force: bool = False, observer: Observer | None = None,
               preview: bool = False, cancel: Cancel | None = None) -> RenderResult:
        if plan.engine != "framepack":  # another engine runs its plan with its own steps
            from ..engines.flux_deforum.render import render

            return render(self, plan, force=force, observer=observer, preview=preview,
                          cancel=cancel)
        return LocalExecutor(self.pool(plan.shot.model), self.store, force=force,
                             observer=observer, preview=preview,
                             memo=None if force else self.memo, cancel=cancel).render(plan)


class LocalExecutor:
    """Runs plans in this process with one model pool. ``force`` makes every entry again."""

    def __init__(self, pool: Any, store: Store, *, force: bool = False,
                 observer: Observer | None = None, preview: bool = False,
                 memo: Memo | None = None, cancel: Cancel | None = None):
        self.pool = pool
        self.store = store
        self.force = force
        self.preview = preview
        self.observer = observer or Observer()
        self.memo = memo
        self.cancel = cancel or Cancel()
        release_large_buffers()

    def render(self, plan: Plan) -> RenderResult:
        # Before anything is looked up: a concurrent `cache gc` keeps what this render reads
        # and writes, and one that ran before it has finished deleting.
        with self.store.lease(referenced(plan)) as lease:
            return self._render(plan, lease)

    def _render(self, plan: Plan, lease: StoreLease) -> RenderResult:
        started = time.perf_counter()
        keys = segment_keys(plan)
        if not self.force and (current := up_to_date_result(plan, self.store, keys)) is not None:
            return current
        shot = plan.shot
        result = RenderResult(shot=shot.label,
                              outputs=[shot.locate(p) for p in shot.output_paths()],
                              keys=[w.key for w in plan.windows])
        cache = TensorCache(self.store, read=not self.force, memo=self.memo, wait=self._wait,
                            lease=lease)
        run = _GraphRun(plan, keys, self.pool, cache, self.observer, self.cancel, result,
                        force=self.force)
        if self.preview and shot.outputs and shot.destination is None:
            run.preview = Preview(preview_path(shot.outputs[0].path), *shot.size, shot.fps)
        loaded_before = self.pool.loaded
        try:
            run.run()
        finally:
            if run.preview is not None:
                run.preview.close()
            result.components_loaded = sorted(self.pool.loaded - loaded_before)
        result.transformer_calls = run.calls.calls
        result.teacache_skipped = run.calls.skipped
        if run.calls.calls and run.calls.teacache:
            result.teacache_skipped_share = round(run.calls.skipped / run.calls.calls, 4)
        result.corrupt_entries = len(cache.corrupt) + len(run.reader.corrupt)
        result.seconds["total"] = time.perf_counter() - started
        return result

    def _wait(self, kind: str, key: str) -> None:
        self.cancel.check()
        self.observer.waiting(kind, key)


class _GraphRun:
    """One render of one plan: which tasks run, running them in order, reading entries."""

    def __init__(self, plan: Plan, segment_keys: list[str], pool: Any, cache: TensorCache,
                 observer: Observer, cancel: Cancel, result: RenderResult, *, force: bool):
        self.plan = plan
        self.segment_keys = segment_keys
        self.pool = pool
        self.cache = cache  # makes missing entries (with --force: every entry)
        # Reads what this render made too, --force or not.
        self.reader = TensorCache(cache.store, memo=cache.memo, wait=cache.wait,
                                  lease=cache.lease)
        self.observer = observer
        self.cancel = cancel
        self.result = result
        self.force = force
        self.tasks = tasks(plan)
        self.producers: dict[Entry, Task] = {task.writes: task for task in self.tasks}
        self.windows = Memo(WINDOW_MEMO_BYTES)
        self.calls = CallStats()
        self.preview: Preview | None = None
        self.steps = FramePackSteps(plan, pool, self.read, on_step=self._step, calls=self.calls)
        self.started = time.perf_counter()

    # ------------------------------------------------------------ what runs

    def pending(self) -> set[Entry]:
        """The entries to make. Working back from the outputs, every edit and every window
        (they make later edits cheap, so a render leaves them all cached): a wanted entry the
        cache lacks is made, and what its task reads is wanted in turn."""
        roots = ("output", "edit", "window")
        wanted = {task.writes for task in self.tasks if task.kind in roots}
        pending: set[Entry] = set()
        for task in reversed(self.tasks):
            if task.writes in wanted and (task.kind == "output" or
                                          not self.cache.has(task.kind, task.key)):
                pending.add(task.writes)
                wanted.update(task.reads)
        return pending

    def run(self) -> None:
        pending = self.pending()
        making = {kind: sum(t.kind == kind and t.writes in pending for t in self.tasks)
                  for kind in ("window", "edit", "frames")}
        self.observer.shot_started(self.plan, making["window"])
        if making["window"] or making["edit"]:
            self.pool.check()  # fail fast, transformer first, before any model loads
        for task in self.tasks:
            self.cancel.check()
            if task.kind in ("frames", "output") and "sampling" not in self.result.seconds:
                self.result.seconds["sampling"] = time.perf_counter() - self.started
                self.observer.phase("decode")
                if making["frames"]:
                    self.pool.check(("vae",))
            if task.kind == "output":
                self.write_outputs(task)
            elif task.writes in pending:
                self.obtain(task)
            else:
                self._count(task, cached=True, seconds=0.0)
            if task.kind == "edit":
                self.write_edit_image(task)
        self.result.seconds["decode_and_encode"] = (time.perf_counter() - self.started
                                                    - self.result.seconds["sampling"])

    # ------------------------------------------------------------ entries

    def obtain(self, task: Task) -> Tensors:
        """The task's entry, made if the cache lacks it (another process may make it first)."""
        began = time.perf_counter()
        tensors, cached = self.cache.obtain(task.kind, task.key, lambda: self._make(task))
        if task.kind == "window":
            self.windows.put(task.kind, task.key, tensors)
            if not cached and self.preview is not None:
                frames = self.steps.preview_frames(tensors["latents"])
                self.preview.add(task.subject.index, frames)
                self.observer.window_frames(task.subject, frames)
        self._count(task, cached, time.perf_counter() - began)
        return tensors

    def read(self, entry: Entry) -> Tensors:
        """An entry a running task needs; one missing or found corrupt is made again."""
        kind, key = entry
        if kind == "window" and (memo := self.windows.get(kind, key)) is not None:
            return memo
        tensors = self.reader.load(kind, key)
        if tensors is None:
            return self.obtain(self.producers[entry])
        if kind == "window":
            self.windows.put(kind, key, tensors)
        return tensors

    def _make(self, task: Task) -> Tensors:
        if task.kind == "window":
            self.observer.window_started(task.subject, task.subject.sampling.steps)
        elif task.kind == "edit":
            self.observer.edit_started(task.subject, task.subject.edit.sampling.steps)
        return self.steps.make(task)

    def _step(self, node: Any, index: int) -> None:
        self.cancel.check()
        self.observer.step(node, index)

    COUNTERS = {"window": ("windows_cached", "windows_rendered"),
                "edit": ("edits_cached", "edits_rendered"),
                "frames": ("segments_cached", "segments_decoded")}

    def _count(self, task: Task, cached: bool, seconds: float) -> None:
        if task.kind in self.COUNTERS:
            name = self.COUNTERS[task.kind][0 if cached else 1]
            setattr(self.result, name, getattr(self.result, name) + 1)
        if task.kind == "window":
            self.observer.window_done(task.subject, cached, seconds)
        elif task.kind == "edit":
            self.observer.edit_done(task.subject, cached, seconds)

    # ------------------------------------------------------------ outputs

    def write_edit_image(self, task: Task) -> None:
        """An edit's ``output:`` image, when it is missing or stale."""
        node = task.subject
        destination = self.plan.shot.destination
        if node.edit.output is None or (not self.force and
                                        edit_output_up_to_date(node, destination)):
            return
        write_edit_image(node, self.read(task.writes)["frame"].numpy(), destination)
        self.result.edit_outputs_written += 1

    def write_outputs(self, task: Task) -> None:
        """Every output at once from the cached segments. One writer per output set: a
        process rendering the same shot meanwhile finds them up to date once it has the lock."""
        outputs = len(self.plan.shot.outputs)
        with self.cache.locked("output", task.key):
            if not self.force and up_to_date(self.plan, self.segment_keys):
                self.result.outputs_up_to_date = outputs
                return
            OutputWriter(self.plan, self.segment_keys).write(
                self._segments(), self._reload, self.steps.all_latents)
            self.result.outputs_written = outputs

    def _segments(self):
        for key in self.segment_keys:
            self.cancel.check()
            yield key, self._reload(key)

    def _reload(self, key: str):
        return self.read(("frames", key))["frames"].numpy()
