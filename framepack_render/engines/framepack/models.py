"""Model components and a lazy pool that loads them; where their weights are found is
``lookup`` (no torch), whose names this module also offers.

Dtypes: the transformer is bfloat16 everywhere (its checkpoint dtype; 26 GB). The text encoders,
SigLIP and the VAE are float16 on CUDA and float32 elsewhere (CPU half precision is slow and some
ops lack it). The ``tiny`` profile is float32 throughout; it is built in code, except the
components a shot's ``model:`` mapping names (files or folders of tiny-shaped weights). The
models file never feeds ``tiny``: cache keys name only the shot's weights, so weights from
elsewhere would share the built-in model's cache entries.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ...profiles import PROFILES
from ...run.events import ModelError
from ...shot.errors import suggest
from ...shot.model import ModelSpec
from . import lookup, single_files
from .single_files import WEIGHTED
from .lookup import (  # noqa: F401 (offered here too)
    BUILT_IN, COMPONENTS, FRAMEPACK_TRANSFORMER_CONFIG, HUNYUAN_REPO, HubSource, KINDS,
    Location, MARKERS, MODELS_ENV, MODEL_KEYS, MissingWeights, ModelsFileError,
    PICKLE_SUFFIXES, POOL_ITEMS, REDUX_REPO, TRANSFORMER_CLASS_NAMES, TRANSFORMER_REPOS,
    UnsafeWeights, WEIGHT_NAMES, _home_path, _hub_folder, availability, check_folder,
    check_path, check_single_file, default_models_file, hub_cache_dir, hub_source, locate,
    read_models_file, tiny_location,
)

@dataclass
class Components:
    """Everything a render needs, loaded. ``prompt_template`` is {"template", "crop_start"}."""

    transformer: Any
    vae: Any
    text_encoder: Any
    tokenizer: Any
    text_encoder_2: Any
    tokenizer_2: Any
    image_encoder: Any
    feature_extractor: Any
    prompt_template: dict[str, Any]
    transformer_dtype: torch.dtype = torch.bfloat16
    encoder_dtype: torch.dtype = torch.float16  # text encoders and SigLIP
    vae_dtype: torch.dtype = torch.float16


def _refuse_pickle(path: Path) -> None:
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise UnsafeWeights(f"refusing to load {_home_path(path)}: pickled weights can run code; "
                            f"only .safetensors files are loaded")


def _load_state_dict(files: list[Path], dtype: torch.dtype | None,
                     device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    state: dict[str, torch.Tensor] = {}
    for file in files:
        _refuse_pickle(file)
        if file.suffix.lower() != ".safetensors":
            raise UnsafeWeights(f"refusing to load {_home_path(file)}: not a .safetensors file")
        for key, tensor in load_file(str(file), device=str(device)).items():
            if dtype is not None and tensor.is_floating_point() and tensor.dtype != dtype:
                tensor = tensor.to(dtype)  # also turns fp8 checkpoints into the compute dtype
            state[key] = tensor
    return state


def _load_meta(model: torch.nn.Module, state: dict[str, torch.Tensor], what: str
               ) -> torch.nn.Module:
    """Load a full state dict into a model built on the meta device (strict, assigning)."""
    expected = set(model.state_dict().keys())
    missing = sorted(expected - set(state))
    unexpected = sorted(set(state) - expected)
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} keys missing (first: {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys (first: {unexpected[0]})")
        raise ModelError(f"{what} does not match the FramePack transformer: {', '.join(parts)}")
    try:
        model.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as exc:  # shapes that differ: a checkpoint for another configuration
        first = next((line.strip() for line in str(exc).splitlines()
                      if "size mismatch" in line), str(exc).splitlines()[0])
        raise ModelError(f"{what} does not match the FramePack transformer: {first}") from None
    left = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if left:
        raise ModelError(f"{what}: {len(left)} tensors were not loaded (first: {left[0]})")
    return model.eval().requires_grad_(False)


def load_transformer_file(path: str | os.PathLike[str], config: dict[str, Any] | None = None,
                          dtype: torch.dtype = torch.bfloat16, device: torch.device | str = "cpu"):
    """A transformer from a single .safetensors file, loaded straight to ``device``: FramePack's
    names (Kijai's and lllyasviel's files), ComfyUI's prefixed ones, or musubi-tuner's fp8 files
    (upcast with their scales).

    diffusers' ``from_single_file`` does not support this class, so the model is built from
    ``config`` (FramePack's by default) with its parameters on the meta device and the file is
    loaded with ``load_state_dict(strict=True, assign=True)``; floating tensors are cast to
    ``dtype`` first.
    """
    config = config if config is not None else lookup.FRAMEPACK_TRANSFORMER_CONFIG
    return _load_file("transformer", Path(path), single_files.released_model("transformer", config),
                      dtype, device)


def load_single_file(component: str, path: str | os.PathLike[str], profile: str,
                     dtype: torch.dtype, device: torch.device | str = "cpu", seed: int = 0):
    """A weighted component from one .safetensors file, built with its profile's config: the
    released FramePack's, or for ``tiny`` tiny's (built from ``seed``, then overwritten)."""
    if profile == "tiny":
        from .tiny import BUILDERS

        model = BUILDERS[component](seed)
    elif component == "transformer":
        return load_transformer_file(path, dtype=dtype, device=device)
    else:
        model = single_files.released_model(component)
    return _load_file(component, Path(path), model, dtype, device)


def _load_file(component: str, path: Path, model: torch.nn.Module, dtype: torch.dtype,
               device: torch.device | str) -> torch.nn.Module:
    _refuse_pickle(path)
    if path.suffix.lower() != ".safetensors":
        raise UnsafeWeights(f"refusing to load {_home_path(path)}: not a .safetensors file")
    if not path.is_file():
        raise MissingWeights(f"{component} weights not found: {_home_path(path)} does not exist")
    try:
        return single_files.load(component, path, model, dtype, device, what=_home_path(path))
    except single_files.NotWeights as exc:
        raise MissingWeights(f"{component} weights unreadable: {_home_path(path)}: {exc}") from None
    except single_files.WeightsMismatch as exc:
        raise ModelError(str(exc)) from None


def load_transformer_folder(folder: str | os.PathLike[str], dtype: torch.dtype = torch.bfloat16,
                            device: torch.device | str = "cpu"):
    """A transformer from a diffusers folder (config.json and safetensors, sharded or not).

    Built on the meta device and assigned, like the single file: no random initialisation and no
    second copy in memory, with or without ``accelerate``.
    """
    from diffusers import HunyuanVideoFramepackTransformer3DModel as Transformer

    folder = Path(folder)
    state, detail = check_folder(folder, "diffusers")
    if state == "pickle":
        raise UnsafeWeights(f"refusing to load the transformer: {detail}; "
                            f"only .safetensors are loaded")
    if state != "ok":
        raise MissingWeights(f"transformer weights not found: {detail}")
    name = WEIGHT_NAMES["diffusers"]
    single = folder / f"{name}.safetensors"
    if single.is_file():
        files = [single]
    else:
        index = json.loads((folder / f"{name}.safetensors.index.json").read_text(encoding="utf-8"))
        files = [folder / s for s in sorted(set(index["weight_map"].values()))]
    config = Transformer.load_config(str(folder), local_files_only=True)
    with torch.device("meta"):
        model = Transformer.from_config(config)
    return _load_meta(model, _load_state_dict(files, dtype, device), _home_path(folder))


def _encoder_dtype(device: torch.device) -> torch.dtype:
    return torch.float16 if device.type == "cuda" else torch.float32


def _load_real(component: str, location: Path, device: torch.device,
               transformer_dtype: torch.dtype = torch.bfloat16,
               encoder_dtype: torch.dtype | None = None, profile: str = "framepack",
               seed: int = 0) -> Any:
    """Load one component from a local folder or, for a weighted one, a single file."""
    dtype = encoder_dtype or _encoder_dtype(device)
    common = dict(local_files_only=True)
    if component in WEIGHTED and location.is_file():
        return load_single_file(component, location, profile,
                                transformer_dtype if component == "transformer" else dtype,
                                device, seed)
    if component == "transformer":
        return load_transformer_folder(location, dtype=transformer_dtype, device=device)
    if component == "vae":
        from diffusers import AutoencoderKLHunyuanVideo

        from diffusers.utils import is_accelerate_available

        model = AutoencoderKLHunyuanVideo.from_pretrained(
            str(location), torch_dtype=dtype, use_safetensors=True,
            low_cpu_mem_usage=is_accelerate_available(), **common)
    elif component in ("text_encoder", "text_encoder_2", "image_encoder"):
        import transformers

        cls = {"text_encoder": transformers.LlamaModel,
               "text_encoder_2": transformers.CLIPTextModel,
               "image_encoder": transformers.SiglipVisionModel}[component]
        model = cls.from_pretrained(str(location), dtype=dtype, use_safetensors=True, **common)
    elif component in ("tokenizer", "tokenizer_2"):
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(location), **common)
        tokenizer.padding_side = "right"  # the text encoders' masks and crops assume it
        return tokenizer
    elif component == "feature_extractor":
        from .tiny import image_processor_class

        return image_processor_class().from_pretrained(str(location), **common)
    else:  # pragma: no cover
        raise KeyError(component)
    return model.to(device).eval().requires_grad_(False)


def real_prompt_template() -> dict[str, Any]:
    """HunyuanVideo's prompt template (crop_start 95), as diffusers' FramePack pipeline uses it."""
    from transformers.utils import logging as hf_logging

    # Importing the pipeline module touches transformers' SiglipImageProcessor, which warns
    # when torchvision is missing; that warning is noise here (the PIL twin is used).
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        from diffusers.pipelines.hunyuan_video.pipeline_hunyuan_video_framepack import (
            DEFAULT_PROMPT_TEMPLATE)
    finally:
        hf_logging.set_verbosity(verbosity)
    return dict(DEFAULT_PROMPT_TEMPLATE)


def pool_identity(model: ModelSpec) -> dict[str, Any]:
    """What makes two shots' pools differ: the weights and every setting of ``model:``."""
    from ...plan.keys import model_identity, transformer_identity

    settings = model.settings
    return {"model": model_identity(model), "paths": model.paths,
            "transformer": transformer_identity(model), "offload": settings.offload,
            "vram_gb": settings.vram_gb, "vae_tiling": settings.vae_tiling}


# --- the pool -----------------------------------------------------------------------------------


class _Lazy:
    """A pool attribute that loads its component on first access."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, pool: "ModelPool | None", owner: type) -> Any:
        if pool is None:
            return self
        return pool.get(self.name)


class ModelPool:
    """The components of one model, loaded on first use and kept.

    ``pool.vae`` loads the VAE only; ``pool.loaded`` is the set of names constructed so far.
    Missing weights raise ``MissingWeights`` when the component is first asked for.
    """

    transformer = _Lazy()
    vae = _Lazy()
    text_encoder = _Lazy()
    tokenizer = _Lazy()
    text_encoder_2 = _Lazy()
    tokenizer_2 = _Lazy()
    image_encoder = _Lazy()
    feature_extractor = _Lazy()
    prompt_template = _Lazy()

    def __init__(self, model: ModelSpec, device: str | torch.device = "cpu",
                 models_file: Path | None = None, *, seed: int = 0):
        if model.profile not in PROFILES:
            raise ValueError(f"unknown model profile {model.profile!r}")
        self.model = model
        self.profile = model.profile
        self.device = torch.device(device)
        self.models_file = Path(models_file) if models_file is not None else None
        self.seed = seed  # tiny only
        self._items: dict[str, Any] = {}
        self._lock = threading.RLock()

    @property
    def tiny(self) -> bool:
        return self.profile == "tiny"

    @property
    def loaded(self) -> set[str]:
        return set(self._items)

    @property
    def transformer_dtype(self) -> torch.dtype:
        from .placement import compute_dtype

        return compute_dtype(self.model.settings, self.profile)

    @property
    def offloading(self) -> bool:
        """offload: model on a GPU: the transformer and text encoder share it by turns."""
        return self.model.settings.offload == "model" and self.device.type == "cuda"

    @property
    def encoder_dtype(self) -> torch.dtype:
        return torch.float32 if self.tiny else _encoder_dtype(self.device)

    @property
    def vae_dtype(self) -> torch.dtype:
        return self.encoder_dtype

    def get(self, name: str) -> Any:
        if name not in POOL_ITEMS:
            raise KeyError(f"unknown component {name!r}{suggest(name, POOL_ITEMS)}")
        with self._lock:
            if name not in self._items:
                self._items[name] = self._load(name)
            if self.offloading:
                from .placement import swap_in

                swap_in(name, self._items, self.device)
            return self._items[name]

    def check(self, names: "tuple[str, ...] | list[str] | set[str]" = COMPONENTS) -> None:
        """Fail fast: raise the first missing component's ``MissingWeights`` (the transformer
        first) without loading anything, so a render does not spend minutes loading a text
        encoder before finding the transformer absent. Loaded components are not checked."""
        for name in COMPONENTS:
            if name in names and name not in self._items:
                location = self.location(name)
                if location.error is not None:
                    raise location.error

    def location(self, name: str) -> Location:
        if self.tiny:
            found = tiny_location(name, self.model.paths, self.model.mark)
            return found if found is not None else Location(name, None, BUILT_IN)
        return locate(self.profile, name, self.model.paths, self.models_file, self.model.mark)

    def _load(self, name: str) -> Any:
        from .placement import check_attention, prepare_transformer, prepare_vae

        settings = self.model.settings
        if name == "transformer":
            check_attention(settings, self.device)  # before minutes of loading
        # Loaded to the CPU first where weights change or move after loading.
        staged = name == "transformer" and (settings.loras or settings.offload != "none"
                                            or settings.dtype == "float8") or \
            (name == "text_encoder" and self.offloading)
        device = torch.device("cpu") if staged else self.device
        location = self.location(name) if name in COMPONENTS else None
        built_in = location is None or location.path is None and location.error is None
        if self.tiny and built_in:
            from .tiny import BUILDERS

            item = BUILDERS[name](self.seed)
            item = item.to(device) if isinstance(item, torch.nn.Module) else item
        elif location is None:
            item = real_prompt_template()
        else:
            if location.error is not None:
                raise location.error
            assert location.path is not None
            item = _load_real(name, location.path, device, self.transformer_dtype,
                              self.encoder_dtype, self.profile, self.seed)
            if self.tiny and name == "vae":
                item.use_framewise_decoding = False  # decoded as tiny.build_vae's is
        if name == "transformer":
            item = prepare_transformer(item, settings, self.profile, self.device)
        elif name == "vae":
            item = prepare_vae(item, settings, self.tiny)
        return item

    def unload(self, *names: str) -> None:
        """Drop components (all when none are named); they load again on next access."""
        with self._lock:
            for name in names or tuple(self._items):
                self._items.pop(name, None)

    def components(self) -> Components:
        """Every component, loading what is not loaded yet."""
        return Components(**{name: self.get(name) for name in POOL_ITEMS},
                          transformer_dtype=self.transformer_dtype,
                          encoder_dtype=self.encoder_dtype, vae_dtype=self.vae_dtype)

    def __repr__(self) -> str:
        return (f"ModelPool({self.profile!r}, device={str(self.device)!r}, "
                f"loaded={sorted(self._items)})")

