"""The ControlNet view (lesson 14): the maps, the training curve, layout agreement across scales, map vs prompt,
and the residuals the ControlNet adds per U-Net level and step (from a trace)."""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.figure import Figure

from ._base import MAGNITUDE, _new_figure, _no_ticks, _title
from .grids import plot_images


def plot_control_maps(scene: Any, title: str | None = None) -> Figure:
    """A scene as rendered, its edge map and its segmentation map (with the class colours)."""
    from .. import shapes

    legend = ", ".join(f"{k} {v}" for k, v in shapes.SEGMENTATION_COLORS.items())
    return plot_images([[shapes.render(scene), shapes.render_edges(scene), shapes.render_segmentation(scene)]],
                       (title or f"One scene, two control maps\n\u201c{scene.caption}\u201d")
                       + f"\nsegmentation colours: {legend}", col_titles=["image", "edges", "segmentation"],
                       cell=2.4)


def plot_training_curve(curve: dict, condition: str) -> Figure:
    """Loss (left axis) and layout IoU of the generated validation images (right axis) over training steps."""
    fig = _new_figure(7.5, 3.6)
    ax = fig.subplots()
    ax.plot(curve["loss_steps"], curve["loss"], color="0.6", lw=1, label="training loss (mean of 25 steps)")
    ax.set_xlabel("training step")
    ax.set_ylabel("epsilon MSE loss")
    ax2 = ax.twinx()
    iou, se = np.array(curve["iou"]), np.array(curve["iou_se"])
    ax2.errorbar(curve["eval_steps"], iou, yerr=se, color="tab:red", marker="o", ms=3, lw=1.5,
                 label=f"layout IoU (n={curve['n']} scenes; bars: 1 standard error)")
    ax2.set_ylabel("layout IoU: output vs map", color="tab:red")
    ax2.set_ylim(0, 1)
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    fig.legend(h1 + h2, l1 + l2, fontsize=8, loc="outside lower center", ncols=2)  # below the axes, off the data
    steps = f"{curve['val_steps']} steps, " if curve.get("val_steps") else ""
    cfg = f"CFG {curve['val_cfg']:g}, " if curve.get("val_cfg") else ""
    _title(fig, f"Training the {condition} ControlNet: loss (grey) and map-following (red)\n"
                f"validation: {curve['n']} scenes, {steps}{cfg}prompts without position words")
    return fig


def plot_scale_sweep(sweep: dict, condition: str, show: int = 4, steps: int | None = None) -> Figure:
    """Layout IoU without the ControlNet and per conditioning scale (mean; bars: 1 standard error), and examples."""
    scales = sorted(sweep["scales"])
    fig = _new_figure(1.3 * (len(scales) + 2) + 1.0, 3.2 + 1.2 * show)
    grid = fig.add_gridspec(show + 2, len(scales) + 2)
    ax = fig.add_subplot(grid[:2, :])
    m = [sweep["scales"][s].iou for s in scales]
    e = [sweep["scales"][s].iou_se for s in scales]
    ax.errorbar(scales, m, yerr=e, marker="o", label=f"with the {condition} ControlNet")
    w = sweep["without"]
    ax.axhline(w.iou, color="0.4", ls="--", label=f"without ControlNet ({w.iou:.2f})")
    ax.set_xlabel("controlnet_conditioning_scale")
    ax.set_ylabel("layout IoU (output vs map)")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    cols = ["map", "without"] + scales
    import textwrap

    from .. import shapes
    from ..controlnet_world import layout_prompt

    for r in range(show):
        scene = sweep["scenes"][r]
        for c, key in enumerate(cols):
            a = fig.add_subplot(grid[2 + r, c])
            im = shapes.render_condition(scene, condition) if key == "map" else sweep["images"][key][r]
            a.imshow(np.asarray(im), interpolation="nearest")
            _no_ticks(a)
            if c == 0:  # the prompt every image of the row was made from
                a.set_ylabel(textwrap.fill(f"\u201c{layout_prompt(scene)}\u201d, seed {r}", 16), fontsize=7)
            if r == 0:
                a.set_title(key if isinstance(key, str) else f"scale {key:g}", fontsize=9)
    steps = steps if steps is not None else sweep.get("steps")
    cfg = f"CFG {sweep['cfg']:g}" if "cfg" in sweep else ""
    _title(fig, f"Does the output follow the {condition} map?\n(n={w.n} validation scenes, seed = scene index, "
                + (f"{steps} steps, " if steps else "") + f"{cfg}; bars: 1 standard error)")
    return fig


