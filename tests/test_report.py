"""`framepack report`: a batch's page, opened in a real headless chromium."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest
from PIL import Image

from framepack_render.evaluate import report
from framepack_render.plan import build_plan
from framepack_render.run.executor import LocalExecutor, Session
from framepack_render.shot import load
from framepack_render.store import LocalStore

from .browser import chromium, inspect, new_page
from .conftest import QUICKSTART, write

# Two sections of one window each (window 2 = 8 frames), so each shot has a prompt change.
MATRIX = """\
model: tiny
image: images/start.png
output: renders/ball-${preset}-${seed}.mp4
size: 64x64
steps: 1
window: 2
fps: 8
seed: ${seed}
flow_shift: ${preset}
vars: {preset: balanced, seed: 1}
sections:
  - {prompt: a red ball rolls, frames: 8}
  - {prompt: the ball stops, frames: 8}
matrix:
  preset: [balanced, dynamic]
  seed: [1, 2]
"""


def report_args(*argv: object) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    report.add_arguments(parser)
    return parser.parse_args([str(a) for a in argv])


def make_images(folder: Path) -> None:
    (folder / "images").mkdir(parents=True)
    Image.open(QUICKSTART / "images" / "start.png").resize((64, 64)).save(
        folder / "images" / "start.png")


@pytest.fixture(scope="module")
def batch(tmp_path_factory: pytest.TempPathFactory, pool) -> Path:
    """The matrix above, rendered once for the module: its shot file."""
    folder = tmp_path_factory.mktemp("batch")
    make_images(folder)
    shot_file = write(folder, "shot.yaml", MATRIX)
    executor = LocalExecutor(pool, LocalStore(folder / "cache"))
    for shot in load(shot_file).shots:
        executor.render(build_plan(shot))
    return shot_file


@pytest.fixture(scope="module")
def page(batch: Path) -> Path:
    """The batch's report, in a folder of its own so its video links climb out of it."""
    output = batch.parent / "pages" / "report.html"
    assert report.run(report_args(batch, "-o", output, "--cache", batch.parent / "cache")) == 0
    return output


def test_the_report_loads_in_chromium_with_a_scored_grid(page: Path, tmp_path: Path):
    screenshot = tmp_path / "report.png"
    with chromium() as browser:
        tab, log = new_page(browser, width=1280)
        tab.goto(page.as_uri())
        check = inspect(tab, log, screenshot=screenshot)
        cells = tab.locator("table.grid .cell")
        scores = [cells.nth(i).locator("dd").all_inner_texts() for i in range(cells.count())]
        headings = tab.locator("table.grid thead th").all_inner_texts()
        playing = tab.evaluate("""async () => {
            const video = document.querySelector('video');
            video.muted = true;
            await video.play();
            await new Promise(done => setTimeout(done, 300));
            return video.currentTime > 0 && !video.error;
        }""") if not check.unsupported_videos else True
    assert check.ok, check.problems()
    assert check.videos == 8 and check.images > 8  # a video per grid cell and per shot
    assert not [u for u in check.requests if not u.startswith(("file:", "data:"))]
    assert playing  # the H.264 our encoder writes plays in Debian's chromium
    assert len(scores) == 4  # preset (rows) x seed (columns)
    assert all(len(s) == 4 and all(re.fullmatch(r"[\d,.]+", v) for v in s) for s in scores)
    assert [h.split("\n")[-1] for h in headings if h] == ["1", "2"]
    assert screenshot.stat().st_size > 10_000


def test_the_page_is_self_contained_and_ranks_every_shot(page: Path):
    html = page.read_text(encoding="utf-8")
    assert re.findall(r'<video src="([^"]+)"', html)[0] == "../renders/ball-balanced-1.mp4"
    assert not re.search(r'<(?:img|script|link)[^>]+(?:src|href)="https?:', html)
    assert html.count("<svg") == 5  # four shots' curves and the batch's overlay
    ranking = html[html.index('id="ranking"'):html.index('id="matrix-1"')]
    assert ranking.count('class="badge rendered"') == 4
    assert "new prompt: section 2" in html  # the contact sheet marks the prompt change


