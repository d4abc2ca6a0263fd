"""Single weight files as ComfyUI and musubi-tuner users hold them, read into our classes.

A single file carries no config and its name proves nothing, so a file is recognised by its key
names alone, and its model is built with the config of the weights it belongs to: the released
FramePack's for the framepack profiles, tiny's for the tiny one. Recognised layouts:

- transformer: FramePack's own names (lllyasviel's, diffusers', Kijai's files), bare or under
  ComfyUI's ``model.diffusion_model.``; bf16, fp16, or fp8 (e4m3fn, e5m2) with or without
  scales: ``.scale_weight`` per tensor, per output channel or per block of inputs, and
  musubi-tuner's ``.scale_weight_tensor``. fp8 weights are upcast to the render dtype.
- text_encoder (``llava_llama3_fp16.safetensors``): the Llama language model as ComfyUI and
  musubi-tuner store it (``model.embed_tokens``, ``model.layers.N``...; ``lm_head`` dropped), bare
  (``layers.N``...), or inside a LLaVA checkpoint (``language_model.model.`` or
  ``model.language_model.``), for transformers' ``LlamaModel``.
- text_encoder_2 (``clip_l.safetensors``): CLIP-L's text model, ``text_model.*`` under any prefix
  (ComfyUI's ``clip_l.transformer.``, a checkpoint's ``cond_stage_model.transformer.``);
  ``text_projection`` and ``logit_scale`` are dropped.
- image_encoder (``sigclip_vision_patch14_384.safetensors``): SigLIP's ``vision_model.*``; the
  pooling head may be absent (FramePack reads the last hidden state only).
- vae: HunyuanVideo's original names, which diffusers kept (optionally under ``vae.``), or
  ComfyUI's LDM-style names (``encoder.down.0.block.0...``), for ``AutoencoderKLHunyuanVideo``.

Reading headers and recognising files needs no torch (``framepack models --scan`` uses only
that part); loading imports it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import struct
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import torch

WEIGHTED = ("transformer", "text_encoder", "text_encoder_2", "image_encoder", "vae")
MAX_HEADER = 100 * 1024 * 1024  # real headers are under 1 MiB; more is not a weight file

# --- the released configs -----------------------------------------------------------------------

# FramePackI2V_HY and FramePack-F1 (the diffusers class defaults plus the three FramePack flags).
FRAMEPACK_TRANSFORMER_CONFIG: dict[str, Any] = dict(
    in_channels=16, out_channels=16, num_attention_heads=24, attention_head_dim=128,
    num_layers=20, num_single_layers=40, num_refiner_layers=2, mlp_ratio=4.0, patch_size=2,
    patch_size_t=1, qk_norm="rms_norm", guidance_embeds=True, text_embed_dim=4096,
    pooled_projection_dim=768, rope_theta=256.0, rope_axes_dim=(16, 56, 56),
    image_condition_type=None, has_image_proj=True, image_proj_dim=1152, has_clean_x_embedder=True,
)
# hunyuanvideo-community/HunyuanVideo's text_encoder (llava-llama-3-8b's language model).
LLAMA_CONFIG: dict[str, Any] = dict(
    vocab_size=128320, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
    num_attention_heads=32, num_key_value_heads=8, head_dim=128, hidden_act="silu",
    max_position_embeddings=8192, rms_norm_eps=1e-5, attention_bias=False, mlp_bias=False,
    tie_word_embeddings=False, bos_token_id=128000, eos_token_id=128001,
    rope_parameters={"rope_type": "default", "rope_theta": 500000.0},
)
# Its text_encoder_2 (OpenAI CLIP-L's text model). eos_token_id 2 keeps CLIP's legacy pooling
# (the highest token id, which is the end-of-text token), as the released config does.
CLIP_CONFIG: dict[str, Any] = dict(
    vocab_size=49408, hidden_size=768, intermediate_size=3072, projection_dim=768,
    num_hidden_layers=12, num_attention_heads=12, max_position_embeddings=77,
    hidden_act="quick_gelu", layer_norm_eps=1e-5, bos_token_id=0, eos_token_id=2, pad_token_id=1,
)
# lllyasviel/flux_redux_bfl's image_encoder (SigLIP so400m, patch 14, 384 pixels).
SIGLIP_CONFIG: dict[str, Any] = dict(
    hidden_size=1152, intermediate_size=4304, num_hidden_layers=27, num_attention_heads=16,
    num_channels=3, image_size=384, patch_size=14, hidden_act="gelu_pytorch_tanh",
    layer_norm_eps=1e-6,
)
# HunyuanVideo's VAE.
VAE_CONFIG: dict[str, Any] = dict(
    in_channels=3, out_channels=3, latent_channels=16,
    down_block_types=("HunyuanVideoDownBlock3D",) * 4,
    up_block_types=("HunyuanVideoUpBlock3D",) * 4,
    block_out_channels=(128, 256, 512, 512), layers_per_block=2, act_fn="silu",
    norm_num_groups=32, scaling_factor=0.476986, spatial_compression_ratio=8,
    temporal_compression_ratio=4, mid_block_add_attention=True,
)

# What a model is called in messages.
NOUNS = {
    "transformer": "the FramePack transformer",
    "text_encoder": "the Llama text encoder",
    "text_encoder_2": "the CLIP-L text encoder",
    "image_encoder": "the SigLIP image encoder",
    "vae": "the HunyuanVideo VAE",
}

# --- headers ------------------------------------------------------------------------------------


class NotWeights(ValueError):
    """A file that is not a readable safetensors file; the message says why."""


@dataclass(frozen=True)
class TensorInfo:
    dtype: str  # safetensors' names: F32, F16, BF16, F8_E4M3, F8_E5M2, ...
    shape: tuple[int, ...]


def read_header(path: str | os.PathLike[str]) -> dict[str, TensorInfo]:
    """The tensors a safetensors file holds, from its header only (no tensor is read).

    A file shorter than its header promises (an interrupted download) is refused here, before
    anything spends minutes loading it.
    """
    try:
        with open(path, "rb") as handle:
            head = handle.read(8)
            if len(head) < 8:
                raise NotWeights("too short to be a safetensors file")
            (length,) = struct.unpack("<Q", head)
            if length > MAX_HEADER:
                raise NotWeights("not a safetensors file (its header length is implausible)")
            raw = handle.read(length)
            size = os.fstat(handle.fileno()).st_size
    except OSError as exc:
        raise NotWeights(f"cannot be read: {exc.strerror or exc}") from None
    if len(raw) < length:
        raise NotWeights("truncated inside its header (an incomplete download?)")
    try:
        data = json.loads(raw)
    except ValueError:
        raise NotWeights("not a safetensors file (its header is not JSON)") from None
    if not isinstance(data, dict):
        raise NotWeights("not a safetensors file (its header is not a mapping)")
    tensors: dict[str, TensorInfo] = {}
    end = 0
    for name, info in data.items():
        if name == "__metadata__":
            continue
        try:
            shape = tuple(int(n) for n in info["shape"])
            end = max(end, int(info["data_offsets"][1]))
            tensors[str(name)] = TensorInfo(str(info["dtype"]), shape)
        except (KeyError, TypeError, ValueError, IndexError):
            raise NotWeights(f"not a safetensors file (bad header entry {name!r})") from None
    if 8 + length + end > size:
        raise NotWeights(f"truncated: {size} of {8 + length + end} bytes (an incomplete "
                         f"download?)")
    return tensors


# --- recognising a file -------------------------------------------------------------------------


@dataclass(frozen=True)
class Recognised:
    """What a file holds: ``component`` in ``layout`` (a key of LAYOUTS), under ``prefix``."""

    component: str
    layout: str
    prefix: str
    fp8: bool = False
    scaled: bool = False  # fp8 with scale tensors

    def names(self) -> str:
        """The key layout in words: "Llama names under model.*, fp8"."""
        text = LAYOUTS[self.layout][1] + (f" under {self.prefix}*" if self.prefix else "")
        if self.fp8:
            text += ", fp8 with scales" if self.scaled else ", fp8"
        return text

    def describe(self) -> str:
        return f"{self.component}, {self.names()}"


def _prefix(keys: set[str], core: str, *also: str) -> str | None:
    """The prefix under which ``core`` and every name of ``also`` are keys, if any."""
    for key in keys:
        if not key.endswith(core):
            continue
        prefix = key[:len(key) - len(core)]
        if prefix and not prefix.endswith("."):
            continue  # "clean_x_embedder" is not "x_embedder" under a prefix
        if all(prefix + other in keys for other in also):
            return prefix
    return None


def _transformer(keys: set[str]) -> str | None:
    return _prefix(keys, "clean_x_embedder.proj.weight", "x_embedder.proj.weight",
                   "transformer_blocks.0.attn.to_q.weight")


def _vae_diffusers(keys: set[str]) -> str | None:
    return _prefix(keys, "decoder.conv_in.conv.weight", "quant_conv.weight",
                   "encoder.down_blocks.0.resnets.0.conv1.conv.weight",
                   "decoder.up_blocks.0.resnets.0.conv1.conv.weight")


def _vae_ldm(keys: set[str]) -> str | None:
    return _prefix(keys, "decoder.conv_in.conv.weight", "encoder.down.0.block.0.conv1.conv.weight",
                   "decoder.up.0.block.0.conv1.conv.weight")


def _llama(keys: set[str]) -> str | None:
    return _prefix(keys, "embed_tokens.weight", "layers.0.mlp.gate_proj.weight",
                   "layers.0.self_attn.q_proj.weight", "norm.weight")


def _clip_text(keys: set[str]) -> str | None:
    return _prefix(keys, "embeddings.token_embedding.weight", "final_layer_norm.weight",
                   "encoder.layers.0.self_attn.q_proj.weight")


def _siglip(keys: set[str]) -> str | None:
    prefix = _prefix(keys, "embeddings.patch_embedding.weight", "post_layernorm.weight",
                     "encoder.layers.0.layer_norm1.weight")
    if prefix is None or prefix + "embeddings.class_embedding" in keys:
        return None  # CLIP's vision tower has a class embedding; SigLIP has none
    return prefix


# layout -> (component, words for people, recogniser). Checked in this order.
LAYOUTS: dict[str, tuple[str, str, Callable[[set[str]], str | None]]] = {
    "framepack": ("transformer", "FramePack names", _transformer),
    "vae-original": ("vae", "HunyuanVideo's original names", _vae_diffusers),
    "vae-comfyui": ("vae", "ComfyUI's names", _vae_ldm),
    "llama": ("text_encoder", "Llama names", _llama),
    "clip-text": ("text_encoder_2", "CLIP text-model names", _clip_text),
    "siglip": ("image_encoder", "SigLIP vision-model names", _siglip),
}


def recognise(header: dict[str, TensorInfo]) -> Recognised | None:
    """The component a file holds and its key layout, from its key names; None if unknown."""
    keys = set(header)
    for layout, (component, _, find) in LAYOUTS.items():
        prefix = find(keys)
        if prefix is not None:
            fp8 = any(header[k].dtype.startswith("F8") for k in keys if k.startswith(prefix))
            scaled = fp8 and any(k.endswith(".scale_weight") for k in keys)
            return Recognised(component, layout, prefix, fp8, scaled)
    return None


# --- does a file hold the released weights? -----------------------------------------------------


def _count(keys: set[str], pattern: str) -> int:
    found = {m.group(1) for k in keys if (m := re.match(pattern, k))}
    return len(found)


def sizes(header: dict[str, TensorInfo], found: Recognised) -> dict[str, int]:
    """A few sizes that tell one configuration from another, read from the header."""
    p = re.escape(found.prefix)
    keys = set(header)

    def dim(name: str, axis: int) -> int:
        info = header.get(found.prefix + name)
        return info.shape[axis] if info is not None and len(info.shape) > axis else -1

    if found.component == "transformer":
        return {"width": dim("x_embedder.proj.weight", 0),
                "double blocks": _count(keys, p + r"transformer_blocks\.(\d+)\."),
                "single blocks": _count(keys, p + r"single_transformer_blocks\.(\d+)\.")}
    if found.component == "text_encoder":
        return {"vocabulary": dim("embed_tokens.weight", 0), "width": dim("embed_tokens.weight", 1),
                "layers": _count(keys, p + r"layers\.(\d+)\."),
                "key width": dim("layers.0.self_attn.k_proj.weight", 0)}
    if found.component == "text_encoder_2":
        return {"vocabulary": dim("embeddings.token_embedding.weight", 0),
                "width": dim("embeddings.token_embedding.weight", 1),
                "layers": _count(keys, p + r"encoder\.layers\.(\d+)\.")}
    if found.component == "image_encoder":
        return {"width": dim("embeddings.patch_embedding.weight", 0),
                "patch": dim("embeddings.patch_embedding.weight", 2),
                "positions": dim("embeddings.position_embedding.weight", 0),
                "layers": _count(keys, p + r"encoder\.layers\.(\d+)\.")}
    levels = r"encoder\.down\.(\d+)\." if found.layout == "vae-comfyui" \
        else r"encoder\.down_blocks\.(\d+)\."
    return {"channels": dim("encoder.conv_in.conv.weight", 0),
            "latent channels": dim("post_quant_conv.weight", 0),
            "levels": _count(keys, p + levels)}


def _transformer_sizes(config: dict[str, Any]) -> dict[str, int]:
    return {"width": config["num_attention_heads"] * config["attention_head_dim"],
            "double blocks": config["num_layers"], "single blocks": config["num_single_layers"]}


def _released_sizes() -> dict[str, dict[str, int]]:
    llama, clip, siglip, vae = LLAMA_CONFIG, CLIP_CONFIG, SIGLIP_CONFIG, VAE_CONFIG
    return {
        "transformer": _transformer_sizes(FRAMEPACK_TRANSFORMER_CONFIG),
        "text_encoder": {"vocabulary": llama["vocab_size"], "width": llama["hidden_size"],
                         "layers": llama["num_hidden_layers"],
                         "key width": llama["num_key_value_heads"] * llama["head_dim"]},
        "text_encoder_2": {"vocabulary": clip["vocab_size"], "width": clip["hidden_size"],
                           "layers": clip["num_hidden_layers"]},
        "image_encoder": {"width": siglip["hidden_size"], "patch": siglip["patch_size"],
                          "positions": (siglip["image_size"] // siglip["patch_size"]) ** 2,
                          "layers": siglip["num_hidden_layers"]},
        "vae": {"channels": vae["block_out_channels"][0], "latent channels": vae["latent_channels"],
                "levels": len(vae["block_out_channels"])},
    }


RELEASED_SIZES = _released_sizes()


def release_mismatch(header: dict[str, TensorInfo], found: Recognised,
                     transformer_config: dict[str, Any] | None = None) -> str:
    """'' when the file has the released FramePack's shapes (for the transformer, those of
    ``transformer_config`` when given), else what differs, for people."""
    expected = RELEASED_SIZES[found.component]
    if found.component == "transformer" and transformer_config is not None:
        expected = _transformer_sizes(transformer_config)
    actual = sizes(header, found)
    return ", ".join(f"{name} {actual[name]} (released: {value})"
                     for name, value in expected.items() if actual[name] != value)


def inspect_file(path: str | os.PathLike[str]) -> tuple[dict[str, TensorInfo], Recognised | None]:
    """The header and what it holds; raises NotWeights for a file that is not safetensors."""
    header = read_header(path)
    return header, recognise(header)


# --- building a model without weights -----------------------------------------------------------


_building = threading.local()  # .depth: how many parameters_on_meta blocks this thread is in
_patch_lock = threading.Lock()
_patch_users = 0


def _register_parameter(register: Callable[..., None]) -> Callable[..., None]:
    import torch

    def on_meta(module: torch.nn.Module, name: str, param: Any) -> None:
        if getattr(_building, "depth", 0) and param is not None and not param.is_meta:
            param = torch.nn.Parameter(param.to("meta"), requires_grad=param.requires_grad)
        register(module, name, param)

    on_meta.original = register  # type: ignore[attr-defined]
    return on_meta


@contextlib.contextmanager
def parameters_on_meta() -> Iterator[None]:
    """Modules built inside get their parameters on the meta device (no memory, no random
    initialisation) while buffers stay real: a loaded file later assigns every parameter, and
    buffers that no file holds (rotary frequencies, position ids) are already computed.

    Only the calling thread is affected: another thread building a module meanwhile (a render
    building the tiny model) gets real parameters."""
    import torch

    global _patch_users
    with _patch_lock:
        if _patch_users == 0:
            torch.nn.Module.register_parameter = _register_parameter(  # type: ignore[method-assign]
                torch.nn.Module.register_parameter)
        _patch_users += 1
    _building.depth = getattr(_building, "depth", 0) + 1
    try:
        yield
    finally:
        _building.depth -= 1
        with _patch_lock:
            _patch_users -= 1
            if _patch_users == 0:
                torch.nn.Module.register_parameter = (  # type: ignore[method-assign]
                    torch.nn.Module.register_parameter.original)  # type: ignore[attr-defined]


def released_model(component: str, transformer_config: dict[str, Any] | None = None
                   ) -> torch.nn.Module:
    """The released FramePack's ``component`` with its parameters on the meta device."""
    with parameters_on_meta():
        if component == "transformer":
            from diffusers import HunyuanVideoFramepackTransformer3DModel

            return HunyuanVideoFramepackTransformer3DModel(
                **(transformer_config or FRAMEPACK_TRANSFORMER_CONFIG))
        if component == "vae":
            from diffusers import AutoencoderKLHunyuanVideo

            return AutoencoderKLHunyuanVideo(**VAE_CONFIG)
        import transformers

        if component == "text_encoder":
            return transformers.LlamaModel(transformers.LlamaConfig(**LLAMA_CONFIG))
        if component == "text_encoder_2":
            return transformers.CLIPTextModel(transformers.CLIPTextConfig(**CLIP_CONFIG))
        if component == "image_encoder":
            return transformers.SiglipVisionModel(transformers.SiglipVisionConfig(**SIGLIP_CONFIG))
    raise KeyError(component)


