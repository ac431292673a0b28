"""Random-weight pipelines whose denoiser blocks have the real widths of SD 1.5, SDXL, SD3-medium and Flux-dev.

Shared by benchmarks/trace_overhead.py (`--model real`), benchmarks/peer_attention_maps.py (`--width real`) and
benchmarks/gpu_check.py (`depth="full"`). No download: every part is built from a config with random weights.

What is real and what is not:
  * the denoiser's attention blocks: real widths, heads and head sizes, real query counts, real text lengths
    (CLIP 77; T5 256 for SD3, 512 for Flux, as the pipelines pad), the family's real processors;
  * depth: `depth="few"` keeps a few blocks so a CPU can run them (SD 1.5: its 64x64 and 32x32 levels, one layer per
    block; SDXL: its 64x64 level (640 wide, 10 heads, 2048-d text); SD3-medium: 2 joint blocks; Flux-dev: 1 double +
    1 single block); `depth="full"` builds the whole denoiser (SD 1.5's and SDXL's U-Nets, SD3-medium's 24 blocks,
    Flux-dev's 19 + 38), which needs a GPU;
  * the VAE is a 2x one (so 128 px images give the 64x64 latents of SD 1.5 at 512 px and 1,024 image tokens for
    SD3/Flux; `depth="full"` uses 8x VAEs and the families' real image sizes); the text encoders are 1-2 layers at
    the width the denoiser reads (their cost is outside the denoising loop and outside what tracing adds).
"""

from __future__ import annotations

from typing import Any

import torch

FAMILIES = ("sd15", "sdxl", "sd3", "flux")
LABELS = {"sd15": "SD 1.5 U-Net", "sdxl": "SDXL U-Net level", "sd3": "SD3-medium blocks",
          "flux": "Flux-dev double + single"}
# full-size runs the projections are made for: (image side px, steps, attention groups kept per step)
FULL = {"sd15": (512, 50), "sdxl": (1024, 40), "sd3": (1024, 28), "flux": (1024, 28)}


def _clip(tok: Any, hidden: int, layers: int = 1, projection: int | None = None):
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    cfg = CLIPTextConfig(vocab_size=len(tok), hidden_size=hidden, intermediate_size=2 * hidden,
                         num_hidden_layers=layers, num_attention_heads=max(1, hidden // 64),
                         max_position_embeddings=tok.model_max_length, projection_dim=projection or hidden,
                         bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    return (CLIPTextModelWithProjection(cfg) if projection else CLIPTextModel(cfg)).eval()


def _vae(factor: int, latent_channels: int = 4, flow: bool = False):
    from diffusers import AutoencoderKL

    n = {2: 2, 8: 4}[factor]
    extra = dict(shift_factor=0.0609, use_quant_conv=False, use_post_quant_conv=False) if flow else {}
    return AutoencoderKL(in_channels=3, out_channels=3, latent_channels=latent_channels,
                         block_out_channels=(8, 16, 16, 16)[:n], down_block_types=("DownEncoderBlock2D",) * n,
                         up_block_types=("UpDecoderBlock2D",) * n, layers_per_block=1, norm_num_groups=4,
                         sample_size=64, **extra).eval()


def _tokenizers():
    from explainer import testing

    return testing.word_tokenizer(pad=None, max_tokens=77), testing.word_tokenizer(pad="!", max_tokens=77)


def build(family: str, depth: str = "few", device: str = "cpu", dtype: torch.dtype = torch.float32) -> Any:
    """A pipeline of `family` (sd15, sdxl, sd3, flux) at real widths; `depth` "few" (CPU) or "full" (GPU)."""
    if family not in FAMILIES or depth not in ("few", "full", "tiny"):
        raise ValueError(f"family must be one of {FAMILIES} and depth 'few', 'full' or 'tiny', got {family!r}, "
                         f"{depth!r}")
    torch.manual_seed(0)
    with torch.device(device):
        pipe = {"sd15": _sd15, "sdxl": _sdxl, "sd3": _sd3, "flux": _flux}[family](depth)
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device=device) if dtype == torch.float32 else pipe.to(device=device, dtype=dtype)


def _sd15(depth: str):
    from diffusers import DPMSolverMultistepScheduler, StableDiffusionPipeline, UNet2DConditionModel

    tok, _ = _tokenizers()
    if depth == "full":
        unet = UNet2DConditionModel(sample_size=64, cross_attention_dim=768)  # otherwise the defaults: SD 1.5
    else:
        w = (320, 640) if depth == "few" else (32, 64)
        unet = UNet2DConditionModel(sample_size=64, block_out_channels=w, layers_per_block=1,
                                    down_block_types=("CrossAttnDownBlock2D",) * 2,
                                    up_block_types=("CrossAttnUpBlock2D",) * 2,
                                    cross_attention_dim=768 if depth == "few" else 32,
                                    attention_head_dim=8 if depth == "few" else 4,
                                    norm_num_groups=32 if depth == "few" else 8)
    sched = DPMSolverMultistepScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                        steps_offset=1)
    text = _clip(tok, unet.config.cross_attention_dim)
    return StableDiffusionPipeline(vae=_vae(8 if depth == "full" else 2), text_encoder=text, tokenizer=tok,
                                   unet=unet.eval(), scheduler=sched, safety_checker=None, feature_extractor=None,
                                   image_encoder=None, requires_safety_checker=False)


