"""Drift, flicker and transition metrics on synthetic videos whose answers are known: a hard cut
at frame k, a slow cross-fade, a ghost of the previous scene, a steady colour shift, a still."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from framepack_render.evaluate import metrics as m
from framepack_render.evaluate.score import score_video

FPS = 30
SIDE = 64


@pytest.fixture(autouse=True)
def no_clip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty Hugging Face cache: CLIP is unavailable unless a test provides it."""
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hub"))


def texture(seed: int, side: int = SIDE) -> np.ndarray:
    """A smooth random picture spanning 0-255, like a blurry photograph."""
    from scipy import ndimage

    noise = ndimage.gaussian_filter(np.random.default_rng(seed).random((side, side, 3)),
                                    (2, 2, 0))
    noise = (noise - noise.min()) / (noise.max() - noise.min())
    return (noise * 255).astype(np.uint8)


def write_frames(folder: Path, frames: list[np.ndarray]) -> Path:
    """A frames folder as the ``frames`` output writes it (lossless)."""
    folder.mkdir(parents=True, exist_ok=True)
    for index, frame in enumerate(frames):
        Image.fromarray(frame).save(folder / f"{index:06d}.png", compress_level=1)
    return folder


def write_video(path: Path, frames: list[np.ndarray], fmt: str = "mp4", fps: int = FPS
                ) -> Path:
    from framepack_render.output.encode import open_sink

    height, width = frames[0].shape[:2]
    with open_sink(path, fmt, width=width, height=height, fps=fps) as sink:
        sink.write(np.stack(frames))
    return path


def blend(a: np.ndarray, b: np.ndarray, weight: float) -> np.ndarray:
    return np.clip((1 - weight) * a.astype(np.float32) + weight * b, 0, 255).astype(np.uint8)


A, B, C = texture(1), texture(2), texture(3)


# ---------------------------------------------------------------- pure functions


def test_colorfulness_is_zero_for_grey_and_grows_with_saturation() -> None:
    grey = np.full_like(A, 128)
    dull = blend(grey, A, 0.3)
    assert m.colorfulness(grey) == 0.0
    assert 0 < m.colorfulness(dull) < m.colorfulness(A)


def test_sharpness_falls_when_a_picture_is_blurred() -> None:
    from scipy import ndimage

    y = m.luma(A)
    assert m.sharpness(ndimage.gaussian_filter(y, 1.5)) < 0.5 * m.sharpness(y)


def test_drift_compares_the_first_and_last_fifteen_percent() -> None:
    assert m.drift([5.0] * 40) == 0.0
    values = [0.0] * 6 + [1.0] * 28 + [3.0] * 6  # 15% of 40 frames is 6
    assert m.drift(values) == pytest.approx(3.0)


def test_brisque_scores_a_blurred_picture_worse() -> None:
    from scipy import ndimage
    from skimage import data

    photo = np.asarray(Image.fromarray(data.astronaut()).resize((128, 128)))
    blurred = ndimage.gaussian_filter(photo, (2, 2, 0))
    sharp_score, blurred_score = m.brisque(photo), m.brisque(blurred)
    assert 0 < sharp_score < blurred_score


def test_settle_threshold_follows_the_video_and_never_drops_below_codec_noise() -> None:
    assert m.settle_threshold([0.0] * 50 + [40.0]) == m.SETTLE_FLOOR
    busy = [6.0, 6.5, 5.5] * 20
    assert 6.5 < m.settle_threshold(busy) < 10


def test_latency_of_cuts_fades_and_changes_that_never_settle() -> None:
    quiet = [0.0] * 100
    cut = quiet.copy()
    cut[40] = 30.0
    fade = [0.0] * 40 + [3.0] * 24 + [0.0] * 36
    ripple = [0.0] * 40 + [3.0] * 60
    late = [0.0] * 55 + [20.0] + [0.0] * 44
    options = {"threshold": 1.0, "reaction": 30}
    assert m.transition_latency(cut, 40, 100, **options).frames == 1
    assert m.transition_latency(fade, 40, 100, **options).frames == 24
    never = m.transition_latency(ripple, 40, 100, **options)
    assert (never.frames, never.settled) == (60, False)
    nothing = m.transition_latency(late, 20, 100, **options)  # the cut comes 35 frames late
    assert (nothing.frames, nothing.responded) == (0, False)
    assert m.transition_latency(late, 40, 100, **options).frames == 16


