"""The driver of a farm render killed with SIGKILL mid-shot: the cache stays consistent and the
same command run again resumes from it. The driver is a real `framepack render --farm
HOST:PORT` process connected to the session's Ray cluster (its own module, so that no other
test's workers hold the cluster's GPU slots)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from framepack_render.plan import build_plan
from framepack_render.shot import load
from framepack_render.store import LocalStore

from .conftest import run, shot_text, write

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def test_a_killed_driver_leaves_the_cache_consistent_and_a_rerun_resumes(
        ray_cluster, folder, tmp_path, capsys):
    sections = "".join(f"\n  - {{prompt: part {i}, duration: 1.2s}}" for i in range(4))
    shot = write(folder, "long.yaml", shot_text(output="long/", seed="41", steps="12",
                                                sections=sections))
    keys = {w.key for w in build_plan(load(shot).shots[0]).windows}
    cache = tmp_path / "cache"
    store = LocalStore(cache)
    address = ray_cluster.get_runtime_context().gcs_address
    command = [sys.executable, "-m", "framepack_render", "render", str(shot), "--farm",
               address, "--cache", str(cache), "--json", "--no-preview"]

    driver = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 180
        while sum(store.has("window", k) for k in keys) < 1 and driver.poll() is None:
            assert time.monotonic() < deadline, "no window was committed"
            time.sleep(0.02)
        kept = sum(store.has("window", k) for k in keys)
        os.kill(driver.pid, signal.SIGKILL)
    finally:
        driver.wait(timeout=60)
    assert driver.returncode == -signal.SIGKILL and 1 <= kept < 4
    assert not (folder / "long").exists()  # no output from the killed run

    assert run(capsys, "cache", "verify", "--cache", cache)[0] == 0
    again = subprocess.run(command, capture_output=True, text=True, timeout=240)
    assert again.returncode == 0, again.stderr
    summary = json.loads(again.stdout)
    assert summary["windows_cached"] >= kept
    assert summary["windows_cached"] + summary["windows_rendered"] == 4
    assert len(list((folder / "long").glob("*.png"))) == 4 * 36 + 1
    assert run(capsys, "cache", "verify", "--cache", cache)[0] == 0
