"""Model profiles: what each `model:` name means, as plain data every layer can read.

Loading the weights belongs to the render layer; this module only names the profiles, their
sampling order and the identity that joins every cache key (so a cache never mixes models).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    sampling: str  # the order the checkpoint was trained for ("" where frames are images)
    revision: str  # bumped whenever the same name would produce different pixels
    engine: str = "framepack"  # the engine whose shots may name it
    repository: str | None = None  # another engine's Hugging Face pipeline repository


PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile("framepack", "FramePackI2V_HY (13B), inverted anti-drifting sampling", "inverted",
                "lllyasviel/FramePackI2V_HY"),
        Profile("framepack-f1", "FramePack-F1 (13B), forward sampling", "forward",
                "lllyasviel/FramePack_F1_I2V_HY_20250503"),
        Profile("tiny", "a tiny random-weight FramePack built in code, for tests and dry runs",
                "inverted", "tiny-3"),
        Profile("flux-schnell", "FLUX.1-schnell (12B), 4 steps, no guidance", "",
                "black-forest-labs/FLUX.1-schnell", "flux-deforum",
                "black-forest-labs/FLUX.1-schnell"),
        Profile("flux-dev", "FLUX.1-dev (12B), guidance-distilled", "",
                "black-forest-labs/FLUX.1-dev", "flux-deforum", "black-forest-labs/FLUX.1-dev"),
        Profile("tiny-flux", "a tiny random-weight FLUX.1 built in code, for tests and dry runs",
                "", "tiny-flux-1", "flux-deforum"),
    )
}
