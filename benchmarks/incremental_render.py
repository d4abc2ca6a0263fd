"""What an edit costs: incremental re-rendering of an 8-window shot with the tiny model.

A temporary shot holds 8 sections of 1.2 s (36 frames at 30 fps: exactly one window
of 9 latents, 36 frames), one generation window each (checked against
`framepack plan --json`), with distinct prompts, the quickstart's start image, an .mp4 output
and its own empty cache folder. Four renders then run in sequence, each as a fresh
`python -m framepack_render render SHOT --cache DIR --json --no-preview` process:

1. full: the whole shot from an empty cache;
2. no-op: the unchanged file again;
3. edit first: the first section's prompt changed;
4. edit last: the last section's prompt changed (on top of the previous edit).

Every window's key includes the key of the window generated just before it, so an edit
re-renders its section's window and every window generated after it. Under `inverted`
sampling (the default) the first section is generated last, so editing it costs 1 window and
editing the last section costs all 8; under `forward` it is the other way round. The number of
windows an edit invalidates (k) is read from each render's JSON summary, never assumed.

For each render it prints the process wall time (measured around the subprocess: Python
start-up and importing torch included), the render's own `seconds` from the JSON summary,
windows sampled / cached, and both times as a ratio to the full render; also the process's CPU
time, the segments it decoded, and the windows `framepack plan` said were uncached just before
it (stderr has the per-phase timings). The machine's load average is printed, since other work
on it slows every figure. `--repeat N` runs the whole sequence N times, each from an empty
cache, and reports medians. The targets checked, against both timings: a no-op costs under 5%
of the full render; an edit that samples k of the 8 windows costs at most k/8 + 0.10 of the
full render. A Markdown table closes the output.

    python benchmarks/incremental_render.py [--steps 25] [--size 256x256] [--repeat 1]
                                            [--sampling inverted|forward|endpoints-first] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
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

REPO = Path(__file__).resolve().parents[1]
START_IMAGE = REPO / "examples" / "quickstart" / "images" / "start.png"
WINDOWS = 8
SECTION_DURATION = "1.2s"  # 36 frames at 30 fps: exactly one 9-latent window
PROMPTS = [
    "a red ball rolls across the grass",
    "the red ball bounces over a small stone",
    "a dog runs after the red ball",
    "the dog catches the ball in its mouth",
    "the dog trots back across the meadow",
    "clouds drift over the meadow",
    "the sun sets behind the hills",
    "the meadow falls dark under the stars",
]
EDIT_SUFFIX = ", seen from above"
NOOP_TARGET = 0.05
EDIT_SLACK = 0.10
SCENARIOS = {
    "full": "full render, empty cache",
    "noop": "no-op re-render",
    "edit_first": "edit first section's prompt",
    "edit_last": "edit last section's prompt",
}


@dataclass
class Run:
    """One render process: its wall time and what its JSON summary reported."""

    scenario: str
    wall: float
    seconds: float
    cpu: float  # user + system seconds of the render process
    windows_rendered: int
    windows_cached: int
    segments_decoded: int
    segments_cached: int
    planned: int  # windows `framepack plan` said were not cached, just before the render
    phases: dict[str, float]  # the shot's own timings (sampling, decode_and_encode, total)
    load_after: float  # the 1-minute load average when the render ended


@dataclass
class Row:
    """A scenario's medians over the repeats."""

    scenario: str
    label: str
    windows_rendered: int
    windows_cached: int
    segments_decoded: int
    planned: int
    wall: float
    seconds: float
    cpu: float
    wall_ratio: float
    seconds_ratio: float
    target: float | None
    wall_pass: bool | None
    seconds_pass: bool | None
    consistent: bool  # every repeat sampled the same windows, as `plan` predicted


def log(message: str) -> None:
    """Progress goes to stderr, so stdout holds only the report."""
    print(message, file=sys.stderr, flush=True)


