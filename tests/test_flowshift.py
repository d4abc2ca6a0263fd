"""The flow-shift schedule against FramePack's published numbers and the study's presets."""

from __future__ import annotations

import math

import pytest

from framepack_render.plan.flowshift import (DETAILS, MU_MAX, MU_MIN, PRESETS, Shift, auto_mu,
                                             resolve_shift, schedule, time_shift, window_tokens)


def test_auto_mu_is_linear_between_the_two_anchor_points():
    assert auto_mu(256) == pytest.approx(0.5)
    assert auto_mu(4096) == pytest.approx(1.15)
    assert auto_mu(2176) == pytest.approx((0.5 + 1.15) / 2)


@pytest.mark.parametrize("width,height,frames,factor", [
    (320, 320, 9, 2.90),   # FramePack at 320x320: mu 1.066
    (416, 416, 9, 4.42),
    (512, 512, 9, 7.0),    # saturates at ln 7
    (640, 608, 9, 7.0),
    (640, 608, 1, 2.04),   # one-frame inference: a single latent frame
    (832, 480, 1, 2.06),
])
def test_balanced_matches_framepacks_own_shift(width, height, frames, factor):
    shift = resolve_shift("balanced", "standard", window_tokens(width, height, frames))
    assert shift.factor == pytest.approx(factor, abs=0.01)
    assert shift.sigma == 1.0


def test_presets_and_details_offset_mu_as_the_study_says():
    tokens = window_tokens(320, 320, 9)
    base = resolve_shift("balanced", "standard", tokens).mu
    offsets = {"subtle": -0.2, "dynamic": 0.1, "talking": -0.15, "dance": -0.05,
               "handdetail": -0.25}
    for preset, offset in offsets.items():
        assert resolve_shift(preset, "standard", tokens).mu == pytest.approx(base + offset)
    assert resolve_shift("balanced", "high", tokens).mu == pytest.approx(base - 0.1)
    assert resolve_shift("handdetail", "extreme", tokens).mu == pytest.approx(base - 0.45)
    assert DETAILS == {"standard": 0.0, "high": -0.1, "extreme": -0.2}


def test_every_preset_documents_its_sigma():
    assert set(PRESETS) == {"balanced", "subtle", "dynamic", "talking", "dance", "handdetail"}
    assert PRESETS["balanced"].sigma == 1.0
    assert all(0.5 < p.sigma < 2 and p.use for p in PRESETS.values())


def test_auto_mu_is_clamped():
    assert resolve_shift("handdetail", "extreme", 16).mu == MU_MIN
    assert resolve_shift("dynamic", "standard", 100_000).mu == pytest.approx(MU_MAX)


def test_explicit_mu_shift_and_sigma_win():
    assert resolve_shift("talking", "high", 5000, mu=0.8) == Shift(0.8, PRESETS["talking"].sigma)
    assert resolve_shift("balanced", "standard", 5000, shift=3.0).mu == pytest.approx(math.log(3))
    assert resolve_shift("balanced", "standard", 5000, sigma=1.3).sigma == 1.3


def test_schedule_runs_from_one_to_exactly_zero_and_decreases():
    sigmas = schedule(25, Shift(math.log(7.0), 1.0))
    assert len(sigmas) == 26 and sigmas[0] == 1.0 and sigmas[-1] == 0.0
    assert all(a > b for a, b in zip(sigmas, sigmas[1:]))
    # FramePack's static-shift form s*t / (1 + (s-1)*t) at sigma 1.
    t = 1 - 1 / 25
    assert sigmas[1] == pytest.approx(7 * t / (1 + 6 * t))


def test_larger_sigma_spends_more_steps_at_both_ends():
    flat, steep = Shift(1.0, 1.0), Shift(1.0, 1.5)
    assert time_shift(0.5, 1.0, 1.0) == pytest.approx(time_shift(0.5, 1.0, 1.5))
    assert time_shift(0.9, steep.mu, steep.sigma) > time_shift(0.9, flat.mu, flat.sigma)
    assert time_shift(0.1, steep.mu, steep.sigma) < time_shift(0.1, flat.mu, flat.sigma)
