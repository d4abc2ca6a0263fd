"""Full-size FramePack on one GPU: our window sampler against diffusers' pipeline.

Every component is built at its released size with random weights, straight on the GPU in
its render dtype (nothing is downloaded, no CPU copy is made): the FramePack transformer
(bfloat16, ``FRAMEPACK_TRANSFORMER_CONFIG``), the HunyuanVideo VAE, the Llama-3-8B and CLIP-L
text encoders and SigLIP so400m (float16). The tokenizers are the tiny model's, built in code:
only token ids matter, and they stay inside the real vocabularies. Components are built in the
order a render loads them, and the text encoders are freed once the prompt is encoded.

One generation window (9 latents: 36 new video frames) at FramePack's 640 bucket for a square
image (608x640), 25 steps, is then sampled and decoded
(a) through the renderer's own functions (``encode_text``, ``encode_image``, ``inverted_context``,
    ``sample_window`` with its transformer pass and TeaCache, ``decode_latents``), with
    TeaCache off, at 0.1 and at 0.15;
(b) through diffusers' ``HunyuanVideoFramepackPipeline`` built from the same components, given
    the same prompt embeddings (it still encodes the image itself; that part is timed apart).
A short warm-up of both runs first. Per configuration: transformer calls and TeaCache skips,
sampling and decode seconds, seconds per video frame ((sampling + decode) / 36), the ratio to
the pipeline, and the peak memory (torch.cuda.max_memory_allocated, reset before each run).
Random weights make TeaCache's skips unlike a real checkpoint's; the timings per call hold.

``--dry-run`` runs the same functions with the tiny model's configs, float32 on the CPU, at
64x64 and 4 steps, in seconds (peak memory is then the process's peak RSS); it also builds
every full-size component on the meta device to check the full-size configs.

    python benchmarks/gpu.py [--steps 25] [--configs off 0.1 0.15 pipeline] [--size 608x640]
                             [--sampler euler|unipc] [--warmup-steps 2] [--budget 420] [--json]
    python benchmarks/gpu.py --dry-run

Progress goes to stderr, one line per finished configuration, so a run cut short still says
what it measured. A configuration predicted to end past --budget seconds (counted from the
start of building) is skipped and listed as such; --steps and --configs trim a run.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import sys
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterator

import torch

from incremental_render import START_IMAGE, log, parse_size  # this folder is on sys.path

WINDOW = 9  # latents per window: FramePack's default
PROMPT = "a red ball rolls slowly across the green grass"
GUIDANCE = 10.0  # FramePack's distilled guidance
SEED = 31337
CONFIGS = ("off", "0.1", "0.15", "pipeline")
PUBLISHED = (  # FramePack's README, RTX 4090 desktop: unoptimized, and with TeaCache
    ("FramePack, RTX 4090 (published)", 2.5),
    ("FramePack + TeaCache, RTX 4090 (published)", 1.5),
)
GiB = 1024 ** 3

SIGLIP_IMAGE_SIZE = 384  # SigLIP so400m-patch14-384 (lllyasviel/flux_redux_bfl)
VAE_FLAGS = ("use_slicing", "use_tiling", "use_framewise_encoding", "use_framewise_decoding")


# --- scales ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scale:
    """What differs between the full-size run and the dry run: configs, device, size, steps.
    Dtypes follow the renderer's rules for ``profile``."""

    name: str
    profile: str  # "framepack" (bfloat16 transformer, float16 encoders) or "tiny" (float32)
    device: str
    width: int
    height: int
    steps: int
    warmup_steps: int
    transformer: dict[str, Any]
    vae: dict[str, Any]
    text_encoder: Any  # LlamaConfig
    text_encoder_2: Any  # CLIPTextConfig
    image_encoder: Any  # SiglipVisionConfig
    image_size: int  # SigLIP's input side
    vae_flags: dict[str, bool] = field(default_factory=dict)  # over diffusers' defaults
    threads: int | None = None  # torch CPU threads; None: torch's choice


def _token_ids(tokenizer: Any) -> dict[str, int]:
    """The tokenizer's special ids, so the encoders' configs agree with it."""
    return dict(pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                eos_token_id=tokenizer.eos_token_id)


