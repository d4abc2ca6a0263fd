"""`framepack report SHOT|DIR... -o report.html`: one self-contained page for a batch of shots.

Per shot: the video playing in place, a contact sheet (a thumbnail per window; evenly spaced
frames for a flux-deforum shot), the plan (a flux-deforum shot's prompt keyframes and scheduled
settings), the scores and the per-frame curves with the prompt changes marked. Per matrix: a
grid along two of its vars, scores under each cell. At the top: the shots ranked by drift.
Thumbnails and plots are inline (JPEG data URIs, matplotlib SVG); videos are linked relative to
the page, so the page works offline beside the renders. A shot not rendered yet is listed with
the command to render it. The page is written whole (a temporary file renamed into place); a
user error writes nothing and exits 2 with one line on stderr.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import sys
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from ..output.record import sidecar_path
from ..plan import Plan, build_plan
from ..shot import Shot, ShotError, load
from ..shot.discover import shot_files
from ..shot.errors import Mark, display_path, print_diagnostics, suggest
from ..shot.templates import load_with_extends

if TYPE_CHECKING:
    from ..engines.flux_deforum.plan import FluxPlan
    from ..engines.flux_deforum.shot import FluxShot

EXIT_OK, EXIT_INVALID = 0, 2
VIDEO_TAGS = {"mp4": "video", "webm": "video", "mov": "video", "gif": "img", "frames": None}
STRIP_LENGTH = 6  # thumbnails under a grid cell
COMPARE_MAX = 10  # shots overlaid in one comparison plot before it stops being readable
# Shown beside the drifts in the ranking, not ranked on: how prompt changes land, and flicker.
ALSO_SHOWN = ("latency_frames", "ghosting", "flicker")


class ReportError(Exception):
    """A user error: printed as one line, exit 2, nothing written."""


# ---------------------------------------------------------------- command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", metavar="PATH",
                        help="shot files, or folders of them (templates they extend are left "
                             "out)")
    parser.add_argument("-o", "--output", default="report.html", metavar="FILE",
                        help="the page to write (report.html); videos are linked relative "
                             "to it")
    parser.add_argument("--rows", metavar="VAR",
                        help="the matrix var along the grid's rows (default: the first)")
    parser.add_argument("--cols", metavar="VAR",
                        help="the matrix var along the grid's columns (default: the second); "
                             "other matrix vars give one grid per value")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="override a var (repeatable), as given to render")
    parser.add_argument("--output-root", metavar="DIR",
                        help="the shots' outputs are under DIR, as given to render")
    parser.add_argument("--cache", metavar="DIR|URL",
                        help="where scores are cached (default: $FRAMEPACK_CACHE or the user "
                             "cache folder)")


def run(args: argparse.Namespace) -> int:
    try:
        shots = collect(args.paths, args.set, args.output_root)
        output = _output_path(Path(args.output))
        layouts = grid_layouts(shots, args.rows, args.cols)
    except ShotError as error:
        print_diagnostics(error.diagnostics)
        return EXIT_INVALID
    except ReportError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_INVALID
    page = build_page(shots, layouts, output.parent, store=_store(args))
    write_atomic(output, render_html(page))
    rendered = sum(view.status != "missing" for view in page.shots)
    print(f"wrote {display_path(output)} ({len(shots)} shot{'s' if len(shots) != 1 else ''}, "
          f"{rendered} rendered)", file=sys.stderr)
    return EXIT_OK


def _store(args: argparse.Namespace) -> object:
    """The cache scores are kept in, as the other commands open it."""
    from ..housekeeping import open_cache

    return open_cache(args)


def collect(paths: Sequence[str], sets: Sequence[str] = (),
            output_root: str | None = None) -> list[Shot | FluxShot]:
    """Every shot the paths stand for. Raises ShotError with all the errors found."""
    files = shot_files([Path(p) for p in paths])
    _check_folders([Path(p) for p in paths])
    shots: list[Shot | FluxShot] = []
    diagnostics = []
    for file in files:
        try:
            shots += load(file, sets=list(sets), output_root=output_root).shots
        except ShotError as error:
            diagnostics += error.diagnostics
    if diagnostics:
        raise ShotError(diagnostics)
    return shots


def _check_folders(paths: list[Path]) -> None:
    """A folder without shots is a mistyped path, not an empty report."""
    for path in paths:
        if path.is_dir() and not shot_files([path]):
            raise ShotError.at(Mark(display_path(path)), "no shot files here (*.yaml, *.yml)")


def _output_path(path: Path) -> Path:
    if path.is_dir():
        raise ReportError(f"-o {display_path(path)}: is a folder; name the page, such as "
                          f"{display_path(path / 'report.html')}")
    if path.suffix.lower() not in (".html", ".htm"):
        raise ReportError(f"-o {display_path(path)}: the report is HTML; name it *.html")
    return path.resolve()


def write_atomic(path: Path, text: str) -> None:
    """Write the whole page or nothing: a temporary file beside it, renamed over it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp",
                                         dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


