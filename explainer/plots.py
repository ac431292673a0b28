"""Figures that make a pipeline and a trace visible. Every function returns a `matplotlib.figure.Figure`.

Figures are pure functions of their inputs (a Trace, a pipeline, arrays): they never change a pipeline and never run
a generation. Figures made from a trace carry its prompt, seed, steps, CFG and scheduler in the title, so a PNG lifted
onto a slide still says what made it. Data functions beside the figures (`pipeline_summary`, `unet_anatomy`,
`cfg_delta_norms`, ...) return the numbers behind them, for lessons to print and tests to check.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

from . import projections


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

DEFAULT_PROMPT = "a red circle left of a blue square"
DIVERGING = "RdBu_r"  # signed values (latents, noise): blue < 0 < red
MAGNITUDE = "magma"  # non-negative values (norms, similarities)
ATTENTION = "inferno"


# ---------------------------------------------------------------------------------------------------------------------
# small helpers shared by every figure


def _new_figure(width: float, height: float) -> Figure:
    """A figure not registered with pyplot (no global state, no leaks in loops), constrained layout."""
    return Figure(figsize=(width, height), layout="constrained")


def _numpy(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().float().cpu().numpy()
    return np.asarray(x)


def _fmt_params(n: int) -> str:
    if n >= 1e9:
        return f"{n / 1e9:.2f} B"
    if n >= 1e6:
        return f"{n / 1e6:.2f} M"
    if n >= 1e3:
        return f"{n / 1e3:.1f} k"
    return str(n)


def count_params(module: Any) -> int:
    """Number of parameters of a torch module (0 for anything else, e.g. a tokenizer or scheduler)."""
    if isinstance(module, torch.nn.Module):
        return int(sum(p.numel() for p in module.parameters()))
    return 0


def to_rgb(image: Any) -> np.ndarray:
    """PIL image, uint8 array (h, w, 3), or a VAE-range tensor/array ((1,)3,h,w in [-1, 1]) -> uint8 (h, w, 3)."""
    if hasattr(image, "convert") and hasattr(image, "size"):  # PIL
        return np.asarray(image.convert("RGB"))
    arr = _numpy(image)
    if arr.ndim == 4:
        if arr.shape[0] != 1:
            raise ValueError(f"expected one image, got a batch of shape {arr.shape}")
        arr = arr[0]
    if arr.ndim == 3 and arr.shape[0] in (1, 3) and arr.shape[-1] not in (1, 3):
        arr = arr.transpose(1, 2, 0)
    if arr.dtype == np.uint8:
        return arr if arr.shape[-1] == 3 else np.repeat(arr, 3, axis=-1)
    arr = ((np.clip(arr.astype(np.float32), -1, 1) + 1) * 127.5).round().astype(np.uint8)
    return arr if arr.shape[-1] == 3 else np.repeat(arr, 3, axis=-1)


def latent_mosaic(latents: Any, cols: int | None = None) -> np.ndarray:
    """Lay the channels of one latent ((1,) c, h, w) side by side as a 2D array, channels in a near-square grid.

    A 4-channel latent becomes a 2x2 mosaic, so a learner sees every number the U-Net sees.
    Gaps between tiles are NaN (drawn blank).
    """
    arr = _numpy(latents).astype(np.float32)
    if arr.ndim == 4:
        if arr.shape[0] != 1:
            raise ValueError(f"expected one latent, got a batch of shape {arr.shape}")
        arr = arr[0]
    if arr.ndim == 2:
        return arr
    if arr.ndim != 3:
        raise ValueError(f"expected a latent of shape (c, h, w), got {arr.shape}")
    c, h, w = arr.shape
    cols = cols or math.ceil(math.sqrt(c))
    rows = math.ceil(c / cols)
    out = np.full((rows * h + rows - 1, cols * w + cols - 1), np.nan, dtype=np.float32)
    for i in range(c):
        r, q = divmod(i, cols)
        out[r * (h + 1):r * (h + 1) + h, q * (w + 1):q * (w + 1) + w] = arr[i]
    return out


def _sym_limit(*arrays: np.ndarray) -> float:
    m = max(float(np.nanmax(np.abs(a))) for a in arrays)
    return m if m > 0 else 1.0


def _no_ticks(ax: Any) -> None:
    ax.set_xticks([])
    ax.set_yticks([])


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
            im = to_rgb(row[c]) if hasattr(row[c], "convert") else _numpy(row[c])  # PIL, uint8, [0, 1] or 2-D
            ax.imshow(im, cmap=cmap if im.ndim == 2 else None, vmin=vmin, vmax=vmax)
        if row_labels is not None:
            axes[r, 0].set_ylabel(row_labels[r], fontsize=9)
    for c, t in enumerate(col_titles or []):
        axes[0, c].set_title(t, fontsize=8)
    for c, t in enumerate(col_labels or []):
        axes[-1, c].set_xlabel(t, fontsize=8)
    fig.suptitle(title, fontsize=11)
    return fig


# ---------------------------------------------------------------------------------------------------------------------
# reading a Trace (duck-typed: the fields documented in issue #3)


def _setting(tr: Any, name: str, default: Any = None) -> Any:
    """A value of `tr.settings` (dict or object); falls back to a plain attribute (e.g. tr.prompt)."""
    s = getattr(tr, "settings", None)
    if isinstance(s, dict) and name in s:
        return s[name]
    if s is not None and not isinstance(s, dict) and hasattr(s, name):
        return getattr(s, name)
    value = getattr(tr, name, default)
    return value if isinstance(value, (str, int, float, type(None))) else default


def trace_caption(tr: Any) -> str:
    """'"a red circle ..." · seed 0 · 25 steps · CFG 7.5 · dpm++2m' (+ the negative prompt when there is one)."""
    prompt = _setting(tr, "prompt", "?")
    seed, steps, cfg = _setting(tr, "seed", "?"), _setting(tr, "steps", "?"), _setting(tr, "cfg", "?")
    sched = _setting(tr, "scheduler", "?")
    if isinstance(sched, dict):
        sched = sched.get("name", "?")
    cfg_s = f"{cfg:g}" if isinstance(cfg, (int, float)) else str(cfg)
    text = f"\u201c{prompt}\u201d \u00b7 seed {seed} \u00b7 {steps} steps \u00b7 CFG {cfg_s} \u00b7 {sched}"
    neg = _setting(tr, "negative_prompt")
    if neg:
        text += f" \u00b7 negative \u201c{neg}\u201d"
    return text


def _title(fig: Figure, what: str, tr: Any = None) -> None:
    fig.suptitle(what + ("\n" + trace_caption(tr) if tr is not None else ""), fontsize=12)


# ---------------------------------------------------------------------------------------------------------------------
# pipeline at a glance


def _denoiser(pipe: Any) -> tuple[str, Any]:
    for name in ("unet", "transformer"):
        if getattr(pipe, name, None) is not None:
            return name, getattr(pipe, name)
    raise ValueError(f"{type(pipe).__name__} has neither a `unet` nor a `transformer` to denoise with")


def _text_pairs(pipe: Any) -> list[tuple[str, Any, str, Any]]:
    pairs = []
    for suffix in ("", "_2", "_3"):
        tok, enc = getattr(pipe, "tokenizer" + suffix, None), getattr(pipe, "text_encoder" + suffix, None)
        if tok is not None and enc is not None:
            pairs.append(("tokenizer" + suffix, tok, "text_encoder" + suffix, enc))
    if not pairs:
        raise ValueError(f"{type(pipe).__name__} has no tokenizer/text_encoder pair")
    return pairs


def _latent_size(pipe: Any, height: int | None, width: int | None) -> tuple[int, int, int]:
    """(latent channels, latent h, latent w) the pipeline would use for this image size."""
    _, den = _denoiser(pipe)
    factor = int(getattr(pipe, "vae_scale_factor", 8))
    size = den.config.get("sample_size", 64)
    sh, sw = (size, size) if isinstance(size, int) else tuple(size)
    h = (height // factor) if height else sh
    w = (width // factor) if width else sw
    return int(den.config.in_channels), int(h), int(w)


def pipeline_summary(pipe: Any, prompt: str = DEFAULT_PROMPT, steps: int = 25, height: int | None = None,
                     width: int | None = None) -> list[dict]:
    """The stages of one generation, from prompt to pixels, read from the real pipeline objects.

    Each stage is a dict: stage, component (attribute name on the pipeline), cls, params, shape (of the stage's
    output, batch of one), dtype and a note. Tokenizer and text encoder run for real on `prompt` (cheap); the
    latent / U-Net / VAE shapes follow from the components' configs.
    """
    if not isinstance(prompt, str):
        raise ValueError(f"prompt must be a string, got {type(prompt).__name__}")
    stages: list[dict] = [dict(stage="prompt", component=None, cls="str", params=0, shape=(len(prompt),),
                               dtype="text", note=f"\u201c{prompt}\u201d")]
    for tok_name, tok, enc_name, enc in _text_pairs(pipe):
        ids = tok(prompt, padding="max_length", max_length=tok.model_max_length, truncation=True,
                  return_tensors="pt").input_ids
        n_real = len(tok(prompt, truncation=True, max_length=tok.model_max_length).input_ids)
        stages.append(dict(stage="token ids", component=tok_name, cls=type(tok).__name__, params=0,
                           shape=tuple(ids.shape), dtype=str(ids.dtype).replace("torch.", ""),
                           note=f"{n_real} tokens + {ids.shape[1] - n_real} padding; vocabulary {len(tok)}"))
        with torch.no_grad():
            out = enc(ids.to(enc.device))
        hidden = out[0]
        stages.append(dict(stage="embeddings", component=enc_name, cls=type(enc).__name__, params=count_params(enc),
                           shape=tuple(hidden.shape), dtype=str(hidden.dtype).replace("torch.", ""),
                           note="one vector per token (the U-Net attends to all of them)"))
    c, h, w = _latent_size(pipe, height, width)
    den_name, den = _denoiser(pipe)
    dtype = str(den.dtype).replace("torch.", "")
    stages.append(dict(stage="noise latents", component=None, cls="torch.randn", params=0, shape=(1, c, h, w),
                       dtype=dtype, note="Gaussian noise from the seed"))
    sched = getattr(pipe, "scheduler", None)
    out_c = int(den.config.get("out_channels", c) or c)
    stages.append(dict(stage=f"{'U-Net' if den_name == 'unet' else 'transformer'} \u00d7 {steps}",
                       component=den_name, cls=type(den).__name__, params=count_params(den), shape=(1, out_c, h, w),
                       dtype=dtype, note=f"predicts the noise; {type(sched).__name__} steps x_t \u2192 x_t-1 "
                                         "(\u00d72 calls per step with CFG)"))
    vae = pipe.vae
    factor = int(getattr(pipe, "vae_scale_factor", 8))
    dec_params = count_params(vae.decoder) + count_params(getattr(vae, "post_quant_conv", None))
    stages.append(dict(stage="VAE decode", component="vae", cls=type(vae).__name__, params=dec_params,
                       shape=(1, int(vae.config.out_channels), h * factor, w * factor), dtype=dtype,
                       note=f"decoder only ({_fmt_params(count_params(vae))} with the encoder); "
                            f"\u00d7{factor} per side"))
    stages.append(dict(stage="pixels", component=None, cls="PIL.Image", params=0,
                       shape=(h * factor, w * factor, 3), dtype="uint8", note="clamp, scale to 0..255"))
    return stages


def plot_pipeline(pipe: Any, prompt: str = DEFAULT_PROMPT, steps: int = 25, height: int | None = None,
                  width: int | None = None, summary: list[dict] | None = None) -> Figure:
    """Pipeline at a glance: one box per stage (component, parameter count, output shape), arrows between."""
    stages = summary if summary is not None else pipeline_summary(pipe, prompt, steps, height, width)
    n = len(stages)
    fig = _new_figure(max(12.0, 2.3 * n), 3.6)
    ax = fig.add_subplot()
    ax.set_xlim(0, n)
    ax.set_ylim(0, 1)
    ax.axis("off")
    colours = {"prompt": "#dbe9f6", "token ids": "#dbe9f6", "embeddings": "#c6dbef", "noise latents": "#fde0c5",
               "VAE decode": "#d9f0d3", "pixels": "#d9f0d3"}
    for i, s in enumerate(stages):
        box = FancyBboxPatch((i + 0.06, 0.12), 0.78, 0.76, boxstyle="round,pad=0.02,rounding_size=0.05",
                             facecolor=colours.get(s["stage"], "#fcd5d4"), edgecolor="#444444", linewidth=1.2)
        ax.add_patch(box)
        shape = "\u00d7".join(str(d) for d in s["shape"])
        lines = [s["stage"], s["cls"] if s["component"] else "", f"{_fmt_params(s['params'])} params"
                 if s["params"] else "", f"out: {shape}" if s["stage"] != "prompt" else f"{shape} characters",
                 s["dtype"] if s["stage"] != "prompt" else ""]
        ax.text(i + 0.45, 0.8, lines[0], ha="center", va="top", fontsize=11, weight="bold")
        ax.text(i + 0.45, 0.64, "\n".join(x for x in lines[1:] if x), ha="center", va="top", fontsize=8.5,
                family="monospace", linespacing=1.5)
        ax.text(i + 0.45, 0.15, _wrap(s["note"], 26), ha="center", va="bottom", fontsize=7, color="#333333",
                style="italic")
        if i < n - 1:
            ax.add_patch(FancyArrowPatch((i + 0.86, 0.5), (i + 1.04, 0.5), arrowstyle="-|>", mutation_scale=14,
                                         color="#444444"))
    total = sum(count_params(m) for m in _modules(pipe).values()) if pipe is not None else 0
    name = getattr(pipe, "explainer_model_id", None) or getattr(pipe, "name_or_path", "") or type(pipe).__name__
    fig.suptitle(f"Pipeline at a glance: {name} ({type(pipe).__name__}, {_fmt_params(total)} parameters)\n"
                 "prompt \u2192 token ids \u2192 embeddings \u2192 noise latents \u2192 U-Net \u00d7 N \u2192 VAE "
                 "\u2192 pixels (shapes for a batch of one)", fontsize=12)
    return fig


def _wrap(text: str, width: int) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width)) if text else ""


def _modules(pipe: Any) -> dict[str, torch.nn.Module]:
    comps = getattr(pipe, "components", {}) or {}
    return {k: v for k, v in comps.items() if isinstance(v, torch.nn.Module)}


# ---------------------------------------------------------------------------------------------------------------------
# U-Net anatomy


def unet_anatomy(unet: Any, latent_size: int | tuple[int, int] | None = None) -> dict:
    """Levels, channels, resolutions, skip connections and parameter counts of a `UNet2DConditionModel`.

    Returns {"down": [...], "mid": {...}, "up": [...], "skips": [...], "conv_in_params", "conv_out_params",
    "time_embedding_params", "total_params", "latent_size"}; each block dict has kind, in/out channels, resolution
    (h, w) it works at, params, cross_attention (bool), transformer_layers.
    Skips are (down source name, up block index, channels, resolution), in the order the U-Net pushes and pops them.
    """
    cfg = unet.config
    size = latent_size if latent_size is not None else cfg.sample_size
    h, w = (size, size) if isinstance(size, int) else tuple(size)

    def attn_layers(block: Any) -> int:
        return sum(len(getattr(a, "transformer_blocks", [])) for a in getattr(block, "attentions", []) or [])

    down, skips_stack = [], [("conv_in", int(cfg.block_out_channels[0]), (h, w))]
    ch_in = int(cfg.block_out_channels[0])
    for i, block in enumerate(unet.down_blocks):
        ch_out = int(block.resnets[-1].out_channels)
        entry = dict(level=i, kind=type(block).__name__, channels_in=ch_in, channels_out=ch_out, resolution=(h, w),
                     params=count_params(block), cross_attention=hasattr(block, "attentions"),
                     transformer_layers=attn_layers(block), resnets=len(block.resnets),
                     downsample=block.downsamplers is not None)
        down.append(entry)
        for r in range(len(block.resnets)):
            skips_stack.append((f"down {i} resnet {r}", ch_out, (h, w)))
        if block.downsamplers is not None:
            h, w = (h + 1) // 2, (w + 1) // 2
            skips_stack.append((f"down {i} downsample", ch_out, (h, w)))
        ch_in = ch_out
    mid_block = unet.mid_block
    mid = dict(kind=type(mid_block).__name__ if mid_block is not None else None, channels=ch_in, resolution=(h, w),
               params=count_params(mid_block), cross_attention=hasattr(mid_block, "attentions"),
               transformer_layers=attn_layers(mid_block) if mid_block is not None else 0)
    up, skips = [], []
    for j, block in enumerate(unet.up_blocks):
        ch_out = int(block.resnets[-1].out_channels)
        for _ in range(len(block.resnets)):
            src, ch, res = skips_stack.pop()
            skips.append(dict(source=src, up_level=j, channels=ch, resolution=res))
        up.append(dict(level=j, kind=type(block).__name__, channels_in=ch_in, channels_out=ch_out,
                       resolution=(h, w), params=count_params(block), cross_attention=hasattr(block, "attentions"),
                       transformer_layers=attn_layers(block), resnets=len(block.resnets),
                       upsample=getattr(block, "upsamplers", None) is not None))
        if getattr(block, "upsamplers", None) is not None:
            h, w = h * 2, w * 2
        ch_in = ch_out
    conv_out = count_params(unet.conv_out) + count_params(getattr(unet, "conv_norm_out", None))
    return dict(down=down, mid=mid, up=up, skips=skips, conv_in_params=count_params(unet.conv_in),
                conv_out_params=conv_out,
                time_embedding_params=count_params(unet.time_embedding) + count_params(unet.time_proj),
                total_params=count_params(unet), latent_size=(int(size) if isinstance(size, int) else tuple(size)),
                in_channels=int(cfg.in_channels), out_channels=int(cfg.out_channels),
                cross_attention_dim=cfg.cross_attention_dim)


def plot_unet_anatomy(unet: Any, latent_size: int | tuple[int, int] | None = None,
                      anatomy: dict | None = None) -> Figure:
    """The U: down blocks descending on the left, the middle block at the bottom, up blocks rising on the right,
    skip connections as arcs across; each block labelled with channels, resolution and parameters."""
    a = anatomy if anatomy is not None else unet_anatomy(unet, latent_size)
    nd, nu = len(a["down"]), len(a["up"])
    levels = max(nd, nu)
    fig = _new_figure(13, 1.6 + 1.25 * (levels + 1))
    ax = fig.add_subplot()
    ax.axis("off")
    depth = levels + 1
    ax.set_xlim(-0.2, 10.2)
    ax.set_ylim(0.0, depth + 0.4)
    bw, bh = 2.3, 0.72

    def block(x: float, y: float, title: str, body: str, colour: str) -> None:
        ax.add_patch(FancyBboxPatch((x - bw / 2, y - bh / 2), bw, bh, boxstyle="round,pad=0.02,rounding_size=0.08",
                                    facecolor=colour, edgecolor="#333333", linewidth=1.1))
        ax.text(x, y + 0.16, title, ha="center", va="center", fontsize=9.5, weight="bold")
        ax.text(x, y - 0.12, body, ha="center", va="center", fontsize=8, family="monospace")

    def res(r: tuple[int, int]) -> str:
        return f"{r[0]}\u00d7{r[1]}"

    pos_down, pos_up = {}, {}
    for d in a["down"]:
        y = depth - 0.5 - d["level"]
        x = 1.3 + 0.35 * d["level"]
        pos_down[d["level"]] = (x, y)
        tag = "cross-attn" if d["cross_attention"] else "resnet"
        block(x, y, f"down {d['level']}: {tag}", f"{d['channels_in']}\u2192{d['channels_out']} ch @ "
              f"{res(d['resolution'])}\n{_fmt_params(d['params'])} params", "#c6dbef")
    for u in a["up"]:
        lvl = nu - 1 - u["level"]  # up block 0 sits at the deepest level
        y = depth - 0.5 - lvl
        x = 8.7 - 0.35 * lvl
        pos_up[u["level"]] = (x, y)
        tag = "cross-attn" if u["cross_attention"] else "resnet"
        block(x, y, f"up {u['level']}: {tag}", f"{u['channels_in']}\u2192{u['channels_out']} ch @ "
              f"{res(u['resolution'])}\n{_fmt_params(u['params'])} params", "#fdd0a2")
    m = a["mid"]
    block(5.0, depth - 0.5 - levels, "middle" + (" (cross-attn)" if m["cross_attention"] else ""),
          f"{m['channels']} ch @ {res(m['resolution'])}\n{_fmt_params(m['params'])} params", "#fcbba1")
    # the main path
    path = [pos_down[i] for i in sorted(pos_down)] + [(5.0, depth - 0.5 - levels)] + \
           [pos_up[i] for i in sorted(pos_up)]
    for (x0, y0), (x1, y1) in zip(path[:-1], path[1:], strict=True):
        d = bh / 2 if y1 < y0 else -bh / 2  # leave the bottom edge going down, the top edge going up
        ax.add_patch(FancyArrowPatch((x0, y0 - d), (x1, y1 + d),
                                     arrowstyle="-|>", mutation_scale=12, color="#555555", linewidth=1.2,
                                     shrinkA=2, shrinkB=2))
    # skip connections: one arc per down level -> the up block that consumes it, labelled with the count
    counts: dict[tuple[int, int], list[dict]] = {}
    for s in a["skips"]:
        src = s["source"].split()  # "conv_in" | "down i resnet r" | "down i downsample"
        lvl = 0 if src[0] == "conv_in" else int(src[1]) + (src[2] == "downsample")  # the level it lives at
        counts.setdefault((lvl, s["up_level"]), []).append(s)
    for (lvl, uj), items in counts.items():
        if lvl not in pos_down or uj not in pos_up:
            continue
        (x0, y0), (x1, y1) = pos_down[lvl], pos_up[uj]
        ax.add_patch(FancyArrowPatch((x0 + bw / 2, y0 + 0.1), (x1 - bw / 2, y1 + 0.1), arrowstyle="-|>",
                                     mutation_scale=10, color="#2b8cbe", linestyle="--", linewidth=1.0,
                                     connectionstyle="arc3,rad=-0.08"))
        chans = ",".join(sorted({str(i["channels"]) for i in items}))
        ax.text((x0 + x1) / 2, (y0 + y1) / 2 + 0.16, f"{len(items)} skip{'s' * (len(items) > 1)} ({chans} ch)",
                ha="center", fontsize=7.5, color="#2b8cbe")
    ax.text(0.0, depth + 0.15, f"in: {a['in_channels']} ch latent @ {res(a['down'][0]['resolution'])}  "
            f"(conv_in {_fmt_params(a['conv_in_params'])})", fontsize=9, ha="left")
    ax.text(10.0, depth + 0.15, f"out: {a['out_channels']} ch noise prediction "
            f"(conv_out {_fmt_params(a['conv_out_params'])})", fontsize=9, ha="right")
    fig.suptitle(f"U-Net anatomy: {_fmt_params(a['total_params'])} parameters, {len(a['skips'])} skip connections "
                 f"(dashed), text vectors of {a['cross_attention_dim']} dims enter every cross-attention block;\n"
                 f"timestep embedding {_fmt_params(a['time_embedding_params'])} params, added in every resnet",
                 fontsize=11)
    return fig


# ---------------------------------------------------------------------------------------------------------------------
# tokens and embeddings


def prompt_tokens(pipe: Any, prompt: str) -> list[dict]:
    """The prompt as the (first) tokenizer sees it: index, token string, id and kind (start / word / end / padding).

    Tokens past the text encoder's limit are dropped by the tokenizer, as the pipeline drops them.
    """
    if not isinstance(prompt, str):
        raise ValueError(f"prompt must be a string, got {type(prompt).__name__}")
    tok = _text_pairs(pipe)[0][1]
    ids = tok(prompt, padding="max_length", max_length=tok.model_max_length, truncation=True).input_ids
    n_real = len(tok(prompt, truncation=True, max_length=tok.model_max_length).input_ids)
    out = []
    for i, (t, s) in enumerate(zip(ids, tok.convert_ids_to_tokens(ids), strict=True)):
        kind = "padding" if i >= n_real else "start" if t == tok.bos_token_id and i == 0 else \
            "end" if i == n_real - 1 and t == tok.eos_token_id else "word"
        out.append(dict(index=i, token=s, id=int(t), kind=kind))
    return out


def prompt_embeddings(pipe: Any, prompts: str | Sequence[str]) -> dict:
    """Text-encoder outputs for prompts, as the U-Net gets them (via `explainer.trace.encode_prompts`):
    {"hidden": (n, L, D) (encoders concatenated, as SDXL feeds them), "pooled": (n, P) (the last encoder's pooled
    vector: the end-of-text state CLIP compares with images), "tokens": [[str, ...], ...], "n_real": [...]}, numpy.
    """
    from .trace import encode_prompts

    prompts = [prompts] if isinstance(prompts, str) else list(prompts)
    if not prompts or not all(isinstance(p, str) for p in prompts):
        raise ValueError("prompts must be a string or a non-empty list of strings")
    e = encode_prompts(pipe, prompts)
    hidden = torch.cat(list(e.hidden_states.values()), dim=-1)
    pooled = list(e.pooled.values())[-1] if e.pooled else e.mean_tokens()
    return dict(hidden=_numpy(hidden).astype(np.float32), pooled=_numpy(pooled).astype(np.float32),
                tokens=[[str(t) for t in toks] for toks in e.tokens], n_real=[int(m.sum()) for m in e.mask])


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
    colours = {"start": "#d9d9d9", "end": "#d9d9d9", "padding": "#f0f0f0", "word": "#c6dbef"}
    for i, t in enumerate(shown):
        ax.add_patch(FancyBboxPatch((i + 0.05, 0.25), 0.9, 0.5, boxstyle="round,pad=0.02,rounding_size=0.06",
                                    facecolor=colours[t["kind"]], edgecolor="#555555",
                                    linestyle="--" if t["kind"] == "padding" else "-"))
        label = t["token"] if len(t["token"]) <= 12 else t["token"][:11] + "\u2026"
        ax.text(i + 0.5, 0.56, label, ha="center", va="center", fontsize=10,
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


def cosine_similarity(a: Any, b: Any | None = None) -> np.ndarray:
    """Cosine similarity between the rows of a and b (b = a when omitted), rows flattened."""
    x = _numpy(a).reshape(len(a), -1).astype(np.float64)
    y = x if b is None else _numpy(b).reshape(len(b), -1).astype(np.float64)
    xn = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    yn = y / np.maximum(np.linalg.norm(y, axis=1, keepdims=True), 1e-12)
    return xn @ yn.T


def prompt_similarity(pipe: Any, prompts: Sequence[str], kind: str = "pooled") -> np.ndarray:
    """Cosine similarity matrix between prompts: kind="pooled" (CLIP's sentence vector) or "tokens" (the full
    token-by-dimension matrix the U-Net sees, flattened, padding included)."""
    if kind not in ("pooled", "tokens"):
        raise ValueError(f"kind must be 'pooled' or 'tokens', got {kind!r}")
    emb = prompt_embeddings(pipe, prompts)
    return cosine_similarity(emb["pooled"] if kind == "pooled" else emb["hidden"])


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


# ---------------------------------------------------------------------------------------------------------------------
# our CLIP pair: image <-> caption similarity (the contrastive objective made visible)


def load_clip(source: Any = None) -> Any:
    """The shipped model's `clip/` CLIPModel (text + vision). source: a pipeline loaded from a folder, a pipeline
    folder, or the clip folder itself; None = the shipped model."""
    from transformers import CLIPModel

    from .models import SHIPPED_MODEL

    if source is None:
        path = SHIPPED_MODEL
    elif isinstance(source, (str, Path)):
        path = Path(source)
    else:
        path = Path(getattr(source, "name_or_path", "") or "")
    folder = path if (path / "config.json").exists() and not (path / "model_index.json").exists() else path / "clip"
    if not (folder / "config.json").exists():
        raise FileNotFoundError(f"no CLIP model at {folder}: the shipped model keeps its CLIP pair in a `clip/` "
                                "subfolder; other pipelines have no image tower to compare with")
    return CLIPModel.from_pretrained(folder, torch_dtype=torch.float32).eval()


def clip_similarity(clip: Any, images: Any, captions: Sequence[str], tokenizer: Any = None) -> np.ndarray:
    """Cosine similarity (n_images, n_captions) between CLIP image and text embeddings.

    images: uint8 (n, h, w, 3) (as `shapes.make_dataset` returns) or PIL images; preprocessed as in training:
    float in [-1, 1], (n, 3, h, w). tokenizer: defaults to the pipeline tokenizer saved beside the clip folder.
    """
    if tokenizer is None:
        from transformers import AutoTokenizer

        folder = Path(getattr(clip, "name_or_path", "") or "")
        tokenizer = AutoTokenizer.from_pretrained(folder.parent / "tokenizer")
    arr = np.stack([to_rgb(im) for im in images]) if not isinstance(images, np.ndarray) else images
    if arr.dtype != np.uint8 or arr.ndim != 4:
        raise ValueError(f"images must be uint8 (n, h, w, 3), got {arr.dtype} {arr.shape}")
    pixels = torch.from_numpy(arr).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)
    ids = tokenizer(list(captions), padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                    return_tensors="pt")
    with torch.no_grad():
        img = clip.get_image_features(pixel_values=pixels)
        txt = clip.get_text_features(input_ids=ids.input_ids, attention_mask=ids.attention_mask)
    img = getattr(img, "pooler_output", img)
    txt = getattr(txt, "pooler_output", txt)
    return cosine_similarity(img, txt)


def plot_clip_similarity(clip: Any, images: Any, captions: Sequence[str], tokenizer: Any = None) -> Figure:
    """Images down the side, captions along the bottom, cosine similarity in the cells: training pulls the diagonal
    (matching pairs) up and pushes everything else down. Each row's best caption is outlined."""
    sim = clip_similarity(clip, images, captions, tokenizer)
    arr = np.stack([to_rgb(im) for im in images])
    n, m = sim.shape
    fig = _new_figure(2.5 + 1.15 * m, 2.0 + 0.75 * n)
    ax = fig.add_subplot()
    im = ax.imshow(sim, cmap=MAGNITUDE, vmin=-1, vmax=1, interpolation="nearest")
    for i in range(n):  # thumbnails in a column left of the matrix, in the same axes
        ax.imshow(arr[i], extent=(-1.45, -0.55, i + 0.45, i - 0.45), interpolation="nearest")
    ax.set_xlim(-1.5, m - 0.5)
    ax.set_ylim(n - 0.5, -0.5)
    ax.set_xticks(range(m), [_wrap(c, 14) for c in captions], fontsize=7.5)
    ax.set_yticks(range(n), [f"image {i}" for i in range(n)], fontsize=8)
    ax.set_xlabel("caption")
    ax.set_ylabel("image")
    for (i, j), v in np.ndenumerate(sim):
        ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=8, color="black" if v > 0.3 else "white")
    from matplotlib.patches import Rectangle

    for i, j in enumerate(sim.argmax(axis=1)):
        ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="#2ca25f", linewidth=2.2))
    fig.colorbar(im, ax=ax, label="cosine similarity (image \u00b7 caption)", shrink=0.8)
    acc = f"; the best caption is the right one for {(sim.argmax(axis=1) == np.arange(n)).mean():.0%} of images" \
        if n == m else ""
    fig.suptitle("CLIP: image \u2194 caption similarity. Training pulls matching pairs (the diagonal) together\n"
                 f"and pushes the rest apart. Green: each image's best caption{acc}", fontsize=11)
    return fig


