"""Train the shapes-world GAN: `python -m explainer.train --stage gan`.

The GAN generates the same thing the diffusion U-Net generates: the shipped VAE's (scaled) 8x8x4 latents, decoded by
the same VAE decoder, from the same frozen text encoder's reading of the prompt, trained on the same rendered scenes
(seeds 0...59,999, half one-object, half two-object) with captions re-worded every time. Only the generator differs:
one network call instead of a 25-step denoising loop. The recipe is in `explainer.gan`'s docstring.

Learning rates are constant (standard for GANs), so a run stopped by --gan-minutes is the same trajectory as a shorter
--gan-steps run; the log records how many steps were done. Every --gan-eval-every steps the log also records judged
adherence (64 fixed unseen prompts) of the EMA and the raw generator, and the judged (position, size, background)
combos of 64 fixed latents for "a red circle" (mode coverage over training).
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..gan import (
    DEFAULT_TEXT,
    Discriminator,
    Generator,
    TextConditioner,
    attribute_distribution,
    coverage_entropy,
)
from ..shapes import caption_for, make_dataset, sample_scene

VAL_SEED = 10_000_000
MODE_PROMPT = "a red circle"
GEN_KW = {"channels": [128, 96, 64], "ups": [True, False], "z_dim": 64, "embed_dim": 128}
DISC_KW = {"channels": [64, 128, 128], "downs": [True, False, False]}


def _latents(args, vae) -> tuple[torch.Tensor, torch.Tensor, list]:
    """Posterior mean / std of the training scenes, encoded once and cached under --work (safetensors)."""
    from safetensors.torch import load_file, save_file

    cache = args.work / f"gan_latents_{args.gan_images}_{args.data_seed}_{args.two_object_p}.safetensors"
    if cache.exists():
        d = load_file(cache)
        scenes = [sample_scene(args.data_seed + i, two_object_p=args.two_object_p) for i in range(args.gan_images)]
        return d["mean"], d["std"], scenes
    from . import __main__ as tm

    images, _, scenes = make_dataset(args.gan_images, start_seed=args.data_seed, two_object_p=args.two_object_p)
    x_all = tm._to_tensor(images)
    means, stds = [], []
    with torch.no_grad():
        for i in tqdm(range(0, len(x_all), 256), desc="encode latents"):
            d = vae.encode(x_all[i:i + 256].to(args.device)).latent_dist
            means.append(d.mean.cpu())
            stds.append(d.std.cpu())
    mean, std = torch.cat(means).contiguous(), torch.cat(stds).contiguous()
    tmp = cache.with_suffix(".tmp")
    save_file({"mean": mean, "std": std}, tmp)
    tmp.rename(cache)
    return mean, std, scenes


@torch.no_grad()
def standing_stats(gen: Generator, text: TextConditioner, captions: list[str], seed: int, batches: int = 8,
                   batch: int = 64) -> None:
    """Re-estimate the generator's batch-norm statistics for its current weights (BigGAN's "standing stats")."""
    bns = [m for m in gen.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    gen.train()
    g = torch.Generator().manual_seed(seed)
    rng = random.Random(seed)
    dev = next(gen.parameters()).device
    for _ in range(batches):
        caps = [rng.choice(captions) for _ in range(batch)]
        gen(torch.randn(batch, gen.z_dim, generator=g).to(dev), text(caps))
    for m in bns:
        m.momentum = 0.1
    gen.eval()


def _decode(vae, lat: torch.Tensor, scale: float) -> np.ndarray:
    with torch.no_grad():
        x = torch.cat([vae.decode(lat[i:i + 128] / scale).sample for i in range(0, len(lat), 128)])
    return ((x.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()


def evaluate(gen: Generator, vae, scale: float, text: TextConditioner, eval_scenes, eval_z: torch.Tensor,
             mode_z: torch.Tensor, modes: bool = True) -> dict:
    """Judged adherence on the fixed unseen prompts; judged combos of "a red circle" over fixed latents."""
    from ..judge import judge_against

    gen.eval()
    dev = next(gen.parameters()).device
    prompts = [caption_for(s) for s in eval_scenes]
    with torch.no_grad():
        imgs = _decode(vae, gen(eval_z.to(dev), text(prompts)), scale)
    keys = ("color", "shape", "size", "position", "all")
    hits: dict[str, list[bool]] = {k: [] for k in keys}
    for im, s in zip(imgs, eval_scenes, strict=True):
        r = judge_against(im, s)
        for k in keys:
            if r.get(k) is not None:
                hits[k].append(bool(r[k]))
    out = {f"adh_{k}": float(np.mean(v)) if v else None for k, v in hits.items()}
    if modes:
        with torch.no_grad():
            imgs = _decode(vae, gen(mode_z.to(dev), text([MODE_PROMPT] * len(mode_z))), scale)
        ce = coverage_entropy(attribute_distribution(imgs, color="red", shape="circle"))
        out.update({"mode_coverage": ce["coverage"], "mode_entropy_bits": ce["entropy_bits"],
                    "mode_found": ce["found"]})
    return out


def save_gan(out: Path, gen_ema: Generator, disc: Discriminator, meta: dict, log_path: Path) -> None:
    """Write the GAN folder: config.json, generator.safetensors (fp16, EMA weights) and the training log."""
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to(torch.float16).cpu().contiguous() for k, v in gen_ema.state_dict().items()
             if v.dtype.is_floating_point}
    save_file(state, out / "generator.safetensors")
    cfg = {"generator": gen_ema.config, "discriminator": disc.config, "output": "vae_latents",
           "latent_shape": [4, 8, 8], **meta}
    (out / "config.json").write_text(json.dumps(cfg, indent=1))
    if log_path.exists():
        (out / "training_log.jsonl").write_text(log_path.read_text())


def train_gan(args) -> None:
    from diffusers import AutoencoderKL

    torch.manual_seed(args.gan_seed)
    pipe_dir = Path(args.gan_text_from) if args.gan_text_from else DEFAULT_TEXT
    text = TextConditioner(pipe_dir, device=args.device)
    vae = AutoencoderKL.from_pretrained(pipe_dir / "vae", torch_dtype=torch.float32).to(args.device).eval()
    scale = float(vae.config.scaling_factor)
    mean, std, scenes = _latents(args, vae)

    gen = Generator(**GEN_KW).to(args.device)
    disc = Discriminator(**DISC_KW).to(args.device)
    gen_ema = Generator(**GEN_KW).to(args.device)
    gen_ema.load_state_dict(gen.state_dict())
    gen_ema.requires_grad_(False)
    opt_g = torch.optim.Adam(gen.parameters(), lr=args.gan_lr, betas=(0.0, 0.9))
    opt_d = torch.optim.Adam(disc.parameters(), lr=args.gan_lr * args.gan_d_lr_mult, betas=(0.0, 0.9))

    gen_rng = torch.Generator().manual_seed(args.gan_seed)
    rng = random.Random(args.gan_seed)
    eval_scenes = [sample_scene(VAL_SEED + 300_000 + i, two_object_p=0.0) for i in range(64)]
    fixed = torch.Generator().manual_seed(1234)  # the same eval latents for every run and seed
    eval_z = torch.randn(len(eval_scenes), gen.z_dim, generator=fixed)
    mode_z = torch.randn(64, gen.z_dim, generator=fixed)
    every = max(1, len(scenes) // 2000)
    stat_captions = [caption_for(scenes[i], random.Random(i)) for i in range(0, len(scenes), every)]

    log_path = args.work / f"gan_seed{args.gan_seed}_log.jsonl"
    if log_path.exists():
        log_path.unlink()

    def log(rec: dict) -> None:
        with open(log_path, "a") as f:
            f.write(json.dumps(rec) + "\n")

    meta = {"steps": 0, "batch": args.gan_batch, "lr_g": args.gan_lr, "lr_d": args.gan_lr * args.gan_d_lr_mult,
            "betas": [0.0, 0.9], "ema": args.gan_ema, "loss": "hinge", "mismatch_weight": args.gan_mismatch,
            "images": args.gan_images, "data_seed": args.data_seed, "two_object_p": args.two_object_p,
            "seed": args.gan_seed, "threads": torch.get_num_threads(), "device": args.device,
            "text_encoder": "shapes-sd/text_encoder (frozen)", "vae": "shapes-sd/vae (frozen)",
            "vae_scaling_factor": scale, "mode_prompt": MODE_PROMPT}
    t0, last_save = time.time(), time.time()
    acc = {"d_real": [], "d_fake": [], "d_mismatch": [], "loss_d": [], "loss_g": []}
    n = len(mean)
    step = 0
    bar = tqdm(range(args.gan_steps), desc=f"gan seed {args.gan_seed}")
    for step in bar:
        idx = torch.randint(0, n, (args.gan_batch,), generator=gen_rng)
        caps = [caption_for(scenes[i], rng) for i in idx.tolist()]  # fresh wording every time
        t = text(caps)
        tw = t.roll(1, dims=0)  # another scene's caption for each real image (GAN-INT-CLS negatives)
        real = ((mean[idx] + std[idx] * torch.randn(mean[idx].shape, generator=gen_rng)) * scale).to(args.device)
        z = torch.randn(args.gan_batch, gen.z_dim, generator=gen_rng).to(args.device)
        gen.train()
        fake = gen(z, t)
        # discriminator: real/right caption up, fake and real/wrong caption down (hinge)
        h = disc.features(torch.cat([real, fake.detach()]))
        hr, hf = h[: len(real)], h[len(real):]
        s_real, s_fake, s_mis = disc.score(hr, t), disc.score(hf, t), disc.score(hr, tw)
        loss_d = (F.relu(1 - s_real).mean() + (1 - args.gan_mismatch) * F.relu(1 + s_fake).mean()
                  + args.gan_mismatch * F.relu(1 + s_mis).mean())
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        # generator: raise the (updated) discriminator's score of its images under their own captions
        loss_g = -disc(fake, t).mean()
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        with torch.no_grad():
            decay = min(args.gan_ema, (1 + step) / (10 + step))
            for pe, p in zip(gen_ema.parameters(), gen.parameters(), strict=True):
                pe.lerp_(p, 1 - decay)
        for k, v in (("d_real", s_real.mean()), ("d_fake", s_fake.mean()), ("d_mismatch", s_mis.mean()),
                     ("loss_d", loss_d), ("loss_g", loss_g)):
            acc[k].append(float(v.detach()))
        done = step + 1
        if done % args.gan_log_every == 0:
            rec = {"step": done, "s": round(time.time() - t0, 1), **{k: float(np.mean(v)) for k, v in acc.items()}}
            acc = {k: [] for k in acc}
            if done % args.gan_eval_every == 0:
                standing_stats(gen_ema, text, stat_captions, seed=done)
                rec.update({f"ema_{k}": v for k, v in evaluate(gen_ema, vae, scale, text, eval_scenes, eval_z,
                                                                mode_z).items()})
                live = Generator(**GEN_KW).to(args.device)
                live.load_state_dict(gen.state_dict())
                standing_stats(live, text, stat_captions, seed=done)
                rec.update({f"raw_{k}": v for k, v in evaluate(live, vae, scale, text, eval_scenes, eval_z, mode_z,
                                                                modes=False).items()})
                bar.set_postfix(d=f"{rec['loss_d']:.2f}", g=f"{rec['loss_g']:.2f}", adh=f"{rec['ema_adh_all']:.2f}")
            log(rec)
        if time.time() - last_save > args.save_every_min * 60:
            standing_stats(gen_ema, text, stat_captions, seed=0)
            save_gan(args.out, gen_ema, disc, {**meta, "steps": done, "seconds": time.time() - t0}, log_path)
            last_save = time.time()
        if args.gan_minutes and time.time() - t0 > args.gan_minutes * 60:
            print(f"stopping at step {done}: --gan-minutes {args.gan_minutes} reached")
            break
    bar.close()
    done = step + 1 if args.gan_steps else 0
    standing_stats(gen_ema, text, stat_captions, seed=0)
    final = evaluate(gen_ema, vae, scale, text, eval_scenes, eval_z, mode_z)
    log({"step": done, "s": round(time.time() - t0, 1), "final": True, **{f"ema_{k}": v for k, v in final.items()}})
    save_gan(args.out, gen_ema, disc, {**meta, "steps": done, "seconds": time.time() - t0, "final_eval": final},
             log_path)
    print(f"saved {args.out} after {done} steps: {final}")
