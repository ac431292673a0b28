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
    latents = torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=cond.dtype).to(device)
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
        ref = pipe(prompt, num_inference_steps=steps, guidance_scale=cfg,
                   generator=torch.Generator().manual_seed(seed)).images[0]
        tour.pipeline_image = ref
        diff = np.abs(np.asarray(ref, dtype=np.int16) - np.asarray(tour.image, dtype=np.int16))
        tour.max_pixel_difference = int(diff.max())
    return tour


def machine_figure(tour: Tour, pipe: Any = None) -> Any:
    """The whole machine as two lanes that meet in the loop: the text lane (prompt -> token ids -> embeddings) runs
    once and feeds every U-Net call; the image lane (seed -> noise latents -> [U-Net -> CFG -> scheduler] x N -> VAE
    -> image) carries the latents. Shapes and parameter counts come from the hand-made run `tour`."""
    from matplotlib.figure import Figure
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    st = {s["stage"].split(" (")[0].split(" x ")[0]: s for s in tour.stages}
    shape = lambda k: "\u00d7".join(str(d) for d in st[k]["shape"][1:])  # noqa: E731
    params = lambda k: f"{st[k]['params'] / 1e6:.2f} M params" if st[k]["params"] else "no parameters"  # noqa: E731
    fig = Figure(figsize=(10.5, 4.6), layout="constrained")
    ax = fig.add_subplot()
    ax.set_xlim(0, 10.5)
    ax.set_ylim(-0.05, 4.6)
    ax.axis("off")

    def box(x, y, w, h, title, body, colour):
        ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.03,rounding_size=0.08", facecolor=colour,
                                    edgecolor="#444444", linewidth=1.1))
        ax.text(x + w / 2, y + h - 0.12, title, ha="center", va="top", fontsize=9.5, weight="bold")
        ax.text(x + w / 2, y + h - 0.42, body, ha="center", va="top", fontsize=7.5, linespacing=1.35)

    def arrow(a, b, text="", colour="#444444", rad=0.0):
        ax.add_patch(FancyArrowPatch(a, b, arrowstyle="-|>", mutation_scale=12, color=colour, linewidth=1.3,
                                     connectionstyle=f"arc3,rad={rad}"))
        if text:
            ax.text((a[0] + b[0]) / 2, (a[1] + b[1]) / 2 + 0.08, text, ha="center", va="bottom", fontsize=7,
                    color=colour)

    blue, orange, red, green = "#dbe9f6", "#fde0c5", "#fcd5d4", "#d9f0d3"
    # text lane (runs once)
    ax.text(0.05, 4.45, "text lane: runs once per image", fontsize=8, color="#2166ac", style="italic", va="top")
    box(0.1, 3.05, 1.5, 1.15, "prompt", f"\u201c{tour.prompt}\u201d".replace(" on", "\non"), blue)
    box(2.0, 3.05, 1.6, 1.15, "tokenizer", f"token ids\n{shape('token ids')}\n{params('token ids')}", blue)
    box(4.0, 3.05, 1.9, 1.15, "text encoder", f"embeddings\n{shape('text embeddings')}\n"
        f"{params('text embeddings')}", blue)
    arrow((1.6, 3.62), (2.0, 3.62))
    arrow((3.6, 3.62), (4.0, 3.62))
    # image lane
    ax.text(0.05, 2.45, "image lane: the latents", fontsize=8, color="#b35806", style="italic", va="top")
    box(0.1, 0.75, 1.5, 1.3, "seed", f"noise latents\n{shape('noise latents')}\nstd {tour.noise_std:.2f}", orange)
    ax.add_patch(FancyBboxPatch((2.0, 0.3), 5.4, 2.3, boxstyle="round,pad=0.03,rounding_size=0.1",
                                facecolor="none", edgecolor="#b2182b", linewidth=1.5, linestyle="--"))
    ax.text(7.3, 2.45, f"the loop, \u00d7 {tour.steps} steps\n(t = timestep: how noisy x_t still is)", ha="right",
            va="top", fontsize=7.5, color="#b2182b")
    box(2.2, 0.75, 2.0, 1.3, "U-Net", f"predicts the noise in x_t\ncond + uncond (CFG)\n{params('U-Net')}", red)
    box(4.45, 0.75, 1.1, 1.3, "CFG", "uncond +\ns\u00b7(cond\u2212\nuncond)", red)
    box(5.8, 0.75, 1.4, 1.3, "scheduler", "x_t \u2192 x_t-1\nremoves some\nnoise", red)
    box(7.75, 0.75, 1.2, 1.3, "VAE", f"decode\n{params('VAE decode')}", green)
    box(9.2, 0.75, 1.2, 1.3, "image", f"{shape('VAE decode')}\npixels", green)
    arrow((1.6, 1.4), (2.2, 1.4), "x_T")
    arrow((4.2, 1.4), (4.45, 1.4))
    arrow((5.55, 1.4), (5.8, 1.4))
    arrow((6.5, 0.75), (3.2, 0.75), colour="#b2182b", rad=-0.3)
    ax.text(4.85, 0.12, "next x_t, next t", ha="center", fontsize=7, color="#b2182b")
    arrow((7.2, 1.55), (7.75, 1.55), "x_0")
    arrow((8.95, 1.4), (9.2, 1.4))
    # the text enters every U-Net call
    arrow((4.95, 3.05), (3.5, 2.05), colour="#2166ac")
    ax.text(4.5, 2.6, "embeddings of the prompt and of \u201c\u201d\nenter every U-Net call", ha="left", va="center",
            fontsize=7.5, color="#2166ac")
    name = getattr(pipe, "explainer_model_id", None) or "the shipped model" if pipe is not None else "the pipeline"
    fig.suptitle(f"The whole machine ({name}): the text is encoded once and enters the loop at every U-Net call; "
                 f"seed {tour.seed}, CFG {tour.cfg:g}", fontsize=10)
    return fig


