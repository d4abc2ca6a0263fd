"""The tiny model, the model pool, weight lookup and the safety rules of loading."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from framepack_render.engines.framepack import lookup, models, tiny
from framepack_render.engines.framepack.models import (COMPONENTS, Components, MissingWeights,
                                                       ModelError, ModelPool, ModelsFileError,
                                                       UnsafeWeights, availability,
                                                       load_transformer_file, locate)
from framepack_render.engines.framepack.tiny import TINY_PROMPT_TEMPLATE, build_tiny
from framepack_render.shot.errors import Mark
from framepack_render.shot.model import ModelSpec

MARK = Mark("shot.yaml", 2, 8)
REPO = Path(__file__).resolve().parents[1]
WEIGHTED = ("transformer", "vae", "text_encoder", "text_encoder_2", "image_encoder")


@pytest.fixture(scope="module")
def parts() -> Components:
    return build_tiny()


def digest(components: Components) -> str:
    h = hashlib.sha256()
    for name in WEIGHTED:
        for key, tensor in sorted(getattr(components, name).state_dict().items()):
            h.update(f"{name}.{key}{tuple(tensor.shape)}{tensor.dtype}".encode())
            h.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()



def window_inputs(parts: Components, window: int = 3, pad: int = 1, h: int = 4, w: int = 4,
                  seed: int = 0) -> dict:
    """A FramePack inverted-layout call: [prefix | pad | window | post | 2x | 4x] indices."""
    g = torch.Generator().manual_seed(seed)
    idx = torch.arange(1 + pad + window + 1 + 2 + 16)
    prefix, _, win, post, two, four = idx.split([1, pad, window, 1, 2, 16])
    embed = parts.transformer.config.text_embed_dim
    return dict(
        hidden_states=torch.randn(1, 16, window, h, w, generator=g),
        timestep=torch.tensor([900.0]),
        encoder_hidden_states=torch.randn(1, 7, embed, generator=g),
        encoder_attention_mask=torch.tensor([[1, 1, 1, 1, 1, 0, 0]], dtype=torch.bool),
        pooled_projections=torch.randn(1, parts.transformer.config.pooled_projection_dim,
                                       generator=g),
        image_embeds=torch.randn(1, 16, parts.transformer.config.image_proj_dim, generator=g),
        indices_latents=win,
        guidance=torch.tensor([10000.0]),
        latents_clean=torch.randn(1, 16, 2, h, w, generator=g),
        indices_latents_clean=torch.cat([prefix, post]),
        latents_history_2x=torch.randn(1, 16, 2, h, w, generator=g),
        indices_latents_history_2x=two,
        latents_history_4x=torch.randn(1, 16, 16, h, w, generator=g),
        indices_latents_history_4x=four,
    )


# --- the tiny model -----------------------------------------------------------------------------


def test_tiny_is_deterministic(parts: Components) -> None:
    again = build_tiny()
    for name in WEIGHTED:
        a, b = getattr(parts, name).state_dict(), getattr(again, name).state_dict()
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a), name
    other = build_tiny(seed=1)
    assert not torch.equal(other.transformer.proj_out.weight, parts.transformer.proj_out.weight)


def test_tiny_is_deterministic_across_processes(parts: Components) -> None:
    code = ("import sys; sys.path.insert(0, sys.argv[1]);"
            "from tests.test_models import digest;"
            "from framepack_render.engines.framepack.tiny import build_tiny;"
            "print(digest(build_tiny()))")
    out = subprocess.run([sys.executable, "-c", code, str(REPO)], capture_output=True, text=True,
                         cwd=REPO, timeout=120, check=True)
    assert out.stdout.strip().splitlines()[-1] == digest(parts)


def test_tiny_leaves_the_global_rng_alone() -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    tiny.build_transformer()
    assert torch.equal(torch.rand(3), expected)


def test_tiny_weights_are_frozen_float32_eval(parts: Components) -> None:
    for name in WEIGHTED:
        module = getattr(parts, name)
        assert not module.training
        for p in module.parameters():
            assert p.dtype == torch.float32 and not p.requires_grad
    assert parts.transformer_dtype == parts.encoder_dtype == parts.vae_dtype == torch.float32


def test_vae_shapes_and_decodes_differently(parts: Components) -> None:
    vae = parts.vae
    assert vae.config.scaling_factor == pytest.approx(0.476986)
    video = torch.rand(1, 3, 1 + 4 * 2, 32, 40, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        latent = vae.encode(video).latent_dist.sample(generator=torch.Generator().manual_seed(0))
        assert latent.shape == (1, 16, 3, 4, 5)
        frames = vae.decode(latent).sample
        assert frames.shape == (1, 3, 9, 32, 40)
        noise = torch.randn(latent.shape, generator=torch.Generator().manual_seed(1))
        other = vae.decode(noise).sample
    assert torch.isfinite(frames).all()
    assert (frames - other).abs().mean() > 0.01


def test_transformer_inverted_layout(parts: Components) -> None:
    model = parts.transformer
    base = window_inputs(parts)
    with torch.no_grad():
        out = model(**base).sample
        assert out.shape == (1, 16, 3, 4, 4)
        assert torch.isfinite(out).all() and out.abs().max() > 0
        changed = {
            "encoder_hidden_states": base["encoder_hidden_states"] + 1.0,
            "pooled_projections": base["pooled_projections"] + 1.0,
            "image_embeds": base["image_embeds"] + 1.0,
            "latents_clean": base["latents_clean"] + 1.0,
            "latents_history_2x": base["latents_history_2x"] + 1.0,
            "latents_history_4x": base["latents_history_4x"] + 1.0,
            "timestep": torch.tensor([100.0]),
            "guidance": torch.tensor([1000.0]),
        }
        for key, value in changed.items():
            diff = (model(**{**base, key: value}).sample - out).abs().max()
            assert diff > 1e-4, key


def test_text_encoders(parts: Components) -> None:
    template = TINY_PROMPT_TEMPLATE["template"]
    crop = TINY_PROMPT_TEMPLATE["crop_start"]
    tok = parts.tokenizer
    assert tok.padding_side == "right" and tok.model_max_length >= 256 + crop
    assert len(tok(template.split("{}")[0]).input_ids) == crop
    prompt = "A cat walks on the grass, then Ωmega-café jumps! 猫"
    batch = tok(template.format(prompt), max_length=256 + crop, padding="max_length",
                truncation=True, return_tensors="pt")
    assert batch.input_ids.shape == (1, 256 + crop)
    assert tok.decode(batch.input_ids[0, crop:crop + 3]).startswith("a cat walks")
    assert tok.unk_token_id in batch.input_ids[0].tolist()
    assert batch.attention_mask[0, -1] == 0  # right padded
    with torch.no_grad():
        hidden = parts.text_encoder(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                                    output_hidden_states=True).hidden_states
        assert len(hidden) >= 4
        embeds = hidden[-3][:, crop:]
        assert embeds.shape == (1, 256, parts.transformer.config.text_embed_dim)
        # A causal encoder: a position sees only what precedes it. "a cat ..." and "a dog ..."
        # share the template and "a", so they agree there, and differ from the next word on.
        dog = tok(template.format("a dog sleeps"), return_tensors="pt").input_ids
        other = parts.text_encoder(input_ids=dog, output_hidden_states=True).hidden_states[-3]
        assert torch.allclose(other[0, crop], embeds[0, 0], atol=1e-5)
        assert not torch.allclose(other[0, crop + 1], embeds[0, 1], atol=1e-3)

    tok2 = parts.tokenizer_2
    ids = tok2(prompt, max_length=77, padding="max_length", truncation=True,
               return_tensors="pt").input_ids
    assert ids.shape == (1, 77)
    assert ids[0, 0] == tok2.bos_token_id and ids[0, -1] == tok2.pad_token_id
    long = tok2("word " * 200, max_length=77, padding="max_length", truncation=True,
                return_tensors="pt").input_ids
    assert long.shape == (1, 77) and long[0, -1] == tok2.eos_token_id
    config = parts.text_encoder_2.config
    assert config.eos_token_id == tok2.eos_token_id != 2
    with torch.no_grad():
        out = parts.text_encoder_2(ids)
        eos_at = int((ids[0] == tok2.eos_token_id).nonzero()[0])
        assert torch.equal(out.pooler_output[0], out.last_hidden_state[0, eos_at])
        assert out.pooler_output.shape == (1, parts.transformer.config.pooled_projection_dim)


def test_feature_extractor_and_siglip(parts: Components) -> None:
    from PIL import Image

    image = torch.rand(1, 3, 40, 56)
    pixels = parts.feature_extractor(images=image, return_tensors="pt", do_rescale=False)
    pil = parts.feature_extractor(images=Image.new("RGB", (70, 50), (200, 10, 30)),
                                  return_tensors="pt")
    for batch in (pixels, pil):
        assert batch.pixel_values.shape == (1, 3, 32, 32)
        with torch.no_grad():
            embeds = parts.image_encoder(**batch).last_hidden_state
        assert embeds.shape == (1, 16, parts.transformer.config.image_proj_dim)
    assert pixels.pixel_values.min() >= -1.0 and pixels.pixel_values.max() <= 1.0


# --- the pool -----------------------------------------------------------------------------------


def test_pool_is_lazy() -> None:
    pool = ModelPool(ModelSpec("tiny", MARK))
    assert pool.loaded == set()
    vae = pool.vae
    assert pool.loaded == {"vae"}
    assert pool.vae is vae
    assert pool.prompt_template == TINY_PROMPT_TEMPLATE
    assert pool.loaded == {"vae", "prompt_template"}
    with pytest.raises(KeyError, match="did you mean 'transformer'"):
        pool.get("transfomer")


def test_pool_tiny_matches_build_tiny(parts: Components) -> None:
    pool = ModelPool(ModelSpec("tiny", MARK))
    assert torch.equal(pool.transformer.proj_out.weight, parts.transformer.proj_out.weight)
    everything = pool.components()
    assert pool.loaded == set(models.POOL_ITEMS)
    assert digest(everything) == digest(parts)


# --- finding weights ----------------------------------------------------------------------------


def test_missing_weights_message(no_weights: Path) -> None:
    pool = ModelPool(ModelSpec("framepack", MARK))
    with pytest.raises(MissingWeights) as err:
        pool.transformer
    text = str(err.value)
    assert "\n" not in text and "transformer" in text
    assert "lllyasviel/FramePackI2V_HY" in text and "models.yaml" in text
    assert pool.loaded == set()
    with pytest.raises(MissingWeights, match="FramePack_F1_I2V_HY_20250503"):
        ModelPool(ModelSpec("framepack-f1", MARK)).transformer
    with pytest.raises(MissingWeights,
                       match="hunyuanvideo-community/HunyuanVideo subfolder text_encoder"):
        pool.text_encoder


def test_check_fails_fast_on_the_transformer_first(no_weights: Path) -> None:
    pool = ModelPool(ModelSpec("framepack", MARK))
    with pytest.raises(MissingWeights, match="lllyasviel/FramePackI2V_HY"):
        pool.check()
    with pytest.raises(MissingWeights, match="subfolder vae"):
        pool.check({"vae"})
    assert pool.loaded == set()
    ModelPool(ModelSpec("tiny", MARK)).check()


def test_availability_all_missing(no_weights: Path) -> None:
    rows = availability("framepack")
    assert [r[0] for r in rows] == list(COMPONENTS)
    assert not any(ok for _, ok, _ in rows)
    assert "lllyasviel/flux_redux_bfl" in dict((n, w) for n, _, w in rows)["image_encoder"]
    assert all(ok for _, ok, _ in availability("tiny"))


def test_shot_path_that_does_not_exist(no_weights: Path) -> None:
    missing = no_weights / "nowhere" / "vae"
    with pytest.raises(MissingWeights, match="shot's model: mapping at shot.yaml:2:8") as err:
        ModelPool(ModelSpec("framepack", MARK, {"vae": str(missing)})).vae
    assert "\n" not in str(err.value) and "does not exist" in str(err.value)


def test_path_may_be_the_transformer_repository(no_weights: Path, parts: Components) -> None:
    root = no_weights / "FramePackI2V_HY"
    parts.transformer.save_pretrained(root)  # config.json at the root, like the Hub repository
    location = locate("framepack", "transformer", {"path": str(root)})
    assert location.found and location.path == root
    assert not locate("framepack", "vae", {"path": str(root)}).found


def _hub_snapshot(root: Path, repo: str) -> Path:
    folder = root / "hf" / "hub" / ("models--" + repo.replace("/", "--"))
    commit = "0123456789abcdef0123456789abcdef01234567"
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text(commit)
    snapshot = folder / "snapshots" / commit
    snapshot.mkdir(parents=True)
    return snapshot


def test_loads_every_component_from_the_hub_cache(no_weights: Path, parts: Components) -> None:
    """The tiny components saved in the Hugging Face cache layout load through the real path."""
    hunyuan = _hub_snapshot(no_weights, models.HUNYUAN_REPO)
    redux = _hub_snapshot(no_weights, models.REDUX_REPO)
    transformer = _hub_snapshot(no_weights, models.TRANSFORMER_REPOS["framepack"])
    parts.transformer.save_pretrained(transformer, max_shard_size="100KB")  # sharded + index
    assert (transformer / "diffusion_pytorch_model.safetensors.index.json").is_file()
    for name in ("vae", "text_encoder", "text_encoder_2", "tokenizer", "tokenizer_2"):
        getattr(parts, name).save_pretrained(hunyuan / name)
    for name in ("image_encoder", "feature_extractor"):
        getattr(parts, name).save_pretrained(redux / name)

    rows = availability("framepack")
    assert all(ok for _, ok, _ in rows), rows
    pool = ModelPool(ModelSpec("framepack", MARK))
    assert pool.transformer.dtype == torch.bfloat16
    assert torch.equal(pool.transformer.proj_out.weight,
                       parts.transformer.proj_out.weight.bfloat16())
    assert pool.loaded == {"transformer"}
    assert torch.equal(pool.vae.decoder.conv_out.conv.weight,
                       parts.vae.decoder.conv_out.conv.weight)
    assert pool.text_encoder.dtype == torch.float32  # on the CPU
    ids = pool.tokenizer("a cat", return_tensors="pt").input_ids
    assert torch.equal(ids, parts.tokenizer("a cat", return_tensors="pt").input_ids)
    with torch.no_grad():
        assert torch.equal(pool.text_encoder(ids).last_hidden_state,
                           parts.text_encoder(ids).last_hidden_state)
    assert pool.tokenizer_2.padding_side == "right"
    assert pool.image_encoder.config.image_size == parts.image_encoder.config.image_size
    assert pool.feature_extractor.size == parts.feature_extractor.size
    assert pool.text_encoder_2.config.eos_token_id == parts.text_encoder_2.config.eos_token_id
    assert pool.prompt_template["crop_start"] == 95

    # A missing shard makes the transformer unavailable, naming the file.
    shard = sorted(transformer.glob("*.safetensors"))[0]
    shard.unlink()
    location = locate("framepack", "transformer")
    assert not location.found and shard.name in str(location.error)


def test_models_file_and_path_layout(no_weights: Path, parts: Components,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    local = no_weights / "weights"
    parts.vae.save_pretrained(local / "vae")
    config = no_weights / "config" / "models.yaml"
    config.parent.mkdir()
    config.write_text("framepack:\n  path: ../weights\n", encoding="utf-8")
    monkeypatch.setenv("FRAMEPACK_MODELS", str(config))
    rows = {name: (ok, where) for name, ok, where in availability("framepack")}
    assert rows["vae"][0] and "models.yaml" in rows["vae"][1]
    assert not rows["transformer"][0]  # path/ lacks it: falls through to the (empty) cache
    pool = ModelPool(ModelSpec("framepack", MARK))
    assert torch.equal(pool.vae.encoder.conv_in.conv.weight, parts.vae.encoder.conv_in.conv.weight)
    # The shot's mapping wins over the models file.
    with pytest.raises(MissingWeights, match="shot's model: mapping"):
        ModelPool(ModelSpec("framepack", MARK, {"vae": str(no_weights / "elsewhere")})).vae

    config.write_text("framepack:\n  transformr: /x\n", encoding="utf-8")
    with pytest.raises(ModelsFileError, match="did you mean 'transformer'"):
        availability("framepack")
    config.write_text("framepack: [unclosed\n", encoding="utf-8")
    with pytest.raises(ModelsFileError, match=r"models.yaml:\d+:\d+"):
        ModelPool(ModelSpec("framepack", MARK)).vae


def test_single_file_transformer(no_weights: Path, parts: Components,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from safetensors.torch import save_file

    path = no_weights / "FramePack_tiny.safetensors"
    save_file({k: v.contiguous() for k, v in parts.transformer.state_dict().items()}, str(path))
    loaded = load_transformer_file(path, config=tiny.TRANSFORMER_CONFIG, dtype=torch.float32)
    # The weights load exactly; the outputs agree to float32 rounding (two module instances may
    # take different kernels, so bit-equality is not promised there).
    original = parts.transformer.state_dict()
    assert all(torch.equal(t, original[k]) for k, t in loaded.state_dict().items())
    with torch.no_grad():
        inputs = window_inputs(parts)
        torch.testing.assert_close(loaded(**inputs).sample, parts.transformer(**inputs).sample,
                                   rtol=1e-5, atol=1e-6)
    assert not any(t.is_meta for t in loaded.state_dict().values())

    # Through the pool: the shot's mapping names the file (FramePack's config made tiny here).
    monkeypatch.setattr(lookup, "FRAMEPACK_TRANSFORMER_CONFIG", tiny.TRANSFORMER_CONFIG)
    pool = ModelPool(ModelSpec("framepack", MARK, {"transformer": str(path)}))
    assert pool.transformer.dtype == torch.bfloat16
    assert torch.equal(pool.transformer.x_embedder.proj.weight,
                       parts.transformer.x_embedder.proj.weight.bfloat16())
    assert dict((n, ok) for n, ok, _ in availability("framepack", {"transformer": str(path)}))[
        "transformer"]

    # A file whose keys or shapes do not match is one clear line, not a traceback.
    with pytest.raises(ModelError, match="size mismatch") as err:
        load_transformer_file(path, config={**tiny.TRANSFORMER_CONFIG, "attention_head_dim": 16,
                                            "rope_axes_dim": (4, 6, 6)})
    assert "\n" not in str(err.value)
    save_file({"x_embedder.proj.weight": torch.zeros(1)}, str(path))
    with pytest.raises(ModelError, match="does not match") as err:
        load_transformer_file(path, config=tiny.TRANSFORMER_CONFIG)
    assert "\n" not in str(err.value)


def test_pickles_are_refused(no_weights: Path) -> None:
    evil = no_weights / "transformer.bin"
    evil.write_bytes(b"not even a pickle: it must never be opened")
    with pytest.raises(UnsafeWeights, match="pickle"):
        load_transformer_file(evil)
    with pytest.raises(UnsafeWeights):
        ModelPool(ModelSpec("framepack", MARK, {"transformer": str(evil)})).transformer
    folder = no_weights / "text_encoder"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "llama"}))
    (folder / "pytorch_model.bin").write_bytes(b"\x80\x04garbage")
    with pytest.raises(UnsafeWeights, match="pytorch_model.bin") as err:
        ModelPool(ModelSpec("framepack", MARK, {"text_encoder": str(folder)})).text_encoder
    assert "\n" not in str(err.value) and isinstance(err.value, MissingWeights)
    rows = {n: (ok, w) for n, ok, w in availability("framepack", {"text_encoder": str(folder)})}
    assert rows["text_encoder"][0] is False and "refused" in rows["text_encoder"][1]


def test_default_models_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FRAMEPACK_MODELS", str(tmp_path / "m.yaml"))
    assert models.default_models_file() == tmp_path / "m.yaml"
    monkeypatch.delenv("FRAMEPACK_MODELS")
    assert models.default_models_file().parts[-2:] == ("framepack-render", "models.yaml")
    assert os.fspath(models.default_models_file()).endswith("models.yaml")
