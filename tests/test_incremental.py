"""Incremental rendering: lazy components, resident models, cancellation, kill -9 and resume,
processes sharing a cache, watch mode with real file events, and `framepack cache`."""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from framepack_render.store import LocalStore
from framepack_render.plan import build_plan
from framepack_render.run.events import Cancel, Observer, RenderCancelled
from framepack_render.run.executor import LocalExecutor, Session
from framepack_render.engines.framepack.models import ModelPool
from framepack_render.shot import load
from framepack_render.shot.errors import Mark
from framepack_render.shot.model import ModelSpec

from .conftest import HEAVY, run, run_without, shot_text, write

ENCODERS = {"tokenizer", "text_encoder", "tokenizer_2", "text_encoder_2", "prompt_template"}
IMAGE_ENCODER = {"image_encoder", "feature_extractor"}


def sections(*prompts: str, steps: int | None = None) -> str:
    """One 1.2 s section (one window) per prompt."""
    extra = f", steps: {steps}" if steps else ""
    return "\n" + "".join(f"  - {{prompt: {p}, duration: 1.2s{extra}}}\n" for p in prompts)


def fresh_pool() -> ModelPool:
    return ModelPool(ModelSpec("tiny", Mark("test")), "cpu")


def render_with(pool: ModelPool, path: Path, cache: Path, **kwargs):
    return LocalExecutor(pool, LocalStore(cache), **kwargs).render(build_plan(load(path).shots[0]))


def cli(*args: object, timeout: float = 300, **kwargs) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "framepack_render", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, **kwargs)