def full_scale(device: str = "cuda") -> Scale:
    """The released configs: FramePackI2V_HY, llava-llama-3-8b, CLIP-L, SigLIP so400m."""
    from transformers import CLIPTextConfig, LlamaConfig, SiglipVisionConfig

    from framepack_render.engines.framepack.models import FRAMEPACK_TRANSFORMER_CONFIG
    from framepack_render.engines.framepack.single_files import (CLIP_CONFIG, LLAMA_CONFIG,
                                                                  SIGLIP_CONFIG, VAE_CONFIG)
    from framepack_render.engines.framepack.tiny import build_tokenizer, build_tokenizer_2

    # The released shapes, with the token ids of the tokenizers built in code.
    llama = LlamaConfig(**{**LLAMA_CONFIG, **_token_ids(build_tokenizer())})
    clip = CLIPTextConfig(**{**CLIP_CONFIG, **_token_ids(build_tokenizer_2())})
    siglip = SiglipVisionConfig(**SIGLIP_CONFIG)
    return Scale("full size", "framepack", device, 608, 640, 25, 2,
                 dict(FRAMEPACK_TRANSFORMER_CONFIG), dict(VAE_CONFIG), llama, clip, siglip,
                 SIGLIP_IMAGE_SIZE)


def dry_scale() -> Scale:
    """The tiny model's configs and VAE settings, read from its own builders."""
    from framepack_render.engines.framepack import tiny

    vae = tiny.build_vae()
    return Scale("dry run", "tiny", "cpu", 64, 64, 4, 1,
                 dict(tiny.TRANSFORMER_CONFIG), dict(tiny.VAE_CONFIG),
                 tiny.build_text_encoder().config, tiny.build_text_encoder_2().config,
                 tiny.build_image_encoder().config, tiny.SIGLIP_IMAGE_SIZE,
                 vae_flags={name: getattr(vae, name) for name in VAE_FLAGS},
                 threads=1)  # tiny ops: a second thread only contends on a shared CPU


# --- memory and clocks ----------------------------------------------------------------------


class Meter:
    """Synchronised clocks and peak memory: the GPU's allocator, or on the CPU the process's
    peak RSS (reset through /proc/self/clear_refs where Linux allows it)."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"

    def now(self) -> float:
        if self.cuda:
            torch.cuda.synchronize()
        return time.perf_counter()

    def reset(self) -> None:
        gc.collect()
        if self.cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
            return
        try:
            Path("/proc/self/clear_refs").write_text("5")
        except OSError:
            pass

    def peak(self) -> int | None:
        if self.cuda:
            return torch.cuda.max_memory_allocated()
        return _proc_status("VmHWM")

    def allocated(self) -> int | None:
        if self.cuda:
            return torch.cuda.memory_allocated()
        return _proc_status("VmRSS")


def _proc_status(field_name: str) -> int | None:
    """A /proc/self/status figure in bytes (Linux), else None."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


# --- building components --------------------------------------------------------------------


@contextmanager
def factory(device: str | torch.device, dtype: torch.dtype) -> Iterator[None]:
    """New tensors on ``device`` in ``dtype``: a module is born where and as it will run."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            yield
    finally:
        torch.set_default_dtype(previous)


@torch.no_grad()
def randomize_(module: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Redraw every parameter in place, on its device, with the tiny model's scheme: norm
    weights near 1 and their biases near 0, matrices and kernels N(0, 1/fan-in), other vectors
    N(0, 0.02^2). Small, bounded activations keep float16 and bfloat16 finite."""
    device = next(module.parameters()).device
    generator = torch.Generator(device=device).manual_seed(seed)
    norms = {id(p) for m in module.modules() if "norm" in type(m).__name__.lower()
             for p in m.parameters(recurse=False)}
    for name, param in module.named_parameters():
        if id(param) in norms:
            weight = name.endswith("weight")
            param.normal_(1.0 if weight else 0.0, 0.1 if weight else 0.05, generator=generator)
        elif param.dim() >= 2:
            param.normal_(0.0, 1.0 / math.sqrt(max(math.prod(param.shape[1:]), 1)),
                          generator=generator)
        else:
            param.normal_(0.0, 0.02, generator=generator)
    return module.eval().requires_grad_(False)


