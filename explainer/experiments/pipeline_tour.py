"""Lesson 1: the whole machine, written out by hand.

`run_by_hand` repeats what `StableDiffusionPipeline.__call__` does, one visible stage at a time (tokenize, encode,
draw noise, U-Net x N with classifier-free guidance, scheduler steps, VAE decode), records the shape, parameter count
and time of every stage, and checks that the hand-made image equals the pipeline's own.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..generation import run_pipeline, seed_generator


def _params(module: Any) -> int:
    return int(sum(p.numel() for p in module.parameters())) if isinstance(module, torch.nn.Module) else 0


@dataclass
class Tour:
    """What one hand-made generation went through."""

    prompt: str
    seed: int
    steps: int
    cfg: float
    stages: list[dict] = field(default_factory=list)  # stage, shape, params, seconds, note
    tokens: list[str] = field(default_factory=list)
    image: Any = None  # PIL image made by hand
    pipeline_image: Any = None  # PIL image made by pipe(...)
    max_pixel_difference: int = 0  # |hand - pipeline|, 0..255
    unet_calls: int = 0
    noise_std: float = 0.0  # of the starting latents: pure Gaussian noise has std 1
    final_std: float = 0.0  # of the final latents
    latent_norms: list[float] = field(default_factory=list)  # ||x_t|| before each step and after the last

    def table(self) -> str:
        """The stages as a fixed-width text table."""
        rows = [f"{'stage':<24}{'output shape':<18}{'parameters':>12}{'time':>9}  note"]
        for s in self.stages:
            shape = "x".join(str(d) for d in s["shape"])
            params = f"{s['params']:,}" if s["params"] else "-"
            rows.append(f"{s['stage']:<24}{shape:<18}{params:>12}{s['seconds'] * 1000:>7.0f}ms  {s['note']}")
        return "\n".join(rows)


@torch.no_grad()
def run_by_hand(pipe: Any, prompt: str = "a large red circle on the left", seed: int = 0, steps: int = 25,
                cfg: float = 7.5, compare: bool = True) -> Tour:
    """Generate one image by calling the pipeline's parts ourselves, and (compare=True) the pipeline as a whole."""
    tour = Tour(prompt, seed, steps, cfg)
    tok, enc, unet, vae, sched = pipe.tokenizer, pipe.text_encoder, pipe.unet, pipe.vae, pipe.scheduler
    device = pipe.device

    def stage(name: str, shape: Any, params: int, t0: float, note: str) -> None:
        tour.stages.append(dict(stage=name, shape=tuple(shape), params=params, seconds=time.perf_counter() - t0,
                                note=note))

    # 1. text -> token ids (the prompt, and the empty prompt for the unconditional branch of CFG)
    t0 = time.perf_counter()
    ids = tok([prompt], padding="max_length", max_length=tok.model_max_length, truncation=True,
              return_tensors="pt").input_ids
    empty = tok([""], padding="max_length", max_length=tok.model_max_length, truncation=True,
                return_tensors="pt").input_ids
    n_real = int((ids[0] != tok.pad_token_id).sum())
    tour.tokens = tok.convert_ids_to_tokens(ids[0][:n_real].tolist())
    stage("token ids", ids.shape, 0, t0, f"{n_real} real tokens, padded to {ids.shape[1]}")

    # 2. token ids -> one vector per token
    t0 = time.perf_counter()
    cond = enc(ids.to(device))[0]
    uncond = enc(empty.to(device))[0]
    stage("text embeddings", cond.shape, _params(enc), t0, "one vector per token position")

    # 3. seed -> pure Gaussian noise in latent space
    t0 = time.perf_counter()
    shape = (1, unet.config.in_channels, unet.config.sample_size, unet.config.sample_size)
    latents = torch.randn(shape, generator=seed_generator(seed), dtype=cond.dtype).to(device)
    sched.set_timesteps(steps, device=device)
    latents = latents * sched.init_noise_sigma
    tour.noise_std = float(latents.std())
    stage("noise latents", latents.shape, 0, t0, f"seed {seed}, std {tour.noise_std:.2f}")

    # 4. the denoising loop: U-Net twice per step (without / with the text), guidance, scheduler step
    t0 = time.perf_counter()
    embeds = torch.cat([uncond, cond])
    for t in sched.timesteps:
        tour.latent_norms.append(float(latents.norm()))
        x_in = sched.scale_model_input(torch.cat([latents] * 2), t)
        eps_uncond, eps_cond = unet(x_in, t, encoder_hidden_states=embeds).sample.chunk(2)
        tour.unet_calls += 2
        eps = eps_uncond + cfg * (eps_cond - eps_uncond)
        latents = sched.step(eps, t, latents).prev_sample
    tour.latent_norms.append(float(latents.norm()))
    tour.final_std = float(latents.std())
    stage(f"U-Net x {steps} (x2 for CFG)", latents.shape, _params(unet), t0,
          f"{tour.unet_calls} U-Net calls, {type(sched).__name__}")

    # 5. latents -> pixels
    t0 = time.perf_counter()
    pixels = vae.decode(latents / vae.config.scaling_factor).sample
    stage("VAE decode", pixels.shape, _params(vae.decoder) + _params(vae.post_quant_conv), t0,
          f"x{pipe.vae_scale_factor} per side")
    tour.image = pipe.image_processor.postprocess(pixels, output_type="pil")[0]

    if compare:
        ref = run_pipeline(pipe, prompt, seed, steps, cfg)[0]
        tour.pipeline_image = ref
        diff = np.abs(np.asarray(ref, dtype=np.int16) - np.asarray(tour.image, dtype=np.int16))
        tour.max_pixel_difference = int(diff.max())
    return tour


