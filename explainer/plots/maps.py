"""2-D maps (PCA / UMAP): prompt embeddings, final latents and denoising trajectories."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from .. import projections
from ..arrays import to_rgb
from ..readouts import final_latents, trace_setting, trajectory
from ..text import prompt_embeddings
from ._base import _new_figure


def _colours_for(labels: Sequence[Any]) -> tuple[list[Any], dict[Any, Any]]:
    """A colour per label; shape-world colour words get their own colour, other labels a tab10/tab20 colour."""
    from matplotlib import colormaps

    from ..shapes import COLORS

    uniq = list(dict.fromkeys(labels))
    cmap = colormaps["tab10" if len(uniq) <= 10 else "tab20"]
    table = {}
    for i, u in enumerate(uniq):
        if isinstance(u, str) and u in COLORS and u != "white":
            table[u] = tuple(c / 255 for c in COLORS[u])
        else:
            table[u] = cmap(i % cmap.N)
    return [table[v] for v in labels], table


def _scatter_labelled(ax: Any, xy: np.ndarray, labels: Sequence[Any] | None, legend_title: str | None) -> None:
    if labels is None:
        ax.scatter(xy[:, 0], xy[:, 1], s=40, color="#3182bd", edgecolor="black", linewidth=0.4)
        return
    if len(labels) != len(xy):
        raise ValueError(f"got {len(labels)} labels for {len(xy)} points")
    colours, table = _colours_for(labels)
    ax.scatter(xy[:, 0], xy[:, 1], s=40, c=colours, edgecolor="black", linewidth=0.4)
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], marker="o", linestyle="", markerfacecolor=c, markeredgecolor="black", label=str(k))
               for k, c in table.items()]
    ax.legend(handles=handles, title=legend_title, fontsize=8, title_fontsize=9, loc="best")


def plot_prompt_map(pipe: Any, prompts: Sequence[str], labels: Sequence[Any] | None = None, method: str = "pca",
                    kind: str = "pooled", random_state: int = 0, annotate: bool = True,
                    reducer: projections.Projector | None = None) -> Figure:
    """Prompt embeddings projected to 2D (PCA or UMAP), each point labelled with its prompt, coloured by `labels`.

    kind: "pooled" (CLIP's sentence vector) or "tokens" (all token vectors, flattened).
    """
    if kind not in ("pooled", "tokens"):
        raise ValueError(f"kind must be 'pooled' or 'tokens', got {kind!r}")
    emb = prompt_embeddings(pipe, prompts)
    data = emb["pooled"] if kind == "pooled" else emb["hidden"]
    xy, red = projections.project(data, method, 2, random_state, reducer=reducer)
    fig = _new_figure(10, 7)
    ax = fig.add_subplot()
    _scatter_labelled(ax, xy, labels, "label")
    if annotate and len(prompts) <= 60:
        for (x, y), p in zip(xy, prompts, strict=True):
            ax.annotate(p, (x, y), xytext=(4, 3), textcoords="offset points", fontsize=7.5, alpha=0.85)
    ax.set_xlabel(red.axis_labels[0])
    ax.set_ylabel(red.axis_labels[1])
    ax.grid(alpha=0.3)
    space = "sentence vectors" if kind == "pooled" else "token matrices"
    fig.suptitle(f"{len(prompts)} prompts in the text encoder's space ({space}, {red.method.upper()}, "
                 f"random_state={red.random_state})", fontsize=12)
    return fig


def plot_latent_map(latents: Any, labels: Sequence[Any] | None = None, method: str = "pca",
                    attribute: str = "attribute", random_state: int = 0, images: Sequence[Any] | None = None,
                    reducer: projections.Projector | None = None, what: str | None = None) -> Figure:
    """Final latents of many generations in 2D, coloured by an attribute (colour, shape, position ...).

    latents: (n, ...) array / tensor, or a list of Traces (their final latents are used). images: optional
    thumbnails drawn next to the points. what: what the points are, for the title (default: "Final latents of n
    generations"; e.g. "Latents of 200 VAE-encoded scenes").
    """
    if len(latents) and hasattr(latents[0], "steps"):
        images = images if images is not None else [getattr(t, "image", None) for t in latents]
        latents = final_latents(latents)
    xy, red = projections.project(latents, method, 2, random_state, reducer=reducer)
    fig = _new_figure(9, 7)
    ax = fig.add_subplot()
    _scatter_labelled(ax, xy, labels, attribute)
    if images is not None and all(im is not None for im in images) and len(images) <= 80:
        from matplotlib.offsetbox import AnnotationBbox, OffsetImage

        for (x, y), im in zip(xy, images, strict=True):
            box = AnnotationBbox(OffsetImage(to_rgb(im), zoom=0.9), (x, y), xybox=(14, 14),
                                 boxcoords="offset points", frameon=False, pad=0)
            ax.add_artist(box)
    ax.set_xlabel(red.axis_labels[0])
    ax.set_ylabel(red.axis_labels[1])
    ax.grid(alpha=0.3)
    what = what or f"Final latents of {len(xy)} generations"
    fig.suptitle(f"{what}, coloured by {attribute} ({red.method.upper()}, random_state={red.random_state})",
                 fontsize=12)
    return fig


def plot_trajectories(traces: Sequence[Any], labels: Sequence[str] | None = None, method: str = "pca",
                      random_state: int = 0, reducer: projections.Projector | None = None) -> Figure:
    """Denoising trajectories of several traces (seeds, samplers, prompts) in one shared 2D map.

    Every path starts at its noise (circle) and ends at its final latents (star); the map is fitted on all points.
    labels: one legend entry per trace (default: seed and scheduler).
    """
    if not traces:
        raise ValueError("plot_trajectories needs at least one trace")
    paths, red = projections.trajectories([trajectory(t) for t in traces], method, random_state, reducer=reducer)
    if labels is None:
        labels = [f"seed {trace_setting(t, 'seed')} \u00b7 {trace_setting(t, 'scheduler')} \u00b7 "
                  f"{trace_setting(t, 'steps')} steps" for t in traces]
    fig = _new_figure(9.5, 7)
    ax = fig.add_subplot()
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    for i, (xy, lab) in enumerate(zip(paths, labels, strict=True)):
        c = cmap(i % 10)
        ax.plot(xy[:, 0], xy[:, 1], "-", color=c, linewidth=1.4, alpha=0.9, label=lab, marker=".", markersize=5)
        ax.scatter(xy[0, 0], xy[0, 1], s=70, marker="o", facecolor="white", edgecolor=c, linewidth=1.8, zorder=3)
        ax.scatter(xy[-1, 0], xy[-1, 1], s=160, marker="*", color=c, edgecolor="black", linewidth=0.5, zorder=3)
    ax.set_xlabel(red.axis_labels[0])
    ax.set_ylabel(red.axis_labels[1])
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    title = "Denoising trajectories in latent space: \u25cb noise \u2192 \u2605 final latents"
    prompts = {trace_setting(t, "prompt") for t in traces}
    if len(prompts) == 1:
        title += f"\n\u201c{prompts.pop()}\u201d, CFG {trace_setting(traces[0], 'cfg')}"
        for key, name in (("seed", "seed"), ("steps", "steps")):  # the settings every path shares
            values = {trace_setting(t, key) for t in traces}
            if len(values) == 1 and None not in values:
                title += f", {name} {values.pop()}" if key == "seed" else f", {values.pop()} {name}"
    fig.suptitle(title + f" ({red.method.upper()}, random_state={red.random_state})", fontsize=12)
    return fig
