"""A render farm on one machine: a batch of one-window tiny-model shots rendered by one process
(the local executor) and by `--farm local:N` (a private Ray cluster of N workers).

A temporary folder holds N_SHOTS shot files (default 8), each one section of 1.2 s (exactly one
window) with its own prompt and seed, the quickstart's start image and an .mp4 output. Both
runs are a fresh `python -m framepack_render render SHOT... --cache DIR --json --no-preview`
process with an empty cache of its own; the farm run adds `--farm local:N`. Printed side by side:

- wall: the process, measured from the outside (start-up, imports and, for the farm, starting
  the Ray cluster and its workers included);
- the farm's start-up: connecting the cluster (`farm.start_seconds` in the JSON summary);
- per shot: the render's own seconds (inside the process, or inside the worker), and for the
  farm the call as the driver saw it (`worker.call_seconds`); the farm's per-shot overhead is
  the difference: dispatch, pickling, progress events, waiting for a worker to start. Its
  median leaves out each worker's first shot, which also waits for the worker's constructor;
  the maximum shows that wait.

Targets (printed as PASS or MISS, never asserted): the batch on the farm takes at most 0.7 of
the local wall time; the per-shot overhead (median) is at most 1 s. Both runs must sample every
window exactly once, and sample identical windows; their decoded frames are compared too. The
load average is printed: other work on the machine slows every figure.

    python benchmarks/farm.py [--shots 8] [--workers 2] [--steps 25] [--size 256x256]
                              [--repeat 1] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml
from incremental_render import (PROMPTS, SECTION_DURATION, START_IMAGE, child_env, log,
                                parse_size, parse_summary, verdict)  # this folder is on sys.path

WALL_TARGET = 0.7  # farm wall / local wall
OVERHEAD_TARGET = 1.0  # seconds the farm adds to each shot (median)


@dataclass
class Run:
    """One `framepack render` process over the whole batch."""

    mode: str  # "local" or the --farm address
    wall: float
    seconds: float  # the JSON summary's own clock
    start: float  # the farm's start-up (0 for local)
    windows_rendered: int
    shot_seconds: list[float]  # each shot's render, where it ran
    call_seconds: list[float]  # each shot's call as the driver saw it (farm only)
    first_on_worker: list[bool]  # the shot was its worker's first (farm only)
    workers: int
    threads: int  # torch threads per worker (farm only)
    load_after: float

    @property
    def overheads(self) -> list[float]:
        return [c - s for c, s in zip(self.call_seconds, self.shot_seconds)]


def write_shots(folder: Path, count: int, size: str, steps: int) -> list[Path]:
    """One shot file per prompt: a single one-window section, its own seed."""
    paths = []
    for i in range(count):
        shot = {"version": 1, "model": "tiny", "output": f"renders/shot-{i + 1}.mp4",
                "size": size, "steps": steps, "seed": 100 + i, "image": "start.png",
                "prompt": PROMPTS[i % len(PROMPTS)], "duration": SECTION_DURATION}
        path = folder / f"shot-{i + 1}.yaml"
        path.write_text(yaml.safe_dump(shot, sort_keys=False, width=200))
        paths.append(path)
    return paths


def render_batch(mode: str, shots: list[Path], cache: Path) -> Run:
    """Render every shot in one fresh process, locally or on ``--farm mode``."""
    command = [sys.executable, "-m", "framepack_render", "render", *map(str, shots),
               "--cache", str(cache), "--json", "--no-preview"]
    if mode != "local":
        command += ["--farm", mode]
    started = time.perf_counter()
    result = subprocess.run(command, check=False, capture_output=True, text=True,
                            env=child_env())
    wall = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"{mode}: render failed ({result.returncode}):\n{result.stderr[-4000:]}")
    summary = parse_summary(result.stdout)
    shots_json = summary["shots"]
    workers = [s.get("worker") or {} for s in shots_json]
    seen: set[str] = set()
    first = []
    for worker in workers:
        first.append(worker.get("actor") not in seen)
        seen.add(worker.get("actor"))
    farm = summary.get("farm", {})
    return Run(mode=mode, wall=wall, seconds=float(summary["seconds"]),
               start=float(farm.get("start_seconds", 0.0)),
               windows_rendered=int(summary["windows_rendered"]),
               shot_seconds=[float(s["seconds"]["total"]) for s in shots_json],
               call_seconds=[float(w.get("call_seconds", 0.0)) for w in workers],
               first_on_worker=first if farm else [],
               workers=int(farm.get("workers", 1)),
               threads=max((int(w.get("threads", 0)) for w in workers), default=0),
               load_after=os.getloadavg()[0])


def entries(cache: Path, kind: str) -> dict[str, dict]:
    """Every entry of a kind in a cache: its key and its files' sizes and SHA-256."""
    return {path.parent.name: json.loads(path.read_text())["files"]
            for path in sorted((cache / kind).glob("*/*/manifest.json"))}