# ---------------------------------------------------------------------------------------------------------------------
# noise schedules and the forward process


def _base_config(source: Any) -> Any:
    """A scheduler config from a pipeline, a scheduler or a config; None = Stable Diffusion's training schedule."""
    if source is None:
        from diffusers import DDPMScheduler

        return DDPMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear").config
    if hasattr(source, "scheduler"):
        return source.scheduler.config
    return getattr(source, "config", source)


def noise_schedule(name: str, source: Any = None, steps: int = 25) -> dict:
    """Timesteps and noise level of each U-Net call for scheduler `name` (a short name of `explainer.schedulers`).

    source: a pipeline / scheduler / scheduler config whose training schedule (betas) to use.
    Returns {"name", "timesteps", "sigma", "noise_level"} (numpy); noise_level = sqrt(1 - alpha_bar) =
    sigma / sqrt(1 + sigma^2): the share of the latent that is noise, 0 = clean, 1 = pure noise.
    """
    from .schedulers import make_scheduler

    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    sched = make_scheduler(name, _base_config(source))
    sched.set_timesteps(steps)
    ts = _numpy(sched.timesteps).astype(np.float64)
    sig = getattr(sched, "sigmas", None)
    if sig is not None and len(sig) == len(ts) + 1:
        sigma = _numpy(sig).astype(np.float64)[:-1]
    else:
        ac = _numpy(sched.alphas_cumprod).astype(np.float64)
        abar = ac[np.clip(ts.round().astype(int), 0, len(ac) - 1)]
        sigma = np.sqrt((1 - abar) / abar)
    return dict(name=name, timesteps=ts, sigma=sigma, noise_level=sigma / np.sqrt(1 + sigma ** 2))


