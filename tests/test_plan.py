"""The planner: windows from durations, generation orders, index layouts and conditioning."""

from __future__ import annotations

import pytest

from framepack_render.plan import build_plan, generation_order
from framepack_render.plan.layout import (forward_layout, inverted_layout, latent_paddings,
                                          one_frame_layout)
from framepack_render.shot import load

from .conftest import write


def plan_of(folder, text, **kwargs):
    path = write(folder, "shot.yaml", text)
    loaded = load(path, **kwargs)
    return build_plan(loaded.shots[0])


SHOT = """
model: tiny
image: images/start.png
output: out.mp4
size: 256x256
sampling: {sampling}
sections:
  - prompt: one
    duration: 2.4s
  - prompt: two
    duration: 1.2s
  - prompt: three
    duration: 1.2s
"""


def test_sections_round_to_whole_windows_and_each_rounding_is_reported(shot_dir):
    plan = plan_of(shot_dir, """
        model: tiny
        image: images/start.png
        output: out.mp4
        size: 256x256
        sections:
          - {prompt: a, duration: 2.4s}      # 72 frames: exactly 2 windows
          - {prompt: b, duration: 1.0}       # 30 frames -> 1 window
          - {prompt: c, duration: {frames: 100}}  # 100 frames -> 3 windows
          - {prompt: d, frames: 10}          # at least one window
    """)
    assert [w.slot.section.index for w in plan.windows] == [0, 0, 1, 2, 2, 2, 3]
    assert plan.total_frames == 36 * 7 + 1
    notes = [str(n) for n in plan.notes]
    assert len(notes) == 3
    assert "shot.yaml:7:" in notes[0] and "30 frames" in notes[0] and "1 window = 36" in notes[0]
    assert "100 frames" in notes[1] and "3 windows = 108" in notes[1]
    assert "10 frames" in notes[2]


def test_window_size_changes_frames_per_window(shot_dir):
    plan = plan_of(shot_dir, """
        model: tiny
        image: images/start.png
        output: out.mp4
        size: 256x256
        window: 5
        prompt: a
        duration: 2s
    """)
    assert len(plan.windows) == 3  # 60 frames / 20 per window
    assert plan.total_frames == 61
    assert plan.windows[0].layout.latents == (1, 2, 3, 4, 5)


@pytest.mark.parametrize("sampling,order", [
    ("inverted", [3, 2, 1, 0]),
    ("forward", [0, 1, 2, 3]),
    ("endpoints-first", [3, 0, 2, 1]),
])
def test_generation_order_of_each_sampling_mode(shot_dir, sampling, order):
    plan = plan_of(shot_dir, SHOT.format(sampling=sampling))
    assert [w.index for w in plan.generation_order] == order
    assert generation_order(4, sampling) == order
    firsts = plan.generation_order
    assert firsts[0].after is None
    assert all(b.after == a.key for a, b in zip(firsts, firsts[1:]))


def test_default_sampling_follows_the_model(shot_dir):
    text = SHOT.replace("sampling: {sampling}\n", "")
    assert plan_of(shot_dir, text).shot.sampling == "inverted"
    f1 = plan_of(shot_dir, text.replace("model: tiny", "model: framepack-f1"))
    assert f1.shot.sampling == "forward"


def test_latent_paddings_follow_framepack():
    assert latent_paddings(1) == [0]
    assert latent_paddings(4) == [3, 2, 1, 0]
    assert latent_paddings(6) == [3, 2, 2, 2, 1, 0]


@pytest.mark.parametrize("padding,window,clean,x2,x4", [
    (3, range(28, 37), (0, 37), (38, 39), range(40, 56)),
    (2, range(19, 28), (0, 28), (29, 30), range(31, 47)),
    (1, range(10, 19), (0, 19), (20, 21), range(22, 38)),
    (0, range(1, 10), (0, 10), (11, 12), range(13, 29)),
])
def test_inverted_layout_matches_framepacks_traced_indices(padding, window, clean, x2, x4):
    layout = inverted_layout(9, padding)
    assert layout.latents == tuple(window)
    assert layout.clean == clean
    assert layout.history_2x == x2
    assert layout.history_4x == tuple(x4)


def test_inverted_plan_uses_the_padding_schedule_in_generation_order(shot_dir):
    plan = plan_of(shot_dir, SHOT.format(sampling="inverted"))
    assert [w.padding for w in plan.generation_order] == [3, 2, 1, 0]
    assert plan.windows[0].layout.latents == tuple(range(1, 10))


def test_forward_layout_matches_framepack_f1():
    layout = forward_layout(9)
    assert layout.history_4x == tuple(range(1, 17))
    assert layout.history_2x == (17, 18)
    assert layout.clean == (0, 19)
    assert layout.latents == tuple(range(20, 29))


@pytest.mark.parametrize("flags,clean,has_2x,has_4x", [
    ({}, (0, 10), True, True),
    ({"no_post": True}, (0,), True, True),
    ({"no_2x": True, "no_4x": True}, (0, 10), False, False),
    ({"no_post": True, "no_2x": True, "no_4x": True}, (0,), False, False),
])
def test_one_frame_layout_matches_musubi(flags, clean, has_2x, has_4x):
    args = {"no_post": False, "no_2x": False, "no_4x": False, **flags}
    layout = one_frame_layout(9, 9, [0], **args)
    assert layout.latents == (9,)
    assert layout.clean == clean
    assert (layout.history_2x == (11, 12)) if has_2x else layout.history_2x is None
    assert (layout.history_4x == tuple(range(13, 29))) if has_4x else layout.history_4x is None


