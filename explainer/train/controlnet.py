"""Train a ControlNet for the shipped shapes model: `python -m explainer.train --stage controlnet --condition edges`.

The ControlNet is `ControlNetModel.from_unet(shipped U-Net)`: a trainable copy of the U-Net's encoder half (conv_in,
time embedding, the three down blocks and the mid block) plus a small conditioning embedding that turns the 32x32
control map into 8x8 features (two stride-2 convolutions: the VAE's 4x factor), and one zero-initialised 1x1
convolution per residual it hands to the frozen U-Net. The U-Net, VAE and text encoder stay frozen; only the
ControlNet learns, with the usual epsilon-prediction loss on the DDPM schedule the U-Net was trained with.

Every `--cn-eval-every` steps the run generates a fixed validation set (scenes never trained on, prompts that name
what to draw but not where) and measures how well the output follows the map (layout IoU, judged placement), so the
log shows the "sudden convergence": the loss falls smoothly while map-following jumps.
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

from ..shapes import CONDITIONS, caption_for, make_dataset, render_condition

ASSETS = Path(__file__).resolve().parents[1] / "assets"
SHIPPED = ASSETS / "shapes-sd"
#: conditioning embedding channels: conv_in + 2 stride-2 convolutions = 32x32 map -> 8x8 features (VAE factor 4)
COND_CHANNELS = (16, 32, 64)


def control_tensor(images) -> torch.Tensor:
    """uint8 (n, h, w, 3) or a list of PIL images -> float (n, 3, h, w) in [0, 1], as the ControlNet pipeline
    feeds it."""
    a = np.stack([np.asarray(im) for im in images]) if not isinstance(images, np.ndarray) else images
    return torch.from_numpy(a).permute(0, 3, 1, 2).float().div(255.0)


def build_controlnet(unet, zero_hint: bool = False):
    """The ControlNet for `unet`: its encoder copied (weights and all), zero convolutions, a 4x map embedding."""
    from diffusers import ControlNetModel

    cn = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=COND_CHANNELS,
                                   load_weights_from_unet=True)
    if not zero_hint:
        # diffusers zero-initialises the map embedding's last conv too; with the output zero convolutions also at zero,
        # each waits on the other (a saddle that takes thousands of steps to leave). A random last conv keeps the
        # promise that matters (the U-Net's output is unchanged at step 0: the output convolutions are zero) and lets
        # the map's features reach the zero convolutions' gradients from the first step.
        torch.manual_seed(0)
        cn.controlnet_cond_embedding.conv_out.reset_parameters()
    return cn


def controlnet_pipeline(base, controlnet):
    """A StableDiffusionControlNetPipeline from a StableDiffusionPipeline's parts and `controlnet`."""
    from diffusers import StableDiffusionControlNetPipeline

    pipe = StableDiffusionControlNetPipeline(
        vae=base.vae, text_encoder=base.text_encoder, tokenizer=base.tokenizer, unet=base.unet, controlnet=controlnet,
        scheduler=base.scheduler, safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def evaluate(pipe, scenes, condition: str, steps: int = 12, cfg: float = 5.0, scale: float = 1.0, seed: int = 0,
             batch: int = 16) -> dict:
    """Generate the validation scenes from their maps and layout prompts; score how well the output follows the map."""
    from ..experiments.controlnet import layout_prompt, score_layout

    images = []
    for i in range(0, len(scenes), batch):
        chunk = scenes[i:i + batch]
        gens = [torch.Generator().manual_seed(seed + i + k) for k in range(len(chunk))]
        out = pipe([layout_prompt(s) for s in chunk], image=[render_condition(s, condition) for s in chunk],
                   num_inference_steps=steps, guidance_scale=cfg, controlnet_conditioning_scale=scale,
                   generator=gens, output_type="pil")
        images.extend(out.images)
    return score_layout(images, scenes).as_dict()


def controlnet_loss(controlnet, unet, text_encoder, noise_sched, z0, noise, t, ids, cond) -> torch.Tensor:
    """The training loss: noise z0 to step t, let the frozen U-Net predict the noise with the ControlNet's residuals
    added to its skips and mid block, mean squared error against the true noise (epsilon prediction)."""
    zt = noise_sched.add_noise(z0, noise, t)
    with torch.no_grad():
        emb = text_encoder(ids).last_hidden_state
    down, mid = controlnet(zt, t, emb, controlnet_cond=cond, return_dict=False)
    pred = unet(zt, t, emb, down_block_additional_residuals=down, mid_block_additional_residual=mid).sample
    return F.mse_loss(pred, noise)


def train_controlnet(args) -> None:
    from diffusers import DDPMScheduler, StableDiffusionPipeline
    from diffusers.training_utils import EMAModel

    from ..experiments.controlnet import validation_scenes

    if args.condition not in CONDITIONS:
        raise ValueError(f"--condition must be one of {CONDITIONS}, got {args.condition!r}")
    torch.manual_seed(args.seed)
    work = args.work / f"controlnet-{args.condition}"
    work.mkdir(parents=True, exist_ok=True)
    log_path = work / "log.jsonl"
    log_path.write_text("")
    base_path = args.init_from or SHIPPED
    base = StableDiffusionPipeline.from_pretrained(base_path, torch_dtype=torch.float32, safety_checker=None,
                                                   requires_safety_checker=False)
    base.set_progress_bar_config(disable=True)
    for m in (base.unet, base.vae, base.text_encoder):
        m.requires_grad_(False)
        m.eval()
    vae, unet, text_encoder, tok = base.vae, base.unet, base.text_encoder, base.tokenizer
    controlnet = build_controlnet(unet)
    vae.to(args.device)
    unet.to(args.device)
    text_encoder.to(args.device)
    controlnet.to(args.device).train()

    # Render the scenes and their maps once, encode the images once; sample z ~ q(z|x) per step.
    images, _, scenes = make_dataset(args.cn_images, start_seed=args.data_seed, two_object_p=args.two_object_p)
    conds = control_tensor(np.stack([np.asarray(render_condition(s, args.condition)) for s in
                                     tqdm(scenes, desc=f"render {args.condition} maps")]))
    x_all = torch.from_numpy(images).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)
    means, stds = [], []
    with torch.no_grad():
        for i in tqdm(range(0, len(x_all), 256), desc="encode latents"):
            d = vae.encode(x_all[i:i + 256].to(args.device)).latent_dist
            means.append(d.mean.cpu())
            stds.append(d.std.cpu())
    mean, std = torch.cat(means), torch.cat(stds)
    del x_all, images
    scale = vae.config.scaling_factor

    noise_sched = DDPMScheduler(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012,
                                beta_schedule="scaled_linear")
    ema = (EMAModel(controlnet.parameters(), decay=args.cn_ema, use_ema_warmup=True, power=0.75)
           if args.cn_ema > 0 else None)
    opt = torch.optim.AdamW(controlnet.parameters(), lr=args.cn_lr, weight_decay=0.0)
    gen = torch.Generator().manual_seed(args.seed)
    rng = random.Random(args.seed)
    val = validation_scenes(args.cn_eval_n)
    pipe = controlnet_pipeline(base, controlnet)
    t0 = time.time()

    def log(record: dict) -> None:
        with open(log_path, "a") as f:
            f.write(json.dumps(record) + "\n")

    def run_eval(step: int) -> dict:
        controlnet.eval()
        if ema is not None:
            ema.store(controlnet.parameters())
            ema.copy_to(controlnet.parameters())
        with torch.no_grad():
            score = evaluate(pipe, val, args.condition)
        if ema is not None:
            ema.restore(controlnet.parameters())
        controlnet.train()
        rec = {"step": step, "eval": score, "s": round(time.time() - t0, 1)}
        log(rec)
        return score

    score = run_eval(0)
    losses: list[float] = []
    for step in (bar := tqdm(range(1, args.cn_steps + 1), desc=f"controlnet {args.condition}")):
        warm = min(1.0, step / 100)
        for g in opt.param_groups:
            g["lr"] = args.cn_lr * warm
        idx = torch.randint(0, len(mean), (args.cn_batch,), generator=gen)
        # re-worded captions every time, ~10 % empty (so the ControlNet also works unconditionally / under CFG)
        captions = [caption_for(scenes[i], rng) if rng.random() > args.cond_dropout else "" for i in idx.tolist()]
        ids = tok(captions, padding="max_length", max_length=tok.model_max_length, truncation=True,
                  return_tensors="pt").input_ids.to(args.device)
        z0 = (mean[idx] + std[idx] * torch.randn(mean[idx].shape, generator=gen)).to(args.device) * scale
        noise = torch.randn(z0.shape, generator=gen).to(args.device)
        t = torch.randint(0, 1000, (len(idx),), generator=gen).to(args.device)
        loss = controlnet_loss(controlnet, unet, text_encoder, noise_sched, z0, noise, t, ids,
                               conds[idx].to(args.device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(controlnet.parameters(), 1.0)
        opt.step()
        if ema is not None:
            ema.step(controlnet.parameters())
        losses.append(loss.item())
        if step % 25 == 0:
            log({"step": step, "loss": float(np.mean(losses[-25:])), "s": round(time.time() - t0, 1)})
            bar.set_postfix(loss=f"{np.mean(losses[-25:]):.4f}", iou=f"{score['iou']:.2f}")
        if step % args.cn_eval_every == 0 or step == args.cn_steps:
            score = run_eval(step)
        out_of_time = args.cn_max_minutes is not None and time.time() - t0 > args.cn_max_minutes * 60
        if out_of_time and step % args.cn_eval_every != 0:
            score = run_eval(step)
        if step % args.cn_save_every == 0 or step == args.cn_steps or out_of_time:
            save(controlnet, ema, args, work, step, time.time() - t0, score)
        if out_of_time:
            print(f"stopped at step {step} of {args.cn_steps}: --cn-max-minutes {args.cn_max_minutes} reached")
            break
    print(f"saved {args.out_controlnet or ASSETS / f'controlnet-{args.condition}'}")


def save(controlnet, ema, args, work: Path, step: int, seconds: float, score: dict) -> None:
    """Write the standard diffusers ControlNetModel folder (fp16 safetensors; EMA weights when EMA is on)."""
    import copy

    out = args.out_controlnet or ASSETS / f"controlnet-{args.condition}"
    model = copy.deepcopy(controlnet).cpu()
    if ema is not None:
        ema.copy_to(model.parameters())
    model.to(torch.float16).save_pretrained(out, safe_serialization=True)
    meta = {"condition": args.condition, "steps": step, "seconds": round(seconds, 1), "batch": args.cn_batch,
            "lr": args.cn_lr, "images": args.cn_images, "two_object_p": args.two_object_p, "ema": args.cn_ema,
            "cond_dropout": args.cond_dropout, "seed": args.seed, "threads": torch.get_num_threads(),
            "device": args.device, "conditioning_embedding_out_channels": list(COND_CHANNELS),
            "map_embedding_last_conv": "random init (output zero convolutions at zero)",
            "last_eval": score, "log": "training_log.jsonl"}
    (Path(out) / "training.json").write_text(json.dumps(meta, indent=1))
    # the whole curve ships beside the weights (a few kB), so lessons can show it without re-training
    (Path(out) / "training_log.jsonl").write_text((work / "log.jsonl").read_text())
