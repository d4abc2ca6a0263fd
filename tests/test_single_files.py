"""Single weight files as ComfyUI and musubi-tuner users hold them, and ``framepack models --scan``.

The tiny components are saved under the exact key names of the users' files (written here from
those tools' module layouts, not by the code under test), loaded back through the model pool's
own path and compared with the originals: weights equal (after fp8 rounding where the file is
fp8) and the same forward pass. The released shapes are checked from headers alone: files of the
released sizes are written sparse (a header and a hole), so nothing large is ever read.
"""

from __future__ import annotations

import argparse
import json
import re
import struct
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from framepack_render.engines.framepack import lookup, models, single_files, tiny
from framepack_render.engines.framepack.models import (
    Components,
    MissingWeights,
    ModelPool,
    UnsafeWeights,
    availability,
)
from framepack_render.engines.framepack.scan import add_scan_arguments, run_scan, scan
from framepack_render.engines.framepack.tiny import build_tiny
from framepack_render.shot.errors import Mark
from framepack_render.shot.model import ModelSpec

from .conftest import HEAVY, png_frames, run, run_without, shot_text, write
from .test_models import window_inputs

MARK = Mark("shot.yaml", 2, 8)
F8_MAX = torch.finfo(torch.float8_e4m3fn).max


@pytest.fixture(scope="module")
def parts() -> Components:
    return build_tiny()



# --- the users' key names, from the tools' module layouts ---------------------------------------


def llava_names(state: dict) -> dict:
    """llava_llama3_fp16.safetensors (ComfyUI, musubi-tuner): the language model under
    ``model.``, with its ``lm_head``."""
    out = {f"model.{k}": v for k, v in state.items()}
    embed = state["embed_tokens.weight"]
    out["lm_head.weight"] = torch.zeros_like(embed) if isinstance(embed, torch.Tensor) else embed
    return out


def clip_l_names(state: dict, prefix: str = "") -> dict:
    """clip_l.safetensors: transformers 4's ``text_model.*`` (transformers 5 drops that level),
    under ComfyUI's prefix if any."""
    return {f"{prefix}text_model.{k.removeprefix('text_model.')}": v for k, v in state.items()}


def sigclip_names(state: dict) -> dict:
    return {f"vision_model.{k.removeprefix('vision_model.')}": v for k, v in state.items()}


def comfyui_vae_names(state: dict) -> dict:
    """diffusers' AutoencoderKLHunyuanVideo names as ComfyUI's LDM-style VAE module names them:
    ``encoder.down.L.block.J``, ``decoder.up.L.block.J`` with L counted from full resolution,
    ``mid.block_1/attn_1/block_2``, ``norm_out``, ``nin_shortcut``, attention as 1x1x1 convs."""
    levels = 1 + max(int(m.group(1)) for k in state
                     if (m := re.match(r"decoder\.up_blocks\.(\d+)\.", k)))
    out = {}
    for key, value in state.items():
        name = key
        name = re.sub(r"^encoder\.down_blocks\.(\d+)\.resnets\.(\d+)\.",
                      r"encoder.down.\1.block.\2.", name)
        name = re.sub(r"^encoder\.down_blocks\.(\d+)\.downsamplers\.0\.",
                      r"encoder.down.\1.downsample.", name)
        name = re.sub(r"^decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.",
                      lambda m: f"decoder.up.{levels - 1 - int(m[1])}.block.{m[2]}.", name)
        name = re.sub(r"^decoder\.up_blocks\.(\d+)\.upsamplers\.0\.",
                      lambda m: f"decoder.up.{levels - 1 - int(m[1])}.upsample.", name)
        name = re.sub(r"^(\w+)\.mid_block\.resnets\.(\d)\.",
                      lambda m: f"{m[1]}.mid.block_{int(m[2]) + 1}.", name)
        name = re.sub(r"^(\w+)\.mid_block\.attentions\.0\.group_norm\.", r"\1.mid.attn_1.norm.",
                      name)
        name = re.sub(r"^(\w+)\.mid_block\.attentions\.0\.to_([qkv])\.", r"\1.mid.attn_1.\2.", name)
        name = re.sub(r"^(\w+)\.mid_block\.attentions\.0\.to_out\.0\.", r"\1.mid.attn_1.proj_out.",
                      name)
        name = re.sub(r"^(\w+)\.conv_norm_out\.", r"\1.norm_out.", name)
        name = name.replace(".conv_shortcut.", ".nin_shortcut.")
        if ".attn_1." in name and name.endswith(".weight") and ".norm." not in name:
            value = value.reshape(*value.shape, 1, 1, 1) if isinstance(value, torch.Tensor) \
                else (*value, 1, 1, 1)
        out[name] = value
    return out


