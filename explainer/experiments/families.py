"""Lesson 12, model families: parameter counts per component of a loaded pipeline; a tiny Diffusion Transformer
(PixArt-alpha layout, built from a config with random weights, no download) beside our U-Net; and a table of facts
about widely used families with the sources they come from."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import torch

from ..anatomy import count_params

# Facts about widely used families. Denoiser = the network run at every step (U-Net or transformer).
# Sources are named so a reader can check them; numbers are as those sources state them.
FAMILIES: list[dict[str, str]] = [
    {"family": "Stable Diffusion 1.x (1.4, 1.5)", "year": "2022", "denoiser": "U-Net, 860 M",
     "text encoder": "CLIP ViT-L/14 text tower, 123 M", "native size": "512x512", "latents": "4x64x64 (VAE /8)",
     "source": "CompVis Stable Diffusion v1 model card and README ('860M UNet and 123M text encoder'); "
               "Rombach et al. 2022, High-Resolution Image Synthesis with Latent Diffusion Models"},
    {"family": "Stable Diffusion 2.x", "year": "2022", "denoiser": "U-Net, 865 M",
     "text encoder": "OpenCLIP ViT-H/14 text tower", "native size": "512 / 768", "latents": "4x96x96 at 768",
     "source": "Podell et al. 2023, SDXL paper, Table 1 (SD 2.0/2.1: 865M U-Net); stabilityai/stable-diffusion-2 "
               "model card"},
    {"family": "SDXL", "year": "2023", "denoiser": "U-Net, 2.6 B",
     "text encoder": "CLIP ViT-L + OpenCLIP ViT-bigG (817 M together)", "native size": "1024x1024",
     "latents": "4x128x128", "source": "Podell et al. 2023, SDXL: Improving Latent Diffusion Models for "
                                       "High-Resolution Image Synthesis (Table 1; '3x larger UNet')"},
    {"family": "DiT (ImageNet, class labels)", "year": "2022", "denoiser": "transformer, 675 M (DiT-XL/2)",
     "text encoder": "none: a class label", "native size": "256 / 512", "latents": "4x32x32 at 256",
     "source": "Peebles & Xie 2023, Scalable Diffusion Models with Transformers"},
    {"family": "PixArt-\u03b1", "year": "2023", "denoiser": "transformer (DiT + cross-attention), 0.6 B",
     "text encoder": "T5-XXL encoder", "native size": "up to 1024x1024", "latents": "4x128x128 at 1024",
     "source": "Chen et al. 2023, PixArt-\u03b1: Fast Training of Diffusion Transformer for Photorealistic "
               "Text-to-Image Synthesis; diffusers PixArt-\u03b1 docs"},
    {"family": "Stable Diffusion 3 / 3.5", "year": "2024", "denoiser": "MMDiT transformer: 2 B (Medium), 8 B (Large)",
     "text encoder": "CLIP ViT-L + OpenCLIP bigG + T5-XXL", "native size": "1024x1024",
     "latents": "16 channels (VAE /8)",
     "source": "Esser et al. 2024, Scaling Rectified Flow Transformers for High-Resolution Image Synthesis; Hugging "
               "Face blog 'Diffusers welcomes Stable Diffusion 3' (Medium: 2B); SD3 Medium model card"},
    {"family": "FLUX.1 (dev, schnell)", "year": "2024", "denoiser": "rectified-flow transformer, 12 B",
     "text encoder": "CLIP ViT-L + T5-XXL", "native size": "~1 megapixel, many ratios",
     "latents": "16 channels (VAE /8)",
     "source": "black-forest-labs FLUX.1 [dev] and [schnell] model cards ('a 12 billion parameter rectified flow "
               "transformer'); schnell is distilled for 1-4 steps"},
]


def component_params(pipe: Any) -> dict[str, tuple[str, int]]:
    """component name -> (class name, parameter count), for every component of the pipeline (0 for a tokenizer or
    scheduler, which hold no weights)."""
    out = {}
    for name, comp in pipe.components.items():
        if comp is None:
            continue
        out[name] = (type(comp).__name__, count_params(comp))
    return out


def params_table(pipe: Any) -> str:
    rows = component_params(pipe)
    total = sum(n for _, n in rows.values())
    lines = [f"{'component':<14} {'class':<30} {'parameters':>12} {'share':>6}", "-" * 66]
    for name, (cls, n) in rows.items():
        share = f"{100 * n / total:5.1f}%" if n else ""
        lines.append(f"{name:<14} {cls:<30} {n:>12,} {share:>6}")
    lines.append(f"{'total':<14} {'':<30} {total:>12,}")
    return "\n".join(lines)


def build_tiny_dit(pipe: Any, layers: int = 8, width: int = 256, heads: int = 4, patch: int = 1,
                   seed: int = 0) -> Any:
    """A PixArt-alpha pipeline (transformer denoiser, T5 text encoder) built from configs with random weights, using
    our VAE and tokenizer so its latents have the same shape as our U-Net's. It is untrained: it draws noise."""
    from diffusers import DPMSolverMultistepScheduler, PixArtAlphaPipeline, PixArtTransformer2DModel
    from transformers import T5Config, T5EncoderModel

    torch.manual_seed(seed)
    tok = pipe.tokenizer
    enc = T5EncoderModel(T5Config(vocab_size=len(tok), d_model=width, d_kv=width // heads, d_ff=2 * width,
                                  num_layers=2, num_heads=heads, pad_token_id=tok.pad_token_id,
                                  eos_token_id=tok.eos_token_id)).eval()
    latent = int(pipe.unet.config.sample_size)
    transformer = PixArtTransformer2DModel(
        num_attention_heads=heads, attention_head_dim=width // heads, in_channels=int(pipe.unet.config.in_channels),
        out_channels=2 * int(pipe.unet.config.out_channels), num_layers=layers, cross_attention_dim=width,
        sample_size=latent, patch_size=patch, caption_channels=width, norm_num_groups=32).eval()
    sched = DPMSolverMultistepScheduler.from_config(pipe.scheduler.config)
    dit = PixArtAlphaPipeline(tokenizer=tok, text_encoder=enc, vae=pipe.vae, transformer=transformer, scheduler=sched)
    dit.set_progress_bar_config(disable=True)
    return dit