def _rebuilt(model: torch.nn.Module, **changes: Any) -> torch.nn.Module:
    """The same class with its config changed, parameters on meta."""
    import copy

    config = copy.deepcopy(model.config)
    for name, value in changes.items():
        setattr(config, name, value)
    with parameters_on_meta():
        return type(model)(config)


# --- mapping a file's names to the model's ------------------------------------------------------

# Keys a file may hold that no model here has: a language-model head, CLIP's projection and
# logit scale, ComfyUI's fp8 marker and input scales, buffers older libraries saved.
DROPPED = re.compile(r"(^|\.)(lm_head\.weight|text_projection\.weight|logit_scale|scaled_fp8|"
                     r"tokenizer|position_ids|inv_freq|scale_input)$")
SCALES = (".scale_weight", ".scale_weight_tensor")

# ComfyUI's (LDM) VAE names -> AutoencoderKLHunyuanVideo's; {up} is the diffusers index of an
# "up" level (ComfyUI numbers them from the full-resolution end, diffusers in running order).
VAE_RULES: tuple[tuple[str, str], ...] = (
    (r"^(encoder)\.down\.(\d+)\.block\.(\d+)\.", r"\1.down_blocks.\2.resnets.\3."),
    (r"^(encoder)\.down\.(\d+)\.downsample\.", r"\1.down_blocks.\2.downsamplers.0."),
    (r"^(decoder)\.up\.(\d+)\.block\.(\d+)\.", r"\1.up_blocks.{up}.resnets.\3."),
    (r"^(decoder)\.up\.(\d+)\.upsample\.", r"\1.up_blocks.{up}.upsamplers.0."),
    (r"^(\w+)\.mid\.block_1\.", r"\1.mid_block.resnets.0."),
    (r"^(\w+)\.mid\.block_2\.", r"\1.mid_block.resnets.1."),
    (r"^(\w+)\.mid\.attn_1\.norm\.", r"\1.mid_block.attentions.0.group_norm."),
    (r"^(\w+)\.mid\.attn_1\.(q|k|v)\.", r"\1.mid_block.attentions.0.to_\2."),
    (r"^(\w+)\.mid\.attn_1\.proj_out\.", r"\1.mid_block.attentions.0.to_out.0."),
    (r"^(\w+)\.norm_out\.", r"\1.conv_norm_out."),
    (r"\.nin_shortcut\.", ".conv_shortcut."),
)


