"""One-frame edits (musubi one-frame inference, kisekaeichi, 1f-mc): index layouts, outputs and
their cache, edits feeding image fields and other edits, keys, flags, masks and cycles."""

from __future__ import annotations

import json
import re
import shutil
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from framepack_render.store import LocalStore
from framepack_render.plan import build_plan
from framepack_render.run.executor import LocalExecutor
from framepack_render.shot import load

from .conftest import SIZE, png_frames, run, shot_text, write

HISTORY_4X = tuple(range(13, 29))  # the docs: zeros(16) at indices 13..28


def edit_shot(edits: str, **extra: str) -> str:
    """A one-window shot (its start image a plain file) with an ``edits:`` block."""
    fields = {"prompt": "a red ball rolls", "duration": "1.2s", "output": "out/v.mp4"}
    fields.update(extra)
    block = textwrap.indent(textwrap.dedent(edits).strip("\n"), "  ")
    return shot_text(**fields) + "edits:\n" + block + "\n"


def plan_of(folder: Path, text: str, name: str = "shot.yaml"):
    return build_plan(load(write(folder, name, text)).shots[0])


def render(folder: Path, pool, text: str, cache: Path, name: str = "shot.yaml"):
    path = write(folder, name, text)
    shot = load(path).shots[0]
    return LocalExecutor(pool, LocalStore(cache)).render(build_plan(shot)), shot


def pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.array(image)


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory) -> Path:
    """One cache for the tests that compare edit variants (the video windows render once)."""
    return tmp_path_factory.mktemp("edits-cache")


# ---------------------------------------------------------------- layouts (no torch)


def test_a_default_edit_follows_the_documented_one_frame_layout(folder):
    plan = plan_of(folder, edit_shot("""
        - name: e
          image: images/middle.png
          prompt: the ball is blue
          output: renders/e.png
    """))
    (node,) = plan.edits
    # No controls: the edit's own image is the one control, at index 0.
    (control,) = node.edit.controls
    assert control.image.info.path == folder / "images" / "middle.png"
    assert control.index == 0 and control.mask is None
    assert node.edit.target_index == plan.shot.window == 9
    layout = node.layout
    assert layout.latents == (9,)
    assert layout.clean == (0, 10)
    assert layout.history_2x == (11, 12)
    assert layout.history_4x == HISTORY_4X


def test_kisekaeichi_layout_has_two_controls_and_no_post_or_history(folder):
    plan = plan_of(folder, edit_shot("""
        - name: outfit
          image: images/start.png
          prompt: the ball wears stripes
          controls:
            - {image: images/start.png, index: 0}
            - {image: images/end.png, index: 10}
          target_index: 1
          no_post: true
          no_2x: true
          no_4x: true
          output: renders/outfit.png
    """))
    layout = plan.edits[0].layout
    assert layout.latents == (1,)
    assert layout.clean == (0, 10)  # the controls only: 10 is the reference, not the post
    assert layout.history_2x is None and layout.history_4x is None


def test_1f_mc_layout_keeps_the_post_after_its_two_controls(folder):
    plan = plan_of(folder, edit_shot("""
        - name: mc
          image: images/start.png
          prompt: the ball moves on
          controls:
            - {image: images/start.png, index: 0}
            - {image: images/middle.png, index: 1}
          target_index: 9
          no_2x: true
          no_4x: true
          output: renders/mc.png
    """))
    layout = plan.edits[0].layout
    assert layout.latents == (9,)
    assert layout.clean == (0, 1, 10)
    assert layout.history_2x is None and layout.history_4x is None


def test_no_post_alone_drops_only_the_post_index(folder):
    plan = plan_of(folder, edit_shot("""
        - name: e
          image: images/start.png
          prompt: the ball is blue
          no_post: true
          output: renders/e.png
    """))
    layout = plan.edits[0].layout
    assert layout.latents == (9,)
    assert layout.clean == (0,)
    assert layout.history_2x == (11, 12)
    assert layout.history_4x == HISTORY_4X


# ---------------------------------------------------------------- outputs and their cache

ONE_EDIT = """
- name: e
  image: images/start.png
  prompt: the ball is blue
  target_index: 1
  output: renders/e.png
"""


