"""The shipped shapes-sd pipeline's stages (`--stage all` runs them in order; each reads what the previous wrote under
--work):

  vae          AutoencoderKL on rendered scenes (pixels <-> 8x8x4 latents)
  vae-decoder  the VAE's decoder fine-tuned with the encoder frozen (latent space unchanged), weighing object pixels
               more so small stars keep their points; with --init-from, writes that pipeline with the new decoder
  clip         a tiny CLIPModel trained contrastively on image/caption pairs
  unet         UNet2DConditionModel on VAE latents, epsilon prediction, --cond-dropout empty captions (for CFG), the
               CLIP text tower fine-tuned beside it at a lower learning rate; EMA weights (of both) are shipped
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..shapes import EVAL_SEED, caption_for, make_dataset
from . import flags
from .common import (
    FitConfig,
    Stage,
    captions,
    encode_posterior,
    fit,
    min_snr_eps_loss,
    sample_posterior,
    sd_noise_schedule,
    to_pixels,
    token_ids,
)
from .components import build_clip, build_tokenizer, build_unet, build_vae

STAGES = ("vae", "vae-decoder", "clip", "unet")


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("--stage vae / vae-decoder / clip / unet (all: the four in order)")
    for name, images, steps, batch, lr in (("vae", 20_000, 1_200, 16, 1e-3), ("clip", 30_000, 1_400, 64, 5e-4),
                                           ("unet", 60_000, 6_000, 32, 4e-4)):
        g.add_argument(f"--{name}-images", type=int, default=images)
        g.add_argument(f"--{name}-steps", type=int, default=steps)
        g.add_argument(f"--{name}-batch", type=int, default=batch)
        g.add_argument(f"--{name}-lr", type=float, default=lr)
    g.add_argument("--dec-steps", type=int, default=3_000, help="decoder fine-tuning steps (stage vae-decoder)")
    g.add_argument("--dec-lr", type=float, default=3e-4)
    g.add_argument("--dec-object-weight", type=float, default=10.0,
                   help="how many times an object pixel counts in the decoder loss (>= 1)")
    g.add_argument("--text-lr", type=float, default=1e-4, help="learning rate of the text encoder (stage unet)")


def check_arguments(args: argparse.Namespace, error: flags.Error) -> None:
    stages = STAGES if args.stage == "all" else (args.stage,)
    for s in stages:
        flags.check_checkpoint(args, error, s)
    if "unet" in stages and args.data_seed + args.unet_images > EVAL_SEED:
        error(f"--data-seed must be from 0 to {EVAL_SEED - args.unet_images:,} (with --unet-images "
              f"{args.unet_images:,}, so training scenes stay below the evaluation seeds), got {args.data_seed}")
    if not args.dec_object_weight >= 1.0:
        error(f"--dec-object-weight must be >= 1 (1 = plain loss), got {args.dec_object_weight}")
    # a stage run alone reads what the earlier stages wrote under --work: missing parts are named now, not after hours
    needs = {"unet": ("tokenizer", "vae") + (() if args.init_from else ("clip",)),
             "vae-decoder": () if args.init_from else ("vae",)}.get(args.stage, ())
    missing = [n for n in needs if not (args.work / n).is_dir()]
    if missing:
        error(f"--stage {args.stage} reads {', '.join(n + '/' for n in missing)} from --work {args.work}, which has "
              "none: run the earlier stages there first (or --stage all)")


def _pick(n: int, batch: int, generator: torch.Generator) -> torch.Tensor:
    return torch.randint(0, n, (batch,), generator=generator)


# ------------------------------------------------------------------------------------------------ vae
class VAEStage(Stage):
    name = "vae"

    def __init__(self, args: argparse.Namespace):
        self.args = args

    def setup(self, device):
        self.device = device
        images, _, _ = make_dataset(self.args.vae_images, start_seed=0)
        val, _, _ = make_dataset(512, start_seed=EVAL_SEED)
        self.x_all, self.x_val = to_pixels(images), to_pixels(val)

    def model(self):
        return build_vae()

    def batches(self, generator):
        while True:
            yield self.x_all[_pick(len(self.x_all), self.args.vae_batch, generator)]

    def loss(self, x):
        post = self.prepared.encode(x).latent_dist
        rec = self.prepared.decode(post.sample(generator=None)).sample
        mse = F.mse_loss(rec, x)
        return mse + 0.5 * F.l1_loss(rec, x) + 1e-6 * post.kl().mean(), {"mse": mse}

    def save(self, vae, out: Path) -> None:
        with torch.no_grad():
            lat = torch.cat([vae.encode(self.x_val[i:i + 128].to(self.device)).latent_dist.mean
                             for i in range(0, len(self.x_val), 128)])
            rec = torch.cat([vae.decode(lat[i:i + 128]).sample for i in range(0, len(lat), 128)]).clamp(-1, 1)
            # MSE in [0, 1] pixel units, the figure the model card reports.
            val_mse = F.mse_loss((rec.cpu() + 1) / 2, (self.x_val + 1) / 2).item()
            scaling = 1.0 / lat.std().item()
        vae.register_to_config(scaling_factor=scaling)
        vae.save_pretrained(out)
        stats = {"val_mse_01": val_mse, "scaling_factor": scaling, "steps": self.args.vae_steps}
        (self.args.work / "vae_stats.json").write_text(json.dumps(stats, indent=1))
        print("vae", stats)


# ------------------------------------------------------------------------------------------------ vae decoder
def _object_weight(x: torch.Tensor, object_weight: float) -> torch.Tensor:
    """Per-pixel loss weight: 1 on the (uniform) background, `object_weight` where an object is drawn.

    The objects are a small share of the pixels, so a plain MSE lets the decoder round off a small star's points.
    """
    bg = x[:, :, :1, :1]  # the top-left pixel is background in every scene (objects stay inside a margin)
    mask = ((x - bg).abs().amax(dim=1, keepdim=True) > 0.05).float()
    return 1.0 + (object_weight - 1.0) * mask


def _round_trip(vae, x: torch.Tensor, device) -> torch.Tensor:
    """Encode (posterior mean) and decode `x` in chunks; the reconstruction on the CPU, clamped to [-1, 1]."""
    with torch.no_grad():
        return torch.cat([vae.decode(vae.encode(x[i:i + 128].to(device)).latent_dist.mean).sample.cpu()
                          for i in range(0, len(x), 128)]).clamp(-1, 1)


def _shape_recall(vae, scenes, x: torch.Tensor, device) -> dict[str, float]:
    """Share of reconstructions (encoder mean -> decoder) whose shape the judge reads right, per shape and size."""
    from ..judge import judge_against
    from ..latents import to_uint8

    hits: dict[str, list[bool]] = {}
    for scene, im in zip(scenes, to_uint8(_round_trip(vae, x, device)), strict=True):
        o = scene.objects[0]
        hits.setdefault(f"{o.size} {o.shape}", []).append(bool(judge_against(im, scene)["shape"]))
    out = {k: float(np.mean(v)) for k, v in sorted(hits.items())}
    out["all"] = float(np.mean([h for v in hits.values() for h in v]))
    return out


class VAEDecoderStage(Stage):
    """Fine-tune only the VAE decoder, encoder frozen, as Stability AI's sd-vae-ft-mse did for Stable Diffusion.

    The latent space (what the encoder writes and the U-Net learned) stays the same, so a trained U-Net keeps working;
    only how latents are drawn as pixels improves. The loss weighs object pixels `--dec-object-weight` times.
    """

    name = "vae-decoder"

    def __init__(self, args: argparse.Namespace, out: Path):
        self.args, self.out = args, out
        # Alone with --init-from: tune that pipeline's decoder and write the pipeline. Within --stage all: tune the VAE
        # the vae stage just wrote (its encoder is the one the U-Net stage will use).
        self.from_pipeline = args.stage == "vae-decoder" and args.init_from is not None

    def setup(self, device):
        self.device = device
        images, _, _ = make_dataset(self.args.vae_images, start_seed=0, two_object_p=0.5)
        self.x_all = to_pixels(images)
        val, _, self.val_scenes = make_dataset(500, start_seed=EVAL_SEED + 200_000, two_object_p=0.0,
                                               held_out="allow")
        self.x_val = to_pixels(val)

    def model(self):
        from diffusers import AutoencoderKL

        src = (self.args.init_from / "vae") if self.from_pipeline else (self.args.work / "vae")
        vae = AutoencoderKL.from_pretrained(src, torch_dtype=torch.float32).to(self.device)
        vae.requires_grad_(False)
        for part in (vae.decoder, vae.post_quant_conv):
            part.requires_grad_(True)
        self.before = _shape_recall(vae.eval(), self.val_scenes, self.x_val, self.device)
        return vae

    def batches(self, generator):
        while True:
            x = self.x_all[_pick(len(self.x_all), self.args.vae_batch, generator)]
            yield x, torch.randn((len(x), 4, x.shape[-2] // 4, x.shape[-1] // 4), generator=generator)

    def loss(self, batch):
        x, eps = batch
        vae = self.prepared
        with torch.no_grad():  # z ~ q(z|x): the decoder must draw every latent the U-Net may land on
            d = vae.encode(x).latent_dist
            z = d.mean + d.std * eps
        rec = vae.decode(z).sample
        w = _object_weight(x, self.args.dec_object_weight)
        return (w * (rec - x).pow(2)).mean() + 0.5 * (w * (rec - x).abs()).mean(), {}

    def save(self, vae, out: Path) -> None:
        a = self.args
        rec = _round_trip(vae, self.x_val, self.device)
        stats = {"steps": a.dec_steps, "batch": a.vae_batch, "lr": a.dec_lr, "object_weight": a.dec_object_weight,
                 "val_mse_01": F.mse_loss((rec + 1) / 2, (self.x_val + 1) / 2).item(),
                 "shape_read_right_before": self.before,
                 "shape_read_right_after": _shape_recall(vae, self.val_scenes, self.x_val, self.device)}
        print("vae decoder", json.dumps(stats, indent=1))
        vae.save_pretrained(out)
        (a.work / "vae_decoder_stats.json").write_text(json.dumps(stats, indent=1))
        if self.from_pipeline:  # write the whole pipeline with the new decoder, everything else as it was
            from diffusers import StableDiffusionPipeline

            pipe = StableDiffusionPipeline.from_pretrained(a.init_from, torch_dtype=torch.float32)
            pipe.vae = vae.cpu()
            self.out.mkdir(parents=True, exist_ok=True)
            pipe.to(torch.float16).save_pretrained(self.out, safe_serialization=True)
            if (a.init_from / "clip").is_dir() and self.out.resolve() != a.init_from.resolve():
                shutil.copytree(a.init_from / "clip", self.out / "clip", dirs_exist_ok=True)
            prev = a.init_from / "training.json"
            meta = json.loads(prev.read_text()) if prev.exists() else {}
            meta["vae_decoder_finetune"] = stats
            (self.out / "training.json").write_text(json.dumps(meta, indent=1))
            print(f"saved {self.out}")


# ------------------------------------------------------------------------------------------------ clip
class CLIPStage(Stage):
    name = "clip"

    def __init__(self, args: argparse.Namespace):
        self.args = args

    def setup(self, device):
        self.device = device
        self.tok = build_tokenizer()
        self.tok.save_pretrained(self.args.work / "tokenizer")
        images, _, self.scenes = make_dataset(self.args.clip_images, start_seed=0)
        self.x_all = to_pixels(images)

    def model(self):
        return build_clip(self.tok)

    def optimizer(self, params, cfg: FitConfig):
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.05)

    def batches(self, generator):
        tok = self.tok
        while True:
            idx = _pick(len(self.x_all), self.args.clip_batch, generator)
            ids = tok(captions(self.scenes, idx, generator, caption_for), padding="max_length",
                      max_length=tok.model_max_length, truncation=True, return_tensors="pt")
            yield {"input_ids": ids.input_ids, "attention_mask": ids.attention_mask, "pixel_values": self.x_all[idx]}

    def loss(self, batch):
        out = self.prepared(**batch, return_loss=True)
        n = len(batch["input_ids"])
        acc = (out.logits_per_text.argmax(1) == torch.arange(n, device=out.loss.device)).float().mean()
        return out.loss, {"acc": acc}

    def save(self, clip, out: Path) -> None:
        clip.save_pretrained(out)
        (self.args.work / "clip_stats.json").write_text(json.dumps({"steps": self.args.clip_steps}))


# ------------------------------------------------------------------------------------------------ unet
def assemble_pipeline(work: Path, unet, text_encoder, out: Path, meta: dict) -> None:
    """Write a standard StableDiffusionPipeline folder (safetensors, fp16 on disk) plus the CLIP pair."""
    from diffusers import AutoencoderKL, DPMSolverMultistepScheduler, StableDiffusionPipeline
    from transformers import CLIPModel, PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast.from_pretrained(work / "tokenizer")
    vae = AutoencoderKL.from_pretrained(work / "vae")
    sched = DPMSolverMultistepScheduler.from_config(sd_noise_schedule().config)
    pipe = StableDiffusionPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=tok, unet=unet, scheduler=sched,
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    out.mkdir(parents=True, exist_ok=True)
    pipe.to(torch.float16).save_pretrained(out, safe_serialization=True)
    CLIPModel.from_pretrained(work / "clip").to(torch.float16).save_pretrained(out / "clip", safe_serialization=True)
    (out / "training.json").write_text(json.dumps(meta, indent=1))


class UNetStage(Stage):
    """The U-Net and the text encoder train together (a ModuleDict), at their own learning rates; Min-SNR-5 loss."""

    name = "unet"

    def __init__(self, args: argparse.Namespace, run_dir: Path):
        self.args, self.run_dir = args, run_dir

    def setup(self, device):
        from diffusers import AutoencoderKL
        from transformers import PreTrainedTokenizerFast

        a = self.args
        self.device = device
        self.tok = PreTrainedTokenizerFast.from_pretrained(a.work / "tokenizer")
        vae = AutoencoderKL.from_pretrained(a.work / "vae").to(device).eval()
        # Render the training scenes once and encode them once; sample z ~ q(z|x) per step.
        images, _, self.scenes = make_dataset(a.unet_images, start_seed=a.data_seed, two_object_p=a.two_object_p)
        self.mean, self.std = encode_posterior(vae, images, device)
        self.scale = vae.config.scaling_factor
        self.noise_sched = sd_noise_schedule()
        self.alphas = self.noise_sched.alphas_cumprod.to(device)

    def model(self):
        from transformers import CLIPModel, CLIPTextModel

        a = self.args
        if a.init_from:  # continue training: start from a saved pipeline's U-Net and (fine-tuned) text encoder
            from diffusers import UNet2DConditionModel

            text = CLIPTextModel.from_pretrained(a.init_from / "text_encoder", torch_dtype=torch.float32)
            unet = UNet2DConditionModel.from_pretrained(a.init_from / "unet", torch_dtype=torch.float32)
        else:
            clip = CLIPModel.from_pretrained(a.work / "clip")
            text = CLIPTextModel(clip.config.text_config)
            getattr(text, "text_model", text).load_state_dict(clip.text_model.state_dict())
            unet = build_unet()
        self.parts = torch.nn.ModuleDict({"unet": unet, "text_encoder": text})
        return self.parts

    def optimizer(self, params, cfg: FitConfig):
        """AdamW with two groups: the U-Net at --unet-lr, the text encoder at --text-lr (`params`: both, all)."""
        return torch.optim.AdamW([{"params": self.parts["unet"].parameters(), "lr": cfg.lr},
                                  {"params": self.parts["text_encoder"].parameters(), "lr": self.args.text_lr}],
                                 weight_decay=0.01)

    def batches(self, generator):
        tok, a = self.tok, self.args
        while True:
            idx = _pick(len(self.mean), a.unet_batch, generator)
            ids = token_ids(tok, captions(self.scenes, idx, generator, caption_for, a.cond_dropout))
            z0 = sample_posterior(self.mean, self.std, idx, generator, self.scale)
            yield {"ids": ids, "z0": z0, "noise": torch.randn(z0.shape, generator=generator),
                   "t": torch.randint(0, self.noise_sched.config.num_train_timesteps, (len(idx),),
                                      generator=generator)}

    def loss(self, b):
        parts = self.prepared
        zt = self.noise_sched.add_noise(b["z0"], b["noise"], b["t"])
        pred = parts["unet"](zt, b["t"], parts["text_encoder"](b["ids"]).last_hidden_state).sample
        return min_snr_eps_loss(pred, b["noise"], self.alphas, b["t"]), {}

    def save(self, parts, out: Path) -> None:
        a = self.args
        state = json.loads((self.run_dir / "checkpoint" / "state.json").read_text())
        meta = {"unet_steps": state["step"], "unet_seconds": round(60 * state["minutes"], 1), "batch": a.unet_batch,
                "images": a.unet_images, "threads": torch.get_num_threads(), "device": a.device,
                "two_object_p": a.two_object_p, "lr": a.unet_lr, "text_lr": a.text_lr, "ema": a.ema,
                "cond_dropout": a.cond_dropout}
        if a.init_from:  # keep the history of the run this one continues
            prev = a.init_from / "training.json"
            meta["continued_from"] = json.loads(prev.read_text()) if prev.exists() else str(a.init_from)
        for name in ("vae_stats.json", "clip_stats.json"):
            if (a.work / name).exists():
                meta[name.removesuffix(".json")] = json.loads((a.work / name).read_text())
        assemble_pipeline(a.work, parts["unet"], parts["text_encoder"], out, meta)


def run(args: argparse.Namespace):
    """Run `--stage` (one of STAGES, or all four in order); returns the last stage's FitResult."""
    result = None
    for s in STAGES if args.stage == "all" else (args.stage,):
        # vae and clip alone write to --out when given; within all (and by default) to --work, where unet reads them
        part = args.out if args.out is not None and args.stage == s else args.work / s.removesuffix("-decoder")
        if s == "vae":
            cfg = flags.fit_config(args, s, args.vae_steps, args.vae_lr, part, warmup=200,
                                   grad_clip=None)
            stage: Stage = VAEStage(args)
        elif s == "vae-decoder":
            out = flags.out_folder(args, "shapes-sd")
            part = args.work / "vae" if args.init_from is not None else part
            cfg = flags.fit_config(args, s, args.dec_steps, args.dec_lr, part,
                                   warmup=100, grad_clip=None)
            stage = VAEDecoderStage(args, out)
        elif s == "clip":
            cfg = flags.fit_config(args, s, args.clip_steps, args.clip_lr, part, warmup=200,
                                   grad_clip=None, weight_decay=0.05)
            stage = CLIPStage(args)
        else:
            cfg = flags.fit_config(args, s, args.unet_steps, args.unet_lr, flags.out_folder(args, "shapes-sd"),
                                   ema=0.999, warmup=200)
            stage = UNetStage(args, args.work / s)
        result = fit(stage, cfg)
        print(f"{s}: {result.steps_done} updates, saved {result.out}")
    return result
