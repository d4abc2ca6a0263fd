"""Rendering with the tiny model: pipeline parity, outputs, the cache and incremental renders."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open

from framepack_render.store import LocalStore
from framepack_render.plan import build_plan
from framepack_render.run.executor import LocalExecutor
from framepack_render.engines.framepack.models import ModelPool
from framepack_render.engines.framepack.samplers import flow_sigmas, sample_euler, sample_unipc
from framepack_render.shot import load

from .conftest import SIZE, png_frames, run, shot_text, write

def render(folder: Path, pool: ModelPool, text: str, cache: Path, **kwargs):
    path = write(folder, "shot.yaml", text)
    shot = load(path).shots[0]
    return LocalExecutor(pool, LocalStore(cache), **kwargs).render(build_plan(shot)), shot


# ---------------------------------------------------------------- samplers


@pytest.mark.parametrize("sampler", [sample_euler, sample_unipc])
def test_samplers_recover_the_clean_latents_of_an_exact_velocity(sampler):
    torch.manual_seed(0)
    x0 = torch.randn(1, 4, 2, 3, 3)
    noise = torch.randn_like(x0)
    sigmas = flow_sigmas(8, math.log(3.0), 1.0)
    calls = []

    def velocity(x, timestep):  # the true flow for this x0: v = (x - x0) / sigma
        calls.append(float(timestep[0]))
        return (x - x0) / (timestep[0] / 1000.0)

    result = sampler(velocity, noise * 1.0, sigmas)
    assert torch.allclose(result, x0, atol=1e-4)
    assert len(calls) == 8 and min(calls) > 0  # sigma = 0 is never evaluated


def test_unipc_is_more_accurate_than_euler_on_a_curved_flow():
    """Data ~ N(0, s^2): the ideal denoiser is linear and the flow carries noise e to s * e."""
    scale = 0.3

    def velocity(x, timestep):
        sigma = timestep[0] / 1000.0
        x0 = (1 - sigma) * scale ** 2 / ((1 - sigma) ** 2 * scale ** 2 + sigma ** 2) * x
        return (x - x0) / sigma

    noise = torch.linspace(-2, 2, 9).view(1, 1, 1, 3, 3)
    errors = {}
    for name, sampler in (("euler", sample_euler), ("unipc", sample_unipc)):
        result = sampler(velocity, noise.clone(), flow_sigmas(8, 0.0, 1.0))
        errors[name] = float((result - scale * noise).abs().max())
    assert errors["unipc"] < errors["euler"] / 3


def test_flow_sigmas_match_diffusers_dynamic_shifting():
    from diffusers import FlowMatchEulerDiscreteScheduler

    scheduler = FlowMatchEulerDiscreteScheduler(use_dynamic_shifting=True)
    scheduler.set_timesteps(sigmas=np.linspace(1, 0, 26)[:-1], mu=0.85)
    assert torch.equal(scheduler.sigmas, flow_sigmas(25, 0.85, 1.0))


# ---------------------------------------------------------------- parity


@pytest.mark.parametrize("sampling", ["inverted", "forward"])
def test_parity_with_diffusers_pipeline(folder, pool, tmp_path, sampling):
    """Euler + sequential noise reproduce HunyuanVideoFramepackPipeline over three windows."""
    from diffusers import FlowMatchEulerDiscreteScheduler, HunyuanVideoFramepackPipeline
    from diffusers.pipelines.hunyuan_video.pipeline_hunyuan_video_framepack import \
        FramepackSamplingType

    end = sampling == "inverted"
    extra = {"sampler": "euler", "noise": "sequential", "sampling": sampling,
             "prompt": "a red ball rolls", "duration": "3.6s", "output": "out/"}
    if end:
        extra["end_image"] = "images/end.png"
    result, _ = render(folder, pool, shot_text(**extra), tmp_path / "cache")
    assert result.windows_rendered == 3
    ours = png_frames(folder / "out")

    pipe = HunyuanVideoFramepackPipeline(
        text_encoder=pool.text_encoder, tokenizer=pool.tokenizer, transformer=pool.transformer,
        vae=pool.vae, scheduler=FlowMatchEulerDiscreteScheduler(use_dynamic_shifting=True),
        text_encoder_2=pool.text_encoder_2, tokenizer_2=pool.tokenizer_2,
        image_encoder=pool.image_encoder, feature_extractor=pool.feature_extractor)
    pipe.set_progress_bar_config(disable=True)
    video = pipe(
        image=Image.open(folder / "images" / "start.png"),
        last_image=Image.open(folder / "images" / "end.png") if end else None,
        prompt="a red ball rolls", height=SIZE, width=SIZE, num_frames=99,
        latent_window_size=9, num_inference_steps=3, guidance_scale=10.0,
        generator=torch.Generator("cpu").manual_seed(7), output_type="np",
        prompt_template=pool.prompt_template,
        sampling_type=FramepackSamplingType.INVERTED_ANTI_DRIFTING if end
        else FramepackSamplingType.VANILLA).frames[0]
    theirs = (video * 255).round().astype(np.uint8)
    assert ours.shape == theirs.shape == (109, SIZE, SIZE, 3)
    assert np.abs(ours.astype(int) - theirs.astype(int)).max() <= 1
    assert ours.std() > 5  # not a flat image: the comparison means something


# ---------------------------------------------------------------- outputs


def test_every_output_format_decodes_with_the_right_frames_size_and_rate(folder, pool, tmp_path):
    outputs = "[out/v.mp4, out/v.webm, out/v.gif, out/v.mov, out/frames/, out/v.safetensors]"
    result, shot = render(folder, pool, shot_text(output=outputs, fps="24"), tmp_path / "c")
    assert result.outputs_written == 6
    for name in ("v.mp4", "v.webm", "v.gif", "v.mov"):
        with av.open(str(folder / "out" / name)) as container:
            stream = container.streams.video[0]
            frames = sum(1 for _ in container.decode(video=0))
            assert (frames, stream.width, stream.height) == (109, SIZE, SIZE), name
            # GIF delays are whole centiseconds: 24 fps is stored as 4 cs per frame.
            rate = 100 / round(100 / 24) if name.endswith(".gif") else 24
            assert abs(float(stream.average_rate) - rate) < 0.01, name
        sidecar = json.loads((folder / "out" / f"{name}.json").read_text())
        assert sidecar["sections"][0]["prompt"] == "a red ball rolls"
        assert sidecar["windows"] == result.keys
    assert len(png_frames(folder / "out" / "frames")) == 109
    with safe_open(str(folder / "out" / "v.safetensors"), "pt") as latents:
        assert latents.get_tensor("latents").shape == (1, 16, 1 + 3 * 9, SIZE // 8, SIZE // 8)
        assert json.loads(latents.metadata()["seed"]) == 7
    with av.open(str(folder / "out" / "v.mp4")) as container:
        assert "a red ball rolls" in container.metadata.get("comment", "")


def test_post_pingpong_and_interpolation_change_length_and_rate(folder, pool, tmp_path):
    render(folder, pool, shot_text(output="plain/"), tmp_path / "c")
    plain = png_frames(folder / "plain")
    render(folder, pool, shot_text(output="loop/", post="{loop: pingpong}"), tmp_path / "c")
    loop = png_frames(folder / "loop")
    assert len(loop) == 2 * 109 - 2  # there and back, without repeating either end
    assert np.array_equal(loop[:109], plain)
    assert all(np.array_equal(loop[109 + k], plain[107 - k]) for k in range(107))
    render(folder, pool, shot_text(output="smooth/", post="{interpolate: 2, color_match: first}"),
           tmp_path / "c")
    smooth = png_frames(folder / "smooth")
    assert len(smooth) == 2 * 109 - 1
    assert json.loads((folder / "smooth" / "render.json").read_text())["fps"] == 60


# ---------------------------------------------------------------- cache


def test_a_rerender_of_an_unchanged_shot_renders_and_loads_nothing(folder, tmp_path):
    from framepack_render.shot.errors import Mark
    from framepack_render.shot.model import ModelSpec

    text = shot_text(output="out/v.mp4")
    first, _ = render(folder, ModelPool(ModelSpec("tiny", Mark("t"))), text, tmp_path / "c")
    assert first.windows_rendered == 3
    fresh = ModelPool(ModelSpec("tiny", Mark("t")))
    again, _ = render(folder, fresh, text, tmp_path / "c")
    assert (again.windows_rendered, again.windows_cached, again.outputs_up_to_date) == (0, 3, 1)
    assert fresh.loaded == set()


def test_a_corrupt_cache_entry_is_rendered_again_never_used(folder, pool, tmp_path):
    text = shot_text(output="out/")
    first, _ = render(folder, pool, text, tmp_path / "c")
    before = png_frames(folder / "out")
    store = LocalStore(tmp_path / "c")
    entry = store.entry_dir("window", first.keys[1]) / "tensors.safetensors"
    data = bytearray(entry.read_bytes())
    data[-10] ^= 0xFF
    entry.write_bytes(bytes(data))
    shutil.rmtree(folder / "out")
    shutil.rmtree(tmp_path / "c" / "frames")  # decoding must now read the window latents
    again, _ = render(folder, pool, text, tmp_path / "c")
    assert again.corrupt_entries == 1 and again.windows_rendered == 1
    assert store.verify("window", first.keys[1])
    assert np.array_equal(png_frames(folder / "out"), before)


def test_editing_one_section_rerenders_only_what_it_shapes(folder, pool, tmp_path):
    text = shot_text(output="out/")
    render(folder, pool, text, tmp_path / "c")
    # Inverted order: the first section (2 windows) is generated last.
    edited = text.replace("a red ball rolls", "a blue ball rolls")
    result, _ = render(folder, pool, edited, tmp_path / "c")
    assert (result.windows_rendered, result.windows_cached) == (2, 1)
    incremental = {p.name: p.read_bytes() for p in (folder / "out").glob("*.png")}
    shutil.rmtree(folder / "out")
    fresh, _ = render(folder, pool, edited, tmp_path / "fresh")
    assert fresh.windows_rendered == 3
    # Byte for byte: the same PNG files as a fresh render of the edited shot.
    assert {p.name: p.read_bytes() for p in (folder / "out").glob("*.png")} == incremental
    assert len(incremental) == 109


def test_windows_are_reproducible_alone(folder, pool, tmp_path):
    """Per-window noise: a window rendered on its own equals the same window in a full run."""
    text = shot_text(output="out/")
    first, _ = render(folder, pool, text, tmp_path / "a")
    store = LocalStore(tmp_path / "a")
    before = store.read("window", first.keys[0], "tensors.safetensors")
    shutil.rmtree(store.entry_dir("window", first.keys[0]))
    shutil.rmtree(folder / "out")  # an output that is up to date is never rendered again
    again, _ = render(folder, pool, text, tmp_path / "a", force=False)
    assert again.windows_rendered == 1
    assert again.keys == first.keys
    assert store.read("window", first.keys[0], "tensors.safetensors") == before


def test_render_cli_prints_a_json_summary(folder, capsys, tmp_path, monkeypatch):
    path = write(folder, "shot.yaml", shot_text(output="out/v.mp4"))
    code, out, _ = run(capsys, "render", path, "--cache", tmp_path / "c", "--json")
    summary = json.loads(out)
    assert code == 0 and summary["ok"]
    assert summary["windows_rendered"] == 3 and summary["windows_cached"] == 0
    assert summary["outputs"] == [str(folder / "out" / "v.mp4")]
    assert summary["shots"][0]["seconds"]["total"] > 0
    code, out, _ = run(capsys, "render", path, "--cache", tmp_path / "c", "--json")
    assert json.loads(out)["windows_cached"] == 3


def test_missing_weights_are_one_actionable_line_and_exit_2(folder, capsys, tmp_path,
                                                             no_weights):
    path = write(folder, "shot.yaml", shot_text(model="framepack", output="out/v.mp4"))
    code, out, err = run(capsys, "render", path, "--cache", tmp_path / "c")
    lines = [line for line in err.splitlines() if "lllyasviel/FramePackI2V_HY" in line]
    assert code == 2
    assert len(lines) == 1 and lines[0].startswith(f"{path}:1:8: ")
    assert "Traceback" not in err
    assert not (folder / "out").exists()


def test_models_lists_profiles_and_what_is_missing(capsys, tmp_path, no_weights):
    code, out, _ = run(capsys, "models", "--json")
    report = json.loads(out)
    assert code == 0 and set(report) == {"framepack", "framepack-f1", "tiny"}
    assert report["tiny"]["available"] and not report["framepack"]["available"]
    transformer = report["framepack"]["components"][0]
    assert transformer["name"] == "transformer" and "lllyasviel/FramePackI2V_HY" in \
        transformer["where"]


def test_a_preview_grows_after_each_window_and_goes_away_at_the_end(folder, pool, tmp_path,
                                                                    monkeypatch):
    from framepack_render.output.preview import Preview

    seen = []
    original = Preview.add

    def add(self, index, frames):
        original(self, index, frames)
        with av.open(str(self.path)) as container:
            seen.append(sum(1 for _ in container.decode(video=0)))

    monkeypatch.setattr(Preview, "add", add)
    path = write(folder, "shot.yaml", shot_text(output="out/v.mp4"))
    plan = build_plan(load(path).shots[0])
    LocalExecutor(pool, LocalStore(tmp_path / "c"), preview=True).render(plan)
    assert seen == [33, 66, 99]
    assert not (folder / "out" / "v.preview.mp4").exists()
    assert (folder / "out" / "v.mp4").exists()


def test_true_cfg_calls_the_transformer_twice_per_step_and_changes_the_video(folder, pool,
                                                                           tmp_path,
                                                                           monkeypatch):
    calls = []
    embedder = pool.transformer.x_embedder  # runs once per transformer call
    original = embedder.forward
    monkeypatch.setattr(embedder, "forward", lambda *a, **k: calls.append(1) or original(*a, **k))
    one = "{prompt: a red ball rolls, duration: 1.2s}"
    plain, _ = render(folder, pool, shot_text(output="plain/", sections=f"[{one}]"),
                      tmp_path / "c")
    plain_calls, calls[:] = len(calls), []
    cfg, _ = render(folder, pool, shot_text(output="cfg/", sections=f"[{one}]", cfg="3",
                                            negative_prompt="blurry"), tmp_path / "c")
    assert (plain_calls, len(calls)) == (3, 6)
    assert (plain.transformer_calls, cfg.transformer_calls) == (3, 6)  # as --json reports
    assert not np.array_equal(png_frames(folder / "plain"), png_frames(folder / "cfg"))