def child_env(threads: int | None = None) -> dict[str, str]:
    """The environment for child processes: this checkout first on the path, and the number
    of torch's CPU threads when ``threads`` is given."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    if threads is not None:
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(threads)
    return env


def framepack(args: list[str]) -> subprocess.CompletedProcess[str]:
    """Run `python -m framepack_render ARGS`, capturing its output."""
    return subprocess.run([sys.executable, "-m", "framepack_render", *args],
                          check=False, capture_output=True, text=True, env=child_env())


def write_shot(path: Path, prompts: list[str], size: str, steps: int, sampling: str) -> None:
    """Write the shot file: one section of SECTION_DURATION per prompt."""
    shot = {
        "version": 1,
        "model": "tiny",
        "output": "renders/incremental.mp4",
        "size": size,
        "fps": 30,
        "steps": steps,
        "sampling": sampling,
        "image": "start.png",
        "sections": [{"prompt": p, "duration": SECTION_DURATION} for p in prompts],
    }
    path.write_text(yaml.safe_dump(shot, sort_keys=False, width=200))


def plan_windows(shot: Path, cache: Path) -> list[dict]:
    """The shot's windows as `framepack plan --json` reports them."""
    result = framepack(["plan", str(shot), "--cache", str(cache), "--json"])
    if result.returncode != 0:
        raise SystemExit(f"framepack plan failed ({result.returncode}):\n{result.stderr}")
    plans = json.loads(result.stdout)["plans"]
    assert len(plans) == 1, f"expected one shot, got {len(plans)}"
    return plans[0]["windows"]


def check_layout(windows: list[dict]) -> None:
    """Assert the plan has WINDOWS windows, one per section, in section order."""
    assert len(windows) == WINDOWS, f"plan has {len(windows)} windows, expected {WINDOWS}"
    sections = [w["section"] for w in windows]
    assert sections == list(range(WINDOWS)), f"expected one window per section, got {sections}"


def parse_summary(stdout: str) -> dict:
    """The JSON summary `render --json` prints on stdout."""
    try:
        return json.loads(stdout)
    except json.JSONDecodeError:
        start = stdout.rfind("\n{")
        return json.loads(stdout[start + 1:] if start >= 0 else stdout[stdout.index("{"):])


def children_cpu() -> float:
    """User + system seconds of every child process waited for so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_render(name: str, shot: Path, cache: Path, threads: int | None = None
               ) -> tuple[dict, str, float, float]:
    """Render the shot in a fresh process: its JSON summary, its stderr, and the wall and
    CPU seconds it took, measured from the outside. A failed render ends the benchmark."""
    command = [sys.executable, "-m", "framepack_render", "render", str(shot),
               "--cache", str(cache), "--json", "--no-preview"]
    cpu_before, started = children_cpu(), time.perf_counter()
    result = subprocess.run(command, check=False, capture_output=True, text=True,
                            env=child_env(threads))
    wall = time.perf_counter() - started
    cpu = children_cpu() - cpu_before
    if result.returncode != 0:
        raise SystemExit(f"{name}: render failed ({result.returncode}):\n"
                         f"{result.stderr[-4000:]}")
    summary = parse_summary(result.stdout)
    if not summary.get("ok", True):
        raise SystemExit(f"{name}: render reported a failure:\n{result.stderr[-4000:]}")
    return summary, result.stderr, wall, cpu


def render(scenario: str, shot: Path, cache: Path) -> Run:
    """Render the shot in a fresh process and time it from the outside."""
    planned = sum(not w["cached"] for w in plan_windows(shot, cache))
    summary, _, wall, cpu = run_render(scenario, shot, cache)
    shots = summary.get("shots", [])
    phases: dict[str, float] = {}
    for shot_summary in shots:
        for name, value in shot_summary.get("seconds", {}).items():
            phases[name] = round(phases.get(name, 0.0) + value, 3)
    return Run(scenario=scenario, wall=wall, seconds=float(summary["seconds"]), cpu=cpu,
               windows_rendered=int(summary["windows_rendered"]),
               windows_cached=int(summary["windows_cached"]),
               segments_decoded=sum(s.get("segments_decoded", 0) for s in shots),
               segments_cached=sum(s.get("segments_cached", 0) for s in shots),
               planned=planned, phases=phases, load_after=os.getloadavg()[0])


def startup_seconds() -> float:
    """Wall time of a process that only imports torch and the command line module."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import torch, framepack_render.cli"],
                   check=True, env=child_env())
    return time.perf_counter() - started


