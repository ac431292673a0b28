"""Figures of the part-2 sweeps (lessons 7-11): CFG, negative prompts, samplers and steps, seeds, resolution.

Each function takes the result object of its experiment (`explainer.experiments.guidance`, `negative`, `samplers`,
`seeds`, `resolution`) and only draws it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.figure import Figure

from .grids import plot_images

if TYPE_CHECKING:  # type hints only: the views never import the experiments at run time
    from ..experiments.guidance import CfgSweep
    from ..experiments.negative import NegativeEffect
    from ..experiments.resolution import Cost
    from ..experiments.samplers import SamplerStudy
    from ..experiments.scenes_cfg import ModelSweep
    from ..experiments.scenes_resolution import OffSize
    from ..experiments.scenes_seeds import SceneLayout
    from ..experiments.seeds import Layout


# --------------------------------------------------------------------------------------------- lesson 7, CFG
def plot_cfg_examples(sweep: CfgSweep, n_rows: int = 3) -> Figure:
    """Example images: rows = (prompt, seed) pairs, columns = CFG scale."""
    rows = [[sweep.images[s][i] for s in sweep.scales] for i in range(n_rows)]
    labels = [f"{sweep.prompts[i]}\nseed {sweep.seeds[i]}".replace(" left of", "\nleft of")
              .replace(" above", "\nabove").replace(" right of", "\nright of").replace(" below", "\nbelow")
              for i in range(n_rows)]
    return plot_images(rows, "The same prompts and seeds at five CFG scales (25 steps, dpm++2m)", labels,
                       [f"CFG {s:g}" for s in sweep.scales], cell=1.3)


def plot_cfg_sweep(sweep: CfgSweep) -> Figure:
    """Adherence and saturation against the CFG scale."""
    fig = Figure(figsize=(10, 4), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2)
    x = sweep.scales
    ax1.plot(x, [sweep.adherence[s]["all"] for s in x], "o-", label="whole prompt right (judge)")
    ax1.plot(x, [sweep.adherence[s].get("objects", np.nan) for s in x], "s-", label="both objects present")
    ax1.plot(x, [sweep.adherence[s].get("relation", np.nan) for s in x], "d-", label="relation right")
    ax1.plot(x, [1 - sweep.fate_share(s, "right") for s in x], "^--", label="named objects not drawn right")
    ax1.plot(x, [sweep.fate_share(s, "gone") for s in x], "v:", label="named objects gone")
    ax1.set_xlabel("CFG scale")
    ax1.set_ylabel(f"share ({len(sweep.prompts)} images, {2 * len(sweep.prompts)} named objects)")
    ax1.set_ylim(-0.02, 1.02)
    ax1.set_title("prompt adherence, judged")
    ax1.grid(alpha=0.3)
    ax1.legend(fontsize=7)
    sat, clip = [sweep.saturation[s] for s in x], [sweep.clipped[s] for s in x]
    ax2.plot(x, sat, "o-", color="#d6604d", label="mean HSV saturation")
    ax2.set_xlabel("CFG scale")
    ax2.set_ylabel("mean saturation (0..1)")
    ax2.set_ylim(0, 1.05 * max(1e-9, max(sat)))  # both axes start at 0: a truncated axis makes a small change look big
    ax2.grid(alpha=0.3)
    ax3 = ax2.twinx()
    ax3.plot(x, clip, "s--", color="#4393c3", label="channel values clipped (0/255)")
    ax3.set_ylabel("fraction clipped")
    ax3.set_ylim(0, 1.05 * max(1e-9, max(clip)))
    fig.legend(loc="outside lower center", ncols=2, fontsize=8)
    ax2.set_title("saturation and clipping (both axes from 0)")
    fig.suptitle(f"CFG sweep: {len(set(sweep.prompts))} two-object prompts x {len(set(sweep.seeds))} seeds, "
                 f"{sweep.steps} steps, DPM++ 2M", fontsize=11)
    return fig


MODEL_STYLE = (("o-", "#2166ac"), ("s--", "#b2182b"), ("d:", "#1b7837"))


def plot_cfg_models(sweeps: Sequence[ModelSweep]) -> Figure:
    """Each model's sweep against the CFG scale, one panel per measure, every axis from 0 (a truncated axis makes a
    small change look big): whole prompt right, saturation, clipped values, each mean with its 95 % interval over
    prompts (a bar only where there are 8 prompts or more)."""
    fig = Figure(figsize=(10.8, 3.9), layout="constrained")
    axes = fig.subplots(1, 3)
    panels = (("all", "whole prompt read right (share of images)", "prompt adherence, judged"),
              ("saturation", "mean HSV saturation (0 grey .. 1 pure colour)", "saturation"),
              ("clipped", "share of channel values at 0 or 255", "clipped colour values"))
    for (key, ylabel, title), ax in zip(panels, axes, strict=True):
        top = 0.0
        for ms, (marker, colour) in zip(sweeps, MODEL_STYLE, strict=False):
            ivs = [ms.interval(key, s) for s in ms.scales]
            est = np.array([iv.estimate for iv in ivs])
            err = np.array([[0.0 if iv.too_few else iv.estimate - iv.low for iv in ivs],
                            [0.0 if iv.too_few else iv.high - iv.estimate for iv in ivs]])
            ax.errorbar(ms.scales, est, yerr=err, fmt=marker, color=colour, capsize=3,
                        label=f"{ms.model} ({ms.units} prompts, {ms.steps} steps)")
            top = max(top, float((est + err[1]).max()))
        ax.set_ylim(0, 1.02 if key == "all" else max(1e-6, 1.1 * top))
        ax.set_xlabel("CFG scale")
        ax.set_ylabel(ylabel, fontsize=8)
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=len(sweeps), fontsize=8)
    fig.suptitle("CFG sweep per model: the same prompts and seeds at every scale (bars: 95 % intervals over prompts; "
                 "every axis from 0)", fontsize=10)
    return fig


def plot_cfg_model_examples(ms: ModelSweep, n_rows: int = 3) -> Figure:
    """The first `n_rows` prompts of one model's sweep at every scale (rows: prompt and seed; columns: scale)."""
    n_rows = min(n_rows, len(ms.prompts))
    rows = [[ms.images[s][i] for s in ms.scales] for i in range(n_rows)]
    labels = [f"{ms.prompts[i]} (seed\u00a0{ms.seeds[i]})" for i in range(n_rows)]  # no break inside "seed 0"
    return plot_images(rows, f"{ms.model}: the same prompts and seeds at {len(ms.scales)} CFG scales "
                             f"({ms.steps} steps)", labels, [f"CFG {s:g}" for s in ms.scales], cell=1.3)


