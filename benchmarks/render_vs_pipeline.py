"""Our renderer against diffusers' HunyuanVideoFramepackPipeline on the same tiny model.

For 1, 4 and 8 windows at 256x256 (inverted sampling, Euler, 25 steps by default), each
measurement runs in a fresh process so peak memory (max RSS) is that run's alone:
- pipeline: HunyuanVideoFramepackPipeline built from our tiny components, output_type="np"
  (it keeps the whole decoded video in memory, as it must to return it);
- ours: `LocalExecutor` with an empty cache, writing an .mp4, models built the same way.
Model construction is excluded from both timings; both include prompt and image encoding,
sampling and decoding (ours also includes writing the .mp4 and its cache entries).

    python benchmarks/render_vs_pipeline.py [--steps 25] [--windows 1 4 8]
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
SIZE = 256


def child(kind: str, windows: int, steps: int, workdir: Path) -> dict:
    import torch
    from PIL import Image

    from framepack_render.store import LocalStore
    from framepack_render.plan import build_plan
    from framepack_render.run.executor import LocalExecutor
    from framepack_render.engines.framepack.models import ModelPool
    from framepack_render.shot import load

    torch.set_num_threads(torch.get_num_threads())
    image = workdir / "start.png"
    Image.open(REPO / "examples/quickstart/images/start.png").resize((SIZE, SIZE)).save(image)
    shot_file = workdir / "shot.yaml"
    shot_file.write_text(
        f"model: tiny\nimage: start.png\noutput: out.mp4\nsize: {SIZE}x{SIZE}\nsteps: {steps}\n"
        f"sampler: euler\nnoise: sequential\nprompt: a red ball rolls\n"
        f"duration: {{frames: {36 * windows}}}\n")
    shot = load(shot_file).shots[0]
    pool = ModelPool(shot.model, "cpu")
    for name in ("transformer", "vae", "text_encoder", "text_encoder_2", "image_encoder"):
        getattr(pool, name)
    rss_models = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    if kind == "ours":
        LocalExecutor(pool, LocalStore(workdir / "cache")).render(build_plan(shot))
        frames = None
    else:
        from diffusers import FlowMatchEulerDiscreteScheduler, HunyuanVideoFramepackPipeline

        pipe = HunyuanVideoFramepackPipeline(
            text_encoder=pool.text_encoder, tokenizer=pool.tokenizer,
            transformer=pool.transformer, vae=pool.vae,
            scheduler=FlowMatchEulerDiscreteScheduler(use_dynamic_shifting=True),
            text_encoder_2=pool.text_encoder_2, tokenizer_2=pool.tokenizer_2,
            image_encoder=pool.image_encoder, feature_extractor=pool.feature_extractor)
        pipe.set_progress_bar_config(disable=True)
        video = pipe(image=Image.open(image), prompt="a red ball rolls", height=SIZE, width=SIZE,
                     num_frames=33 * windows, num_inference_steps=steps, guidance_scale=10.0,
                     generator=torch.Generator("cpu").manual_seed(31337), output_type="np",
                     prompt_template=pool.prompt_template).frames[0]
        frames = len(video)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"kind": kind, "windows": windows, "seconds": seconds, "peak_mb": peak / 1024,
            "models_mb": rss_models / 1024, "frames": frames}


def measure(kind: str, windows: int, steps: int, repeats: int) -> dict:
    """The median run by wall time, each in a fresh process (timings vary by about 10%)."""
    runs = []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as tmp:
            result = subprocess.run(
                [sys.executable, __file__, "--child", kind, str(windows), str(steps), tmp],
                capture_output=True, text=True, check=True)
        runs.append(json.loads(result.stdout.strip().splitlines()[-1]))
    runs.sort(key=lambda r: r["seconds"])
    median = dict(runs[len(runs) // 2])
    median["peak_mb"] = sorted(r["peak_mb"] for r in runs)[len(runs) // 2]
    return median


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--windows", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, windows, steps, workdir = args.child
        print(json.dumps(child(kind, int(windows), int(steps), Path(workdir))))
        return
    rows = {}
    print(f"tiny model, {SIZE}x{SIZE}, {args.steps} steps, inverted, euler; median of "
          f"{args.repeats} fresh processes")
    print(f"{'windows':>7} {'frames':>6} | {'pipeline s':>10} {'ours s':>8} {'ratio':>6} | "
          f"{'pipeline MB':>11} {'ours MB':>8}")
    for windows in args.windows:
        pipe = measure("pipeline", windows, args.steps, args.repeats)
        ours = measure("ours", windows, args.steps, args.repeats)
        rows[windows] = (pipe, ours)
        print(f"{windows:>7} {36 * windows + 1:>6} | {pipe['seconds']:>10.2f} "
              f"{ours['seconds']:>8.2f} {ours['seconds'] / pipe['seconds']:>6.3f} | "
              f"{pipe['peak_mb']:>11.0f} {ours['peak_mb']:>8.0f}")
    if 1 in rows and max(rows) > 1:
        most = max(rows)
        growth = rows[most][1]["peak_mb"] / rows[1][1]["peak_mb"]
        pipe_growth = rows[most][0]["peak_mb"] / rows[1][0]["peak_mb"]
        print(f"peak memory at {most} windows vs 1: ours x{growth:.3f}, pipeline x{pipe_growth:.3f}")


if __name__ == "__main__":
    main()
