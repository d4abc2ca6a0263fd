"""How plans look to people (Rich tables) and to programs (JSON)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from .output.record import input_record
from .plan import Plan, WindowNode
from .plan.window_values import scheduled_json
from .shot.errors import display_path
from .shot.model import Control, ImageRef, Shot

KEY_SHOWN = 12
PROMPT_SHOWN = 80
# Scheduled settings by short names, for the plan table's narrow column (mu, sigma: flow shift).
SHORT_NAMES = {
    "flow_shift.mu": "mu", "flow_shift.sigma": "sigma", "end_image_strength": "end strength",
    "experimental.context_blur.sigma": "blur sigma",
    "experimental.context_blur.alpha": "blur alpha",
    "experimental.context_decay": "context decay", "experimental.cfg_schedule.beta": "cfg beta",
    "experimental.transition_mu_boost": "mu boost",
}


def describe_shot(shot: Shot, plan: Plan) -> str:
    """One line: what this shot renders."""
    if plan.engine != "framepack":
        from .engines.flux_deforum import report

        return report.describe_shot(shot, plan)  # type: ignore[arg-type]
    sections = len(shot.sections)
    parts = [
        f"{sections} section{'s' if sections != 1 else ''}",
        f"{len(plan.windows)} window{'s' if len(plan.windows) != 1 else ''}",
        f"{plan.total_frames} frames ({plan.seconds:.2f} s at {shot.fps:g} fps)",
    ]
    if plan.edits:
        parts.append(f"{len(plan.edits)} edit{'s' if len(plan.edits) != 1 else ''}")
    return f"{shot.label}: {', '.join(parts)} -> {outputs_text(shot)}"


def _time_span(plan: Plan, node: WindowNode, per: int) -> str:
    """A window's seconds in the written video (an exact shot's trim shifts and clips them)."""
    shift, last = plan.trim.start - plan.new_offset, plan.new_offset + plan.new_frames
    low = min(max(node.index * per - shift, 0), last) / plan.shot.fps
    high = min(max((node.index + 1) * per - shift, 0), last) / plan.shot.fps
    return f"{low:.2f}-{high:.2f}"


def outputs_text(shot: Shot) -> str:
    """The outputs a shot writes, as people read them (a URL root names URLs)."""
    shown = (display_path(o.path) if shot.destination is None else shot.locate(o.path)
             for o in shot.outputs)
    return ", ".join(text + ("/" if o.format == "frames" else "")
                     for text, o in zip(shown, shot.outputs))


def print_plan(console: Console, plan: Plan) -> None:
    if plan.engine != "framepack":
        from .engines.flux_deforum import report

        return report.print_plan(console, plan)  # type: ignore[arg-type]
    shot = plan.shot
    model = shot.model.profile
    console.print(Text(shot.label, style="bold"), Text(
        f"  model {model} · {shot.size[0]}x{shot.size[1]} · {shot.fps:g} fps · window "
        f"{shot.window} · {shot.sampling} · {shot.sampler} · {plan.total_frames} frames "
        f"({plan.seconds:.2f} s)", style="dim"))
    if shot.input_video is not None:
        console.print(Text(_extension_text(plan), style="dim"), soft_wrap=True)
    if plan.edits:
        console.print(_edit_table(plan))
    console.print(_window_table(plan, console))
    for note in plan.notes:
        console.print(Text(str(note), style="yellow"), soft_wrap=True)
    todo = sum(not w.cached for w in plan.windows) + sum(not e.cached for e in plan.edits)
    total = len(plan.windows) + len(plan.edits)
    console.print(f"{total - todo} of {total} nodes cached, {todo} to render -> "
                  f"{outputs_text(shot)}", soft_wrap=True, markup=False)


def _extension_text(plan: Plan) -> str:
    """One line: which video is extended, on which side, and what the output holds."""
    video = plan.shot.input_video
    assert video is not None
    side = "after" if video.extend == "forward" else "before"
    kept = f"{video.frames} frames of the video + " if video.keep else ""
    return (f"extends {display_path(video.path)} {video.extend}: {plan.new_frames} new frames "
            f"{side} it; the output holds {kept}{plan.new_frames} new")


def _window_table(plan: Plan, console: Console) -> Table:
    """Time order, one row per window. Below 110 columns the section and shift columns go.
    Scheduled values that differ between windows get a column where it fits beside the
    others, else a line under each window's prompt."""
    names = varying_schedules(plan)
    table = _windows(plan, console.width, names, column=True)
    if names and _narrowest(console, table) > console.width:
        table = _windows(plan, console.width, names, column=False)
    return table


