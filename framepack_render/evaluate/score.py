"""`framepack score`: measure drift, flicker and prompt transitions of rendered videos.

One pass over each video's frames feeds every metric (``metrics``), so memory stays flat. A
shot's output knows its prompt changes and keyframes from its sidecar (``timeline``); a bare
video is told them with ``--at``. Scores are cached in the render cache under the kind
``score``, keyed by the video's content hash, every metric's version and the prompt changes,
so scoring an unchanged batch again reads JSON and decodes nothing. The key holds nothing
machine-specific; the CLIP weights a score used are recorded inside it, and a score made with
other weights (or without any) is made again and replaces it.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Sequence

if TYPE_CHECKING:  # numpy, PyAV and the metrics load when a video is scored, not with the CLI
    import numpy as np

    from ..shot import Shot
    from ..store import Store
    from .clip import ClipWeights
    from .video import VideoInfo

EXIT_OK, EXIT_FAILED, EXIT_INVALID = 0, 1, 2
KIND = "score"
ENTRY = "score.json"
SCORE_VERSION = "1"  # the result's layout and the analysis settings below
CLIP_SAMPLES = 8  # frames per transition shown to CLIP
CLIP_SIDE = 336  # pixels on the longer side of the frames kept for CLIP
ROUND = 4  # decimals kept in per-frame series
NEEDED = {"skimage": "scikit-image", "scipy": "scipy", "av": "av", "brisque": "brisque",
          "cv2": "opencv-python-headless"}
INSTALL = "pip install 'framepack-render[evaluate]'"

# The table's columns: metric name, heading, format.
COLUMNS = (
    ("sharpness_drift", "sharpness Δ", "{:.1f}"),
    ("colorfulness_drift", "colourful Δ", "{:.2f}"),
    ("brisque", "BRISQUE", "{:.1f}"),
    ("brisque_drift", "BRISQUE Δ", "{:.1f}"),
    ("color_drift", "colour ΔE", "{:.2f}"),
    ("flicker", "flicker", "{:.2f}"),
    ("latency_frames", "latency", "{:.1f}"),
    ("ghosting", "ghosting", "{:.2f}"),
    ("clip_fidelity", "CLIP fid.", "{:.3f}"),
    ("clip_ghosting", "CLIP ghost", "{:.3f}"),
)


class ScoreError(Exception):
    """A path that cannot be scored; prints as ``FILE: message``."""

    def __init__(self, path: Path | str, message: str):
        super().__init__(f"{path}: {message}")
        self.path = str(path)
        self.message = message


@dataclass(frozen=True)
class Change:
    """A prompt change (or a keyframe) at ``frame`` of the video."""

    frame: int
    prompt: str | None = None
    previous_prompt: str | None = None
    keyframe: str | None = None
    end: int | None = None  # where its effect is measured up to (None: the next change)

    def as_key(self) -> list[Any]:
        return [self.frame, self.prompt, self.previous_prompt, self.keyframe, self.end]


# ---------------------------------------------------------------- public interface


def missing_dependencies() -> list[str]:
    """The packages of the ``evaluate`` extra that are not installed."""
    return [package for module, package in NEEDED.items() if not _installed(module)]


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a broken or blocked installation
        return False


def score_video(path: str | Path, *, at_seconds: Sequence[float] | None = None,
                store: "Store | None" = None, clip: str | ClipWeights | None = None) -> dict:
    """Score one video (a file or a frames folder). Prompt changes come from ``at_seconds``,
    else from the video's sidecar. ``clip``: a folder or Hub repository of CLIP weights (default
    ``openai/clip-vit-large-patch14``), or weights already found. ``store``: the cache (None:
    no cache). Raises ScoreError."""
    from .video import content_hash

    path = Path(path)
    info = _probe(path)
    changes = changes_at(path, info, at_seconds) if at_seconds is not None else \
        sidecar_changes(path, info)
    weights = _weights(clip)
    key = score_key(content_hash(path), changes)
    stale = False
    if store is not None:
        cached = _cached(store, key)
        if cached is not None and cached.get("clip") == weights.identity():
            return {"path": str(path), **cached["result"]}
        stale = cached is not None
    result = _Analysis(info, changes, weights).run()
    if store is not None:
        payload = {"clip": weights.identity(), "result": result}
        store.put(KIND, key, {ENTRY: json.dumps(payload).encode()}, replace=stale)
    return {"path": str(path), **result}


def score_paths(paths: Iterable[str | Path], *, at_seconds: Sequence[float] | None = None,
                store: "Store | None" = None, clip: str | ClipWeights | None = None,
                errors: list[str] | None = None) -> list[dict]:
    """Score every video a path stands for: a video file, a frames folder, a shot file (its
    video outputs) or a folder of shot files. With ``errors`` given, a path that cannot be
    scored adds a ``FILE: message`` line there and the others go on; else ScoreError."""
    weights = _weights(clip)
    scores = []
    for path in paths:
        try:
            for video in videos_of(Path(path)):
                scores.append(score_video(video, at_seconds=at_seconds, store=store,
                                          clip=weights))
        except ScoreError as error:
            if errors is None:
                raise
            errors.append(str(error))
    return scores


def score_outputs(shots: Iterable["Shot"], store: "Store | None",
                  clip: str | ClipWeights | None = None) -> list[dict]:
    """The scores of the rendered video outputs of ``shots`` (for ``render --score``)."""
    weights = _weights(clip)
    return [score_video(path, store=store, clip=weights)
            for shot in shots for path in _video_outputs(shot)]


def score_key(video_hash: str, changes: Sequence[Change]) -> str:
    """The cache key of a score: the video's bytes, every metric's version, the analysis
    settings and the prompt changes. Nothing machine-specific."""
    from ..plan.keys import content_key
    from . import metrics as m
    from .clip import VERSIONS as CLIP_VERSIONS
    from .video import ANALYSIS_SIDE

    return content_key(KIND, {
        "video": video_hash,
        "versions": {**m.VERSIONS, **CLIP_VERSIONS, "score": SCORE_VERSION},
        "settings": {"side": ANALYSIS_SIDE, "ssim_side": m.SSIM_SIDE,
                     "color_side": m.COLOR_SIDE, "edge": m.EDGE_FRACTION,
                     "brisque_samples": m.BRISQUE_SAMPLES, "settle": [
                         m.SETTLE_FLOOR, m.SETTLE_MADS, m.SETTLE_HOLD],
                     "clip": [CLIP_SAMPLES, CLIP_SIDE]},
        "changes": [c.as_key() for c in changes],
    })


def referenced_scores(shots: Iterable["Shot"]) -> set[tuple[str, str]]:
    """The score entries of the shots' rendered outputs as they are now (prompt changes from
    their sidecars): what `cache gc SHOTS` keeps. Hashes each output; decodes nothing."""
    from .video import VideoError, content_hash, probe

    found = set()
    for shot in shots:
        for path in _video_outputs(shot, missing_ok=True):
            try:
                found.add((KIND, score_key(content_hash(path), sidecar_changes(path,
                                                                               probe(path)))))
            except (OSError, ImportError, VideoError, ScoreError):  # ImportError: no PyAV
                continue
    return found


# ---------------------------------------------------------------- what to score


def videos_of(path: Path) -> list[Path]:
    """The videos a path stands for. Raises ScoreError."""
    from ..shot.discover import SHOT_SUFFIXES

    if not path.exists():
        raise ScoreError(path, "no such file or folder")
    if path.is_file() and path.suffix.lower() not in SHOT_SUFFIXES:
        return [path]
    if path.is_dir() and _is_frames(path):
        return [path]
    return [video for shot in _load_shots(path) for video in _video_outputs(shot)]


def _is_frames(folder: Path) -> bool:
    """A frames output (render.json beside its PNGs), or PNGs with no shot file beside them."""
    from ..shot.discover import is_shot_name

    from .video import frame_files

    if not frame_files(folder):
        return False
    return (folder / "render.json").is_file() or \
        not any(is_shot_name(p) for p in folder.iterdir())


def _load_shots(path: Path) -> list["Shot"]:
    from ..shot import ShotError, load
    from ..shot.discover import shot_files

    try:
        files = shot_files([path])
        if not files:
            raise ScoreError(path, "no videos, PNG frames or shot files here")
        return [shot for file in files for shot in load(file).shots]
    except ShotError as error:
        first = error.diagnostics[0]
        raise ScoreError(first.mark, first.message) from None


def _video_outputs(shot: "Shot", missing_ok: bool = False) -> list[Path]:
    from ..output.record import FRAME_FORMATS

    found = []
    for output in shot.outputs:
        if output.format not in FRAME_FORMATS:
            continue
        if output.path.exists():
            found.append(output.path)
        elif not missing_ok:
            raise ScoreError(output.path, f"not rendered yet; run `framepack render "
                                          f"{shot.source}`")
    return found


def _weights(clip: "str | ClipWeights | None") -> "ClipWeights":
    from .clip import ClipWeights, find_clip

    return clip if isinstance(clip, ClipWeights) else find_clip(clip)


def _probe(path: Path) -> "VideoInfo":
    from .video import VideoError, probe

    try:
        info = probe(path)
    except VideoError as error:
        raise ScoreError(error.path, str(error)) from None
    if info.frames < 1:
        raise ScoreError(path, "not a video: it holds no frames")
    return info


def sidecar_changes(path: Path, info: "VideoInfo") -> list[Change]:
    """Prompt changes and keyframes from the sidecar a render wrote beside the video (none
    without one). A GIF above 50 fps keeps every n-th frame and plays at whole centiseconds,
    so frames are mapped by that step rather than by time."""
    from ..output.record import FRAME_FORMATS, sidecar_path

    fmt = "frames" if path.is_dir() else path.suffix.lower().lstrip(".")
    try:
        record = json.loads(sidecar_path(path, fmt if fmt in FRAME_FORMATS else "mp4")
                            .read_text())
        timeline = record["timeline"]
        sections = timeline["sections"]
        step = max(1, round(float(timeline["fps"]) / info.fps))
        forward = min(info.frames, -(-int(timeline["frames"]) // step))
    except (OSError, ValueError, KeyError, TypeError, ZeroDivisionError):
        return []
    changes = []
    for previous, section in zip(sections, sections[1:]):
        try:
            frame = -(-int(section["start"]["frame"]) // step)  # the first frame kept
            prompt, before = str(section["prompt"]), str(previous["prompt"])
            keyframe = section.get("keyframe")
        except (KeyError, TypeError, ValueError):
            return []
        if (prompt != before or keyframe) and 0 < frame < forward:
            changes.append(Change(frame, prompt, before, keyframe))
    if changes and forward < info.frames:  # a pingpong loop: stop where it turns back
        changes[-1] = dataclasses.replace(changes[-1], end=forward)
    return changes


def changes_at(path: Path, info: "VideoInfo", seconds: Sequence[float]) -> list[Change]:
    """Prompt changes at the given times (no prompts known). Raises ScoreError for a time
    outside the video."""
    frames = set()
    for time in seconds:
        frame = round(time * info.fps)
        if not 0 < frame < info.frames:
            raise ScoreError(path, f"--at {time:g}s is not inside the video (0 to "
                                   f"{info.frames / info.fps:.2f} s)")
        frames.add(frame)
    return [Change(frame) for frame in sorted(frames)]


def parse_at(text: str) -> list[float]:
    """``2.4s,4.8s`` (or plain seconds) as a list of seconds. Raises ValueError."""
    times = []
    for part in text.split(","):
        part = part.strip()
        try:
            value = float(part[:-1] if part.lower().endswith("s") else part)
        except ValueError:
            raise ValueError(f"{part!r} is not a time; write seconds such as 2.4s") from None
        if not math.isfinite(value):
            raise ValueError(f"{part!r} is not a finite time; write seconds such as 2.4s")
        if value <= 0:
            raise ValueError(f"{part!r}: a prompt change comes after the start (> 0 s)")
        times.append(value)
    return times


def _cached(store: "Store", key: str) -> dict | None:
    data = store.read(KIND, key, ENTRY)
    if data is None:
        return None
    try:
        payload = json.loads(data)
    except ValueError:
        return None
    return payload if isinstance(payload, dict) and isinstance(payload.get("result"), dict) \
        else None


# ---------------------------------------------------------------- the analysis


@dataclass
class _Span:
    """A transition being measured: what is kept of the frames around it."""

    change: Change
    end: int  # exclusive: the next change, or the video's end
    representative: int  # the previous section's middle frame
    reference: "np.ndarray | None" = None  # its luma at SSIM size
    reference_rgb: "np.ndarray | None" = None
    similarity: list[float] = field(default_factory=list)  # frames change.frame .. end - 1
    samples: dict[int, "np.ndarray"] = field(default_factory=dict)  # for CLIP


class _Analysis:
    """Every metric of one video from a single pass over its frames."""

    def __init__(self, info: "VideoInfo", changes: Sequence[Change], weights: "ClipWeights"):
        import numpy as np

        from . import metrics as m

        self.info = info
        self.weights = weights
        self.use_clip = weights.found and bool(changes)
        starts = [0, *(c.frame for c in changes)]
        ends = [*(c.frame for c in changes), info.frames]
        self.spans = [_Span(change, change.end or ends[i + 1], (starts[i] + ends[i] - 1) // 2)
                      for i, change in enumerate(changes)]
        for span in self.spans:
            if self.use_clip:
                picks = np.linspace(span.change.frame, span.end - 1, CLIP_SAMPLES)
                span.samples = {int(round(p)): None for p in picks}
        first, last = m.brisque_frames(info.frames)
        self.brisque_first, self.brisque_last = set(first), set(last)
        self.series: dict[str, list] = {name: [] for name in
                                        ("sharpness", "colorfulness", "ssim_to_first",
                                         "delta_e_to_first", "frame_change")}
        self.labs: list[np.ndarray] = []
        self.brisque: dict[str, list[float]] = {"first": [], "last": []}
        self.first: tuple[np.ndarray, np.ndarray] | None = None  # luma at SSIM size, mean Lab
        self.previous: np.ndarray | None = None  # the last frame's luma
        self.unavailable: dict[str, str] = {}

    def run(self) -> dict:
        from .video import VideoError, read_frames

        count = 0
        try:
            for index, frame in enumerate(read_frames(self.info.path)):
                small = self._per_frame(frame)
                self._spans(index, frame, small)
                self._brisque(index, frame)
                count += 1
        except VideoError as error:
            raise ScoreError(error.path, str(error)) from None
        if count == 0:
            raise ScoreError(self.info.path, "not a video: it holds no frames")
        return self._result(count)

    def _per_frame(self, frame: "np.ndarray") -> "np.ndarray":
        """Measure one frame against the first and the previous; returns its luma at SSIM
        size for the transitions."""
        from . import metrics as m

        y = m.luma(frame)
        small = m.structure(y)
        lab = m.mean_lab(frame)
        if self.first is None:
            self.first = (small, lab)
        first_small, first_lab = self.first
        self.labs.append(lab)
        self.series["sharpness"].append(m.sharpness(y))
        self.series["colorfulness"].append(m.colorfulness(frame))
        self.series["ssim_to_first"].append(m.ssim(small, first_small))
        self.series["delta_e_to_first"].append(m.delta_e(lab, first_lab))
        self.series["frame_change"].append(None if self.previous is None else
                                           m.frame_change(self.previous, y))
        self.previous = y
        return small

    def _spans(self, index: int, frame: "np.ndarray", small: "np.ndarray") -> None:
        from . import metrics as m
        from .video import shrink

        for span in self.spans:
            if index == span.representative:
                span.reference = small
                span.reference_rgb = shrink(frame, CLIP_SIDE) if self.use_clip else None
            if span.change.frame <= index < span.end and span.reference is not None:
                span.similarity.append(m.ssim(small, span.reference))
            if index in span.samples:
                span.samples[index] = shrink(frame, CLIP_SIDE)

    def _brisque(self, index: int, frame: "np.ndarray") -> None:
        from . import metrics as m

        if "brisque" in self.unavailable:
            return
        for edge, frames in (("first", self.brisque_first), ("last", self.brisque_last)):
            if index in frames:
                try:
                    self.brisque[edge].append(m.brisque(frame))
                except m.BrisqueUnavailable as error:
                    self.unavailable["brisque"] = str(error)
                    return

    # ------------------------------------------------------------ results

    def _result(self, count: int) -> dict:
        import numpy as np

        from . import metrics as m

        fps = self.info.fps
        series = self.series
        changes = series["frame_change"]
        moving = [c for c in changes if c is not None]
        values: dict[str, float | None] = {
            "sharpness": float(np.mean(series["sharpness"])),
            "sharpness_drift": m.drift(series["sharpness"]),
            "colorfulness": float(np.mean(series["colorfulness"])),
            "colorfulness_drift": m.drift(series["colorfulness"]),
            "brisque": None,
            "brisque_drift": None,
            "color_drift": m.color_drift(self.labs),
            "flicker": float(np.median(moving)) if moving else None,
        }
        if "brisque" not in self.unavailable and self.brisque["first"] and \
                self.brisque["last"]:
            values["brisque"] = float(np.mean(self.brisque["first"] + self.brisque["last"]))
            values["brisque_drift"] = m.edge_drift(self.brisque["first"], self.brisque["last"])
        if not moving:
            self.unavailable["flicker"] = "a single frame has no frame-to-frame change"
        transitions = self._transitions(count, changes)
        values.update(self._transition_metrics(transitions))
        self._explain(values)
        return {"frames": count, "fps": round(fps, 6),
                "metrics": {k: _round(v, 6) for k, v in values.items()},
                "per_frame": {k: [_round(v, ROUND) for v in s] for k, s in series.items()},
                "transitions": transitions,
                "unavailable": {k: self.unavailable[k] for k in values
                                if values[k] is None and k in self.unavailable}}

    def _transitions(self, count: int, changes: list[float | None]) -> list[dict]:
        from . import metrics as m

        threshold = m.settle_threshold(changes)
        reaction = max(1, round(self.info.fps))  # the response must start within a second
        clip_model = self._clip_model()
        out = []
        for span in self.spans:
            change = span.change
            end = min(span.end, count)
            if change.frame >= end:
                continue  # the video ended before this change (a short decode)
            latency = m.transition_latency(changes, change.frame, end, threshold=threshold,
                                           reaction=reaction)
            settled_from = min(latency.settle_frame, end - 1)
            ghost = m.ghosting(span.similarity[settled_from - change.frame:])
            entry = {
                "frame": change.frame, "seconds": round(change.frame / self.info.fps, 6),
                "prompt": change.prompt, "previous_prompt": change.previous_prompt,
                "keyframe": change.keyframe,
                "latency_frames": latency.frames,
                "latency_seconds": round(latency.frames / self.info.fps, 6),
                "end_frame": end, "settle_frame": latency.settle_frame,
                "responded": latency.responded,
                "settled": latency.settled, "threshold": _round(threshold, 6),
                "ghosting": _round(ghost[0], 6) if ghost else None,
                "ghost_frame": settled_from + ghost[1] if ghost else None,
                "clip_fidelity": None, "clip_margin": None, "clip_ghosting": None,
            }
            if clip_model is not None:
                entry.update(self._clip(clip_model, span, settled_from))
            out.append(entry)
        return out

    def _clip_model(self) -> Any:
        if not self.use_clip:
            return None
        from .clip import ClipModel

        try:
            return ClipModel(self.weights)
        except Exception as error:  # noqa: BLE001 - weights that do not load: say so
            self.unavailable["clip"] = f"CLIP weights at {self.weights.folder} do not load: " \
                                       f"{type(error).__name__}: {error}"
            return None

    def _clip(self, model: Any, span: _Span, settled_from: int) -> dict:
        from .clip import transition_scores

        kept = sorted((i, f) for i, f in span.samples.items() if f is not None)
        after = [f for i, f in kept if i >= settled_from] or [kept[-1][1]]
        if span.reference_rgb is None:
            return {}
        scores = transition_scores(model, after, span.reference_rgb, span.change.prompt,
                                   span.change.previous_prompt)
        return {"clip_fidelity": _round(scores.fidelity, 6),
                "clip_margin": _round(scores.margin, 6),
                "clip_ghosting": _round(scores.ghosting, 6)}

    def _transition_metrics(self, transitions: list[dict]) -> dict[str, float | None]:
        def mean(name: str) -> float | None:
            found = [t[name] for t in transitions if t[name] is not None]
            return float(sum(found) / len(found)) if found else None

        def peak(name: str) -> float | None:
            found = [t[name] for t in transitions if t[name] is not None]
            return float(max(found)) if found else None

        return {"latency_frames": mean("latency_frames"), "ghosting": peak("ghosting"),
                "clip_fidelity": mean("clip_fidelity"), "clip_margin": mean("clip_margin"),
                "clip_ghosting": peak("clip_ghosting")}

    def _explain(self, values: dict[str, float | None]) -> None:
        """A one-line reason for every metric left without a value."""
        none = "no prompt changes (a shot's sidecar names them; for a bare video give --at)"
        for name in ("latency_frames", "ghosting"):
            self.unavailable.setdefault(name, none)
        self.unavailable.setdefault("brisque_drift", self.unavailable.get(
            "brisque", "BRISQUE scored no frames"))
        self.unavailable.setdefault("brisque", self.unavailable["brisque_drift"])
        clip_reason = self.unavailable.get("clip") or self.weights.reason or none
        for name in ("clip_fidelity", "clip_margin", "clip_ghosting"):
            self.unavailable.setdefault(name, clip_reason)
        if self.spans and values.get("clip_fidelity") is None and values.get("clip_ghosting") \
                is not None:
            for name in ("clip_fidelity", "clip_margin"):
                self.unavailable[name] = "no prompts known (--at gives times only)"
        if values.get("clip_margin") is None and values.get("clip_fidelity") is not None:
            self.unavailable["clip_margin"] = "no previous prompt to compare with"


def _round(value: float | None, digits: int) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return round(float(value), digits)


# ---------------------------------------------------------------- the command


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `framepack score`."""
    from ..cli import _cache_option  # imported here: cli imports this module

    parser.add_argument("paths", nargs="+", metavar="VIDEO|SHOT|DIR",
                        help="videos (mp4, webm, gif, mov), frames folders, shot files (their "
                             "outputs) or folders of shot files")
    parser.add_argument("--at", metavar="TIMES",
                        help="prompt changes of a bare video, in seconds: 2.4s,4.8s (a shot's "
                             "outputs know theirs)")
    parser.add_argument("--json", action="store_true",
                        help='print {"videos": [...]} with every metric, per-frame series and '
                             "transition")
    parser.add_argument("--clip", metavar="PATH|REPO",
                        help="CLIP weights: a local folder or a Hugging Face repository in its "
                         "cache (default: openai/clip-vit-large-patch14)")
    _cache_option(parser)


