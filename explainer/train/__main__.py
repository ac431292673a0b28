"""Retrain the shipped model from scratch: `python -m explainer.train --stage all`.

Stages (each reads what the previous ones wrote under --work):
  vae    AutoencoderKL on rendered scenes (pixels <-> 8x8x4 latents)
  vae-decoder  the VAE's decoder fine-tuned with the encoder frozen (latent space unchanged), weighing object pixels
         more so small stars keep their points; with --init-from, writes that pipeline with the new decoder
  clip   a tiny CLIPModel trained contrastively on image/caption pairs
  unet   UNet2DConditionModel on VAE latents, epsilon prediction, 10 % caption dropout (for CFG),
         the CLIP text tower fine-tuned beside it at a lower learning rate; EMA weights are shipped.
  gan    (not in `all`) a text-conditional GAN drawing the same VAE latents from the same frozen text encoder,
         written to explainer/assets/shapes-gan (explainer/train/gan.py)
  controlnet  (not in `all`) a ControlNet for the shipped pipeline, `--condition edges|segmentation`; see
         explainer/train/controlnet.py
`vae` and `clip` are independent and can run at the same time (two processes).
Everything is seeded; a run on the same hardware and thread count repeats itself.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import shutil
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..shapes import EVAL_SEED, caption_for, make_dataset
from .components import build_clip, build_noise_scheduler, build_tokenizer, build_unet, build_vae

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "assets" / "shapes-sd"
VAL_SEED = EVAL_SEED  # validation / evaluation scenes come from seeds above this; training below


def _to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 (n, h, w, 3) -> float (n, 3, h, w) in [-1, 1], as diffusers' VAEs expect."""
    return torch.from_numpy(images).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


def _log(work: Path, stage: str, record: dict) -> None:
    with open(work / f"{stage}_log.jsonl", "a") as f:
        f.write(json.dumps(record) + "\n")


def _lr(step: int, total: int, base: float, warmup: int = 200) -> float:
    if step < warmup:
        return base * (step + 1) / warmup
    return base * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup))))


def train_vae(args) -> None:
    torch.manual_seed(args.seed)
    images, _, _ = make_dataset(args.vae_images, start_seed=0)
    val, _, _ = make_dataset(512, start_seed=VAL_SEED)
    x_all, x_val = _to_tensor(images), _to_tensor(val)
    vae = build_vae().to(args.device)
    opt = torch.optim.AdamW(vae.parameters(), lr=args.vae_lr, weight_decay=0.0)
    gen = torch.Generator().manual_seed(args.seed)
    t0 = time.time()
    for step in (bar := tqdm(range(args.vae_steps), desc="vae")):
        for g in opt.param_groups:
            g["lr"] = _lr(step, args.vae_steps, args.vae_lr)
        x = x_all[torch.randint(0, len(x_all), (args.vae_batch,), generator=gen)].to(args.device)
        post = vae.encode(x).latent_dist
        rec = vae.decode(post.sample(generator=None)).sample
        mse = F.mse_loss(rec, x)
        loss = mse + 0.5 * F.l1_loss(rec, x) + 1e-6 * post.kl().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % 50 == 0:
            bar.set_postfix(mse=f"{mse.item():.4f}")
            _log(args.work, "vae", {"step": step, "mse": mse.item(), "s": time.time() - t0})
    vae.eval()
    with torch.no_grad():
        lat = torch.cat([vae.encode(x_val[i:i + 128].to(args.device)).latent_dist.mean for i in range(0, 512, 128)])
        rec = torch.cat([vae.decode(lat[i:i + 128]).sample for i in range(0, 512, 128)]).clamp(-1, 1)
        # MSE in [0, 1] pixel units, the figure the model card reports.
        val_mse = F.mse_loss((rec.cpu() + 1) / 2, (x_val + 1) / 2).item()
        scaling = 1.0 / lat.std().item()
    vae.register_to_config(scaling_factor=scaling)
    vae.save_pretrained(args.work / "vae")
    stats = {"val_mse_01": val_mse, "scaling_factor": scaling, "steps": args.vae_steps, "seconds": time.time() - t0}
    (args.work / "vae_stats.json").write_text(json.dumps(stats, indent=1))
    print("vae", stats)


