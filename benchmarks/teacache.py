"""What TeaCache saves: skipped transformer calls and sampling time on a tiny-model shot.

A temporary shot holds 4 sections of 1.2 s (36 frames at 30 fps: one generation window each)
with distinct prompts, the quickstart's start image, the tiny model, a fixed seed and an .mp4
output. It is rendered three times, with `teacache:` set to false, 0.1 and 0.15; each render
is a fresh `python -m framepack_render render SHOT --cache DIR --json --no-preview` process
with its own empty cache folder, so nothing is reused between renders.

From each render's JSON summary (`shots[0]`) it reads the transformer calls made, how many of
them TeaCache skipped (answered from its cached residual) and the shot's own timings:
`sampling` (conditioning and the denoising loops: the part TeaCache affects),
`decode_and_encode` and `total`. `--repeat N` renders each configuration N times (default 2)
and reports medians; the configurations are interleaved (off, 0.1, 0.15, off, ...) so that
changing load on the machine affects them alike. The ratios are to the TeaCache-off median.
Progress lines on stderr also give each render's CPU time and the load average: on a small
machine shared with other work, torch's threads compete for the cores and sampling times of
identical renders can vary several-fold (seen here: 4.6 s and 30 s), so rerun when the load
average is low. `--threads N` sets the renders' torch threads (OMP_NUM_THREADS).

TeaCache is lossy, so it also reads the three .mp4s (the first repeat's) with PyAV and prints
the mean absolute pixel difference (RGB, 0-255) and the PSNR of each against the off render;
with --repeat 2 or more, also the second off render against the first: the noise floor, which
is not always zero, as the .mp4 encode itself is not always bit-reproducible.

    python benchmarks/teacache.py [--steps 25] [--size 256x256] [--repeat 2] [--threads N]
                                  [--keep DIR]
"""

from __future__ import annotations

import argparse
import math
import os
import re
import shutil
import signal
import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml
from incremental_render import run_render  # this folder is on sys.path

REPO = Path(__file__).resolve().parents[1]
START_IMAGE = REPO / "examples" / "quickstart" / "images" / "start.png"
SECTION_DURATION = "1.2s"  # 36 frames at 30 fps: exactly one window
PROMPTS = [
    "a sailing boat drifts on calm blue water",
    "the sail fills with wind and the boat speeds up",
    "waves splash against the bow of the boat",
    "the boat glides away toward the horizon",
]
THRESHOLDS: list[float | None] = [None, 0.1, 0.15]  # None: TeaCache off
SEED = 31337


@dataclass
class Run:
    """One render process: what its JSON summary reported for the shot."""

    calls: int
    skipped: int
    share: float | None
    sampling: float
    decode: float
    total: float
    cpu: float  # user + system seconds of the render process


def log(message: str) -> None:
    """Progress goes to stderr, so stdout holds only the report."""
    print(message, file=sys.stderr, flush=True)


def label(threshold: float | None) -> str:
    return "off" if threshold is None else f"{threshold:g}"


def write_shot(path: Path, output: str, threshold: float | None, size: str, steps: int) -> None:
    """Write the shot file: one section of SECTION_DURATION per prompt."""
    shot = {
        "version": 1,
        "model": "tiny",
        "output": output,
        "size": size,
        "fps": 30,
        "seed": SEED,
        "steps": steps,
        "teacache": False if threshold is None else threshold,
        "image": "start.png",
        "sections": [{"prompt": p, "duration": SECTION_DURATION} for p in PROMPTS],
    }
    path.write_text(yaml.safe_dump(shot, sort_keys=False, width=200))


def render(folder: Path, threshold: float | None, size: str, steps: int, repeat: int,
           threads: int | None) -> Run:
    """Render the shot at one threshold in a fresh process with a fresh, empty cache."""
    name = f"teacache-{label(threshold)}-{repeat}"
    shot = folder / f"{name}.yaml"
    cache = folder / f"cache-{name}"
    output = folder / "renders" / f"{name}.mp4"
    for stale in (output, output.with_name(output.name + ".json")):  # from an earlier --keep
        stale.unlink(missing_ok=True)
    write_shot(shot, f"renders/{name}.mp4", threshold, size, steps)
    summary, stderr, _, cpu = run_render(name, shot, cache, threads)
    (folder / f"{name}.log").write_text(stderr)  # per-window timings, kept by --keep
    shots = summary["shots"]
    assert len(shots) == 1, f"expected one shot, got {len(shots)}"
    s = shots[0]
    assert s["windows_cached"] == 0, f"{name}: {s['windows_cached']} windows came from cache"
    assert s["windows_rendered"] == len(PROMPTS), \
        f"{name}: {s['windows_rendered']} windows sampled, expected {len(PROMPTS)}"
    shutil.rmtree(cache, ignore_errors=True)  # keep the temporary folder small
    seconds = s["seconds"]
    return Run(calls=int(s["transformer_calls"]), skipped=int(s["teacache_skipped"]),
               share=s["teacache_skipped_share"], sampling=float(seconds["sampling"]),
               decode=float(seconds.get("decode_and_encode", 0.0)),
               total=float(seconds["total"]), cpu=cpu)


