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
    sampling: str  # the order the checkpoint was trained for
    revision: str  # bumped whenever the same name would produce different pixels


PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile("framepack", "FramePackI2V_HY (13B), inverted anti-drifting sampling", "inverted",
                "lllyasviel/FramePackI2V_HY"),
        Profile("framepack-f1", "FramePack-F1 (13B), forward sampling", "forward",
                "lllyasviel/FramePack_F1_I2V_HY_20250503"),
        Profile("tiny", "a tiny random-weight FramePack built in code, for tests and dry runs",
                "inverted", "tiny-3"),
    )
}