def plot_noise_schedules(source: Any = None, names: Sequence[str] | None = None, steps: int = 25) -> Figure:
    """Noise level per U-Net call for several schedulers on one plot (left), and sigma on a log scale (right)."""
    from .schedulers import SCHEDULERS

    names = list(names) if names is not None else ["ddim", "euler", "dpm++2m", "dpm++2m_karras", "heun", "lcm"]
    fig = _new_figure(13, 4.8)
    ax, ax2 = fig.subplots(1, 2)
    markers = "os^Dvx*P"
    for i, n in enumerate(names):
        s = noise_schedule(n, source, steps)
        # second-order samplers call the U-Net more than once per step: spread those calls within their step
        x = np.arange(len(s["timesteps"])) * steps / len(s["timesteps"])
        label = f"{n} ({len(x)} U-Net calls)"
        ax.plot(x, s["noise_level"], marker=markers[i % len(markers)], markersize=3.5, label=label, linewidth=1.4)
        ax2.plot(x, s["sigma"], marker=markers[i % len(markers)], markersize=3.5, label=label, linewidth=1.4)
    ax.set_xlabel("step (denoising goes left to right; extra calls of 2nd-order samplers sit between steps)")
    ax.set_ylabel("noise level  \u221a(1\u2212\u0101) = \u03c3/\u221a(1+\u03c3\u00b2)")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("share of the latent that is noise")
    ax2.set_yscale("log")
    ax2.set_xlabel("step")
    ax2.set_ylabel("\u03c3 (noise / signal), log scale")
    ax2.grid(alpha=0.3, which="both")
    ax2.set_title("the same schedules as \u03c3: Karras spends more calls at low noise")
    unknown = [n for n in names if n not in SCHEDULERS]
    if unknown:
        raise ValueError(f"unknown scheduler names {unknown}; valid: {list(SCHEDULERS)}")
    fig.suptitle(f"Noise schedules: {steps} steps, the same training schedule (betas) under every sampler",
                 fontsize=12)
    return fig