def musubi_fp8(state: dict, mode: str) -> tuple[dict, dict]:
    """(file tensors, expected float32 weights): the blocks' linear weights in float8_e4m3fn with
    musubi-tuner's scales ("block": [out, blocks, 1] plus a tensor scale; "channel": [out, 1])
    or ComfyUI's scaled fp8 ("tensor": one scale, a ``scaled_fp8`` marker, input scales); the
    rest in bfloat16."""
    out, expected = {}, {}
    for key, w in state.items():
        linear = "transformer_blocks." in key and key.endswith(".weight") and w.dim() == 2
        if not linear:
            out[key] = w.to(torch.bfloat16)
            expected[key] = w.to(torch.bfloat16).float()
            continue
        rows, cols = w.shape
        if mode == "block":
            blocks = w.reshape(rows, cols // 8, 8)
            scale = blocks.abs().amax(dim=2, keepdim=True) / F8_MAX
            whole = scale.max()
            scale = (scale / whole).clamp(min=1e-8)
            q = (blocks / (scale * whole)).clamp(-F8_MAX, F8_MAX).to(torch.float8_e4m3fn)
            expected[key] = (q.float() * scale).reshape(rows, cols) * whole
            out[key] = q.reshape(rows, cols)
            out[key.replace(".weight", ".scale_weight")] = scale
            out[key.replace(".weight", ".scale_weight_tensor")] = whole.reshape(1)
        else:
            scale = (w.abs().amax(dim=1, keepdim=True) if mode == "channel" else w.abs().max()
                     .reshape(1)) / F8_MAX
            q = (w / scale).clamp(-F8_MAX, F8_MAX).to(torch.float8_e4m3fn)
            expected[key] = q.float() * (scale if mode == "channel" else scale.reshape(()))
            out[key] = q
            out[key.replace(".weight", ".scale_weight")] = scale
            if mode == "tensor":
                out[key.replace(".weight", ".scale_input")] = torch.ones(1)
    if mode == "tensor":
        out = {f"model.diffusion_model.{k}": v for k, v in out.items()}
        out["scaled_fp8"] = torch.zeros(0, dtype=torch.float8_e4m3fn)
    return out, expected


def save(path: Path, tensors: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path))
    return path


def state(module: torch.nn.Module) -> dict:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def tiny_pool(**paths: Path) -> ModelPool:
    return ModelPool(ModelSpec("tiny", MARK, {k: str(v) for k, v in paths.items()}))


def assert_same_weights(loaded: torch.nn.Module, expected: dict) -> None:
    got = loaded.state_dict()
    assert set(got) == set(expected)
    for key, tensor in expected.items():
        assert torch.equal(got[key], tensor.to(got[key].dtype)), key


# --- each component, through the pool -----------------------------------------------------------


