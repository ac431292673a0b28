"""Figures that make a pipeline and a trace visible. Every function returns a `matplotlib.figure.Figure`.

Figures are pure functions of their inputs (a Trace, a pipeline, arrays): they never change a pipeline and never run
a generation. Figures made from a trace carry its prompt, seed, steps, CFG and scheduler in the title, so a PNG lifted
onto a slide still says what made it. Data functions beside the figures (`pipeline_summary`, `unet_anatomy`,
`cfg_delta_norms`, ...) return the numbers behind them, for lessons to print and tests to check.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

from . import projections

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


# ---------------------------------------------------------------------------------------------------------------------
# reading a Trace (duck-typed: the fields documented in issue #3)


def _setting(tr: Any, name: str, default: Any = None) -> Any:
    if hasattr(tr, name) and not callable(getattr(tr, name)):
        return getattr(tr, name)
    s = getattr(tr, "settings", None)
    if isinstance(s, dict):
        return s.get(name, default)
    return getattr(s, name, default)


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
    for (x0, y0), (x1, y1) in zip(path[:-1], path[1:]):
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
    for i, (t, s) in enumerate(zip(ids, tok.convert_ids_to_tokens(ids))):
        kind = "padding" if i >= n_real else "start" if t == tok.bos_token_id and i == 0 else \
            "end" if i == n_real - 1 and t == tok.eos_token_id else "word"
        out.append(dict(index=i, token=s, id=int(t), kind=kind))
    return out


def prompt_embeddings(pipe: Any, prompts: str | Sequence[str]) -> dict:
    """Run the (first) text encoder on prompts as the pipeline does: {"hidden": (n, L, D), "pooled": (n, P),
    "tokens": [[...], ...], "n_real": [...]} as numpy float32. "pooled" is the text encoder's pooled output (the
    end-of-text token's state), the vector CLIP compares with images.
    """
    prompts = [prompts] if isinstance(prompts, str) else list(prompts)
    if not prompts or not all(isinstance(p, str) for p in prompts):
        raise ValueError("prompts must be a string or a non-empty list of strings")
    _, tok, _, enc = _text_pairs(pipe)[0]
    batch = tok(prompts, padding="max_length", max_length=tok.model_max_length, truncation=True,
                return_tensors="pt")
    with torch.no_grad():
        out = enc(batch.input_ids.to(enc.device))
    hidden = out[0]
    pooled = getattr(out, "pooler_output", None)
    if pooled is None:
        pooled = getattr(out, "text_embeds", hidden[:, -1])
    return dict(hidden=_numpy(hidden).astype(np.float32), pooled=_numpy(pooled).astype(np.float32),
                tokens=[tok.convert_ids_to_tokens(ids) for ids in batch.input_ids.tolist()],
                n_real=[int(m.sum()) for m in batch.attention_mask])


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
    ax.set_xticks(range(m), [_wrap(c, 16) for c in captions], fontsize=7.5)
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