def frames_difference(a: Path, b: Path) -> int:
    """The largest difference, in 8-bit levels, between the decoded segments of two caches.
    Not zero when the workers run torch with another thread count than the local process:
    its CPU convolutions then sum in another order and a few pixels round the other way. (The
    .mp4 bytes are not compared: libx264 may encode identical frames differently when the
    machine is busy, with or without Ray.)"""
    import numpy as np
    from safetensors.numpy import load_file

    worst = 0
    for key in entries(a, "frames"):
        left, right = (load_file(str(next((c / "frames" / key[:2] / key).glob("*.safetensors"))))
                       ["frames"].astype(np.int16) for c in (a, b))
        worst = max(worst, int(np.abs(left - right).max()))
    return worst


def run_pair(args: argparse.Namespace) -> tuple[Run, Run, bool, int]:
    """The batch locally, then on the farm, each from an empty cache; whether the sampled
    windows are identical, and how far apart the decoded frames are."""
    with tempfile.TemporaryDirectory(prefix="farm-benchmark-") as tmp:
        folder = Path(tmp)
        shutil.copyfile(START_IMAGE, folder / "start.png")
        shots = write_shots(folder, args.shots, args.size, args.steps)
        log(f"  local: {len(shots)} shots in one process")
        local = render_batch("local", shots, folder / "cache-local")
        shutil.rmtree(folder / "renders")
        address = f"local:{args.workers}"
        log(f"  farm: the same shots on --farm {address}")
        farm = render_batch(address, shots, folder / "cache-farm")
        local_cache, farm_cache = folder / "cache-local", folder / "cache-farm"
        windows = entries(local_cache, "window")
        same = (len(windows) == len(shots) and entries(farm_cache, "window") == windows
                and entries(farm_cache, "frames").keys() == entries(local_cache, "frames").keys())
        difference = frames_difference(local_cache, farm_cache) if same else -1
        for run in (local, farm):
            log(f"    {run.mode:<8} wall {run.wall:6.2f} s  in-process {run.seconds:6.2f} s  "
                f"{run.windows_rendered} windows sampled, load {run.load_after:.2f}")
        return local, farm, same, difference


def median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


def steady(run: Run) -> list[float]:
    """Per-shot overheads, leaving out each worker's first shot (it waits for the worker)."""
    later = [o for o, first in zip(run.overheads, run.first_on_worker) if not first]
    return later or run.overheads


