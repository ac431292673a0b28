"""Train the shapes-world GAN: `python -m explainer.train --stage gan`.

The GAN generates the same thing the diffusion U-Net generates: the shipped VAE's (scaled) 8x8x4 latents, decoded by
the same VAE decoder, from the same frozen text encoder's reading of the prompt, trained on the same rendered scenes
(seeds 0...59,999, half one-object, half two-object) with captions re-worded every time. Only the generator differs:
one network call instead of a 25-step denoising loop. The recipe is in `explainer.gan`'s docstring.

On the one loop (`train.common.fit`): the generator is the trained model (its Adam, its EMA, constant learning
rate); each update first takes one discriminator step (the stage's own Adam, TTUR: `--gan-d-lr-mult` x the
generator's rate), whose weights and optimiser the checkpoint holds too. Learning rates are constant, so a run stopped
by --max-minutes is the same trajectory as a shorter --gan-steps run. Every --gan-eval-every steps the log records
judged adherence (64 fixed unseen prompts) of the EMA and the live generator, and the judged (position, size,
background) combos of 64 fixed latents for "a red circle" (mode coverage over training).
Under `accelerate launch` on several processes only the generator is wrapped for gradient synchronisation; the
discriminator's step is the stage's own, so this stage is meant for one process.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .. import validation as V
from ..gan import (
    DEFAULT_TEXT,
    Discriminator,
    Generator,
    TextConditioner,
    attribute_distribution,
    coverage_entropy,
)
from ..shapes import EVAL_SEED, caption_for, make_dataset, sample_scene
from . import flags
from .common import FitConfig, Stage, captions, encode_posterior, fit, sample_posterior

MODE_PROMPT = "a red circle"
GEN_KW = {"channels": [128, 96, 64], "ups": [True, False], "z_dim": 64, "embed_dim": 128}
DISC_KW = {"channels": [64, 128, 128], "downs": [True, False, False]}
EMA = 0.999  # the recipe's EMA decay of the shipped generator


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("--stage gan (not in all): a text-conditional GAN on the same scenes, VAE, text encoder")
    g.add_argument("--gan-steps", type=int, default=6_000, help="updates of --stage gan")
    g.add_argument("--gan-batch", type=int, default=32)
    g.add_argument("--gan-lr", type=float, default=1e-4, help="generator learning rate (constant)")
    g.add_argument("--gan-d-lr-mult", type=float, default=4.0, help="discriminator lr = this x --gan-lr (TTUR)")
    g.add_argument("--gan-mismatch", type=float, default=0.5,
                   help="weight of real-image/wrong-caption negatives in the discriminator's fake term (0 to 1)")
    g.add_argument("--gan-images", type=int, default=60_000)
    g.add_argument("--gan-eval-every", type=int, default=200, help="judge samples every N steps")
    g.add_argument("--gan-text-from", type=Path, default=None,
                   help="pipeline folder whose text_encoder/tokenizer/vae the GAN uses (default shapes-sd)")


def check_arguments(args: argparse.Namespace, error: flags.Error) -> None:
    flags.checked(error, args, "gan_mismatch", V.check_number, 0, 1)
    if args.data_seed < 0 or args.data_seed + args.gan_images > EVAL_SEED:
        error(f"--data-seed must be from 0 to {EVAL_SEED - args.gan_images:,} with --gan-images {args.gan_images:,}, "
              f"got {args.data_seed}")
    text = args.gan_text_from
    if text is not None and not all((text / p).is_dir() for p in ("tokenizer", "text_encoder", "vae")):
        error(f"--gan-text-from must be a pipeline folder with tokenizer/, text_encoder/ and vae/, got {text}")
    flags.check_checkpoint(args, error, f"gan-seed{args.seed}")


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
    from ..latents import to_uint8

    with torch.no_grad():
        return to_uint8(torch.cat([vae.decode(lat[i:i + 128] / scale).sample for i in range(0, len(lat), 128)]))


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


def _flat_log(log_path: Path) -> str:
    """The fit log in the shipped log's shape: {"step", "s", losses...} and {"step", "ema_adh_...", "raw_..."}."""
    rows = []
    for line in log_path.read_text().splitlines():
        r = json.loads(line)
        flat = {"step": r["step"], "s": round(60 * r.pop("minutes", 0.0), 1)}
        flat.update(r.pop("eval", {}))
        flat.update({k: v for k, v in r.items() if k not in ("step", "lr", "loss")})
        rows.append(json.dumps(flat))
    return "\n".join(rows) + "\n"


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
        (out / "training_log.jsonl").write_text(_flat_log(log_path))


