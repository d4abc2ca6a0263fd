"""The settings an import takes from the command line rather than from the source file."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Options:
    seconds: float | None = None  # length of FP-Studio timestamped prompts (--seconds)
    image: Path | None = None  # start image where the source has none (--image)
    model: str | None = None  # framepack | framepack-f1, where the source does not say
    lora_dirs: tuple[Path, ...] = field(default_factory=tuple)  # where named LoRAs live