def forward_process(image: Any, alphas_cumprod: Any, timesteps: Sequence[int], seed: int = 0) -> list[np.ndarray]:
    """x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps for each t, one eps from `seed` (pixels or latents, any shape).

    image: uint8 (h, w, 3) / PIL (then the result is in [-1, 1] pixel units) or a float array / tensor.
    """
    x0 = _numpy(image) if not hasattr(image, "convert") else np.asarray(image.convert("RGB"))
    x0 = x0.astype(np.float64) / 127.5 - 1.0 if x0.dtype == np.uint8 else x0.astype(np.float64)
    eps = np.random.default_rng(seed).standard_normal(x0.shape)
    ac = _numpy(alphas_cumprod).astype(np.float64)
    out = []
    for t in timesteps:
        if not 0 <= int(t) < len(ac):
            raise ValueError(f"timesteps must lie in [0, {len(ac) - 1}], got {t}")
        a = ac[int(t)]
        out.append(np.sqrt(a) * x0 + np.sqrt(1 - a) * eps)
    return out


def plot_forward_process(pipe: Any = None, image: Any = None, timesteps: Sequence[int] | None = None,
                         seed: int = 0, scale: int = 4) -> Figure:
    """A real image dissolving as t grows. Top: noise added to the pixels. Bottom (with a pipeline): noise added to
    the VAE latents, then decoded: the world the U-Net actually works in.

    image: PIL / uint8 array; None renders a shapes-world scene (seed `seed`). The training schedule comes from the
    pipeline's scheduler (Stable Diffusion's when pipe is None).
    """
    from .shapes import render, sample_scene

    if image is None:
        image = render(sample_scene(seed, two_object_p=1.0), size=32 * scale)
    rgb = to_rgb(image)
    ac = _numpy(getattr(pipe.scheduler, "alphas_cumprod", None) if pipe is not None else
                _base_config_scheduler_alphas())
    ts = list(timesteps) if timesteps is not None else [0, 50, 100, 200, 300, 500, 700, len(ac) - 1]
    pixel_rows = forward_process(rgb, ac, ts, seed)
    rows = [("pixels + noise", [((x.clip(-1, 1) + 1) * 127.5).round().astype(np.uint8) for x in pixel_rows])]
    if pipe is not None and getattr(pipe, "vae", None) is not None:
        vae = pipe.vae
        size = _latent_size(pipe, None, None)[1] * int(getattr(pipe, "vae_scale_factor", 8))
        from PIL import Image

        small = np.array(Image.fromarray(rgb).resize((size, size), Image.Resampling.BOX))
        x = torch.from_numpy(small).permute(2, 0, 1)[None].to(vae.dtype).div(127.5).sub(1).to(vae.device)
        sf = float(vae.config.scaling_factor)
        with torch.no_grad():
            z0 = vae.encode(x).latent_dist.mean * sf
            zs = forward_process(z0[0].float().cpu(), ac, ts, seed)
            dec = [vae.decode(torch.from_numpy(z).to(vae.dtype).to(vae.device)[None] / sf).sample for z in zs]
        rows.append(("latents + noise, decoded", [to_rgb(d) for d in dec]))
    n = len(ts)
    fig = _new_figure(1.75 * n + 0.6, 1.85 * len(rows) + 0.9)
    axes = np.atleast_2d(fig.subplots(len(rows), n))
    for r, (label, imgs) in enumerate(rows):
        for c, (t, im) in enumerate(zip(ts, imgs, strict=True)):
            ax = axes[r, c]
            ax.imshow(im, interpolation="nearest")
            _no_ticks(ax)
            if r == 0:
                ax.set_title(f"t = {t}\nnoise level {np.sqrt(1 - ac[int(t)]):.2f}", fontsize=9)
            if c == 0:
                ax.set_ylabel(label, fontsize=9)
    fig.suptitle("The forward process: x\u209c = \u221a\u0101\u209c\u00b7x\u2080 + "
                 "\u221a(1\u2212\u0101\u209c)\u00b7\u03b5 "
                 f"(one \u03b5, seed {seed}); training teaches the U-Net to undo it", fontsize=12)
    return fig


