"""Compile a checked shot into its graph of edits and generation windows.

Each node's key hashes every input that shapes its latents plus the key of the node it
continues from, so changing one input re-keys that node and everything generated after it,
and nothing else. Generation orders:
- inverted: the last window first, the first window (next to the start image) last;
- forward: first to last (FramePack-F1);
- endpoints-first: the last window, then the first, then the middle from the end backwards.
  The window right after the first is generated last and *bridges* the two: its clean prefix is
  the first window's last latent, placed right before it, and its 1x context the window after.
In every order a window continues from the window generated just before it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, ClassVar

from ..shot.errors import Diagnostic
from ..shot.model import Edit, Experimental, ImageRef, Sampling, Shot
from .extension import history_latents, reads_video, video_identity
from .flowshift import Shift, resolve_shift, window_tokens
from .keys import (content_key, derive_seed, image_identity, model_identity, snap,
                   transformer_identity)
from .layout import (HISTORY_2X, HISTORY_4X, IndexLayout, forward_layout, inverted_layout,
                     latent_paddings, one_frame_layout)
from .timeline import Slot, Trim, frames_per_window, layout_slots, trim_of
from .window_values import WindowValues, window_values


@dataclass
class WindowNode:
    slot: Slot
    order: int  # position in generation order (0 = generated first)
    prefix: ImageRef  # the clean prefix (start image or the latest keyframe)
    uses_end_image: bool
    padding: int | None  # FramePack latent padding (inverted orders), in windows
    layout: IndexLayout
    noise_seed: int
    shift: Shift
    sampling: Sampling
    after: str | None  # key of the window generated just before
    bridge: bool = False  # the prefix is the previous window's last latent (endpoints-first)
    filtered: bool = False  # experimental context options reach this window's history
    key: str = ""
    inputs: dict[str, Any] = field(default_factory=dict)
    cached: bool = False
    experimental: Experimental = field(default_factory=Experimental)  # with its own values
    scheduled: WindowValues | None = None  # the values of its scheduled settings

    @property
    def index(self) -> int:
        return self.slot.index


@dataclass
class EditNode:
    edit: Edit
    layout: IndexLayout
    noise_seed: int
    shift: Shift
    needs: list[str]  # names of edits whose results it uses
    key: str = ""
    inputs: dict[str, Any] = field(default_factory=dict)
    cached: bool = False


@dataclass
class Plan:
    engine: ClassVar[str] = "framepack"  # other engines plan their own shots (build_plan)
    unit: ClassVar[str] = "window"  # what it generates at a time, for people
    unit_kind: ClassVar[str] = "window"  # the cache kind of those units

    shot: Shot
    windows: list[WindowNode]  # time order
    edits: list[EditNode]  # dependency order
    notes: list[Diagnostic]

    @property
    def generation_order(self) -> list[WindowNode]:
        return sorted(self.windows, key=lambda w: w.order)

    @property
    def rendered_frames(self) -> int:
        """Frames the windows make: the start frame and 4W per window."""
        return frames_per_window(self.shot.window) * len(self.windows) + 1

    @cached_property
    def trim(self) -> Trim:
        """Frames dropped from either end so an exact shot has the frames it asks for
        (a plan's shot and window count never change: computed once, read per window)."""
        return trim_of(self.shot, len(self.windows))[0]

    @property
    def new_frames(self) -> int:
        """Frames the windows add to the video written (after any trim)."""
        trim = self.trim
        return self.rendered_frames - trim.start - trim.end

    @property
    def kept_frames(self) -> int:
        """The input video's frames the output keeps (an extension with keep_input)."""
        video = self.shot.input_video
        return video.frames if video is not None and video.keep else 0

    @property
    def new_offset(self) -> int:
        """Where the new frames begin in the video written: after a kept video they extend
        forward, else at 0."""
        video = self.shot.input_video
        return self.kept_frames if video is not None and video.extend == "forward" else 0

    @property
    def total_frames(self) -> int:
        """Frames of the video written (after any trim, with any input video kept)."""
        return self.new_frames + self.kept_frames

    @property
    def seconds(self) -> float:
        return self.total_frames / self.shot.fps

    def frame_span(self, node: WindowNode) -> tuple[int, int]:
        """The video frames [first, last) this window contributes to the written video
        (frame 0 is the start image's; a trim shifts and clips them)."""
        per = frames_per_window(self.shot.window)
        shift, low = self.trim.start - self.new_offset, self.new_offset
        high = low + self.new_frames
        first, last = 1 + per * node.index - shift, 1 + per * (node.index + 1) - shift
        return min(max(first, low), high), min(max(last, low), high)

    @property
    def edit_keys(self) -> dict[str, str]:
        return {e.edit.name: e.key for e in self.edits}

    def keys(self) -> dict[str, str]:
        """Every node's key by a readable name: 'window 3', 'edit outfit'."""
        found = {f"edit {e.edit.name}": e.key for e in self.edits}
        found.update({f"window {w.index}": w.key for w in self.windows})
        return found


def generation_order(count: int, sampling: str) -> list[int]:
    """Time indices in the order they are generated."""
    if sampling == "forward":
        return list(range(count))
    if sampling == "endpoints-first" and count > 2:
        return [count - 1, 0] + list(range(count - 2, 0, -1))
    return list(range(count - 1, -1, -1))


def build_plan(shot: Shot) -> Plan:
    if shot.engine != "framepack":  # another engine's shot: its own planner (no torch)
        from ..engines.flux_deforum.plan import build_plan as build_flux_plan

        return build_flux_plan(shot)  # type: ignore[arg-type, return-value]
    edits = _edit_nodes(shot)
    edit_keys = {node.edit.name: node.key for node in edits}
    slots, notes = layout_slots(shot)
    order = generation_order(len(slots), shot.sampling)
    paddings = latent_paddings(len(slots))
    model = model_identity(shot.model)
    tokens = window_tokens(*shot.size, shot.window)
    prefixes = _prefixes(shot, slots)
    scheduled = window_values(shot, slots)  # None: every window uses its section's settings

    position_of = {index: position for position, index in enumerate(order)}
    keys: dict[int, str] = {}
    windows: list[WindowNode] = []
    previous_key: str | None = None
    for position, index in enumerate(order):
        slot = slots[index]
        values = scheduled[index] if scheduled is not None else None
        settings = values.sampling if values is not None else slot.section.sampling
        experimental = values.experimental if values is not None else shot.experimental
        bridge = False
        if shot.sampling == "forward":
            padding, layout = None, forward_layout(shot.window)
        else:
            bridge = index > 0 and not slot.keyframe and position_of[index - 1] < position
            padding = 0 if slot.keyframe or bridge else paddings[len(slots) - 1 - index]
            layout = inverted_layout(shot.window, padding)
        changes_text = index > 0 and _text(slots[index - 1]) != _text(slot)
        boost = experimental.transition_mu_boost if changes_text else 0.0
        node = WindowNode(
            slot=slot, order=position, prefix=prefixes[index],
            uses_end_image=shot.end_image is not None and index == len(slots) - 1,
            padding=padding, layout=layout,
            noise_seed=shot.seed if shot.noise == "sequential" else
            derive_seed(settings.seed, "window", index),
            shift=_shift(settings, tokens, boost), sampling=settings, after=previous_key,
            bridge=bridge, filtered=_history_filled(shot, index, len(slots), position_of),
            experimental=experimental, scheduled=values,
        )
        node.inputs = _window_inputs(shot, node, model, edit_keys)
        if shot.input_video is not None and reads_video(shot, index, len(slots)):
            node.inputs["input_video"] = video_identity(shot.input_video, history_latents(shot))
        if bridge:
            node.inputs["prefix_window"] = keys[index - 1]
        node.key = content_key("window", node.inputs)
        keys[index] = previous_key = node.key
        windows.append(node)
    windows.sort(key=lambda w: w.index)
    return Plan(shot, windows, edits, notes)


def mark_cached(plan: Plan, store: Any) -> None:
    """Fill ``cached`` from a cache store (anything with ``has(kind, key)``)."""
    if plan.engine != "framepack":
        return plan.mark_cached(store)
    for window in plan.windows:
        window.cached = store.has("window", window.key)
    for edit in plan.edits:
        edit.cached = store.has("edit", edit.key)


# ---------------------------------------------------------------- windows


def _prefixes(shot: Shot, slots: list[Slot]) -> list[ImageRef]:
    """Each window's clean prefix: its section's keyframe, else the latest before it."""
    current = shot.image
    out = []
    for slot in slots:
        if slot.keyframe and slot.section.image is not None:
            current = slot.section.image
        out.append(current)
    return out


def _history_filled(shot: Shot, index: int, count: int, position_of: dict[int, int]) -> bool:
    """Whether a window's history context holds anything but zeros when it is generated: in
    forward order always (the start latent), in inverted orders when a window within the 19
    history latents after it was generated before it, or an input video's latents are there."""
    if shot.sampling == "forward" or reads_video(shot, index, count):
        return True
    reach = -(-(1 + HISTORY_2X + HISTORY_4X) // shot.window)  # windows the history spans
    return any(position_of[j] < position_of[index]
               for j in range(index + 1, min(count, index + 1 + reach)))


def _text(slot: Slot) -> tuple[str, str | None, float]:
    return slot.prompt, slot.blend_from, slot.blend_alpha


def _shift(settings: Sampling, tokens: int, boost: float = 0.0) -> Shift:
    fs = settings.flow_shift
    return resolve_shift(fs.preset, fs.detail, tokens, mu=fs.mu, sigma=fs.sigma, shift=fs.shift,
                         boost=boost)


def _shift_inputs(shift: Shift) -> dict[str, float]:
    return {"mu": snap(shift.mu), "sigma": snap(shift.sigma)}


def _guidance_inputs(settings: Sampling, shot: Shot) -> dict[str, Any]:
    """Settings shared by windows and edits. The negative prompt counts only when cfg > 1."""
    real_cfg = settings.cfg > 1.0
    inputs: dict[str, Any] = {
        "steps": settings.steps,
        "guidance": snap(settings.guidance),
        "cfg": snap(settings.cfg),
        "negative_prompt": settings.negative_prompt if real_cfg else None,
    }
    if (transformer := transformer_identity(shot.model)) is not None:
        inputs["transformer"] = transformer
    return inputs


def _window_inputs(shot: Shot, node: WindowNode, model: dict[str, Any],
                   edit_keys: dict[str, str]) -> dict[str, Any]:
    slot = node.slot
    inputs: dict[str, Any] = {
        "model": model,
        "size": list(shot.size),
        "window": shot.window,
        "sampling": shot.sampling,
        "sampler": shot.sampler,
        "layout": node.layout.as_dict(),
        "prompt": slot.prompt,
        "blend": None if slot.blend_from is None else {
            "from": slot.blend_from, "alpha": snap(slot.blend_alpha)},
        "noise_seed": node.noise_seed,
        "noise": None if shot.noise == "per-window" else {"sequential": node.order},
        "shift": _shift_inputs(node.shift),
        "teacache": node.sampling.teacache,
        "prefix": image_identity(node.prefix, edit_keys),
        "end_image": None,
        "after": node.after,
        **_guidance_inputs(node.sampling, shot),
    }
    if node.uses_end_image:
        assert shot.end_image is not None
        inputs["end_image"] = {"image": image_identity(shot.end_image, edit_keys),
                               "strength": snap(shot.end_image_strength)}
    exp = node.experimental
    if exp.cfg_schedule_beta is not None:
        inputs["cfg_schedule_beta"] = snap(exp.cfg_schedule_beta)
    if node.filtered:  # context options change only windows whose history holds latents
        if exp.context_blur is not None:
            inputs["context_blur"] = [snap(v) for v in exp.context_blur]
        if exp.context_decay > 0:
            inputs["context_decay"] = snap(exp.context_decay)
    return inputs


# ---------------------------------------------------------------- edits


def _edit_nodes(shot: Shot) -> list[EditNode]:
    """Edits in dependency order (an edit after the edits it uses), each with its key."""
    by_name = {e.name: e for e in shot.edits}
    done: dict[str, EditNode] = {}
    ordered: list[EditNode] = []
    model = model_identity(shot.model)
    tokens = window_tokens(*shot.size, 1)

    def visit(edit: Edit) -> None:
        if edit.name in done:
            return
        needs = sorted({r.edit for r in edit.images() if r.edit is not None})
        for name in needs:
            visit(by_name[name])
        layout = one_frame_layout(shot.window, edit.target_index,
                                  [c.index for c in edit.controls], no_post=edit.no_post,
                                  no_2x=edit.no_2x, no_4x=edit.no_4x)
        node = EditNode(edit, layout, derive_seed(edit.sampling.seed, "edit"),
                        _shift(edit.sampling, tokens), needs)
        keys = {n.edit.name: n.key for n in done.values()}
        node.inputs = {
            "model": model,
            "size": list(shot.size),
            "sampler": shot.sampler,
            "layout": layout.as_dict(),
            "prompt": edit.prompt,
            "image": image_identity(edit.image, keys),
            "controls": [{
                "image": image_identity(c.image, keys),
                "mask": image_identity(c.mask, keys) if c.mask is not None else None,
            } for c in edit.controls],
            "noise_seed": node.noise_seed,
            "shift": _shift_inputs(node.shift),
            **_guidance_inputs(edit.sampling, shot),
        }
        node.key = content_key("edit", node.inputs)
        done[edit.name] = node
        ordered.append(node)

    for edit in shot.edits:
        visit(edit)
    return ordered