def _sdxl(depth: str):
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel

    tok1, tok2 = _tokenizers()
    d1, d2 = (768, 1280) if depth != "tiny" else (16, 16)
    common = dict(cross_attention_dim=d1 + d2, addition_embed_type="text_time", addition_time_embed_dim=256,
                  projection_class_embeddings_input_dim=256 * 6 + 32, use_linear_projection=True)
    if depth == "full":  # SDXL's U-Net
        unet = UNet2DConditionModel(sample_size=128, block_out_channels=(320, 640, 1280),
                                    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
                                    up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
                                    transformer_layers_per_block=(1, 2, 10), attention_head_dim=(5, 10, 20),
                                    **common)
    else:  # its 640-wide level at 4,096 queries (64x64, as at 1024 px), one transformer layer per block
        w = 640 if depth == "few" else 32
        unet = UNet2DConditionModel(sample_size=64, block_out_channels=(w,), layers_per_block=1,
                                    down_block_types=("CrossAttnDownBlock2D",), up_block_types=("CrossAttnUpBlock2D",),
                                    mid_block_type=None, attention_head_dim=10 if depth == "few" else 4,
                                    norm_num_groups=32 if depth == "few" else 8, **common)
    sched = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                   steps_offset=1)
    return StableDiffusionXLPipeline(vae=_vae(8 if depth == "full" else 2), text_encoder=_clip(tok1, d1),
                                     text_encoder_2=_clip(tok2, d2, projection=32), tokenizer=tok1, tokenizer_2=tok2,
                                     unet=unet.eval(), scheduler=sched)


def _t5(tok: Any, d_model: int):
    from transformers import T5Config, T5EncoderModel

    return T5EncoderModel(T5Config(vocab_size=len(tok), d_model=d_model, d_ff=2 * d_model, d_kv=8, num_layers=1,
                                   num_heads=4, relative_attention_num_buckets=8, pad_token_id=0,
                                   eos_token_id=1)).eval()


def _sd3(depth: str):
    from diffusers import FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel, StableDiffusion3Pipeline

    from explainer import testing

    tok1, tok2 = _tokenizers()
    tok3 = testing.t5_unigram_tokenizer(max_length=256)
    heads, layers = {"full": (24, 24), "few": (24, 2), "tiny": (2, 1)}[depth]
    head_dim = 64 if depth != "tiny" else 8
    transformer = SD3Transformer2DModel(
        sample_size=128 if depth == "full" else 64, patch_size=2, in_channels=16 if depth == "full" else 4,
        out_channels=16 if depth == "full" else 4, num_layers=layers, attention_head_dim=head_dim,
        num_attention_heads=heads, joint_attention_dim=64, caption_projection_dim=heads * head_dim,
        pooled_projection_dim=64, pos_embed_max_size=192 if depth == "full" else 96).eval()
    return StableDiffusion3Pipeline(
        transformer=transformer, scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
        vae=_vae(8 if depth == "full" else 2, 16 if depth == "full" else 4, flow=True),
        text_encoder=_clip(tok1, 32, projection=32), tokenizer=tok1, text_encoder_2=_clip(tok2, 32, projection=32),
        tokenizer_2=tok2, text_encoder_3=_t5(tok3, 64), tokenizer_3=tok3)