# ---------------------------------------------------------------- videos


def test_a_hard_cut_settles_at_once_and_a_late_one_counts_from_the_prompt(
        tmp_path: Path) -> None:
    video = write_video(tmp_path / "cut.mp4", [A] * 45 + [B] * 45)
    on_time = score_video(video, at_seconds=[45 / FPS])["transitions"][0]
    assert on_time["frame"] == 45 and on_time["latency_frames"] <= 2
    early = score_video(video, at_seconds=[35 / FPS])["transitions"][0]
    assert 10 <= early["latency_frames"] <= 12  # the picture changes 10 frames after the prompt


def test_a_slow_fade_takes_about_its_length(tmp_path: Path) -> None:
    fade = [blend(A, B, w) for w in np.linspace(0, 1, 25)[1:]]  # 24 frames
    video = write_frames(tmp_path / "fade", [A] * 40 + fade + [B] * 40)
    transition = score_video(video, at_seconds=[40 / FPS])["transitions"][0]
    assert abs(transition["latency_frames"] - 24) <= 3
    assert transition["settled"]


def test_ghosting_is_high_only_where_the_previous_scene_lingers(tmp_path: Path) -> None:
    haunted = blend(B, A, 0.4)  # scene B with A showing through
    ghost = write_frames(tmp_path / "ghost", [A] * 30 + [haunted] * 30 + [C] * 30)
    clean = write_frames(tmp_path / "clean", [A] * 30 + [B] * 30 + [C] * 30)
    at = [1.0, 2.0]
    ghosted = [t["ghosting"] for t in score_video(ghost, at_seconds=at)["transitions"]]
    plain = [t["ghosting"] for t in score_video(clean, at_seconds=at)["transitions"]]
    assert ghosted[0] > 0.4 and ghosted[0] > plain[0] + 0.25
    assert ghosted[1] < 0.25 and max(plain) < 0.25
    result = score_video(ghost, at_seconds=at)
    assert result["metrics"]["ghosting"] == ghosted[0]  # the headline is the worst transition


def test_colour_drift_grows_with_a_steady_colour_shift(tmp_path: Path) -> None:
    def shifted(rate: float) -> list[np.ndarray]:
        frames = []
        for t in range(60):
            frame = A.astype(np.float32)
            frame[..., 0] += rate * t  # redder and less blue as time goes on
            frame[..., 2] -= rate * t
            frames.append(np.clip(frame, 0, 255).astype(np.uint8))
        return frames

    slow = score_video(write_frames(tmp_path / "slow", shifted(0.5)))
    fast = score_video(write_frames(tmp_path / "fast", shifted(1.0)))
    assert 3 < slow["metrics"]["color_drift"] < fast["metrics"]["color_drift"]
    distance = fast["per_frame"]["delta_e_to_first"]
    assert distance[0] == 0 and distance[20] < distance[40] < distance[59]


def test_a_still_video_does_not_drift(tmp_path: Path) -> None:
    result = score_video(write_video(tmp_path / "still.mp4", [A] * 40))
    metrics = result["metrics"]
    for name in ("sharpness_drift", "colorfulness_drift", "brisque_drift", "color_drift"):
        assert metrics[name] == pytest.approx(0, abs=1e-6), name
    assert metrics["flicker"] == pytest.approx(0, abs=0.05)
    assert min(result["per_frame"]["ssim_to_first"]) > 0.999
    assert metrics["sharpness"] > 0 and metrics["brisque"] is not None


@pytest.mark.parametrize("fmt, fps", [("webm", 30), ("gif", 25)])  # GIF: whole centiseconds
def test_other_containers_read_like_mp4(tmp_path: Path, fmt: str, fps: int) -> None:
    video = write_video(tmp_path / f"cut.{fmt}", [A] * 20 + [B] * 20, fmt, fps)
    result = score_video(video, at_seconds=[20 / fps])
    assert result["frames"] == 40 and result["fps"] == pytest.approx(fps)
    assert result["transitions"][0]["latency_frames"] <= 2
