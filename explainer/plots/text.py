"""Figures of the text side: tokens, embeddings, prompt similarity, CLIP image <-> caption similarity and the
embeddings a trace's denoiser attended to."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import FancyBboxPatch

from ..arrays import to_numpy, to_rgb
from ..text import DEFAULT_PROMPT, clip_similarity, prompt_embeddings, prompt_similarity, prompt_tokens
from ._base import DIVERGING, MAGNITUDE, _new_figure, _sym_limit, _title, _uncond_name, _wrap


def _two_lines(token: str, cap: int) -> str:
    """`token` on one line if it fits `cap` characters, else on two (CLIP's "<|startof" / "text|>" at its seam,
    others halved), cut with an ellipsis past two lines."""
    if len(token) <= cap:
        return token
    cut = token.find("oftext") + 2 if "oftext" in token else (len(token) + 1) // 2
    head, tail = token[:cut], token[cut:]
    if len(head) > cap or len(tail) > cap:
        head, tail = token[:cap], token[cap:]
    return head + "\n" + (tail if len(tail) <= cap else tail[:cap - 1] + "\u2026")


def plot_tokens(pipe: Any, prompt: str = DEFAULT_PROMPT, show_padding: int = 2) -> Figure:
    """The prompt's tokens as chips (string above, id below), special tokens and padding marked."""
    toks = prompt_tokens(pipe, prompt)
    real = [t for t in toks if t["kind"] != "padding"]
    pads = [t for t in toks if t["kind"] == "padding"]
    shown = real + pads[:show_padding]
    n = len(shown) + (1 if len(pads) > show_padding else 0)
    fig = _new_figure(max(6.0, 1.25 * n), 2.6)
    ax = fig.add_subplot()
    ax.set_xlim(0, n)
    ax.set_ylim(0, 1)
    ax.axis("off")
    fits = max(4, int(0.9 * fig.get_figwidth() / n / 0.085))  # characters of 10-point text a chip holds
    colours = {"start": "#d9d9d9", "end": "#d9d9d9", "padding": "#f0f0f0", "word": "#c6dbef"}
    for i, t in enumerate(shown):
        ax.add_patch(FancyBboxPatch((i + 0.05, 0.25), 0.9, 0.5, boxstyle="round,pad=0.02,rounding_size=0.06",
                                    facecolor=colours[t["kind"]], edgecolor="#555555",
                                    linestyle="--" if t["kind"] == "padding" else "-"))
        # a long token ("<|startoftext|>") gets a smaller font, down to 8 points, then a second line; past two
        # lines of 8-point text it is cut
        size = max(8.0, min(10.0, 10.0 * fits / len(t["token"])))
        cap = int(fits * 10.0 / size)
        label = _two_lines(t["token"], cap)
        ax.text(i + 0.5, 0.56, label, ha="center", va="center", fontsize=size,
                weight="bold" if t["kind"] == "word" else "normal")
        ax.text(i + 0.5, 0.38, f"id {t['id']}", ha="center", va="center", fontsize=8, family="monospace")
        ax.text(i + 0.5, 0.12, f"#{t['index']}" + ("" if t["kind"] == "word" else f"\n{t['kind']}"),
                ha="center", va="center", fontsize=7.5, color="#555555")
    if len(pads) > show_padding:
        ax.text(n - 0.5, 0.5, f"+{len(pads) - show_padding}\npadding", ha="center", va="center", fontsize=9,
                color="#555555")
    fig.suptitle(f"Tokens of \u201c{prompt}\u201d: {len(real)} tokens (with start/end), padded to {len(toks)}",
                 fontsize=12)
    return fig