def comfyui_vae_name(name: str, levels: int) -> str:
    """One ComfyUI (LDM-style) HunyuanVideo VAE key as AutoencoderKLHunyuanVideo names it."""
    for pattern, replacement in VAE_RULES:
        match = re.search(pattern, name)
        if match is None:
            continue
        if "{up}" in replacement:
            replacement = replacement.replace("{up}", str(levels - 1 - int(match.group(2))))
        name = name[:match.start()] + match.expand(replacement) + name[match.end():]
    return name


def _core(found: Recognised, header: dict[str, TensorInfo]) -> dict[str, str]:
    """{name without the file's prefix (the model's own names for its layout): file key}."""
    mapped: dict[str, str] = {}
    levels = _count(set(header), re.escape(found.prefix) + r"decoder\.up\.(\d+)\.")
    for key in header:
        if not key.startswith(found.prefix) or DROPPED.search(key) or key.endswith(SCALES):
            continue
        name = key[len(found.prefix):]
        if found.layout == "vae-comfyui":
            name = comfyui_vae_name(name, levels)
        mapped[name] = key
    return mapped


# The model key whose name, minus this ending, is the prefix the model puts on the same names
# (transformers 5 saves CLIP without "text_model.", transformers 4 with it).
MODEL_ANCHORS = {
    "transformer": "clean_x_embedder.proj.weight",
    "text_encoder": "embed_tokens.weight",
    "text_encoder_2": "embeddings.token_embedding.weight",
    "image_encoder": "embeddings.patch_embedding.weight",
    "vae": "decoder.conv_in.conv.weight",
}


