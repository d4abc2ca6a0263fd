"""The report's plots: per-frame metrics over time, drawn by matplotlib as inline SVG.

Figures are built on ``matplotlib.figure.Figure`` directly (no pyplot, so no global figure
state and no GUI backend) and saved in matplotlib's ``svg`` format with text kept as text, so
the page's fonts render it and the file stays small. Each figure gets its own hash salt: the ids
matplotlib writes are then unique across the many SVGs inlined in one page.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

WIDTH_IN = 11.0  # drawn near 1:1 in the page's ~1150 px column, so text matches the page
ROW_IN = 1.3  # one panel's plotting area
GAP_IN = 0.42  # between rows: the panel's title
COLUMN_GAP_IN = 0.8  # between columns: the right panel's tick labels
MARGIN_LEFT_IN, MARGIN_RIGHT_IN, MARGIN_TOP_IN, MARGIN_BOTTOM_IN = 0.6, 0.15, 0.3, 0.55
LEGEND_ROW_IN = 0.24
COLUMNS = 2
INK = "#1f2430"
MUTED = "#6b7280"
GRID = "#e5e7eb"
CHANGE = "#d9480f"
KEYFRAME = "#1971c2"
PALETTE = ["#1971c2", "#e8590c", "#2f9e44", "#c2255c", "#6741d9", "#0c8599", "#f08c00",
           "#5c940d", "#862e9c", "#495057"]
STYLE = {
    "svg.fonttype": "none",
    "font.family": "sans-serif",
    "font.sans-serif": ["Inter", "Segoe UI", "Helvetica Neue", "Arial", "DejaVu Sans"],
    "font.size": 9.5,
    "axes.edgecolor": "#c4c9d1",
    "axes.labelcolor": MUTED,
    "axes.titlesize": 10,
    "axes.titleweight": "bold",
    "axes.titlecolor": INK,
    "axes.titlelocation": "left",
    "xtick.color": MUTED,
    "ytick.color": MUTED,
    "legend.frameon": False,
    "legend.fontsize": 9.5,
}


@dataclass(frozen=True)
class Mark:
    """A vertical line across every panel: a prompt change or a keyframe, in seconds."""

    seconds: float
    label: str
    kind: str = "change"  # change | keyframe


TITLES = {
    "sharpness": "sharpness (Laplacian variance)",
    "sharpness_drift": "sharpness drift",
    "colorfulness": "colourfulness",
    "colorfulness_drift": "colourfulness drift",
    "brisque": "BRISQUE",
    "brisque_drift": "BRISQUE drift",
    "color_drift": "colour drift (ΔE00)",
    "flicker": "flicker (median frame change)",
    "latency_frames": "transition latency (frames)",
    "ghosting": "ghosting (peak SSIM)",
    "clip_fidelity": "CLIP fidelity",
    "clip_margin": "CLIP margin",
    "clip_ghosting": "CLIP ghosting",
    "ssim_to_first": "SSIM to the first frame",
    "delta_e_to_first": "colour difference to the first frame (ΔE00)",
    "frame_change": "frame-to-frame change (grey levels)",
}


def metric_title(name: str) -> str:
    """A metric's name for people; unknown names with their underscores as spaces."""
    return TITLES.get(name, name.replace("_", " "))


def curves_svg(per_frame: dict[str, Sequence[float | None]], fps: float, frames: int,
               marks: Sequence[Mark], *, salt: str) -> str:
    """One panel per metric, stacked on a shared time axis, prompt changes marked."""
    names = [n for n, values in per_frame.items() if _finite(values)]
    if not names:
        return ""
    with _style(salt):
        figure, axes = _figure(len(names))
        for ax, name in zip(axes, names):
            values = per_frame[name]
            ax.plot(_seconds(len(values), frames, fps), _floats(values), color=PALETTE[0],
                    linewidth=1.3)
            _panel(ax, metric_title(name), marks)
        _finish(axes, marks)
        return _svg(figure)


def comparison_svg(runs: dict[str, dict[str, Sequence[float | None]]], fps: float,
                   frames: int, marks: Sequence[Mark], *, salt: str) -> str:
    """One panel per metric with a line per run (label -> per-frame series), for comparing the
    shots of a batch over time."""
    names: list[str] = []
    for per_frame in runs.values():
        names += [n for n, v in per_frame.items() if n not in names and _finite(v)]
    if not names or len(runs) < 2:
        return ""
    with _style(salt):
        figure, axes = _figure(len(names), legend_rows=math.ceil(len(runs) / 3))
        for ax, name in zip(axes, names):
            for colour, (label, per_frame) in zip(_colours(len(runs)), runs.items()):
                values = per_frame.get(name)
                if values and _finite(values):
                    ax.plot(_seconds(len(values), frames, fps), _floats(values),
                            color=colour, linewidth=1.2, label=label)
            _panel(ax, metric_title(name), marks)
        _finish(axes, marks)
        handles, labels = axes[0].get_legend_handles_labels()
        figure.legend(handles, labels, loc="upper left", bbox_to_anchor=(0.01, 1.0),
                      ncols=min(3, len(labels)))
        return _svg(figure)