def run(args: argparse.Namespace) -> int:
    """`framepack score`: a table (or JSON) of every video's scores. Exit 2 on a bad path or
    option (the other paths are still scored)."""
    missing = missing_dependencies()
    if missing:
        print(f"framepack score: needs {', '.join(missing)}: {INSTALL}", file=sys.stderr)
        return EXIT_INVALID
    try:
        at = parse_at(args.at) if args.at is not None else None
    except ValueError as error:
        print(f"--at: {error}", file=sys.stderr)
        return EXIT_INVALID
    from ..housekeeping import open_cache

    store = open_cache(args)
    errors: list[str] = []
    videos = score_paths(args.paths, at_seconds=at, store=store, clip=args.clip, errors=errors)
    for line in errors:
        print(line, file=sys.stderr)
    if args.json:
        json.dump({"videos": videos}, sys.stdout, indent=2)
        print()
    elif videos:
        print_table(videos)
    return EXIT_INVALID if errors else EXIT_OK


def print_table(videos: list[dict]) -> None:
    """One row per video, the headline metrics as columns; reasons for n/a below."""
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False, width=None if sys.stdout.isatty() else 160)
    table = Table(box=None, pad_edge=False)
    table.add_column("video", overflow="fold")
    table.add_column("frames", justify="right")
    for _, heading, _ in COLUMNS:
        table.add_column(heading, justify="right")
    reasons: dict[str, list[str]] = {}
    for video in videos:
        cells = [_shown(video["path"]), str(video["frames"])]
        for name, _, form in COLUMNS:
            value = video["metrics"].get(name)
            cells.append("n/a" if value is None else form.format(value))
            if value is None:
                reason = video.get("unavailable", {}).get(name, "not measured")
                names = reasons.setdefault(reason, [])
                if name not in names:
                    names.append(name)
        table.add_row(*cells)
    console.print(table)
    for reason, names in reasons.items():
        console.print(f"n/a {', '.join(names)}: {reason}", soft_wrap=True)


def _shown(path: str) -> str:
    """A path relative to the working folder when it is under it."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return path
