"""Pictures side by side: rows of images as one grid figure."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from ..arrays import to_numpy, to_rgb
from ._base import _new_figure, _no_ticks


def plot_images(rows: Sequence[Sequence[Any]], title: str, row_labels: Sequence[str] | None = None,
                col_titles: Sequence[str] | None = None, col_labels: Sequence[str] | None = None,
                cmap: str | None = None, vmin: float | None = None, vmax: float | None = None,
                cell: float = 1.6) -> Figure:
    """Rows of images as one grid figure: `rows[r][c]` is a PIL image, an (H, W, 3) uint8 or [0, 1] float array, or an
    (H, W) array drawn with `cmap`.

    `row_labels` go left of each row, `col_titles` above the first row, `col_labels` under the last row (e.g. a
    distance). The lessons use it for every "these pictures side by side" figure, so their cells stay about the idea.
    """
    n_rows, n_cols = len(rows), max((len(r) for r in rows), default=0)
    if n_rows == 0 or n_cols == 0:
        raise ValueError("rows: expected at least one row with at least one image")
    fig = _new_figure(cell * n_cols + (1.2 if row_labels else 0.2), cell * n_rows + 0.7)
    axes = fig.subplots(n_rows, n_cols, squeeze=False)
    for r, row in enumerate(rows):
        for c in range(n_cols):
            ax = axes[r, c]
            _no_ticks(ax)
            if c >= len(row):
                ax.set_axis_off()
                continue
            im = to_rgb(row[c]) if hasattr(row[c], "convert") else to_numpy(row[c])  # PIL, uint8, [0, 1] or 2-D
            ax.imshow(im, cmap=cmap if im.ndim == 2 else None, vmin=vmin, vmax=vmax)
        if row_labels is not None:
            axes[r, 0].set_ylabel(row_labels[r], fontsize=9)
    for c, t in enumerate(col_titles or []):
        axes[0, c].set_title(t, fontsize=8)
    for c, t in enumerate(col_labels or []):
        axes[-1, c].set_xlabel(t, fontsize=8)
    fig.suptitle(title, fontsize=11)
    return fig


def plot_image_strip(rows: Sequence[Sequence[Any]], row_labels: Sequence[str], col_labels: Sequence[str],
                     title: str, cell: float = 1.3) -> Figure:
    """A labelled grid of images (rows x cols), nearest-neighbour so the 32x32 pixels stay visible."""
    n_r, n_c = len(rows), len(rows[0])
    fig = _new_figure(max(4.0, n_c * cell + 1.6), n_r * cell + 0.9)
    axes = fig.subplots(n_r, n_c, squeeze=False)
    for r in range(n_r):
        for c in range(n_c):
            ax = axes[r][c]
            ax.imshow(np.asarray(rows[r][c].convert("RGB")), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(col_labels[c], fontsize=9)
            if c == 0:
                ax.set_ylabel(row_labels[r], fontsize=8, rotation=0, ha="right", va="center")
    fig.suptitle(title, fontsize=10)
    return fig
