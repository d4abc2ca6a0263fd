"""How a loaded model runs: the transformer's dtype, LoRAs, attention backend, offloading and
VAE tiling, as the shot's ``model:`` mapping sets them.

Offloading moves weights, never numbers: ``model`` keeps the two largest components (the
transformer and the Llama text encoder, never used at the same time) on the GPU one at a time;
``blocks`` keeps as many transformer blocks resident as ``vram_gb`` holds and streams the rest
from pinned CPU memory, one block at a time, as FramePack's low-VRAM mode does.
"""

from __future__ import annotations

import importlib.util

import torch

from ...plan.keys import default_dtype
from ...run.events import ModelError
from ...shot.model import ModelSettings
from .lora import apply_loras

DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32,
          "float8": torch.bfloat16}  # float8: weights stored as float8_e4m3fn, computed in bf16
ATTENTION_BACKENDS = {"sdpa": ("native", None), "flash": ("flash", "flash_attn"),
                      "sage": ("sage", "sageattention")}
SWAPPED = ("transformer", "text_encoder")  # offload: model keeps one of these on the GPU


def compute_dtype(settings: ModelSettings, profile: str) -> torch.dtype:
    return DTYPES[settings.dtype or default_dtype(profile)]


def check_attention(settings: ModelSettings, device: torch.device) -> None:
    """Refuse a backend this machine cannot run, before anything loads."""
    package = ATTENTION_BACKENDS[settings.attention][1]
    if package is None:
        return
    if device.type != "cuda":
        raise ModelError(f"attention: {settings.attention} needs a CUDA GPU (this render runs "
                         f"on {device.type}); use attention: sdpa")
    if importlib.util.find_spec(package) is None:
        raise ModelError(f"attention: {settings.attention} needs the {package} package, which "
                         f"is not installed (pip install {package.replace('_', '-')}); or use "
                         "attention: sdpa")


def prepare_transformer(model: torch.nn.Module, settings: ModelSettings, profile: str,
                        device: torch.device) -> torch.nn.Module:
    """A freshly loaded transformer made ready: LoRAs merged in float32 precision, cast to its
    dtype, attention backend set, placed on ``device`` as offloading says. The attention
    backend was checked before loading (``check_attention``)."""
    if settings.loras:
        apply_loras(model, [(lora.path, lora.scale) for lora in settings.loras])
    torch.nn.Module.to(model, compute_dtype(settings, profile))  # no diffusers dtype warning
    if settings.dtype == "float8":
        model.enable_layerwise_casting(storage_dtype=torch.float8_e4m3fn,
                                       compute_dtype=torch.bfloat16)
    if settings.attention != "sdpa":
        model.set_attention_backend(ATTENTION_BACKENDS[settings.attention][0])
    if device.type == "cuda" and settings.offload == "blocks":
        return stream_blocks(model, device, settings.vram_gb)
    if device.type == "cuda" and settings.offload == "model":
        return model  # moved to the GPU when used (ModelPool.get)
    return model.to(device)


def prepare_vae(vae: torch.nn.Module, settings: ModelSettings, tiny: bool) -> torch.nn.Module:
    if settings.vae_tiling:
        if tiny:  # the tiny model's frames are small: tiles scaled down so tiling happens
            vae.enable_tiling(tile_sample_min_height=32, tile_sample_min_width=32,
                              tile_sample_stride_height=24, tile_sample_stride_width=24)
        else:
            vae.enable_tiling()
    return vae


def stream_blocks(model: torch.nn.Module, device: torch.device, vram_gb: float | None
                  ) -> torch.nn.Module:
    """Everything but the blocks on ``device``; the first blocks that fit ``vram_gb`` resident
    too; every other block's weights kept in pinned CPU memory, copied in before its forward and
    dropped after it (weights are read-only, so nothing is copied back)."""
    blocks = [*model.transformer_blocks, *model.single_transformer_blocks]
    for module in model.children():
        if not isinstance(module, torch.nn.ModuleList):
            module.to(device)
    budget = int((vram_gb or 0) * 1024 ** 3)
    for block in blocks:
        size = sum(p.numel() * p.element_size() for p in block.parameters())
        if size <= budget:
            block.to(device)
            budget -= size
        else:
            _stream(block, device)
    return model


def _stream(block: torch.nn.Module, device: torch.device) -> None:
    tensors = [*block.parameters(), *block.buffers()]
    host = [t.data.pin_memory() for t in tensors]
    for tensor, pinned in zip(tensors, host):
        tensor.data = pinned

    def load(module: torch.nn.Module, args: object) -> None:
        for tensor, pinned in zip(tensors, host):
            tensor.data = pinned.to(device, non_blocking=True)

    def drop(module: torch.nn.Module, args: object, output: object) -> None:
        for tensor, pinned in zip(tensors, host):
            tensor.data = pinned

    block.register_forward_pre_hook(load)
    block.register_forward_hook(drop)


def swap_in(name: str, items: dict, device: torch.device) -> None:
    """offload: model: moving ``name`` to the GPU first moves the other large one out."""
    if name not in SWAPPED:
        return
    for other in SWAPPED:
        if other != name and other in items:
            items[other].to("cpu")
    items[name].to(device)
