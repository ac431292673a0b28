"""The GAN view (lesson 15): a grid of latents, latent interpolation beside diffusion's seed interpolation, the
mode-coverage chart and the stability curves."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from matplotlib.figure import Figure

from ._base import _new_figure
from .grids import image_rows, plot_images

if TYPE_CHECKING:  # type hints only: the views never run the experiments
    from ..experiments.gan import GanGrid, Interpolations


def plot_gan_grid(grid: GanGrid, cols: int = 8) -> Figure:
    """The GAN's image for one prompt and many latents z (one seed each): `experiments.gan.gan_grid`'s result."""
    seeds = grid.seeds
    labels = [f"z seed {s}" for s in seeds]
    return plot_images(image_rows(grid.images, cols),
                       f"GAN: \u201c{grid.prompt}\u201d, one image per latent z (seeds {seeds[0]}\u2026{seeds[-1]}), "
                       "one generator call each", cell_labels=image_rows(labels, cols), cell=1.1)


def plot_interpolations(it: Interpolations) -> Figure:
    """Top: the GAN's latent slerp z(seed_a) -> z(seed_b). Bottom: diffusion's noise slerp between the same seeds
    (`experiments.gan.interpolations`' result)."""
    frames = len(it.gan)
    return plot_images([it.gan, it.diffusion],
                       f"Interpolating between seed {it.seed_a} and seed {it.seed_b}: \u201c{it.prompt}\u201d",
                       ["GAN\nlatent z slerp", f"diffusion\nnoise slerp\nCFG {it.cfg:g}, {it.steps} steps"],
                       col_labels=[f"t = {t:.2f}" for t in np.linspace(0, 1, frames)], cell=1.3)


def plot_mode_coverage(study: Any, prompt: str | None = None) -> Figure:
    """Shares of the judged free attributes (position, size, background) for data, GAN and diffusion, and the
    number of (position, size, background) combos each drew. `prompt`: one prompt, or None for all pooled."""
    from collections import Counter

    from ..gan import all_combos, coverage_entropy
    from ..shapes import BACKGROUNDS, POSITIONS, SIZES

    prompts = [prompt] if prompt is not None else list(study.prompts)
    models = ("data", "GAN", "diffusion")
    colours = {"data": "#777777", "GAN": "#d1495b", "diffusion": "#2e86ab"}
    combos = {m: [c for p in prompts for c in study.get(m, p).combos] for m in models}
    fig = _new_figure(14, 3.6)
    axes = fig.subplots(1, 4, gridspec_kw={"width_ratios": [5, 2, 3, 4]})
    for ax, (i, key, values) in zip(axes[:3], ((0, "position", POSITIONS), (1, "size", SIZES),
                                               (2, "background", tuple(BACKGROUNDS))), strict=True):
        x = np.arange(len(values))
        for j, m in enumerate(models):
            found = [c[i] for c in combos[m] if c is not None]
            cnt = Counter(found)
            ax.bar(x + (j - 1) * 0.27, [cnt[v] / max(1, len(found)) for v in values], 0.27, label=m,
                   color=colours[m])
        ax.set_xticks(x, values, fontsize=8)
        ax.set_ylabel("share of images (object found)")
        ax.set_xlabel(key)
        ax.set_title(f"judged {key}", fontsize=10)
    axes[0].legend(fontsize=8)
    ax = axes[3]
    ref = all_combos()
    for j, m in enumerate(models):
        ce = coverage_entropy(Counter(combos[m]), ref)
        ax.bar(j, ce["entropy_bits"], color=colours[m])
        ax.text(j, ce["entropy_bits"] + 0.05, f"{ce['entropy_bits']:.2f} bits\n{ce['coverage'] * 30:.0f}/30 combos",
                ha="center", va="bottom", fontsize=8)
    ax.axhline(np.log2(len(ref)), color="k", ls=":", lw=1)
    ax.text(2.4, np.log2(len(ref)), "log2 30", fontsize=7, va="bottom", ha="right")
    ax.set_xticks(range(3), models)
    ax.set_ylabel("entropy of judged combos (bits)")
    ax.set_xlabel("source")
    ax.set_ylim(0, np.log2(len(ref)) + 1.0)
    ax.set_title("(position, size, background) combos", fontsize=10)
    n = len(study.seeds)
    what = f"\u201c{prompt}\u201d" if prompt is not None else f"{len(prompts)} prompts pooled"
    fig.suptitle(f"Mode coverage, {what}: {n} seeds per prompt per model (diffusion CFG {study.cfg:g}, "
                 f"{study.steps} steps); data = rendered scenes", fontsize=11)
    return fig


def plot_stability(logs: dict[int, list[dict]], diffusion_log: Sequence[dict] | None = None,
                   diffusion_label: str = "U-Net loss") -> Figure:
    """Per GAN seed: discriminator / generator hinge losses and judged adherence (EMA and live generator) over
    training; beside them the diffusion model's loss curve when its log is given (no fourth panel otherwise)."""
    from ..experiments.gan import eval_curve, loss_curve

    fig = _new_figure(15 if diffusion_log else 11.5, 3.8)
    axes = fig.subplots(1, 4 if diffusion_log else 3)
    cmap = ["#d1495b", "#edae49", "#00798c", "#30638e", "#8f2d56", "#66a182"]
    for k, seed in enumerate(sorted(logs)):
        c = cmap[k % len(cmap)]
        s, v = loss_curve(logs[seed], "loss_d")
        axes[0].plot(s, v, color=c, lw=1, label=f"seed {seed}")
        s, v = loss_curve(logs[seed], "loss_g")
        axes[1].plot(s, v, color=c, lw=1, label=f"seed {seed}")
        s, v = eval_curve(logs[seed], "ema_adh_color")
        axes[2].plot(s, v, "-o", color=c, ms=3, label=f"seed {seed} colour")
        s, v = eval_curve(logs[seed], "raw_adh_color")
        axes[2].plot(s, v, ":", color=c, lw=1)
        s, v = eval_curve(logs[seed], "ema_adh_shape")
        axes[2].plot(s, v, "--", color=c, lw=1, label=f"seed {seed} shape")
    axes[0].set_title("discriminator hinge loss", fontsize=10)
    axes[1].set_title("generator loss (\u2212D(G(z)))", fontsize=10)
    axes[2].set_title("judged on 64 unseen prompts: colour right (solid EMA,\ndotted live G), shape right (dashed)",
                      fontsize=9)
    for ax in axes[:3]:
        ax.set_xlabel("training step (batch 32)")
    axes[0].set_ylabel("loss (mean of 50 steps)")
    axes[1].set_ylabel("loss (mean of 50 steps)")
    axes[2].set_ylabel("share of images")
    axes[2].axhline(1 / 7, color="k", lw=0.6, ls=":")
    axes[2].axhline(1 / 5, color="k", lw=0.6, ls="-.")
    axes[2].text(0.99, 1 / 7, "colour chance", transform=axes[2].get_yaxis_transform(), fontsize=6, ha="right",
                 va="top")
    axes[2].text(0.99, 1 / 5, "shape chance", transform=axes[2].get_yaxis_transform(), fontsize=6, ha="right",
                 va="bottom")
    axes[2].set_ylim(0, 1)
    axes[0].legend(fontsize=7)
    if diffusion_log:
        ax = axes[3]
        st = [r["step"] for r in diffusion_log if "loss" in r]
        lv = [r["loss"] for r in diffusion_log if "loss" in r]
        ax.plot(st, lv, color="#2e86ab", lw=1)
        ax.set_title(diffusion_label, fontsize=10)
        ax.set_xlabel("training step")
        ax.set_ylabel("loss")
    fig.suptitle(f"Stability: the same GAN recipe, {len(logs)} seeds (training logs shipped with shapes-gan)",
                 fontsize=11)
    return fig
