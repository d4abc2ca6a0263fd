"""How fast `framepack validate` and `framepack plan` answer, cold, as a user runs them.

Each command runs as a fresh process (interpreter start-up and imports included), several
times; the median wall time is printed. Shots: the quickstart, the 4-way matrix example, and a
generated 120-section, 2-minute shot with keyframes and edits.

    python benchmarks/validate_plan_latency.py
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RUNS = 7


def long_shot(folder: Path) -> Path:
    shutil.copytree(REPO / "examples" / "quickstart" / "images", folder / "images")
    lines = ["model: tiny", "image: {edit: warm}", "end_image: images/end.png", "output: out.mp4",
             "size: 640x608", "sections:"]
    for i in range(120):
        lines.append(f"  - prompt: the red ball rolls, moment {i}")
        lines.append("    duration: 1.2s")
        if i % 10 == 5:
            lines.append("    image: images/middle.png")
    lines += ["edits:", "  - name: warm", "    image: images/start.png",
              "    prompt: the same scene at sunset", "    target_index: 1"]
    path = folder / "long.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def median_seconds(args: list[str], cwd: Path) -> float:
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "framepack_render", *args], cwd=cwd, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    baseline = []
    for _ in range(RUNS):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        baseline.append(time.perf_counter() - start)
    print(f"python start-up alone: {statistics.median(baseline) * 1000:.0f} ms")
    with tempfile.TemporaryDirectory() as tmp:
        cases = {
            "quickstart (3 windows)": REPO / "examples" / "quickstart" / "shot.yaml",
            "matrix example (4 shots x 8 windows)": REPO / "examples" / "matrix" / "shot.yaml",
            "120 sections, 120 windows, 1 edit": long_shot(Path(tmp)),
        }
        print(f"{'shot':40} {'validate':>10} {'plan':>10} {'plan --json':>12}")
        for name, shot in cases.items():
            cache = str(Path(tmp) / "cache")
            figures = [median_seconds(["validate", str(shot)], REPO),
                       median_seconds(["plan", "--cache", cache, str(shot)], REPO),
                       median_seconds(["plan", "--json", "--cache", cache, str(shot)], REPO)]
            print(f"{name:40} " + " ".join(f"{f * 1000:>9.0f}ms" for f in figures[:2])
                  + f" {figures[2] * 1000:>10.0f}ms")


if __name__ == "__main__":
    main()