class GANStage(Stage):
    name = "gan"

    def __init__(self, args: argparse.Namespace, run_dir: Path):
        self.args, self.run_dir = args, run_dir
        self.mismatch = args.gan_mismatch

    def setup(self, device: torch.device) -> None:
        from diffusers import AutoencoderKL

        a = self.args
        self.device = device
        pipe_dir = Path(a.gan_text_from) if a.gan_text_from else DEFAULT_TEXT
        self.text = TextConditioner(pipe_dir, device=str(device))
        self.vae = AutoencoderKL.from_pretrained(pipe_dir / "vae", torch_dtype=torch.float32).to(device).eval()
        self.scale = float(self.vae.config.scaling_factor)
        cache = a.work / f"gan_latents_{a.gan_images}_{a.data_seed}_{a.two_object_p}.safetensors"
        if cache.exists():
            self.scenes = [sample_scene(a.data_seed + i, two_object_p=a.two_object_p) for i in range(a.gan_images)]
            images = None
        else:
            images, _, self.scenes = make_dataset(a.gan_images, start_seed=a.data_seed, two_object_p=a.two_object_p)
        self.mean, self.std = encode_posterior(self.vae, images, device, cache=cache)
        self.eval_scenes = [sample_scene(EVAL_SEED + 300_000 + i, two_object_p=0.0) for i in range(64)]
        fixed = torch.Generator().manual_seed(1234)  # the same eval latents for every run and seed
        self.eval_z = torch.randn(len(self.eval_scenes), GEN_KW["z_dim"], generator=fixed)
        self.mode_z = torch.randn(64, GEN_KW["z_dim"], generator=fixed)
        every = max(1, len(self.scenes) // 2000)
        self.stat_captions = [caption_for(self.scenes[i], random.Random(i)) for i in range(0, len(self.scenes), every)]

    def model(self) -> Generator:
        self.gen = Generator(**GEN_KW).to(self.device)
        self.disc = Discriminator(**DISC_KW).to(self.device)
        self.opt_d = torch.optim.Adam(self.disc.parameters(), lr=self.args.gan_lr * self.args.gan_d_lr_mult,
                                      betas=(0.0, 0.9))
        return self.gen

    def optimizer(self, params, cfg: FitConfig) -> torch.optim.Optimizer:
        return torch.optim.Adam(params, lr=cfg.lr, betas=(0.0, 0.9))

    def checkpointed(self) -> dict:
        return {"discriminator": self.disc, "opt_d": self.opt_d}

    def batches(self, generator: torch.Generator):
        n, b = len(self.mean), self.args.gan_batch
        while True:
            idx = torch.randint(0, n, (b,), generator=generator)
            caps = captions(self.scenes, idx, generator, caption_for)  # fresh wording every time
            real = sample_posterior(self.mean, self.std, idx, generator, self.scale)
            z = torch.randn(b, GEN_KW["z_dim"], generator=generator)
            yield {"captions": caps, "real": real, "z": z}

    def loss(self, batch):
        t = self.text(batch["captions"])
        tw = t.roll(1, dims=0)  # another scene's caption for each real image (GAN-INT-CLS negatives)
        real, gen, disc = batch["real"], self.prepared, self.disc
        fake = gen(batch["z"], t)
        # discriminator: real/right caption up, fake and real/wrong caption down (hinge); its own step first
        h = disc.features(torch.cat([real, fake.detach()]))
        hr, hf = h[: len(real)], h[len(real):]
        s_real, s_fake, s_mis = disc.score(hr, t), disc.score(hf, t), disc.score(hr, tw)
        loss_d = (F.relu(1 - s_real).mean() + (1 - self.mismatch) * F.relu(1 + s_fake).mean()
                  + self.mismatch * F.relu(1 + s_mis).mean())
        self.opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        self.opt_d.step()
        # generator: raise the (updated) discriminator's score of its images under their own captions
        loss_g = -disc(fake, t).mean()
        return loss_g, {"loss_g": loss_g, "loss_d": loss_d, "d_real": s_real.mean(), "d_fake": s_fake.mean(),
                        "d_mismatch": s_mis.mean()}

    def _judged(self, gen: Generator, seed: int, modes: bool) -> dict:
        standing_stats(gen, self.text, self.stat_captions, seed=seed)
        return evaluate(gen, self.vae, self.scale, self.text, self.eval_scenes, self.eval_z, self.mode_z, modes)

    def evaluate(self, model: Generator) -> dict:
        live = Generator(**GEN_KW).to(self.device)
        live.load_state_dict(self.gen.state_dict())
        ema = {f"ema_{k}": v for k, v in self._judged(model, 0, True).items()}
        return ema | {f"raw_{k}": v for k, v in self._judged(live, 0, False).items()}

    def save(self, model: Generator, out: Path) -> None:
        a = self.args
        standing_stats(model, self.text, self.stat_captions, seed=0)
        state = json.loads((self.run_dir / "checkpoint" / "state.json").read_text())
        meta = {"steps": state["step"], "seconds": round(60 * state["minutes"], 1), "batch": a.gan_batch,
                "lr_g": a.gan_lr, "lr_d": a.gan_lr * a.gan_d_lr_mult, "betas": [0.0, 0.9],
                "ema": EMA if a.ema is None else a.ema, "loss": "hinge", "mismatch_weight": a.gan_mismatch,
                "images": a.gan_images, "data_seed": a.data_seed, "two_object_p": a.two_object_p, "seed": a.seed,
                "threads": torch.get_num_threads(), "device": a.device,
                "text_encoder": "shapes-sd/text_encoder (frozen)", "vae": "shapes-sd/vae (frozen)",
                "vae_scaling_factor": self.scale, "mode_prompt": MODE_PROMPT,
                "final_eval": evaluate(model, self.vae, self.scale, self.text, self.eval_scenes, self.eval_z,
                                       self.mode_z)}
        save_gan(out, model, self.disc, meta, self.run_dir / "log.jsonl")


def run(args: argparse.Namespace):
    """--stage gan: fit the GAN stage and write the GAN folder."""
    name = f"gan-seed{args.seed}"
    cfg = flags.fit_config(args, name, args.gan_steps, args.gan_lr, flags.out_folder(args, "shapes-gan"), ema=EMA,
                           schedule="constant", grad_clip=None, ema_warmup=False, eval_every=args.gan_eval_every)
    result = fit(GANStage(args, cfg.run_dir), cfg)
    print(f"saved {result.out} after {result.steps_done} steps: {result.evaluation}")
    return result