def _style(salt: str) -> AbstractContextManager[None]:
    """The report's look, and the salt that keeps this figure's SVG ids its own."""
    import matplotlib

    return matplotlib.rc_context({**STYLE, "svg.hashsalt": salt})


def _figure(panels: int, legend_rows: int = 0) -> tuple[Figure, list[Axes]]:
    """Panels in COLUMNS columns on a shared time axis; the spare cells of the last row are
    hidden. Returns the panels in reading order. Margins are fixed in inches rather than
    solved by a layout engine, which would take most of the drawing time."""
    from matplotlib.figure import Figure

    columns = min(COLUMNS, panels)
    rows = math.ceil(panels / columns)
    top = MARGIN_TOP_IN + LEGEND_ROW_IN * legend_rows
    height = top + rows * ROW_IN + (rows - 1) * GAP_IN + MARGIN_BOTTOM_IN
    width_each = (WIDTH_IN - MARGIN_LEFT_IN - MARGIN_RIGHT_IN
                  - (columns - 1) * COLUMN_GAP_IN) / columns
    figure = Figure(figsize=(WIDTH_IN, height))
    figure.subplots_adjust(left=MARGIN_LEFT_IN / WIDTH_IN, right=1 - MARGIN_RIGHT_IN / WIDTH_IN,
                           bottom=MARGIN_BOTTOM_IN / height, top=1 - top / height,
                           hspace=GAP_IN / ROW_IN, wspace=COLUMN_GAP_IN / width_each)
    grid = figure.subplots(rows, columns, sharex=True, squeeze=False)
    axes = list(grid.flat)
    for spare in axes[panels:]:
        spare.set_visible(False)
    return figure, axes[:panels]


def _finish(axes: list[Axes], marks: Sequence[Mark]) -> None:
    """Time labels under the lowest panel of each column; marks named on the first row."""
    columns = min(COLUMNS, len(axes))
    for index, ax in enumerate(axes):
        if index + columns >= len(axes):
            ax.xaxis.set_tick_params(labelbottom=True)
            ax.set_xlabel("time (s)")
        if index < columns:
            _label_marks(ax, marks)


def _panel(ax: Axes, title: str, marks: Sequence[Mark]) -> None:
    ax.set_title(title, pad=3)
    ax.grid(True, color=GRID, linewidth=0.6)
    ax.set_axisbelow(True)
    ax.spines[["top", "right"]].set_visible(False)
    ax.margins(x=0.01)
    for mark in marks:
        change = mark.kind == "change"
        ax.axvline(mark.seconds, color=CHANGE if change else KEYFRAME, linewidth=0.9,
                   linestyle=(0, (4, 3)) if change else (0, (1, 2)), alpha=0.9)


def _label_marks(ax: Axes, marks: Sequence[Mark]) -> None:
    """Names the marks along the top panel's upper edge."""
    for mark in marks:
        ax.annotate(mark.label, (mark.seconds, 1.0), xycoords=("data", "axes fraction"),
                    xytext=(3, -2), textcoords="offset points", va="top", fontsize=7.5,
                    color=CHANGE if mark.kind == "change" else KEYFRAME)


def _svg(figure: Figure) -> str:
    """The figure as an ``<svg>`` element to inline (no XML prologue)."""
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", metadata={"Date": None})
    text = buffer.getvalue()
    return text[text.index("<svg"):]


def _seconds(count: int, frames: int, fps: float) -> list[float]:
    """Times of a series' points; a series shorter than the video (frame-to-frame change)
    belongs to its last frames."""
    offset = max(0, frames - count)
    return [(offset + i) / fps for i in range(count)]


def _floats(values: Sequence[float | None]) -> list[float]:
    return [math.nan if v is None else float(v) for v in values]


def _finite(values: Sequence[float | None] | None) -> bool:
    return bool(values) and any(v is not None and math.isfinite(v) for v in values)


def _colours(count: int) -> list[str]:
    return [PALETTE[i % len(PALETTE)] for i in range(count)]
