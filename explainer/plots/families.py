"""Figures of lesson 12 (model families): the U-Net and the DiT on the same prompt, and the DiT's joint attention
in both directions. Each function takes the result object of `explainer.experiments.families` and only draws it.

These two figures are pyplot figures (drawn by the notebook's inline backend), as they were in lesson 12."""

from __future__ import annotations

from typing import TYPE_CHECKING

from matplotlib.figure import Figure

from ._base import fit_width

if TYPE_CHECKING:  # type hints only: the views never import the experiments at run time
    from ..experiments.families import BothWays, SamePrompt


def plot_same_prompt(sp: SamePrompt) -> Figure:
    """The two images side by side, titled with the model, the judge's reading and the settings."""
    import textwrap

    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(sp.images), figsize=fit_width(4.2 * len(sp.images), 4.8), layout="constrained")
    for ax, (name, im) in zip(axes, sp.images.items(), strict=True):
        ax.imshow(im, interpolation="nearest")
        # the judge's reading is a long sentence: wrapped to the panel, so neighbouring titles never run together
        ax.set_title(name + "\n" + textwrap.fill(f"judge reads: {sp.read_as[name]}", 44), fontsize=8)
        ax.set_xlabel("x (pixels)")
        ax.set_ylabel("y (pixels)")
    fig.suptitle(f"'{sp.prompt}' - seed {sp.seed}, {sp.steps} steps, CFG {next(iter(sp.guidance.values())):g}",
                 fontsize=10)
    return fig


def plot_both_ways(bw: BothWays, word: str) -> Figure:
    """Per block: where the word looks in the image (text -> image) and how much each patch looks at the word
    (image -> text), beside the final image."""
    import matplotlib.pyplot as plt

    n = len(bw.blocks)
    fig, axes = plt.subplots(2, n + 1, figsize=fit_width(2.3 * (n + 1), 5.0), layout="constrained")
    for row, (fn, label) in enumerate(((bw.word_to_image, f"'{word}' looks at\n(text->image)"),
                                       (bw.image_to_word, f"patches look at\n'{word}' (image->text)"))):
        axes[row, 0].imshow(bw.image, interpolation="nearest")
        axes[row, 0].set_title("final image", fontsize=8)
        axes[row, 0].set_ylabel(label + "\n\ny (pixels)", fontsize=8)
        axes[row, 0].set_xlabel("x (pixels)", fontsize=7)
        axes[row, 0].tick_params(labelsize=7)
        maps = [fn(word, b).numpy() for b in range(n)]
        # one fixed scale per row, from 0: an 8x8 map stretched to its own range shows noise as structure
        top = max(float(m.max()) for m in maps) or 1.0
        for b in range(n):
            ax = axes[row, b + 1]
            im = ax.imshow(maps[b], cmap="magma", interpolation="nearest", vmin=0, vmax=top)
            ax.set_title(f"{bw.blocks[b]}", fontsize=8)
            ax.set_xlabel("latent x", fontsize=7)
            if b == 0:
                ax.set_ylabel("latent y", fontsize=7)
        bar = fig.colorbar(im, ax=list(axes[row, 1:]), fraction=0.02, pad=0.01)
        bar.set_label("attention weight", fontsize=7)
        bar.ax.tick_params(labelsize=7)
    fig.suptitle(f"Joint attention of shapes-dit in both directions, '{bw.prompt}', seed {bw.seed}, {bw.steps} steps, "
                 f"CFG {bw.cfg:g}\n(mean over steps, conditional branch; one colour scale per row, from 0)",
                 fontsize=10)
    return fig