def _base_config_scheduler_alphas() -> Any:
    from diffusers import DDPMScheduler

    return DDPMScheduler.from_config(_base_config(None)).alphas_cumprod


# ---------------------------------------------------------------------------------------------------------------------
# projections: prompt embeddings, final latents, denoising trajectories


def _colours_for(labels: Sequence[Any]) -> tuple[list[Any], dict[Any, Any]]:
    """A colour per label; shape-world colour words get their own colour, other labels a tab10/tab20 colour."""
    from matplotlib import colormaps

    from .shapes import COLORS

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


def final_latents(traces: Sequence[Any]) -> np.ndarray:
    """The last latents (after the final step) of each trace, stacked: (n, c, h, w)."""
    return np.stack([_numpy(tr.steps[-1].latents_next)[0] if _numpy(tr.steps[-1].latents_next).ndim == 4
                     else _numpy(tr.steps[-1].latents_next) for tr in traces])


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


def trajectory(tr: Any, common_scale: bool = True) -> np.ndarray:
    """One trace's path through latent space: x_t before every step, then the final latents: (steps + 1, ...).

    Samplers keep x_t in one of two conventions: DDIM/DPM++ as sqrt(abar)·x0 + sqrt(1 - abar)·noise (spread ~1),
    Euler/Heun as x0 + sigma·noise (spread ~sigma, ~15 at the start). With `common_scale` the latter are divided by
    sqrt(sigma² + 1), which is exactly what their `scale_model_input` hands the U-Net, so paths of different samplers
    start at the same noise and can share one map.
    """
    steps = list(tr.steps)
    ve = _setting(tr, "latent_space") == "ve"
    lat = []
    for s in steps:
        x = _numpy(s.latents)
        lat.append(x / math.sqrt(float(s.sigma) ** 2 + 1) if (ve and common_scale) else x)
    lat.append(_numpy(steps[-1].latents_next))  # sigma 0: both conventions agree on the final latents
    return np.stack([x[0] if x.ndim == 4 else x for x in lat])


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
        labels = [f"seed {_setting(t, 'seed')} \u00b7 {_setting(t, 'scheduler')} \u00b7 {_setting(t, 'steps')} steps"
                  for t in traces]
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
    prompts = {_setting(t, "prompt") for t in traces}
    if len(prompts) == 1:
        title += f"\n\u201c{prompts.pop()}\u201d, CFG {_setting(traces[0], 'cfg')}"
    fig.suptitle(title + f" ({red.method.upper()}, random_state={red.random_state})", fontsize=12)
    return fig