def verdicts(tour: Tour, tr: Any = None) -> list[Any]:
    """Lesson 1's claims as Verdicts: the start is pure Gaussian noise (std of the 256 starting values, bootstrap
    interval, must lie within 0.8..1.2), the hand-made loop equals pipe(...) bit for bit, two U-Net passes per step,
    and (with a trace `tr`) whether the picture follows the prompt."""
    from .. import verdicts as vd
    from .guidance import running_example

    z = torch.randn((1, 4, 8, 8) if not tour.stages else next(s["shape"] for s in tour.stages
                                                                if s["stage"] == "noise latents"),
                    generator=torch.Generator().manual_seed(tour.seed)).flatten().numpy()
    rng = np.random.default_rng(0)
    boots = np.array([z[rng.integers(0, len(z), len(z))].std() for _ in range(2000)])
    iv = vd.Interval(float(z.std()), float(np.quantile(boots, 0.025)), float(np.quantile(boots, 0.975)))
    inside, outside = 0.8 <= iv.low and iv.high <= 1.2, iv.high < 0.8 or iv.low > 1.2
    out = [vd.Verdict("generation starts from pure Gaussian noise (standard deviation 1)",
                      vd.AGREES if inside else vd.DISAGREES if outside else vd.NOISE,
                      f"std of the starting latents = {iv.text(2)}, claim: within 0.8..1.2", f"{len(z)} values"),
           vd.exact("the hand-written loop gives pipe(...)'s image bit for bit", tour.max_pixel_difference == 0,
                    f"largest pixel difference {tour.max_pixel_difference} of 255", "1 image (32x32x3 values)"),
           vd.exact("classifier-free guidance costs two U-Net passes per step", tour.unet_calls == 2 * tour.steps,
                    f"{tour.unet_calls} passes for {tour.steps} steps", f"{tour.steps} steps")]
    if tr is not None:
        out.append(running_example(tr))
    return out
