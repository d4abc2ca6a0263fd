"""The spec layer: shot files in, checked and typed shots out. Never imports torch."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from .errors import Diagnostic, Mark, Report, ShotError, display_path
from .files import resolve
from .model import Shot
from .semantic import build_shot
from .templates import expand_csv, expand_shot, parse_sets

__all__ = ["Diagnostic", "Loaded", "Mark", "Shot", "ShotError", "check_collisions", "load"]


@dataclass
class Loaded:
    shots: list[Shot]
    warnings: list[Diagnostic] = field(default_factory=list)


def load(path: str | Path, *, sets: list[str] | tuple[str, ...] = (),
         template: str | Path | None = None, output_root: str | Path | None = None) -> Loaded:
    """Every shot that ``path`` stands for, checked. Raises ShotError listing all errors.

    ``path`` is a shot file, or with ``template`` a CSV of jobs (one shot per row).
    """
    path = Path(path)
    try:
        return _load(path, list(sets), template, output_root)
    except RecursionError:  # the limits keep every walk shallow; should one not, still one line
        raise ShotError.at(Mark(display_path(path)), "the shot is nested too deeply to "
                                                     "check") from None


def _load(path: Path, sets: list[str], template: str | Path | None,
          output_root: str | Path | None) -> Loaded:
    if output_root is not None and re.match(r"[A-Za-z][A-Za-z0-9+.-]*://", str(output_root)):
        raise ShotError.at(Mark(display_path(path)),
                           f"--output-root {output_root}: outputs go to a folder (on a farm, one "
                           "every worker shares); a URL is for --cache")
    root = resolve(output_root) if output_root is not None else None
    set_nodes = parse_sets(sets)
    if template is not None:
        expansions = expand_csv(path, Path(template), set_nodes)
    elif path.suffix.lower() == ".csv":
        raise ShotError.at(Mark(display_path(path)), "a CSV of jobs needs --template T.yaml "
                                                     "(its columns become the template's vars)")
    else:
        expansions = expand_shot(path, set_nodes)
    report = Report()
    for expansion in expansions:
        for warning in expansion.warnings:
            report.warn(warning.mark, warning.message)
    shots = []
    for expansion in expansions:
        shot = build_shot(expansion, report, root)
        if shot is not None:
            shots.append(shot)
    report.extend(check_collisions(shots))
    report.raise_if_errors()
    return Loaded(shots, report.warnings)


def check_collisions(shots: list[Shot]) -> Report:
    """Two shots (matrix expansions, CSV rows, or files rendered together) writing one file."""
    report = Report()
    writers: dict[Path, str] = {}
    for shot in shots:
        targets = [(o.path, o.mark) for o in shot.outputs]
        targets += [(e.output, e.mark) for e in shot.edits if e.output is not None]
        for path, mark in targets:
            other = writers.get(path)
            if other is not None and other != shot.label:
                # A CSV row is where the user fixes a clash between rows.
                report.error(shot.row or mark, f"output {display_path(path)} is also written "
                                               f"by {other}; make it differ, for example with "
                                               "a var such as ${seed}")
            writers.setdefault(path, shot.label)
    return report
