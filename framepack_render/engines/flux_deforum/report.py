"""How a flux-deforum plan looks to people (a Rich table of frames) and to programs (JSON)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from ...report import outputs_text
from .plan import FluxPlan, FrameNode
from .shot import SCHEDULED, FluxShot, shown_image

KEY_SHOWN = 12
PROMPT_SHOWN = 60


def describe_shot(shot: FluxShot, plan: FluxPlan) -> str:
    keys = len(shot.prompts)
    return (f"{shot.label}: flux-deforum, {shot.frames} frames ({plan.seconds:.2f} s at "
            f"{shot.fps:g} fps), {keys} prompt{'s' if keys != 1 else ''} -> "
            f"{outputs_text(shot)}")


def print_plan(console: Console, plan: FluxPlan) -> None:
    shot = plan.shot
    console.print(Text(shot.label, style="bold"), Text(
        f"  flux-deforum · model {shot.model.profile} · {shot.size[0]}x{shot.size[1]} · "
        f"{shot.fps:g} fps · {shot.steps} steps · noise {shot.noise_mode} · colour "
        f"{shot.color_coherence.describe()} · init {shown_image(shot)} · "
        f"{plan.total_frames} frames ({plan.seconds:.2f} s)", style="dim"))
    console.print(_frame_table(plan, console.width))
    for note in plan.notes:
        console.print(Text(str(note), style="yellow"), soft_wrap=True)
    todo = sum(not node.cached for node in plan.frames)
    console.print(f"{len(plan.frames) - todo} of {len(plan.frames)} frames cached, {todo} to "
                  f"render -> {outputs_text(shot)}", soft_wrap=True, markup=False)


def _frame_table(plan: FluxPlan, width: int) -> Table:
    """One row per frame; runs of frames whose settings do not change share a row."""
    wide = width >= 110
    table = Table(title="frames", title_justify="left")
    for name in ("#", "time (s)", "prompt", "strength", "steps", "zoom", "angle", "x, y",
                 *(("guidance", "noise") if wide else ()), "key", "cached"):
        table.add_column(name, justify="right" if name not in ("prompt", "key") else "left",
                         no_wrap=name != "prompt", overflow="fold" if name == "prompt" else
                         "ellipsis", ratio=1 if name == "prompt" else None)
    fps = plan.shot.fps
    for first, last in _runs(plan.frames):
        node = plan.frames[first]
        m = node.motion
        span = str(first) if first == last else f"{first}-{last}"
        times = f"{first / fps:.2f}" if first == last else f"{first / fps:.2f}-{last / fps:.2f}"
        cached = [n.cached for n in plan.frames[first:last + 1]]
        mark = Text("yes", style="green") if all(cached) else (
            Text("no", style="dim") if not any(cached) else Text("part", style="yellow"))
        cells: list[str | Text] = [
            span, times, _prompt_cell(node), f"{node.strength:.2f}", str(node.steps),
            f"{m.zoom:.4g}", f"{m.angle:.3g}", f"{m.x:.3g}, {m.y:.3g}"]
        if wide:
            cells += [f"{node.guidance:.3g}", _noise_cell(node)]
        cells += [node.key[:KEY_SHOWN if wide else 8] + ("…" if first != last else ""), mark]
        table.add_row(*cells)
    return table


def _runs(frames: list[FrameNode]) -> list[tuple[int, int]]:
    """Consecutive frames with the same prompt and settings, as (first, last) index pairs."""
    def look(node: FrameNode) -> tuple:
        return (node.prompt, node.negative, node.strength, node.steps, node.guidance,
                node.motion, node.noise.mode, node.noise_scale, node.index == 0)

    runs: list[tuple[int, int]] = []
    for node in frames:
        if runs and look(frames[runs[-1][1]]) == look(node):
            runs[-1] = (runs[-1][0], node.index)
        else:
            runs.append((node.index, node.index))
    return runs


def _prompt_cell(node: FrameNode) -> Text:
    text = Text(node.prompt if len(node.prompt) <= PROMPT_SHOWN
                else node.prompt[:PROMPT_SHOWN - 1] + "…")
    if node.negative:
        text.append(" --neg " + node.negative, style="dim")
    return text


def _noise_cell(node: FrameNode) -> str:
    noise = node.noise
    if noise.mode == "subseed":
        return f"subseed {noise.weight:.2f}"
    if noise.mode == "slerp":
        return f"slerp {noise.weight:.2f}"
    return f"{noise.mode} {noise.seeds[0]}"


def plan_json(plan: FluxPlan) -> dict[str, Any]:
    shot = plan.shot
    return {
        "shot": shot.label,
        "engine": "flux-deforum",
        "source": str(shot.source),
        "vars": shot.vars,
        "model": shot.model.profile,
        "size": list(shot.size),
        "fps": shot.fps,
        "frames": plan.total_frames,
        "seconds": round(plan.seconds, 6),
        "image": None if shot.image is None or shot.image.info is None
        else str(shot.image.info.path),
        "seed": shot.seed,
        "steps": shot.steps,
        "cfg": shot.cfg,
        "noise_mode": shot.noise_mode,
        "color_coherence": {"mode": shot.color_coherence.mode,
                            "space": shot.color_coherence.space},
        "prompts": [{"frame": p.frame, "prompt": p.prompt, "negative": p.negative}
                    for p in shot.prompts],
        "outputs": [{"path": shot.locate(o.path), "format": o.format} for o in shot.outputs],
        "edits": [],
        "windows": [_frame_json(plan, node) for node in plan.frames],
        "notes": [str(n) for n in plan.notes],
    }


def _frame_json(plan: FluxPlan, node: FrameNode) -> dict[str, Any]:
    m = node.motion
    settings = {name: getattr(plan.shot, name) for name in SCHEDULED}
    scheduled = {name: setting[node.index] for name, setting in settings.items()
                 if not setting.constant}
    return {
        "index": node.index,
        "order": node.order,
        "frames": [node.index, node.index + 1],
        "prompt": node.prompt,
        "negative": node.negative,
        "strength": node.strength,
        "guidance": node.guidance,
        "noise_scale": node.noise_scale,
        "noise": node.noise.as_dict(),
        "zoom": m.zoom,
        "angle": m.angle,
        "translation_x": m.x,
        "translation_y": m.y,
        "noise_delta": plan.shot.noise_delta[node.index],
        "steps": node.steps,
        "sigma": round(node.sigma, 6),
        # The settings written as schedules that vary, as FramePack's windows list theirs.
        "schedules": {"frame": node.index, "values": scheduled} if scheduled else None,
        "key": node.key,
        "after": node.after,
        "cached": node.cached,
    }