# ---------------------------------------------------------------------------------------------------------------------
# a trace: filmstrip, CFG, attention


def _pick_steps(tr: Any, steps: Sequence[int] | None, n: int) -> list[int]:
    total = len(tr.steps)
    if steps is None:
        return sorted({round(x) for x in np.linspace(0, total - 1, min(n, total))})
    out = []
    for s in steps:
        if isinstance(s, bool) or not isinstance(s, (int, np.integer)) or not -total <= s < total:
            raise ValueError(f"steps must hold step indices in 0..{total - 1}, got {s!r}")
        out.append(int(s) % total)
    return out


def _step_label(tr: Any, i: int) -> str:
    st = tr.steps[i]
    return f"step {i + 1}/{len(tr.steps)}\nt={st.timestep:.0f}, \u03c3={st.sigma:.2f}"


def plot_filmstrip(tr: Any, steps: Sequence[int] | None = None, n: int = 6,
                   rows: Sequence[str] = ("latents", "noise_guided", "x0")) -> Figure:
    """Chosen steps side by side: the noisy latents x_t going in, the predicted noise, and the predicted clean image
    (x0 decoded by the VAE). Latent rows show the channels as tiles, blue < 0 < red, one colour scale per row.

    rows: any of "latents", "noise_guided", "noise_cond", "noise_uncond", "cfg_delta", "x0", "latents_next".
    """
    idx = _pick_steps(tr, steps, n)
    names = {"latents": "x\u209c (noisy latents in)", "noise_guided": "predicted noise \u03b5 (guided)",
             "noise_cond": "\u03b5 conditional", "noise_uncond": "\u03b5 unconditional",
             "cfg_delta": "CFG delta (cond \u2212 uncond)", "x0": "predicted x\u2080, decoded",
             "latents_next": "x\u209c\u208b\u2081 (latents out)"}
    for r in rows:
        if r not in names:
            raise ValueError(f"rows must be among {list(names)}, got {r!r}")
    fig = _new_figure(2.0 * len(idx) + 1.6, 2.1 * len(rows) + 1.0)
    axes = np.atleast_2d(fig.subplots(len(rows), len(idx), squeeze=False))
    for r, row in enumerate(rows):
        if row == "x0":
            for c, i in enumerate(idx):
                axes[r, c].imshow(to_rgb(tr.decode(i)), interpolation="nearest")
        else:
            data = [getattr(tr.steps[i], row) for i in idx]
            if any(d is None for d in data):
                raise ValueError(f"this trace has no {row!r} (cfg <= 1 makes no unconditional pass)")
            mos = [latent_mosaic(d) for d in data]
            lim = _sym_limit(*mos)
            for c, m in enumerate(mos):
                im = axes[r, c].imshow(m, cmap=DIVERGING, vmin=-lim, vmax=lim, interpolation="nearest")
            fig.colorbar(im, ax=axes[r, :].tolist(), shrink=0.85, pad=0.01, label="value")
        axes[r, 0].set_ylabel(_wrap(names[row], 16), fontsize=9)
        for c, i in enumerate(idx):
            _no_ticks(axes[r, c])
            if r == 0:
                axes[r, c].set_title(_step_label(tr, i), fontsize=9)
    _title(fig, "Denoising filmstrip (latent channels as tiles)", tr)
    return fig


