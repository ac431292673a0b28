"""Train a ControlNet for the shipped shapes model: `python -m explainer.train --stage controlnet --condition edges`.

The ControlNet is `ControlNetModel.from_unet(shipped U-Net)` (`controlnet_world.build_controlnet`): a trainable copy
of the U-Net's encoder half (conv_in, time embedding, the three down blocks and the mid block) plus a small
conditioning embedding that turns the 32x32 control map into 8x8 features (two stride-2 convolutions: the VAE's 4x
factor), and one zero-initialised 1x1 convolution per residual it hands to the frozen U-Net. The U-Net, VAE and text
encoder stay frozen; only the ControlNet learns, with the usual epsilon-prediction loss on the DDPM schedule the
U-Net was trained with.

Every `--cn-eval-every` steps (and before the first) the run generates a fixed validation set (scenes never trained
on, prompts that name what to draw but not where) and measures how well the output follows the map (layout IoU,
judged placement), so the log shows the "sudden convergence": the loss falls smoothly while map-following jumps.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from ..controlnet_world import (  # noqa: F401 (build_controlnet, controlnet_pipeline: this stage's model)
    COND_CHANNELS,
    build_controlnet,
    control_tensor,
    controlnet_loss,
    controlnet_pipeline,
    layout_prompt,
    score_layout,
    validation_scenes,
)
from ..generation import seed_generator
from ..shapes import CONDITIONS, EVAL_SEED, caption_for, make_dataset, render_condition
from . import flags
from .common import Stage, captions, encode_posterior, fit, sample_posterior, sd_noise_schedule, token_ids

SHIPPED = flags.ASSETS / "shapes-sd"


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("--stage controlnet (not in all): a ControlNet for the shipped (or --init-from) pipeline")
    g.add_argument("--condition", choices=list(CONDITIONS), default="edges", help="control map")
    g.add_argument("--cn-images", type=int, default=4_000, help="training scenes")
    g.add_argument("--cn-steps", type=int, default=2_500)
    g.add_argument("--cn-batch", type=int, default=8)
    g.add_argument("--cn-lr", type=float, default=1e-3)
    g.add_argument("--cn-eval-every", type=int, default=50, help="measure map-following every N steps")
    g.add_argument("--cn-eval-n", type=int, default=12, help="validation scenes per measurement")


def check_arguments(args: argparse.Namespace, error: flags.Error) -> None:
    if args.data_seed + args.cn_images > EVAL_SEED:
        error(f"--data-seed must be from 0 to {EVAL_SEED - args.cn_images:,} with --cn-images {args.cn_images:,}, "
              f"got {args.data_seed}")
    flags.check_checkpoint(args, error, f"cn-{args.condition}")


def evaluate(pipe, scenes, condition: str, steps: int = 12, cfg: float = 5.0, scale: float = 1.0, seed: int = 0,
             batch: int = 16) -> dict:
    """Generate the validation scenes from their maps and layout prompts; score how well the output follows the map."""
    images = []
    for i in range(0, len(scenes), batch):
        chunk = scenes[i:i + batch]
        gens = [seed_generator(seed + i + k) for k in range(len(chunk))]
        out = pipe([layout_prompt(s) for s in chunk], image=[render_condition(s, condition) for s in chunk],
                   num_inference_steps=steps, guidance_scale=cfg, controlnet_conditioning_scale=scale,
                   generator=gens, output_type="pil")
        images.extend(out.images)
    return score_layout(images, scenes).as_dict()


class ControlNetStage(Stage):
    def __init__(self, args: argparse.Namespace, run_dir: Path):
        self.args, self.run_dir = args, run_dir
        self.name = f"controlnet {args.condition}"

    def setup(self, device: torch.device) -> None:
        from diffusers import StableDiffusionPipeline
        from tqdm.auto import tqdm

        a = self.args
        self.device = device
        base = StableDiffusionPipeline.from_pretrained(a.init_from or SHIPPED, torch_dtype=torch.float32,
                                                       safety_checker=None, requires_safety_checker=False)
        base.set_progress_bar_config(disable=True)
        for m in (base.unet, base.vae, base.text_encoder):
            m.requires_grad_(False)
            m.eval()
            m.to(device)
        self.base = base
        # Render the scenes and their maps once, encode the images once; sample z ~ q(z|x) per step.
        images, _, self.scenes = make_dataset(a.cn_images, start_seed=a.data_seed, two_object_p=a.two_object_p)
        self.conds = control_tensor(np.stack([np.asarray(render_condition(s, a.condition)) for s in
                                              tqdm(self.scenes, desc=f"render {a.condition} maps")]))
        self.mean, self.std = encode_posterior(base.vae, images, device)
        self.scale = base.vae.config.scaling_factor
        self.noise_sched = sd_noise_schedule()
        self.val = validation_scenes(a.cn_eval_n)

    def model(self):
        return build_controlnet(self.base.unet)

    def batches(self, generator: torch.Generator):
        tok, a = self.base.tokenizer, self.args
        while True:
            idx = torch.randint(0, len(self.mean), (a.cn_batch,), generator=generator)
            # re-worded captions every time, some empty (so the ControlNet also works unconditionally / under CFG)
            ids = token_ids(tok, captions(self.scenes, idx, generator, caption_for, a.cond_dropout))
            z0 = sample_posterior(self.mean, self.std, idx, generator, self.scale)
            yield {"ids": ids, "z0": z0, "noise": torch.randn(z0.shape, generator=generator),
                   "t": torch.randint(0, 1000, (len(idx),), generator=generator), "cond": self.conds[idx]}

    def loss(self, b):
        loss = controlnet_loss(self.prepared, self.base.unet, self.base.text_encoder, self.noise_sched, b["z0"],
                               b["noise"], b["t"], b["ids"], b["cond"])
        return loss, {}

    def evaluate(self, model) -> dict:
        return evaluate(controlnet_pipeline(self.base, model), self.val, self.args.condition)

    def save(self, model, out: Path) -> None:
        """The standard diffusers ControlNetModel folder (fp16 safetensors), its record and its training curve."""
        a = self.args
        model = model.cpu().to(torch.float16)
        model.save_pretrained(out, safe_serialization=True)
        state = json.loads((self.run_dir / "checkpoint" / "state.json").read_text())
        log = [json.loads(line) for line in (self.run_dir / "log.jsonl").read_text().splitlines()]
        evals = [r["eval"] for r in log if "eval" in r]
        meta = {"condition": a.condition, "steps": state["step"], "seconds": round(60 * state["minutes"], 1),
                "batch": a.cn_batch, "lr": a.cn_lr, "images": a.cn_images, "two_object_p": a.two_object_p,
                "ema": a.ema or 0.0, "cond_dropout": a.cond_dropout, "seed": a.seed,
                "threads": torch.get_num_threads(), "device": a.device,
                "conditioning_embedding_out_channels": list(COND_CHANNELS),
                "map_embedding_last_conv": "random init (output zero convolutions at zero)",
                "last_eval": evals[-1] if evals else None, "log": "training_log.jsonl"}
        (Path(out) / "training.json").write_text(json.dumps(meta, indent=1))
        # the whole curve ships beside the weights (a few kB), so lessons can show it without re-training
        (Path(out) / "training_log.jsonl").write_text((self.run_dir / "log.jsonl").read_text())


def run(args: argparse.Namespace):
    """--stage controlnet: fit a ControlNet and write its folder."""
    out = flags.out_folder(args, f"controlnet-{args.condition}")
    cfg = flags.fit_config(args, f"cn-{args.condition}", args.cn_steps, args.cn_lr, out, ema=None,
                           schedule="constant_with_warmup", warmup=100, eval_every=args.cn_eval_every,
                           eval_first=True)
    result = fit(ControlNetStage(args, cfg.run_dir), cfg)
    print(f"saved {result.out} after {result.steps_done} steps: {result.evaluation}")
    return result