def _narrowest(console: Console, table: Table) -> int:
    """The fewest columns ``table`` fits in, with every column wrapped as far as it goes;
    measured unclamped, since a measure at the console's width never says it is too wide."""
    from rich.measure import Measurement

    return Measurement.get(console, console.options.update_width(10_000), table).minimum


def _windows(plan: Plan, width: int, scheduled: list[str], *, column: bool) -> Table:
    shot = plan.shot
    per = 4 * shot.window
    wide = width >= 110
    table = Table(title="windows (time order)", title_justify="left")
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("time (s)", no_wrap=True)
    if wide:
        table.add_column("section", no_wrap=True, max_width=16)
    table.add_column("prompt", ratio=1, min_width=12, overflow="fold")
    table.add_column("prefix", max_width=22 if wide else 14, overflow="fold")
    table.add_column("order", justify="right", no_wrap=True)
    if wide:
        table.add_column("shift", justify="right", no_wrap=True)
    if scheduled and column:
        table.add_column("scheduled", ratio=1, min_width=12, overflow="fold")
    table.add_column("key", no_wrap=True)
    table.add_column("cached", justify="center", no_wrap=True)
    for node in plan.windows:
        cells: list[str | Text] = [
            str(node.index + 1),
            _time_span(plan, node, per),
        ]
        if wide:
            cells.append(node.slot.section.label)
        prompt = _prompt_cell(node)
        if scheduled and not column:
            prompt.append("\n" + _scheduled_cell(node, scheduled), style="dim")
        cells += [prompt, _prefix_cell(node, shot), str(node.order + 1)]
        if wide:
            cells.append(_shift_cell(node))
        if scheduled and column:
            cells.append(_scheduled_cell(node, scheduled))
        cells += [node.key[:KEY_SHOWN if wide else 8],
                  Text("yes", style="green") if node.cached else Text("no", style="dim")]
        table.add_row(*cells)
    return table


def varying_schedules(plan: Plan) -> list[str]:
    """The scheduled settings whose values differ between windows, in the shot's order. One
    that every window samples alike is a single number, and the table leaves it out."""
    seen: dict[str, set[float]] = {}
    for node in plan.windows:
        for name, value in _sampled(node).items():
            seen.setdefault(name, set()).add(value)
    return [name for name, values in seen.items() if len(values) > 1]


def _sampled(node: WindowNode) -> dict[str, float]:
    """The scheduled values a window samples with: the end image's strength is read only by
    the window that holds the end image."""
    if node.scheduled is None:
        return {}
    return {name: value for name, value in node.scheduled.values.items()
            if name != "end_image_strength" or node.uses_end_image}


def _scheduled_cell(node: WindowNode, names: list[str]) -> str:
    values = _sampled(node)
    return ", ".join(f"{SHORT_NAMES.get(name, name)} {values[name]:.3g}" for name in names
                     if name in values)


def _edit_table(plan: Plan) -> Table:
    table = Table(title="edits (one-frame)", title_justify="left")
    for name in ("edit", "prompt", "target", "controls", "drops", "key", "cached"):
        table.add_column(name, overflow="fold" if name == "prompt" else "ellipsis")
    for node in plan.edits:
        edit = node.edit
        controls = ", ".join(f"{c.image}@{c.index}" + _mask_text(c) for c in edit.controls)
        drops = ", ".join(k for k, on in (("2x", edit.no_2x), ("4x", edit.no_4x),
                                          ("post", edit.no_post)) if on) or "-"
        table.add_row(edit.name, edit.prompt, str(edit.target_index), controls, drops,
                      node.key[:KEY_SHOWN],
                      Text("yes", style="green") if node.cached else Text("no", style="dim"))
    return table