# ---------------------------------------------------------------- matrices and grids


@dataclass(frozen=True)
class Layout:
    """How one matrix is laid out: rows and columns, and a grid per value of the others."""

    source: Path
    axes: tuple[str, ...]  # the matrix vars that vary, in the matrix's order
    rows: str | None
    cols: str


def matrix_axes(shots: Sequence[Shot]) -> dict[Path, tuple[str, ...]]:
    """Per shot file that expands to several shots: its matrix vars that take more than one
    value here (a var pinned by --set is no axis)."""
    found: dict[Path, tuple[str, ...]] = {}
    for source, group in _by_source(shots).items():
        if len(group) < 2:
            continue
        doc, _ = load_with_extends(source)
        matrix = doc.get("matrix")
        names = list(matrix.value) if matrix is not None and matrix.is_map else []
        axes = tuple(n for n in names if len({value_text(s.vars.get(n)) for s in group}) > 1)
        if axes:
            found[source] = axes
    return found


def grid_layouts(shots: Sequence[Shot], rows: str | None, cols: str | None) -> list[Layout]:
    """A layout per matrix. ``rows`` and ``cols`` must name a var of some matrix here; a matrix
    without them falls back to its own first two vars. Raises ReportError."""
    axes = matrix_axes(shots)
    for option, name in (("--rows", rows), ("--cols", cols)):
        if name is not None:
            _check_axis(option, name, axes)
    if rows is not None and rows == cols:
        raise ReportError(f"--rows and --cols both name '{rows}'; pick two different vars")
    return [_layout(source, names, rows, cols) for source, names in axes.items()]


def _check_axis(option: str, name: str, axes: dict[Path, tuple[str, ...]]) -> None:
    if not axes:
        raise ReportError(f"{option} {name}: no shot here has a matrix to lay out")
    if any(name in names for names in axes.values()):
        return
    known = sorted({n for names in axes.values() for n in names})
    where = display_path(next(iter(axes))) if len(axes) == 1 else "the matrices here"
    raise ReportError(f"{option} {name}: not a matrix var of {where} (its vars: "
                      f"{', '.join(known)}){suggest(name, known)}")


def _layout(source: Path, axes: tuple[str, ...], rows: str | None, cols: str | None) -> Layout:
    rows = rows if rows in axes else None
    cols = cols if cols in axes else None
    free = [a for a in axes if a not in (rows, cols)]
    if len(axes) == 1:  # one var: a single row of cells
        return Layout(source, axes, None, axes[0])
    if rows is None:
        rows = free.pop(0)
    if cols is None:
        cols = free.pop(0)
    return Layout(source, axes, rows, cols)


def _by_source(shots: Iterable[Shot]) -> dict[Path, list[Shot]]:
    groups: dict[Path, list[Shot]] = {}
    for shot in shots:
        groups.setdefault(shot.source, []).append(shot)
    return groups