@dataclass
class DitRun:
    params: dict[str, tuple[str, int]]
    unet_params: int
    transformer_params: int
    image: Any = field(repr=False)
    seconds: float = 0.0
    traced: bool = False
    trace_message: str = ""


def run_dit(dit: Any, unet_pipe: Any, prompt: str = "a red circle", seed: int = 0, steps: int = 10) -> DitRun:
    """Generate once with the tiny DiT pipeline, and try to trace it with ex.trace (the answer is reported)."""
    from ..trace import trace

    t0 = time.perf_counter()
    image = dit(prompt, num_inference_steps=steps, generator=torch.Generator().manual_seed(seed), guidance_scale=4.5,
                use_resolution_binning=False, max_sequence_length=int(dit.tokenizer.model_max_length)).images[0]
    dt = time.perf_counter() - t0
    traced, message = False, ""
    try:
        trace(dit, prompt, seed=seed, steps=2)
        traced, message = True, "ex.trace recorded the transformer pipeline"
    except NotImplementedError as err:
        message = str(err)
    return DitRun(component_params(dit), count_params(unet_pipe.unet), count_params(dit.transformer), image, dt,
                  traced, message)


def families_table() -> str:
    """The facts table as Markdown (sources in the last column)."""
    keys = ["family", "year", "denoiser", "text encoder", "native size", "source"]
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    for row in FAMILIES:
        lines.append("| " + " | ".join(row[k] for k in keys) + " |")
    return "\n".join(lines)