def run_sequence(size: str, steps: int, sampling: str) -> tuple[list[Run], float]:
    """Full, no-op, edit-first and edit-last renders in a fresh folder and cache."""
    with tempfile.TemporaryDirectory(prefix="incremental-render-") as tmp:
        folder = Path(tmp)
        shutil.copyfile(START_IMAGE, folder / "start.png")
        shot, cache = folder / "shot.yaml", folder / "cache"
        prompts = list(PROMPTS)
        write_shot(shot, prompts, size, steps, sampling)
        check_layout(plan_windows(shot, cache))
        runs = []
        for scenario in SCENARIOS:
            if scenario == "edit_first":
                prompts[0] += EDIT_SUFFIX
            elif scenario == "edit_last":
                prompts[-1] += EDIT_SUFFIX
            write_shot(shot, prompts, size, steps, sampling)
            run = render(scenario, shot, cache)
            phases = ", ".join(f"{k} {v:.1f} s" for k, v in run.phases.items() if k != "total")
            log(f"  {scenario:<10} wall {run.wall:7.2f} s  render {run.seconds:7.2f} s  "
                f"cpu {run.cpu:7.2f} s  {run.windows_rendered} sampled / {run.windows_cached} "
                f"cached (plan: {run.planned} to render), load {run.load_after:.2f}"
                + (f"  [{phases}]" if phases else ""))
            runs.append(run)
        if not (folder / "renders" / "incremental.mp4").is_file():
            raise SystemExit("the render wrote no renders/incremental.mp4")
        return runs, startup_seconds()


def meets(scenario: str, ratio: float, target: float | None) -> bool | None:
    """Whether a ratio meets its target: the no-op's is strict ("under 5%"), an edit may cost
    exactly its allowance. None where there is no target (the full render)."""
    if target is None:
        return None
    return ratio < target if scenario == "noop" else ratio <= target


def target_for(scenario: str, windows_rendered: int) -> float | None:
    """The largest ratio to the full render that meets the issue's target."""
    if scenario == "full":
        return None
    if scenario == "noop":
        return NOOP_TARGET
    return windows_rendered / WINDOWS + EDIT_SLACK


def summarise(sequences: list[list[Run]]) -> list[Row]:
    """Median figures per scenario; ratios are medians of each repeat's own ratio."""
    rows = []
    for i, (scenario, label) in enumerate(SCENARIOS.items()):
        runs = [seq[i] for seq in sequences]
        fulls = [seq[0] for seq in sequences]
        sampled = {r.windows_rendered for r in runs}
        k = int(statistics.median(r.windows_rendered for r in runs))
        wall_ratio = statistics.median(r.wall / f.wall for r, f in zip(runs, fulls))
        seconds_ratio = statistics.median(r.seconds / f.seconds for r, f in zip(runs, fulls))
        target = target_for(scenario, k)
        rows.append(Row(
            scenario=scenario, label=label, windows_rendered=k,
            windows_cached=int(statistics.median(r.windows_cached for r in runs)),
            segments_decoded=int(statistics.median(r.segments_decoded for r in runs)),
            planned=int(statistics.median(r.planned for r in runs)),
            wall=statistics.median(r.wall for r in runs),
            seconds=statistics.median(r.seconds for r in runs),
            cpu=statistics.median(r.cpu for r in runs),
            wall_ratio=wall_ratio, seconds_ratio=seconds_ratio, target=target,
            wall_pass=meets(scenario, wall_ratio, target),
            seconds_pass=meets(scenario, seconds_ratio, target),
            consistent=len(sampled) == 1 and all(r.planned == r.windows_rendered for r in runs)))
    return rows


def verdict(passed: bool | None) -> str:
    """PASS, MISS, or nothing where there is no target."""
    return "" if passed is None else ("PASS" if passed else "MISS")


def target_text(row: Row) -> str:
    """The target as a bound on the ratio, e.g. "<= 1/8 + 0.10 = 0.225"."""
    if row.target is None:
        return ""
    if row.scenario == "noop":
        return f"< {row.target:.2f}"
    return f"<= {row.windows_rendered}/{WINDOWS} + {EDIT_SLACK:.2f} = {row.target:.3f}"


