"""Flow-matching samplers as small functions over tensors.

A sampler takes ``velocity(x, sigma) -> v`` (the transformer's flow prediction, v = noise - x0),
the starting noise and the sigma schedule, and returns the clean latents. Both samplers call
the model exactly ``steps`` times, at sigma_0 .. sigma_{steps-1}; sigma = 0 is never evaluated.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch

Velocity = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def flow_sigmas(steps: int, mu: float, sigma: float) -> torch.Tensor:
    """steps + 1 sigmas from 1 to 0: exp(mu) / (exp(mu) + (1/t - 1) ** sigma) over
    t = linspace(1, 0, steps + 1)[:-1], then a final 0.

    Computed in float32 numpy exactly as diffusers' FlowMatchEulerDiscreteScheduler does with
    dynamic shifting, so sigma = 1 reproduces HunyuanVideoFramepackPipeline's schedule bit for bit.
    """
    t = np.linspace(1.0, 0.0, steps + 1)[:-1].astype(np.float32)
    shifted = math.exp(mu) / (math.exp(mu) + (1 / t - 1) ** sigma)
    return torch.cat([torch.from_numpy(np.asarray(shifted, dtype=np.float32)), torch.zeros(1)])


def sample_euler(velocity: Velocity, x: torch.Tensor, sigmas: torch.Tensor,
                 on_step: Callable[[int], None] | None = None) -> torch.Tensor:
    """diffusers' FlowMatchEulerDiscreteScheduler, step for step: x += (s_next - s) * v."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    scheduler = FlowMatchEulerDiscreteScheduler(shift=1.0, use_dynamic_shifting=False)
    scheduler.set_timesteps(sigmas=sigmas[:-1].tolist(), device=x.device)
    for i, t in enumerate(scheduler.timesteps):
        v = velocity(x, t.expand(x.shape[0]))
        x = scheduler.step(v.float(), t, x, return_dict=False)[0]
        if on_step is not None:
            on_step(i)
    return x


def sample_unipc(velocity: Velocity, x: torch.Tensor, sigmas: torch.Tensor,
                 on_step: Callable[[int], None] | None = None) -> torch.Tensor:
    """UniPC (variant bh1, order up to 3) on x0 predictions, as FramePack samples.

    With lambda = -log(sigma) and h the step in lambda, the order-1 update is
    x_t = (sigma_t / sigma_s) x_s - expm1(-h) x0_s: exactly Euler for rectified flow. Higher
    orders add B(h) * sum(rho_k * D_k) over divided differences D_k of earlier x0 predictions,
    a predictor before the model call at sigma_t and a corrector after it. The corrected x of
    the last step is not needed: FramePack returns the last x0 prediction.
    """
    steps = len(sigmas) - 1
    order = max(1, min(3, steps - 1))

    def x0_of(x_t: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        v = velocity(x_t, sigma.expand(x_t.shape[0]) * 1000.0)
        return x_t.float() - v.float() * sigma

    history_x0: list[torch.Tensor] = [x0_of(x, sigmas[0])]
    history_sigma: list[torch.Tensor] = [sigmas[0]]
    if on_step is not None:
        on_step(0)
    for i in range(1, steps):
        x, x0 = _unipc_step(x, history_x0, history_sigma, sigmas[i], min(i, order), x0_of)
        history_x0 = (history_x0 + [x0])[-order:]
        history_sigma = (history_sigma + [sigmas[i]])[-order:]
        if on_step is not None:
            on_step(i)
    return history_x0[-1]


def _unipc_step(x: torch.Tensor, x0s: list[torch.Tensor], sigmas_prev: list[torch.Tensor],
                sigma_t: torch.Tensor, order: int,
                x0_of: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """One predictor-corrector step from sigmas_prev[-1] to sigma_t; returns (x_t, x0 at t)."""
    sigma_s, x0_s = sigmas_prev[-1], x0s[-1]
    h = torch.log(sigma_s) - torch.log(sigma_t)  # lambda_t - lambda_s > 0
    # Divided differences of earlier x0 predictions, at relative positions r_k.
    ratios, diffs = [], []
    for k in range(1, order):
        r = (torch.log(sigma_s) - torch.log(sigmas_prev[-(k + 1)])) / h
        ratios.append(r)
        diffs.append((x0s[-(k + 1)] - x0_s) / r)
    ratios.append(torch.ones_like(h))
    r_powers = torch.stack([torch.stack(ratios) ** p for p in range(order)])

    neg_h = -h
    phi_1 = torch.expm1(neg_h)
    b_h = neg_h  # variant bh1: B(h) = h (sign folded in as FramePack's solver does)
    coefficients, phi_k, factorial = [], phi_1 / neg_h - 1, 1.0
    for k in range(1, order + 1):
        coefficients.append(phi_k * factorial / b_h)
        factorial *= k + 1
        phi_k = phi_k / neg_h - 1 / factorial
    b = torch.stack(coefficients)

    base = (sigma_t / sigma_s) * x - phi_1 * x0_s
    if diffs:
        stacked = torch.stack(diffs, dim=1)
        rho_p = torch.full((1,), 0.5) if order == 2 else torch.linalg.solve(
            r_powers[:-1, :-1], b[:-1])
        x_t = base - b_h * torch.tensordot(stacked, rho_p.to(stacked.dtype), dims=([1], [0]))
    else:
        stacked, x_t = None, base
    x0_t = x0_of(x_t, sigma_t)
    rho_c = torch.full((1,), 0.5) if order == 1 else torch.linalg.solve(r_powers, b)
    correction = rho_c[-1] * (x0_t - x0_s)
    if stacked is not None:
        correction = correction + torch.tensordot(stacked, rho_c[:-1].to(stacked.dtype),
                                                  dims=([1], [0]))
    return base - b_h * correction, x0_t
