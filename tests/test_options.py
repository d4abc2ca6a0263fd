"""Sampling options and model settings: each changes the output where it applies, and the cache
keys of exactly the windows it applies to (and of those generated after them, which continue
from them); nothing else is re-rendered."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from framepack_render.store import LocalStore
from framepack_render.plan import Plan, build_plan
from framepack_render.plan.entries import referenced
from framepack_render.run.executor import Session
from framepack_render.engines.framepack.forward import (TEACACHE_COEFFICIENTS, Contexts,
                                                        RopeScaling, TeaCache, WindowForward)
from framepack_render.shot import load

from .conftest import png_frames, run, write
from .conftest import shot_text as conftest_shot_text

# Three one-window sections; windows of 3 latents keep decoding cheap.
THREE = ("[{prompt: a red ball rolls, frames: 12}, "
         "{prompt: the ball bounces high, frames: 12}, "
         "{prompt: the ball stops, frames: 12}]")


def shot_text(**extra: str) -> str:
    return conftest_shot_text(**({"window": "3"} | extra))


def plan_of(folder: Path, text: str) -> Plan:
    return build_plan(load(write(folder, "shot.yaml", text)).shots[0])


def changed(a: Plan, b: Plan) -> set[int]:
    return {x.index for x, y in zip(a.windows, b.windows) if x.key != y.key}


def generated_from(plan: Plan, first: int) -> set[int]:
    """Window ``first`` and every window generated after it."""
    order = plan.windows[first].order
    return {w.index for w in plan.windows if w.order >= order}


@pytest.fixture(scope="module")
def session(tmp_path_factory) -> Session:
    """One session (pools per model setting, tiny weights) and one cache for the module."""
    return Session(LocalStore(tmp_path_factory.mktemp("cache")))


def render(session: Session, folder: Path, output: str, **extra: str):
    text = shot_text(output=f"{output}/", **({"sections": THREE} | extra))
    result = session.render(plan_of(folder, text))
    return result, png_frames(folder / output)


# ---------------------------------------------------------------- the forward pass


def _inputs(generator: torch.Generator):
    from framepack_render.plan.layout import inverted_layout

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=generator)

    layout = inverted_layout(9, 1)
    mask = torch.ones(1, 20)
    mask[:, 14:] = 0
    return dict(layout=layout, x=randn(1, 16, 9, 8, 8), clean=randn(1, 16, 2, 8, 8),
                x2=randn(1, 16, 2, 8, 8), x4=randn(1, 16, 16, 8, 8), hidden=randn(1, 20, 32),
                mask=mask, pooled=randn(1, 32), image=randn(1, 16, 16))


def test_own_forward_equals_diffusers_forward_and_rope_scaling_changes_it(pool):
    transformer = pool.transformer
    i = _inputs(torch.Generator().manual_seed(0))
    t = torch.tensor([870.0])
    reference = transformer(
        hidden_states=i["x"], timestep=t, encoder_hidden_states=i["hidden"],
        encoder_attention_mask=i["mask"], pooled_projections=i["pooled"],
        image_embeds=i["image"], indices_latents=torch.tensor(i["layout"].latents),
        guidance=torch.tensor([10.0]) * 1000.0, latents_clean=i["clean"],
        indices_latents_clean=torch.tensor(i["layout"].clean), latents_history_2x=i["x2"],
        indices_latents_history_2x=torch.tensor(i["layout"].history_2x),
        latents_history_4x=i["x4"], indices_latents_history_4x=torch.tensor(
            i["layout"].history_4x), return_dict=False)[0]

    def ours(scaling: RopeScaling | None) -> torch.Tensor:
        forward = WindowForward(transformer, i["layout"], Contexts(i["clean"], i["x2"], i["x4"]),
                                i["image"], scaling)
        return forward(i["x"], t, i["hidden"], i["mask"], i["pooled"], 10.0)

    assert torch.equal(ours(None), reference)
    assert torch.equal(ours(RopeScaling(1.0, 0.0)), reference)
    assert not torch.allclose(ours(RopeScaling(0.5, 800.0)), reference)
    assert torch.equal(ours(RopeScaling(0.5, 900.0)), reference)  # below the threshold


# ---------------------------------------------------------------- TeaCache


def test_teacache_polynomial_has_framepack_values():
    expected = {0.0: 0.096, 0.01: 0.071, 0.02: 0.057, 0.05: 0.062, 0.1: 0.129, 0.2: 0.134}
    for x, value in expected.items():
        assert np.polyval(TEACACHE_COEFFICIENTS, x) == pytest.approx(value, abs=1e-3)


@pytest.mark.parametrize("threshold,longest", [(0.1, 1), (0.15, 2)])
def test_teacache_computes_first_and_last_calls_and_bounds_skips_in_a_row(threshold, longest):
    cache = TeaCache(threshold, calls=25)
    base = torch.linspace(1.0, 2.0, 64)
    decisions = []
    for i in range(25):
        computed = cache.compute(base * (1 + 0.03 * math.sin(i)))
        decisions.append(computed)
        if computed:
            cache.residual = torch.zeros(1)
    assert decisions[0] and decisions[-1]
    runs = "".join("c" if d else "s" for d in decisions).split("c")
    assert max(len(r) for r in runs) == longest
    assert cache.skipped == decisions.count(False) > 0


def test_teacache_with_a_vanishing_threshold_equals_teacache_off(session, folder):
    off, frames_off = render(session, folder, "off", steps="6")
    on, frames_on = render(session, folder, "tiny-threshold", steps="6", teacache="0.000001")
    assert on.windows_rendered == 3 and on.teacache_skipped == 0
    assert on.teacache_skipped_share == 0.0 and off.teacache_skipped_share is None
    assert np.array_equal(frames_on, frames_off)


def test_teacache_on_one_section_skips_calls_changes_frames_and_rekeys_that_window(session,
                                                                                  folder):
    sections = THREE.replace("{prompt: a red ball rolls, frames: 12}",
                             "{prompt: a red ball rolls, frames: 12, teacache: 0.15}")
    base = plan_of(folder, shot_text(sections=THREE, steps="8"))
    with_cache = plan_of(folder, shot_text(sections=sections, steps="8"))
    assert changed(base, with_cache) == {0}  # the first section, generated last

    off, frames_off = render(session, folder, "tc-off", steps="8")
    on, frames_on = render(session, folder, "tc-on", steps="8", sections=sections)
    assert (on.windows_rendered, on.windows_cached) == (1, 2)
    assert on.transformer_calls == 8 and 0 < on.teacache_skipped < 8
    assert on.teacache_skipped_share == round(on.teacache_skipped / 8, 4)
    assert not np.array_equal(frames_on, frames_off)


# ---------------------------------------------------------------- experimental options


@pytest.mark.parametrize("option", ["context_blur: {sigma: 1.5, alpha: 0.5}",
                                    "context_decay: 0.3"])
def test_context_options_change_windows_that_have_a_history(session, folder, option):
    experimental = "{" + option + "}"
    base = plan_of(folder, shot_text(sections=THREE))
    assert changed(base, plan_of(folder, shot_text(sections=THREE,
                                                   experimental=experimental))) == {0, 1}
    forward = plan_of(folder, shot_text(sections=THREE, sampling="forward"))
    assert changed(forward, plan_of(folder, shot_text(
        sections=THREE, sampling="forward", experimental=experimental))) == {0, 1, 2}

    _, frames_base = render(session, folder, "ctx-base")
    result, frames = render(session, folder, "ctx-" + option[:9], experimental=experimental)
    assert (result.windows_rendered, result.windows_cached) == (2, 1)  # the last window had
    assert not np.array_equal(frames, frames_base)  # nothing but zeros as history


def test_cfg_schedule_scales_the_distilled_guidance_in_every_window(session, folder):
    experimental = "{cfg_schedule: {beta: 0.6}}"
    base = plan_of(folder, shot_text(sections=THREE))
    assert changed(base, plan_of(folder, shot_text(sections=THREE,
                                                   experimental=experimental))) == {0, 1, 2}
    _, frames_base = render(session, folder, "cfg-base")
    result, frames = render(session, folder, "cfg-scheduled", experimental=experimental)
    assert result.windows_rendered == 3
    assert not np.array_equal(frames, frames_base)


# ---------------------------------------------------------------- endpoints-first


def test_endpoints_first_bridges_the_window_after_the_first(session, folder):
    plan = plan_of(folder, shot_text(sections=THREE, sampling="endpoints-first"))
    assert [w.index for w in plan.generation_order] == [2, 0, 1]
    bridged = [w.index for w in plan.windows if w.bridge]
    assert bridged == [1]
    middle = plan.windows[1]
    assert middle.layout.latents == (1, 2, 3)  # right after its prefix
    assert middle.inputs["prefix_window"] == plan.windows[0].key
    assert not any(w.bridge for w in plan_of(folder, shot_text(sections=THREE)).windows)
    keyframed = THREE.replace("{prompt: the ball bounces high, frames: 12}",
                              "{prompt: the ball bounces high, frames: 12, "
                              "image: images/middle.png}")
    assert not any(w.bridge for w in plan_of(folder, shot_text(
        sections=keyframed, sampling="endpoints-first")).windows)

    _, inverted = render(session, folder, "order-inverted")
    result, endpoints = render(session, folder, "order-endpoints", sampling="endpoints-first")
    assert result.windows_rendered == 3
    assert not np.array_equal(inverted, endpoints)


# ---------------------------------------------------------------- model settings


def _lora(path: Path, seed: int, scale: float = 1.0) -> Path:
    """A musubi-tuner LoRA for two linear layers of the tiny transformer."""
    generator = torch.Generator().manual_seed(seed)
    tensors = {}
    for module in ("transformer_blocks_0_attn_to_q", "single_transformer_blocks_0_proj_out"):
        rows = 16
        cols = 16 if "to_q" in module else 80
        tensors[f"lora_unet_{module}.lora_down.weight"] = torch.randn(2, cols,
                                                                      generator=generator)
        tensors[f"lora_unet_{module}.lora_up.weight"] = torch.randn(rows, 2,
                                                                    generator=generator) * scale
        tensors[f"lora_unet_{module}.alpha"] = torch.tensor(2.0)
    save_file(tensors, str(path))
    return path


def _model(**settings: str) -> str:
    return "{profile: tiny, " + ", ".join(f"{k}: {v}" for k, v in settings.items()) + "}"


def _kinds(plan: Plan) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for kind, key in referenced(plan):
        found.setdefault(kind, set()).add(key)
    return found


@pytest.mark.parametrize("settings,rekeys_windows,rekeys_frames", [
    ({"dtype": "bfloat16"}, True, True),
    ({"dtype": "float32"}, False, False),  # the tiny model's own dtype
    ({"attention": "sdpa"}, False, False),
    ({"rope_scaling": "{factor: 0.5, timestep_threshold: 800}"}, True, True),
    ({"offload": "blocks", "vram_gb": "2"}, False, False),
    ({"offload": "model"}, False, False),
    ({"vae_tiling": "true"}, False, True),
    ({"lora": "[{path: lora.safetensors}]"}, True, True),
])
def test_model_settings_rekey_exactly_what_they_change(folder, settings, rekeys_windows,
                                                       rekeys_frames):
    _lora(folder / "lora.safetensors", 1)
    text = shot_text(sections=THREE, edits="[{name: e, image: images/end.png, prompt: red, "
                                           "output: e.png}]")
    base = _kinds(plan_of(folder, text))
    other = _kinds(plan_of(folder, text.replace("model: tiny", f"model: {_model(**settings)}")))
    assert (base["window"] != other["window"]) == rekeys_windows
    assert (base["edit"] != other["edit"]) == rekeys_windows
    assert (base["frames"] != other["frames"]) == rekeys_frames
    assert base["prompt"] == other["prompt"] and base["image"] == other["image"]


def test_lora_changes_frames_and_its_contents_are_in_the_keys(session, folder):
    lora = _lora(folder / "lora.safetensors", 1)
    model = _model(lora="[{path: lora.safetensors, scale: 0.8}]")
    first = plan_of(folder, shot_text(sections=THREE, model=model))
    _lora(lora, 2)  # same path, other weights
    second = plan_of(folder, shot_text(sections=THREE, model=model))
    assert changed(first, second) == {0, 1, 2}

    _, frames_base = render(session, folder, "lora-none")
    result, frames = render(session, folder, "lora", model=model)
    assert result.windows_rendered == 3 and "transformer" in result.components_loaded
    assert not np.array_equal(frames, frames_base)


@pytest.mark.parametrize("settings", [{"dtype": "bfloat16"},
                                      {"rope_scaling": "{factor: 0.5}"}])
def test_transformer_settings_change_frames(session, folder, settings):
    _, frames_base = render(session, folder, "settings-base")
    result, frames = render(session, folder, "settings-" + next(iter(settings)),
                            model=_model(**settings))
    assert result.windows_rendered == 3
    assert not np.array_equal(frames, frames_base)


def test_vae_tiling_decodes_again_from_cached_windows(session, folder):
    _, frames_base = render(session, folder, "tiling-base")
    result, frames = render(session, folder, "tiling", model=_model(vae_tiling="true"))
    assert (result.windows_rendered, result.segments_cached) == (0, 0)
    assert not np.array_equal(frames, frames_base)


def test_offload_on_the_cpu_renders_the_same_frames_from_cache(session, folder):
    _, frames_base = render(session, folder, "offload-base")
    result, frames = render(session, folder, "offload", model=_model(offload="model"))
    assert result.windows_rendered == 0 and np.array_equal(frames, frames_base)


def test_flash_attention_on_the_cpu_is_refused_in_one_line(capsys, folder, tmp_path,
                                                          monkeypatch):
    monkeypatch.chdir(folder)
    path = write(folder, "shot.yaml", shot_text(model=_model(attention="flash")))
    code, out, err = run(capsys, "render", path, "--cache", tmp_path / "c", "--device", "cpu")
    assert code == 2
    line = err.strip().splitlines()[-1]
    assert line.startswith("shot.yaml:1:8: ") and "attention: flash needs a CUDA GPU" in line
    assert not (folder / "out").exists()


@pytest.mark.parametrize("content,message", [
    (None, "LoRA 'lora.safetensors' does not exist"),
    (b"not a model", "LoRA 'lora.safetensors' is not a safetensors file"),
])
def test_a_bad_lora_is_a_one_line_error(capsys, folder, content, message, monkeypatch):
    monkeypatch.chdir(folder)
    if content is not None:
        (folder / "lora.safetensors").write_bytes(content)
    model = _model(lora="[{path: lora.safetensors}]")
    path = write(folder, "shot.yaml", shot_text(model=model))
    code, out, err = run(capsys, "validate", path)
    assert code == 2
    assert err.strip().splitlines() == [f"shot.yaml:1:38: {message}"]


def test_transition_mu_boost_renders_again_only_where_the_prompt_changes(session, folder):
    sections = ("[{prompt: a red ball rolls, frames: 12}, {prompt: the ball stops, frames: 12}, "
                "{prompt: the ball stops, frames: 12}]")
    experimental = "{transition_mu_boost: 0.4}"
    base = plan_of(folder, shot_text(sections=sections, sampling="forward"))
    boosted = plan_of(folder, shot_text(sections=sections, sampling="forward",
                                        experimental=experimental))
    assert boosted.windows[1].shift.mu > base.windows[1].shift.mu
    assert changed(base, boosted) == generated_from(base, 1) == {1, 2}

    _, frames_base = render(session, folder, "mu-base", sections=sections, sampling="forward")
    result, frames = render(session, folder, "mu-boost", sections=sections, sampling="forward",
                            experimental=experimental)
    assert (result.windows_rendered, result.windows_cached) == (2, 1)
    assert np.array_equal(frames[:4], frames_base[:4])  # before the first seam
    assert not np.array_equal(frames, frames_base)


def test_watch_follows_lora_files(folder):
    lora = _lora(folder / "lora.safetensors", 1)
    text = shot_text(model=_model(lora="[{path: lora.safetensors}]"))
    shot = load(write(folder, "shot.yaml", text)).shots[0]
    assert lora.resolve() in shot.dependencies()