# --------------------------------------------------------------------------------------------- lesson 8, negatives
def plot_negative_effect(effect: NegativeEffect) -> Figure:
    """Bar chart of what the judge reads (background, or the object's colour or size) over the seeds, without and
    with the negative prompt."""
    names = [v for v in effect.values
             if v != "none" or effect.judged_without.get(v) or effect.judged_with.get(v)]
    x = np.arange(len(names))
    fig = Figure(figsize=(max(5.0, 1.0 * len(names) + 2.5), 3.6), layout="constrained")
    ax = fig.subplots()
    ax.bar(x - 0.2, [effect.judged_without.get(n, 0) for n in names], 0.4, label="no negative prompt",
           color="#999999")
    ax.bar(x + 0.2, [effect.judged_with.get(n, 0) for n in names], 0.4,
           label=f"negative prompt \u201c{effect.negative}\u201d", color="#d6604d")
    ax.set_xticks(x, names)
    what = "background" if effect.attribute == "background" else f"{effect.attribute} of the object"
    ax.set_xlabel(f"judged {what}")
    ax.set_ylabel(f"images (of {len(effect.seeds)} seeds)")
    ax.set_ylim(0, len(effect.seeds))
    ax.grid(alpha=0.3, axis="y")
    fig.legend(fontsize=9, loc="outside lower center", ncols=2)  # below the axes, never over a bar
    fig.suptitle(f"\u201c{effect.prompt}\u201d, seeds {effect.seeds[0]}..{effect.seeds[-1]}, {effect.steps} steps, "
                 f"CFG {effect.cfg:g}, {effect.scheduler}:\nwhat {what} does the model pick?", fontsize=11)
    return fig