def figures(pairs: list[tuple[Run, Run, bool, int]], args: argparse.Namespace) -> dict:
    """Medians over the repeats, the targets and their verdicts."""
    locals_, farms = [p[0] for p in pairs], [p[1] for p in pairs]
    ratio = median([f.wall / l.wall for l, f, _, _ in pairs])
    overhead = median([median(steady(f)) for f in farms])
    return {
        "shots": args.shots, "workers": args.workers, "size": args.size, "steps": args.steps,
        "repeat": args.repeat, "cpus": os.cpu_count(),
        "local": {"wall": median([r.wall for r in locals_]),
                  "seconds": median([r.seconds for r in locals_]),
                  "per_shot": median([median(r.shot_seconds) for r in locals_])},
        "farm": {"wall": median([r.wall for r in farms]),
                 "seconds": median([r.seconds for r in farms]),
                 "start": median([r.start for r in farms]),
                 "per_shot": median([median(r.shot_seconds) for r in farms]),
                 "per_shot_call": median([median(r.call_seconds) for r in farms]),
                 "overhead_median": overhead,
                 "overhead_max": median([max(r.overheads) for r in farms])},
        "wall_ratio": ratio, "wall_pass": ratio <= WALL_TARGET,
        "overhead_pass": overhead <= OVERHEAD_TARGET,
        "sampled_once": all(l.windows_rendered == f.windows_rendered == args.shots
                            for l, f, _, _ in pairs),
        "identical_windows": all(same for _, _, same, _ in pairs),
        "frames_max_difference": max(d for _, _, _, d in pairs),
        "worker_threads": max(f.threads for f in farms),
        "runs": [[asdict(l), asdict(f)] for l, f, _, _ in pairs],
    }


def print_report(result: dict, load_before: float) -> None:
    local, farm = result["local"], result["farm"]
    workers = result["workers"]
    print(f"tiny model, {result['size']}, {result['steps']} steps, {result['shots']} one-window "
          f"shots; one process vs --farm local:{workers}; median of {result['repeat']}; "
          f"{result['cpus']} CPUs, load average {load_before:.2f} before")
    print()
    rows = [("wall (process)", f"{local['wall']:.2f} s", f"{farm['wall']:.2f} s"),
            ("in-process clock", f"{local['seconds']:.2f} s", f"{farm['seconds']:.2f} s"),
            ("farm start-up (cluster)", "—", f"{farm['start']:.2f} s"),
            ("render per shot (median)", f"{local['per_shot']:.2f} s",
             f"{farm['per_shot']:.2f} s on a worker"),
            ("call per shot (median)", "—", f"{farm['per_shot_call']:.2f} s"),
            ("farm overhead per shot", "—",
             f"{farm['overhead_median']:.2f} s median, {farm['overhead_max']:.2f} s max")]
    print(f"{'':<26} {'local (1 process)':>20}   {'farm local:' + str(workers):<32}")
    for label, a, b in rows:
        print(f"{label:<26} {a:>20}   {b:<32}")
    print()
    difference = result["frames_max_difference"]
    print(f"windows sampled once: {'yes' if result['sampled_once'] else 'NO'}; sampled "
          f"windows identical: {'yes' if result['identical_windows'] else 'NO'}; decoded "
          + ("frames identical" if difference == 0 else
             f"frames differ by at most {difference} levels (torch threads: "
             f"{result['worker_threads']} per worker, torch's default locally)"))
    print(f"target: farm wall <= {WALL_TARGET} x local: {verdict(result['wall_pass'])} "
          f"({result['wall_ratio']:.3f})")
    print(f"target: farm overhead per shot <= {OVERHEAD_TARGET:.0f} s: "
          f"{verdict(result['overhead_pass'])} ({farm['overhead_median']:.2f} s; each worker's "
          "first shot, which waits for the worker to start, left out)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shots", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--size", type=parse_size, default="256x256", help="WIDTHxHEIGHT")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    if args.shots < 1 or args.workers < 1 or args.repeat < 1:
        parser.error("--shots, --workers and --repeat must be at least 1")
    # A TERM unwinds like Ctrl-C: the render process is stopped and the folder removed.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    load_before = os.getloadavg()[0]
    pairs = []
    for i in range(args.repeat):
        log(f"repeat {i + 1} of {args.repeat}")
        pairs.append(run_pair(args))
    result = figures(pairs, args)
    if args.json:
        json.dump({**result, "load_before": load_before}, sys.stdout, indent=2)
        print()
    else:
        print_report(result, load_before)


if __name__ == "__main__":
    main()
