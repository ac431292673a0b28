"""Figures of one trace's steps: the filmstrip and classifier-free guidance (delta norms, delta maps, branches)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ..arrays import latent_mosaic, to_rgb
from ..readouts import cfg_delta_map, cfg_delta_norms, need_uncond, pick_steps, trace_setting
from ._base import (
    DIVERGING,
    MAGNITUDE,
    _label_channels,
    _new_figure,
    _no_ticks,
    _step_label,
    _sym_limit,
    _title,
    _uncond_name,
    _wrap,
)


def plot_filmstrip(tr: Any, steps: Sequence[int] | None = None, n: int = 6,
                   rows: Sequence[str] = ("latents", "noise_guided", "x0")) -> Figure:
    """Chosen steps side by side: the noisy latents x_t going in, the predicted noise, and the predicted clean image
    (x0 decoded by the VAE). Latent rows show the channels as tiles, blue < 0 < red, one colour scale per row.

    rows: any of "latents", "noise_guided", "noise_cond", "noise_uncond", "cfg_delta", "x0", "latents_next".
    """
    idx = pick_steps(tr, steps, n)
    names = {"latents": "x\u209c (noisy latents in)", "noise_guided": "predicted noise \u03b5 (guided)",
             "noise_cond": "\u03b5 conditional", "noise_uncond": "\u03b5 unconditional",
             "cfg_delta": "CFG delta (cond \u2212 uncond)", "x0": "predicted x\u2080, decoded",
             "latents_next": "x\u209c\u208b\u2081 (latents out)"}
    for r in rows:
        if r not in names:
            raise ValueError(f"rows must be among {list(names)}, got {r!r}")
    fig = _new_figure(2.0 * len(idx) + 1.6, 2.1 * len(rows) + 1.0)
    axes = np.atleast_2d(fig.subplots(len(rows), len(idx), squeeze=False))
    for r, row in enumerate(rows):
        if row == "x0":
            for c, i in enumerate(idx):
                axes[r, c].imshow(to_rgb(tr.decode(i)), interpolation="nearest")
        else:
            data = [getattr(tr.steps[i], row) for i in idx]
            if any(d is None for d in data):
                raise ValueError(f"this trace has no {row!r} (cfg <= 1 makes no unconditional pass)")
            mos = [latent_mosaic(d) for d in data]
            lim = _sym_limit(*mos)
            for c, m in enumerate(mos):
                im = axes[r, c].imshow(m, cmap=DIVERGING, vmin=-lim, vmax=lim, interpolation="nearest")
            _label_channels(axes[r, 0], data[0])
            fig.colorbar(im, ax=axes[r, :].tolist(), shrink=0.85, pad=0.01, label="value")
        axes[r, 0].set_ylabel(_wrap(names[row], 16), fontsize=9)
        for c, i in enumerate(idx):
            _no_ticks(axes[r, c])
            if r == 0:
                axes[r, c].set_title(_step_label(tr, i), fontsize=9)
    _title(fig, "Denoising filmstrip (latent channels as tiles)", tr)
    return fig


def plot_cfg_delta_norm(tr: Any) -> Figure:
    """How hard the prompt pushes at each step: ||cond \u2212 uncond|| (left) and the same relative to
    ||uncond|| (right). The guided prediction is uncond + CFG \u00b7 delta."""
    norms = cfg_delta_norms(tr)
    unc = np.array([float(torch.linalg.vector_norm(s.noise_uncond.float())) for s in tr.steps])
    x = np.arange(1, len(norms) + 1)
    fig = _new_figure(12, 4.4)
    ax, ax2 = fig.subplots(1, 2)
    ax.plot(x, norms, marker="o", markersize=4, color="#d6604d", label="\u2016\u03b5 cond \u2212 \u03b5 uncond\u2016")
    ax.set_xlabel("step")
    ax.set_ylabel("L2 norm of the CFG delta")
    ax.set_title(f"delta vs {_uncond_name(tr)}", fontsize=10)
    ax.grid(alpha=0.3)
    ax.set_ylim(bottom=0)
    ax2.plot(x, norms / np.maximum(unc, 1e-12), marker="o", markersize=4, color="#4393c3")
    ax2.set_xlabel("step")
    ax2.set_ylabel("\u2016delta\u2016 / \u2016\u03b5 uncond\u2016")
    ax2.set_title("relative size (scaled by CFG in the guided prediction)", fontsize=10)
    ax2.grid(alpha=0.3)
    ax2.set_ylim(bottom=0)
    for a in (ax, ax2):  # steps are whole numbers: no "step 2.5" tick
        a.xaxis.set_major_locator(MaxNLocator(integer=True))
    _title(fig, "Classifier-free guidance: how much the prompt changes the prediction, step by step", tr)
    return fig


def plot_cfg_delta_maps(tr: Any, steps: Sequence[int] | None = None, n: int = 6) -> Figure:
    """Where the prompt pushes: the CFG delta's norm over channels at each latent position, per chosen step, on one
    colour scale, with the final image for reference."""
    idx = pick_steps(tr, steps, n)
    maps = [cfg_delta_map(tr, i) for i in idx]
    vmax = max(float(m.max()) for m in maps) or 1.0
    fig = _new_figure(2.1 * (len(idx) + 1) + 1.2, 3.4)
    axes = fig.subplots(1, len(idx) + 1)
    for ax, i, m in zip(axes, idx, maps, strict=False):
        im = ax.imshow(m, cmap=MAGNITUDE, vmin=0, vmax=vmax, interpolation="nearest")
        ax.set_title(_step_label(tr, i), fontsize=9)
        _no_ticks(ax)
    axes[0].set_ylabel("latent rows")
    axes[-1].imshow(to_rgb(tr.image), interpolation="nearest")
    axes[-1].set_title("final image", fontsize=9)
    _no_ticks(axes[-1])
    fig.colorbar(im, ax=axes[:-1].tolist(), shrink=0.8, pad=0.01, label="\u2016delta\u2016 over channels")
    _title(fig, f"Where the prompt pushes: CFG delta per latent position (vs {_uncond_name(tr)})", tr)
    return fig


def implied_x0(tr: Any, step: int, noise: Any) -> torch.Tensor:
    """The clean latents a prediction implies at `step`: the formula the sampler uses (explainer.latents.x0_from,
    for the trace's latent space and prediction type: VP, VE, flow matching; epsilon, v, sample, flow), applied to
    one branch (e.g. noise_uncond or noise_cond)."""
    from ..latents import x0_from

    st = tr.steps[step]
    pred = trace_setting(tr, "prediction_type", "epsilon") or "epsilon"
    space = trace_setting(tr, "latent_space", "vp") or "vp"
    x0 = x0_from(space, pred, st.latents[None].double(), torch.as_tensor(noise)[None].double(),
                 torch.tensor([float(st.sigma)], dtype=torch.float64))
    return x0[0].float()


def _vae_decode(pipe: Any, latents: torch.Tensor) -> np.ndarray:
    """(C, h, w) denoiser-scale latents -> RGB array, decoded as the pipeline decodes (explainer.latents.decode)."""
    from ..latents import decode

    return to_rgb(decode(pipe, latents[None]))


def plot_cfg_branches(tr: Any, step: int | None = None, pipe: Any = None) -> Figure:
    """The two U-Net predictions at one step and what guidance makes of them: unconditional (or negative prompt),
    conditional, guided = uncond + CFG \u00b7 (cond \u2212 uncond), and the delta. With `pipe`, a second row decodes
    the clean image each prediction implies, so the effect of the prompt (and of CFG) is visible as pictures."""
    need_uncond(tr)
    i = pick_steps(tr, [step if step is not None else len(tr.steps) // 3], 1)[0]
    st = tr.steps[i]
    cfg = trace_setting(tr, "cfg", "?")
    cols = [(_uncond_name(tr), st.noise_uncond), ("conditional (the prompt)", st.noise_cond),
            (f"guided (CFG {cfg})", st.noise_guided), ("delta = cond \u2212 uncond", st.cfg_delta)]
    decode = pipe is not None
    nrows = 2 if decode else 1
    fig = _new_figure(11.5, 2.6 * nrows + 0.9)
    axes = np.atleast_2d(fig.subplots(nrows, 4, squeeze=False))
    mos = [latent_mosaic(d) for _, d in cols[:3]]
    lim = _sym_limit(*mos)
    for c, ((name, _), m) in enumerate(zip(cols[:3], mos, strict=True)):
        im = axes[0, c].imshow(m, cmap=DIVERGING, vmin=-lim, vmax=lim, interpolation="nearest")
        axes[0, c].set_title(_wrap(name, 30), fontsize=10)
    _label_channels(axes[0, 0], st.noise_uncond)
    fig.colorbar(im, ax=axes[0, :3].tolist(), shrink=0.8, pad=0.01, label="predicted noise")
    dm = latent_mosaic(st.cfg_delta)
    dl = _sym_limit(dm)
    im2 = axes[0, 3].imshow(dm, cmap=DIVERGING, vmin=-dl, vmax=dl, interpolation="nearest")
    axes[0, 3].set_title(cols[3][0], fontsize=10)
    fig.colorbar(im2, ax=axes[0, 3], shrink=0.8, pad=0.01, label="delta (own scale)")
    axes[0, 0].set_ylabel("U-Net output\n(channels as tiles)", fontsize=9)
    if decode:
        for c, (_, noise) in enumerate(cols[:3]):
            axes[1, c].imshow(_vae_decode(pipe, implied_x0(tr, i, noise)), interpolation="nearest")
        axes[1, 3].imshow(to_rgb(tr.image), interpolation="nearest")
        axes[1, 3].set_title("final image", fontsize=10)
        axes[1, 0].set_ylabel("implied clean image\n(x\u2080, decoded)", fontsize=9)
    for ax in axes.flat:
        _no_ticks(ax)
    _title(fig, f"CFG at {_step_label(tr, i).replace(chr(10), ', ')}", tr)
    return fig
