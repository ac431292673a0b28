"""Noise schedules and the forward process: the noise level of each denoiser call under a scheduler, and
x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps for chosen timesteps."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from .arrays import to_numpy
from .latents import to_pixels


def scheduler_config(source: Any) -> Any:
    """A scheduler config from a pipeline, a scheduler or a config; None = Stable Diffusion's training schedule."""
    if source is None:
        from diffusers import DDPMScheduler

        return DDPMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear").config
    if hasattr(source, "scheduler"):
        return source.scheduler.config
    return getattr(source, "config", source)


def noise_schedule(name: str, source: Any = None, steps: int = 25) -> dict:
    """Timesteps and noise level of each U-Net call for scheduler `name` (a short name of `explainer.schedulers`).

    source: a pipeline / scheduler / scheduler config whose training schedule (betas) to use.
    Returns {"name", "timesteps", "sigma", "noise_level"} (numpy); noise_level = sqrt(1 - alpha_bar) =
    sigma / sqrt(1 + sigma^2): the share of the latent that is noise, 0 = clean, 1 = pure noise.
    """
    from .schedulers import make_scheduler

    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    sched = make_scheduler(name, scheduler_config(source))
    sched.set_timesteps(steps)
    ts = to_numpy(sched.timesteps).astype(np.float64)
    sig = getattr(sched, "sigmas", None)
    if sig is not None and len(sig) == len(ts) + 1:
        sigma = to_numpy(sig).astype(np.float64)[:-1]
    else:
        ac = to_numpy(sched.alphas_cumprod).astype(np.float64)
        abar = ac[np.clip(ts.round().astype(int), 0, len(ac) - 1)]
        sigma = np.sqrt((1 - abar) / abar)
    return dict(name=name, timesteps=ts, sigma=sigma, noise_level=sigma / np.sqrt(1 + sigma ** 2))


def forward_process(image: Any, alphas_cumprod: Any, timesteps: Sequence[int], seed: int = 0) -> list[np.ndarray]:
    """x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps for each t, one eps from `seed` (pixels or latents, any shape).

    image: uint8 (h, w, 3) / PIL (then the result is in [-1, 1] pixel units) or a float array / tensor.
    """
    x0 = to_numpy(image) if not hasattr(image, "convert") else np.asarray(image.convert("RGB"))
    x0 = (to_pixels(x0[None], torch.float64, channels_first=False)[0].numpy() if x0.dtype == np.uint8
          else x0.astype(np.float64))
    eps = np.random.default_rng(seed).standard_normal(x0.shape)
    ac = to_numpy(alphas_cumprod).astype(np.float64)
    out = []
    for t in timesteps:
        if not 0 <= int(t) < len(ac):
            raise ValueError(f"timesteps must lie in [0, {len(ac) - 1}], got {t}")
        a = ac[int(t)]
        out.append(np.sqrt(a) * x0 + np.sqrt(1 - a) * eps)
    return out


def training_alphas_cumprod() -> Any:
    from diffusers import DDPMScheduler

    return DDPMScheduler.from_config(scheduler_config(None)).alphas_cumprod
