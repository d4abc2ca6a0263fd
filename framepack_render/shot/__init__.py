"""The spec layer: shot files in, checked and typed shots out. Never imports torch."""

from __future__ import annotations

import dataclasses
import hashlib
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..urls import is_url, redact

from .errors import Diagnostic, Mark, Report, ShotError, display_path
from .files import resolve
from .model import Destination, Shot
from ..engines.flux_deforum.shot import build_flux_shot, is_flux
from .semantic import build_shot
from .templates import expand_csv, expand_shot, parse_sets

__all__ = ["Diagnostic", "Loaded", "Mark", "Shot", "ShotError", "check_collisions", "load"]


@dataclass
class Loaded:
    shots: list[Shot]
    warnings: list[Diagnostic] = field(default_factory=list)


def load(path: str | Path, *, sets: list[str] | tuple[str, ...] = (),
         template: str | Path | None = None, output_root: str | Path | None = None,
         storage_options: dict[str, Any] | None = None) -> Loaded:
    """Every shot that ``path`` stands for, checked. Raises ShotError listing all errors.

    ``path`` is a shot file, or with ``template`` a CSV of jobs (one shot per row).
    ``output_root`` is a folder or an fsspec URL (``storage_options`` go to its filesystem).
    """
    path = Path(path)
    try:
        return _load(path, list(sets), template, output_root, storage_options)
    except RecursionError:  # the limits keep every walk shallow; should one not, still one line
        raise ShotError.at(Mark(display_path(path)), "the shot is nested too deeply to "
                                                     "check") from None


def _load(path: Path, sets: list[str], template: str | Path | None,
          output_root: str | Path | None, storage_options: dict[str, Any] | None) -> Loaded:
    destination = _destination(path, output_root, storage_options)
    if destination is not None:
        root: Path | None = destination.staging
    else:
        root = resolve(_local(output_root)) if output_root is not None else None
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
        # A shot names its engine; each engine checks and types its own keys.
        build = build_flux_shot if is_flux(expansion.doc) else build_shot
        shot = build(expansion, report, root,
                     root_shown=destination.shown if destination else None)
        if shot is not None:
            shots.append(dataclasses.replace(shot, destination=destination))
    report.extend(check_collisions(shots))
    report.raise_if_errors()
    return Loaded(shots, report.warnings)


def _destination(path: Path, output_root: str | Path | None,
                 storage_options: dict[str, Any] | None) -> Destination | None:
    """An output root that is a URL (other than a plain file:// one): outputs are staged in a
    folder of this machine named for the URL, then uploaded whole."""
    if output_root is None or not is_url(output_root):
        return None
    if _local(output_root) != output_root and not storage_options:
        return None  # a plain file:// URL is a folder
    url = str(output_root).rstrip("/")
    if not url.partition("://")[2].strip("/"):
        raise ShotError.at(Mark(display_path(path)),
                           f"--output-root {redact(url)}: name a bucket or folder in the URL")
    digest = hashlib.sha256(url.encode()).hexdigest()[:16]
    staging = resolve(Path(tempfile.gettempdir()) / "framepack-render-outputs" / digest)
    return Destination(url, redact(url), staging, dict(storage_options or {}))


def _local(output_root: str | Path) -> str | Path:
    """A file:// URL as the folder it names."""
    text = str(output_root)
    return text.partition("://")[2] if text.startswith(("file://", "local://")) else output_root


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
