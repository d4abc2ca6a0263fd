"""FLUX.1 Deforum: our renderer against the seed's way (diffusers' FluxImg2ImgPipeline called
frame after frame) on the same tiny-flux components, then what an edit costs us.

Each measurement runs in a fresh process, so peak memory (max RSS) is that run's alone, with
torch, diffusers and transformers imported before the clock starts:
- pipeline: FluxImg2ImgPipeline built from tiny-flux, each frame img2img of the previous one
  (no camera: the pipeline has none), frames kept in a list as a script would;
- ours: `framepack render` of a tiny-flux shot with the same prompt, steps and strength plus a
  zoom schedule, from an empty cache, writing an .mp4 and every frame's cache entry; then the
  same shot with its second prompt keyframe edited (only the frames from there on render),
  then unchanged (nothing renders).
A cold render of ours builds its models; the pipeline is timed both ways (with building its
components, and its frame loop alone).

    python benchmarks/flux_deforum.py [--frames 24] [--size 128] [--steps 4]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PROMPT = "a red fox in the snow"
STRENGTH = 0.6


def shot_text(frames: int, size: int, steps: int, second: str) -> str:
    return (f"engine: flux-deforum\nmodel: tiny-flux\nimage: init.png\noutput: out.mp4\n"
            f"size: {size}x{size}\nframes: {frames}\nfps: 12\nsteps: {steps}\n"
            f"strength: {STRENGTH}\nseed: 7\nzoom: \"0:(1.0), {frames}:(1.04)\"\n"
            f"prompts: {{0: '{PROMPT}', {frames // 2}: '{second}'}}\n")


def child_pipeline(frames: int, size: int, steps: int, workdir: Path) -> dict:
    import torch
    from diffusers import FluxImg2ImgPipeline
    from PIL import Image

    from framepack_render.engines.flux_deforum.sampler import make_scheduler
    from framepack_render.engines.flux_deforum.tiny import build_tiny

    built = time.perf_counter()
    pipe = FluxImg2ImgPipeline(scheduler=make_scheduler("tiny-flux"), **build_tiny(0))
    pipe.set_progress_bar_config(disable=True)
    image = Image.open(workdir / "init.png").convert("RGB")
    started = time.perf_counter()
    video = []
    for frame in range(frames):
        image = pipe(PROMPT, image=image, strength=STRENGTH, num_inference_steps=steps,
                     guidance_scale=3.5, height=size, width=size,
                     generator=torch.Generator().manual_seed(7)).images[0]
        video.append(image)
    done = time.perf_counter()
    return {"seconds": done - started, "with_models": done - built}


def child_ours(frames: int, size: int, steps: int, workdir: Path) -> dict:
    # Imported before timing, as the pipeline's are: the timings compare work, not imports.
    import diffusers  # noqa: F401
    import transformers  # noqa: F401

    from framepack_render.cli import main
    from framepack_render.engines.flux_deforum import models, render, sampler, tiny  # noqa: F401

    shot = workdir / "shot.yaml"
    times = {}
    for name, second in (("cold", "a white owl in the snow"), ("edit", "a grey wolf"),
                         ("unchanged", "a grey wolf")):
        shot.write_text(shot_text(frames, size, steps, second))
        started = time.perf_counter()
        out = workdir / f"{name}.json"
        with open(out, "w") as handle:
            old, sys.stdout = sys.stdout, handle
            try:
                code = main(["render", str(shot), "--cache", str(workdir / "cache"), "--json",
                             "--no-preview"])
            finally:
                sys.stdout = old
        assert code == 0, f"render failed ({name})"
        summary = json.loads(out.read_text())
        times[name] = {"seconds": time.perf_counter() - started,
                       "rendered": summary["windows_rendered"]}
    return times


def run_child(kind: str, frames: int, size: int, steps: int) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        from PIL import Image

        Image.open(REPO / "examples/flux-deforum/images/init.png").convert("RGB").resize(
            (size, size)).save(Path(folder) / "init.png")
        result = subprocess.run([sys.executable, __file__, "--child", kind, "--frames",
                                 str(frames), "--size", str(size), "--steps", str(steps),
                                 "--workdir", folder], capture_output=True, text=True,
                                check=True)
        return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--child", choices=("pipeline", "ours"))
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args()
    if args.child:
        work = {"pipeline": child_pipeline, "ours": child_ours}[args.child]
        result = work(args.frames, args.size, args.steps, args.workdir)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps({"result": result, "peak_mb": peak}))
        return
    pipeline = run_child("pipeline", args.frames, args.size, args.steps)
    ours = run_child("ours", args.frames, args.size, args.steps)
    frames = args.frames
    print(f"{frames} frames, {args.size}x{args.size}, {args.steps} steps, strength {STRENGTH}, "
          "tiny-flux, CPU")
    print(f"{'':32}{'seconds':>10}{'frames':>8}{'peak MB':>10}")
    print(f"{'pipeline, building its models':32}{pipeline['result']['with_models']:>10.2f}"
          f"{frames:>8}{pipeline['peak_mb']:>10.0f}")
    print(f"{'pipeline, frame loop alone':32}{pipeline['result']['seconds']:>10.2f}{frames:>8}")
    for name, label in (("cold", "ours, empty cache, cold"), ("edit", "ours, 2nd prompt edited"),
                        ("unchanged", "ours, unchanged")):
        run = ours["result"][name]
        peak = f"{ours['peak_mb']:.0f}" if name == "cold" else ""  # one process, 3 renders
        print(f"{label:32}{run['seconds']:>10.2f}{run['rendered']:>8}{peak:>10}")


if __name__ == "__main__":
    main()
