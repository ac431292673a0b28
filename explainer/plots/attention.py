"""Cross-attention figures: per token, per resolution level, and token x step grids over the final image."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from ..arrays import to_numpy, to_rgb
from ..readouts import pick_steps
from ._base import ATTENTION, _new_figure, _no_ticks, _step_label, _title


def _attention_tokens(tr: Any, tokens: Sequence[Any] | None) -> list[Any]:
    """Token objects to plot: given words / positions, or every word token (no start/end/padding)."""
    all_toks = list(tr.tokens)
    if tokens is None:
        return [t for t in all_toks if not getattr(t, "special", False) and not getattr(t, "padding", False)]
    out = []
    for t in tokens:
        if isinstance(t, (int, np.integer)) and not isinstance(t, bool):
            if not 0 <= t < len(all_toks):
                raise ValueError(f"token position {t} is out of range 0..{len(all_toks) - 1}")
            out.append(all_toks[int(t)])
        else:
            match = [x for x in all_toks if str(x) == str(t)]
            if not match:
                words = [str(x) for x in all_toks if not getattr(x, "padding", False)]
                raise ValueError(f"token {t!r} is not in the prompt; its tokens are {words}")
            out.append(match[0])
    return out


def _attn_map(tr: Any, tok: Any, step: int | None, level: Any) -> np.ndarray:
    return to_numpy(tr.attention(getattr(tok, "index", tok), step=step, level=level))


def _overlay(ax: Any, tr: Any, amap: np.ndarray, vmax: float, overlay: bool, alpha: float = 0.6) -> Any:
    """Draw the final image and the attention map over it (same extent; the map keeps its own resolution)."""
    img = to_rgb(tr.image)
    h, w = img.shape[:2]
    if overlay:  # the image in grey underneath, so the heat map's colours read as attention only
        grey = img.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        ax.imshow(grey, extent=(0, w, h, 0), cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    im = ax.imshow(amap, extent=(0, w, h, 0), cmap=ATTENTION, vmin=0, vmax=vmax, alpha=alpha if overlay else 1.0,
                   interpolation="bilinear")
    ax.set_xlim(0, w)
    ax.set_ylim(h, 0)
    _no_ticks(ax)
    return im


def _level_text(tr: Any, level: Any) -> str:
    if level is None:
        return "all levels averaged"
    names = list(getattr(tr, "levels", []))
    return f"level {names[level] if isinstance(level, int) and names else level}"


def plot_attention(tr: Any, tokens: Sequence[Any] | None = None, step: int | None = None, level: Any = None,
                   overlay: bool = True, cols: int = 8) -> Figure:
    """Per-token cross-attention heat maps over the final image: where each word looks.

    tokens: words or token positions (default: every word of the prompt); step: a step index or None (mean over
    steps); level: a level name / index or None (levels averaged). One colour scale for all panels.
    """
    toks = _attention_tokens(tr, tokens)
    maps = [_attn_map(tr, t, step, level) for t in toks]
    vmax = max(float(m.max()) for m in maps) or 1.0
    cols = min(cols, len(toks))
    rows = math.ceil(len(toks) / cols)
    fig = _new_figure(2.3 * cols + 1.2, 2.5 * rows + 1.0)
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    for ax, t, m in zip(axes, toks, maps, strict=False):
        im = _overlay(ax, tr, m, vmax, overlay)
        ax.set_title(f"\u201c{t}\u201d (#{getattr(t, 'index', '?')})", fontsize=10)
    for ax in axes[len(toks):]:
        ax.axis("off")
    fig.colorbar(im, ax=axes.tolist(), shrink=0.8, pad=0.01, label="attention probability")
    when = "mean over steps" if step is None else _step_label(tr, pick_steps(tr, [step], 1)[0]).replace("\n", ", ")
    _title(fig, f"Cross-attention per token ({when}; {_level_text(tr, level)})", tr)
    return fig


def plot_attention_levels(tr: Any, token: Any, step: int | None = None, overlay: bool = True) -> Figure:
    """One token's attention at every U-Net resolution level, and all levels averaged."""
    tok = _attention_tokens(tr, [token])[0]
    levels = list(tr.levels)
    if not levels:
        raise ValueError("this trace has no attention maps: trace with attention=True")
    entries = [(lv, _attn_map(tr, tok, step, lv)) for lv in levels] + [("all levels", _attn_map(tr, tok, step, None))]
    vmax = max(float(m.max()) for _, m in entries) or 1.0
    fig = _new_figure(2.5 * len(entries) + 1.2, 3.4)
    axes = fig.subplots(1, len(entries))
    for ax, (name, m) in zip(axes, entries, strict=True):
        im = _overlay(ax, tr, m, vmax, overlay)
        ax.set_title(f"{name} ({m.shape[0]}\u00d7{m.shape[1]} map)" if name != "all levels" else name, fontsize=10)
    fig.colorbar(im, ax=axes.tolist(), shrink=0.8, pad=0.01, label="attention probability")
    when = "mean over steps" if step is None else f"step {step}"
    _title(fig, f"Attention to \u201c{tok}\u201d at each resolution level ({when})", tr)
    return fig


def plot_attention_grid(tr: Any, tokens: Sequence[Any] | None = None, steps: Sequence[int] | None = None, n: int = 6,
                        level: Any = None) -> Figure:
    """Token \u00d7 step grid of attention maps: how each word's attention sharpens as the image forms.
    Rows are tokens, columns steps; one colour scale."""
    toks = _attention_tokens(tr, tokens)
    idx = pick_steps(tr, steps, n)
    maps = [[_attn_map(tr, t, i, level) for i in idx] for t in toks]
    vmax = max(float(m.max()) for row in maps for m in row) or 1.0
    fig = _new_figure(1.7 * len(idx) + 2.0, 1.7 * len(toks) + 1.3)
    axes = np.atleast_2d(fig.subplots(len(toks), len(idx), squeeze=False))
    for r, t in enumerate(toks):
        for c, i in enumerate(idx):
            ax = axes[r, c]
            im = ax.imshow(maps[r][c], cmap=ATTENTION, vmin=0, vmax=vmax, interpolation="nearest")
            _no_ticks(ax)
            if r == 0:
                ax.set_title(_step_label(tr, i), fontsize=8)
        axes[r, 0].set_ylabel(f"\u201c{t}\u201d", fontsize=10, rotation=0, ha="right", va="center")
    fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.8, pad=0.01, label="attention probability")
    _title(fig, f"Attention, token \u00d7 step ({_level_text(tr, level)})", tr)
    return fig