def plot_embedding_heatmap(pipe: Any, prompt: str = DEFAULT_PROMPT, max_dims: int | None = None,
                           include_padding: int = 1) -> Figure:
    """The text encoder's output for one prompt: one row per token, one column per dimension (colour = value)."""
    emb = prompt_embeddings(pipe, prompt)
    n = min(emb["n_real"][0] + include_padding, emb["hidden"].shape[1])
    data = emb["hidden"][0, :n]
    if max_dims is not None:
        data = data[:, :max_dims]
    tokens = emb["tokens"][0][:n]
    fig = _new_figure(12, 1.2 + 0.32 * n)
    ax = fig.add_subplot()
    lim = _sym_limit(data)
    im = ax.imshow(data, aspect="auto", cmap=DIVERGING, vmin=-lim, vmax=lim, interpolation="nearest")
    ax.set_yticks(range(n), [f"{t} ({i})" for i, t in enumerate(tokens)])
    ax.set_xlabel(f"embedding dimension (of {emb['hidden'].shape[2]})")
    ax.set_ylabel("token")
    fig.colorbar(im, ax=ax, label="value", shrink=0.9, pad=0.01)
    fig.suptitle(f"Text embeddings of \u201c{prompt}\u201d: what the U-Net reads through cross-attention", fontsize=12)
    return fig


def _similarity_axes(fig: Figure, ax: Any, sim: np.ndarray, rows: Sequence[str], cols: Sequence[str],
                     vmin: float | None = None, vmax: float | None = None, annotate: bool = True,
                     label: str = "cosine similarity") -> Any:
    im = ax.imshow(sim, cmap=MAGNITUDE, vmin=vmin, vmax=vmax, interpolation="nearest")
    ax.set_xticks(range(len(cols)), [_wrap(c, 22) for c in cols], rotation=40, ha="right", fontsize=8)
    ax.set_yticks(range(len(rows)), [_wrap(r, 40) for r in rows], fontsize=8)
    if annotate and sim.size <= 256:
        lo, hi = np.nanmin(sim), np.nanmax(sim)
        for (i, j), v in np.ndenumerate(sim):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7,
                    color="black" if v > lo + 0.6 * (hi - lo) else "white")
    fig.colorbar(im, ax=ax, label=label, shrink=0.85)
    return im


def plot_prompt_similarity(pipe: Any, prompts: Sequence[str], kind: str = "pooled") -> Figure:
    """Cosine-similarity matrix between prompts' embeddings, values written in the cells."""
    sim = prompt_similarity(pipe, prompts, kind)
    n = len(prompts)
    fig = _new_figure(3 + 0.65 * n + 2, 2 + 0.55 * n)
    ax = fig.add_subplot()
    _similarity_axes(fig, ax, sim, prompts, prompts)
    ax.set_xlabel("prompt")
    ax.set_ylabel("prompt")
    what = "pooled sentence vectors" if kind == "pooled" else "full token embeddings"
    fig.suptitle(f"How alike the text encoder finds these prompts ({what})", fontsize=12)
    return fig


def plot_clip_similarity(clip: Any, images: Any, captions: Sequence[str], tokenizer: Any = None,
                         matched: bool | None = None) -> Figure:
    """Images down the side, captions along the bottom, cosine similarity in the cells: training pulls the diagonal
    (matching pairs) up and pushes everything else down. Each row's best caption is outlined.

    `matched`: whether caption i is image i's own (default: as many captions as images); only then does the title
    speak of the diagonal and score the best captions."""
    sim = clip_similarity(clip, images, captions, tokenizer)
    arr = np.stack([to_rgb(im) for im in images])
    n, m = sim.shape
    matched = n == m if matched is None else matched
    fig = _new_figure(2.5 + 1.25 * m, 2.0 + 0.75 * n)
    ax = fig.add_subplot()
    im = ax.imshow(sim, cmap=MAGNITUDE, vmin=-1, vmax=1, interpolation="nearest")
    for i in range(n):  # thumbnails in a column left of the matrix, in the same axes
        ax.imshow(arr[i], extent=(-1.45, -0.55, i + 0.45, i - 0.45), interpolation="nearest")
    ax.set_xlim(-1.5, m - 0.5)
    ax.set_ylim(n - 0.5, -0.5)
    ax.set_xticks(range(m), [_wrap(c, 11) for c in captions], fontsize=7)
    ax.set_yticks(range(n), [f"image {i}" for i in range(n)], fontsize=8)
    ax.set_xlabel("caption")
    ax.set_ylabel("image")
    for (i, j), v in np.ndenumerate(sim):
        ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=8, color="black" if v > 0.3 else "white")
    from matplotlib.patches import Rectangle

    for i, j in enumerate(sim.argmax(axis=1)):
        ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="#2ca25f", linewidth=2.2))
    fig.colorbar(im, ax=ax, label="cosine similarity (image \u00b7 caption)", shrink=0.8)
    if matched:
        acc = (sim.argmax(axis=1) == np.arange(n)).mean()
        fig.suptitle("CLIP: image \u2194 caption similarity. Training pulls matching pairs (the diagonal) together\n"
                     f"and pushes the rest apart. Green: each image's best caption, the right one for {acc:.0%} of "
                     "images", fontsize=11)
    else:
        fig.suptitle(f"CLIP: {n} images \u00d7 {m} captions, cosine similarity\nGreen: each image's best caption",
                     fontsize=11)
    return fig