def _flux(depth: str):
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel

    from explainer import testing

    tok1, _ = _tokenizers()
    tok2 = testing.t5_unigram_tokenizer(max_length=512)
    double, single = {"full": (19, 38), "few": (1, 1), "tiny": (1, 1)}[depth]
    heads, dim, rope = (24, 128, (16, 56, 56)) if depth != "tiny" else (2, 16, (4, 4, 8))
    transformer = FluxTransformer2DModel(
        patch_size=1, in_channels=64 if depth == "full" else 16, num_layers=double, num_single_layers=single,
        attention_head_dim=dim, num_attention_heads=heads, joint_attention_dim=32, pooled_projection_dim=32,
        guidance_embeds=True, axes_dims_rope=rope).eval()
    scheduler = FlowMatchEulerDiscreteScheduler(use_dynamic_shifting=True, base_shift=0.5, max_shift=1.15,
                                                base_image_seq_len=256, max_image_seq_len=4096)
    return FluxPipeline(scheduler=scheduler,
                        vae=_vae(8 if depth == "full" else 2, 16 if depth == "full" else 4, flow=True),
                        text_encoder=_clip(tok1, 32), tokenizer=tok1, text_encoder_2=_t5(tok2, 32), tokenizer_2=tok2,
                        transformer=transformer)


def image_size(family: str, depth: str) -> int:
    """The image side that gives the family's real query count: 128 px with the 2x VAE (64x64 latents: SD 1.5 at
    512 px, SDXL's 64x64 level, 1,024 SD3/Flux image tokens); the real size with the full-depth 8x VAE."""
    return FULL[family][0] if depth == "full" else (128 if depth == "few" else 32)


def sampler(family: str) -> str:
    return {"sd15": "dpm++2m", "sdxl": "euler", "sd3": "flow_euler", "flux": "flow_euler"}[family]


def projected_attention_bytes(family: str, tr: Any, steps_run: int) -> dict[str, float]:
    """Full-size attention bytes projected from a trace's measured maps: bytes per query per kept column
    (fp16 = 2) times the full-size query counts, groups and steps. Returns {"kept": bytes with the columns this
    trace keeps, "all_tokens": bytes had every text position been kept (the old layout)}."""
    cols = tr._t[f"attention.{tr.levels[0]}"].shape[-1]
    n_tok = len(tr.tokens)
    side, steps = FULL[family]
    lat = side // 8
    if family == "sd15":  # 4 levels: 64, 32, 16, 8 (pooled to 64 per side at most)
        queries = sum((lat // 2 ** i) ** 2 for i in range(4))
    elif family == "sdxl":  # attention at the 64x64 and 32x32 levels (1024 px)
        queries = (lat // 2) ** 2 + (lat // 4) ** 2
    elif family == "sd3":  # 24 joint blocks at 64x64 patches, pooled to 64 per side
        queries = 24 * (lat // 2) ** 2
    else:  # 19 double + 38 single blocks at 64x64 packed tokens
        queries = 57 * (lat // 2) ** 2
    return {"kept": queries * cols * 2 * steps, "all_tokens": queries * n_tok * 2 * steps}


class PeakRSS:
    """Peak resident set of this process while a block runs, sampled every `every` s from /proc (Linux; elsewhere
    None): `with PeakRSS() as p: ...; p.increase` = the peak minus the resident set before. No fork involved (a fork
    of a process whose torch thread pool has started can hang)."""

    def __init__(self, every: float = 0.005):
        self.every, self.increase = every, None

    @staticmethod
    def rss() -> int | None:
        try:
            with open("/proc/self/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            return None
        return None

    def __enter__(self):
        import threading

        self._base = self.rss()
        self._peak = self._base
        self._stop = threading.Event()

        def watch():
            while not self._stop.is_set():
                r = self.rss()
                if r is not None and (self._peak is None or r > self._peak):
                    self._peak = r
                self._stop.wait(self.every)

        self._thread = threading.Thread(target=watch, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        r = self.rss()
        if r is not None and self._peak is not None:
            self._peak = max(self._peak, r)
        self.increase = None if self._base is None else self._peak - self._base
        return False