def plot_conflict(result: dict, condition: str) -> Figure:
    """Map says one shape, prompt another: what the judge reads, per scale."""
    scales = sorted(result["scales"])
    fig = _new_figure(7.5, 3.8)
    ax = fig.subplots()
    # lines that coincide stay visible: each has its own marker size and dash, the later ones drawn thinner on top
    for k, (key, label, style) in enumerate((
            ("map_shape", f"judged {result['map_shape']} (the map's shape)", "-"),
            ("prompt_shape", "judged the prompt's shape", "--"),
            ("prompt_color", "judged the prompt's colour", ":"),
            ("iou", "layout IoU vs map (a mean, 0..1)", "-."))):
        ax.plot(scales, [result["scales"][s][key] for s in scales], style, marker="osD^"[k], ms=9 - 2 * k,
                lw=2.5 - 0.5 * k, label=label)
    ax.set_xlabel("controlnet_conditioning_scale")
    ax.set_ylabel(f"share of {result['n']} images (IoU: mean)")
    ax.set_ylim(-0.03, 1.03)
    fig.legend(fontsize=8, loc="outside lower center", ncols=2)  # below the axes, off the data
    run = ", ".join(x for x in (f"{result['steps']} steps" if "steps" in result else "",
                                f"CFG {result['cfg']:g}" if "cfg" in result else "", "seed = placement index") if x)
    _title(fig, f"A {result['map_shape']}'s {condition} map, prompt \u201c{result['prompt']}\u201d: who wins?\n"
                f"{result['n']} placements, {run}")
    return fig


def plot_residual_norms(tr: Any) -> Figure:
    """Norm of each ControlNet residual over the denoising steps (conditional branch)."""
    norm = tr._t["controlnet.norm"].float().numpy()
    names = tr.settings["controlnet_residuals"]
    sizes = tr.settings["controlnet_residual_sizes"]
    fig = _new_figure(7.5, 3.6)
    ax = fig.subplots()
    steps = np.arange(1, norm.shape[0] + 1)
    for k, name in enumerate(names):
        ax.plot(steps, norm[:, k], marker=".", label=f"{name} ({sizes[k][0]}\u00d7{sizes[k][1]})")
    ax.set_xlabel("denoising step (noisy \u2192 clean)")
    ax.set_ylabel("L2 norm of the residual")
    fig.legend(fontsize=7, ncols=4, loc="outside lower center")  # below the axes, off the curves
    _title(fig, f"What the ControlNet adds to each U-Net skip, step by step "
                f"(scale {tr.settings.get('controlnet_conditioning_scale', 1):g})", tr)
    return fig


def plot_residual_maps(tr: Any, steps: list[int] | None = None) -> Figure:
    """Where the ControlNet pushes: the magnitude map of each residual at a few steps, beside the control map."""
    names = tr.settings["controlnet_residuals"]
    n = int(tr._t["controlnet.norm"].shape[0])
    steps = steps if steps is not None else sorted({0, n // 3, (2 * n) // 3, n - 1})
    fig = _new_figure(1.15 * (len(names) + 1) + 0.6, 1.25 * len(steps) + 1.0)
    axes = fig.subplots(len(steps), len(names) + 1, squeeze=False)
    # one colour scale per residual (column), shared by its steps, with its colour bar: brightness is comparable
    # down a column, and a map is never stretched to look strong on its own
    top = {name: float(tr._t[f"controlnet.map.{name}"].float().max()) or 1.0 for name in names}
    for r, s in enumerate(steps):
        axes[r, 0].imshow(tr._t["control.image"].numpy(), interpolation="nearest")
        axes[r, 0].set_ylabel(f"step {s + 1}/{n}", fontsize=8)
        for c, name in enumerate(names):
            m = tr._t[f"controlnet.map.{name}"][s].float().numpy()
            im = axes[r, c + 1].imshow(m, cmap=MAGNITUDE, interpolation="nearest", vmin=0, vmax=top[name])
            if r == 0:
                axes[r, c + 1].set_title(name, fontsize=8)
            if r == len(steps) - 1:
                fig.colorbar(im, ax=axes[:, c + 1], location="bottom", shrink=0.9, aspect=8).ax.tick_params(labelsize=6)
        for a in axes[r]:
            _no_ticks(a)
    axes[0, 0].set_title("map", fontsize=8)
    _title(fig, "ControlNet residual magnitude (L2 over channels) per position", tr)
    return fig
