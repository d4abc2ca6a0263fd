"""benchmarks/gpu.py: its dry run (the tiny model on the CPU, through the same functions as the
full-size run) prints the whole table, and without a GPU the full run refuses in one line."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "gpu.py"
MEASURED = ["ours, TeaCache off", "ours, TeaCache 0.1", "ours, TeaCache 0.15",
            "diffusers pipeline"]
NUMBER = r"\d+(?:\.\d+)?"


def gpu_benchmark(*args: str, env: dict[str, str] | None = None
                  ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=REPO, capture_output=True,
                          text=True, timeout=300, env={**os.environ, **(env or {})})


def cells(stdout: str, label: str) -> list[str]:
    """The cells of the table row whose first cell is ``label``."""
    for line in stdout.splitlines():
        parts = [cell.strip() for cell in line.strip().strip("│").split("│")]
        if parts and parts[0] == label:
            return parts[1:]
    raise AssertionError(f"no row {label!r} in:\n{stdout}")


def test_dry_run_prints_every_row_with_figures() -> None:
    result = gpu_benchmark("--dry-run")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "dry run" in out and "torch" in out and "diffusers" in out
    for label in MEASURED:
        calls, skipped, sampling, decode, per_frame, ratio, peak = cells(out, label)
        assert calls == "4"  # the dry run's steps: one call each
        assert re.fullmatch(r"\d+", skipped) and int(skipped) < 4
        for figure in (sampling, decode, per_frame, ratio):
            assert re.fullmatch(NUMBER, figure), (label, figure)
        assert float(sampling) > 0 and float(decode) > 0 and float(ratio) > 0
        assert re.fullmatch(NUMBER, peak) or peak == "—"
    assert cells(out, "diffusers pipeline")[5] == "1.000"
    assert cells(out, "FramePack, RTX 4090 (published)")[4] == "2.5"
    assert cells(out, "FramePack + TeaCache, RTX 4090 (published)")[4] == "1.5"
    # The full-size configs were built on the meta device: 12.874 B transformer parameters.
    assert "transformer 12.874 B" in " ".join(out.split())


def test_full_run_without_gpu_exits_2_in_one_line() -> None:
    result = gpu_benchmark(env={"CUDA_VISIBLE_DEVICES": ""})
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "CUDA GPU" in lines[0] and "--dry-run" in lines[0]