def pngs(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.png"))}


# ---------------------------------------------------------------- lazy components


def test_each_change_loads_only_the_components_it_needs(folder, tmp_path):
    path = write(folder, "shot.yaml", shot_text(output="out/v.mp4"))
    first = render_with(fresh_pool(), path, tmp_path / "c")
    assert set(first.components_loaded) == ENCODERS | IMAGE_ENCODER | {"transformer", "vae"}

    # A new prompt: the text encoders, the transformer and the VAE to decode; no image encoder.
    write(folder, "shot.yaml", shot_text(output="out/v.mp4").replace("red ball", "blue ball"))
    pool = fresh_pool()
    result = render_with(pool, path, tmp_path / "c")
    assert result.windows_rendered == 2
    assert pool.loaded == ENCODERS | {"transformer", "vae"}

    # A new seed: prompts and images are cached, so only the transformer and the VAE.
    write(folder, "shot.yaml", shot_text(output="out/v.mp4", seed="8"))
    pool = fresh_pool()
    assert render_with(pool, path, tmp_path / "c").windows_rendered == 3
    assert pool.loaded == {"transformer", "vae"}

    # Only the frame rate: every window and decoded segment is cached; nothing loads.
    write(folder, "shot.yaml", shot_text(output="out/v.mp4", seed="8", fps="24"))
    pool = fresh_pool()
    result = render_with(pool, path, tmp_path / "c")
    assert (result.windows_rendered, result.segments_decoded, result.outputs_written) == (0, 0, 1)
    assert pool.loaded == set()


def test_one_process_loads_each_component_once_for_many_shots(folder, capsys, tmp_path):
    a = write(folder, "a.yaml", shot_text(output="out/a.mp4"))
    b = write(folder, "b.yaml", shot_text(output="out/b.mp4", seed="3",
                                          sections=sections("a green cube spins")))
    code, out, err = run(capsys, "render", a, b, "--cache", tmp_path / "c", "--json")
    assert code == 0, err
    shots = json.loads(out)["shots"]
    assert "transformer" in shots[0]["components_loaded"]
    assert shots[1]["windows_rendered"] == 1 and shots[1]["components_loaded"] == []


def test_a_session_shares_prompt_encodings_between_shots(folder, tmp_path):
    session = Session(LocalStore(tmp_path / "c"))
    a = write(folder, "a.yaml", shot_text(output="out/a.mp4"))
    session.render(build_plan(load(a).shots[0]))
    encodings = len(session.memo)
    b = write(folder, "b.yaml", shot_text(output="out/b.mp4", seed="3"))
    session.render(build_plan(load(b).shots[0]))
    assert encodings > 0 and len(session.memo) == encodings  # same prompts, same image


def test_an_unchanged_shot_renders_without_importing_torch(folder, capsys, tmp_path):
    path = write(folder, "shot.yaml", shot_text(output="out/v.mp4"))
    assert run(capsys, "render", path, "--cache", tmp_path / "c")[0] == 0
    result = run_without(HEAVY, """
        sys.exit(main(['render', sys.argv[1], '--cache', sys.argv[2], '--json']))
    """, path, tmp_path / "c")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["windows_rendered"] == 0 and summary["shots"][0]["outputs_up_to_date"] == 1


def test_sequential_noise_decodes_again_from_cached_windows_identically(folder, tmp_path):
    """With one generator for everything, an image encoded again for a decode from cached
    windows is drawn from the generator at its place, as in the first render."""
    path = write(folder, "shot.yaml", shot_text(output="out/", noise="sequential"))
    render_with(fresh_pool(), path, tmp_path / "c")
    before = pngs(folder / "out")
    store = LocalStore(tmp_path / "c")
    images = {e.key: store.read("image", e.key, "tensors.safetensors")
              for e in store.entries(("image",))}
    for entry in list(store.entries(("frames", "image"))):
        store.discard(entry.kind, entry.key)
    shutil.rmtree(folder / "out")
    result = render_with(fresh_pool(), path, tmp_path / "c")
    assert (result.windows_rendered, result.segments_decoded) == (0, 3)
    assert {key: store.read("image", key, "tensors.safetensors") for key in images} == images
    assert pngs(folder / "out") == before


# ---------------------------------------------------------------- cancel and kill


class CancelOnSecondWindow(Observer):
    def __init__(self, cancel: Cancel):
        self.cancel = cancel
        self.started = 0

    def window_started(self, node, steps) -> None:
        self.started += 1

    def step(self, node, index) -> None:
        if self.started == 2 and index == 0:
            self.cancel.set()


def test_a_cancelled_render_stops_at_the_next_step_and_the_next_one_resumes(folder, tmp_path):
    path = write(folder, "shot.yaml", shot_text(output="out/v.mp4"))
    cancel = Cancel()
    pool = fresh_pool()
    with pytest.raises(RenderCancelled):
        render_with(pool, path, tmp_path / "c", observer=CancelOnSecondWindow(cancel),
                    cancel=cancel)
    assert not (folder / "out" / "v.mp4").exists()
    result = render_with(pool, path, tmp_path / "c")
    assert (result.windows_cached, result.windows_rendered) == (1, 2)


def test_kill_9_mid_render_loses_at_most_the_window_in_flight(folder, tmp_path):
    text = shot_text(output="out/", steps="40",
                     sections=sections("one", "two", "three", "four", "five", "six"))
    path = write(folder, "shot.yaml", text)
    cache = LocalStore(tmp_path / "c")
    process = subprocess.Popen([sys.executable, "-m", "framepack_render", "render", str(path),
                                "--cache", str(cache.root), "--no-preview"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    while not list(cache.entries(("window",))) and time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read().decode()
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    kept = len(list(cache.entries(("window",))))
    assert 1 <= kept < 6
    assert not (folder / "out").exists()  # no output, not even a partial one

    resumed = cli("render", path, "--cache", cache.root, "--json", "--no-preview")
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads(resumed.stdout)
    assert summary["windows_cached"] == kept and summary["windows_rendered"] == 6 - kept
    assert cli("cache", "verify", "--cache", cache.root).returncode == 0

    # The resumed video is the video an uninterrupted render makes, byte for byte.
    resumed_frames = pngs(folder / "out")
    fresh = cli("render", path, "--cache", tmp_path / "fresh", "--force", "--no-preview")
    assert fresh.returncode == 0, fresh.stderr
    assert pngs(folder / "out") == resumed_frames and len(resumed_frames) == 6 * 36 + 1


def test_two_processes_on_one_cache_never_render_a_window_twice(folder, tmp_path):
    text = shot_text(output="out/", steps="30", sections=sections("one", "two", "three", "four"))
    path = write(folder, "shot.yaml", text)
    store = LocalStore(tmp_path / "c")
    # Hold the first window's lock so that both processes queue on it and then race.
    first = build_plan(load(path).shots[0]).generation_order[0].key
    held = store.lock("window", first)
    held.acquire()
    command = [sys.executable, "-m", "framepack_render", "render", str(path), "--cache",
               str(store.root), "--json", "--no-preview"]
    processes = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True) for _ in range(2)]
    waiting = [threading.Event() for _ in processes]
    logs: list[list[str]] = [[], []]

    def follow(i: int) -> None:
        for line in processes[i].stderr:
            logs[i].append(line)
            if "waiting for another process making window 4" in line:
                waiting[i].set()

    readers = [threading.Thread(target=follow, args=(i,), daemon=True) for i in range(2)]
    for reader in readers:
        reader.start()
    try:
        for i, event in enumerate(waiting):
            assert event.wait(120), "".join(logs[i])
    finally:
        held.release()
    outputs = [p.stdout.read() for p in processes]
    for process in processes:
        process.wait(timeout=300)
    for reader in readers:
        reader.join(timeout=10)
    for process, log in zip(processes, logs):
        assert process.returncode == 0, "".join(log)
    summaries = [json.loads(out) for out in outputs]
    assert sum(s["windows_rendered"] for s in summaries) == 4
    assert all(s["windows_rendered"] + s["windows_cached"] == 4 for s in summaries)
    # The outputs are written once too: the second process finds them up to date.
    assert sum(s["shots"][0]["outputs_written"] for s in summaries) == 1
    verify = cli("cache", "verify", "--cache", store.root, "--json")
    assert json.loads(verify.stdout)["corrupt"] == [] and len(pngs(folder / "out")) == 4 * 36 + 1


# ---------------------------------------------------------------- watch


class Watch:
    """`framepack watch --json` in a subprocess, its events read as they come."""

    def __init__(self, *args: object, cwd: Path):
        self.process = subprocess.Popen(
            [sys.executable, "-m", "framepack_render", "watch", *map(str, args), "--json",
             "--no-preview", "--debounce", "0.3"],
            cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.events: queue.Queue[dict] = queue.Queue()
        self.stderr: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=lambda: self.stderr.extend(self.process.stderr),
                         daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.events.put(json.loads(line))

    def expect(self, *names: str, timeout: float = 120) -> dict:
        """The next event named one of ``names`` (events in between are skipped)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                event = self.events.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail(f"no {names} event; stderr:\n{''.join(self.stderr)}")
            if event["event"] in names:
                return event

    def stop(self) -> int:
        self.process.send_signal(signal.SIGINT)
        return self.process.wait(timeout=30)


def test_watch_rerenders_on_save_survives_an_invalid_save_and_stops_on_ctrl_c(folder, tmp_path):
    write(folder, "look.yaml", "model: tiny\nsize: 64x64\nsteps: 3\nfps: 30\n")
    body = ("extends: look.yaml\nimage: images/start.png\noutput: out/v.mp4\nseed: 7\n"
            "sections:" + sections("a red ball rolls", "the ball stops"))
    shot = write(folder, "shot.yaml", body)
    watch = Watch(folder, "--cache", tmp_path / "c", cwd=folder)
    try:
        assert watch.expect("watching")["shots"] == [str(shot.resolve())]
        first = watch.expect("rendered")
        assert first["windows_rendered"] == 2 and "transformer" in first["components_loaded"]

        # Inverted order: the first section is generated last, so one window re-renders,
        # with every model still in memory.
        shot.write_text(body.replace("a red ball", "a blue ball"))
        edited = watch.expect("rendered")
        assert (edited["windows_rendered"], edited["windows_cached"]) == (1, 1)
        assert edited["components_loaded"] == []

        shot.write_text(body.replace("seed: 7", "sed: 7"))
        invalid = watch.expect("invalid")
        assert invalid["errors"] == ["shot.yaml:4:1: unknown key 'sed'; did you mean 'seed'?"]
        assert watch.process.poll() is None

        shot.write_text(body.replace("seed: 7", "seed: 8"))
        fixed = watch.expect("rendered", "invalid")
        assert fixed["event"] == "rendered" and fixed["windows_rendered"] == 2

        # A template the shot extends is watched too.
        (folder / "look.yaml").write_text("model: tiny\nsize: 64x64\nsteps: 3\nfps: 24\n")
        retimed = watch.expect("rendered")
        assert retimed["windows_rendered"] == 0 and retimed["outputs_written"] == 1
    finally:
        code = watch.stop()
    assert code == 130
    assert "Traceback" not in "".join(watch.stderr)


def test_watch_cancels_a_render_made_stale_by_a_save(folder, tmp_path):
    body = shot_text(output="out/v.mp4", steps="200",
                     sections=sections("one", "two", "three", "four", "five"))
    shot = write(folder, "shot.yaml", body)
    watch = Watch(shot, "--cache", tmp_path / "c", cwd=folder)
    try:
        watch.expect("started")
        deadline = time.monotonic() + 120
        store = LocalStore(tmp_path / "c")
        while not list(store.entries(("window",))) and time.monotonic() < deadline:
            time.sleep(0.05)
        shot.write_text(body.replace("steps: 200", "steps: 3"))
        assert watch.expect("cancelled", "rendered")["event"] == "cancelled"
        result = watch.expect("rendered")
        assert result["windows_rendered"] == 5
    finally:
        assert watch.stop() == 130


# ---------------------------------------------------------------- framepack cache


def test_cache_ls_verify_gc_and_clear(folder, capsys, tmp_path):
    cache = tmp_path / "c"
    path = write(folder, "shot.yaml", shot_text(output="out/v.mp4"))
    assert run(capsys, "render", path, "--cache", cache)[0] == 0
    code, out, _ = run(capsys, "cache", "ls", "--cache", cache, "--json")
    listing = json.loads(out)
    assert code == 0 and listing["kinds"]["window"]["entries"] == 3
    assert listing["bytes"] == sum(k["bytes"] for k in listing["kinds"].values()) > 0

    # verify finds a flipped byte; --discard removes the entry.
    store = LocalStore(cache)
    window = next(store.entries(("window",)))
    data = bytearray((window.path / "tensors.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (window.path / "tensors.safetensors").write_bytes(bytes(data))
    code, out, _ = run(capsys, "cache", "verify", "--cache", cache)
    assert code == 1 and f"corrupt window {window.key}" in out
    assert run(capsys, "cache", "verify", "--cache", cache, "--discard")[0] == 0
    assert not store.has("window", window.key)

    # gc keeps what the shots under a folder use and removes what an old version used.
    before = {(e.kind, e.key) for e in store.entries()}
    write(folder, "shot.yaml", shot_text(output="out/v.mp4", seed="8"))
    assert run(capsys, "render", path, "--cache", cache)[0] == 0
    code, out, _ = run(capsys, "cache", "gc", folder, "--cache", cache, "--json")
    removed = {(e["kind"], e["key"]) for e in json.loads(out)["removed"]}
    assert code == 0 and removed and removed <= before
    assert {k for k, _ in removed} == {"window", "frames"}  # prompts and images still used
    (folder / "out" / "v.mp4").unlink()
    again = json.loads(run(capsys, "render", path, "--cache", cache, "--json")[1])
    assert again["windows_rendered"] == 0 and again["shots"][0]["segments_decoded"] == 0

    # --older-than alone removes entries not used for that long.
    old = time.time() - 3 * 86400
    for entry in store.entries(("prompt",)):
        os.utime(entry.path / "manifest.json", (old, old))
    code, out, _ = run(capsys, "cache", "gc", "--older-than", "2d", "--cache", cache, "--json")
    assert {e["kind"] for e in json.loads(out)["removed"]} == {"prompt"}

    code, _, err = run(capsys, "cache", "clear", "--cache", cache)
    assert code == 2 and "--yes" in err  # not a terminal: needs --yes
    assert run(capsys, "cache", "clear", "--cache", cache, "--yes")[0] == 0
    assert list(store.entries()) == []


def test_cache_gc_removes_nothing_when_a_shot_does_not_load(folder, capsys, tmp_path):
    path = write(folder, "shot.yaml", shot_text(output="out/v.mp4"))
    assert run(capsys, "render", path, "--cache", tmp_path / "c")[0] == 0
    count = len(list(LocalStore(tmp_path / "c").entries()))
    write(folder, "broken.yaml", shot_text(output="out/b.mp4", stpes="3"))
    code, _, err = run(capsys, "cache", "gc", folder, "--cache", tmp_path / "c")
    assert code == 2 and "broken.yaml:" in err and "unknown key 'stpes'" in err
    assert len(list(LocalStore(tmp_path / "c").entries())) == count
    code, _, _ = run(capsys, "cache", "gc", folder, "--cache", tmp_path / "c", "--skip-invalid")
    assert code == 0 and len(list(LocalStore(tmp_path / "c").entries())) == count


@pytest.mark.parametrize("age", ["3", "3x", "-2d", "d"])
def test_cache_gc_rejects_a_bad_age(capsys, tmp_path, age):
    with pytest.raises(SystemExit) as exit_:
        run(capsys, "cache", "gc", "--older-than", age, "--cache", tmp_path)
    assert exit_.value.code == 2 and "--older-than" in capsys.readouterr().err
