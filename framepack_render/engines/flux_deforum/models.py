"""FLUX.1's components, loaded lazily: built in code for ``tiny-flux``, from the weights
``lookup`` finds for ``flux-schnell`` and ``flux-dev`` (bfloat16, ``local_files_only``)."""

from __future__ import annotations

import json
import tempfile
import threading
from pathlib import Path
from typing import Any

import torch

from ...plan.keys import canonical, model_identity
from ...shot.model import ModelSpec
from ..framepack.lookup import BUILT_IN, Location, MissingWeights, UnsafeWeights
from .lookup import COMPONENTS, locate
from .sampler import MAX_SEQUENCE_LENGTH, make_scheduler

# The released configs, for single files (which carry none).
_TRANSFORMER = dict(patch_size=1, in_channels=64, num_layers=19, num_single_layers=38,
                    attention_head_dim=128, num_attention_heads=24, joint_attention_dim=4096,
                    pooled_projection_dim=768, axes_dims_rope=[16, 56, 56])
SINGLE_FILE_CONFIGS: dict[str, dict[str, Any]] = {
    "flux-dev/transformer": {"_class_name": "FluxTransformer2DModel", **_TRANSFORMER,
                             "guidance_embeds": True},
    "flux-schnell/transformer": {"_class_name": "FluxTransformer2DModel", **_TRANSFORMER,
                                 "guidance_embeds": False},
    "vae": {"_class_name": "AutoencoderKL", "in_channels": 3, "out_channels": 3,
            "latent_channels": 16, "down_block_types": ["DownEncoderBlock2D"] * 4,
            "up_block_types": ["UpDecoderBlock2D"] * 4,
            "block_out_channels": [128, 256, 512, 512], "layers_per_block": 2,
            "norm_num_groups": 32, "act_fn": "silu", "sample_size": 1024,
            "scaling_factor": 0.3611, "shift_factor": 0.1159, "use_quant_conv": False,
            "use_post_quant_conv": False, "force_upcast": True,
            "mid_block_add_attention": True},
}


def pool_identity(model: ModelSpec) -> str:
    return canonical({"model": model_identity(model), "paths": model.paths})


class FluxPool:
    """The components of one FLUX model, each loaded on first use and kept."""

    def __init__(self, model: ModelSpec, device: str | torch.device = "cpu",
                 models_file: Path | None = None, *, seed: int = 0):
        self.model = model
        self.profile = model.profile
        self.device = torch.device(device)
        self.models_file = models_file
        self.seed = seed
        self._items: dict[str, Any] = {}
        self._lock = threading.RLock()

    @property
    def tiny(self) -> bool:
        return self.profile == "tiny-flux"

    @property
    def dtype(self) -> torch.dtype:
        return torch.float32 if self.tiny else torch.bfloat16

    @property
    def max_sequence_length(self) -> int:
        return MAX_SEQUENCE_LENGTH[self.profile]

    @property
    def loaded(self) -> set[str]:
        return set(self._items)

    def scheduler(self):
        """A fresh scheduler (it keeps per-run state)."""
        return make_scheduler(self.profile)

    def __getattr__(self, name: str) -> Any:
        if name in COMPONENTS:
            return self.get(name)
        raise AttributeError(name)

    def get(self, name: str) -> Any:
        with self._lock:
            if name not in self._items:
                self._items[name] = self._load(name)
            return self._items[name]

    def location(self, name: str) -> Location:
        if self.tiny:
            return Location(name, None, BUILT_IN)
        return locate(self.profile, name, self.model.paths, self.models_file, self.model.mark)

    def check(self, names: tuple[str, ...] | set[str] = COMPONENTS) -> None:
        """Fail fast, the transformer first, before any component loads."""
        for name in COMPONENTS:
            if name in names and name not in self._items:
                location = self.location(name)
                if location.error is not None:
                    raise location.error

    def _load(self, name: str) -> Any:
        if self.tiny:
            from .tiny import BUILDERS

            item = BUILDERS[name](self.seed)
            return item.to(self.device) if isinstance(item, torch.nn.Module) else item
        location = self.location(name)
        if location.error is not None:
            raise location.error
        assert location.path is not None
        item = load_component(self.profile, name, location.path, self.dtype)
        return item.to(self.device).eval().requires_grad_(False) \
            if isinstance(item, torch.nn.Module) else item


def load_component(profile: str, name: str, path: Path, dtype: torch.dtype) -> Any:
    """One component from a diffusers/transformers folder, or the transformer or VAE from a
    single .safetensors file (built with the released config)."""
    if path.suffix.lower() in (".bin", ".pt", ".pth", ".ckpt"):
        raise UnsafeWeights(f"refusing to load {path}: pickled weights can run code")
    local = dict(local_files_only=True)
    if name in ("transformer", "vae"):
        import diffusers

        cls = diffusers.FluxTransformer2DModel if name == "transformer" else \
            diffusers.AutoencoderKL
        if path.is_file():
            config = SINGLE_FILE_CONFIGS[f"{profile}/transformer" if name == "transformer"
                                         else "vae"]
            with tempfile.TemporaryDirectory(prefix="framepack-flux-config-") as folder:
                (Path(folder) / "config.json").write_text(json.dumps(config))
                return cls.from_single_file(str(path), config=folder, torch_dtype=dtype,
                                            **local)
        return cls.from_pretrained(str(path), torch_dtype=dtype, use_safetensors=True, **local)
    if name in ("text_encoder", "text_encoder_2"):
        import transformers

        cls = transformers.CLIPTextModel if name == "text_encoder" else \
            transformers.T5EncoderModel
        return cls.from_pretrained(str(path), dtype=dtype, use_safetensors=True, **local)
    if name in ("tokenizer", "tokenizer_2"):
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(str(path), **local)
    raise MissingWeights(f"{profile}: unknown component {name}")  # pragma: no cover