def test_rows_and_cols_pick_the_axes_and_other_vars_split_the_grids(tmp_path: Path):
    make_images(tmp_path)
    shot_file = write(tmp_path, "shot.yaml", MATRIX.replace(
        "output: renders/ball-${preset}-${seed}.mp4",
        "output: renders/${preset}-${seed}-${speed}.mp4").replace(
        "  seed: [1, 2]\n", "  seed: [1, 2]\n  speed: [slow, fast, wild]\n"))
    shots = load(shot_file).shots
    layouts = report.grid_layouts(shots, "speed", None)
    page = report.build_page(shots, layouts, tmp_path)
    grids = page.matrices[0].grids
    assert [g.title for g in grids] == ["seed=1", "seed=2"]
    assert grids[0].rows == "speed" and grids[0].cols == "preset"
    assert grids[0].row_values == ["slow", "fast", "wild"]
    assert [[c.shot.vars["preset"] for c in row] for row in grids[0].cells] == \
        [["balanced", "dynamic"]] * 3


def test_an_unrendered_shot_says_how_to_render_it(tmp_path: Path, capsys):
    make_images(tmp_path)
    shot_file = write(tmp_path, "shot.yaml", MATRIX)
    output = tmp_path / "report.html"
    assert report.run(report_args(tmp_path, "-o", output, "--cache", tmp_path / "c")) == 0
    html = output.read_text(encoding="utf-8")
    assert html.count("Not rendered yet; render it with <code>framepack render ") == 4
    assert html.count(f"{shot_file.name}</code>") == 4 and "<video" not in html
    assert "wrote" in capsys.readouterr().err


def test_a_rows_var_that_is_not_in_the_matrix_is_one_line_and_writes_nothing(
        tmp_path: Path, capsys):
    make_images(tmp_path)
    shot_file = write(tmp_path, "shot.yaml", MATRIX)
    output = tmp_path / "report.html"
    assert report.run(report_args(shot_file, "-o", output, "--rows", "sed")) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "--rows sed: not a matrix var" in err and "did you mean 'seed'?" in err
    assert not output.exists() and not list(tmp_path.glob(".report.html.*"))


# Six frames with a prompt keyframe at frame 3 and a scheduled guidance.
FLUX = """\
engine: flux-deforum
model: tiny-flux
image: images/start.png
output: renders/fox.mp4
size: 64x64
frames: 6
fps: 8
steps: 4
seed: 7
guidance: "0:(3.5), 5:(5)"
prompts:
  0: a red fox in the snow
  3: a blue bird in the sky
"""


@pytest.fixture(scope="module")
def flux_page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The flux-deforum shot above, rendered once, and its report."""
    folder = tmp_path_factory.mktemp("flux")
    make_images(folder)
    shot_file = write(folder, "flux.yaml", FLUX)
    Session(LocalStore(folder / "cache")).render(build_plan(load(shot_file).shots[0]))
    output = folder / "pages" / "report.html"
    assert report.run(report_args(shot_file, "-o", output, "--cache", folder / "cache")) == 0
    return output


def test_a_flux_deforum_shot_is_ranked_scored_and_shown_frame_by_frame(flux_page: Path):
    with chromium() as browser:
        tab, log = new_page(browser, width=1280)
        tab.goto(flux_page.as_uri())
        check = inspect(tab, log)
        ranked = tab.locator("#ranking tbody td.num").all_inner_texts()
        changes = tab.locator("#shot-1 .overview table").nth(1).inner_text()
        captions = tab.locator("#shot-1 .sheet figcaption").all_inner_texts()
        guidance = tab.locator("#shot-1 tr", has_text="guidance").last.inner_text()
    assert check.ok, check.problems()
    assert check.videos == 1 and check.images == 6  # the player, and a thumbnail per frame
    html = flux_page.read_text(encoding="utf-8")
    assert re.findall(r'<video src="([^"]+)"', html) == ["../renders/fox.mp4"]
    assert ranked and all(re.fullmatch(r"[\d,.]+", value) for value in ranked)
    assert "a blue bird in the sky" in changes and "0.38 s" in changes  # frame 3 at 8 fps
    assert [c.split("\n")[0] for c in captions] == [f"frame {f} {f / 8:.2f} s"
                                                      for f in range(6)]
    assert "new prompt at frame 3" in captions[3] and "init start.png" in captions[0]
    assert guidance.split()[-6:] == ["3.5", "3.8", "4.1", "4.4", "4.7", "5"]
    assert html.count("<svg") == 1  # the shot's curves


def test_without_chromium_the_browser_tests_fail_saying_what_to_install(monkeypatch):
    from . import browser

    monkeypatch.setattr(browser, "CHROMIUM", Path("/nonexistent/chromium"))
    with pytest.raises(pytest.fail.Exception, match="apt-get install chromium"):
        browser.require_chromium()