def cfg_delta_norms(tr: Any) -> np.ndarray:
    """L2 norm of the CFG delta (cond \u2212 uncond) at every step; raises if the trace has no unconditional pass."""
    _need_uncond(tr)
    return np.array([float(torch.linalg.vector_norm(s.cfg_delta.float())) for s in tr.steps])


def cfg_delta_map(tr: Any, step: int) -> np.ndarray:
    """(h, w): the CFG delta's L2 norm over latent channels at each latent position, at `step`."""
    _need_uncond(tr)
    i = _pick_steps(tr, [step], 1)[0]
    return _numpy(torch.linalg.vector_norm(tr.steps[i].cfg_delta.float(), dim=0))


def _need_uncond(tr: Any) -> None:
    if not getattr(tr, "has_uncond", True) or tr.steps[0].cfg_delta is None:
        raise ValueError("this trace has no CFG delta: it was made with cfg <= 1, so the pipeline made no "
                         "unconditional pass; trace again with cfg > 1")


def _uncond_name(tr: Any) -> str:
    neg = _setting(tr, "negative_prompt")
    return f"negative \u201c{neg}\u201d" if neg else "unconditional (\u201c\u201d)"


def plot_cfg_delta_norm(tr: Any) -> Figure:
    """How hard the prompt pushes at each step: ||cond \u2212 uncond|| (left) and the same relative to
    ||uncond|| (right). The guided prediction is uncond + CFG \u00b7 delta."""
    norms = cfg_delta_norms(tr)
    unc = np.array([float(torch.linalg.vector_norm(s.noise_uncond.float())) for s in tr.steps])
    x = np.arange(1, len(norms) + 1)
    fig = _new_figure(12, 4.4)
    ax, ax2 = fig.subplots(1, 2)
    ax.plot(x, norms, marker="o", markersize=4, color="#d6604d", label="\u2016\u03b5 cond \u2212 \u03b5 uncond\u2016")
    ax.set_xlabel("step")
    ax.set_ylabel("L2 norm of the CFG delta")
    ax.set_title(f"delta vs {_uncond_name(tr)}", fontsize=10)
    ax.grid(alpha=0.3)
    ax.set_ylim(bottom=0)
    ax2.plot(x, norms / np.maximum(unc, 1e-12), marker="o", markersize=4, color="#4393c3")
    ax2.set_xlabel("step")
    ax2.set_ylabel("\u2016delta\u2016 / \u2016\u03b5 uncond\u2016")
    ax2.set_title("relative size (scaled by CFG in the guided prediction)", fontsize=10)
    ax2.grid(alpha=0.3)
    ax2.set_ylim(bottom=0)
    _title(fig, "Classifier-free guidance: how much the prompt changes the prediction, step by step", tr)
    return fig


