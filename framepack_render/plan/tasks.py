"""A render as a graph of tasks: each declares the entries it reads and the one it writes.

A task is a step in the Bazel sense: declared inputs (cache entries), one output (a cache entry,
or for ``output`` the shot's files), a key. ``tasks(plan)`` lists them in an order in which each
task's inputs are written by a task before it, the order the local executor runs them; a
distributed executor may run a task anywhere once its inputs exist. No torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

from ..shot.model import ImageRef, InputVideo
from .entries import chunks, image_key, prompt_key, segment_keys, video_key
from .extension import reads_video
from .graph import EditNode, Plan, WindowNode
from .keys import content_key, model_identity

Entry = tuple[str, str]  # (kind, key) in the cache
TASK_KINDS = ("prompt", "image", "video", "edit", "window", "frames", "flux-frame", "output")


@dataclass(frozen=True)
class Task:
    kind: str  # one of TASK_KINDS
    key: str  # what it writes: the entry (kind, key), or for "output" the outputs' key
    reads: tuple[Entry, ...]  # entries it needs, each written by an earlier task
    label: str  # for people: "window 3", "prompt 'a red ball…'", "segment 2"
    subject: Union[str, ImageRef, InputVideo, EditNode, WindowNode, int, None] = None  # made

    @property
    def writes(self) -> Entry:
        return (self.kind, self.key)


def outputs_key(plan: Plan) -> str:
    """One key per output set: the writer's lock and the output task's key."""
    return content_key("outputs", {"paths": sorted(plan.shot.locate(o.path) for o in plan.shot.outputs)})


def tasks(plan: Plan) -> list[Task]:
    """Every task of a render of ``plan``, each once, inputs before the tasks that read them."""
    if plan.engine != "framepack":  # another engine's plan lists its own
        return plan.tasks()
    graph = _Graph(plan)
    for node in plan.edits:
        graph.edit(node)
    for node in plan.generation_order:
        graph.window(node)
    graph.segments()
    graph.output()
    return graph.found


class _Graph:
    """Collects tasks, adding each encoding the first time something reads it."""

    def __init__(self, plan: Plan):
        self.plan = plan
        self.shot = plan.shot
        self.model = model_identity(self.shot.model)
        self.found: list[Task] = []
        self.seen: set[Entry] = set()
        self.edit_entries = {node.edit.name: ("edit", node.key) for node in plan.edits}
        self.window_entries = {node.index: ("window", node.key) for node in plan.windows}
        self.segment_keys = segment_keys(plan)

    def add(self, task: Task) -> Entry:
        if task.writes not in self.seen:
            self.seen.add(task.writes)
            self.found.append(task)
        return task.writes

    def prompt(self, text: str) -> Entry:
        label = f"prompt {text[:40]!r}"
        return self.add(Task("prompt", prompt_key(self.model, text), (), label, text))

    def image(self, ref: ImageRef) -> Entry:
        reads = (self.edit_entries[ref.edit],) if ref.edit is not None else ()
        if ref.edit is not None:
            name = f"edit {ref.edit}"
        elif ref.video is not None:
            name = f"{ref.video.name} (last frame)"
        else:
            name = ref.info.path.name  # type: ignore[union-attr]
        key = image_key(self.shot, ref, self.plan.edit_keys)
        return self.add(Task("image", key, reads, f"image {name}", ref))

    def video(self) -> Entry:
        """The input video's latents that windows read as history."""
        video, key = self.shot.input_video, video_key(self.shot)
        assert video is not None and key is not None
        return self.add(Task("video", key, (), f"video {video.name}", video))

    def edit(self, node: EditNode) -> None:
        edit, settings = node.edit, node.edit.sampling
        reads = [self.prompt(edit.prompt)]
        if settings.cfg > 1:
            reads.append(self.prompt(settings.negative_prompt))
        reads += [self.image(ref) for ref in (edit.image, *(c.image for c in edit.controls))]
        # Masks and edit images read as pixels come from the edits they name.
        reads += [self.edit_entries[name] for name in node.needs]
        self.add(Task("edit", node.key, _unique(reads), f"edit {edit.name}", node))

    def window(self, node: WindowNode) -> None:
        shot, slot, settings = self.shot, node.slot, node.sampling
        reads = [self.prompt(slot.prompt)]
        if slot.blend_from is not None:
            reads.append(self.prompt(slot.blend_from))
        if settings.cfg > 1:
            reads.append(self.prompt(settings.negative_prompt))
        reads.append(self.image(node.prefix))
        if node.uses_end_image and shot.end_image is not None:
            reads.append(self.image(shot.end_image))
        if shot.sampling == "forward":
            reads.append(self.image(shot.image))
        if reads_video(shot, node.index, len(self.plan.windows)):
            reads.append(self.video())
        # The window generated just before it: its key continues from that one, and every
        # window its context reads was generated no later, so this orders it after all of them.
        if node.after is not None:
            reads.append(("window", node.after))
        self.add(Task("window", node.key, _unique(reads), f"window {node.index + 1}", node))

    def segments(self) -> None:
        window = self.shot.window
        chunk_list = chunks(len(self.plan.windows), window, self.shot.sampling)
        for i, key in enumerate(self.segment_keys):
            # A segment blends the tail of the chunk before it into its own chunk.
            first = chunk_list[i - 1].start if i > 0 else chunk_list[i].start
            reads = [self.image(self.shot.image)] if first == 0 else []
            windows = range(max(first - 1, 0) // window, (chunk_list[i].stop - 2) // window + 1)
            reads += [self.window_entries[j] for j in windows]
            self.add(Task("frames", key, _unique(reads), f"segment {i + 1}", i))

    def output(self) -> None:
        reads = [("frames", key) for key in self.segment_keys]
        if any(o.format == "safetensors" for o in self.shot.outputs):
            reads += [self.window_entries[node.index] for node in self.plan.windows]
        self.add(Task("output", outputs_key(self.plan), _unique(reads), "outputs"))


def _unique(entries: list[Entry]) -> tuple[Entry, ...]:
    return tuple(dict.fromkeys(entries))