def markdown_table(rows: list[Row]) -> str:
    """The figures as a Markdown table for the README."""
    header = ["render", "windows sampled / cached", "wall", "ratio", "in-process", "ratio",
              "target", "wall", "in-process"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        target = target_text(row).replace("<=", "≤")
        lines.append(f"| {row.label} | {row.windows_rendered} / {row.windows_cached} "
                     f"| {row.wall:.2f} s | {row.wall_ratio:.3f} | {row.seconds:.2f} s "
                     f"| {row.seconds_ratio:.3f} | {target} | {verdict(row.wall_pass)} "
                     f"| {verdict(row.seconds_pass)} |")
    return "\n".join(lines)


def print_report(rows: list[Row], sequences: list[list[Run]], startup: float,
                 load_before: float, args: argparse.Namespace) -> None:
    """The figures as text, the targets' verdicts and the Markdown table, on stdout."""
    print(f"tiny model, {args.size}, {args.steps} steps, {args.sampling} sampling, "
          f"{WINDOWS} windows (one per section); median of {args.repeat} sequence(s), "
          "each from an empty cache, every render a fresh process")
    peak_load = max(r.load_after for seq in sequences for r in seq)
    print(f"{os.cpu_count()} CPUs; 1-minute load average {load_before:.2f} before the first "
          f"render, at most {peak_load:.2f} after one (a render itself adds about "
          f"{os.cpu_count()}; more means other work slowed these figures)")
    print()
    print(f"{'render':<30} {'sampled':>7} {'cached':>6} {'decoded':>7} | {'wall s':>8} "
          f"{'ratio':>6} | {'render s':>8} {'ratio':>6} | {'cpu s':>7}")
    for row in rows:
        note = "" if row.consistent else "  (varied between repeats or disagreed with plan)"
        print(f"{row.label:<30} {row.windows_rendered:>7} {row.windows_cached:>6} "
              f"{row.segments_decoded:>7} | {row.wall:>8.2f} {row.wall_ratio:>6.3f} | "
              f"{row.seconds:>8.2f} {row.seconds_ratio:>6.3f} | {row.cpu:>7.2f}{note}")
    print()
    print("targets (ratio to the full render): no-op < 0.05; "
          f"an edit sampling k windows <= k/{WINDOWS} + {EDIT_SLACK:.2f}")
    for row in rows[1:]:
        print(f"  {row.label:<30} {target_text(row):<24} wall {verdict(row.wall_pass)} "
              f"({row.wall_ratio:.3f})  in-process {verdict(row.seconds_pass)} "
              f"({row.seconds_ratio:.3f})")
    print()
    print("Wall times include Python start-up and imports, outside the renderer's control: a "
          f"process that only imports torch and the command line takes {startup:.2f} s here (a "
          "render that finds everything up to date may not need torch at all). The in-process "
          "figure is the JSON summary's `seconds`: the command's own clock, started once the "
          "shot files are loaded, so interpreter start-up and the command's own imports fall "
          "outside it (torch, where it is imported only once a window must be sampled, falls "
          "inside).")
    print()
    print(markdown_table(rows))


def report_json(rows: list[Row], sequences: list[list[Run]], startup: float,
                load_before: float, args: argparse.Namespace) -> dict:
    """The figures, every run and the Markdown table as one JSON object."""
    return {"model": "tiny", "size": args.size, "steps": args.steps, "sampling": args.sampling,
            "windows": WINDOWS, "repeat": args.repeat, "cpus": os.cpu_count(),
            "load_before": load_before, "startup_seconds": startup,
            "targets": {"noop_below": NOOP_TARGET, "edit_slack": EDIT_SLACK},
            "rows": [asdict(r) for r in rows],
            "runs": [[asdict(r) for r in seq] for seq in sequences],
            "markdown": markdown_table(rows)}


def parse_size(text: str) -> str:
    """Check a --size value: WIDTHxHEIGHT, as the shot's `size` key takes it."""
    if not re.fullmatch(r"\d+x\d+", text):
        raise argparse.ArgumentTypeError(f"size must be WIDTHxHEIGHT, not {text!r}")
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--size", type=parse_size, default="256x256", help="WIDTHxHEIGHT")
    parser.add_argument("--sampling", choices=["inverted", "forward", "endpoints-first"],
                        default="inverted")
    parser.add_argument("--repeat", "--repeats", dest="repeat", type=int, default=1,
                        help="run the whole sequence N times, each from an empty cache")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")

    # A TERM (a timeout, a scheduler) unwinds like Ctrl-C: the running render is killed and
    # the temporary folder removed.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    load_before = os.getloadavg()[0]
    sequences, startups = [], []
    for i in range(args.repeat):
        log(f"sequence {i + 1} of {args.repeat}")
        runs, startup = run_sequence(args.size, args.steps, args.sampling)
        sequences.append(runs)
        startups.append(startup)
    rows = summarise(sequences)
    startup = statistics.median(startups)
    if args.json:
        json.dump(report_json(rows, sequences, startup, load_before, args), sys.stdout,
                  indent=2)
        print()
    else:
        print_report(rows, sequences, startup, load_before, args)


if __name__ == "__main__":
    main()
