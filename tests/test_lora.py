"""LoRAs: both key formats merge the same weights, scales, refusals and the torch-free checks."""

from __future__ import annotations

import copy
import hashlib
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from framepack_render.engines.framepack.lora import LoraError, apply_loras, read_lora
from framepack_render.engines.framepack.tiny import build_transformer
from framepack_render.shot.lora import file_sha256, lora_problem, parse_key

RANK = 2
# Attention, MLP output and a module whose own name ends in "up" (a trap for key parsing).
MODULES = ("transformer_blocks.0.attn.to_q", "single_transformer_blocks.0.proj_out",
           "image_projection.up")


@pytest.fixture(scope="module")
def base() -> torch.nn.Module:
    return build_transformer(0)


@pytest.fixture
def model(base: torch.nn.Module) -> torch.nn.Module:
    return copy.deepcopy(base)


def pairs(base: torch.nn.Module, seed: int = 1) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Random (down, up) of rank 2 for each of MODULES, shaped for its layer."""
    gen = torch.Generator().manual_seed(seed)
    layers = dict(base.named_modules())
    out = {}
    for name in MODULES:
        rows, cols = layers[name].weight.shape
        out[name] = (torch.randn(RANK, cols, generator=gen), torch.randn(rows, RANK, generator=gen))
    return out


def write_musubi(path: Path, weights: dict, alpha: float | None = None) -> Path:
    tensors = {}
    for name, (down, up) in weights.items():
        stem = "lora_unet_" + name.replace(".", "_")
        tensors[f"{stem}.lora_down.weight"] = down
        tensors[f"{stem}.lora_up.weight"] = up
        if alpha is not None:
            tensors[f"{stem}.alpha"] = torch.tensor(alpha)
    save_file(tensors, str(path))
    return path


def write_diffusers(path: Path, weights: dict, alpha: float | None = None,
                    prefix: str = "transformer.") -> Path:
    tensors = {}
    for name, (down, up) in weights.items():
        tensors[f"{prefix}{name}.lora_A.weight"] = down
        tensors[f"{prefix}{name}.lora_B.weight"] = up
        if alpha is not None:
            tensors[f"{prefix}{name}.alpha"] = torch.tensor(alpha)
    save_file(tensors, str(path))
    return path


def weight(model: torch.nn.Module, name: str) -> torch.Tensor:
    return dict(model.named_modules())[name].weight


@pytest.mark.parametrize("alpha", [None, 8.0])
def test_both_formats_merge_the_same_weights(base, tmp_path, alpha):
    weights = pairs(base)
    musubi = write_musubi(tmp_path / "musubi.safetensors", weights, alpha)
    diffusers = write_diffusers(tmp_path / "diffusers.safetensors", weights, alpha)
    a, b = copy.deepcopy(base), copy.deepcopy(base)
    apply_loras(a, [(musubi, 0.7)])
    apply_loras(b, [(diffusers, 0.7)])
    factor = 0.7 * (RANK if alpha is None else alpha) / RANK
    for name, (down, up) in weights.items():
        merged = weight(a, name)
        assert torch.equal(merged, weight(b, name))
        assert not torch.equal(merged, weight(base, name))
        assert torch.allclose(merged, weight(base, name) + factor * (up @ down), atol=1e-6)
    # Every other parameter is untouched.
    touched = {f"{name}.weight" for name in MODULES}
    for (key, before), after in zip(base.state_dict().items(), a.state_dict().values()):
        if key not in touched:
            assert torch.equal(before, after), key


@pytest.mark.parametrize("prefix", ["diffusion_model.", ""])
def test_comfyui_and_bare_diffusers_names(base, model, tmp_path, prefix):
    weights = pairs(base)
    path = write_diffusers(tmp_path / "lora.safetensors", weights, prefix=prefix)
    assert lora_problem(path) is None
    apply_loras(model, [(path, 1.0)])
    down, up = weights[MODULES[0]]
    assert torch.allclose(weight(model, MODULES[0]), weight(base, MODULES[0]) + up @ down,
                          atol=1e-6)


def test_scale_zero_leaves_weights_and_two_doubles_the_delta(base, tmp_path):
    path = write_musubi(tmp_path / "lora.safetensors", pairs(base), alpha=1.0)
    zero, one, two = (copy.deepcopy(base) for _ in range(3))
    apply_loras(zero, [(path, 0.0)])
    apply_loras(one, [(path, 1.0)])
    apply_loras(two, [(path, 2.0)])
    for name in MODULES:
        w = weight(base, name)
        assert torch.equal(weight(zero, name), w)
        assert torch.allclose(weight(two, name) - w, 2 * (weight(one, name) - w), atol=1e-6)


def test_two_loras_add_up(base, model, tmp_path):
    first = write_musubi(tmp_path / "a.safetensors", pairs(base, seed=1))
    second = write_diffusers(tmp_path / "b.safetensors", pairs(base, seed=2))
    apply_loras(model, [(first, 0.5), (second, -1.0)])
    down1, up1 = pairs(base, seed=1)[MODULES[1]]
    down2, up2 = pairs(base, seed=2)[MODULES[1]]
    expected = weight(base, MODULES[1]) + 0.5 * (up1 @ down1) - (up2 @ down2)
    assert torch.allclose(weight(model, MODULES[1]), expected, atol=1e-5)


def test_bfloat16_weights_stay_bfloat16(base, tmp_path):
    model = copy.deepcopy(base).to(torch.bfloat16)
    weights = pairs(base)
    apply_loras(model, [(write_musubi(tmp_path / "lora.safetensors", weights), 1.0)])
    down, up = weights[MODULES[0]]
    merged = weight(model, MODULES[0])
    assert merged.dtype == torch.bfloat16
    expected = (weight(base, MODULES[0]).to(torch.bfloat16).float() + up @ down).to(torch.bfloat16)
    assert torch.equal(merged, expected)


def test_unknown_module_is_named_and_nothing_is_merged(base, model, tmp_path):
    weights = pairs(base)
    weights["double_blocks.0.img_attn_qkv"] = tuple(t.clone() for t in weights[MODULES[0]])
    path = write_musubi(tmp_path / "hunyuan.safetensors", weights)
    with pytest.raises(LoraError) as caught:
        apply_loras(model, [(path, 1.0)])
    message = str(caught.value)
    assert "lora_unet_double_blocks_0_img_attn_qkv" in message
    assert "hunyuan.safetensors" in message and "1 of 4 modules" in message
    assert "another model" in message and "\n" not in message
    for name in MODULES:  # the matching modules were not merged either
        assert torch.equal(weight(model, name), weight(base, name))


def test_later_bad_file_leaves_model_unchanged(base, model, tmp_path):
    good = write_musubi(tmp_path / "good.safetensors", pairs(base))
    bad = write_diffusers(tmp_path / "bad.safetensors", {"no_such.layer": pairs(base)[MODULES[0]]})
    with pytest.raises(LoraError, match="transformer.no_such.layer"):
        apply_loras(model, [(good, 1.0), (bad, 1.0)])
    assert torch.equal(weight(model, MODULES[0]), weight(base, MODULES[0]))


def test_shape_mismatch_names_module_and_shapes(base, model, tmp_path):
    down, up = torch.randn(RANK, 7), torch.randn(16, RANK)
    path = write_diffusers(tmp_path / "lora.safetensors", {MODULES[0]: (down, up)})
    with pytest.raises(LoraError) as caught:
        apply_loras(model, [(path, 1.0)])
    message = str(caught.value)
    assert f"transformer.{MODULES[0]}" in message
    assert "(16, 7)" in message and "(16, 16)" in message


def test_lora_problem_reasons(base, tmp_path):
    text = tmp_path / "notes.safetensors"
    text.write_text("not a LoRA at all\n" * 10)
    assert "not a safetensors file" in lora_problem(text)

    plain = tmp_path / "model.safetensors"
    save_file({"proj_out.weight": torch.zeros(4, 4)}, str(plain))
    assert "holds no LoRA weights" in lora_problem(plain)

    weights = pairs(base)
    half = tmp_path / "half.safetensors"
    save_file({"lora_unet_proj_out.lora_down.weight": torch.zeros(RANK, 16)}, str(half))
    assert "lora_unet_proj_out" in lora_problem(half)
    assert "without lora_up" in lora_problem(half)

    assert lora_problem(tmp_path / "missing.safetensors") == "does not exist"
    assert lora_problem(write_musubi(tmp_path / "a.safetensors", weights, alpha=1.0)) is None
    assert lora_problem(write_diffusers(tmp_path / "b.safetensors", weights)) is None


def test_absurd_header_length_is_refused(tmp_path):
    path = tmp_path / "huge.safetensors"
    path.write_bytes((10**12).to_bytes(8, "little") + b"{}")
    assert lora_problem(path) == "is not a safetensors file"


def test_pickled_lora_is_refused_unopened(tmp_path):
    marker = tmp_path / "unpickled"

    class Payload:
        def __reduce__(self):
            return (Path.touch, (marker,))

    path = tmp_path / "lora.pt"
    path.write_bytes(pickle.dumps(Payload()))
    assert lora_problem(path) == "is not a .safetensors file"
    with pytest.raises(LoraError, match="lora.pt is not a .safetensors file"):
        read_lora(path)
    assert not marker.exists()


def test_read_lora_keys_and_alpha(base, tmp_path):
    path = write_musubi(tmp_path / "lora.safetensors", pairs(base), alpha=4.0)
    read = read_lora(path)
    assert set(read) == {"lora_unet_" + name.replace(".", "_") for name in MODULES}
    pair = read["lora_unet_image_projection_up"]
    assert pair.alpha == 4.0 and pair.rank == RANK
    assert tuple(pair.up.shape) == tuple(weight(base, "image_projection.up").shape[:1]) + (RANK,)


def test_parse_key():
    assert parse_key("lora_unet_image_projection_up.lora_up.weight") == (
        "kohya", "lora_unet_image_projection_up", "up")
    assert parse_key("diffusion_model.proj_out.lora_A.weight") == (
        "diffusers", "diffusion_model.proj_out", "down")
    assert parse_key("transformer.proj_out.alpha") == ("diffusers", "transformer.proj_out", "alpha")
    assert parse_key("proj_out.weight") is None
    assert parse_key("lora_unet_proj.out.lora_down.weight") is None  # dots: not kohya


def test_file_sha256(tmp_path):
    path = tmp_path / "blob.bin"
    path.write_bytes(bytes(range(256)) * 9000)  # over 2 MiB: several chunks
    assert file_sha256(path) == hashlib.sha256(path.read_bytes()).hexdigest()


def test_spec_lora_does_not_import_torch():
    code = ("import sys, framepack_render.shot.lora; "
            "print('torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True, cwd=Path(__file__).resolve().parents[1])
    assert result.stdout.strip() == "False"
