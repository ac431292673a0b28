"""Lesson 3's near and far: distances between drawn pairs of pictures, in the VAE's latent space and in CLIP's."""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.figure import Figure

from ._base import _new_figure


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
