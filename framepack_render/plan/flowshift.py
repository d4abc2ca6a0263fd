"""Flow-shift presets and the timestep schedule, as small pure functions.

FramePack shifts its flow-matching timesteps with ``exp(mu) / (exp(mu) + (1/t - 1) ** sigma)``.
``mu`` grows with the window's token count (0.5 at 256 tokens to 1.15 at 4096, clamped to
[0.3, ln 7]); the presets of the FramePack flow-shift study add an offset to it, and each
preset carries the exponent ``sigma``. sigma = 1 is FramePack's own schedule. A larger sigma
makes the curve steeper around its middle, so the steps crowd at both ends: more steps on
composition (high noise) and on fine detail (low noise), fewer in between.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

MU_MIN = 0.3
MU_MAX = math.log(7.0)


@dataclass(frozen=True)
class Preset:
    mu_offset: float
    sigma: float
    use: str


# mu offsets from the flow-shift study; sigmas chosen so each preset's curve matches its intent.
PRESETS: dict[str, Preset] = {
    "balanced": Preset(0.0, 1.0, "general use: FramePack's own schedule"),
    "subtle": Preset(-0.2, 1.1, "small movements: gentler shift, more low-noise steps"),
    "dynamic": Preset(0.1, 0.95, "large motion: stronger shift, flatter curve"),
    "talking": Preset(-0.15, 1.05, "faces and lip movement"),
    "dance": Preset(-0.05, 1.0, "dance and full-body motion"),
    "handdetail": Preset(-0.25, 1.15, "hands and fine detail: the gentlest shift"),
}
DETAILS: dict[str, float] = {"standard": 0.0, "high": -0.1, "extreme": -0.2}


@dataclass(frozen=True)
class Shift:
    """A resolved schedule: sigmas follow time_shift(linspace(1, 0, steps + 1), mu, sigma)."""

    mu: float
    sigma: float

    @property
    def factor(self) -> float:
        """exp(mu): the familiar 'shift' number (7.0 at mu = ln 7)."""
        return math.exp(self.mu)


def window_tokens(width: int, height: int, latent_frames: int) -> int:
    """Noisy-window tokens: latent frames x (H/16) x (W/16) (VAE /8, then 2x2 patches)."""
    return latent_frames * (height // 16) * (width // 16)


def auto_mu(tokens: int) -> float:
    """FramePack's linear mu: 0.5 at 256 tokens, 1.15 at 4096 (unclamped). Written as slope and
    intercept in the order diffusers computes it, so both give the same bits."""
    slope = (1.15 - 0.5) / (4096 - 256)
    return tokens * slope + (0.5 - slope * 256)


def resolve_shift(preset: str, detail: str, tokens: int, *, mu: float | None = None,
                  sigma: float | None = None, shift: float | None = None,
                  boost: float = 0.0) -> Shift:
    """The (mu, sigma) a window samples with. ``boost`` is added to mu (prompt transitions)."""
    chosen = PRESETS[preset]
    exponent = chosen.sigma if sigma is None else sigma
    if shift is not None:
        return Shift(math.log(shift) + boost, exponent)
    if mu is not None:
        return Shift(mu + boost, exponent)
    value = auto_mu(tokens) + chosen.mu_offset + DETAILS[detail] + boost
    return Shift(min(max(value, MU_MIN), MU_MAX), exponent)


def time_shift(t: float, mu: float, sigma: float) -> float:
    """exp(mu) / (exp(mu) + (1/t - 1) ** sigma), with the end points exact."""
    if t <= 0.0:
        return 0.0
    if t >= 1.0:
        return 1.0
    return math.exp(mu) / (math.exp(mu) + (1.0 / t - 1.0) ** sigma)


def schedule(steps: int, shift: Shift) -> list[float]:
    """steps + 1 sigmas from 1 down to exactly 0."""
    return [time_shift(1.0 - i / steps, shift.mu, shift.sigma) for i in range(steps + 1)]
