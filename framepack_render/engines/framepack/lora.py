"""LoRAs merged into the FramePack transformer's weights at load time.

Each LoRA pair becomes a weight delta, ``W += scale * (alpha / rank) * (up @ down)``, added to the
matching ``nn.Linear`` in place, so sampling runs at the plain model's speed and memory. Files are
checked with ``framepack_render.shot.lora`` (the same rules the shot validator applies) and read
with safetensors only: nothing is ever unpickled.

Every file is read and matched against the transformer before any weight changes, so a LoRA that
does not fit leaves the model as it was.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch

from ...run.events import ModelError
from ...shot.errors import display_path
from ...shot.lora import DIFFUSERS, KOHYA, lora_problem, lora_target, parse_key

__all__ = ["LoraError", "LoraWeights", "apply_loras", "read_lora"]


class LoraError(ModelError):
    """A LoRA that cannot be read or does not fit the transformer (one line, for the user)."""


@dataclass
class LoraWeights:
    """One module's pair: ``down`` is (rank, in), ``up`` is (out, rank)."""

    down: torch.Tensor
    up: torch.Tensor
    alpha: float | None = None

    @property
    def rank(self) -> int:
        return int(self.down.shape[0])

    def factor(self, scale: float) -> float:
        """What ``up @ down`` is multiplied by; alpha defaults to the rank (a factor of 1)."""
        alpha = self.rank if self.alpha is None else self.alpha
        return scale * alpha / self.rank


def read_lora(path: Path) -> dict[str, LoraWeights]:
    """A LoRA file's pairs by module name as the file writes it (with its prefix)."""
    path = Path(path)
    problem = lora_problem(path)
    if problem:
        raise LoraError(f"LoRA {display_path(path)} {problem}")
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError) as exc:  # a sound header over truncated data
        raise LoraError(f"LoRA {display_path(path)} cannot be read: {exc}") from None
    parts: dict[str, dict[str, torch.Tensor]] = {}
    for name, tensor in tensors.items():
        key = parse_key(name)
        if key is None:  # the file changed since lora_problem looked
            raise LoraError(f"LoRA {display_path(path)} holds a tensor that is not a supported "
                            f"LoRA weight: {name}")
        parts.setdefault(key.module, {})[key.part] = tensor
    return {module: LoraWeights(down=p["down"], up=p["up"],
                                alpha=float(p["alpha"].item()) if "alpha" in p else None)
            for module, p in parts.items()}


class _Linears:
    """The transformer's linear layers under both spellings a LoRA may use."""

    def __init__(self, transformer: torch.nn.Module):
        self.dotted: dict[str, torch.nn.Linear] = {}
        self.underscored: dict[str, torch.nn.Linear] = {}
        self.ambiguous: set[str] = set()
        for name, module in transformer.named_modules():
            if isinstance(module, torch.nn.Linear):
                self.dotted[name] = module
                flat = name.replace(".", "_")
                if flat in self.underscored:  # "a_b.c" and "a.b_c" read the same in kohya keys
                    self.ambiguous.add(flat)
                self.underscored[flat] = module

    def find(self, path: Path, module: str) -> torch.nn.Linear | None:
        fmt, target = lora_target(module)
        if fmt == KOHYA:
            if target in self.ambiguous:
                raise LoraError(f"LoRA {display_path(path)}: module {module} matches more than "
                                "one layer of the transformer; use a diffusers-format LoRA")
            return self.underscored.get(target)
        assert fmt == DIFFUSERS
        return self.dotted.get(target)


_Merge = tuple[torch.nn.Linear, LoraWeights, float]


def _check_shape(path: Path, module: str, linear: torch.nn.Linear, weights: LoraWeights) -> None:
    delta = (int(weights.up.shape[0]), int(weights.down.shape[1]))
    if delta != tuple(linear.weight.shape):
        raise LoraError(f"LoRA {display_path(path)}: module {module} has shape {delta} "
                        f"(up {tuple(weights.up.shape)} @ down {tuple(weights.down.shape)}) but "
                        f"the transformer's layer is {tuple(linear.weight.shape)}; the LoRA may "
                        "be for another model or model size")


def _plan(path: Path, scale: float, linears: _Linears) -> list[_Merge]:
    """Every merge one file asks for, checked, without touching a weight."""
    if not math.isfinite(scale):
        raise LoraError(f"LoRA {display_path(path)}: scale {scale} is not a finite number")
    weights = read_lora(path)
    merges: list[_Merge] = []
    unmatched: list[str] = []
    for module in sorted(weights):
        linear = linears.find(path, module)
        if linear is None:
            unmatched.append(module)
            continue
        _check_shape(path, module, linear, weights[module])
        merges.append((linear, weights[module], scale))
    if unmatched:
        raise LoraError(
            f"LoRA {display_path(path)}: {len(unmatched)} of {len(weights)} modules match no "
            f"linear layer of the FramePack transformer (first: {unmatched[0]}); the LoRA may be "
            "for another model (HunyuanVideo's native key names such as double_blocks are not "
            "supported; FramePack LoRAs from musubi-tuner or diffusers are)")
    return merges


def _merge(linear: torch.nn.Linear, weights: LoraWeights, scale: float) -> None:
    weight = linear.weight
    up = weights.up.to(weight.device, torch.float32)
    down = weights.down.to(weight.device, torch.float32)
    delta = (up @ down).mul_(weights.factor(scale))
    # Sum in float32 and round once into the weight's own dtype (bfloat16 for real models).
    weight.copy_((weight.float() + delta).to(weight.dtype))


def apply_loras(transformer: torch.nn.Module, loras: list[tuple[Path, float]]) -> None:
    """Merge each (file, scale) into ``transformer``'s linear weights, in order, in place.

    Raises LoraError before changing anything when a file is not a supported LoRA, names a
    module the transformer lacks, or has a shape that differs from its layer.
    """
    if not loras:
        return
    linears = _Linears(transformer)
    merges = [merge for path, scale in loras for merge in _plan(Path(path), float(scale), linears)]
    with torch.no_grad():
        for linear, weights, scale in merges:
            _merge(linear, weights, scale)