def test_llava_llama3_file(tmp_path: Path, parts: Components) -> None:
    path = save(tmp_path / "text_encoders" / "llava_llama3_fp16.safetensors",
                {**llava_names(state(parts.text_encoder)), "tokenizer": torch.zeros(3)})
    _, found = single_files.inspect_file(path)
    assert (found.component, found.layout, found.prefix) == ("text_encoder", "llama", "model.")
    pool = tiny_pool(text_encoder=path)
    assert_same_weights(pool.text_encoder, state(parts.text_encoder))
    ids = parts.tokenizer("a cat walks on the grass", return_tensors="pt").input_ids
    with torch.no_grad():
        loaded = pool.text_encoder(ids, output_hidden_states=True).hidden_states[-3]
        original = parts.text_encoder(ids, output_hidden_states=True).hidden_states[-3]
        torch.testing.assert_close(loaded, original, rtol=1e-5, atol=1e-6)
    assert pool.loaded == {"text_encoder"}
    # A LLaVA checkpoint holds the same language model one level deeper.
    llava = save(tmp_path / "llava.safetensors",
                 {f"language_model.model.{k}": v for k, v in state(parts.text_encoder).items()}
                 | {"vision_tower.vision_model.post_layernorm.weight": torch.ones(2)})
    assert_same_weights(tiny_pool(text_encoder=llava).text_encoder, state(parts.text_encoder))
    # ComfyUI's llava_llama3_fp8_scaled: the layers' matrices in fp8, one scale each.
    scaled, expected = {"scaled_fp8": torch.zeros(0, dtype=torch.float8_e4m3fn)}, {}
    for key, value in state(parts.text_encoder).items():
        if key.startswith("layers.") and value.dim() == 2:
            scale = value.abs().max().reshape(1) / F8_MAX
            quantized = (value / scale).to(torch.float8_e4m3fn)
            scaled[f"model.{key}"] = quantized
            scaled[f"model.{key.removesuffix('weight')}scale_weight"] = scale
            expected[key] = quantized.float() * scale.reshape(())
        else:
            scaled[f"model.{key}"] = expected[key] = value
    fp8 = save(tmp_path / "llava_llama3_fp8_scaled.safetensors", scaled)
    assert_same_weights(tiny_pool(text_encoder=fp8).text_encoder, expected)


@pytest.mark.parametrize("prefix", ["", "clip_l.transformer."])
def test_clip_l_file(tmp_path: Path, parts: Components, prefix: str) -> None:
    owner = prefix.split(".")[0] + "." if prefix else ""  # ComfyUI: clip_l.logit_scale
    extra = {f"{prefix}text_projection.weight": torch.eye(tiny.CLIP_HIDDEN),
             f"{owner}logit_scale": torch.ones(())}
    path = save(tmp_path / "clip" / "clip_l.safetensors",
                clip_l_names(state(parts.text_encoder_2), prefix) | extra)
    pool = tiny_pool(text_encoder_2=path)
    assert_same_weights(pool.text_encoder_2, state(parts.text_encoder_2))
    ids = parts.tokenizer_2("a red ball", padding="max_length", max_length=77,
                            return_tensors="pt").input_ids
    with torch.no_grad():
        assert torch.equal(pool.text_encoder_2(ids).pooler_output,
                           parts.text_encoder_2(ids).pooler_output)


def test_sigclip_file(tmp_path: Path, parts: Components) -> None:
    path = save(tmp_path / "clip_vision" / "sigclip_vision_patch14_384.safetensors",
                sigclip_names(state(parts.image_encoder)))
    pool = tiny_pool(image_encoder=path)
    assert_same_weights(pool.image_encoder, state(parts.image_encoder))
    pixels = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        expected = parts.image_encoder(pixel_values=pixels).last_hidden_state
        assert torch.equal(pool.image_encoder(pixel_values=pixels).last_hidden_state, expected)
    # Without the pooling head (FramePack reads the last hidden state only).
    headless = save(tmp_path / "headless.safetensors",
                    {k: v for k, v in sigclip_names(state(parts.image_encoder)).items()
                     if ".head." not in k})
    encoder = tiny_pool(image_encoder=headless).image_encoder
    with torch.no_grad():
        assert torch.equal(encoder(pixel_values=pixels).last_hidden_state, expected)