def value_text(value: object) -> str:
    """A var's value as written: 'ballet', '2', '[1, 2]'."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return str(value).lower()
    return json.dumps(value, ensure_ascii=False) if isinstance(value, (list, dict)) \
        else str(value)


# ---------------------------------------------------------------- the page's content


@dataclass
class Metric:
    name: str
    text: str  # formatted value, or "—"
    value: float | None
    best: bool = False  # the lowest drift among the shots compared


@dataclass
class ShotView:
    anchor: str
    shot: Shot | FluxShot
    plan: Plan | FluxPlan
    status: str  # rendered | stale | missing | unreadable
    note: str = ""
    command: str = ""  # what to run about the note
    output: str = ""  # the output shown, as the user would type it
    media: str | None = None  # the output's URL relative to the page
    media_tag: str | None = None  # video | img
    thumbs: list[Any] = field(default_factory=list)
    metrics: list[Metric] = field(default_factory=list)
    unavailable: dict[str, str] = field(default_factory=dict)
    transitions: list[dict[str, Any]] = field(default_factory=list)
    per_frame: dict[str, list[float | None]] = field(default_factory=dict)
    frames: int = 0
    fps: float = 0.0
    curves: str = ""
    score_note: str = ""
    rank: int | None = None

    @property
    def label(self) -> str:
        return self.shot.label

    def metric(self, name: str) -> Metric | None:
        return next((m for m in self.metrics if m.name == name), None)

    @property
    def poster(self) -> str:
        """The first frame, shown before the video plays."""
        return self.thumbs[0].image if self.thumbs else ""

    @property
    def unavailable_groups(self) -> list[tuple[str, str]]:
        """Metrics without a value, grouped by why: [(names, reason)]."""
        from .plots import metric_title

        groups: dict[str, list[str]] = {}
        for name, reason in self.unavailable.items():
            groups.setdefault(reason, []).append(metric_title(name))
        return [(", ".join(names), reason) for reason, names in groups.items()]

    @property
    def strip(self) -> list[Any]:
        """A few thumbnails spread over the shot, for a grid cell."""
        if len(self.thumbs) <= STRIP_LENGTH:
            return self.thumbs
        step = (len(self.thumbs) - 1) / (STRIP_LENGTH - 1)
        return [self.thumbs[round(i * step)] for i in range(STRIP_LENGTH)]


@dataclass
class Grid:
    title: str  # the values of the vars that are neither rows nor columns ("" when none)
    rows: str | None
    cols: str
    row_values: list[str]
    col_values: list[str]
    cells: list[list[ShotView | None]]


@dataclass
class Means:
    """The mean of each drift metric over the shots that share a value of one matrix var."""

    var: str
    values: list[str]
    cells: list[list[Metric]]  # [value][drift metric]


@dataclass
class Matrix:
    source: str
    layout: Layout
    means: list[Means]
    grids: list[Grid]


@dataclass
class Page:
    title: str
    shots: list[ShotView]
    ranking: list[ShotView]  # scored shots, least drift first, then the rest
    drift_names: list[str]
    also_names: list[str]  # other metrics in the ranking table
    matrices: list[Matrix]
    comparisons: list[tuple[str, str]]  # (title, svg)
    sources: list[str]
    notes: list[str]


def build_page(shots: Sequence[Shot | FluxShot], layouts: Sequence[Layout], folder: Path, *,
               store: object | None = None) -> Page:
    """Everything the template shows. ``folder``: where the page goes (media links are
    relative to it)."""
    views = [shot_view(shot, i, folder, store) for i, shot in enumerate(shots)]
    drift_names = _drift_names(views)
    ranking = rank(views, drift_names)
    _mark_best(views, drift_names)
    matrices = [Matrix(display_path(layout.source), layout,
                       [var_means(layout.source, var, views, drift_names)
                        for var in layout.axes],
                       _grids(layout, views)) for layout in layouts]
    sources = list(dict.fromkeys(display_path(s.source) for s in shots))
    notes = list(dict.fromkeys(v.score_note for v in views if v.score_note))
    also = [n for n in ALSO_SHOWN if any(v.metric(n) is not None for v in views)]
    return Page(title=_title(sources), shots=views, ranking=ranking, drift_names=drift_names,
                also_names=also, matrices=matrices, comparisons=_comparisons(views), sources=sources,
                notes=notes)


def _title(sources: list[str]) -> str:
    return sources[0] if len(sources) == 1 else f"{len(sources)} shot files"


def shot_view(shot: Shot | FluxShot, index: int, folder: Path, store: object | None) -> ShotView:
    plan = build_plan(shot)
    view = ShotView(anchor=f"shot-{index + 1}", shot=shot, plan=plan, status="missing")
    output = _shown_output(shot)
    if output is None:
        view.note = ("No output to show (safetensors latents only); add a video output, such "
                     "as output: [renders/shot.mp4, ...]")
        return view
    path, fmt = output
    view.output = display_path(path)
    if shot.destination is not None:
        view.note = (f"Its outputs go to {shot.locate(path)}; a report shows local outputs "
                     "(render with a local --output-root)")
        return view
    if not path.exists():
        view.note, view.command = "Not rendered yet; render it with", _render_command(shot)
        return view
    recorded = _sidecar(path, fmt)
    view.status = "rendered" if recorded.get("windows") == [w.key for w in plan.windows] \
        else "stale"
    if view.status == "stale":
        view.note = "Rendered from an earlier version of the shot; bring it up to date with"
        view.command = _render_command(shot)
    view.media_tag = VIDEO_TAGS[fmt]
    view.media = _relative_url(path, folder) if view.media_tag else None
    _add_pictures(view, path)
    if view.status != "unreadable":
        # A sidecar with a timeline tells the scorer the prompts and keyframes; older ones
        # do not, and the plan's prompt changes stand in.
        changes = None if isinstance(recorded.get("timeline"), dict) else \
            _prompt_changes(plan)
        _add_scores(view, path, changes, store)
    return view


def _shown_output(shot: Shot) -> tuple[Path, str] | None:
    """The output a page can show: the first that holds frames, preferring a video."""
    candidates = [o for o in shot.outputs if o.format in VIDEO_TAGS]
    candidates.sort(key=lambda o: VIDEO_TAGS[o.format] != "video")
    return (candidates[0].path, candidates[0].format) if candidates else None


def _render_command(shot: Shot) -> str:
    text = display_path(shot.source)
    return "framepack render " + (f"'{text}'" if " " in text else text)


def _sidecar(path: Path, fmt: str) -> dict[str, Any]:
    """What the render recorded beside an output (empty when it recorded nothing readable);
    an output whose windows differ from the plan's is stale."""
    try:
        recorded = json.loads(sidecar_path(path, fmt).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return recorded if isinstance(recorded, dict) else {}


def _relative_url(path: Path, folder: Path) -> str:
    try:
        relative = os.path.relpath(path, folder)
    except ValueError:  # another drive: only an absolute URL reaches it
        return path.resolve().as_uri()
    return quote(Path(relative).as_posix())


def _add_pictures(view: ShotView, path: Path) -> None:
    from .sheets import contact_sheet, frame_sheet
    from .video import VideoError

    try:
        view.thumbs = frame_sheet(view.plan, path) if is_flux(view.plan) else \
            contact_sheet(view.plan, path)
    except VideoError as error:
        view.status = "unreadable"
        view.note = f"{display_path(path)} does not decode ({error}); render it again with"
        view.command = _render_command(view.shot) + " --force"


# ---------------------------------------------------------------- scores


def _add_scores(view: ShotView, path: Path, changes: list[float] | None,
                store: object | None) -> None:
    from .score import missing_dependencies, score_video

    missing = missing_dependencies()
    if missing:
        view.score_note = (f"scores need {', '.join(missing)}: pip install "
                           "'framepack-render[evaluate]'")
        return
    try:
        result = score_video(path, at_seconds=changes, store=store)
    except Exception as error:  # noqa: BLE001 - one video that will not score keeps its page
        view.score_note = f"{view.label}: could not score ({error})"
        return
    metrics = result.get("metrics") or {}
    reasons = result.get("unavailable") or {}
    view.metrics = [Metric(name, format_value(value), _number(value))
                    for name, value in metrics.items() if _number(value) is not None]
    view.unavailable = {name: reasons.get(name, "not measured")
                        for name, value in metrics.items() if _number(value) is None}
    view.transitions = list(result.get("transitions") or [])
    view.per_frame = dict(result.get("per_frame") or {})
    view.frames = int(result.get("frames") or view.plan.total_frames)
    # The rate the render wrote at: exact, where a GIF's container rounds its frame delays.
    view.fps = view.shot.fps * view.shot.post.interpolate
    view.curves = _curves(view)


TRANSITION_COLUMNS = (("latency_frames", "latency (frames)"), ("settled", "settled"),
                      ("ghosting", "ghosting"), ("clip_fidelity", "CLIP fidelity"),
                      ("clip_ghosting", "CLIP ghosting"))


def transition_table(view: ShotView) -> tuple[list[str], list[list[str]]]:
    """The prompt changes the scorer measured: headings and rows, leaving out columns that
    no change has a value for (CLIP without its weights)."""
    columns = [(key, heading) for key, heading in TRANSITION_COLUMNS
               if any(t.get(key) is not None for t in view.transitions)]
    rows = []
    for change in view.transitions:
        frame = change.get("frame")
        seconds = frame / view.fps if isinstance(frame, int) and view.fps else None
        what = change.get("prompt") or change.get("keyframe") or _playing_at(view.plan, seconds)
        rows.append([f"{seconds:.2f} s" if seconds is not None else "", str(what),
                     *(_cell_text(change.get(key)) for key, _ in columns)])
    return ["at", "to"] + [heading for _, heading in columns], rows


def is_flux(plan: Plan | FluxPlan) -> bool:
    """A flux-deforum plan: its units are frames, shown by evenly spaced frames."""
    return plan.engine != "framepack"


def _playing_at(plan: Plan | FluxPlan, seconds: float | None) -> str:
    if is_flux(plan):
        from . import flux

        return flux.prompt_at_seconds(plan, seconds)  # type: ignore[arg-type]
    return _section_at(plan, seconds)  # type: ignore[arg-type]


def _section_at(plan: Plan, seconds: float | None) -> str:
    """The section playing at ``seconds``, for changes the scorer knows only by time."""
    if seconds is None:
        return ""
    frame = round(seconds * plan.shot.fps)
    for node in plan.windows:
        if frame < plan.frame_span(node)[1]:
            return f"{node.slot.section.label}: {node.slot.prompt}"
    return ""


def _cell_text(value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return format_value(value)


def _prompt_changes(plan: Plan | FluxPlan) -> list[float]:
    if is_flux(plan):
        from . import flux

        return flux.prompt_changes(plan)  # type: ignore[arg-type]
    return prompt_changes(plan)  # type: ignore[arg-type]


def prompt_changes(plan: Plan) -> list[float]:
    """Seconds at which a window's prompt differs from the window before it."""
    fps = plan.shot.fps
    return [plan.frame_span(node)[0] / fps for before, node in zip(plan.windows,
                                                                   plan.windows[1:])
            if node.slot.prompt != before.slot.prompt]


def plot_marks(plan: Plan | FluxPlan) -> list[Any]:
    """The lines drawn across the curves: prompt changes, and keyframes that come without
    one."""
    if is_flux(plan):
        from . import flux

        return flux.plot_marks(plan)  # type: ignore[arg-type]
    from .plots import Mark

    marks = []
    fps = plan.shot.fps
    for before, node in zip(plan.windows, plan.windows[1:]):
        seconds = plan.frame_span(node)[0] / fps
        if node.slot.prompt != before.slot.prompt:
            keyframe = " · keyframe" if node.slot.keyframe else ""
            marks.append(Mark(seconds, node.slot.section.label + keyframe))
        elif node.slot.keyframe:
            marks.append(Mark(seconds, "keyframe", "keyframe"))
    return marks


def _curves(view: ShotView) -> str:
    from .plots import curves_svg

    return curves_svg(view.per_frame, view.fps, view.frames, plot_marks(view.plan),
                      salt=view.anchor)


def _comparisons(views: Sequence[ShotView]) -> list[tuple[str, str]]:
    """Per shot file with several scored shots of one timing: their curves overlaid."""
    from .plots import comparison_svg

    found = []
    for source in _by_source(v.shot for v in views):
        scored = [v for v in views if v.shot.source == source and v.per_frame]
        timings = {(v.frames, v.fps) for v in scored}
        if not 2 <= len(scored) <= COMPARE_MAX or len(timings) != 1:
            continue
        frames, fps = timings.pop()
        runs = {short_label(v.shot): v.per_frame for v in scored}
        svg = comparison_svg(runs, fps, frames, plot_marks(scored[0].plan),
                             salt=f"compare-{len(found)}")
        if svg:
            found.append((display_path(source), svg))
    return found


def short_label(shot: Shot) -> str:
    """The matrix values of a shot ('style=ballet, seed=1'), or its label."""
    start = shot.label.rfind(" [")
    return shot.label[start + 2:-1] if start >= 0 and shot.label.endswith("]") else shot.label


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def format_value(value: object) -> str:
    """Three significant figures, never scientific for the ranges metrics take."""
    number = _number(value)
    if number is None:
        return "—" if value is None else str(value)
    if number == 0:
        return "0"
    magnitude = abs(number)
    if magnitude >= 100:
        return f"{number:,.0f}"
    decimals = max(0, 2 - math.floor(math.log10(magnitude)))
    return f"{number:.{min(decimals, 4)}f}"


def is_drift(name: str) -> bool:
    """The paper's start-to-end drift measures: lower is steadier."""
    return "drift" in name


def _drift_names(views: Sequence[ShotView]) -> list[str]:
    names: dict[str, None] = {}
    for view in views:
        names.update((m.name, None) for m in view.metrics if is_drift(m.name))
    return list(names)


def rank(views: Sequence[ShotView], names: Sequence[str]) -> list[ShotView]:
    """Scored shots by their mean rank over the drift metrics (each metric ranks the shots
    that have it, lowest first, so metrics of different scales weigh the same), then the
    shots without scores in their own order. Values equal as shown tie, and tied shots share
    a rank (1, 1, 3)."""
    ranks: dict[str, list[float]] = {v.anchor: [] for v in views}
    for name in names:
        having = [(m.value, m.text, v.anchor) for v in views
                  if (m := v.metric(name)) is not None and m.value is not None]
        for value, text, anchor in having:
            below = sum(other < value and shown != text for other, shown, _ in having)
            ranks[anchor].append(below / max(1, len(having) - 1))
    means = {anchor: sum(found) / len(found) for anchor, found in ranks.items() if found}
    scored = sorted((v for v in views if v.anchor in means), key=lambda v: means[v.anchor])
    for view in scored:
        view.rank = 1 + sum(mean < means[view.anchor] - 1e-9 for mean in means.values())
    return scored + [v for v in views if v.anchor not in means]


def _mark_best(views: Sequence[ShotView], names: Sequence[str]) -> None:
    """Flags the lowest value of each drift metric, among shots of the same file."""
    for group in _by_source(v.shot for v in views).values():
        members = [v for v in views if v.shot in group]
        for name in names:
            flag_lowest([m for v in members if (m := v.metric(name)) is not None])


def var_means(source: Path, var: str, views: Sequence[ShotView],
              names: Sequence[str]) -> Means:
    """Per value of ``var``: each drift metric averaged over the other vars (the seeds, say),
    the lowest flagged. What to read when picking a preset."""
    members = [v for v in views if v.shot.source == source]
    values = _values(members, var)
    cells = []
    for value in values:
        having = [v for v in members if value_text(v.shot.vars.get(var)) == value]
        row = []
        for name in names:
            found = [m.value for v in having if (m := v.metric(name)) and m.value is not None]
            mean = sum(found) / len(found) if found else None
            row.append(Metric(name, format_value(mean), mean))
        cells.append(row)
    for column in zip(*cells):
        flag_lowest(column)
    return Means(var, values, cells)


def flag_lowest(metrics: Iterable[Metric]) -> None:
    """Marks the lowest value, when it is alone there as shown (a tie at the shown precision
    picks nothing)."""
    known = sorted((m for m in metrics if m.value is not None), key=lambda m: m.value)
    if len(known) > 1 and known[0].text != known[1].text:
        known[0].best = True


def _grids(layout: Layout, views: Sequence[ShotView]) -> list[Grid]:
    members = [v for v in views if v.shot.source == layout.source]
    others = [a for a in layout.axes if a not in (layout.rows, layout.cols)]
    grids = []
    for fixed in itertools.product(*(_values(members, a) for a in others)):
        chosen = dict(zip(others, fixed))
        in_grid = [v for v in members
                   if all(value_text(v.shot.vars.get(a)) == t for a, t in chosen.items())]
        rows = _values(in_grid, layout.rows) if layout.rows else [""]
        cols = _values(in_grid, layout.cols)
        cells = [[_cell(in_grid, layout, r, c) for c in cols] for r in rows]
        title = ", ".join(f"{a}={t}" for a, t in chosen.items())
        grids.append(Grid(title, layout.rows, layout.cols, rows, cols, cells))
    return grids


def _values(views: Sequence[ShotView], name: str) -> list[str]:
    """A var's values in the order the shots have them (the matrix's order)."""
    return list(dict.fromkeys(value_text(v.shot.vars.get(name)) for v in views))


def _cell(views: Sequence[ShotView], layout: Layout, row: str, col: str) -> ShotView | None:
    for view in views:
        values = view.shot.vars
        if value_text(values.get(layout.cols)) == col and (
                layout.rows is None or value_text(values.get(layout.rows)) == row):
            return view
    return None


# ---------------------------------------------------------------- HTML


def render_html(page: Page) -> str:
    """The page from the package's Jinja2 template (autoescaped; SVG marked safe)."""
    import jinja2
    from markupsafe import Markup

    from .. import __version__
    from . import flux

    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).with_name("templates")),
        autoescape=True, trim_blocks=True, lstrip_blocks=True,
        undefined=jinja2.StrictUndefined)
    environment.filters["value"] = value_text
    environment.filters["fmt"] = format_value
    environment.filters["metric"] = _metric_title
    environment.filters["heading"] = _metric_heading
    environment.filters["svg"] = Markup  # matplotlib's own SVG, inlined as it is
    template = environment.get_template("report.html.j2")
    return template.render(page=page, version=__version__, plan_rows=plan_rows,
                           window_rows=window_rows, short_label=short_label,
                           transition_table=transition_table,
                           describe=describe, is_flux=is_flux, prompt_rows=flux.prompt_rows,
                           schedule_table=flux.schedule_table)


