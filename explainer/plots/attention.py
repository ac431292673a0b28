"""Cross-attention figures: per token, per resolution level, and token x step grids over the final image."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from ..arrays import to_numpy, to_rgb
from ..readouts import pick_steps
from ..validation import check_positive_int
from ._base import ATTENTION, _new_figure, _no_ticks, _step_label, _title


def _attention_tokens(tr: Any, tokens: Sequence[Any] | None) -> list[Any]:
    """What to plot, as `explainer.words.Lookup`s (positions to sum + label): the given words (case-insensitive; a
    word split into pieces sums them) / token positions, or every word of the prompt (no punctuation, start/end or
    padding)."""
    from ..words import Lookup, lookup, words_of

    words = words_of(tr)
    all_toks = list(tr.tokens)
    if tokens is None:
        chosen = [w for w in words if not w.punctuation] or words
        return [lookup(w, words, all_toks) for w in chosen]
    if isinstance(tokens, (str, Lookup)) or not isinstance(tokens, Sequence):
        tokens = [tokens]
    if len(tokens) == 0:
        raise ValueError("tokens must be None (every word) or name at least one prompt word or token position, got "
                         "an empty list")
    return [lookup(t.item() if isinstance(t, np.integer) else t, words, all_toks, "tokens") for t in tokens]


def _attn_map(tr: Any, tok: Any, step: int | None, level: Any) -> np.ndarray:
    if hasattr(tok, "positions") and not hasattr(tr, "lookup"):  # a trace-like object without word lookup
        return sum(to_numpy(tr.attention(p, step=step, level=level)) for p in tok.positions)
    return to_numpy(tr.attention(tok, step=step, level=level))


def _overlay(ax: Any, tr: Any, amap: np.ndarray, vmax: float, overlay: bool, alpha: float = 0.6) -> Any:
    """Draw the final image and the attention map over it (same extent; the map keeps its own resolution)."""
    img = to_rgb(tr.image)
    h, w = img.shape[:2]
    if overlay:  # the image in grey underneath, so the heat map's colours read as attention only
        grey = img.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        ax.imshow(grey, extent=(0, w, h, 0), cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    # nearest: an 8x8 map shows its 8x8 cells; a smooth upsampling would draw detail the map does not have
    im = ax.imshow(amap, extent=(0, w, h, 0), cmap=ATTENTION, vmin=0, vmax=vmax, alpha=alpha if overlay else 1.0,
                   interpolation="nearest")
    ax.set_xlim(0, w)
    ax.set_ylim(h, 0)
    _no_ticks(ax)
    return im


def _group(tr: Any) -> str:
    """What an attention group is in this trace: "level" (U-Net resolution) or "block" (transformer block)."""
    return (getattr(tr, "settings", None) or {}).get("attention_group", "level")


def _level_text(tr: Any, level: Any) -> str:
    g = _group(tr)
    if level is None:
        return f"all {g}s averaged"
    names = list(getattr(tr, "levels", []))
    name = names[level] if isinstance(level, int) and names else level
    return str(name) if g == "block" else f"level {name}"


def _attention_kind(tr: Any) -> str:
    fam = (getattr(tr, "settings", None) or {}).get("family")
    return {"sd3": "Joint attention (image → text)", "flux": "Joint attention (image → text)"}.get(
        fam, "Cross-attention")


def plot_attention(tr: Any, tokens: Sequence[Any] | None = None, step: int | None = None, level: Any = None,
                   overlay: bool = True, cols: int = 8) -> Figure:
    """Per-token cross-attention heat maps over the final image: where each word looks.

    tokens: words or token positions (default: every word of the prompt); step: a step index or None (mean over
    steps); level: a level name / index or None (levels averaged). One colour scale for all panels.
    """
    toks = _attention_tokens(tr, tokens)
    maps = [_attn_map(tr, t, step, level) for t in toks]
    vmax = max(float(m.max()) for m in maps) or 1.0
    cols = min(check_positive_int(cols, "cols"), len(toks))
    rows = math.ceil(len(toks) / cols)
    fig = _new_figure(2.3 * cols + 1.2, 2.5 * rows + 1.0)
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    for ax, t, m in zip(axes, toks, maps, strict=False):
        im = _overlay(ax, tr, m, vmax, overlay)
        ax.set_title(t.panel_title, fontsize=9)
    for ax in axes[len(toks):]:
        ax.axis("off")
    fig.colorbar(im, ax=axes.tolist(), shrink=0.8, pad=0.01, label="attention probability")
    when = "mean over steps" if step is None else _step_label(tr, pick_steps(tr, [step], 1)[0]).replace("\n", ", ")
    _title(fig, f"{_attention_kind(tr)} per word ({when}; {_level_text(tr, level)})", tr)
    return fig


def plot_attention_levels(tr: Any, token: Any, step: int | None = None, overlay: bool = True) -> Figure:
    """One token's attention at every U-Net resolution level, and all levels averaged."""
    tok = _attention_tokens(tr, [token])[0]
    levels = list(tr.levels)
    if not levels:
        raise ValueError("this trace has no attention maps: trace with attention=True")
    every = f"all {_group(tr)}s"
    entries = [(lv, _attn_map(tr, tok, step, lv)) for lv in levels] + [(every, _attn_map(tr, tok, step, None))]
    vmax = max(float(m.max()) for _, m in entries) or 1.0
    fig = _new_figure(2.5 * len(entries) + 1.2, 3.4)
    axes = fig.subplots(1, len(entries))
    for ax, (name, m) in zip(axes, entries, strict=True):
        im = _overlay(ax, tr, m, vmax, overlay)
        ax.set_title(f"{name} ({m.shape[0]}\u00d7{m.shape[1]} map)" if name != every else name, fontsize=10)
    fig.colorbar(im, ax=axes.tolist(), shrink=0.8, pad=0.01, label="attention probability")
    when = "mean over steps" if step is None else f"step {step}"
    where = "in each transformer block" if _group(tr) == "block" else "at each resolution level"
    _title(fig, f"Attention to {tok.title} {where} ({when})", tr)
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
        axes[r, 0].set_ylabel(t.panel_title, fontsize=9, rotation=0, ha="right", va="center")
    fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.8, pad=0.01, label="attention probability")
    _title(fig, f"Attention, word \u00d7 step ({_level_text(tr, level)})", tr)
    return fig