def _object_weight(x: torch.Tensor, object_weight: float) -> torch.Tensor:
    """Per-pixel loss weight: 1 on the (uniform) background, `object_weight` where an object is drawn.

    The objects are a small share of the pixels, so a plain MSE lets the decoder round off a small star's points.
    """
    bg = x[:, :, :1, :1]  # the top-left pixel is background in every scene (objects stay inside a margin)
    mask = ((x - bg).abs().amax(dim=1, keepdim=True) > 0.05).float()
    return 1.0 + (object_weight - 1.0) * mask


def _round_trip(vae, x: torch.Tensor, device: str) -> torch.Tensor:
    """Encode (posterior mean) and decode `x` in chunks; the reconstruction on the CPU, clamped to [-1, 1]."""
    with torch.no_grad():
        return torch.cat([vae.decode(vae.encode(x[i:i + 128].to(device)).latent_dist.mean).sample.cpu()
                          for i in range(0, len(x), 128)]).clamp(-1, 1)


def _shape_recall(vae, scenes, x: torch.Tensor, device: str) -> dict[str, float]:
    """Share of reconstructions (encoder mean -> decoder) whose shape the judge reads right, per shape and size."""
    from ..judge import judge_against

    pix = ((_round_trip(vae, x, device) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()
    hits: dict[str, list[bool]] = {}
    for scene, im in zip(scenes, pix, strict=True):
        o = scene.objects[0]
        hits.setdefault(f"{o.size} {o.shape}", []).append(bool(judge_against(im, scene)["shape"]))
    out = {k: float(np.mean(v)) for k, v in sorted(hits.items())}
    out["all"] = float(np.mean([h for v in hits.values() for h in v]))
    return out


def train_vae_decoder(args) -> None:
    """Fine-tune only the VAE decoder, encoder frozen, as Stability AI's sd-vae-ft-mse did for Stable Diffusion.

    The latent space (what the encoder writes and the U-Net learned) stays the same, so a trained U-Net keeps working;
    only how latents are drawn as pixels improves. The loss weighs object pixels `--dec-object-weight` times.
    """
    from diffusers import AutoencoderKL

    torch.manual_seed(args.seed)
    # Alone with --init-from: tune that pipeline's decoder and write the pipeline. Within --stage all: tune the VAE the
    # vae stage just wrote (its encoder is the one the U-Net stage will use).
    from_pipeline = args.stage == "vae-decoder" and args.init_from is not None
    src = (args.init_from / "vae") if from_pipeline else (args.work / "vae")
    vae = AutoencoderKL.from_pretrained(src, torch_dtype=torch.float32).to(args.device)
    for p in vae.parameters():
        p.requires_grad_(False)
    trained = list(vae.decoder.parameters()) + list(vae.post_quant_conv.parameters())
    for p in trained:
        p.requires_grad_(True)
    images, _, _ = make_dataset(args.vae_images, start_seed=0, two_object_p=0.5)
    x_all = _to_tensor(images)
    val, _, val_scenes = make_dataset(500, start_seed=VAL_SEED + 200_000, two_object_p=0.0, held_out="allow")
    x_val = _to_tensor(val)
    vae.eval()
    before = _shape_recall(vae, val_scenes, x_val, args.device)
    opt = torch.optim.AdamW(trained, lr=args.dec_lr, weight_decay=0.0)
    gen = torch.Generator().manual_seed(args.seed)
    t0 = time.time()
    for step in (bar := tqdm(range(args.dec_steps), desc="vae decoder")):
        for g in opt.param_groups:
            g["lr"] = _lr(step, args.dec_steps, args.dec_lr, warmup=100)
        x = x_all[torch.randint(0, len(x_all), (args.vae_batch,), generator=gen)].to(args.device)
        with torch.no_grad():  # z ~ q(z|x): the decoder must draw every latent the U-Net may land on
            d = vae.encode(x).latent_dist
            z = d.mean + d.std * torch.randn(d.mean.shape, generator=gen).to(args.device)
        rec = vae.decode(z).sample
        w = _object_weight(x, args.dec_object_weight)
        loss = (w * (rec - x).pow(2)).mean() + 0.5 * (w * (rec - x).abs()).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % 50 == 0:
            bar.set_postfix(loss=f"{loss.item():.4f}")
            _log(args.work, "vae_decoder", {"step": step, "loss": loss.item(), "s": time.time() - t0})
    vae.eval()
    after = _shape_recall(vae, val_scenes, x_val, args.device)
    rec = _round_trip(vae, x_val, args.device)
    stats = {"steps": args.dec_steps, "batch": args.vae_batch, "lr": args.dec_lr,
             "object_weight": args.dec_object_weight, "seconds": time.time() - t0,
             "val_mse_01": F.mse_loss((rec + 1) / 2, (x_val + 1) / 2).item(),
             "shape_read_right_before": before, "shape_read_right_after": after}
    print("vae decoder", json.dumps(stats, indent=1))
    vae.save_pretrained(args.work / "vae")
    (args.work / "vae_decoder_stats.json").write_text(json.dumps(stats, indent=1))
    if from_pipeline:  # write the whole pipeline with the new decoder, everything else as it was
        from diffusers import StableDiffusionPipeline

        pipe = StableDiffusionPipeline.from_pretrained(args.init_from, torch_dtype=torch.float32)
        pipe.vae = vae.cpu()
        args.out.mkdir(parents=True, exist_ok=True)
        pipe.to(torch.float16).save_pretrained(args.out, safe_serialization=True)
        if (args.init_from / "clip").is_dir() and args.out.resolve() != args.init_from.resolve():
            shutil.copytree(args.init_from / "clip", args.out / "clip", dirs_exist_ok=True)
        prev = args.init_from / "training.json"
        meta = json.loads(prev.read_text()) if prev.exists() else {}
        meta["vae_decoder_finetune"] = stats
        (args.out / "training.json").write_text(json.dumps(meta, indent=1))
        print(f"saved {args.out}")


def train_clip(args) -> None:
    torch.manual_seed(args.seed)
    tok = build_tokenizer()
    tok.save_pretrained(args.work / "tokenizer")
    images, _, scenes = make_dataset(args.clip_images, start_seed=0)
    x_all = _to_tensor(images)
    clip = build_clip(tok).to(args.device)
    opt = torch.optim.AdamW(clip.parameters(), lr=args.clip_lr, weight_decay=0.05)
    gen = torch.Generator().manual_seed(args.seed)
    rng = random.Random(args.seed)
    t0 = time.time()
    for step in (bar := tqdm(range(args.clip_steps), desc="clip")):
        for g in opt.param_groups:
            g["lr"] = _lr(step, args.clip_steps, args.clip_lr)
        idx = torch.randint(0, len(x_all), (args.clip_batch,), generator=gen)
        captions = [caption_for(scenes[i], rng) for i in idx.tolist()]  # fresh wording every time
        ids = tok(captions, padding="max_length", max_length=tok.model_max_length, truncation=True, return_tensors="pt")
        out = clip(input_ids=ids.input_ids.to(args.device), attention_mask=ids.attention_mask.to(args.device),
                   pixel_values=x_all[idx].to(args.device), return_loss=True)
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        opt.step()
        if step % 50 == 0:
            acc = (out.logits_per_text.argmax(1) == torch.arange(len(idx), device=args.device)).float().mean().item()
            bar.set_postfix(loss=f"{out.loss.item():.3f}", acc=f"{acc:.2f}")
            _log(args.work, "clip", {"step": step, "loss": out.loss.item(), "acc": acc, "s": time.time() - t0})
    clip.save_pretrained(args.work / "clip")
    (args.work / "clip_stats.json").write_text(json.dumps({"steps": args.clip_steps, "seconds": time.time() - t0}))


def assemble_pipeline(work: Path, unet, text_encoder, out: Path, meta: dict) -> None:
    """Write a standard StableDiffusionPipeline folder (safetensors, fp16 on disk) plus the CLIP pair."""
    from diffusers import AutoencoderKL, DPMSolverMultistepScheduler, StableDiffusionPipeline
    from transformers import CLIPModel, PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast.from_pretrained(work / "tokenizer")
    vae = AutoencoderKL.from_pretrained(work / "vae")
    sched = DPMSolverMultistepScheduler.from_config(build_noise_scheduler().config)
    pipe = StableDiffusionPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=tok, unet=unet, scheduler=sched,
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    out.mkdir(parents=True, exist_ok=True)
    pipe.to(torch.float16).save_pretrained(out, safe_serialization=True)
    pipe.to(torch.float32)
    CLIPModel.from_pretrained(work / "clip").to(torch.float16).save_pretrained(out / "clip", safe_serialization=True)
    (out / "training.json").write_text(json.dumps(meta, indent=1))


def train_unet(args) -> None:
    from diffusers import AutoencoderKL
    from diffusers.training_utils import EMAModel
    from transformers import CLIPModel, CLIPTextModel, PreTrainedTokenizerFast

    torch.manual_seed(args.seed)
    tok = PreTrainedTokenizerFast.from_pretrained(args.work / "tokenizer")
    vae = AutoencoderKL.from_pretrained(args.work / "vae").to(args.device).eval()
    if args.init_from:
        # Continue training: start from a saved pipeline's U-Net and (fine-tuned) text encoder.
        from diffusers import UNet2DConditionModel
        text_encoder = CLIPTextModel.from_pretrained(args.init_from / "text_encoder", torch_dtype=torch.float32)
        init_unet = UNet2DConditionModel.from_pretrained(args.init_from / "unet", torch_dtype=torch.float32)
    else:
        clip = CLIPModel.from_pretrained(args.work / "clip")
        text_encoder = CLIPTextModel(clip.config.text_config)
        getattr(text_encoder, "text_model", text_encoder).load_state_dict(clip.text_model.state_dict())
        del clip
        init_unet = None
    text_encoder.to(args.device)

    # Render the training scenes once and encode them once; sample z ~ q(z|x) per step.
    images, _, scenes = make_dataset(args.unet_images, start_seed=args.data_seed, two_object_p=args.two_object_p)
    x_all = _to_tensor(images)
    means, stds = [], []
    with torch.no_grad():
        for i in tqdm(range(0, len(x_all), 256), desc="encode latents"):
            d = vae.encode(x_all[i:i + 256].to(args.device)).latent_dist
            means.append(d.mean.cpu())
            stds.append(d.std.cpu())
    mean, std = torch.cat(means), torch.cat(stds)
    scale = vae.config.scaling_factor
    del x_all, images

    unet = (init_unet if init_unet is not None else build_unet()).to(args.device)
    ema = EMAModel(unet.parameters(), decay=args.ema, use_ema_warmup=True, power=0.75)
    noise_sched = build_noise_scheduler()
    alphas = noise_sched.alphas_cumprod.to(args.device)
    opt = torch.optim.AdamW([
        {"params": unet.parameters(), "lr": args.unet_lr, "base": args.unet_lr},
        {"params": text_encoder.parameters(), "lr": args.text_lr, "base": args.text_lr},
    ], weight_decay=0.01)
    gen = torch.Generator().manual_seed(args.seed)
    rng = random.Random(args.seed)
    t0, last_save = time.time(), time.time()

    def save(step: int) -> None:
        ema.store(unet.parameters())
        ema.copy_to(unet.parameters())
        meta = {"unet_steps": step, "unet_seconds": time.time() - t0, "batch": args.unet_batch,
                "images": args.unet_images, "threads": torch.get_num_threads(), "device": args.device,
                "two_object_p": args.two_object_p, "lr": args.unet_lr}
        if args.init_from:  # keep the history of the run this one continues
            prev = args.init_from / "training.json"
            meta["continued_from"] = json.loads(prev.read_text()) if prev.exists() else str(args.init_from)
        for name in ("vae_stats.json", "clip_stats.json"):
            if (args.work / name).exists():
                meta[name.removesuffix(".json")] = json.loads((args.work / name).read_text())
        assemble_pipeline(args.work, unet, text_encoder, args.out, meta)
        ema.restore(unet.parameters())

    for step in (bar := tqdm(range(args.unet_steps), desc="unet")):
        for g in opt.param_groups:
            g["lr"] = _lr(step, args.unet_steps, g["base"])
        idx = torch.randint(0, len(mean), (args.unet_batch,), generator=gen)
        # ~10 % empty captions: the unconditional branch that classifier-free guidance needs.
        captions = [caption_for(scenes[i], rng) if rng.random() > args.cond_dropout else "" for i in idx.tolist()]
        ids = tok(captions, padding="max_length", max_length=tok.model_max_length, truncation=True,
                  return_tensors="pt").input_ids.to(args.device)
        z0 = (mean[idx] + std[idx] * torch.randn(mean[idx].shape, generator=gen)).to(args.device) * scale
        noise = torch.randn(z0.shape, generator=gen).to(args.device)
        t = torch.randint(0, noise_sched.config.num_train_timesteps, (len(idx),), generator=gen).to(args.device)
        zt = noise_sched.add_noise(z0, noise, t)
        cond = text_encoder(ids).last_hidden_state
        pred = unet(zt, t, cond).sample
        # Min-SNR-5 weighting (Hang et al. 2023): fewer wasted updates on the easiest, noise-free steps.
        snr = alphas[t] / (1 - alphas[t])
        w = torch.clamp(snr, max=5.0) / snr
        loss = (w * (pred - noise).pow(2).mean(dim=(1, 2, 3))).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        opt.step()
        ema.step(unet.parameters())
        if step % 50 == 0:
            bar.set_postfix(loss=f"{loss.item():.4f}")
            _log(args.work, "unet", {"step": step, "loss": loss.item(), "s": time.time() - t0})
        if time.time() - last_save > args.save_every_min * 60:
            save(step)
            last_save = time.time()
    save(args.unet_steps)
    print(f"saved {args.out}")


def _check_common_args(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Counts, rates, threads and the device, checked before any data is rendered (each error names its option)."""
    import math

    for name, value in vars(args).items():
        opt = "--" + name.replace("_", "-")
        if name.endswith("_steps") and isinstance(value, int) and value < 0:
            p.error(f"{opt} must be >= 0, got {value}")
        if name.endswith(("_images", "_batch")) and isinstance(value, int) and not 1 <= value <= VAL_SEED:
            p.error(f"{opt} must be from 1 to {VAL_SEED:,}, got {value:,}")
        if name.endswith("_lr") and isinstance(value, float) and not (math.isfinite(value) and value > 0):
            p.error(f"{opt} must be a finite number > 0, got {value}")
    if args.threads < 1:
        p.error(f"--threads must be >= 1, got {args.threads}")
    device = str(args.device)
    if device != "cpu" and not device.startswith(("cuda", "mps")):
        p.error(f"--device must be cpu, cuda (or cuda:N) or mps, got {device!r}")
    if device.startswith("cuda") and not torch.cuda.is_available():
        p.error(f"--device {device}: this PyTorch sees no CUDA GPU (torch.cuda.is_available() is False); "
                "use --device cpu, or install a CUDA build of PyTorch")
    if device == "mps" and not torch.backends.mps.is_available():
        p.error("--device mps: this machine has no MPS (Apple GPU) backend; use --device cpu")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m explainer.train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--stage", choices=["all", "vae", "vae-decoder", "clip", "unet", "controlnet", "gan", "dit"],
                   default="all")
    p.add_argument("--work", type=Path, default=Path("runs/train"), help="scratch folder for stage outputs")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where the pipeline folder is written")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--vae-images", type=int, default=20_000)
    p.add_argument("--vae-steps", type=int, default=1_200)
    p.add_argument("--vae-batch", type=int, default=16)
    p.add_argument("--vae-lr", type=float, default=1e-3)
    p.add_argument("--dec-steps", type=int, default=3_000, help="decoder fine-tuning steps (stage vae-decoder)")
    p.add_argument("--dec-lr", type=float, default=3e-4)
    p.add_argument("--dec-object-weight", type=float, default=10.0,
                   help="how many times an object pixel counts in the decoder loss")
    p.add_argument("--clip-images", type=int, default=30_000)
    p.add_argument("--clip-steps", type=int, default=1_400)
    p.add_argument("--clip-batch", type=int, default=64)
    p.add_argument("--clip-lr", type=float, default=5e-4)
    p.add_argument("--unet-images", type=int, default=60_000)
    p.add_argument("--unet-steps", type=int, default=6_000)
    p.add_argument("--unet-batch", type=int, default=32)
    p.add_argument("--unet-lr", type=float, default=4e-4)
    p.add_argument("--text-lr", type=float, default=1e-4)
    p.add_argument("--ema", type=float, default=0.999)
    p.add_argument("--cond-dropout", type=float, default=0.1)
    p.add_argument("--two-object-p", type=float, default=0.5, help="share of two-object scenes in U-Net data")
    p.add_argument("--data-seed", type=int, default=0, help="first scene seed of the U-Net data")
    p.add_argument("--init-from", type=Path, default=None,
                   help="continue the U-Net stage from this pipeline folder's unet/ and text_encoder/")
    p.add_argument("--save-every-min", type=float, default=10.0, help="write the pipeline folder this often")
    # --stage controlnet (not part of --stage all): a ControlNet for the shipped (or --init-from) pipeline
    p.add_argument("--condition", choices=["edges", "segmentation"], default="edges",
                   help="control map of --stage controlnet")
    p.add_argument("--cn-images", type=int, default=4_000, help="training scenes of --stage controlnet")
    p.add_argument("--cn-steps", type=int, default=2_500)
    p.add_argument("--cn-batch", type=int, default=8)
    p.add_argument("--cn-lr", type=float, default=1e-3)
    p.add_argument("--cn-ema", type=float, default=0.0, help="EMA decay of the ControlNet weights (0 = off)")
    p.add_argument("--cn-eval-every", type=int, default=50, help="measure map-following every N steps")
    p.add_argument("--cn-eval-n", type=int, default=12, help="validation scenes per measurement")
    p.add_argument("--cn-save-every", type=int, default=250)
    p.add_argument("--cn-max-minutes", type=float, default=None,
                   help="stop (measure, save) once training has run this long; the log records the step reached")
    p.add_argument("--out-controlnet", type=Path, default=None,
                   help="ControlNet folder to write (default explainer/assets/controlnet-<condition>)")
    # --stage gan (not part of --stage all): a text-conditional GAN on the same scenes, VAE and text encoder
    p.add_argument("--gan-steps", type=int, default=6_000, help="updates of --stage gan")
    p.add_argument("--gan-batch", type=int, default=32)
    p.add_argument("--gan-lr", type=float, default=1e-4, help="generator learning rate (constant)")
    p.add_argument("--gan-d-lr-mult", type=float, default=4.0, help="discriminator lr = this x --gan-lr (TTUR)")
    p.add_argument("--gan-seed", type=int, default=0)
    p.add_argument("--gan-ema", type=float, default=0.999, help="EMA decay of the shipped generator weights")
    p.add_argument("--gan-mismatch", type=float, default=0.5,
                   help="weight of real-image/wrong-caption negatives in the discriminator's fake term (0 to 1)")
    p.add_argument("--gan-images", type=int, default=60_000)
    p.add_argument("--gan-log-every", type=int, default=50)
    p.add_argument("--gan-eval-every", type=int, default=200, help="judge samples every N steps (multiple of log)")
    p.add_argument("--gan-minutes", type=float, default=None,
                   help="stop (measure, save) once training has run this long; the log records the step reached")
    p.add_argument("--gan-text-from", type=Path, default=None,
                   help="pipeline folder whose text_encoder/tokenizer/vae the GAN uses (default shapes-sd)")
    # --stage dit (not part of --stage all): an SD3-style MMDiT on the shipped VAE and (frozen) text encoders
    p.add_argument("--dit-steps", type=int, default=3_000, help="updates of --stage dit")
    p.add_argument("--dit-batch", type=int, default=32)
    p.add_argument("--dit-lr", type=float, default=3e-4)
    p.add_argument("--dit-images", type=int, default=60_000, help="training scenes of --stage dit")
    p.add_argument("--dit-layers", type=int, default=5, help="joint-attention transformer blocks")
    p.add_argument("--dit-heads", type=int, default=4)
    p.add_argument("--dit-head-dim", type=int, default=32)
    p.add_argument("--dit-patch", type=int, choices=[1, 2], default=1, help="latent pixels per patch side")
    p.add_argument("--dit-resume", type=Path, default=None,
                   help="a shapes-dit pipeline folder whose transformer training continues (its sizes are kept; "
                        "training.json adds the updates and seconds of the earlier runs)")
    p.add_argument("--dit-max-minutes", type=float, default=None,
                   help="stop (and save) once training has run this long; training.json records the step reached")
    args = p.parse_args(argv)
    if args.stage == "dit":
        from .dit import DEFAULT_DIT_OUT

        if args.out == DEFAULT_OUT:
            args.out = DEFAULT_DIT_OUT
        for name in ("dit_steps", "dit_batch", "dit_images", "dit_layers", "dit_heads", "dit_head_dim"):
            if getattr(args, name) < 1:
                p.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
        if not args.dit_lr > 0:
            p.error(f"--dit-lr must be > 0, got {args.dit_lr}")
        if args.dit_resume is not None and not (args.dit_resume / "transformer" / "config.json").is_file():
            p.error(f"--dit-resume must be a pipeline folder with transformer/, got {args.dit_resume}")
        if args.data_seed < 0 or args.data_seed + args.dit_images > VAL_SEED:
            p.error(f"--data-seed must be from 0 to {VAL_SEED - args.dit_images:,} with --dit-images "
                    f"{args.dit_images:,}, got {args.data_seed}")
    if args.stage == "gan":
        if args.out == DEFAULT_OUT:
            args.out = DEFAULT_OUT.parent / "shapes-gan"
        for name in ("gan_steps", "gan_batch", "gan_images", "gan_log_every", "gan_eval_every"):
            if getattr(args, name) < (0 if name == "gan_steps" else 1):
                p.error(f"--{name.replace('_', '-')} must be >= {0 if name == 'gan_steps' else 1}, "
                        f"got {getattr(args, name)}")
        if args.gan_eval_every % args.gan_log_every:
            p.error(f"--gan-eval-every must be a multiple of --gan-log-every ({args.gan_log_every}), "
                    f"got {args.gan_eval_every}")
        if not 0.0 <= args.gan_mismatch <= 1.0:
            p.error(f"--gan-mismatch must be from 0 to 1, got {args.gan_mismatch}")
        if not args.gan_lr > 0:
            p.error(f"--gan-lr must be > 0, got {args.gan_lr}")
    _check_common_args(p, args)
    # Checked before any heavy work: training data must never reach the evaluation scenes (seeds >= VAL_SEED).
    if not 0.0 <= args.two_object_p <= 1.0:
        p.error(f"--two-object-p must be from 0 to 1, got {args.two_object_p}")
    if args.data_seed < 0 or args.data_seed + args.unet_images > VAL_SEED:
        p.error(f"--data-seed must be from 0 to {VAL_SEED - args.unet_images:,} (with --unet-images "
                f"{args.unet_images:,}, so training scenes stay below the evaluation seeds), got {args.data_seed}")
    if args.dec_object_weight < 1.0:
        p.error(f"--dec-object-weight must be >= 1 (1 = plain loss), got {args.dec_object_weight}")
    if args.init_from is not None and not (args.init_from / "unet").is_dir():
        p.error(f"--init-from must be a pipeline folder with unet/ and text_encoder/, got {args.init_from}")
    torch.set_num_threads(args.threads)
    args.work.mkdir(parents=True, exist_ok=True)
    if args.stage in ("all", "vae"):
        train_vae(args)
    if args.stage in ("all", "vae-decoder"):
        train_vae_decoder(args)
    if args.stage in ("all", "clip"):
        train_clip(args)
    if args.stage in ("all", "unet"):
        train_unet(args)
    if args.stage == "controlnet":
        from .controlnet import train_controlnet

        train_controlnet(args)
    if args.stage == "gan":
        from .gan import train_gan

        train_gan(args)
    if args.stage == "dit":
        from .dit import train_dit

        train_dit(args)


if __name__ == "__main__":
    main()