def plot_cfg_delta_maps(tr: Any, steps: Sequence[int] | None = None, n: int = 6) -> Figure:
    """Where the prompt pushes: the CFG delta's norm over channels at each latent position, per chosen step, on one
    colour scale, with the final image for reference."""
    idx = _pick_steps(tr, steps, n)
    maps = [cfg_delta_map(tr, i) for i in idx]
    vmax = max(float(m.max()) for m in maps) or 1.0
    fig = _new_figure(2.1 * (len(idx) + 1) + 1.2, 3.4)
    axes = fig.subplots(1, len(idx) + 1)
    for ax, i, m in zip(axes, idx, maps, strict=False):
        im = ax.imshow(m, cmap=MAGNITUDE, vmin=0, vmax=vmax, interpolation="nearest")
        ax.set_title(_step_label(tr, i), fontsize=9)
        _no_ticks(ax)
    axes[0].set_ylabel("latent rows")
    axes[-1].imshow(to_rgb(tr.image), interpolation="nearest")
    axes[-1].set_title("final image", fontsize=9)
    _no_ticks(axes[-1])
    fig.colorbar(im, ax=axes[:-1].tolist(), shrink=0.8, pad=0.01, label="\u2016delta\u2016 over channels")
    _title(fig, f"Where the prompt pushes: CFG delta per latent position (vs {_uncond_name(tr)})", tr)
    return fig


def implied_x0(tr: Any, step: int, noise: Any) -> torch.Tensor:
    """The clean latents a noise prediction implies at `step` (epsilon-prediction models): the same formula the
    sampler uses, applied to one branch. VP latents: (x - sqrt(1-abar) eps) / sqrt(abar); VE (Euler/Heun): x - sigma
    eps. Other prediction types raise ValueError."""
    pred = _setting(tr, "prediction_type", "epsilon")
    if pred not in (None, "epsilon"):
        raise ValueError(f"implied_x0 supports epsilon-prediction models, this trace's model predicts {pred!r}")
    st = tr.steps[step]
    x, eps, sigma = st.latents.double(), torch.as_tensor(noise).double(), float(st.sigma)
    if _setting(tr, "latent_space", "vp") == "ve":
        return (x - sigma * eps).float()
    abar = 1.0 / (1.0 + sigma ** 2)
    return ((x - math.sqrt(1 - abar) * eps) / math.sqrt(abar)).float()


def _vae_decode(pipe: Any, latents: torch.Tensor) -> np.ndarray:
    vae = pipe.vae
    with torch.no_grad():
        img = vae.decode(latents[None].to(vae.device, vae.dtype) / vae.config.scaling_factor).sample
    return to_rgb(img)


def plot_cfg_branches(tr: Any, step: int | None = None, pipe: Any = None) -> Figure:
    """The two U-Net predictions at one step and what guidance makes of them: unconditional (or negative prompt),
    conditional, guided = uncond + CFG \u00b7 (cond \u2212 uncond), and the delta. With `pipe`, a second row decodes
    the clean image each prediction implies, so the effect of the prompt (and of CFG) is visible as pictures."""
    _need_uncond(tr)
    i = _pick_steps(tr, [step if step is not None else len(tr.steps) // 3], 1)[0]
    st = tr.steps[i]
    cfg = _setting(tr, "cfg", "?")
    cols = [(_uncond_name(tr), st.noise_uncond), ("conditional (the prompt)", st.noise_cond),
            (f"guided (CFG {cfg})", st.noise_guided), ("delta = cond \u2212 uncond", st.cfg_delta)]
    decode = pipe is not None and _setting(tr, "prediction_type", "epsilon") in (None, "epsilon")
    nrows = 2 if decode else 1
    fig = _new_figure(11.5, 2.6 * nrows + 0.9)
    axes = np.atleast_2d(fig.subplots(nrows, 4, squeeze=False))
    mos = [latent_mosaic(d) for _, d in cols[:3]]
    lim = _sym_limit(*mos)
    for c, ((name, _), m) in enumerate(zip(cols[:3], mos, strict=True)):
        im = axes[0, c].imshow(m, cmap=DIVERGING, vmin=-lim, vmax=lim, interpolation="nearest")
        axes[0, c].set_title(_wrap(name, 30), fontsize=10)
    fig.colorbar(im, ax=axes[0, :3].tolist(), shrink=0.8, pad=0.01, label="predicted noise")
    dm = latent_mosaic(st.cfg_delta)
    dl = _sym_limit(dm)
    im2 = axes[0, 3].imshow(dm, cmap=DIVERGING, vmin=-dl, vmax=dl, interpolation="nearest")
    axes[0, 3].set_title(cols[3][0], fontsize=10)
    fig.colorbar(im2, ax=axes[0, 3], shrink=0.8, pad=0.01, label="delta (own scale)")
    axes[0, 0].set_ylabel("U-Net output\n(channels as tiles)", fontsize=9)
    if decode:
        for c, (_, noise) in enumerate(cols[:3]):
            axes[1, c].imshow(_vae_decode(pipe, implied_x0(tr, i, noise)), interpolation="nearest")
        axes[1, 3].imshow(to_rgb(tr.image), interpolation="nearest")
        axes[1, 3].set_title("final image", fontsize=10)
        axes[1, 0].set_ylabel("implied clean image\n(x\u2080, decoded)", fontsize=9)
    for ax in axes.flat:
        _no_ticks(ax)
    _title(fig, f"CFG at {_step_label(tr, i).replace(chr(10), ', ')}", tr)
    return fig


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
    return _numpy(tr.attention(getattr(tok, "index", tok), step=step, level=level))


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
    when = "mean over steps" if step is None else _step_label(tr, _pick_steps(tr, [step], 1)[0]).replace("\n", ", ")
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
    idx = _pick_steps(tr, steps, n)
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


def plot_trace_embeddings(tr: Any, encoder: str | None = None, include_padding: int = 1) -> Figure:
    """The embeddings this trace's U-Net attended to: conditional (the prompt) and unconditional (empty or negative
    prompt), one row per token, one column per dimension."""
    emb = tr.text_embeddings
    name = encoder or next(iter(emb))
    cond, unc = emb[name]["cond"], emb[name]["uncond"]
    toks = list(tr.tokens)
    n = min(sum(1 for t in toks if not getattr(t, "padding", False)) + include_padding, len(toks))
    panels = [("prompt", _numpy(cond)[:n], [str(t) for t in toks[:n]])]
    if unc is not None:
        ntoks = list(getattr(tr, "negative_tokens", [])) or toks
        m = min(sum(1 for t in ntoks if not getattr(t, "padding", False)) + include_padding, len(ntoks))
        panels.append((_uncond_name(tr), _numpy(unc)[:m], [str(t) for t in ntoks[:m]]))
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
    _title(fig, "Text embeddings the U-Net attended to", tr)
    return fig
