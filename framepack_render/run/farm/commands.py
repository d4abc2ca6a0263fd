"""`render --farm` and `watch --farm`: the farm behind the command line's verbs."""

from __future__ import annotations

import argparse
import json
import sys
import time
from contextlib import contextmanager
from dataclasses import asdict
from typing import TYPE_CHECKING, Any, Callable, Iterator

from ..events import Cancel, RenderResult
from .cluster import FarmError
from .driver import Farm, FarmObserver
from .progress import FarmProgress

if TYPE_CHECKING:
    from rich.console import Console

    from ...shot import Loaded, Shot

EXIT_OK, EXIT_FAILED, EXIT_INVALID = 0, 1, 2


# ---------------------------------------------------------------- the commands


def worker_label(worker: dict[str, Any] | None) -> str:
    if not worker:
        return ""
    node = f"@{worker['node']}" if worker.get("node") else ""
    return f" on {worker['name']}{node}"


def farm_from_args(args: argparse.Namespace) -> Farm:
    """The farm for `render` and `watch`; FarmError (one line) when it cannot start."""
    from ...housekeeping import storage_options

    return Farm.open(args.farm, args.cache, storage_options=storage_options(args) or None,
                     device=args.device)


def render_on_farm(args: argparse.Namespace, loaded: list["Loaded"],
                   line: Callable[[RenderResult], str],
                   after: Callable[[list["Shot"]], dict[str, Any]] | None = None) -> int:
    """`framepack render --farm`: every shot of every file, in parallel across the workers.
    ``after`` gets the shots rendered and returns fields for the JSON summary (scores)."""
    from rich.console import Console

    from ...shot.errors import print_diagnostics

    started = time.perf_counter()
    try:
        farm = farm_from_args(args)
    except FarmError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_INVALID
    start_seconds = time.perf_counter() - started
    console = Console(stderr=True, highlight=False)
    preview = sys.stderr.isatty() if args.preview is None else args.preview
    finished: list[tuple[int, RenderResult, dict[str, Any] | None]] = []  # tag, result, worker
    rendered: list["Shot"] = []
    status = EXIT_OK
    with farm, FarmProgress(console) as progress:
        for item in loaded:
            print_diagnostics(item.warnings)
        shots = [shot for item in loaded for shot in item.shots]
        for shot, outcome in farm.render(shots, force=args.force, preview=preview,
                                         observer=progress):
            if outcome.model_error:
                print(f"{shot.model.mark}: {outcome.error}", file=sys.stderr)
                return EXIT_INVALID
            if outcome.error is not None:
                print(f"error: {outcome.error}", file=sys.stderr)
                status = EXIT_FAILED
                continue
            assert outcome.result is not None
            worker = outcome.worker and {**outcome.worker,
                                         "call_seconds": round(outcome.seconds, 3)}
            finished.append((outcome.tag, outcome.result, worker))
            rendered.append(shot)
            console.print(line(outcome.result) + worker_label(outcome.worker), soft_wrap=True,
                          markup=False)
        cache = farm.store.url
        workers = len(farm.slots)
    extra = after(rendered) if after is not None else {}
    if extra.get("failed"):
        status = EXIT_FAILED
    if args.json:
        finished.sort(key=lambda item: item[0])  # the order the shots were given
        summaries = [result for _, result, _ in finished]
        json.dump({"shots": [{**asdict(result), "worker": worker}
                             for _, result, worker in finished],
                   "windows_rendered": sum(s.windows_rendered for s in summaries),
                   "windows_cached": sum(s.windows_cached for s in summaries),
                   "outputs": [o for s in summaries for o in s.outputs],
                   "seconds": round(time.perf_counter() - started, 3),
                   "cache": cache, "ok": status == EXIT_OK,
                   **{k: v for k, v in extra.items() if k != "failed"},
                   "farm": {"address": args.farm, "workers": workers,
                            "start_seconds": round(start_seconds, 3)}}, sys.stdout, indent=2)
        print()
    return status


class FarmRenders:
    """`framepack watch --farm`: the ``render(shot, cancel)`` a Watcher calls, on a worker
    (the same one while the model stays the same, so its models stay loaded)."""

    def __init__(self, farm: Farm, args: argparse.Namespace, observer: FarmObserver):
        self.farm = farm
        self.args = args
        self.observer = observer

    def __call__(self, shot: "Shot", cancel: Cancel | None = None) -> RenderResult:
        preview = sys.stderr.isatty() if self.args.preview is None else self.args.preview
        return self.farm.render_one(shot, force=self.args.force, preview=preview,
                                    observer=self.observer, cancel=cancel)


@contextmanager
def farm_renders(args: argparse.Namespace, console: "Console") -> Iterator[FarmRenders]:
    """The farm and its progress display for `framepack watch --farm`, closed on exit.
    Raises FarmError before anything starts when the farm cannot."""
    with farm_from_args(args) as farm, FarmProgress(console) as progress:
        yield FarmRenders(farm, args, progress)
