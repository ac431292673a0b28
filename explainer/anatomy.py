"""The anatomy of a pipeline, read from its real components: parameter counts, the stages of one generation with
their shapes, and the U-Net's levels, channels, resolutions and skip connections."""

from __future__ import annotations

from typing import Any

import torch

from .generation import default_size, denoiser, denoiser_name
from .text import DEFAULT_PROMPT, text_pairs


def format_params(n: int) -> str:
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


def latent_shape(pipe: Any, height: int | None, width: int | None) -> tuple[int, int, int]:
    """(latent channels, latent h, latent w) the pipeline would use for this image size (None: its default size, as
    its family adapter gives it)."""
    factor = int(getattr(pipe, "vae_scale_factor", 8))
    dh, dw = default_size(pipe)
    return int(denoiser(pipe).config.in_channels), int(height or dh) // factor, int(width or dw) // factor


def torch_modules(pipe: Any) -> dict[str, torch.nn.Module]:
    comps = getattr(pipe, "components", {}) or {}
    return {k: v for k, v in comps.items() if isinstance(v, torch.nn.Module)}


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
    for tok_name, tok, enc_name, enc in text_pairs(pipe):
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
    c, h, w = latent_shape(pipe, height, width)
    den_name = denoiser_name(pipe)
    den = getattr(pipe, den_name)
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
                       note=f"decoder only ({format_params(count_params(vae))} with the encoder); "
                            f"\u00d7{factor} per side"))
    stages.append(dict(stage="pixels", component=None, cls="PIL.Image", params=0,
                       shape=(h * factor, w * factor, 3), dtype="uint8", note="clamp, scale to 0..255"))
    return stages


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
