"""What every figure shares: colour maps, a pyplot-free Figure, captions that say what made a trace, and the
IPython formatter that draws our Figures in notebooks."""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from ..readouts import trace_setting


def _show_figures_in_notebooks() -> None:
    """Our figures are plain `Figure`s (not pyplot's), so IPython shows them only once pyplot's inline backend has
    registered a PNG formatter, i.e. after `import matplotlib.pyplot`. Register it ourselves, so a figure returned as
    the last line of a cell is drawn in every notebook (and under MPLBACKEND=Agg in tests), never as '<Figure ...>'."""
    if "IPython" not in sys.modules:  # no shell is running (a script, the CLI): skip the ~0.3 s IPython import
        return
    from IPython import get_ipython
    from IPython.core.pylabtools import print_figure

    shell = get_ipython()
    if shell is None:
        return
    png = shell.display_formatter.formatters["image/png"]
    png.for_type(Figure, lambda fig: print_figure(fig, "png", bbox_inches="tight"))


_show_figures_in_notebooks()

DIVERGING = "RdBu_r"  # signed values (latents, noise): blue < 0 < red
MAGNITUDE = "magma"  # non-negative values (norms, similarities)
ATTENTION = "inferno"


# A notebook column is about 1,100 px wide, and the inline backend draws at 100 dpi: a wider figure is shrunk to fit
# and its labels with it (a 20-inch strip's 8-point labels become ~4 px). Wider figures are scaled down whole to this
# width before drawing, so the fonts keep their size and the panels get smaller instead.
MAX_WIDTH_IN = 10.8


def fit_width(width: float, height: float) -> tuple[float, float]:
    """(width, height) in inches, scaled down together to at most `MAX_WIDTH_IN` wide."""
    if width > MAX_WIDTH_IN:
        return MAX_WIDTH_IN, height * MAX_WIDTH_IN / width
    return width, height


def _new_figure(width: float, height: float) -> Figure:
    """A figure not registered with pyplot (no global state, no leaks in loops), constrained layout, at most
    `MAX_WIDTH_IN` wide (see `fit_width`)."""
    return Figure(figsize=fit_width(width, height), layout="constrained")


def _sym_limit(*arrays: np.ndarray) -> float:
    m = max(float(np.nanmax(np.abs(a))) for a in arrays)
    return m if m > 0 else 1.0


def _no_ticks(ax: Any) -> None:
    ax.set_xticks([])
    ax.set_yticks([])


def _label_channels(ax: Any, latent: Any) -> None:
    """Number the tiles of a `latent_mosaic` ("ch 0" at each tile's top-left), so a learner can say which channel."""
    import math

    shape = tuple(getattr(latent, "shape", ()))[-3:]
    if len(shape) != 3:
        return
    c, h, w = shape
    cols = math.ceil(math.sqrt(c))
    for i in range(c):
        r, q = divmod(i, cols)
        ax.text(q * (w + 1) - 0.4, r * (h + 1) - 0.4, f"ch {i}", fontsize=6, va="top", ha="left", color="black",
                bbox={"boxstyle": "square,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.7})


def _wrap(text: str, width: int) -> str:
    import textwrap

    # never split a word ("DPMSolverMultistepScheduler" stays whole): a line may run a few characters over `width`
    return "\n".join(textwrap.wrap(text, width, break_long_words=False)) if text else ""


def trace_caption(tr: Any) -> str:
    """'"a red circle ..." · seed 0 · 25 steps · CFG 7.5 · dpm++2m' (+ the negative prompt when there is one)."""
    prompt = trace_setting(tr, "prompt", "?")
    seed, steps, cfg = trace_setting(tr, "seed", "?"), trace_setting(tr, "steps", "?"), trace_setting(tr, "cfg", "?")
    sched = trace_setting(tr, "scheduler", "?")
    if isinstance(sched, dict):
        sched = sched.get("name", "?")
    cfg_s = f"{cfg:g}" if isinstance(cfg, (int, float)) else str(cfg)
    text = f"\u201c{prompt}\u201d \u00b7 seed {seed} \u00b7 {steps} steps \u00b7 CFG {cfg_s} \u00b7 {sched}"
    neg = trace_setting(tr, "negative_prompt")
    if neg:
        text += f" \u00b7 negative \u201c{neg}\u201d"
    return text


def _title(fig: Figure, what: str, tr: Any = None) -> None:
    fig.suptitle(what + ("\n" + trace_caption(tr) if tr is not None else ""), fontsize=12)


def _step_label(tr: Any, i: int) -> str:
    st = tr.steps[i]
    return f"step {i + 1}/{len(tr.steps)}\nt={st.timestep:.0f}, \u03c3={st.sigma:.2f}"


def _uncond_name(tr: Any) -> str:
    neg = trace_setting(tr, "negative_prompt")
    return f"negative \u201c{neg}\u201d" if neg else "unconditional (\u201c\u201d)"