def build(make: Callable[[], torch.nn.Module], device: torch.device, dtype: torch.dtype,
          seed: int) -> torch.nn.Module:
    """Construct on ``device`` in ``dtype``, then randomize in place (meta: construct only)."""
    with factory(device, dtype):
        module = make()
    if device.type == "meta":
        return module
    return randomize_(module, seed)


def makers(scale: Scale) -> dict[str, Callable[[], torch.nn.Module]]:
    """How each weighted component is constructed from the scale's configs."""
    from diffusers import AutoencoderKLHunyuanVideo, HunyuanVideoFramepackTransformer3DModel
    from transformers import CLIPTextModel, LlamaModel, SiglipVisionModel

    return {
        "text_encoder": lambda: LlamaModel(scale.text_encoder),
        "text_encoder_2": lambda: CLIPTextModel(scale.text_encoder_2),
        "vae": lambda: _with_flags(AutoencoderKLHunyuanVideo(**scale.vae), scale.vae_flags),
        "image_encoder": lambda: SiglipVisionModel(scale.image_encoder),
        "transformer": lambda: HunyuanVideoFramepackTransformer3DModel(**scale.transformer),
    }


def _with_flags(module: torch.nn.Module, flags: dict[str, bool]) -> torch.nn.Module:
    """The VAE with the scale's decoding settings (the tiny model decodes a chunk at once)."""
    for name, value in flags.items():
        setattr(module, name, value)
    return module


def feature_extractor(size: int) -> Any:
    """SigLIP's image processor at ``size`` (the tiny model's settings otherwise)."""
    from transformers.image_utils import PILImageResampling

    from framepack_render.engines.framepack.tiny import image_processor_class

    return image_processor_class()(
        size={"height": size, "width": size}, image_mean=[0.5] * 3, image_std=[0.5] * 3,
        resample=PILImageResampling.BICUBIC, do_resize=True, do_rescale=True,
        do_normalize=True, do_convert_rgb=True)