def test_an_edit_output_is_written_once_and_rewritten_from_the_cache(folder, pool, tmp_path):
    text = edit_shot(ONE_EDIT)
    first, shot = render(folder, pool, text, tmp_path / "c")
    png = folder / "renders" / "e.png"
    sidecar = folder / "renders" / "e.png.json"
    assert (first.edits_rendered, first.edits_cached, first.edit_outputs_written) == (1, 0, 1)
    with Image.open(png) as image:
        assert image.format == "PNG" and image.size == (SIZE, SIZE)
    record = json.loads(sidecar.read_text())
    assert record["edit"] == "e" and record["key"] == build_plan(shot).edits[0].key
    written, stamp = png.read_bytes(), png.stat().st_mtime_ns

    again, _ = render(folder, pool, text, tmp_path / "c")
    assert again.edits_rendered == 0 and again.transformer_calls == 0
    assert (again.windows_rendered, again.windows_cached) == (0, 1)
    assert again.edit_outputs_written == 0
    assert png.read_bytes() == written and png.stat().st_mtime_ns == stamp

    # A change to the video alone re-renders its window, not the edit, and leaves its PNG.
    video, _ = render(folder, pool, text.replace("a red ball rolls", "a red ball stops"),
                      tmp_path / "c")
    assert (video.windows_rendered, video.edits_rendered, video.edits_cached) == (1, 0, 1)
    assert video.edit_outputs_written == 0
    assert png.read_bytes() == written and png.stat().st_mtime_ns == stamp

    png.unlink()
    third, _ = render(folder, pool, text, tmp_path / "c")
    assert (third.edits_rendered, third.edits_cached) == (0, 1)
    assert third.transformer_calls == 0 and third.windows_rendered == 0
    assert third.edit_outputs_written == 1
    assert png.read_bytes() == written


def test_an_edit_result_feeds_the_start_image_exactly_as_its_png(folder, pool, tmp_path):
    from_edit = edit_shot(ONE_EDIT, image="{edit: e}", output="out_edit/")
    result, _ = render(folder, pool, from_edit, tmp_path / "c")
    assert result.edits_rendered == 1 and result.windows_rendered == 1
    shutil.copy(folder / "renders" / "e.png", folder / "images" / "e.png")
    from_file = shot_text(prompt="a red ball rolls", duration="1.2s", image="images/e.png",
                          output="out_file/")
    result, _ = render(folder, pool, from_file, tmp_path / "c", name="file.yaml")
    assert result.windows_rendered == 1  # a different key: really rendered again
    edited, plain = png_frames(folder / "out_edit"), png_frames(folder / "out_file")
    assert len(edited) == 37
    assert np.array_equal(edited, plain)


# ---------------------------------------------------------------- keys

TWO_EDITS = """
- name: a
  image: images/start.png
  prompt: the ball is blue
  output: renders/a.png
- name: b
  image: images/middle.png
  prompt: the ball is green
  target_index: 1
  output: renders/b.png
"""


@pytest.mark.parametrize("change", [
    "no_2x: true", "no_4x: true", "no_post: true", "target_index: 5", "prompt",
])
def test_an_edit_setting_rekeys_that_edit_only(folder, change):
    text = edit_shot(TWO_EDITS)
    before = plan_of(folder, text)
    if change == "prompt":
        changed = text.replace("the ball is blue", "the ball is purple")
    else:
        line = "    output: renders/a.png\n"
        changed = text.replace(line, f"{line}    {change}\n")
    assert changed != text
    after = plan_of(folder, changed)
    assert [e.edit.name for e in after.edits] == ["a", "b"]
    assert after.edit_keys["a"] != before.edit_keys["a"]
    assert after.edit_keys["b"] == before.edit_keys["b"]
    assert [w.key for w in after.windows] == [w.key for w in before.windows]