def sigma_schedule(tr: Any) -> list[float]:
    """The noise level sigma at which each traced step starts (the scheduler's own schedule, as recorded)."""
    return [float(s.sigma) for s in tr.steps]


def verdicts(tour: Tour, tr: Any = None, written_loop_difference: int | None = None) -> list[Any]:
    """Lesson 1's claims as Verdicts: the start is pure Gaussian noise (std of the starting values, bootstrap interval
    over those values -- each is one independent draw -- must lie within 0.8..1.2), the hand-made loop equals
    pipe(...) bit for bit (`run_by_hand`'s, and the loop the lesson writes out in a cell when its largest pixel
    difference is given), two U-Net passes per step, and (with a trace `tr`) the noise level falls at every step."""
    from .. import verdicts as vd

    shape = next(s["shape"] for s in tour.stages if s["stage"] == "noise latents") if tour.stages else (1, 4, 8, 8)
    z = torch.randn(tuple(shape), generator=seed_generator(tour.seed)).flatten().numpy()
    rng = np.random.default_rng(0)
    boots = np.array([z[rng.integers(0, len(z), len(z))].std() for _ in range(2000)])
    iv = vd.Interval(float(z.std()), float(np.quantile(boots, 0.025)), float(np.quantile(boots, 0.975)))
    inside, outside = 0.8 <= iv.low and iv.high <= 1.2, iv.high < 0.8 or iv.low > 1.2
    size = "x".join(str(d) for d in np.asarray(tour.image).shape) if tour.image is not None else "?"
    out = [vd.Verdict("generation starts from pure Gaussian noise (standard deviation 1)",
                      vd.AGREES if inside else vd.DISAGREES if outside else vd.NOISE,
                      f"std of the starting latents = {iv.text(2)}, claim: within 0.8..1.2", f"{len(z)} values")]
    if written_loop_difference is not None:
        out.append(vd.exact("the loop written out in the lesson gives pipe(...)'s image bit for bit",
                            written_loop_difference == 0,
                            f"largest pixel difference {written_loop_difference} of 255", f"1 image ({size} values)"))
    out += [vd.exact("the hand-written loop gives pipe(...)'s image bit for bit", tour.max_pixel_difference == 0,
                     f"largest pixel difference {tour.max_pixel_difference} of 255", f"1 image ({size} values)"),
            vd.exact("classifier-free guidance costs two U-Net passes per step", tour.unet_calls == 2 * tour.steps,
                     f"{tour.unet_calls} passes for {tour.steps} steps", f"{tour.steps} steps")]
    if tr is not None:
        sig = sigma_schedule(tr)
        falls = all(b < a for a, b in zip(sig[:-1], sig[1:], strict=True))
        out.append(vd.exact("the noise level falls at every step", falls,
                            f"sigma {sig[0]:.2f} at step 1 -> {sig[-1]:.3f} at step {len(sig)}",
                            f"{len(sig)} steps of one run"))
    return out