def parameters(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def count(n: int) -> str:
    """A parameter count for people: 12.874 B, 7.5 M, 31.2 k."""
    for unit, size, digits in (("B", 1e9, 3), ("M", 1e6, 1), ("k", 1e3, 1)):
        if n >= size:
            return f"{n / size:.{digits}f} {unit}"
    return str(n)


def check_full_configs() -> dict[str, int]:
    """Build every full-size component on the meta device in its render dtype (no memory,
    no weights) and count its parameters: the full-size configs construct as written."""
    scale = full_scale("meta")
    dtypes = {"transformer": torch.bfloat16}
    return {name: parameters(build(make, torch.device("meta"),
                                   dtypes.get(name, torch.float16), 0))
            for name, make in makers(scale).items()}


# --- conditioning ---------------------------------------------------------------------------


@dataclass
class Conditioning:
    text: Any  # TextEmbeds
    image: Any  # ImageEmbeds
    frame: Any  # the start frame as a PIL image, exactly the pixels encoded


def pixels_to_image(pixels: torch.Tensor) -> Any:
    """(1, 3, H, W) in [-1, 1] (from 8-bit pixels) -> the same pixels as a PIL image."""
    from PIL import Image

    array = ((pixels[0].permute(1, 2, 0) + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
    return Image.fromarray(array.numpy())


# --- runs -----------------------------------------------------------------------------------


@dataclass
class Result:
    """One configuration's window: what ran, how long, how much memory."""

    config: str
    label: str
    steps: int
    calls: int
    skipped: int
    sampling: float  # seconds: the denoising loop
    decode: float  # seconds: VAE decode of [start latent, window] to 8-bit frames
    prepare: float  # seconds before the first step: the pipeline's own image encoding
    frames: int  # new video frames per window (4 x window)
    decoded_frames: int
    peak_bytes: int | None
    finite: bool
    ratio: float | None = None  # (sampling + decode) over the pipeline's

    @property
    def window(self) -> float:
        return self.sampling + self.decode

    @property
    def seconds_per_frame(self) -> float:
        return self.window / self.frames


def label(config: str) -> str:
    return "diffusers pipeline" if config == "pipeline" else f"ours, TeaCache {config}"


def window_job(cond: Conditioning, scale: Scale, steps: int, sampler: str,
               threshold: float | None) -> Any:
    """The single window of a one-window inverted shot, as the renderer builds it: padding 0,
    start image as prefix, empty history, the balanced flow shift for its token count."""
    from framepack_render.plan.flowshift import resolve_shift, window_tokens
    from framepack_render.plan.layout import inverted_layout, latent_paddings
    from framepack_render.engines.framepack.window import WindowJob, inverted_context

    shift = resolve_shift("balanced", "standard", window_tokens(scale.width, scale.height, WINDOW))
    generator = torch.Generator("cpu").manual_seed(SEED)
    noise = torch.randn((1, 16, WINDOW, scale.height // 8, scale.width // 8),
                        generator=generator, dtype=torch.float32)
    prefix = cond.image.latent
    return WindowJob(
        noise=noise, contexts=inverted_context(prefix, prefix[:, :, :0]),
        layout=inverted_layout(WINDOW, latent_paddings(1)[0]), text=cond.text, negative=None,
        image=cond.image, steps=steps, guidance=GUIDANCE, cfg=1.0, mu=shift.mu,
        sigma=shift.sigma, sampler=sampler, teacache=threshold)


def run_ours(parts: Any, cond: Conditioning, scale: Scale, steps: int, sampler: str,
             config: str, meter: Meter) -> Result:
    """Sample the window with ``sample_window`` and decode it with ``decode_latents``."""
    from framepack_render.output.decode import decode_latents, to_uint8
    from framepack_render.engines.framepack.window import CallStats, sample_window

    threshold = None if config == "off" else float(config)
    job = window_job(cond, scale, steps, sampler, threshold)
    stats = CallStats()
    meter.reset()
    began = meter.now()
    latents = sample_window(parts.transformer, job, stats=stats)
    sampled = meter.now()
    frames = to_uint8(decode_latents(parts.vae, torch.cat([cond.image.latent, latents], dim=2)))
    done = meter.now()
    return Result(config, label(config), steps, stats.calls, stats.skipped, sampled - began,
                  done - sampled, 0.0, 4 * WINDOW, len(frames), meter.peak(),
                  bool(torch.isfinite(latents).all()))


def make_pipeline(parts: Any) -> Any:
    """diffusers' pipeline over the same components (the text encoders are already freed:
    it gets the prompt embeddings)."""
    from diffusers import FlowMatchEulerDiscreteScheduler
    from transformers.utils import logging as hf_logging

    # Its module touches SiglipImageProcessor, which warns when torchvision is missing.
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        from diffusers import HunyuanVideoFramepackPipeline
    finally:
        hf_logging.set_verbosity(verbosity)
    pipe = HunyuanVideoFramepackPipeline(
        text_encoder=None, tokenizer=parts.tokenizer, transformer=parts.transformer,
        vae=parts.vae, scheduler=FlowMatchEulerDiscreteScheduler(use_dynamic_shifting=True),
        text_encoder_2=None, tokenizer_2=parts.tokenizer_2, image_encoder=parts.image_encoder,
        feature_extractor=parts.feature_extractor)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def run_pipeline(pipe: Any, cond: Conditioning, scale: Scale, steps: int,
                 meter: Meter) -> Result:
    """One window (num_frames 33) through the pipeline; a hook on the transformer marks the
    first step, the step callback the last."""
    import numpy as np

    marks: dict[str, float] = {}
    calls = [0]

    def first_call(module: torch.nn.Module, args: tuple) -> None:
        if calls[0] == 0:
            marks["first"] = meter.now()
        calls[0] += 1

    def step_end(pipeline: Any, i: int, t: Any, tensors: dict) -> dict:
        if i == steps - 1:
            marks["last"] = meter.now()
        return tensors

    device = scale.device
    hook = pipe.transformer.register_forward_pre_hook(first_call)
    try:
        meter.reset()
        began = meter.now()
        video = pipe(
            image=cond.frame, prompt_embeds=cond.text.hidden.to(device),
            prompt_attention_mask=cond.text.mask.to(device),
            pooled_prompt_embeds=cond.text.pooled.to(device), height=scale.height,
            width=scale.width, num_frames=4 * (WINDOW - 1) + 1, latent_window_size=WINDOW,
            num_inference_steps=steps, guidance_scale=GUIDANCE,
            generator=torch.Generator("cpu").manual_seed(SEED), output_type="np",
            callback_on_step_end=step_end).frames[0]
        done = meter.now()
    finally:
        hook.remove()
    sampling, decode = marks["last"] - marks["first"], done - marks["last"]
    return Result("pipeline", label("pipeline"), steps, calls[0], 0, sampling, decode,
                  marks["first"] - began, 4 * WINDOW, len(video), meter.peak(),
                  bool(np.isfinite(video).all()))


# --- the benchmark --------------------------------------------------------------------------


@dataclass
class Report:
    scale: str
    device: str
    versions: dict[str, str]
    size: str
    window: int
    steps: int
    sampler: str
    warmup_steps: int
    parameters: dict[str, int]
    build_seconds: dict[str, float]
    conditioning_seconds: dict[str, float]
    resident_bytes: int | None
    results: list[Result]
    skipped_configs: list[str] = field(default_factory=list)  # over the time budget
    full_size_parameters: dict[str, int] = field(default_factory=dict)  # dry run: meta check
    total_seconds: float = 0.0


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        return f"{props.name} ({props.total_memory / GiB:.0f} GiB)"
    return f"CPU ({platform.machine()}, {os.cpu_count()} cores)"


def versions() -> dict[str, str]:
    import diffusers
    import transformers

    found = {"torch": torch.__version__, "diffusers": diffusers.__version__,
             "transformers": transformers.__version__}
    if torch.version.cuda:
        found["cuda"] = torch.version.cuda
    return found


class Bench:
    """What the steps of a run share: the scale, the clock, the renderer's dtype rules."""

    def __init__(self, scale: Scale):
        from framepack_render.engines.framepack.models import ModelPool
        from framepack_render.shot.errors import Mark
        from framepack_render.shot.model import ModelSpec

        self.started = time.perf_counter()
        if scale.threads is not None:
            torch.set_num_threads(scale.threads)
        self.scale = scale
        self.device = torch.device(scale.device)
        self.meter = Meter(self.device)
        self.spec = ModelSpec(scale.profile, Mark("benchmarks/gpu.py"))
        self.pool = ModelPool(self.spec, self.device)  # its dtype rules only: nothing loads
        self.makers = makers(scale)
        self.built: dict[str, float] = {}
        self.sizes: dict[str, int] = {}
        self.encoded: dict[str, float] = {}

    def stage(self, message: str) -> None:
        log(f"[{time.perf_counter() - self.started:6.1f} s] {message}")

    def component(self, name: str, dtype: torch.dtype) -> torch.nn.Module:
        began = self.meter.now()
        module = build(self.makers[name], self.device, dtype, SEED + len(self.built))
        self.built[name] = self.meter.now() - began
        self.sizes[name] = parameters(module)
        log(f"  built {name}: {count(self.sizes[name])} parameters, {dtype}, "
            f"{self.built[name]:.2f} s")
        return module

    def timed(self, name: str, work: Callable[[], Any]) -> Any:
        began = self.meter.now()
        value = work()
        self.encoded[name] = self.meter.now() - began
        return value

    def encoders(self) -> Any:
        """Components holding the text encoders and tokenizers; the rest comes later."""
        from framepack_render.engines.framepack.models import Components
        from framepack_render.engines.framepack.tiny import (TINY_PROMPT_TEMPLATE, build_tokenizer,
                                                  build_tokenizer_2)

        tokenizer, tokenizer_2 = build_tokenizer(), build_tokenizer_2()
        for tok, config in ((tokenizer, self.scale.text_encoder),
                            (tokenizer_2, self.scale.text_encoder_2)):
            assert len(tok) <= config.vocab_size, "token ids must stay inside the vocabulary"
        dtype = self.pool.encoder_dtype
        return Components(
            transformer=None, vae=None, text_encoder=self.component("text_encoder", dtype),
            tokenizer=tokenizer, text_encoder_2=self.component("text_encoder_2", dtype),
            tokenizer_2=tokenizer_2, image_encoder=None,
            feature_extractor=feature_extractor(self.scale.image_size),
            prompt_template=dict(TINY_PROMPT_TEMPLATE),
            transformer_dtype=self.pool.transformer_dtype, encoder_dtype=dtype,
            vae_dtype=self.pool.vae_dtype)

    def vae(self) -> torch.nn.Module:
        from framepack_render.engines.framepack.placement import prepare_vae

        return prepare_vae(self.component("vae", self.pool.vae_dtype), self.spec.settings,
                           self.scale.profile == "tiny")

    def transformer(self) -> torch.nn.Module:
        """Built, then prepared as the renderer prepares a loaded one."""
        from framepack_render.engines.framepack.placement import prepare_transformer

        return prepare_transformer(self.component("transformer", self.pool.transformer_dtype),
                                   self.spec.settings, self.scale.profile, self.device)


def condition(bench: Bench, parts: Any) -> Conditioning:
    """Encode the prompt and the start image with the renderer's encoders, freeing the text
    encoders before the VAE and SigLIP are built."""
    from framepack_render.engines.framepack.conditioning import (encode_image, encode_text,
                                                                 image_embeds, load_pixels,
                                                                 text_embeds)

    text = bench.timed("prompt", lambda: text_embeds(encode_text(parts, PROMPT)))
    parts.text_encoder = parts.text_encoder_2 = None
    bench.meter.reset()
    bench.stage("building the VAE and image encoder")
    parts.vae = bench.vae()
    parts.image_encoder = bench.component("image_encoder", bench.pool.encoder_dtype)
    pixels = load_pixels(START_IMAGE, bench.scale.width, bench.scale.height)
    image = bench.timed("image", lambda: image_embeds(encode_image(parts, pixels)))
    return Conditioning(text, image, pixels_to_image(pixels))


def measuring_order(configs: list[str]) -> list[str]:
    """TeaCache off and the pipeline first: a run cut short by its budget keeps the ratio."""
    first = [c for c in ("off", "pipeline") if c in configs]
    return first + [c for c in configs if c not in first]


def predict(last: Result | None, steps: int) -> float:
    """Seconds a configuration should take, from the last run (the warm-up at first)."""
    if last is None:
        return 0.0
    return last.sampling / last.steps * steps + last.decode + last.prepare


def measure(bench: Bench, parts: Any, cond: Conditioning, pipe: Any, configs: list[str],
            steps: int, sampler: str, last: Result | None, budget: float | None
            ) -> tuple[list[Result], list[str]]:
    """Each configuration in turn, skipping those the time budget (seconds since the start)
    cannot fit; ratios to the pipeline when it ran. Rows come back ours first."""
    results, skipped = [], []
    for config in measuring_order(configs):
        left = None if budget is None else budget - (time.perf_counter() - bench.started)
        if left is not None and predict(last, steps) > left:
            log(f"  skipping {label(config)}: about {predict(last, steps):.0f} s needed, "
                f"{left:.0f} s of the budget left")
            skipped.append(config)
            continue
        bench.stage(f"{label(config)}: {steps} steps")
        result = (run_pipeline(pipe, cond, bench.scale, steps, bench.meter)
                  if config == "pipeline"
                  else run_ours(parts, cond, bench.scale, steps, sampler, config, bench.meter))
        log(f"  {result.calls} calls, {result.skipped} skipped, sampling {result.sampling:.2f} s, "
            f"decode {result.decode:.2f} s, {result.seconds_per_frame:.3f} s/frame, "
            f"peak {_gib(result.peak_bytes)} GiB" + ("" if result.finite else ", NOT FINITE"))
        results.append(result)
        last = result
    pipeline = next((r for r in results if r.config == "pipeline"), None)
    for result in results:
        result.ratio = result.window / pipeline.window if pipeline is not None else None
    results.sort(key=lambda r: (r.config == "pipeline", configs.index(r.config)))
    return results, skipped


def check_memory(device: torch.device, needed: float = 40 * GiB) -> None:
    """Warn when the GPU has less free memory than the run needs (the transformer alone is
    26 GB in bfloat16; the Llama encoder, 16 GB, is freed before it is built)."""
    if device.type != "cuda":
        return
    free, _ = torch.cuda.mem_get_info(device)
    if free < needed:
        log(f"warning: {free / GiB:.0f} GiB of GPU memory free; this run needs about "
            f"{needed / GiB:.0f} GiB")


def run(scale: Scale, configs: list[str], steps: int, sampler: str, warmup_steps: int,
        budget: float | None = None) -> Report:
    """Build in the order a render loads, encode, warm up, then measure."""
    bench = Bench(scale)
    log(f"{scale.name}: {device_name(bench.device)}, "
        + ", ".join(f"{k} {v}" for k, v in versions().items()))
    check_memory(bench.device)

    # 1. Text encoders and tokenizers (the tiny tokenizers' ids fit both scales' vocabularies)
    bench.stage("building the text encoders")
    parts = bench.encoders()

    # 2. Prompt and start image, through the renderer's encoders
    cond = condition(bench, parts)

    # 3. The transformer; the pipeline over the same components
    bench.stage("building the transformer")
    parts.transformer = bench.transformer()
    pipe = make_pipeline(parts) if "pipeline" in configs else None
    bench.meter.reset()
    resident = bench.meter.allocated()

    # 4. Warm-up: kernels, allocator and autotuning, outside every measurement
    warm = None
    if warmup_steps > 0:
        bench.stage(f"warm-up ({warmup_steps} steps each)")
        warm = run_ours(parts, cond, scale, warmup_steps, sampler, "off", bench.meter)
        if pipe is not None:
            run_pipeline(pipe, cond, scale, warmup_steps, bench.meter)

    # 5. Measure, within the time budget
    results, skipped = measure(bench, parts, cond, pipe, configs, steps, sampler, warm, budget)
    return Report(scale=scale.name, device=device_name(bench.device), versions=versions(),
                  size=f"{scale.width}x{scale.height}", window=WINDOW, steps=steps,
                  sampler=sampler, warmup_steps=warmup_steps, parameters=bench.sizes,
                  build_seconds=bench.built, conditioning_seconds=bench.encoded,
                  resident_bytes=resident, results=results, skipped_configs=skipped,
                  total_seconds=time.perf_counter() - bench.started)


# --- output ---------------------------------------------------------------------------------


def _gib(value: int | None) -> str:
    return "—" if value is None else f"{value / GiB:.2f}"


def header(report: Report) -> list[str]:
    """Where it ran (GPU name, versions) and what the window was."""
    versions_text = " · ".join(f"{k} {v}" for k, v in report.versions.items())
    seconds = report.conditioning_seconds
    return [f"[bold]{report.scale}[/bold]: {report.device} · {versions_text}",
            f"one window of {report.window} latents ({4 * report.window} new frames) at "
            f"{report.size}, {report.steps} steps, ours with {report.sampler}, warm-up "
            f"{report.warmup_steps} steps",
            f"built in {sum(report.build_seconds.values()):.1f} s, resident "
            f"{_gib(report.resident_bytes)} GiB; prompt encoded in {seconds['prompt']:.2f} s, "
            f"image in {seconds['image']:.2f} s"]


def table(report: Report) -> Any:
    """One row per configuration, then the published figures in their own section."""
    from rich.table import Table

    rows = Table(title="seconds per video frame, one window")
    for name in ("configuration", "calls", "skipped", "sampling s", "decode s", "s/frame",
                 "vs pipeline", "peak GiB"):
        rows.add_column(name, justify="left" if name == "configuration" else "right")
    for r in report.results:
        rows.add_row(r.label, str(r.calls), str(r.skipped), f"{r.sampling:.2f}",
                     f"{r.decode:.2f}", f"{r.seconds_per_frame:.3f}",
                     "—" if r.ratio is None else f"{r.ratio:.3f}", _gib(r.peak_bytes))
    for config in report.skipped_configs:
        rows.add_row(f"{label(config)}: skipped, over the time budget", *["—"] * 7)
    rows.add_section()
    for name, value in PUBLISHED:
        rows.add_row(name, "—", "—", "—", "—", f"{value:.1f}", "—", "—")
    return rows


def notes(report: Report) -> list[str]:
    """What the columns mean, and the checks that did not fit the table."""
    pipeline = next((r for r in report.results if r.config == "pipeline"), None)
    lines = [f"s/frame = (sampling + decode) / {4 * report.window}; vs pipeline compares the "
             "same sum" + (f" (the pipeline's own image encoding, {pipeline.prepare:.2f} s, "
                           "is left out)" if pipeline is not None else "") + ".",
             "peak: torch.cuda.max_memory_allocated per run" if "CPU" not in report.device
             else "peak: the process's peak RSS per run (CPU)",
             "Published rows: FramePack's README figures for an RTX 4090 desktop, not "
             "measured here. Random weights: TeaCache skips differ from a real checkpoint's."]
    if report.full_size_parameters:
        counts = ", ".join(f"{k} {count(v)}" for k, v in report.full_size_parameters.items())
        lines.append(f"full-size configs build (meta device): {counts}")
    if any(not r.finite for r in report.results):
        lines.append("warning: some outputs were not finite (random weights overflowed)")
    return lines + [f"total {report.total_seconds:.1f} s"]


def print_table(report: Report) -> None:
    from rich.console import Console

    console = Console()
    if not console.is_terminal:  # logs and pipes: wide enough for one line per row
        console = Console(width=150)
    for line in header(report):
        console.print(line)
    console.print(table(report))
    for line in notes(report):
        console.print(line)


def report_json(report: Report) -> dict[str, Any]:
    data = asdict(report)
    for row, result in zip(data["results"], report.results):
        row.update(window=result.window, seconds_per_frame=result.seconds_per_frame)
    data["published"] = [{"label": name, "seconds_per_frame": value} for name, value in PUBLISHED]
    return data


# --- command line ---------------------------------------------------------------------------


def parse_config(text: str) -> str:
    """off, pipeline, or a TeaCache threshold (written as given, e.g. 0.15)."""
    if text in ("off", "pipeline"):
        return text
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"a configuration is off, pipeline or a TeaCache "
                                         f"threshold in (0, 1], not {text!r}")
    return f"{value:g}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true",
                        help="the tiny model on the CPU: checks the whole run in seconds")
    parser.add_argument("--steps", type=int, help="sampling steps (default 25; dry run 4)")
    parser.add_argument("--configs", nargs="+", type=parse_config, default=list(CONFIGS),
                        metavar="CONFIG", help="off, TeaCache thresholds and/or pipeline "
                        f"(default: {' '.join(CONFIGS)})")
    parser.add_argument("--size", type=parse_size, help="WIDTHxHEIGHT (default 608x640; "
                        "dry run 64x64)")
    parser.add_argument("--sampler", choices=["euler", "unipc"], default="euler",
                        help="our sampler (default euler, as the pipeline)")
    parser.add_argument("--warmup-steps", type=int, help="steps of each warm-up run "
                        "(default 2; dry run 1; 0: none)")
    parser.add_argument("--budget", type=float, default=420.0, metavar="SECONDS",
                        help="skip configurations predicted to end later than this many "
                        "seconds after building starts (default 420; 0: no limit)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()

    if not args.dry_run and not torch.cuda.is_available():
        print("gpu.py: a CUDA GPU is needed for the full-size benchmark (none is visible); "
              "run with --dry-run to check it with the tiny model on the CPU", file=sys.stderr)
        return 2
    scale = dry_scale() if args.dry_run else full_scale()
    width, height = (int(v) for v in args.size.split("x")) if args.size else \
        (scale.width, scale.height)
    steps = args.steps if args.steps is not None else scale.steps
    warmup = args.warmup_steps if args.warmup_steps is not None else scale.warmup_steps
    if steps < 2 or warmup < 0:
        parser.error("--steps must be at least 2 and --warmup-steps at least 0")
    if width % 16 or height % 16:
        parser.error("--size: both sides must be multiples of 16")
    scale = replace(scale, width=width, height=height)
    configs = list(dict.fromkeys(args.configs))

    report = run(scale, configs, steps, args.sampler, warmup, args.budget or None)
    if args.dry_run:
        report.full_size_parameters = check_full_configs()
    if args.json:
        json.dump(report_json(report), sys.stdout, indent=2)
        print()
    else:
        print_table(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