def test_hunyuan_vae_files(tmp_path: Path, parts: Components) -> None:
    original = state(parts.vae)
    comfy = save(tmp_path / "vae" / "hunyuan_video_vae_bf16.safetensors",
                 comfyui_vae_names(original))
    _, found = single_files.inspect_file(comfy)
    assert (found.component, found.layout) == ("vae", "vae-comfyui")
    vae = tiny_pool(vae=comfy).vae
    assert_same_weights(vae, original)
    latent = torch.randn(1, 16, 2, 4, 4, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(vae.decode(latent).sample, parts.vae.decode(latent).sample)
    # HunyuanVideo's original names (diffusers kept them), under musubi-tuner's "vae." prefix.
    tencent = save(tmp_path / "pytorch_model.safetensors",
                   {f"vae.{k}": v for k, v in original.items()})
    assert_same_weights(tiny_pool(vae=tencent).vae, original)


def test_vae_attention_and_released_layout(tmp_path: Path) -> None:
    """The mid-block attention (1x1x1 convolutions in ComfyUI's files, matrices in diffusers')
    and two resnets per level, as in the released VAE; tiny's VAE has neither."""
    from diffusers import AutoencoderKLHunyuanVideo

    config = dict(tiny.VAE_CONFIG, mid_block_add_attention=True, layers_per_block=2)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        vae = AutoencoderKLHunyuanVideo(**config).eval()
    path = save(tmp_path / "vae.safetensors", comfyui_vae_names(state(vae)))
    assert path.stat().st_size > 0
    with single_files.parameters_on_meta():
        empty = AutoencoderKLHunyuanVideo(**config)
    loaded = single_files.load("vae", path, empty, torch.float32)
    assert_same_weights(loaded, state(vae))


@pytest.mark.parametrize("mode", ["block", "channel", "tensor"])
def test_fp8_transformer(tmp_path: Path, parts: Components, mode: str) -> None:
    tensors, expected = musubi_fp8(state(parts.transformer), mode)
    path = save(tmp_path / "diffusion_models" / "FramePackI2V_HY_fp8_e4m3fn.safetensors", tensors)
    _, found = single_files.inspect_file(path)
    assert found.component == "transformer" and found.fp8 and found.scaled
    model = tiny_pool(transformer=path).transformer
    assert model.dtype == torch.float32  # upcast to the pool's dtype
    got = model.state_dict()
    for key, value in expected.items():
        torch.testing.assert_close(got[key], value, rtol=1e-6, atol=0, msg=key)
    reference = tiny.build_transformer()
    reference.load_state_dict(expected)
    inputs = window_inputs(parts)
    with torch.no_grad():
        out = model(**inputs).sample
        torch.testing.assert_close(out, reference(**inputs).sample, rtol=1e-5, atol=1e-6)
        original = parts.transformer(**inputs).sample
    assert (out - original).abs().max() < 0.1 * original.abs().max()  # fp8 is close, not equal


def test_plain_fp8_is_upcast(tmp_path: Path, parts: Components) -> None:
    """Kijai's fp8_e4m3fn files: fp8 weights, no scales."""
    original = state(parts.transformer)
    tensors = {k: v.to(torch.float8_e4m3fn) if v.dim() == 2 else v for k, v in original.items()}
    path = save(tmp_path / "fp8.safetensors", tensors)
    model = models.load_transformer_file(path, config=tiny.TRANSFORMER_CONFIG, dtype=torch.bfloat16)
    for key, value in tensors.items():
        assert torch.equal(model.state_dict()[key], value.to(torch.bfloat16)), key


def test_released_profile_dispatches_single_files(no_weights: Path, parts: Components,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """framepack's pool loads a single file with the released config (tiny's here)."""
    monkeypatch.setattr(single_files, "released_model",
                        lambda component, config=None: tiny.BUILDERS[component](0))
    monkeypatch.setattr(lookup, "_released_mismatch", lambda path: "")
    path = save(no_weights / "clip_l.safetensors", clip_l_names(state(parts.text_encoder_2)))
    pool = ModelPool(ModelSpec("framepack", MARK, {"text_encoder_2": str(path)}))
    assert_same_weights(pool.text_encoder_2, state(parts.text_encoder_2))
    assert pool.text_encoder_2.dtype == torch.float32  # the encoders' dtype on the CPU


# --- mistakes -----------------------------------------------------------------------------------


def test_wrong_truncated_and_unsafe_files(no_weights: Path, parts: Components) -> None:
    clip = save(no_weights / "clip_l.safetensors", clip_l_names(state(parts.text_encoder_2)))
    with pytest.raises(MissingWeights, match=r"holds a text_encoder_2, CLIP text-model names "
                                             r"under text_model\.\*, not a vae") as err:
        tiny_pool(vae=clip).vae
    assert "\n" not in str(err.value)
    with pytest.raises(MissingWeights, match="does not hold the released text_encoder_2's "
                                             "shapes: vocabulary"):
        ModelPool(ModelSpec("framepack", MARK, {"text_encoder_2": str(clip)})).check(
            {"text_encoder_2"})

    truncated = no_weights / "cut.safetensors"
    truncated.write_bytes(clip.read_bytes()[:-100])
    rows = {n: (ok, w) for n, ok, w in availability("tiny", {"text_encoder_2": str(truncated)})}
    assert rows["text_encoder_2"][0] is False and "incomplete download" in rows["text_encoder_2"][1]
    assert rows["vae"] == (True, models.BUILT_IN)

    garbage = no_weights / "x.safetensors"
    garbage.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all}")
    with pytest.raises(MissingWeights, match="header is not JSON"):
        tiny_pool(image_encoder=garbage).image_encoder

    evil = no_weights / "llava_llama3_fp16.ckpt"
    evil.write_bytes(b"never opened")
    with pytest.raises(UnsafeWeights, match="pickle"):
        tiny_pool(text_encoder=evil).text_encoder
    with pytest.raises(single_files.WeightsMismatch, match="does not match the Llama text "
                                                           "encoder: .* keys missing") as err:
        single_files.load("text_encoder", save(no_weights / "t.safetensors", llava_names(
            state(parts.text_encoder))), single_files.released_model("text_encoder"), torch.float32)
    assert "\n" not in str(err.value)


# --- the released shapes, from headers alone ----------------------------------------------------


def write_sparse(path: Path, shapes: dict[str, tuple[int, ...]], dtype: str = "BF16") -> Path:
    """A safetensors file of ``shapes`` whose tensors are a hole: real header, real size."""
    header, offset = {}, 0
    sizes = {"BF16": 2, "F16": 2, "F8_E4M3": 1, "F32": 4}
    for name, shape in shapes.items():
        count = 1
        for n in shape:
            count *= n
        size = count * sizes[dtype]
        header[name] = {"dtype": dtype, "shape": list(shape),
                        "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(struct.pack("<Q", len(raw)) + raw)
        handle.truncate(8 + len(raw) + offset)
    return path


def released_shapes(component: str) -> dict[str, tuple[int, ...]]:
    model = single_files.released_model(component)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


@pytest.fixture(scope="module")
def comfyui_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ComfyUI models/ folder of the users' files at their released sizes (sparse)."""
    root = tmp_path_factory.mktemp("ComfyUI")
    models_dir = root / "models"
    transformer = released_shapes("transformer")
    write_sparse(models_dir / "diffusion_models" / "FramePackI2V_HY_bf16.safetensors", transformer)
    write_sparse(models_dir / "diffusion_models"
                 / "FramePack_F1_I2V_HY_20250503_fp8_e4m3fn.safetensors", transformer, "F8_E4M3")
    write_sparse(models_dir / "unet" / "FramePackI2V_HY_fp8_e4m3fn.safetensors", transformer,
                 "F8_E4M3")
    write_sparse(models_dir / "text_encoders" / "llava_llama3_fp16.safetensors",
                 llava_names(released_shapes("text_encoder")), "F16")
    write_sparse(models_dir / "clip" / "clip_l.safetensors",
                 clip_l_names(released_shapes("text_encoder_2")), "F16")
    write_sparse(models_dir / "clip_vision" / "sigclip_vision_patch14_384.safetensors",
                 sigclip_names(released_shapes("image_encoder")), "F16")
    write_sparse(models_dir / "vae" / "hunyuan_video_vae_bf16.safetensors",
                 comfyui_vae_names(released_shapes("vae")))
    write_sparse(models_dir / "loras" / "style.safetensors",
                 {"lora_unet_x.lora_down.weight": (4, 8)})
    write_sparse(models_dir / "clip" / "clip_g.safetensors",
                 clip_l_names({"embeddings.token_embedding.weight": (49408, 1280),
                               "final_layer_norm.weight": (1280,),
                               "encoder.layers.0.self_attn.q_proj.weight": (1280, 1280)}))
    (models_dir / "checkpoints").mkdir()
    (models_dir / "checkpoints" / "old.ckpt").write_bytes(b"never opened")
    return root


def test_released_files_map_onto_the_released_models(comfyui_tree: Path) -> None:
    """Every user file's names and shapes map exactly onto the released config's model."""
    found = {f.component: f for f in scan(comfyui_tree).found if not f.mismatch}
    for component in single_files.WEIGHTED:
        header, recognised = single_files.inspect_file(found[component].path)
        model = single_files.released_model(component)
        targets = model.state_dict()
        mapping = single_files.plan(component, header, recognised, set(targets))
        shapes = {name: header[key].shape for name, key in mapping.items()}
        assert single_files.check_names(mapping, targets, shapes) == "", component


def test_scan_and_write_models_file(comfyui_tree: Path, no_weights: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    result = scan(comfyui_tree)
    entries = result.entries()
    diffusion = comfyui_tree / "models" / "diffusion_models"
    assert entries["framepack"]["transformer"] == str(
        diffusion / "FramePackI2V_HY_bf16.safetensors")
    assert entries["framepack-f1"]["transformer"] == str(
        diffusion / "FramePack_F1_I2V_HY_20250503_fp8_e4m3fn.safetensors")
    for profile in ("framepack", "framepack-f1"):
        assert set(entries[profile]) == set(single_files.WEIGHTED)
        assert entries[profile]["vae"].endswith("hunyuan_video_vae_bf16.safetensors")
    text = run_text(capsys, comfyui_tree)
    assert "skipped" in text and "clip_g.safetensors" in text
    assert "width 1280 (released: 768)" in text
    assert "also found" in text and "unet/FramePackI2V_HY_fp8_e4m3fn" in text
    assert "1 pickled weight files left alone" in text
    import yaml

    assert {p: dict(v) for p, v in yaml.safe_load(text).items()} == entries
    parser = argparse.ArgumentParser()
    parser.add_argument("--json", action="store_true")
    add_scan_arguments(parser)
    assert run_scan(parser.parse_args(["--scan", str(comfyui_tree), "--json"])) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed["entries"] == entries and listed["models_file"] is None
    assert len(listed["found"]) == 8 and listed["pickles"][0].endswith("old.ckpt")

    # --write: into $FRAMEPACK_MODELS, keeping what the file already says.
    config = no_weights / "config" / "models.yaml"
    config.parent.mkdir()
    config.write_text("framepack:\n  vae: ../mine/vae\n  tokenizer: ../tok\n", encoding="utf-8")
    assert run_scan(parser.parse_args(["--scan", str(comfyui_tree), "--write"])) == 0
    out = capsys.readouterr().out
    assert "9 entries added" in out and "kept framepack.vae: ../mine/vae" in out
    written = models.read_models_file(config)
    assert written["framepack"]["vae"] == str((config.parent / "../mine/vae").resolve())
    assert written["framepack"]["tokenizer"] == str((config.parent / "../tok").resolve())
    assert written["framepack-f1"]["text_encoder"] == entries["framepack-f1"]["text_encoder"]
    assert not list(config.parent.glob(".*.tmp"))
    assert run_scan(parser.parse_args(["--scan", str(comfyui_tree), "--write"])) == 0
    assert "nothing to add" in capsys.readouterr().out

    # The models file now finds every weighted component; the tokenizers still come from the
    # Hugging Face cache or a folder, and their absence says what to download.
    rows = {n: (ok, w) for n, ok, w in availability("framepack-f1")}
    for component in ("transformer", "text_encoder", "text_encoder_2", "image_encoder", "vae"):
        assert rows[component][0], rows[component]
    assert "ComfyUI's names" in rows["vae"][1] and "fp8" in rows["transformer"][1]
    with pytest.raises(MissingWeights, match=r"hf download hunyuanvideo-community/HunyuanVideo "
                                             r"--include 'tokenizer_2/\*'") as err:
        ModelPool(ModelSpec("framepack-f1", MARK)).check({"tokenizer_2"})
    assert "\n" not in str(err.value)


def test_scan_imports_no_torch(comfyui_tree: Path) -> None:
    body = """
        from framepack_render.engines.framepack.scan import report, scan
        print(report(scan(sys.argv[1])))
    """
    done = run_without(HEAVY, body, comfyui_tree)
    assert done.returncode == 0, done.stderr
    assert "llava_llama3_fp16.safetensors" in done.stdout


def run_text(capsys: pytest.CaptureFixture[str], folder: Path) -> str:
    parser = argparse.ArgumentParser()
    add_scan_arguments(parser)
    assert run_scan(parser.parse_args(["--scan", str(folder)])) == 0
    return capsys.readouterr().out


# --- done when: a folder of ComfyUI-named tiny weights renders ----------------------------------


def test_comfyui_named_tiny_weights_render(folder: Path, parts: Components,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    weights = folder / "ComfyUI" / "models"
    files = {
        "transformer": save(weights / "diffusion_models" / "FramePackI2V_HY_bf16.safetensors",
                            state(parts.transformer)),
        "text_encoder": save(weights / "text_encoders" / "llava_llama3_fp16.safetensors",
                             llava_names(state(parts.text_encoder))),
        "text_encoder_2": save(weights / "clip" / "clip_l.safetensors",
                               clip_l_names(state(parts.text_encoder_2))),
        "image_encoder": save(weights / "clip_vision" / "sigclip_vision_patch14_384.safetensors",
                              sigclip_names(state(parts.image_encoder))),
        "vae": save(weights / "vae" / "hunyuan_video_vae_bf16.safetensors",
                    comfyui_vae_names(state(parts.vae))),
    }
    found = {f.component: f for f in scan(folder / "ComfyUI").found}
    assert {c: f.path for c, f in found.items()} == files
    assert all(f.mismatch for f in found.values())  # tiny shapes: never models file entries
    mapping = "".join(f"\n  {c}: {p.relative_to(folder)}" for c, p in files.items())
    shot = write(folder, "shot.yaml", shot_text(model="\n  profile: tiny" + mapping))
    code, out, err = run(capsys, "render", shot, "--json", "--cache", folder / "cache")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["windows_rendered"] == 3
    builtin = write(folder, "builtin.yaml", shot_text(output="builtin/"))
    assert run(capsys, "render", builtin, "--cache", folder / "cache")[0] == 0
    assert (png_frames(folder / "out") == png_frames(folder / "builtin")).all()