def _setting_or(tr: Any, key: str, default: Any) -> Any:
    return (getattr(tr, "settings", None) or {}).get(key, default)


def plot_trace_embeddings(tr: Any, encoder: str | None = None, include_padding: int = 1) -> Figure:
    """The embeddings this trace's U-Net attended to: conditional (the prompt) and unconditional (empty or negative
    prompt), one row per token, one column per dimension."""
    emb = tr.text_embeddings
    name = encoder or next((k for k, v in emb.items() if v["cond"] is not None), next(iter(emb)))
    cond, unc = emb[name]["cond"], emb[name]["uncond"]
    if cond is None:
        raise ValueError(f"encoder {name!r} gives this trace's denoiser no per-token states (only a pooled vector); "
                         f"pick one of {[k for k, v in emb.items() if v['cond'] is not None]}")
    toks = list(tr.tokens)
    for start, stop in getattr(tr, "_meta", {}).get("token_groups", {}).values():  # SD3: CLIP and T5 positions
        if stop - start == cond.shape[0] and len(toks) != cond.shape[0]:
            toks = toks[start:stop]
            break
    n = min(sum(1 for t in toks if not getattr(t, "padding", False)) + include_padding, len(toks))
    panels = [("prompt", to_numpy(cond)[:n], [str(t) for t in toks[:n]])]
    if unc is not None:
        ntoks = list(getattr(tr, "negative_tokens", [])) or toks
        m = min(sum(1 for t in ntoks if not getattr(t, "padding", False)) + include_padding, len(ntoks))
        panels.append((_uncond_name(tr), to_numpy(unc)[:m], [str(t) for t in ntoks[:m]]))
    lim = _sym_limit(*[p[1] for p in panels])
    heights = [max(2, len(p[2])) for p in panels]
    fig = _new_figure(12, 1.4 + 0.3 * sum(heights))
    axes = fig.subplots(len(panels), 1, gridspec_kw={"height_ratios": heights}, squeeze=False)[:, 0]
    for ax, (title, data, labels) in zip(axes, panels, strict=True):
        im = ax.imshow(data, aspect="auto", cmap=DIVERGING, vmin=-lim, vmax=lim, interpolation="nearest")
        ax.set_yticks(range(len(labels)), [f"{t} ({i})" for i, t in enumerate(labels)], fontsize=8)
        ax.set_title(title, fontsize=10)
        ax.set_ylabel("token")
    axes[-1].set_xlabel(f"embedding dimension ({name}, {panels[0][1].shape[1]} dims)")
    fig.colorbar(im, ax=axes.tolist(), label="value", shrink=0.9, pad=0.01)
    denoiser = "U-Net" if "unet" in str(_setting_or(tr, "denoiser", "UNet")).lower() else "transformer"
    _title(fig, f"Text embeddings the {denoiser} attended to", tr)
    return fig