def plot_negative_examples(effect: NegativeEffect, n: int = 8) -> Figure:
    """The first `n` seeds' images without (top row) and with (bottom row) the negative prompt."""
    return plot_images([effect.images_without[:n], effect.images_with[:n]],
                       f"\u201c{effect.prompt}\u201d with and without a negative prompt (same seeds, {effect.steps} "
                       f"steps, CFG {effect.cfg:g}, {effect.scheduler})",
                       ["no negative", f"negative\n\u201c{effect.negative}\u201d"],
                       [f"seed {s}" for s in effect.seeds[:n]], cell=1.3)


# --------------------------------------------------------------------------------------------- lesson 9, samplers
def plot_sampler_study(study: SamplerStudy) -> Figure:
    """Distance to the reference and judged adherence against steps and U-Net evaluations, per sampler."""
    fig = Figure(figsize=(10.8, 3.8), layout="constrained")
    ax1, ax2, ax3 = fig.subplots(1, 3)
    for name in dict.fromkeys(r.sampler for r in study.runs):
        rs = [r for r in study.runs if r.sampler == name]
        ax1.plot([r.steps for r in rs], [r.distance for r in rs], "o-", label=name)
        ax2.plot([r.unet_evals for r in rs], [r.distance for r in rs], "o-", label=name)
        ax3.plot([r.unet_evals for r in rs], [r.adherence for r in rs], "o-", label=name)
    for ax, xl in ((ax1, "steps"), (ax2, "U-Net evaluations per image"), (ax3, "U-Net evaluations per image")):
        ax.set_xscale("log", base=2)
        ax.set_xlabel(xl)
        ax.grid(alpha=0.3)
    ax1.set_ylabel("RMSE to the reference (0..1)")
    ax2.set_ylabel("RMSE to the reference (0..1)")
    ax3.set_ylabel(f"judged adherence ({len(study.prompts)} images)")
    ax3.set_ylim(-0.02, 1.02)
    ax1.set_title("distance vs steps")
    ax2.set_title("distance vs network evaluations")
    ax3.set_title("prompt adherence vs evaluations")
    ax1.legend(fontsize=8)
    ref = f"{study.reference[0]} at {study.reference[1]} steps"
    fig.suptitle(f"Samplers and steps on {study.model}: {len(study.prompts)} prompts, one seed each, CFG "
                 f"{study.cfg:g}; reference = {ref}", fontsize=11)
    return fig


def plot_sampler_examples(study: SamplerStudy, sampler: str = "dpm++2m", index: int = 0,
                          detail: Sequence[np.ndarray] | None = None, vmax: float = 0.1) -> Figure:
    """One prompt's images with `sampler` at each step count of the study, beside its reference image; with
    `detail` (one map per step count, e.g. `scenes_samplers.detail_maps`) a second row shows where each picture still
    differs from the reference in fine detail (0 black .. `vmax` white)."""
    rs = [r for r in study.runs if r.sampler == sampler]
    rows = [[r.images[index] for r in rs] + [study.reference_images[index]]]
    labels = [f"{r.steps} steps" for r in rs] + [f"reference\n{study.reference[1]} steps"]
    row_labels = [f"seed {study.seeds[index]}"]
    if detail is not None:
        maps = [np.clip(np.asarray(d, dtype=np.float64) / vmax, 0.0, 1.0) for d in detail]
        rows.append(maps + [np.zeros_like(maps[0])])  # the reference against itself: nothing left to change
        row_labels.append(f"fine detail still\nto change (0..{vmax:g})")
    return plot_images(rows, f"{study.model}: \u201c{study.prompts[index]}\u201d with {sampler} at several step counts "
                       f"(CFG {study.cfg:g})", row_labels, labels, cmap="gray", vmin=0.0, vmax=1.0, cell=1.3)


