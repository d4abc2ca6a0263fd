"""`cache gc` and `cache clear` beside live renders: a render's lease keeps every entry it reads
or writes, a killed render's lease is cleaned up, and a gc that ran first leaves a render that
registers after it correct. Renders and gc are real processes where it matters."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

from framepack_render.store import LocalStore
from framepack_render.plan import build_plan
from framepack_render.run.executor import LocalExecutor
from framepack_render.shot import load

from .conftest import run, shot_text, write
from .test_incremental import cli, fresh_pool, pngs, render_with, sections


def shots(folder: Path) -> tuple[Path, Path]:
    """A 3-window shot to render, and a folder with another shot sharing no entry with it: the
    folder gc is given."""
    shot = write(folder, "shot.yaml", shot_text(sections=sections("one", "two", "three")))
    write(folder, "other/shot.yaml", shot_text(image="../images/end.png", seed="9"))
    return shot, folder / "other"


def entries(store: LocalStore) -> set[tuple[str, str]]:
    return {(e.kind, e.key) for e in store.entries()}


class BlockedRender:
    """`framepack render` in a subprocess, stopped before its second window: the test holds
    that window's lock, so the first window is committed and the render waits, no sleeps."""

    def __init__(self, shot: Path, store: LocalStore):
        plan = build_plan(load(shot).shots[0])
        self.first, second = plan.generation_order[:2]
        self.held = store.lock("window", second.key)
        self.held.acquire()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "framepack_render", "render", str(shot), "--cache",
             str(store.root), "--json", "--no-preview"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.log: list[str] = []
        self.waiting = threading.Event()
        sign = f"waiting for another process making window {second.index + 1}"
        threading.Thread(target=self._follow, args=(sign,), daemon=True).start()
        if not self.waiting.wait(120):
            self.kill()
            raise AssertionError("".join(self.log))

    def _follow(self, sign: str) -> None:
        for line in self.process.stderr:
            self.log.append(line)
            if sign in line:
                self.waiting.set()

    def finish(self) -> dict:
        self.held.release()
        out, _ = self.process.communicate(timeout=300)
        assert self.process.returncode == 0, "".join(self.log)
        return json.loads(out)

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        self.held.release()


def test_gc_keeps_what_a_running_render_of_a_shot_elsewhere_uses(folder, tmp_path):
    shot, other = shots(folder)
    store = LocalStore(tmp_path / "c")
    render = BlockedRender(shot, store)
    try:
        assert store.has("window", render.first.key)
        used = entries(store)  # its window, prompt and image encodings
        assert json.loads(cli("cache", "ls", "--cache", store.root, "--json").stdout
                          )["running_renders"] == 1

        dry = json.loads(cli("cache", "gc", other, "--cache", store.root, "--dry-run",
                             "--json").stdout)
        assert dry["removed"] == [] and dry["in_use"] == {"entries": len(used), "renders": 1}
        gc = cli("cache", "gc", other, "--cache", store.root)
        assert gc.returncode == 0, gc.stderr
        assert f"kept {len(used)} entries in use by 1 running render" in gc.stdout
        assert used <= entries(store)
    finally:
        summary = render.finish()
    assert summary["windows_rendered"] == 3
    assert store.live_leases() == 0 and not list((store.root / ".leases").iterdir())

    shutil.rmtree(folder / "out")  # written again, from the cache alone
    again = cli("render", shot, "--cache", store.root, "--json", "--no-preview")
    assert again.returncode == 0, again.stderr
    summary = json.loads(again.stdout)
    assert (summary["windows_rendered"], summary["windows_cached"]) == (0, 3)


def test_the_lease_of_a_killed_render_is_cleaned_and_protects_nothing(folder, tmp_path):
    shot, other = shots(folder)
    store = LocalStore(tmp_path / "c")
    render = BlockedRender(shot, store)
    used = entries(store)
    render.kill()
    assert used and len(list((store.root / ".leases").glob("*.json"))) == 1

    listing = json.loads(cli("cache", "ls", "--cache", store.root, "--json").stdout)
    assert listing["running_renders"] == 0
    assert [Path(p).parent.name for p in listing["leftovers"]] == [".leases"]
    gc = json.loads(cli("cache", "gc", other, "--cache", store.root, "--json").stdout)
    assert {(e["kind"], e["key"]) for e in gc["removed"]} == used
    assert gc["in_use"] == {"entries": 0, "renders": 0} and len(gc["leftovers"]) == 1
    assert entries(store) == set() and not list((store.root / ".leases").iterdir())


class PausedStore(LocalStore):
    """Stops a render as it starts, before its lease registers."""

    def __init__(self, root: Path):
        super().__init__(root)
        self.reached, self.go = threading.Event(), threading.Event()

    def lease(self, keys):
        self.reached.set()
        assert self.go.wait(120)
        return super().lease(keys)


def test_a_render_registering_after_gc_finds_what_gc_removed_missing(folder, capsys,
                                                                     tmp_path):
    shot, other = shots(folder)
    render_with(fresh_pool(), shot, tmp_path / "c")
    frames = pngs(folder / "out")
    shutil.rmtree(folder / "out")
    store = PausedStore(tmp_path / "c")
    results = []
    thread = threading.Thread(target=lambda: results.append(
        LocalExecutor(fresh_pool(), store).render(build_plan(load(shot).shots[0]))))
    thread.start()
    try:
        assert store.reached.wait(120)
        code, out, _ = run(capsys, "cache", "gc", other, "--cache", store.root, "--json")
        assert code == 0 and json.loads(out)["in_use"]["renders"] == 0
        assert not any(kind in ("window", "frames") for kind, _ in entries(store))
    finally:
        store.go.set()
        thread.join(300)
    result = results[0]
    assert (result.windows_rendered, result.windows_cached) == (3, 0)
    assert pngs(folder / "out") == frames


def test_a_lease_covers_entries_added_while_it_lives_and_clear_waits_for_it(capsys, tmp_path):
    store = LocalStore(tmp_path / "c")
    foreseen, added = ("window", "a" * 64), ("prompt", "b" * 64)
    for kind, key in (foreseen, added):
        store.put(kind, key, {"tensors.safetensors": b"x"})
    with store.lease({foreseen}) as lease:
        lease.add(*added)
        code, out, _ = run(capsys, "cache", "gc", "--older-than", "0s", "--cache", store.root,
                           "--json")
        assert code == 0 and json.loads(out)["removed"] == []
        code, _, err = run(capsys, "cache", "clear", "--yes", "--cache", store.root)
        assert code == 2 and "1 running render" in err and entries(store) == {foreseen, added}
    assert run(capsys, "cache", "clear", "--yes", "--cache", store.root)[0] == 0
    assert entries(store) == set() and store.leftovers(older_than=0) == []
