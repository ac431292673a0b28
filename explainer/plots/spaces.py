"""Lesson 3's figures: near and far (distances between drawn pairs of pictures, in the VAE's latent space and in
CLIP's), and which things survive the VAE round trip against which the model draws."""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.figure import Figure

from ._base import _new_figure, _wrap


def plot_near_far(nf: Any) -> Figure:
    """Two panels, one dot per drawn pair: latent distance (left) and CLIP image similarity (right) for each kind of
    pair in `nf` (an `experiments.scenes_latents.NearFar`), its mean as a bar; the unrelated-scene distance dashed."""
    kinds = list(nf.pairs)
    fig = _new_figure(11, 4.4)
    axes = fig.subplots(1, 2)
    rng = np.random.default_rng(0)
    labels = [f"{kind}\n\u201c{a}\u201d\nvs \u201c{b}\u201d" for kind, (a, b) in nf.pairs.items()]
    for ax, data, what in ((axes[0], nf.latent_distance, "latent distance (Euclidean)"),
                           (axes[1], nf.clip_similarity, "CLIP image similarity (cosine)")):
        for i, kind in enumerate(kinds):
            v = np.asarray(data[kind])
            ax.bar(i, v.mean(), width=0.6, color="#c6dbef", edgecolor="#3182bd")
            ax.scatter(i + rng.uniform(-0.18, 0.18, len(v)), v, s=16, color="#08519c", zorder=3)
        ax.set_xticks(range(len(kinds)), labels, fontsize=8)
        ax.set_ylabel(what)
        ax.grid(axis="y", alpha=0.3)
    axes[0].axhline(nf.latent_scale, color="#888888", linestyle="--", linewidth=1)
    # the dashed line is named in the title, not by a label drawn over the dots
    axes[0].set_title("VAE latents: lower = nearer (dashed: two unrelated scenes, mean)", fontsize=10)
    axes[1].set_title("CLIP image vectors: higher = nearer", fontsize=10)
    n = len(next(iter(nf.latent_distance.values())))
    fig.suptitle(f"Near and far, {n} independently drawn pairs of pictures per kind (one dot per pair, bar = mean)",
                 fontsize=11)
    return fig


def plot_what_survives(things: dict[str, dict], model: str, steps: int = 20, cfg: float = 7.5) -> Figure:
    """One row per thing (least drawn at the top): the share of its scenes the judge reads right as rendered, after
    the VAE round trip, and as the model drew the prompt (`experiments.scenes_eval.thing_study`)."""
    order = sorted(things, key=lambda t: (-things[t]["drawn"], t))  # barh draws bottom up: least drawn on top
    fig = _new_figure(8, 0.28 * len(order) + 1.6)
    ax = fig.subplots()
    y = np.arange(len(order))
    for k, (key, label, color) in enumerate((("render", "rendered (the world's own picture)", "#bdbdbd"),
                                             ("round_trip", "after the VAE round trip", "#6baed6"),
                                             ("drawn", f"drawn by {model} from the prompt", "#e6550d"))):
        ax.barh(y + (1 - k) * 0.27, [100 * things[t][key] for t in order], height=0.27, color=color, label=label)
    ax.set_yticks(y, order, fontsize=8)
    ax.set_xlim(0, 100)
    ax.set_xlabel("% of the thing's scenes the judge finds it in")
    ax.set_ylabel("thing asked for (one per prompt)")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(loc="lower left", bbox_to_anchor=(0, 1.0), ncol=3, fontsize=8, frameon=False)
    n = next(iter(things.values()))["n"]
    title = (f"{model}: which things survive the VAE, and which the model draws ({n} unseen single-object prompts per "
             f"thing, seeds 0-{n * len(order) - 1}, {steps} steps, CFG {cfg:g})")
    fig.suptitle(_wrap(title, 90), fontsize=10)
    return fig
