"""Video extension: `input_video` becomes the history new windows continue from; the output is
the video's frames followed (or preceded) by the new ones, or the new ones alone."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from framepack_render.evaluate.video import read_frames
from framepack_render.output.encode import open_sink
from framepack_render.plan import build_plan
from framepack_render.plan.entries import referenced
from framepack_render.plan.tasks import tasks
from framepack_render.shot import ShotError, load

from .conftest import SIZE, png_frames, run, run_without, write

CLIP_FRAMES = 17  # one window of 2 latents, with the start frame


def extension(**extra: str) -> str:
    """A small forward extension of clip.mp4 (F1 order: it reads the video's last latents)."""
    lines = {"model": "tiny", "input_video": "clip.mp4", "output": "out/", "steps": "1",
             "window": "2", "seed": "5", "sampling": "forward", "prompt": "the ball stops",
             "duration": "{frames: 16}"}
    lines.update(extra)
    return "".join(f"{k}: {v}\n" for k, v in lines.items() if v != "")


def decoded(path: Path) -> np.ndarray:
    return np.stack(list(read_frames(path, side=None)))


def synthetic_video(path: Path, frames: int = 9, seed: int = 0, fps: float = 30) -> Path:
    sink = open_sink(path, "mp4", width=SIZE, height=SIZE, fps=fps)
    rng = np.random.default_rng(seed)
    sink.write(rng.integers(0, 256, (frames, SIZE, SIZE, 3), dtype=np.uint8))
    sink.close()
    return path


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """clip.mp4, rendered with the tiny model, in a folder with the 64x64 images."""
    from PIL import Image

    from .conftest import QUICKSTART

    folder = tmp_path_factory.mktemp("extend")
    (folder / "images").mkdir()
    Image.open(QUICKSTART / "images" / "start.png").resize((SIZE, SIZE)).save(
        folder / "images" / "start.png")
    shot = write(folder, "clip.yaml", f"""
        model: tiny
        image: images/start.png
        output: clip.mp4
        size: {SIZE}x{SIZE}
        steps: 1
        window: 2
        prompt: a red ball rolls
        duration: {{frames: {CLIP_FRAMES}}}
    """)
    from framepack_render.cli import main

    assert main(["render", str(shot), "--cache", str(folder / "cache"), "--no-preview"]) == 0
    assert len(decoded(folder / "clip.mp4")) == CLIP_FRAMES
    return folder


def render(capsys, folder: Path, name: str, text: str) -> dict:
    path = write(folder, name, text)
    code, out, err = run(capsys, "render", path, "--cache", folder / "cache", "--json",
                         "--no-preview")
    assert code == 0, err
    return json.loads(out)


def test_forward_extension_starts_with_the_input_frames_then_new_ones(clip, capsys):
    summary = render(capsys, clip, "ext.yaml", extension())
    assert summary["windows_rendered"] == 2
    frames = png_frames(clip / "out")
    assert len(frames) == CLIP_FRAMES + 16
    assert np.array_equal(frames[:CLIP_FRAMES], decoded(clip / "clip.mp4"))
    record = json.loads((clip / "out" / "render.json").read_text())
    assert record["frames"] == CLIP_FRAMES + 16
    assert record["input_video"]["extend"] == "forward" and record["input_video"]["keep_input"]
    assert record["timeline"]["windows"][0]["start"]["frame"] == CLIP_FRAMES

    # keep_input: false writes the same new frames alone, from the windows already cached.
    alone = render(capsys, clip, "alone.yaml", extension(keep_input="false", output="alone/"))
    assert alone["windows_rendered"] == 0
    assert np.array_equal(png_frames(clip / "alone"), frames[CLIP_FRAMES:])

    # An unchanged extension renders nothing and writes nothing.
    again = render(capsys, clip, "ext.yaml", extension())
    assert again["windows_rendered"] == 0 and again["shots"][0]["outputs_up_to_date"] == 1


def test_backward_extension_puts_the_new_frames_before_the_video(clip, capsys):
    summary = render(capsys, clip, "back.yaml", extension(
        sampling="", extend="backward", image="images/start.png", output="back/",
        duration="{frames: 12}"))
    assert summary["windows_rendered"] == 2
    frames = png_frames(clip / "back")
    assert len(frames) == 12 + CLIP_FRAMES
    assert np.array_equal(frames[12:], decoded(clip / "clip.mp4"))


def test_exact_lengths_count_the_new_frames(clip):
    forward = build_plan(load(write(clip, "n.yaml", extension(duration="{frames: 10}"))).shots[0])
    assert (forward.new_frames, forward.total_frames) == (10, CLIP_FRAMES + 10)
    assert (forward.trim.start, forward.trim.end) == (1, 6)  # the video's frame, then the end
    (note,) = [n for n in forward.notes if "exact" in n.message]
    assert "16 new frames, trimmed to 10: the last 6 dropped" in note.message
    backward = build_plan(load(write(clip, "n.yaml", extension(
        sampling="", image="images/start.png", duration="{frames: 10}"))).shots[0])
    assert backward.shot.input_video.extend == "backward"  # the default under inverted
    assert (backward.new_frames, backward.trim.start, backward.trim.end) == (10, 7, 0)


def test_keys_follow_the_video_bytes_not_its_name_or_time(tmp_path):
    synthetic_video(tmp_path / "a.mp4", seed=1)
    shot = write(tmp_path, "s.yaml", extension(input_video="a.mp4"))

    def keys() -> list[str]:
        return [w.key for w in build_plan(load(shot).shots[0]).windows]

    before = keys()
    shutil.copy(tmp_path / "a.mp4", tmp_path / "b.mp4")
    os.utime(tmp_path / "b.mp4", (1, 1))
    write(tmp_path, "s.yaml", extension(input_video="b.mp4"))
    assert keys() == before
    synthetic_video(tmp_path / "b.mp4", seed=2)
    changed = keys()
    assert all(a != b for a, b in zip(before, changed))


def test_the_video_is_encoded_once_and_read_by_the_windows_that_reach_it(tmp_path):
    synthetic_video(tmp_path / "clip.mp4", frames=30)
    plan = build_plan(load(write(tmp_path, "s.yaml", extension(
        window="9", duration="{frames: 108}"))).shots[0])
    graph = tasks(plan)
    (video,) = [t for t in graph if t.kind == "video"]
    readers = [t.subject.index for t in graph if t.kind == "window" and video.writes in t.reads]
    assert readers == [0, 1, 2]  # 9 + 9 latents before window 2 still leave room for the video
    assert video.writes in referenced(plan)


@pytest.mark.parametrize("extra, message", [
    ({"size": "128x64"}, "input_video 'clip.mp4' is 64x64 but the shot's size is 128x64"),
    ({"fps": "24"}, "input_video 'clip.mp4' is 30 fps but the shot's fps is 24"),
    ({"extend": "backward", "image": "start.png"}, "extend: backward needs inverted or "
                                                   "endpoints-first sampling"),
])
def test_a_mismatch_is_one_line_and_exit_2(tmp_path, capsys, extra, message):
    synthetic_video(tmp_path / "clip.mp4")
    shutil.copy(Path(__file__).parents[1] / "examples/quickstart/images/start.png", tmp_path)
    path = write(tmp_path, "s.yaml", extension(**extra))
    code, out, err = run(capsys, "validate", path)
    lines = err.strip().splitlines()
    assert code == 2 and out == "" and len(lines) == 1, err
    assert re.match(r"^\S*s\.yaml:\d+:\d+: ", lines[0]) and message in lines[0]


def test_validate_and_plan_of_an_extension_never_import_torch(tmp_path):
    synthetic_video(tmp_path / "clip.mp4")
    path = write(tmp_path, "s.yaml", extension())
    result = run_without(("torch", "diffusers", "transformers"), """
        sys.exit(max(main(['validate', sys.argv[1]]),
                     main(['plan', '--cache', sys.argv[2], sys.argv[1]])))
    """, path, tmp_path / "cache")
    assert result.returncode == 0, result.stderr
    assert "extends" in result.stdout


def test_a_forward_extension_takes_no_start_image(tmp_path):
    synthetic_video(tmp_path / "clip.mp4")
    shutil.copy(Path(__file__).parents[1] / "examples/quickstart/images/start.png", tmp_path)
    with pytest.raises(ShotError) as caught:
        load(write(tmp_path, "s.yaml", extension(image="start.png")))
    assert "image cannot be used with a forward extension" in str(caught.value)
