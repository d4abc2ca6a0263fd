"""`framepack watch --serve`: the live page in a real headless chromium, its event stream, and
how the server starts and stops."""

from __future__ import annotations

import json
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from framepack_render.cli import main
from framepack_render.plan import build_plan
from framepack_render.run.live import Hub, LivePage, LiveServer
from framepack_render.shot import load

from .browser import chromium, inspect, new_page
from .conftest import run_without, shot_text, write

TWO_WINDOWS = ("\n  - {prompt: a red ball rolls, duration: 1.2s}"
               "\n  - {prompt: the ball stops, duration: 1.2s}")


class LiveWatch:
    """`framepack watch --serve --port 0 --json` in a subprocess; its JSON events are read
    as they come, each with the time it arrived."""

    def __init__(self, *args: object, cwd: Path):
        self.process = subprocess.Popen(
            [sys.executable, "-m", "framepack_render", "watch", *map(str, args), "--serve",
             "--port", "0", "--json", "--debounce", "0.2"],
            cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.events: queue.Queue[tuple[float, dict]] = queue.Queue()
        self.stderr: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=lambda: self.stderr.extend(self.process.stderr),
                         daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.events.put((time.monotonic(), json.loads(line)))

    def expect(self, name: str, timeout: float = 120) -> tuple[float, dict]:
        """The next event called ``name`` and when it arrived (events between are skipped)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                arrived, event = self.events.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail(f"no {name} event; stderr:\n{''.join(self.stderr)}")
            if event["event"] == name:
                return arrived, event

    def stop(self) -> int:
        self.process.send_signal(signal.SIGINT)
        return self.process.wait(timeout=30)


def listening_hosts(port: int) -> list[str]:
    """The addresses (hex, as /proc/net/tcp* writes them) listening on ``port``."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for row in Path(table).read_text().splitlines()[1:]:
            local, state = row.split()[1], row.split()[3]
            host, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:
                found.append(host)
    return found


def test_live_page_shows_windows_renders_and_errors_as_they_happen(folder, tmp_path):
    body = shot_text(output="out/v.mp4", steps="2", sections=TWO_WINDOWS)
    shot = write(folder, "shot.yaml", body)
    watch = LiveWatch(shot.name, "--cache", tmp_path / "c", cwd=folder)
    try:
        url = watch.expect("serving", timeout=60)[1]["url"]
        assert url.startswith("http://127.0.0.1:")
        if Path("/proc/net/tcp").exists():  # bound to the loopback address, and only there
            assert listening_hosts(int(url.rsplit(":", 1)[1].strip("/"))) == ["0100007F"]
        watch.expect("rendered")
        with chromium() as browser:
            page, log = new_page(browser)
            page.goto(url)
            card = '.shot[data-renders="1"]'
            page.wait_for_selector(card, timeout=10_000)
            assert page.locator(".window").count() == 2
            assert page.locator('.window[data-state="done"]').count() == 2
            page.wait_for_selector(".window img", timeout=5_000)
            check = inspect(page, log)
            assert check.ok, check.problems()
            assert check.images == 2 and check.videos == 1
            assert page.locator(".media").get_attribute("data-kind") == "output"

            # A save re-renders; the page shows the new render within a second of its event.
            shot.write_text(body.replace("a red ball", "a blue ball"))
            arrived, rendered = watch.expect("rendered")
            assert (rendered["windows_rendered"], rendered["windows_cached"]) == (1, 1)
            page.wait_for_selector('.shot[data-renders="2"]', timeout=5_000)
            assert time.monotonic() - arrived < 1.5
            states = page.locator(".window").evaluate_all(
                "tiles => tiles.map(t => t.dataset.state)")
            assert sorted(states) == ["cached", "done"]

            # An invalid save shows its FILE:LINE:COL line, as the console prints it.
            shot.write_text(body.replace("seed: 7", "sed: 7"))
            errors = watch.expect("invalid")[1]["errors"]
            line = page.locator(".error-line").first
            line.wait_for(timeout=5_000)
            assert line.text_content() == errors[0]
            assert errors[0].startswith("shot.yaml:") and "unknown key 'sed'" in errors[0]
            assert errors[0] in page.locator("#log").text_content()

            check = inspect(page, log, screenshot=tmp_path / "live.png")
            assert check.ok, check.problems()
            assert (tmp_path / "live.png").stat().st_size > 0
    finally:
        code = watch.stop()
    assert code == 130
    assert "Traceback" not in "".join(watch.stderr)


def read_events(response: object, count: int) -> list[tuple[str, dict]]:
    """The next ``count`` events of an open event stream."""
    events: list[tuple[str, dict]] = []
    name = ""
    while len(events) < count:
        line = response.readline().decode()
        if not line:
            break
        if line.startswith("event: "):
            name = line[7:].strip()
        elif line.startswith("data: "):
            events.append((name, json.loads(line[6:])))
    return events


def test_a_page_that_connects_mid_render_gets_the_current_state(folder):
    path = write(folder, "shot.yaml", shot_text(output="out/v.mp4"))
    shot = load(path).shots[0]
    plan = build_plan(shot)
    live = LivePage(Hub())
    live.watching([path.resolve()], [folder])
    live.loaded(path.resolve(), [shot])
    live.started(shot)
    live.shot_started(plan, len(plan.windows))
    first = plan.generation_order[0]
    live.window_started(first, 3)
    live.step(first, 1)
    with LiveServer(live.hub, port=0) as server:
        assert server.local and server.url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(server.url + "events", timeout=10) as response:
            (name, snapshot), = read_events(response, 1)
            assert name == "snapshot"
            (view,) = snapshot["shots"]
            assert view["status"] == "rendering"
            tiles = {w["index"]: w for w in view["windows"]}
            assert tiles[first.index]["state"] == "sampling"
            assert tiles[first.index]["step"] == 2 and tiles[first.index]["steps"] == 3

            # The window finishes: its last frame becomes a thumbnail served by URL.
            frames = np.zeros((5, 64, 64, 3), np.uint8)
            frames[-1, :, :, 0] = 200
            live.window_frames(first, frames)
            live.window_done(first, False, 1.5)
            tile: dict = {}
            while tile.get("state") != "done":  # a page behind gets only the latest state
                (name, view), = read_events(response, 1)
                tile = next(w for w in view["windows"] if w["index"] == first.index)
            with urllib.request.urlopen(server.url + tile["thumb"].lstrip("/")) as image:
                assert image.headers["Content-Type"] == "image/jpeg"
                from PIL import Image

                pixel = np.asarray(Image.open(image))[32, 32]
                assert pixel[0] > 150 and pixel[1] < 60
            thread = server.thread
            server.close()  # ends the open stream, then stops the server
            rest = response.read().decode()  # returns: the stream ended
            assert f"window {first.index + 1}/{len(plan.windows)} (" in rest  # the log line
    assert server.thread is None and not thread.is_alive()
    assert not [t for t in threading.enumerate() if t.name.startswith("framepack-live")]


def test_serve_refuses_a_taken_port_and_says_what_to_install(folder, capsys):
    path = write(folder, "shot.yaml", shot_text(output="out/v.mp4"))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code = main(["watch", str(path), "--serve", "--port", str(port)])
    err = capsys.readouterr().err
    assert code == 2
    assert f"cannot serve the live page on 127.0.0.1:{port}" in err and "--port" in err

    blocked = run_without(("starlette", "uvicorn"), "sys.exit(main(sys.argv[1:]))",
                          "watch", path, "--serve")
    assert blocked.returncode == 2
    assert blocked.stderr.strip().splitlines() == [
        "error: the live page needs starlette and uvicorn: "
        "pip install 'framepack-render[serve]'"]


def test_another_host_is_served_only_when_asked():
    hub = Hub()
    with LiveServer(hub, host="0.0.0.0", port=0) as server:
        assert not server.local
