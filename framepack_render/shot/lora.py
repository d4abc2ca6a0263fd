"""LoRA files for the FramePack transformer, checked without torch.

The shot validator calls ``lora_problem`` for every LoRA a shot names, so it reads only the
safetensors header (a length and a JSON table of tensor names, dtypes and shapes) and never the
weights. The render side (``framepack_render.engines.framepack.lora``) reads the tensors and reuses
``parse_key`` and ``lora_target`` here, so both sides agree on what a key means.

Two key formats are understood, one per file:

* musubi-tuner / kohya: ``lora_unet_<module path, '.' written as '_'>.lora_down.weight``,
  ``.lora_up.weight`` and an optional scalar ``.alpha``;
* diffusers / PEFT: ``transformer.<module path>.lora_A.weight`` and ``.lora_B.weight``, the
  prefix also ``diffusion_model.`` (ComfyUI) or absent, with an optional ``.alpha``.
"""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path
from typing import NamedTuple

from .files import FileProblem, check_regular, open_regular

__all__ = ["DIFFUSERS", "KOHYA", "LoraKey", "file_sha256", "lora_problem", "lora_target",
           "parse_key"]

KOHYA = "kohya"
DIFFUSERS = "diffusers"
DOWN, UP, ALPHA = "down", "up", "alpha"

KOHYA_PREFIX = "lora_unet_"
DIFFUSERS_PREFIXES = ("transformer.", "diffusion_model.")
_SUFFIXES = {
    KOHYA: {".lora_down.weight": DOWN, ".lora_up.weight": UP, ".alpha": ALPHA},
    DIFFUSERS: {".lora_A.weight": DOWN, ".lora_B.weight": UP, ".alpha": ALPHA},
}
_EXPECTED = "expected lora_down/lora_up or lora_A/lora_B keys"

MAX_HEADER = 100 * 1024 * 1024  # safetensors' own limit; a larger length is not a header
CHUNK = 1024 * 1024


class LoraKey(NamedTuple):
    """One tensor of a LoRA file: its format, its module as the file writes it, and which part
    of the pair (``down``, ``up`` or ``alpha``) it holds."""

    format: str
    module: str
    part: str


def lora_target(module: str) -> tuple[str, str]:
    """(format, name to look up in the transformer) for a module name as a file writes it.

    kohya names come back with their underscores (``transformer_blocks_0_attn_to_q``): dots and
    underscores cannot be told apart there, so the caller compares against model names with
    their dots replaced. diffusers names come back dotted, without their prefix.
    """
    if module.startswith(KOHYA_PREFIX):
        return KOHYA, module[len(KOHYA_PREFIX):]
    for prefix in DIFFUSERS_PREFIXES:
        if module.startswith(prefix):
            return DIFFUSERS, module[len(prefix):]
    return DIFFUSERS, module


def parse_key(key: str) -> LoraKey | None:
    """What a tensor name means, or None when it is not a LoRA weight in a supported format."""
    fmt, _ = lora_target(key)
    for suffix, part in _SUFFIXES[fmt].items():
        if key.endswith(suffix):
            module = key[:-len(suffix)]
            _, target = lora_target(module)
            # kohya module names never hold dots; one there is some other format.
            if not target or (fmt == KOHYA and "." in target):
                return None
            return LoraKey(fmt, module, part)
    return None


def file_sha256(path: Path) -> str:
    """The sha256 of a file's bytes, read in 1 MiB chunks (LoRAs reach hundreds of MB)."""
    digest = hashlib.sha256()
    handle, _ = open_regular(path, "a LoRA file")
    with handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _read_header(path: Path) -> dict[str, dict] | None:
    """The tensor table of a safetensors file, or None when the bytes are not one."""
    handle, info = open_regular(path, "a LoRA file")
    with handle:
        head = handle.read(8)
        if len(head) < 8:
            return None
        (length,) = struct.unpack("<Q", head)
        if length == 0 or length > min(MAX_HEADER, info.st_size - 8):
            return None
        raw = handle.read(length)
    if len(raw) < length:
        return None
    try:
        table = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    if not isinstance(table, dict):
        return None
    table.pop("__metadata__", None)
    if not all(isinstance(info, dict) and isinstance(info.get("shape"), list)
               for info in table.values()):
        return None
    return table


def _module_problem(module: str, shapes: dict[str, list[int]]) -> str | None:
    """Why one module's tensors cannot be merged, or None."""
    if DOWN not in shapes:
        return f"has no lora_down/lora_A weight for module {module}"
    if UP not in shapes:
        return f"has lora_down/lora_A without lora_up/lora_B for module {module}"
    down, up = shapes[DOWN], shapes[UP]
    if len(down) != 2 or len(up) != 2:
        return f"has LoRA weights that are not 2-D (not for linear layers) for module {module}"
    if down[0] != up[1]:
        return f"has mismatched ranks for module {module} (down {down}, up {up})"
    if down[0] == 0:
        return f"has rank 0 for module {module}"
    if any(size != 1 for size in shapes.get(ALPHA, [])):
        return f"has an alpha that is not a single number for module {module}"
    return None


def lora_problem(path: Path) -> str | None:
    """None when ``path`` is a LoRA in a supported format, else a short reason for the user,
    meant to follow the file's name ("... does not exist"). Reads only the header."""
    path = Path(path)
    try:
        check_regular(path, "a LoRA file")
    except FileProblem as problem:
        return "does not exist" if problem.missing else str(problem)
    if path.suffix.lower() != ".safetensors":
        # Pickled formats (.pt, .ckpt, .bin) can run code when loaded; they are never opened.
        return "is not a .safetensors file"
    try:
        table = _read_header(path)
    except FileProblem as problem:
        return str(problem)
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    if table is None:
        return "is not a safetensors file"
    modules: dict[str, dict[str, list[int]]] = {}
    unknown: list[str] = []
    for name, info in table.items():
        key = parse_key(name)
        if key is None:
            unknown.append(name)
        else:
            modules.setdefault(key.module, {})[key.part] = info["shape"]
    if not modules:
        return f"holds no LoRA weights ({_EXPECTED})"
    if unknown:
        # Merging the rest would silently drop part of the LoRA (a bias, DoRA scales...).
        return f"holds a tensor that is not a supported LoRA weight: {min(unknown)}"
    for module in sorted(modules):
        problem = _module_problem(module, modules[module])
        if problem:
            return problem
    return None