# --------------------------------------------------------------------------------------------- lesson 10, seeds
def plot_layout(layout: Layout) -> Figure:
    """The layout study's images: rows share a prompt, columns share a seed."""
    return plot_images(layout.images,
                       (f"{layout.model}: c" if layout.model else "C") + f"olumns share a seed, rows share a prompt "
                       f"({layout.steps} steps, CFG {layout.cfg:g}): does the seed decide where things go?",
                       layout.prompts, [f"seed {s}" for s in layout.seeds], cell=1.3)


def plot_scene_layout(study: SceneLayout) -> Figure:
    """The scenes layout study: rows share a prompt, columns share a seed; a cross marks where the judge reads the
    subject's centre (no cross: the judge did not find it)."""
    fig = plot_images([list(row) for row in study.images],
                      f"{study.model}: columns share a seed, rows share a prompt ({study.steps} steps, CFG "
                      f"{study.cfg:g}); + = the subject's centre as the judge reads it",
                      study.prompts, [f"seed {s}" for s in study.seeds], cell=1.0)
    axes = [ax for ax in fig.axes if ax.images]
    for k, ax in enumerate(axes):
        c = study.centres[k // len(study.seeds)][k % len(study.seeds)]
        if c is not None:
            ax.plot([c[0]], [c[1]], "+", color="white", markersize=9, markeredgewidth=2)
            ax.plot([c[0]], [c[1]], "+", color="black", markersize=7, markeredgewidth=1)
    return fig


# --------------------------------------------------------------------------------------------- lesson 11, resolution
def plot_cost(costs: Sequence[Cost], steps: int | None = None) -> Figure:
    """Seconds and peak memory growth of one generation against the image size (pixel count on a log axis, so
    64x64, 64x128 and 128x128 do not print over each other); the settings come from `costs` (`steps` overrides)."""
    px = [c.size[0] * c.size[1] for c in costs]
    steps = steps if steps is not None else costs[0].steps
    fig = Figure(figsize=(10.8, 3.8), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2)
    ax1.plot(px, [c.seconds for c in costs], "o-")
    ax2.plot(px, [c.peak_bytes / 2**20 for c in costs], "s-", color="#d6604d")
    for ax in (ax1, ax2):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("image pixels (height x width, log scale)")
        ax.set_xticks(px, [f"{c.size[0]}x{c.size[1]}" for c in costs])
        ax.minorticks_off()
        ax.grid(alpha=0.3)
    ax1.set_ylabel("seconds per image")
    ax2.set_ylabel("peak memory growth (MiB)")
    ax1.set_title("time")
    ax2.set_title("peak resident memory during the call")
    fig.suptitle(f"Cost against resolution: one image, {steps} steps, CFG {costs[0].cfg:g}, {costs[0].scheduler}, "
                 f"{costs[0].device.upper()}", fontsize=11)
    return fig


def plot_off_size(off: OffSize, n: int = 6) -> Figure:
    """The first `n` prompts' images at each output size: rows = size (height x width), columns = prompt."""
    rows = [off.images[s][:n] for s in off.sizes]
    h, w = off.trained
    return plot_images(rows, f"{off.model} (trained at {h}x{w}) at {len(off.sizes)} output sizes: the same prompts "
                       f"and seeds {off.seeds[0]}\u2013{off.seeds[:n][-1]}, "
                       f"{off.steps} steps, CFG {off.cfg:g}", [f"{h}x{w}\n(h x w)" for h, w in off.sizes],
                       [p.replace(" on the", "\non the").replace(" in the", "\nin the").replace(" in autumn",
                                                                                               "\nin autumn")
                        for p in off.prompts[:n]], cell=1.5)