@pytest.mark.parametrize("sampling", ["inverted", "forward"])
@pytest.mark.parametrize("later_keyframe", [False, True])
def test_an_edit_keyframe_rekeys_its_windows_and_those_generated_after(folder, sampling,
                                                                      later_keyframe):
    third = ", image: images/end.png" if later_keyframe else ""
    sections = ("\n  - {prompt: the ball rolls, duration: 1.2s}"
                "\n  - {prompt: the ball jumps, duration: 1.2s, image: {edit: a}}"
                f"\n  - {{prompt: the ball lands, duration: 1.2s{third}}}"
                "\n  - {prompt: the ball stops, duration: 1.2s}")
    text = shot_text(sections=sections, sampling=sampling) + textwrap.dedent("""
        edits:
          - name: a
            image: images/middle.png
            prompt: the ball is blue
    """)
    before = plan_of(folder, text)
    after = plan_of(folder, text.replace("the ball is blue", "the ball is purple"))
    assert after.edit_keys["a"] != before.edit_keys["a"]
    assert len(before.windows) == 4
    # The keyframe's window and the windows after it, up to the next keyframe, start from a.
    uses = {1} if later_keyframe else {1, 2, 3}
    first = min(w.order for w in before.windows if w.index in uses)
    expected = uses | {w.index for w in before.generation_order if w.order > first}
    changed = {i for i, (x, y) in enumerate(zip(before.windows, after.windows)) if x.key != y.key}
    assert changed == expected
    if sampling == "inverted" and later_keyframe:
        assert expected == {0, 1}  # window 0 is generated after window 1; 2 and 3 before


# ---------------------------------------------------------------- flags and masks

FLAG_EDIT = """
- name: e
  image: images/start.png
  prompt: the ball is blue
  controls:
    - {{image: images/start.png, index: 0{mask}}}
  target_index: 1
  output: renders/e.png{flags}
"""


def render_edit(folder: Path, pool, cache: Path, *, control: str = "images/start.png",
                mask: str | None = None, flags: str = "") -> np.ndarray:
    """The pixels of one edit's PNG, the edit next to a plain one-window video."""
    edits = FLAG_EDIT.format(mask="" if mask is None else f", mask: {mask}", flags=flags)
    edits = edits.replace("{image: images/start.png, index", f"{{image: {control}, index")
    result, _ = render(folder, pool, edit_shot(edits), cache)
    assert result.edit_outputs_written == 1
    return pixels(folder / "renders" / "e.png")


@pytest.mark.parametrize("flag", ["no_2x", "no_4x", "no_post"])
def test_each_flag_changes_the_edit(folder, pool, shared_cache, flag):
    plain = render_edit(folder, pool, shared_cache)
    flagged = render_edit(folder, pool, shared_cache, flags=f"\n  {flag}: true")
    assert plain.shape == flagged.shape == (SIZE, SIZE, 3)
    assert not np.array_equal(plain, flagged)


