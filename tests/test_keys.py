"""Cache keys: identical inputs give identical keys anywhere; a change re-keys exactly the
windows it shapes and the windows generated after them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from framepack_render.plan import build_plan
from framepack_render.shot import load

from .conftest import write

SHOT = """
model: tiny
image: images/start.png
end_image: images/end.png
output: renders/out.mp4
size: 256x256
sampling: {sampling}
seed: 5
steps: 8
sections:
  - prompt: the ball rolls
    duration: 2.4s
  - prompt: the ball bounces
    duration: 2.4s
  - prompt: the ball stops
    duration: 1.2s
    image: images/middle.png
"""


def keys_of(folder: Path, text: str) -> list[str]:
    path = write(folder, "shot.yaml", text)
    return [w.key for w in build_plan(load(path).shots[0]).windows]


def changed(before: list[str], after: list[str]) -> set[int]:
    assert len(before) == len(after)
    return {i for i, (a, b) in enumerate(zip(before, after)) if a != b}


def test_same_inputs_same_keys(shot_dir):
    text = SHOT.format(sampling="inverted")
    assert keys_of(shot_dir, text) == keys_of(shot_dir, text)
    assert len(set(keys_of(shot_dir, text))) == 5


def test_keys_do_not_depend_on_where_the_shot_lives(shot_dir, tmp_path_factory):
    text = SHOT.format(sampling="inverted")
    here = keys_of(shot_dir, text)
    elsewhere = tmp_path_factory.mktemp("other") / "deeper" / "folder"
    shutil.copytree(shot_dir / "images", elsewhere / "images")
    assert keys_of(elsewhere, text) == here


def test_keys_are_stable_across_processes_and_hash_seeds(shot_dir):
    write(shot_dir, "shot.yaml", SHOT.format(sampling="inverted"))
    outputs = []
    for seed in ("0", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        result = subprocess.run(
            [sys.executable, "-m", "framepack_render", "plan", "--json", "shot.yaml"],
            cwd=shot_dir, env=env, capture_output=True, text=True, check=True)
        outputs.append([w["key"] for w in json.loads(result.stdout)["plans"][0]["windows"]])
    assert outputs[0] == outputs[1] == keys_of(shot_dir, SHOT.format(sampling="inverted"))


def test_a_pinned_key_guards_against_accidental_changes(shot_dir):
    # If this fails, cached entries of every user would be orphaned: bump KEY_VERSION on
    # purpose and update the pin, never by accident.
    keys = keys_of(shot_dir, SHOT.format(sampling="inverted"))
    assert keys[-1][:16] == PINNED_LAST_WINDOW


PINNED_LAST_WINDOW = "c458f9e38db3460e"  # tiny-3: the tiny VAE decodes chunks whole


# Inverted: windows 4,3,2,1,0 are generated in that order. Forward: 0..4.
# Endpoints-first: 4, 0, 3, 2, 1.
@pytest.mark.parametrize("sampling,section,expected", [
    ("inverted", 0, {0, 1}),
    ("inverted", 1, {0, 1, 2, 3}),
    ("inverted", 2, {0, 1, 2, 3, 4}),
    ("forward", 0, {0, 1, 2, 3, 4}),
    ("forward", 1, {2, 3, 4}),
    ("forward", 2, {4}),
    ("endpoints-first", 0, {0, 1, 2, 3}),
    ("endpoints-first", 1, {1, 2, 3}),
    ("endpoints-first", 2, {0, 1, 2, 3, 4}),
])
def test_a_prompt_edit_rekeys_its_windows_and_those_generated_after(shot_dir, sampling, section,
                                                                    expected):
    text = SHOT.format(sampling=sampling)
    if sampling == "forward":
        text = text.replace("end_image: images/end.png\n", "")
    before = keys_of(shot_dir, text)
    prompts = ["the ball rolls", "the ball bounces", "the ball stops"]
    after = keys_of(shot_dir, text.replace(prompts[section], "a different prompt"))
    assert changed(before, after) == expected


def test_touching_an_image_without_changing_its_bytes_changes_nothing(shot_dir):
    text = SHOT.format(sampling="inverted")
    before = keys_of(shot_dir, text)
    image = shot_dir / "images" / "middle.png"
    os.utime(image, (1_000_000_000, 1_000_000_000))
    image.write_bytes(image.read_bytes())  # rewritten, same bytes, new mtime
    assert keys_of(shot_dir, text) == before


def test_changing_an_images_bytes_rekeys_the_windows_that_use_it(shot_dir):
    from PIL import Image

    text = SHOT.format(sampling="inverted")
    before = keys_of(shot_dir, text)
    Image.new("RGB", (256, 256), (9, 9, 9)).save(shot_dir / "images" / "middle.png")
    # middle.png is the keyframe of windows 4 (generated first), so every window changes.
    assert changed(before, keys_of(shot_dir, text)) == {0, 1, 2, 3, 4}
    Image.new("RGB", (256, 256), (1, 2, 3)).save(shot_dir / "images" / "end.png")
    again = keys_of(shot_dir, text)
    assert changed(before, again) == {0, 1, 2, 3, 4}


@pytest.mark.parametrize("edit,expected", [
    ("fps: 24\n", set()),                      # same window count: only muxing changes
    ("post: {crf: 30, loop: pingpong}\n", set()),
    ("output: renders/other.webm\n", set()),
    ("negative_prompt: blurry\n", set()),      # unused while cfg is 1
    ("cfg: 2.0\n", {0, 1, 2, 3, 4}),
    ("steps: 9\n", {0, 1, 2, 3, 4}),
    ("sampler: euler\n", {0, 1, 2, 3, 4}),
    ("end_image_strength: 0.5\n", {0, 1, 2, 3, 4}),  # the first generated window uses it
    ("teacache: 0.1\n", {0, 1, 2, 3, 4}),
    ("model: framepack\n", {0, 1, 2, 3, 4}),
])
def test_which_settings_shape_windows(shot_dir, edit, expected):
    text = SHOT.format(sampling="inverted")
    before = keys_of(shot_dir, text)
    key = edit.split(":")[0]
    lines = [line for line in text.splitlines(True) if not line.startswith(f"{key}:")]
    assert changed(before, keys_of(shot_dir, "".join(lines) + edit)) == expected


def test_equal_values_written_differently_share_keys(shot_dir):
    text = SHOT.format(sampling="inverted")
    before = keys_of(shot_dir, text)
    same = text.replace("duration: 2.4s", "duration: {frames: 72}", 1)
    same = same.replace("steps: 8", "steps: 8\nguidance: 10\nflow_shift: {preset: balanced}")
    assert keys_of(shot_dir, same) == before


def test_a_section_seed_rekeys_that_section_and_later_generated_windows(shot_dir):
    text = SHOT.format(sampling="inverted")
    before = keys_of(shot_dir, text)
    after = keys_of(shot_dir, text.replace("prompt: the ball bounces\n",
                                           "prompt: the ball bounces\n    seed: 99\n"))
    assert changed(before, after) == {0, 1, 2, 3}


def test_an_edit_change_rekeys_the_edit_and_the_windows_using_it(shot_dir):
    text = SHOT.format(sampling="forward").replace("end_image: images/end.png\n", "")
    text = text.replace("    image: images/middle.png\n", "    image: {edit: pose}\n")
    text += ("edits:\n  - name: pose\n    image: images/middle.png\n    prompt: sitting\n"
             "    target_index: 1\n")
    path = write(shot_dir, "shot.yaml", text)
    before = build_plan(load(path).shots[0])
    path.write_text(text.replace("prompt: sitting", "prompt: standing"))
    after = build_plan(load(path).shots[0])
    assert before.edits[0].key != after.edits[0].key
    assert changed([w.key for w in before.windows], [w.key for w in after.windows]) == {4}