def read_frames(path: Path):
    """Every frame of a video as one uint8 array (frames, height, width, 3)."""
    import av
    import numpy as np

    with av.open(str(path)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    return np.stack(frames)


def difference(reference, other) -> tuple[float, float, str]:
    """Mean absolute difference (0-255), PSNR in dB, and a note if the frame counts differ."""
    import numpy as np

    note = ""
    if len(reference) != len(other):
        note = f"frame counts differ: {len(reference)} vs {len(other)}"
    n = min(len(reference), len(other))
    a = reference[:n].astype(np.float64)
    b = other[:n].astype(np.float64)
    mad = float(np.abs(a - b).mean())
    mse = float(((a - b) ** 2).mean())
    psnr = math.inf if mse == 0 else 10 * math.log10(255.0 ** 2 / mse)
    return mad, psnr, note


def ratio(value: float, reference: float) -> str:
    return f"{value / reference:.3f}" if reference > 0 else "n/a"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--size", default="256x256", help="WIDTHxHEIGHT")
    parser.add_argument("--repeat", "--repeats", dest="repeat", type=int, default=2,
                        help="render each configuration N times; medians are reported")
    parser.add_argument("--threads", type=int, metavar="N",
                        help="torch CPU threads in the renders (OMP_NUM_THREADS; default: "
                             "torch's own choice)")
    parser.add_argument("--keep", metavar="DIR", type=Path,
                        help="work in DIR and keep the shots and renders there")
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if not re.fullmatch(r"\d+x\d+", args.size):
        parser.error(f"--size must be WIDTHxHEIGHT, not {args.size!r}")

    # A TERM (a timeout, a scheduler) unwinds like Ctrl-C: the running render is killed and
    # the temporary folder removed.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    import torch

    with tempfile.TemporaryDirectory(prefix="teacache-bench-") as tmp:
        folder = Path(tmp) if args.keep is None else args.keep
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(START_IMAGE, folder / "start.png")
        load_before = os.getloadavg()[0]
        runs: dict[float | None, list[Run]] = {t: [] for t in THRESHOLDS}
        for i in range(args.repeat):
            for threshold in THRESHOLDS:
                run = render(folder, threshold, args.size, args.steps, i, args.threads)
                log(f"  repeat {i + 1}/{args.repeat} teacache {label(threshold):>4}: "
                    f"{run.calls} calls, {run.skipped} skipped, sampling {run.sampling:.2f} s, "
                    f"total {run.total:.2f} s, cpu {run.cpu:.2f} s, load {os.getloadavg()[0]:.2f}")
                runs[threshold].append(run)
        load_after = os.getloadavg()[0]
        videos = {t: read_frames(folder / "renders" / f"teacache-{label(t)}-0.mp4")
                  for t in THRESHOLDS}
        # Two off renders should match exactly; any difference is the noise floor.
        off_again = (read_frames(folder / "renders" / "teacache-off-1.mp4")
                     if args.repeat > 1 else None)

    threads = args.threads if args.threads is not None else torch.get_num_threads()
    print(f"machine: {os.cpu_count()} CPUs, torch {torch.__version__} "
          f"({threads} threads per render), Python {sys.version.split()[0]}; "
          f"1-minute load average {load_before:.2f} before, {load_after:.2f} after")
    print(f"tiny model, {args.size}, {args.steps} steps, {len(PROMPTS)} one-window sections of "
          f"{SECTION_DURATION}, seed {SEED}; median of {args.repeat} fresh process(es) per "
          "configuration, each with an empty cache")
    print()
    header = (f"{'threshold':>9} | {'calls':>5} | {'skipped':>7} | {'share':>6} | "
              f"{'sampling s':>10} | {'ratio':>6} | {'total s':>8} | {'ratio':>6}")
    print(header)
    print("-" * len(header))
    off = runs[None]
    off_sampling = statistics.median(r.sampling for r in off)
    off_total = statistics.median(r.total for r in off)
    for threshold in THRESHOLDS:
        rs = runs[threshold]
        calls = statistics.median(r.calls for r in rs)
        skipped = statistics.median(r.skipped for r in rs)
        shares = [r.share for r in rs if r.share is not None]
        share = f"{statistics.median(shares):.1%}" if shares else "-"
        sampling = statistics.median(r.sampling for r in rs)
        total = statistics.median(r.total for r in rs)
        varied = "" if len({(r.calls, r.skipped) for r in rs}) == 1 else "  (varied)"
        print(f"{label(threshold):>9} | {calls:>5g} | {skipped:>7g} | {share:>6} | "
              f"{sampling:>10.2f} | {ratio(sampling, off_sampling):>6} | {total:>8.2f} | "
              f"{ratio(total, off_total):>6}{varied}")
    print()
    reference = videos[None]
    print(f"frames vs TeaCache off ({len(reference)} frames of "
          f"{reference.shape[2]}x{reference.shape[1]}, RGB 0-255, first repeat's .mp4):")
    for threshold in THRESHOLDS[1:]:
        mad, psnr, note = difference(reference, videos[threshold])
        print(f"  {label(threshold):>5}: mean abs diff {mad:6.2f}   PSNR {psnr:6.2f} dB"
              + (f"  ({note})" if note else ""))
    if off_again is not None:
        mad, psnr, note = difference(reference, off_again)
        print(f"  {'off':>5}: mean abs diff {mad:6.2f}   PSNR {psnr:6.2f} dB  "
              "(the second off render: the noise floor)" + (f"  ({note})" if note else ""))
    print()
    print("sampling s: the shot's `seconds.sampling` (conditioning and the denoising loops, "
          "models loaded on first use); total s adds decoding the latents and writing the .mp4. "
          "Ratios are to the TeaCache-off median.")


if __name__ == "__main__":
    main()
