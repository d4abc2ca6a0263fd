"""The Ray render farm: real Ray processes on one private cluster (2 CPUs, 2 fake GPUs), tiny
shots. GPU placement, parallel batches equal to local renders, a worker killed with SIGKILL in
the middle of a shot, cancellation, errors from workers, and `render --farm local:2` end to end."""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path

import pytest

from framepack_render.plan import build_plan
from framepack_render.run.events import Cancel, RenderCancelled
from framepack_render.run.farm import Event, Farm, FarmObserver, Outcome
from framepack_render.run.farm.driver import _Job, _Slot
from framepack_render.shot import Shot, load
from framepack_render.store import LocalStore

from .conftest import run, run_without, shot_text, write
from .s3_server import bucket, s3  # noqa: F401 (fixtures)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def one_window(seed: int, **extra: str) -> str:
    return shot_text(output=f"out{seed}/", seed=str(seed), steps="2",
                     prompt=f"a red ball number {seed}", duration="1.2s", **extra)


def sections(*prompts: str) -> str:
    return "\n" + "".join(f"  - {{prompt: {p}, duration: 1.2s}}\n" for p in prompts)


def pngs(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.png"))}


def cli(*args: object, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "framepack_render", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout)


class Recorder(FarmObserver):
    """Every progress event the driver receives, and the process rendering each shot."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.labels: dict[int, str] = {}
        self.running: dict[str, tuple[str, int]] = {}  # label -> (worker, pid)

    def submitted(self, tag, shot, worker) -> None:
        self.labels[tag] = shot.label

    def event(self, event: Event) -> None:
        self.events.append(event)
        if event.kind == "shot_started":
            self.running[self.labels[event.tag]] = (event.worker, event.args[2])

    def count(self, label: str, kind: str) -> int:
        return sum(1 for e in self.events if e.kind == kind and self.labels[e.tag] == label)


@pytest.fixture(scope="module")
def farm(ray_cluster, tmp_path_factory):
    """One farm for the module (its two workers load the tiny model once), on the cluster."""
    with Farm(str(tmp_path_factory.mktemp("farm-cache"))) as farm:
        yield farm


@pytest.fixture(scope="module")
def local(tmp_path_factory):
    """Renders a shot in this process, as `framepack render` without --farm does, with as many
    torch threads as the worker had (CPU kernels may round differently with another count)."""
    import torch

    from framepack_render.run.executor import Session

    session = Session(LocalStore(tmp_path_factory.mktemp("local-cache")))

    def render(shot: Path | Shot, threads: int) -> None:
        before = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            shot = load(shot).shots[0] if isinstance(shot, Path) else shot
            session.render(build_plan(shot), force=True)
        finally:
            torch.set_num_threads(before)
    return render


def committed(store: LocalStore, keys: set[str]) -> int:
    return sum(store.has("window", key) for key in keys)


# ---------------------------------------------------------------- the command line, no cluster


@pytest.mark.parametrize("address", ["bogus", "local:0", "host:99999", "127.0.0.1:1",
                                     "ray://127.0.0.1:1"])
def test_a_bad_farm_address_is_one_line_and_exit_2(folder, capsys, tmp_path, address):
    path = write(folder, "shot.yaml", one_window(1))
    code, out, err = run(capsys, "render", path, "--farm", address, "--cache", tmp_path / "c")
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and address in err, err
    assert not (tmp_path / "c").exists() and not (folder / "out1").exists()
    code, out, err = run(capsys, "watch", folder, "--farm", address)
    assert code == 2 and len(err.strip().splitlines()) == 1, err


def test_without_ray_farm_is_one_line_and_plan_never_imports_it(folder, tmp_path):
    path = write(folder, "shot.yaml", one_window(1))
    result = run_without(("ray",), """
        assert main(['plan', sys.argv[1], '--cache', sys.argv[2]]) == 0
        sys.exit(main(['render', sys.argv[1], '--cache', sys.argv[2], '--farm', 'local:1']))
    """, path, tmp_path / "c")
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        "error: --farm needs Ray, which is not installed: pip install 'framepack-render[farm]'"]


def test_shots_and_plans_travel_to_workers_intact(folder):
    path = write(folder, "shot.yaml", shot_text(output="out/", end_image="images/end.png",
                                                sections=sections("one", "two")))
    shot = load(path).shots[0]
    plan = build_plan(shot)
    keys = [w.key for w in plan.windows]
    assert [w.key for w in build_plan(pickle.loads(pickle.dumps(shot))).windows] == keys
    assert [w.key for w in pickle.loads(pickle.dumps(plan)).windows] == keys


def test_an_idle_worker_takes_a_shot_of_the_model_it_holds():
    farm = Farm.__new__(Farm)  # the dispatch rule alone, without a cluster
    farm.capacity = 2
    busy, idle = _Slot("worker-1", None, {"A"}, busy=True), _Slot("worker-2", None, {"C"})
    farm.slots = [busy, idle]
    pending = deque([_Job(1, None, "A"), _Job(2, None, "B"), _Job(3, None, "C")])
    assert farm._take(pending)[1].tag == 3  # its own model, though queued last
    idle.affinities = set()
    # A fresh worker takes a model no worker holds rather than worker-1's next shot.
    assert farm._take(pending)[1].tag == 2


# ---------------------------------------------------------------- on the cluster


def test_workers_take_one_gpu_each_and_one_more_stays_pending(farm, ray_cluster):
    ray = ray_cluster
    assert (farm.capacity, farm.resources) == (2, {"num_gpus": 1})
    while len(farm.slots) < farm.capacity:
        farm.start_worker()
    infos = ray.get([slot.handle.info.remote() for slot in farm.slots], timeout=120)
    assert sorted(info["gpus"] for info in infos) == [["0"], ["1"]]
    assert {info["node"] for info in infos} == {"127.0.0.1"}
    assert len({info["pid"] for info in infos}) == 2
    extra = farm.worker_class.options(**farm.resources).remote("extra", farm.cache, None, None)
    try:
        ready, _ = ray.wait([extra.info.remote()], timeout=3)
        assert ready == []  # no third GPU: Ray keeps it waiting
    finally:
        ray.kill(extra)


def test_a_batch_renders_across_workers_equal_to_local_renders(farm, folder, local):
    paths = [write(folder, f"b{seed}.yaml", one_window(seed)) for seed in (11, 12, 13, 14)]
    outcomes = [o for _, o in farm.render([load(p).shots[0] for p in paths])]
    assert [o.error for o in outcomes] == [None] * 4
    results = [o.result for o in outcomes]
    assert sum(r.windows_rendered for r in results) == 4  # each window sampled once
    assert sum(r.windows_cached for r in results) == 0
    assert {o.worker["name"] for o in outcomes} == {"worker-1", "worker-2"}
    assert {tuple(o.worker["gpus"]) for o in outcomes} == {("0",), ("1",)}
    frames = {seed: pngs(folder / f"out{seed}") for seed in (11, 12, 13, 14)}
    assert all(len(f) == 37 for f in frames.values())

    # Outputs carry their sidecars: the same batch again is answered here, from them.
    again = [o for _, o in farm.render([load(p).shots[0] for p in paths])]
    assert all(o.worker is None and o.result.outputs_up_to_date == 1 for o in again)

    for path, outcome in zip(paths, outcomes):
        local(path, outcome.worker["threads"])
    assert {seed: pngs(folder / f"out{seed}") for seed in (11, 12, 13, 14)} == frames


def test_a_worker_killed_mid_shot_costs_at_most_the_window_in_flight(farm, folder, local,
                                                                      capsys):
    long = write(folder, "long.yaml", shot_text(output="long/", seed="21", steps="16",
                                                sections=sections("one", "two", "three",
                                                                  "four")))
    paths = [long] + [write(folder, f"k{seed}.yaml", one_window(seed)) for seed in (22, 23)]
    shots = [load(p).shots[0] for p in paths]
    keys = {w.key for w in build_plan(shots[0]).windows}
    store = LocalStore(farm.cache)
    recorder, killed = Recorder(), {}

    def kill_after_the_first_window() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if shots[0].label in recorder.running and committed(store, keys) >= 1:
                worker, pid = recorder.running[shots[0].label]
                os.kill(pid, signal.SIGKILL)
                killed.update(worker=worker, pid=pid, kept=committed(store, keys))
                return
            time.sleep(0.01)

    killer = threading.Thread(target=kill_after_the_first_window, daemon=True)
    killer.start()
    outcomes = {shot.label: outcome for shot, outcome in farm.render(shots, observer=recorder)}
    killer.join()
    assert killed and 1 <= killed["kept"] < 4, killed  # killed in the middle of the shot
    assert [o.error for o in outcomes.values()] == [None] * 3
    outcome: Outcome = outcomes[shots[0].label]
    # The call ran again on the same worker, restarted in a new process, and resumed.
    assert outcome.worker["name"] == killed["worker"] and outcome.worker["pid"] != killed["pid"]
    result = outcome.result
    assert result.windows_cached >= killed["kept"]
    assert result.windows_cached + result.windows_rendered == 4
    assert recorder.count(shots[0].label, "window_started") <= 4 + 1

    frames = pngs(folder / "long")
    assert len(frames) == 4 * 36 + 1
    assert run(capsys, "cache", "verify", "--cache", farm.cache)[0] == 0
    local(long, outcome.worker["threads"])
    assert pngs(folder / "long") == frames


def test_a_cancelled_render_stops_on_its_worker_and_the_next_one_resumes(farm, folder):
    path = write(folder, "c.yaml", shot_text(output="c/", seed="31", steps="16",
                                             sections=sections("one", "two", "three")))
    shot = load(path).shots[0]
    cancel = Cancel()

    class CancelAfterFirstWindow(FarmObserver):
        def event(self, event: Event) -> None:
            if event.kind == "window_done":
                cancel.set()

    with pytest.raises(RenderCancelled):
        farm.render_one(shot, observer=CancelAfterFirstWindow(), cancel=cancel)
    assert not (folder / "c").exists()
    result = farm.render_one(shot)
    assert 1 <= result.windows_cached < 3 and result.windows_rendered == 3 - result.windows_cached


def test_missing_weights_in_a_worker_are_the_usual_one_line(farm, folder):
    path = write(folder, "fp.yaml", one_window(41, model="framepack"))
    [(_, outcome)] = farm.render([load(path).shots[0]])
    assert outcome.model_error and "\n" not in outcome.error
    assert "weights not found" in outcome.error


def alive(pid: int) -> bool:
    """The process exists and is not a zombie waiting for its parent."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state != "Z"


def ray_processes() -> set[int]:
    """Ray's own daemons on this machine (every cluster's)."""
    pids = set()
    for entry in Path("/proc").iterdir():
        try:
            name = (entry / "comm").read_text().strip()
        except OSError:
            continue
        if name in ("gcs_server", "raylet"):
            pids.add(int(entry.name))
    return pids


def test_render_farm_local_2_from_the_command_line(folder, tmp_path, local, s3, bucket):
    """A matrix on a private two-worker cluster with the cache and the outputs on S3 (a real
    S3 API on 127.0.0.1): each window sampled once across the farm, the workers upload the
    outputs, frames equal to local renders."""
    matrix = one_window(0).replace("seed: 0", "seed: ${seed}").replace("out0/", "out${seed}/")
    paths = [write(folder, "m.yaml", matrix + "matrix:\n  seed: [51, 52]\n")]
    before = ray_processes()
    result = cli("render", *paths, "--farm", "local:2", "--cache", f"s3://{bucket}/cache",
                 "--output-root", f"s3://{bucket}/renders",
                 "--storage-option", f"endpoint_url={s3.endpoint}", "--json", "--no-preview")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["ok"] and summary["windows_rendered"] == 2
    assert summary["outputs"] == [f"s3://{bucket}/renders/out{seed}" for seed in (51, 52)]
    assert summary["farm"]["address"] == "local:2" and summary["farm"]["workers"] == 2
    workers = [shot["worker"] for shot in summary["shots"]]
    assert len(workers) == 2
    assert all(w["node"] == "127.0.0.1" and w["actor"] and w["call_seconds"] > 0 for w in workers)
    assert {w["name"] for w in workers} == {"worker-1", "worker-2"}
    # Its private cluster is gone with it, within seconds: workers and daemons.
    deadline = time.monotonic() + 20
    while (ray_processes() - before or any(alive(w["pid"]) for w in workers)) \
            and time.monotonic() < deadline:
        time.sleep(0.2)
    assert ray_processes() <= before
    assert not any(alive(w["pid"]) for w in workers)
    assert s3.fs().ls(f"{bucket}/cache/window")  # the windows went to the bucket
    s3.fs().get(f"{bucket}/renders/", str(tmp_path / "renders"), recursive=True)
    frames = {seed: pngs(tmp_path / "renders" / f"out{seed}") for seed in (51, 52)}
    assert all(len(f) == 37 for f in frames.values())
    threads = {shot["shot"]: shot["worker"]["threads"] for shot in summary["shots"]}
    for shot in load(paths[0]).shots:
        local(shot, threads[shot.label])
    assert {seed: pngs(folder / f"out{seed}") for seed in (51, 52)} == frames


def test_farm_progress_names_each_engines_unit(folder):
    """FLUX shots generate frames, FramePack shots windows: the farm's lines say which."""
    import io

    from rich.console import Console

    from framepack_render.run.farm.progress import FarmProgress

    out = io.StringIO()
    shot = load(write(folder, "p.yaml", one_window(61))).shots[0]
    with FarmProgress(Console(file=out, width=200)) as progress:
        progress.submitted(1, shot, "worker-1")
        progress.event(Event(1, "worker-1", "shot_started", (24, 24, 123, "frame")))
        progress.event(Event(1, "worker-1", "window_done", (0, False, 0.5)))
    text = out.getvalue()
    assert "24 frames, 24 to sample" in text and "frame 1 sampled in 0.5 s" in text
