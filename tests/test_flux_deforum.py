"""engine: flux-deforum with tiny-flux: pipeline parity, incremental frames, motion, colour,
errors, and validate/plan without torch."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from framepack_render.engines.flux_deforum.color_coherence import match_colors
from framepack_render.engines.flux_deforum.motion import warp
from framepack_render.engines.flux_deforum.noise import (FrameNoise, frame_noise, seed_noise,
                                                         slerp)
from framepack_render.engines.flux_deforum.plan import Motion
from framepack_render.plan import build_plan
from framepack_render.shot import load

from .conftest import HEAVY, QUICKSTART, png_frames, run, run_without, write

SIZE = 64


@pytest.fixture
def flux_dir(tmp_path: Path) -> Path:
    (tmp_path / "images").mkdir()
    Image.open(QUICKSTART / "images" / "start.png").convert("RGB").resize(
        (SIZE, SIZE), Image.LANCZOS).save(tmp_path / "images" / "init.png")
    return tmp_path


def flux_text(**extra: str) -> str:
    lines = {"engine": "flux-deforum", "model": "tiny-flux", "image": "images/init.png",
             "output": "out/", "size": f"{SIZE}x{SIZE}", "frames": "4", "steps": "4",
             "seed": "7"}
    lines.update(extra)
    body = "".join(f"{k}: {v}\n" for k, v in lines.items() if v is not None)
    if "prompts" not in extra:
        body += "prompts:\n  0: a red fox in the snow\n"
    return body


def render_json(capsys, shot: Path, cache: Path, *extra: str) -> dict:
    code, out, err = run(capsys, "render", shot, "--json", "--cache", cache, "--no-preview",
                         *extra)
    assert code == 0, err
    return json.loads(out)


# ---------------------------------------------------------------- parity


@pytest.fixture(scope="module")
def pipeline():
    from diffusers import FluxImg2ImgPipeline

    from framepack_render.engines.flux_deforum.sampler import make_scheduler
    from framepack_render.engines.flux_deforum.tiny import build_tiny

    pipe = FluxImg2ImgPipeline(scheduler=make_scheduler("tiny-flux"), **build_tiny(0))
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.mark.parametrize("cfg", [1, 2])
def test_one_frame_equals_the_img2img_pipeline_bit_for_bit(flux_dir, capsys, pipeline, cfg):
    prompt = "a red fox in the snow"
    negative = "blurry" if cfg > 1 else None
    shot = write(flux_dir, "shot.yaml", flux_text(
        frames="1", strength="0.6", guidance="3.5", seed="1234", cfg=str(cfg),
        prompts="{0: '" + prompt + (f" --neg {negative}" if negative else "") + "'}"))
    render_json(capsys, shot, flux_dir / "cache")
    ours = png_frames(flux_dir / "out")[0]
    expected = pipeline(prompt, image=Image.open(flux_dir / "images" / "init.png"),
                        negative_prompt=negative, true_cfg_scale=float(cfg), strength=0.6,
                        num_inference_steps=4, guidance_scale=3.5, height=SIZE, width=SIZE,
                        generator=torch.Generator().manual_seed(1234),
                        output_type="pil").images[0]
    assert np.array_equal(ours, np.array(expected))


# ---------------------------------------------------------------- incremental


def test_an_unchanged_shot_renders_nothing_and_gc_keeps_its_frames(flux_dir, capsys):
    shot = write(flux_dir, "shot.yaml", flux_text(zoom="1.05"))
    cache = flux_dir / "cache"
    first = render_json(capsys, shot, cache)
    assert (first["windows_rendered"], first["windows_cached"]) == (4, 0)
    again = render_json(capsys, shot, cache)
    assert again["windows_rendered"] == 0 and again["windows_cached"] == 4
    assert again["shots"][0]["outputs_up_to_date"] == 1
    assert again["shots"][0]["components_loaded"] == []
    code, out, _ = run(capsys, "cache", "gc", shot, "--cache", cache, "--json")
    assert code == 0 and json.loads(out)["removed"] == []
    code, out, _ = run(capsys, "cache", "ls", "--cache", cache, "--json")
    assert json.loads(out)["kinds"]["flux-frame"]["entries"] == 4


def test_editing_one_prompt_keyframe_rerenders_only_the_frames_from_it(flux_dir, capsys):
    prompts = "\n  0: a red fox in the snow\n  5: a {} bird in the sky"
    shot = write(flux_dir, "shot.yaml", flux_text(frames="8", angle="2",
                                                  prompts=prompts.format("blue")))
    cache = flux_dir / "cache"
    render_json(capsys, shot, cache)
    before = png_frames(flux_dir / "out")
    write(flux_dir, "shot.yaml", flux_text(frames="8", angle="2",
                                           prompts=prompts.format("green")))
    result = render_json(capsys, shot, cache)
    assert (result["windows_rendered"], result["windows_cached"]) == (3, 5)
    after = png_frames(flux_dir / "out")
    assert np.array_equal(before[:5], after[:5]) and not np.array_equal(before[5:], after[5:])


def test_a_schedule_sets_each_frame_and_its_key(flux_dir):
    shot = write(flux_dir, "shot.yaml", flux_text(frames="5", zoom='"0:(1.0), 2:(1.1), 4:(1.2)"'))
    plan = build_plan(load(shot).shots[0])
    zooms = [n.motion.zoom for n in plan.frames]
    assert zooms[1:] == pytest.approx([1.05, 1.1, 1.15, 1.2]) and zooms[0] == 1.0  # still
    write(flux_dir, "shot.yaml", flux_text(frames="5", zoom='"0:(1.0), 2:(1.1), 4:(1.3)"'))
    edited = build_plan(load(shot).shots[0])
    same = [a.key == b.key for a, b in zip(plan.frames, edited.frames)]
    assert same == [True, True, True, False, False]  # the zoom from frame 3 on changed


# ---------------------------------------------------------------- motion, noise, colour


def dot_image(x: int, y: int, size: int = 64) -> torch.Tensor:
    image = torch.zeros(1, 1, size, size)
    image[0, 0, y - 1:y + 2, x - 1:x + 2] = 1.0
    return image


def centroid(image: torch.Tensor) -> tuple[float, float]:
    weights = image[0, 0].clamp(min=0)
    ys, xs = torch.meshgrid(torch.arange(weights.shape[0]), torch.arange(weights.shape[1]),
                            indexing="ij")
    return float((weights * xs).sum() / weights.sum()), float((weights * ys).sum() / weights.sum())


def test_zoom_above_one_moves_pixels_outward_and_the_camera_follows_deforum():
    centre = 31.5  # the middle of a 64-pixel side, in pixel centres
    image = dot_image(44, 32)
    x, y = centroid(warp(image, Motion(zoom=1.5), 64, 64, keep_statistics=False))
    assert x - centre == pytest.approx(1.5 * (44 - centre), abs=0.5) and abs(y - 32) < 0.5
    x, y = centroid(warp(image, Motion(zoom=0.5), 64, 64, keep_statistics=False))
    assert x - centre == pytest.approx(0.5 * (44 - centre), abs=0.5)
    x, y = centroid(warp(image, Motion(angle=90), 64, 64, keep_statistics=False))
    assert abs(x - centre) < 1 and y < 22  # right of centre turns to above it: counter-clockwise
    x, y = centroid(warp(image, Motion(x=5, y=-3), 64, 64, keep_statistics=False))
    assert (x, y) == (pytest.approx(49, abs=0.3), pytest.approx(29, abs=0.3))


def test_a_still_camera_leaves_the_latent_exactly_as_it_was():
    latent = torch.randn(1, 16, 8, 12)
    assert warp(latent, Motion(), 96, 64) is latent
    moved = warp(latent, Motion(zoom=1.1, angle=5), 96, 64)
    assert torch.allclose(moved.mean((2, 3)), latent.mean((2, 3)), atol=1e-5)
    assert torch.allclose(moved.std((2, 3)), latent.std((2, 3)), atol=1e-5)


@pytest.mark.parametrize("mode", ["fixed", "incremental", "subseed", "slerp"])
def test_noise_modes(flux_dir, mode):
    shot = write(flux_dir, "shot.yaml", flux_text(frames="5", noise_mode=mode,
                                                  noise_delta="0.5" if mode == "slerp" else None))
    plan = build_plan(load(shot).shots[0])
    shape = (1, 16, 8, 8)
    noises = [frame_noise(plan, node, shape) for node in plan.frames]
    assert torch.equal(noises[0], seed_noise(7, shape))  # frame 0 is the pipeline's noise
    same = [torch.equal(noises[0], n) for n in noises[1:]]
    assert all(same) if mode == "fixed" else not any(same)
    if mode == "incremental":
        assert torch.equal(noises[3], seed_noise(10, shape))
    if mode == "subseed":
        assert torch.allclose(noises[-1], seed_noise(8, shape), atol=1e-5)
    walk = FrameNoise(plan, shape)  # a render's: carried from frame to frame
    assert all(torch.equal(walk(node), noise) for node, noise in zip(plan.frames, noises))
    for noise in noises:  # slerp keeps the norm of unit Gaussian noise
        assert abs(noise.norm().item() / math.sqrt(noise.numel()) - 1) < 0.15


def test_slerp_runs_from_one_noise_to_the_other():
    a, b = torch.randn(64), torch.randn(64)
    assert slerp(a, b, 0.0) is a and torch.allclose(slerp(a, b, 1.0), b, atol=1e-5)


def test_color_coherence_keeps_the_mean_colour_near_the_first_frame(flux_dir, capsys):
    drift = {}
    for name, mode in (("none", "none"), ("rgb", "{mode: match_first, space: rgb}"),
                       ("lab", "match_first")):
        folder = flux_dir / name
        shutil.copytree(flux_dir / "images", folder / "images")
        shot = write(folder, "shot.yaml", flux_text(frames="6", zoom="1.1", angle="10",
                                                    color_coherence=mode))
        render_json(capsys, shot, flux_dir / "cache")
        frames = png_frames(folder / "out").astype(float)
        means = frames.reshape(len(frames), -1, 3).mean(1)
        drift[name] = np.abs(means[1:] - means[0]).max()  # grey levels, worst channel
    # tiny-flux's frames are saturated noise: matched in CIELAB, colours out of the sRGB gamut
    # are clipped on the way back, so its mean moves more than the RGB match's.
    assert drift["rgb"] < 1.5 and drift["none"] > 3.0 and drift["lab"] < drift["none"], drift


def test_histogram_matching_moves_colours_to_the_reference():
    rng = np.random.default_rng(0)
    frame = (rng.random((32, 32, 3)) * 120).astype(np.uint8)
    reference = (rng.random((32, 32, 3)) * 100 + 140).astype(np.uint8)
    for space in ("lab", "hsv", "rgb"):
        matched = match_colors(frame, reference, space).reshape(-1, 3).mean(0)
        assert np.abs(matched - reference.reshape(-1, 3).mean(0)).max() < 3, space


# ---------------------------------------------------------------- errors and no torch


@pytest.mark.parametrize("extra, where, message", [
    ({"zoom": '"0:(1.0), 10:(1.1+)"'}, "9:25", "zoom schedule: a value is missing before"),
    ({"sections": "[]"}, "9:1", "unknown key 'sections'"),
    ({"model": "tiny"}, "2:8", "unknown model 'tiny'; did you mean 'tiny-flux'?"),
    ({"strength": '"0:(0.5), 3:(1.5)"'}, "9:11", "strength is 1.16667 at frame 2; it must be"),
    ({"strength": "0"}, "9:11", "strength must be greater than 0"),
    ({"prompts": "{0: a fox, later: a bird}"}, "9:21", "prompt key 'later' is not a frame"),
    ({"engine": "flux-deform"}, "1:9", "unknown engine 'flux-deform'; did you mean"),
])
def test_a_bad_flux_shot_is_one_line_each_and_exit_2(flux_dir, capsys, extra, where, message):
    shot = write(flux_dir, "shot.yaml", flux_text(**extra))
    code, _, err = run(capsys, "render", shot, "--cache", flux_dir / "cache")
    assert code == 2 and not (flux_dir / "out").exists()
    assert any(line.endswith(f"shot.yaml:{where}: " + line.split(f":{where}: ", 1)[-1])
               and message in line for line in err.splitlines()), err
    assert all(line.count(":") >= 3 for line in err.splitlines() if line)


def test_a_flux_key_in_a_framepack_shot_says_which_engine_takes_it(flux_dir, capsys):
    shot = write(flux_dir, "shot.yaml", "model: tiny\nimage: images/init.png\noutput: o.mp4\n"
                                        "prompt: a fox\nduration: 1\nzoom: 1.1\n")
    code, _, err = run(capsys, "validate", shot)
    assert code == 2 and err.strip().endswith(
        "shot.yaml:6:1: 'zoom' is a key of engine: flux-deforum; set engine: flux-deforum, "
        "or remove it")


def test_validate_and_plan_never_import_torch(flux_dir, tmp_path):
    shot = write(flux_dir, "shot.yaml", flux_text(zoom='"0:(1.0), 3:(1.1)"'))
    result = run_without(HEAVY, """
        codes = [main(['validate', sys.argv[1]]),
                 main(['plan', '--cache', sys.argv[2], sys.argv[1]]),
                 main(['plan', '--json', '--cache', sys.argv[2], sys.argv[1]])]
        sys.exit(max(codes))
    """, shot, tmp_path / "cache", timeout=120)
    assert result.returncode == 0, result.stderr
    assert "ok " in result.stdout and "frames" in result.stdout
    plan = json.loads(result.stdout[result.stdout.index('{\n  "cache"'):])["plans"][0]
    assert [w["zoom"] for w in plan["windows"]] == pytest.approx([1.0, 1.0333333, 1.0666667,
                                                                 1.1])


def test_missing_real_weights_is_one_actionable_line(flux_dir, capsys, no_weights):
    shot = write(flux_dir, "shot.yaml", flux_text(model="flux-dev"))
    code, _, err = run(capsys, "render", shot, "--cache", flux_dir / "cache", "--no-preview")
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and not (flux_dir / "out").exists()
    assert lines[0].startswith(f"{shot}:2:8: flux-dev: transformer weights not found") or \
        "shot.yaml:2:8: flux-dev: transformer weights" in lines[0]
    assert "hf download black-forest-labs/FLUX.1-dev --include 'transformer/*'" in lines[0]


def test_flux_dev_weights_load_from_a_local_folder(flux_dir, capsys, tmp_path, monkeypatch):
    """The real profiles' loading path (from_pretrained, local files only), fed with tiny-flux
    saved in diffusers' layout."""
    from framepack_render.engines.flux_deforum.tiny import build_tiny

    monkeypatch.setenv("FRAMEPACK_MODELS", str(tmp_path / "models.yaml"))
    for name, component in build_tiny(0).items():
        component.save_pretrained(flux_dir / "weights" / name)
    shot = write(flux_dir, "shot.yaml", flux_text(model="{profile: flux-dev, path: weights}",
                                                  frames="2"))
    result = render_json(capsys, shot, flux_dir / "cache")
    assert result["windows_rendered"] == 2
    assert set(result["shots"][0]["components_loaded"]) == {
        "transformer", "vae", "text_encoder", "text_encoder_2", "tokenizer", "tokenizer_2"}


def test_single_files_are_recognised_by_their_key_names(tmp_path, monkeypatch):
    from safetensors.numpy import save_file

    from framepack_render.engines.flux_deforum.lookup import locate

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    weights = np.zeros((2, 2), np.float32)
    save_file({"model.diffusion_model.double_blocks.0.img_attn.qkv.weight": weights},
              str(tmp_path / "flux1-dev.safetensors"))
    save_file({"decoder.conv_in.weight": weights}, str(tmp_path / "ae.safetensors"))
    (tmp_path / "models.yaml").write_text(
        f"flux-dev:\n  transformer: {tmp_path / 'flux1-dev.safetensors'}\n"
        f"  vae: {tmp_path / 'flux1-dev.safetensors'}\n")
    found = locate("flux-dev", "transformer", {}, tmp_path / "models.yaml")
    assert found.found and "Black Forest Labs' layout" in found.origin
    wrong = locate("flux-dev", "vae", {}, tmp_path / "models.yaml")
    assert not wrong.found and "holds no FLUX.1 vae" in str(wrong.error)
    assert locate("flux-dev", "vae", {"vae": str(tmp_path / "ae.safetensors")},
                  tmp_path / "models.yaml").found