def _metric_title(name: str) -> str:
    from .plots import metric_title

    return metric_title(name)


def _metric_heading(name: str) -> str:
    """The short heading `framepack score` prints for a metric, for narrow table columns."""
    from .score import COLUMNS

    return next((heading for key, heading, _ in COLUMNS if key == name), _metric_title(name))


def describe(view: ShotView) -> list[str]:
    """The shot's settings, one short phrase each."""
    if is_flux(view.plan):
        from . import flux

        return flux.describe(view.plan)  # type: ignore[arg-type]
    shot, plan = view.shot, view.plan
    return [f"model {shot.model.profile}", f"{shot.size[0]}×{shot.size[1]}",
            f"{shot.fps:g} fps", f"window {shot.window}", shot.sampling, shot.sampler,
            f"{plan.total_frames} frames ({plan.seconds:.2f} s)",
            f"{len(plan.windows)} window" + ("s" if len(plan.windows) != 1 else "")]


def plan_rows(view: ShotView) -> list[dict[str, str]]:
    """One row per section: what it asks for, and how it was sampled."""
    from .sheets import window_seconds

    plan = view.plan
    fps = plan.shot.fps
    rows = []
    for section in plan.shot.sections:
        nodes = [w for w in plan.windows if w.slot.section is section]
        if not nodes:
            continue
        start, end = window_seconds(plan, nodes[0])[0], window_seconds(plan, nodes[-1])[1]
        shift = nodes[0].shift
        settings = section.sampling
        rows.append({
            "name": section.label,
            "time": f"{start:.2f}–{end:.2f} s",
            "windows": str(len(nodes)),
            "prompt": section.prompt,
            "blend": f"{section.blend_frames / fps:.2f} s" if section.blend_frames else "",
            "keyframe": _image_text(section.image),
            "seed": str(settings.seed),
            "steps": str(settings.steps),
            "guidance": f"{settings.guidance:g}" + (f" · cfg {settings.cfg:g}"
                                                    if settings.cfg != 1 else ""),
            "flow_shift": settings.flow_shift.describe(),
            "shift": f"{shift.factor:.2f}" + ("" if shift.sigma == 1 else f" σ{shift.sigma:g}"),
            "teacache": "off" if settings.teacache is None else f"{settings.teacache:g}",
        })
    return rows


def window_rows(view: ShotView) -> list[dict[str, str]]:
    """One row per window, in time order, as `framepack plan` lists them."""
    from .sheets import window_seconds

    plan = view.plan
    rows = []
    for node in plan.windows:
        start, end = window_seconds(plan, node)
        prefix = f"window {node.index}'s end" if node.bridge else _image_text(node.prefix)
        if node.uses_end_image and plan.shot.end_image is not None:
            prefix += f" + end {_image_text(plan.shot.end_image)}"
        rows.append({
            "index": str(node.index + 1), "time": f"{start:.2f}–{end:.2f}",
            "section": node.slot.section.label, "order": str(node.order + 1),
            "prefix": prefix, "seed": str(node.noise_seed),
            "shift": f"{node.shift.factor:.2f}" + (
                "" if node.shift.sigma == 1 else f" σ{node.shift.sigma:g}"),
            "blend": f"{node.slot.blend_alpha:.0%}" if node.slot.blend_from else "",
            "key": node.key[:12],
        })
    return rows


def _image_text(ref: Any) -> str:
    if ref is None:
        return ""
    return f"edit {ref.edit}" if ref.edit is not None else Path(ref.text).name
