"""Figures of noise: schedules per sampler and the forward process dissolving an image."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ..anatomy import latent_shape
from ..arrays import to_numpy, to_rgb
from ..latents import decode, encode, to_pixels, to_uint8
from ..noise import forward_process, noise_schedule, training_alphas_cumprod
from ._base import _new_figure
from .grids import plot_images


def plot_noise_schedules(source: Any = None, names: Sequence[str] | None = None, steps: int = 25) -> Figure:
    """Noise level per U-Net call for several schedulers on one plot (left), and sigma on a log scale (right)."""
    from ..schedulers import SCHEDULERS

    names = list(names) if names is not None else ["ddim", "euler", "dpm++2m", "dpm++2m_karras", "heun", "lcm"]
    fig = _new_figure(13, 4.8)
    ax, ax2 = fig.subplots(1, 2)
    markers = "os^Dvx*P"
    for i, n in enumerate(names):
        s = noise_schedule(n, source, steps)
        # second-order samplers call the U-Net more than once per step: spread those calls within their step
        x = np.arange(len(s["timesteps"])) * steps / len(s["timesteps"])
        label = f"{n} ({len(x)} U-Net calls)"
        ax.plot(x, s["noise_level"], marker=markers[i % len(markers)], markersize=3.5, label=label, linewidth=1.4)
        ax2.plot(x, s["sigma"], marker=markers[i % len(markers)], markersize=3.5, label=label, linewidth=1.4)
    ax.set_xlabel("step (denoising goes left to right;\nextra calls of 2nd-order samplers sit between steps)")
    ax.set_ylabel("noise level  \u221a(1\u2212\u0101) = \u03c3/\u221a(1+\u03c3\u00b2)")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("share of the latent that is noise")
    ax2.set_yscale("log")
    ax2.set_xlabel("step")
    ax2.set_ylabel("\u03c3 (noise / signal), log scale")
    ax2.grid(alpha=0.3, which="both")
    ax2.set_title("the same schedules as \u03c3:\nKarras spends more calls at low noise")
    for a in (ax, ax2):  # steps are whole numbers: no "step 2.5" tick
        a.xaxis.set_major_locator(MaxNLocator(integer=True))
    unknown = [n for n in names if n not in SCHEDULERS]
    if unknown:
        raise ValueError(f"unknown scheduler names {unknown}; valid: {list(SCHEDULERS)}")
    fig.suptitle(f"Noise schedules: {steps} steps, the same training schedule (betas) under every sampler",
                 fontsize=12)
    return fig


def plot_forward_process(pipe: Any = None, image: Any = None, timesteps: Sequence[int] | None = None,
                         seed: int = 0, scale: int = 4) -> Figure:
    """A real image dissolving as t grows. Top: noise added to the pixels. Bottom (with a pipeline): noise added to
    the VAE latents, then decoded: the world the U-Net actually works in.

    image: PIL / uint8 array; None renders a shapes-world scene (seed `seed`). The training schedule comes from the
    pipeline's scheduler (Stable Diffusion's when pipe is None).
    """
    from ..shapes import render, sample_scene

    if image is None:
        image = render(sample_scene(seed, two_object_p=1.0), size=32 * scale)
    rgb = to_rgb(image)
    ac = to_numpy(getattr(pipe.scheduler, "alphas_cumprod", None) if pipe is not None else
                training_alphas_cumprod())
    ts = list(timesteps) if timesteps is not None else [0, 50, 100, 200, 300, 500, 700, len(ac) - 1]
    pixel_rows = forward_process(rgb, ac, ts, seed)
    rows = [("pixels + noise", [to_uint8(x, channels_first=False) for x in pixel_rows])]
    if pipe is not None and getattr(pipe, "vae", None) is not None:
        size = latent_shape(pipe, None, None)[1] * int(getattr(pipe, "vae_scale_factor", 8))
        from PIL import Image

        small = np.array(Image.fromarray(rgb).resize((size, size), Image.Resampling.BOX))
        z0 = encode(pipe, to_pixels(small[None]))  # the VAE both ways exactly as the pipeline does (latents.py)
        zs = forward_process(z0[0], ac, ts, seed)
        dec = decode(pipe, torch.from_numpy(np.stack(zs)), batch=1)
        rows.append(("latents + noise, decoded", [to_rgb(d) for d in dec]))
    return plot_images([imgs for _, imgs in rows],
                       "The forward process: x\u209c = \u221a\u0101\u209c\u00b7x\u2080 + "
                       "\u221a(1\u2212\u0101\u209c)\u00b7\u03b5 "
                       f"(one \u03b5, seed {seed}); training teaches the U-Net to undo it",
                       [label for label, _ in rows],
                       [f"t = {t}\nnoise level {np.sqrt(1 - ac[int(t)]):.2f}" for t in ts], cell=1.75)
