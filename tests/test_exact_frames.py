"""Exact frame counts: lengths in frames (or `exact: true`) render the windows they need and
trim the video to the frames asked for, at the end the sampling order reaches last; the trim
re-renders nothing."""

from __future__ import annotations

import json

import pytest

from framepack_render.plan import build_plan
from framepack_render.shot import load

from .conftest import png_frames, run, shot_text, write


def plan_of(folder, **extra: str):
    return build_plan(load(write(folder, "shot.yaml", shot_text(**extra))).shots[0])


@pytest.mark.parametrize("sampling, start, end", [("inverted", 23, 0), ("forward", 0, 23),
                                                  ("endpoints-first", 0, 23)])
def test_fifty_frames_are_fifty_trimmed_where_the_order_ends(folder, sampling, start, end):
    plan = plan_of(folder, prompt="a ball", duration="{frames: 50}", sampling=sampling)
    assert len(plan.windows) == 2 and plan.rendered_frames == 73
    assert plan.total_frames == 50 and (plan.trim.start, plan.trim.end) == (start, end)
    (note,) = [n for n in plan.notes if "exact" in n.message]
    assert "trimmed to 50" in note.message and note.mark.line == 8


def test_seconds_round_unless_exact(folder):
    assert plan_of(folder, prompt="a ball", duration="1.7s").total_frames == 37
    exact = plan_of(folder, prompt="a ball", duration="1.7s", exact="true")
    assert exact.total_frames == 51 and len(exact.windows) == 2


def test_sections_end_in_the_window_that_reaches_them(folder):
    plan = plan_of(folder, sections="\n  - {prompt: a, frames: 40}\n  - {prompt: b, frames: 40}")
    assert [w.slot.section.index for w in plan.windows] == [0, 1, 1]
    assert plan.total_frames == 80


def test_sections_shorter_than_a_window_cannot_be_exact_and_say_so(folder):
    plan = plan_of(folder, sections="\n  - {prompt: a, frames: 12}\n  - {prompt: b, frames: 12}")
    assert plan.total_frames == plan.rendered_frames == 73 and not plan.trim
    assert any("24 frames cannot be exact" in n.message for n in plan.notes)


def test_a_trim_renders_nothing_new_and_keeps_the_untrimmed_frames(folder, capsys, tmp_path):
    cache = tmp_path / "cache"
    for sampling, kept in (("inverted", slice(23, None)), ("forward", slice(0, 50))):
        shot = write(folder, "shot.yaml", shot_text(prompt="a ball", duration="{frames: 73}",
                                                    steps="1", sampling=sampling))
        code, _, err = run(capsys, "render", shot, "--cache", cache, "--no-preview")
        assert code == 0, err
        whole = png_frames(folder / "out")
        assert len(whole) == 73
        write(folder, "shot.yaml", shot_text(prompt="a ball", duration="{frames: 50}",
                                             steps="1", sampling=sampling))
        code, out, err = run(capsys, "render", shot, "--cache", cache, "--json", "--no-preview")
        assert code == 0, err
        assert json.loads(out)["windows_rendered"] == 0
        trimmed = png_frames(folder / "out")
        assert len(trimmed) == 50 and (trimmed == whole[kept]).all()
        assert json.load(open(folder / "out" / "render.json"))["frames"] == 50


def test_set_frames_sets_the_length_of_a_shot_without_such_a_var(folder, capsys, tmp_path):
    shot = write(folder, "shot.yaml", shot_text(prompt="a ball", duration="2.4s"))
    code, out, err = run(capsys, "plan", "--json", shot, "--set", "frames=50",
                         "--cache", tmp_path / "c")
    assert code == 0, err
    assert json.loads(out)["plans"][0]["frames"] == 50
    code, out, err = run(capsys, "plan", write(folder, "two.yaml", shot_text()),
                         "--set", "frames=50", "--cache", tmp_path / "c")
    assert code == 2 and "every section of this shot gives its own length" in err
