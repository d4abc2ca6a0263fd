"""Content-addressed keys: the SHA-256 of canonical JSON of everything that shapes a node.

Keys never contain machine-specific data (absolute paths, mtimes): the same shot gives the
same keys on every machine, so caches can be shared. Bump KEY_VERSION whenever the meaning of
an input changes, so old cache entries are never mistaken for new ones.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from ..profiles import PROFILES
from ..shot.model import ImageRef, ModelSpec

KEY_VERSION = 1


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False)


def content_key(kind: str, inputs: dict[str, Any]) -> str:
    payload = canonical({"kind": kind, "v": KEY_VERSION, "inputs": inputs})
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def derive_seed(seed: int, *parts: object) -> int:
    """A 63-bit seed per node, so each window's noise can be drawn on its own."""
    text = "/".join(str(p) for p in (seed, *parts))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") >> 1


def image_identity(ref: ImageRef, edit_keys: dict[str, str]) -> dict[str, str]:
    """An image is its bytes' hash; an edit's result is the edit's key; an input video's last
    frame is the video's hash."""
    if ref.edit is not None:
        return {"edit": edit_keys[ref.edit]}
    if ref.video is not None:
        return {"video": ref.video.sha256, "frame": "last"}
    assert ref.info is not None
    return {"sha256": ref.info.sha256}


def model_identity(model: ModelSpec) -> dict[str, Any]:
    """The profile and its revision, plus the names (not the paths) of any custom weights."""
    identity: dict[str, Any] = {"profile": model.profile,
                                "revision": PROFILES[model.profile].revision}
    if model.paths:
        identity["weights"] = {k: Path(v).name for k, v in sorted(model.paths.items())}
    return identity


def transformer_identity(model: ModelSpec) -> dict[str, Any] | None:
    """The settings that change what the transformer computes, beyond ``model_identity``:
    windows and edits hash it, encodings and decoded frames do not. None when all are at
    their defaults, so existing keys stay valid."""
    settings = model.settings
    identity: dict[str, Any] = {}
    if settings.dtype is not None and settings.dtype != default_dtype(model.profile):
        identity["dtype"] = settings.dtype
    if settings.attention != "sdpa":
        identity["attention"] = settings.attention
    if settings.rope_scaling is not None:
        identity["rope_scaling"] = [snap(settings.rope_scaling.factor),
                                    snap(settings.rope_scaling.timestep_threshold)]
    if settings.loras:
        identity["lora"] = [{"sha256": lora.sha256, "scale": snap(lora.scale)}
                            for lora in settings.loras]
    return identity or None


def default_dtype(profile: str) -> str:
    return "float32" if profile == "tiny" else "bfloat16"


def snap(value: float) -> float:
    """Floats rounded so that last-bit differences between platforms cannot split a key."""
    return float(f"{value:.10g}")
