"""All latent math in one place: which space a sampler's `sample` lives in, the noise level of each evaluation,
the clean latents x0 a prediction implies, and VAE decoding exactly as the pipelines do it.

Latent spaces (the x_t a scheduler's `step` receives):
  * "vp"   (DDIM, DDPM, PNDM, DPM++, LCM):  x_t = a*x0 + b*eps, a = 1/sqrt(1+s^2), b = s*a   (s = k-diffusion sigma)
  * "ve"   (Euler, Heun, LMS, KDPM2, ...):  x_t = x0 + s*eps   (the pipeline divides the denoiser input by sqrt(s^2+1))
  * "flow" (FlowMatchEuler/Heun: SD3, Flux): x_t = (1 - s)*x0 + s*eps, the model predicts v = eps - x0
           (so x0 = x_t - s*v), s in [0, 1]
Prediction types: "epsilon", "v_prediction", "sample", "flow_prediction" (flow matching's v).

VAE decoding honours what real pipelines do: `force_upcast` (fp16 VAEs decode in fp32), `latents_mean`/`latents_std`
(SDXL-style per-channel normalisation) and `shift_factor` (SD3 / Flux: z = x / scaling_factor + shift_factor).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

# Schedulers whose `sample` lives in "VE" space, x = x0 + sigma * eps (k-diffusion style).
VE_SCHEDULERS = {"EulerDiscreteScheduler", "EulerAncestralDiscreteScheduler", "HeunDiscreteScheduler",
                 "LMSDiscreteScheduler", "KDPM2DiscreteScheduler", "KDPM2AncestralDiscreteScheduler",
                 "DPMSolverSDEScheduler"}
SPACES = ("vp", "ve", "flow")


def latent_space(scheduler: Any) -> str:
    """"vp", "ve" or "flow" for a scheduler object (see the module docstring)."""
    name = type(scheduler).__name__
    cfg = getattr(scheduler, "config", {}) or {}
    if name.startswith("FlowMatch") or cfg.get("prediction_type") == "flow_prediction" or cfg.get("use_flow_sigmas"):
        return "flow"
    return "ve" if name in VE_SCHEDULERS else "vp"


def prediction_type(scheduler: Any) -> str:
    """What the denoiser predicts for this scheduler ("flow_prediction" for flow matching)."""
    if latent_space(scheduler) == "flow":
        return "flow_prediction"
    return scheduler.config.get("prediction_type", "epsilon") or "epsilon"


def eval_sigmas(scheduler: Any, timesteps: list[float], step_indices: list[int | None]) -> torch.Tensor:
    """The noise level s of each denoiser evaluation, in the scheduler's own space (float64).

    Taken from the scheduler's own sigma table where it has one (`sigmas[step_index]` before the step; `step_index`
    is read after the step, hence -1). Otherwise: VP/VE from alphas_cumprod at the timestep,
    s = sqrt((1 - alpha_bar) / alpha_bar) (k-diffusion's sigma); flow matching from t / num_train_timesteps.
    """
    sig = getattr(scheduler, "sigmas", None)
    space = latent_space(scheduler)
    ac = None if space == "flow" else scheduler.alphas_cumprod.double().cpu()
    n_train = float(scheduler.config.get("num_train_timesteps", 1000))
    out = []
    for t, idx in zip(timesteps, step_indices, strict=True):
        if sig is not None and idx is not None and 0 < idx <= len(sig):
            out.append(float(sig[idx - 1]))
        elif space == "flow":
            out.append(float(t) / n_train)
        else:
            a = ac[min(max(int(round(t)), 0), len(ac) - 1)]
            out.append(float(((1 - a) / a).sqrt()))
    return torch.tensor(out, dtype=torch.float64)


def x0_from(space: str, kind: str, sample: torch.Tensor, model_output: torch.Tensor,
            sigmas: torch.Tensor) -> torch.Tensor:
    """Predicted clean latents x0, batched over dim 0 (one sigma per row), computed in float64.

    VE:   x0 = x - s*eps (epsilon)  |  x/(s^2+1) - v*s/sqrt(s^2+1) (v-prediction)
    VP:   x0 = (x - b*eps)/a        |  a*x - b*v                  with a = 1/sqrt(1+s^2), b = s*a
    flow: x0 = x - s*v              (flow_prediction; v = eps - x0)
    "sample": the prediction is x0 itself.
    """
    if space not in SPACES:
        raise ValueError(f"space must be one of {list(SPACES)}, got {space!r}")
    x, e = sample.double(), model_output.double()
    s = sigmas.double().view(-1, *([1] * (x.ndim - 1)))
    if kind == "sample":
        x0 = e
    elif space == "flow" or kind == "flow_prediction":
        x0 = x - s * e
    elif kind not in ("epsilon", "v_prediction"):
        raise ValueError(f"prediction type must be epsilon, v_prediction, sample or flow_prediction, got {kind!r}")
    elif space == "ve":
        x0 = x - s * e if kind == "epsilon" else x / (s**2 + 1) - e * s / (s**2 + 1).sqrt()
    else:
        a = 1 / (1 + s**2).sqrt()
        x0 = (x - s * a * e) / a if kind == "epsilon" else a * x - s * a * e
    return x0.to(sample.dtype)


def predict_x0(scheduler: Any, sample: torch.Tensor, model_output: torch.Tensor, sigmas: torch.Tensor) -> torch.Tensor:
    """x0 for a scheduler object (its space and prediction type). LCM's own `denoised` also applies its boundary
    condition c_skip*x_t + c_out*x0; this is the plain x0."""
    return x0_from(latent_space(scheduler), prediction_type(scheduler), sample, model_output, sigmas)


def to_vae_scale(latents: torch.Tensor, sigma: float, space: str) -> torch.Tensor:
    """Noisy latents on the scale the VAE expects: VE latents x0 + s*eps are divided by sqrt(s^2+1) (as
    scale_model_input does); VP and flow latents already are."""
    return latents / float(np.sqrt(sigma**2 + 1)) if space == "ve" else latents


def vae_input(vae: Any, latents: torch.Tensor) -> torch.Tensor:
    """Denoiser-scale latents -> what `vae.decode` takes, as the pipelines compute it (in the latents' dtype)."""
    cfg = vae.config
    mean, std = getattr(cfg, "latents_mean", None), getattr(cfg, "latents_std", None)
    if mean is not None and std is not None:
        mean = torch.tensor(mean, device=latents.device, dtype=latents.dtype).view(1, -1, 1, 1)
        std = torch.tensor(std, device=latents.device, dtype=latents.dtype).view(1, -1, 1, 1)
        return latents * std / cfg.scaling_factor + mean
    z = latents / cfg.scaling_factor
    shift = getattr(cfg, "shift_factor", None)
    return z + shift if shift is not None else z


def encode(pipe: Any, pixels: torch.Tensor, batch: int | None = None) -> torch.Tensor:
    """VAE-range pixels (B, 3, H, W) in [-1, 1] -> denoiser-scale latents (the posterior mean, float32 on the CPU):
    the inverse of `vae_input` ((z - mean) * scale / std, or (z - shift) * scale)."""
    vae = pipe.vae
    cfg = vae.config
    step = batch or max(len(pixels), 1)
    outs = []
    with torch.no_grad():
        for i in range(0, len(pixels), step):
            outs.append(vae.encode(pixels[i:i + step].to(vae.device, vae.dtype)).latent_dist.mean.float().cpu())
    z = torch.cat(outs)
    mean, std = getattr(cfg, "latents_mean", None), getattr(cfg, "latents_std", None)
    if mean is not None and std is not None:
        return (z - torch.tensor(mean).view(1, -1, 1, 1)) * cfg.scaling_factor / torch.tensor(std).view(1, -1, 1, 1)
    shift = getattr(cfg, "shift_factor", None)
    return ((z - shift) if shift is not None else z) * cfg.scaling_factor


def decode(pipe: Any, latents: torch.Tensor, batch: int | None = None) -> torch.Tensor:
    """Denoiser-scale latents (B, C, h, w) -> the VAE's image tensor (B, 3, H, W) in [-1, 1] (unclamped), in the
    VAE's dtype and on its device, exactly as the pipeline decodes (fp16 VAEs with force_upcast decode in fp32)."""
    vae = pipe.vae
    cfg = vae.config
    dtype = torch.float32 if vae.dtype == torch.float16 and getattr(cfg, "force_upcast", False) else vae.dtype
    saved_dtype = vae.dtype
    outs = []
    try:
        if dtype != saved_dtype:
            vae.to(dtype)
        step = batch or max(len(latents), 1)
        with torch.no_grad():
            for i in range(0, len(latents), step):
                lat = vae_input(vae, latents[i:i + step].to(device=vae.device, dtype=dtype))
                outs.append(vae.decode(lat, return_dict=False)[0])
    finally:
        if vae.dtype != saved_dtype:
            vae.to(saved_dtype)
    return torch.cat(outs)


def decode_pil(pipe: Any, latents: torch.Tensor) -> list:
    """Decoded PIL images, through the pipeline's own image processor (bit-identical to its output)."""
    return pipe.image_processor.postprocess(decode(pipe, latents), output_type="pil")


# --------------------------------------------------------------------------------------------- pixels <-> uint8
# The one place pixels in [-1, 1] (what the VAE reads and writes) and uint8 images meet: x = u / 127.5 - 1 and
# u = round((clip(x, -1, 1) + 1) * 127.5), half to even. Everything else (the views, the judge's helpers, CLIP,
# the experiments, training) converts through these two.
def to_uint8(images: torch.Tensor | np.ndarray, channels_first: bool = True) -> np.ndarray:
    """Pixels in [-1, 1] -> uint8: a VAE image batch (B, 3, H, W) gives (B, H, W, 3); channels_first=False keeps the
    layout (any shape). Computed in float32 (float64 input stays float64), on the CPU."""
    x = torch.as_tensor(images)
    x = x.cpu() if x.dtype == torch.float64 else x.float().cpu()
    out = ((x.clamp(-1, 1) + 1) * 127.5).round().byte()
    # C-contiguous: a permuted view's buffer is not in (B, H, W, 3) order, and writers of raw buffers (safetensors)
    # would store the pixels scrambled
    return np.ascontiguousarray((out.permute(0, 2, 3, 1) if channels_first else out).numpy())


def to_pixels(images: Any, dtype: torch.dtype = torch.float32, channels_first: bool = True) -> torch.Tensor:
    """uint8 images (B, H, W, 3) or PIL images -> pixels in [-1, 1], (B, 3, H, W) in `dtype` (the inverse of
    `to_uint8`); channels_first=False keeps the layout of a uint8 array (any shape)."""
    if isinstance(images, np.ndarray):
        arr = np.ascontiguousarray(images) if images.flags.writeable else images.copy()
    else:
        arr = np.stack([np.asarray(im.convert("RGB") if hasattr(im, "convert") else im) for im in images])
    x = torch.from_numpy(arr)
    return (x.permute(0, 3, 1, 2) if channels_first else x).to(dtype).div(127.5).sub(1.0)