def _model_prefix(component: str, names: set[str]) -> str:
    anchor = MODEL_ANCHORS[component]
    return next((n[:len(n) - len(anchor)] for n in names if n.endswith(anchor)
                 and (n == anchor or n[:len(n) - len(anchor)].endswith("."))), "")


def plan(component: str, header: dict[str, TensorInfo], found: Recognised | None,
         model_names: set[str]) -> dict[str, str]:
    """{model key: file key}. A file not recognised is taken as the model's own names."""
    if found is None:
        return {key: key for key in header if not key.endswith(SCALES)}
    prefix = _model_prefix(component, model_names)
    return {prefix + name: key for name, key in _core(found, header).items()}


def without_head(found: Recognised | None, header: dict[str, TensorInfo]) -> bool:
    """A SigLIP file without the pooling head (FramePack never uses it)."""
    return found is not None and found.component == "image_encoder" and \
        not any(k.startswith(found.prefix + "head.") for k in header)


# --- loading ------------------------------------------------------------------------------------


class WeightsMismatch(ValueError):
    """The file's tensors do not fit the model; the message says how (one line)."""


def upcast(weight: torch.Tensor, scale: torch.Tensor | None,
           tensor_scale: torch.Tensor | None) -> torch.Tensor:
    """An fp8 weight times its scales, in float32. A scale is one number, one per output
    channel ([out, 1]) or one per block of inputs ([out, blocks, 1])."""
    import torch

    value = weight.to(torch.float32)
    if scale is not None:
        scale = scale.to(torch.float32)
        if scale.dim() == 3 and value.dim() == 2:
            out, blocks = scale.shape[0], scale.shape[1]
            value = (value.reshape(out, blocks, -1) * scale).reshape(weight.shape)
        else:
            value = value * scale.reshape(-1, *([1] * (value.dim() - 1))) \
                if scale.numel() > 1 else value * scale.reshape(())
    if tensor_scale is not None:
        value = value * tensor_scale.to(torch.float32).reshape(())
    return value