def test_kisekaeichi_layout_puts_controls_at_their_indices():
    layout = one_frame_layout(9, 1, [0, 10], no_post=True, no_2x=True, no_4x=True)
    assert layout.latents == (1,) and layout.clean == (0, 10)


def test_keyframe_is_the_prefix_until_the_next_one_and_its_first_window_starts_on_it(shot_dir):
    plan = plan_of(shot_dir, """
        model: tiny
        image: images/start.png
        output: out.mp4
        size: 256x256
        sections:
          - {prompt: a, duration: 2.4s}
          - {prompt: b, duration: 2.4s, image: images/middle.png}
          - {prompt: c, duration: 1.2s}
    """)
    prefixes = [w.prefix.text for w in plan.windows]
    assert prefixes == ["images/start.png"] * 2 + ["images/middle.png"] * 3
    assert [w.slot.keyframe for w in plan.windows] == [False, False, True, False, False]
    assert plan.windows[2].padding == 0
    assert plan.windows[2].layout.latents[0] == 1  # right after the keyframe latent


def test_end_image_conditions_only_the_last_window(shot_dir):
    for sampling in ("inverted", "endpoints-first"):
        text = SHOT.format(sampling=sampling) + "end_image: images/end.png\n"
        plan = plan_of(shot_dir, text)
        assert [w.uses_end_image for w in plan.windows] == [False, False, False, True]
        assert plan.generation_order[0].uses_end_image


def test_blend_interpolates_over_the_rounded_windows(shot_dir):
    plan = plan_of(shot_dir, """
        model: tiny
        image: images/start.png
        output: out.mp4
        size: 256x256
        sections:
          - {prompt: calm, duration: 1.2s}
          - {prompt: storm, duration: 4.8s, blend: 2.4s}
    """)
    blends = [(w.slot.blend_from, round(w.slot.blend_alpha, 3)) for w in plan.windows]
    assert blends == [(None, 1.0), ("calm", 0.333), ("calm", 0.667), (None, 1.0), (None, 1.0)]


def test_a_section_without_prompt_continues_the_previous_one(shot_dir):
    plan = plan_of(shot_dir, """
        model: tiny
        image: images/start.png
        output: out.mp4
        size: 256x256
        sections:
          - {prompt: walking, duration: 1.2s}
          - {duration: 1.2s, seed: 7}
    """)
    assert [w.slot.prompt for w in plan.windows] == ["walking", "walking"]


def test_one_section_shorthand(shot_dir):
    plan = plan_of(shot_dir, """
        model: tiny
        image: images/start.png
        output: out.mp4
        size: 256x256
        prompt: a ball rolls
        duration: 3.6s
    """)
    assert len(plan.windows) == 3 and {w.slot.prompt for w in plan.windows} == {"a ball rolls"}


def test_section_flow_shift_merges_over_the_shots(shot_dir):
    plan = plan_of(shot_dir, """
        model: tiny
        image: images/start.png
        output: out.mp4
        size: 320x320
        flow_shift: talking
        sections:
          - {prompt: a, duration: 1.2s}
          - {prompt: b, duration: 1.2s, flow_shift: {detail: high}}
          - {prompt: c, duration: 1.2s, flow_shift: 3.0}
    """)
    talking, talking_high, fixed = (w.shift for w in plan.windows)
    assert talking_high.mu == pytest.approx(talking.mu - 0.1)
    assert talking.sigma == talking_high.sigma == 1.05
    assert fixed.factor == pytest.approx(3.0)


def test_transition_mu_boost_applies_where_the_prompt_changes(shot_dir):
    plan = plan_of(shot_dir, """
        model: tiny
        image: images/start.png
        output: out.mp4
        size: 320x320
        experimental: {transition_mu_boost: 0.2}
        sections:
          - {prompt: a, duration: 2.4s}
          - {prompt: b, duration: 2.4s}
    """)
    mus = [w.shift.mu for w in plan.windows]
    assert mus[2] == pytest.approx(mus[0] + 0.2)
    assert mus[0] == mus[1] == mus[3]


def test_edits_come_before_the_windows_that_use_them(shot_dir):
    plan = plan_of(shot_dir, """
        model: tiny
        image: {edit: second}
        output: out.mp4
        size: 256x256
        prompt: a
        duration: 1.2s
        edits:
          - name: second
            image: {edit: first}
            prompt: then this
          - name: first
            image: images/start.png
            prompt: first this
            target_index: 1
            controls: [{image: images/start.png, index: 0}, {image: images/end.png, index: 10}]
            no_post: true
    """)
    assert [e.edit.name for e in plan.edits] == ["first", "second"]
    assert plan.edits[1].needs == ["first"]
    assert plan.edits[0].layout.clean == (0, 10)
    assert plan.edits[1].edit.target_index == 9  # defaults to the window
    assert plan.windows[0].inputs["prefix"] == {"edit": plan.edits[1].key}
