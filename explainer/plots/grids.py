"""Pictures side by side: the one image-grid figure (`plot_images`), and the sweeps' grids and filmstrips drawn with it.

Every figure that shows pictures in rows and columns (sweep grids, interpolation filmstrips, the lessons' example
strips, the GAN's grid) is `plot_images` with its labels, so they all look and behave alike: nearest-neighbour
pixels (the 32x32 images stay visible), row labels on the left, column titles on top, labels under the last row.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from matplotlib.figure import Figure

from ..arrays import to_numpy, to_rgb
from ._base import _new_figure, _no_ticks

if TYPE_CHECKING:  # type hints only
    from ..sweeps import Filmstrip, GridResult


def _wrap(text: str, width: int, balanced: bool = False) -> str:
    """Wrap each line of `text` at `width` characters, keeping the line breaks it already has; `balanced`: as narrow
    as the same number of lines allows, so no last line holds a single word."""
    def one(line: str) -> str:
        lines, w = textwrap.wrap(line, width), width
        while balanced and len(lines) > 1 and w > 10:
            shorter = textwrap.wrap(line, w - 1)
            if len(shorter) > len(lines):
                break
            lines, w = shorter, w - 1
        return "\n".join(lines) or line

    return "\n".join(one(line) for line in str(text).split("\n"))


def plot_images(rows: Sequence[Sequence[Any]], title: str, row_labels: Sequence[str] | None = None,
                col_titles: Sequence[str] | None = None, col_labels: Sequence[str] | None = None,
                cmap: str | None = None, vmin: float | None = None, vmax: float | None = None,
                cell: float = 1.6, cell_labels: Sequence[Sequence[str]] | None = None,
                colorbar: str | None = None) -> Figure:
    """Rows of images as one grid figure: `rows[r][c]` is a PIL image, an (H, W, 3) uint8 or [0, 1] float array, or an
    (H, W) array drawn with `cmap`.

    `row_labels` go left of each row, `col_titles` above the first row, `col_labels` under the last row (e.g. a
    distance), `cell_labels[r][c]` under each cell. Labels wrap at about 18 characters and keep their own line breaks;
    the title wraps to the figure's width. A short row leaves its last cells empty. `colorbar`: a label for one
    colour bar beside the rows of 2-D (`cmap`) images, which share `vmin`..`vmax`.
    """
    n_rows, n_cols = len(rows), max((len(r) for r in rows), default=0)
    if n_rows == 0 or n_cols == 0:
        raise ValueError("rows: expected at least one row with at least one image")
    labelled = row_labels is not None and any(row_labels)
    fig = _new_figure(max(3.0, cell * n_cols + (1.4 if labelled else 0.2)), cell * n_rows + 0.9)
    axes = fig.subplots(n_rows, n_cols, squeeze=False)
    mapped: dict[int, Any] = {}  # row -> one of its 2-D images, for the colour bar
    for r, row in enumerate(rows):
        for c in range(n_cols):
            ax = axes[r, c]
            _no_ticks(ax)
            for spine in ax.spines.values():
                spine.set_visible(False)
            if c >= len(row):
                ax.set_axis_off()
                continue
            im = to_rgb(row[c]) if hasattr(row[c], "convert") else to_numpy(row[c])  # PIL, uint8, [0, 1] or 2-D
            shown = ax.imshow(im, cmap=cmap if im.ndim == 2 else None, vmin=vmin, vmax=vmax, interpolation="nearest")
            if im.ndim == 2:
                mapped.setdefault(r, shown)
            if cell_labels is not None:
                ax.set_xlabel(_wrap(cell_labels[r][c], 18), fontsize=7)
        if labelled:
            axes[r, 0].set_ylabel(_wrap(row_labels[r], 18), fontsize=8, rotation=0, ha="right", va="center")
    for c, t in enumerate(col_titles or []):
        axes[0, c].set_title(_wrap(t, 18), fontsize=8)
    for c, t in enumerate(col_labels or []):
        axes[-1, c].set_xlabel(_wrap(t, 18), fontsize=8)
    if colorbar and mapped:
        fig.colorbar(next(iter(mapped.values())), ax=axes[sorted(mapped)].ravel().tolist(), label=colorbar,
                     shrink=0.9, pad=0.01, extend="both" if vmin is not None or vmax is not None else "neither")
    fig.suptitle(_wrap(title, max(40, int(fig.get_figwidth() * 11)), balanced=True), fontsize=10)
    return fig


def plot_grid(res: GridResult, cell: float = 1.5) -> Figure:
    """A sweep grid (`explainer.grid`): column labels on top, row labels on the left, the prompt and the fixed
    settings as the title."""
    return plot_images(res.images, res.title(), res.row_labels() if res.row_axis else None, res.col_labels(),
                       cell=cell)


def plot_interpolation(strip: Filmstrip, cell: float = 1.4) -> Figure:
    """An interpolation filmstrip (`interpolate_seeds` / `interpolate_prompts`): one row, each frame titled by where
    it lies between the two ends."""
    return plot_images([strip.images], strip.title, col_titles=strip.labels, cell=cell)


def image_rows(images: Sequence[Any], cols: int) -> list[list[Any]]:
    """A flat list of images as rows of `cols` (the last row may be shorter)."""
    return [list(images[i:i + cols]) for i in range(0, len(images), cols)]


def plot_article_grid(grid: dict, checks: Any, model: str, steps: int, cfg: float, seeds: int = 6) -> Figure:
    """The article's prompts (rows) over seeds (columns), each picture marked with what the judge reads right
    (`checks(reading, prompt)` -> {question: bool}): "ok" when every question holds, else the questions missed."""
    prompts = list(grid["right"])
    n = min(seeds, len(grid["seeds"]))
    readings = grid["readings"]
    labels = []
    for p_i, prompt in enumerate(prompts):
        row = []
        for s_i in range(n):
            got = checks(readings[p_i * len(grid["seeds"]) + s_i], prompt)
            missed = [k for k, v in got.items() if not v]
            row.append("read right" if not missed else "no " + ", ".join(missed))
        labels.append(row)
    rows = [list(grid["images"][p_i][:n]) for p_i in range(len(prompts))]
    right = [f"{p}\n({100 * grid['right'][p]:.0f} % of {len(grid['seeds'])} seeds read right)" for p in prompts]
    nb = "\u00a0"  # a no-break space: "CFG 7.5" stays on one line of the wrapped title
    title = (f"{model}: the article's prompts, seeds 0-{n - 1} ({steps}{nb}steps, CFG{nb}{cfg:g}); under each picture "
             "what the scenes judge reads wrong")
    return plot_images(rows, title, right, [f"seed {s}" for s in grid["seeds"][:n]], cell=1.25, cell_labels=labels)