def read_tensors(path: str | os.PathLike[str], mapping: dict[str, str],
                 targets: dict[str, torch.Tensor], dtype: torch.dtype,
                 device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
    """{model key: tensor}: each file tensor read once, fp8 upcast with its scales, reshaped
    where a 1x1 convolution is stored as a linear layer's matrix (or the other way), floats cast
    to ``dtype``."""
    import torch
    from safetensors import safe_open

    state: dict[str, torch.Tensor] = {}
    with safe_open(str(path), framework="pt", device=str(device)) as handle:
        names = set(handle.keys())
        for model_key, file_key in mapping.items():
            tensor = handle.get_tensor(file_key)
            if tensor.dtype in (torch.float8_e4m3fn, torch.float8_e5m2):
                base = file_key.removesuffix(".weight")
                scale, whole = base + ".scale_weight", base + ".scale_weight_tensor"
                tensor = upcast(tensor, handle.get_tensor(scale) if scale in names else None,
                                handle.get_tensor(whole) if whole in names else None)
            target = targets.get(model_key)
            if target is not None and tensor.shape != target.shape and \
                    tensor.numel() == target.numel() and tensor.dim() != target.dim():
                tensor = tensor.reshape(target.shape)
            if tensor.is_floating_point() and tensor.dtype != dtype:
                tensor = tensor.to(dtype)
            state[model_key] = tensor
    return state


def check_names(mapping: dict[str, str], targets: dict[str, Any],
                shapes: dict[str, tuple[int, ...]] | None = None) -> str:
    """'' when the mapped names (and shapes, if given) are exactly the model's; else why."""
    missing = sorted(set(targets) - set(mapping))
    unexpected = sorted(set(mapping) - set(targets))
    parts = []
    if missing:
        parts.append(f"{len(missing)} keys missing (first: {missing[0]})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected keys (first: {mapping[unexpected[0]]})")
    if not parts and shapes is not None:
        for name, shape in shapes.items():
            want = tuple(targets[name].shape)
            if shape != want and _prod(shape) != _prod(want):
                parts.append(f"size mismatch for {name}: the file has {list(shape)}, the model "
                             f"{list(want)}")
                break
    return ", ".join(parts)


def _prod(shape: tuple[int, ...]) -> int:
    total = 1
    for n in shape:
        total *= n
    return total


def assign(model: torch.nn.Module, state: dict[str, torch.Tensor], what: str,
           noun: str) -> torch.nn.Module:
    """Load a full state dict (strict, assigning: no second copy), eval mode, frozen."""
    problem = check_names({k: k for k in state}, model.state_dict())
    if problem:
        raise WeightsMismatch(f"{what} does not match {noun}: {problem}")
    try:
        model.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as exc:  # shapes that differ: weights of another configuration
        first = next((line.strip() for line in str(exc).splitlines()
                      if "size mismatch" in line), str(exc).splitlines()[0])
        raise WeightsMismatch(f"{what} does not match {noun}: {first}") from None
    left = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if left:
        raise WeightsMismatch(f"{what}: {len(left)} tensors were not loaded (first: {left[0]})")
    return model.eval().requires_grad_(False)


def load(component: str, path: str | os.PathLike[str], model: torch.nn.Module,
         dtype: torch.dtype, device: torch.device | str = "cpu",
         what: str | None = None) -> torch.nn.Module:
    """``model`` (built with its config, parameters on meta or not) with the file's weights.

    Raises NotWeights for a file that is not safetensors and WeightsMismatch for one holding
    another component or another configuration, each with a one-line message.
    """
    what = what or str(path)
    header, found = inspect_file(path)
    if found is not None and found.component != component:
        raise WeightsMismatch(f"{what} holds a {found.describe()}, not {NOUNS[component]}")
    if without_head(found, header):
        model = _rebuilt(model, vision_use_head=False)
    targets = model.state_dict()
    mapping = plan(component, header, found, set(targets))
    shapes = {name: header[key].shape for name, key in mapping.items()}
    problem = check_names(mapping, targets, shapes)
    if problem:
        raise WeightsMismatch(f"{what} does not match {NOUNS[component]}: {problem}")
    state = read_tensors(path, mapping, targets, dtype, device)
    return assign(model, state, what, NOUNS[component]).to(device)