def _mask_text(control: Control) -> str:
    if control.mask is not None:
        return " masked"
    info = control.image.info
    return " masked by alpha" if info is not None and info.has_alpha else ""


def _prompt_cell(node: WindowNode) -> Text:
    slot = node.slot
    text = Text(_shorten(slot.prompt, PROMPT_SHOWN))
    if slot.blend_from is not None:
        text.append(f" (blend {slot.blend_alpha:.0%})", style="cyan")
    return text


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _prefix_cell(node: WindowNode, shot: Shot) -> Text:
    if node.bridge:
        return Text(f"window {node.index}'s end (bridge)", style="cyan")
    text = Text(_image_name(node.prefix))
    if node.slot.keyframe:
        text.append(" (keyframe)", style="cyan")
    if node.uses_end_image and shot.end_image is not None:
        text.append(f" + end {_image_name(shot.end_image)}", style="magenta")
    return text


def _image_name(ref: ImageRef) -> str:
    return str(ref) if ref.edit is not None else Path(ref.text).name


def _shift_cell(node: WindowNode) -> str:
    text = f"{node.shift.factor:.2f}"
    return text if node.shift.sigma == 1.0 else f"{text} σ{node.shift.sigma:g}"


def plan_json(plan: Plan) -> dict[str, Any]:
    if plan.engine != "framepack":
        from .engines.flux_deforum import report

        return report.plan_json(plan)  # type: ignore[arg-type]
    shot = plan.shot
    return {
        "shot": shot.label,
        "source": str(shot.source),
        "vars": shot.vars,
        "model": shot.model.profile,
        "size": list(shot.size),
        "fps": shot.fps,
        "window": shot.window,
        "sampling": shot.sampling,
        "sampler": shot.sampler,
        "frames": plan.total_frames,
        "seconds": round(plan.seconds, 6),
        "rendered_frames": plan.rendered_frames,  # before an exact shot's trim
        "trim": {"start": plan.trim.start, "end": plan.trim.end},
        "new_frames": plan.new_frames,
        "input_video": input_record(plan),
        "outputs": [{"path": shot.locate(o.path), "format": o.format} for o in shot.outputs],
        "edits": [{
            "name": e.edit.name,
            "prompt": e.edit.prompt,
            "needs": e.needs,
            "layout": e.layout.as_dict(),
            "shift": {"mu": e.shift.mu, "sigma": e.shift.sigma},
            "seed": e.noise_seed,
            "output": shot.locate(e.edit.output) if e.edit.output else None,
            "key": e.key,
            "cached": e.cached,
        } for e in plan.edits],
        "windows": [{
            "index": w.index,
            "section": w.slot.section.index,
            "order": w.order,
            "frames": list(plan.frame_span(w)),
            "prompt": w.slot.prompt,
            "blend": None if w.slot.blend_from is None else {
                "from": w.slot.blend_from, "alpha": w.slot.blend_alpha},
            "prefix": str(w.prefix),
            "keyframe": w.slot.keyframe,
            "end_image": w.uses_end_image,
            "input_video": "input_video" in w.inputs,  # its history reads the video's latents
            "padding": w.padding,
            "layout": w.layout.as_dict(),
            "shift": {"mu": w.shift.mu, "sigma": w.shift.sigma},
            "schedules": scheduled_json(w.scheduled),  # null when no setting is scheduled
            "seed": w.noise_seed,
            "key": w.key,
            "after": w.after,
            "cached": w.cached,
        } for w in plan.windows],
        "notes": [str(n) for n in plan.notes],
    }