def test_a_white_mask_references_everything_and_a_half_black_mask_does_not(folder, pool,
                                                                           shared_cache):
    Image.new("L", (SIZE, SIZE), 255).save(folder / "images" / "white.png")
    half = np.full((SIZE, SIZE), 255, np.uint8)
    half[:, SIZE // 2:] = 0
    Image.fromarray(half, "L").save(folder / "images" / "half.png")

    plain = render_edit(folder, pool, shared_cache)
    white = render_edit(folder, pool, shared_cache, mask="images/white.png")
    halved = render_edit(folder, pool, shared_cache, mask="images/half.png")
    assert np.array_equal(white, plain)
    assert not np.array_equal(halved, plain)

    keys = {}
    for name, mask in (("plain", ""), ("white", ", mask: images/white.png")):
        text = edit_shot(FLAG_EDIT.format(mask=mask, flags=""))
        keys[name] = plan_of(folder, text).edit_keys["e"]
    assert keys["white"] != keys["plain"]  # a different input, even with the same result


def test_an_alpha_channel_masks_a_control_like_a_mask_file(folder, pool, shared_cache):
    rgb = np.array(Image.open(folder / "images" / "start.png").convert("RGB"))
    ramp = np.tile(np.linspace(0, 255, SIZE).astype(np.uint8), (SIZE, 1))
    alpha = np.where(np.arange(SIZE)[:, None] < SIZE // 4, 0, ramp).astype(np.uint8)
    Image.fromarray(np.dstack([rgb, alpha]), "RGBA").save(folder / "images" / "cutout.png")
    Image.fromarray(alpha, "L").save(folder / "images" / "alpha.png")

    from_alpha = render_edit(folder, pool, shared_cache, control="images/cutout.png")
    from_file = render_edit(folder, pool, shared_cache, mask="images/alpha.png")
    plain = render_edit(folder, pool, shared_cache)
    assert np.array_equal(from_alpha, from_file)
    assert not np.array_equal(from_alpha, plain)  # the alpha really masked the control


def test_an_unchanged_rerender_reports_its_edit_as_cached(folder, pool, shared_cache):
    text = edit_shot(ONE_EDIT)
    render(folder, pool, text, shared_cache)
    again, _ = render(folder, pool, text, shared_cache)
    assert (again.edits_rendered, again.edits_cached) == (0, 1)
    assert again.windows_cached == 1


# ---------------------------------------------------------------- edits feeding edits

CHAIN = """
- name: b
  image: {edit: a}
  prompt: the ball is green
  target_index: 1
  output: renders/b.png
- name: a
  image: images/start.png
  prompt: the ball is blue
  target_index: 1
  output: renders/a.png
"""


def test_an_edit_can_start_from_another_edit(folder, pool, tmp_path):
    text = edit_shot(CHAIN)
    plan = plan_of(folder, text)
    assert [e.edit.name for e in plan.edits] == ["a", "b"]  # a first, though written second
    assert plan.edits[1].needs == ["a"]

    result, _ = render(folder, pool, text, tmp_path / "c")
    assert (result.edits_rendered, result.edit_outputs_written) == (2, 2)
    a, b = pixels(folder / "renders" / "a.png"), pixels(folder / "renders" / "b.png")
    assert a.shape == b.shape == (SIZE, SIZE, 3) and not np.array_equal(a, b)

    # b from {edit: a} is b from a's PNG as a plain file.
    shutil.copy(folder / "renders" / "a.png", folder / "images" / "a.png")
    (folder / "renders" / "b.png").unlink()
    by_file = text.replace("image: {edit: a}", "image: images/a.png")
    result, _ = render(folder, pool, by_file, tmp_path / "c", name="file.yaml")
    assert result.edits_rendered == 1  # b (another key); a is cached
    assert np.array_equal(pixels(folder / "renders" / "b.png"), b)

    changed = text.replace("the ball is blue", "the ball is purple")
    after = plan_of(folder, changed)
    assert after.edit_keys["a"] != plan.edit_keys["a"]
    assert after.edit_keys["b"] != plan.edit_keys["b"]
    assert [w.key for w in after.windows] == [w.key for w in plan.windows]


def test_an_edit_cycle_is_one_line_and_exit_2(folder, capsys):
    path = write(folder, "shot.yaml", edit_shot("""
        - name: a
          image: {edit: b}
          prompt: the ball is blue
          output: renders/a.png
        - name: b
          image: {edit: a}
          prompt: the ball is green
          output: renders/b.png
    """))
    code, out, err = run(capsys, "validate", path)
    assert code == 2
    errors = [line for line in (out + err).splitlines() if "cycle" in line]
    assert len(errors) == 1
    assert re.match(rf"^{re.escape(str(path))}:\d+:\d+: .*cycle", errors[0]), errors[0]
    assert "Traceback" not in out + err
    assert not (folder / "renders").exists()


def test_an_edit_result_can_be_a_mask(folder, pool, shared_cache):
    """A mask given as {edit: m} is that edit's image read as grey levels, like its PNG."""
    mask_edit = """
- name: m
  image: images/end.png
  prompt: a white disc
  target_index: 1
  output: renders/m.png
"""
    from_edit = FLAG_EDIT.format(mask=", mask: {edit: m}", flags="") + mask_edit
    render(folder, pool, edit_shot(from_edit), shared_cache)
    masked_by_edit = pixels(folder / "renders" / "e.png")
    shutil.copy(folder / "renders" / "m.png", folder / "images" / "m-copy.png")
    assert not np.array_equal(masked_by_edit, render_edit(folder, pool, shared_cache))
    assert np.array_equal(masked_by_edit, render_edit(folder, pool, shared_cache,
                                                      mask="images/m-copy.png"))


def test_every_entry_a_render_writes_is_one_gc_keeps(folder, pool, tmp_path):
    """`referenced(plan)` (what gc keeps and a render leases) covers every entry the render
    wrote, including an edit's negative prompt under true CFG."""
    from framepack_render.plan.entries import referenced

    text = edit_shot("""
        - name: e
          image: images/middle.png
          prompt: the ball is blue
          negative_prompt: blurry
          cfg: 2
          steps: 2
          output: renders/e.png
    """, steps="2")
    cache = tmp_path / "cache"
    _, shot = render(folder, pool, text, cache)
    written = {(entry.kind, entry.key) for entry in LocalStore(cache).entries()}
    assert written == referenced(build_plan(shot))
