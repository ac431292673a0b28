"""Train `scenes-sd`, the scenes world's model: `python -m explainer.train --world scenes --stage all` (or one stage:
data|vae|clip|judge|unet|assemble; on a GPU: `--device cuda --workers 16` and larger batches).

Every part is the class Stable Diffusion 1.x uses, small: a word-level tokenizer, a CLIP trained contrastively on the
world and then frozen (as SD 1.x keeps its text encoder frozen), an `AutoencoderKL` with SD's factor 8 (64×64×3 →
8×8×8), a `UNet2DConditionModel` (ε-prediction, Min-SNR-5, 10 % empty captions for CFG, EMA), DPM++ 2M.
Each stage trains through the one loop (`train.common.fit`): fixed seeds, tqdm, resumable from `--work/<stage>/`
(run it again and it continues from its checkpoint), `--max-minutes` to stop and come back.
"""

from __future__ import annotations

import argparse
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .. import validation as V
from ..worlds.scenes import EVAL_SEED, IMAGE_SIZE, JUDGE_SEED, KINDS, caption_for, vocabulary
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
from .components import build_tokenizer
from .scenes_card import text_updates, write_card
from .scenes_data import CHUNK, ScenesData, mix_weight, parse_mix, scenes_dataset
from .scenes_judge import JudgeStage, judge_accuracy, round_trips

LATENT_CHANNELS = 8  # 64×64×3 -> 8×8×8 (24× fewer values; SD 1.x: 48× with 4 channels, SD3: 12× with 16).
# Measured (1,000 unseen scenes, the shipped judge): 8 channels after 2,600 updates 27.3 dB, the judge reads colour
# 56.1 %, things 83.8 %; 16 channels after 2,800 updates 27.6 dB, colour 56.1 %, things 83.4 %. Twice the channels
# buy nothing at this budget: the blur is the decoder's, not the latent's size.
# Sizes: the whole pipeline folder in fp16 within 20 MB (U-Net 7.0 M, VAE 1.3 M, CLIP 0.9 M parameters).
MAX_TOKENS = 32
TEXT_DIM = 128


# --- components -------------------------------------------------------------------------------------------------
def build_vae():
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=LATENT_CHANNELS, sample_size=IMAGE_SIZE,
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(32, 64, 64, 64), layers_per_block=1, norm_num_groups=16,
    )


def build_clip(tokenizer):
    from transformers import CLIPConfig, CLIPModel, CLIPTextConfig, CLIPVisionConfig

    text = CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=TEXT_DIM, intermediate_size=256, num_hidden_layers=3,
        num_attention_heads=4, max_position_embeddings=MAX_TOKENS, projection_dim=96,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )
    vision = CLIPVisionConfig(image_size=IMAGE_SIZE, patch_size=8, num_channels=3, hidden_size=128,
                              intermediate_size=256, num_hidden_layers=3, num_attention_heads=4, projection_dim=96)
    return CLIPModel(CLIPConfig(text_config=text.to_dict(), vision_config=vision.to_dict(), projection_dim=96))


def build_unet():
    from diffusers import UNet2DConditionModel

    # 8×8 -> 4×4 -> 2×2 and back; self- and cross-attention at every level.
    return UNet2DConditionModel(
        sample_size=IMAGE_SIZE // 8, in_channels=LATENT_CHANNELS, out_channels=LATENT_CHANNELS, layers_per_block=1,
        block_out_channels=(64, 128, 128),
        down_block_types=("CrossAttnDownBlock2D",) * 3, up_block_types=("CrossAttnUpBlock2D",) * 3,
        cross_attention_dim=TEXT_DIM, attention_head_dim=8, norm_num_groups=16,
    )


def scenes_tokenizer():
    return build_tokenizer(vocabulary(), MAX_TOKENS)


# --- stages -----------------------------------------------------------------------------------------------------
class VAEStage(Stage):
    """AutoencoderKL on rendered scenes; the pixels of things weigh `thing_weight`× (they are a small share)."""

    name = "vae"

    def __init__(self, data: ScenesData, val: ScenesData, batch: int = 16, thing_weight: float = 4.0):
        self.data, self.val, self.batch, self.thing_weight = data, val, batch, thing_weight
        self.vae = build_vae()

    def model(self):
        return self.vae

    def batches(self, generator: torch.Generator) -> Iterator:
        while True:
            idx = torch.randint(0, len(self.data), (self.batch,), generator=generator).numpy()
            x = to_pixels(self.data.images[idx])
            w = 1 + (self.thing_weight - 1) * torch.from_numpy(self.data.things[idx]).float()[:, None]
            yield x, w

    def loss(self, batch):
        x, w = batch
        post = self.vae.encode(x).latent_dist
        rec = self.vae.decode(post.sample()).sample
        return self.reconstruction(rec, x, w) + 1e-6 * post.kl().mean(), {"mse": F.mse_loss(rec.detach(), x)}

    @staticmethod
    def reconstruction(rec: torch.Tensor, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """Weighted MSE + half the weighted L1 (things' pixels weigh more: they are a small share of the picture)."""
        return ((rec - x) ** 2 * w).mean() + 0.5 * ((rec - x).abs() * w).mean()

    def evaluate(self, vae) -> dict[str, float]:
        x = to_pixels(self.val.images[:256]).to(self.device)
        rec = torch.cat([vae.decode(vae.encode(x[i:i + 64]).latent_dist.mean).sample for i in range(0, len(x), 64)])
        mse = F.mse_loss((rec.clamp(-1, 1) + 1) / 2, (x + 1) / 2).item()
        return {"val_mse_01": mse, "psnr_db": float(10 * np.log10(1 / mse))}

    def save(self, vae, out: Path) -> None:
        x = to_pixels(self.val.images[:512]).to(self.device)
        with torch.no_grad():
            lat = torch.cat([vae.encode(x[i:i + 128]).latent_dist.mean for i in range(0, len(x), 128)])
        vae.register_to_config(scaling_factor=1.0 / lat.std().item())
        vae.save_pretrained(out, safe_serialization=True)


class VAEDecoderStage(VAEStage):
    """Fine-tune only the decoder, the encoder frozen (as Stability AI's sd-vae-ft-mse did for Stable Diffusion): the
    latents a U-Net learned stay the same, only how they are drawn as pixels improves. Things' pixels weigh
    `thing_weight`×; evaluated by PSNR and by what the scenes judge reads on the round trips."""

    name = "vae-decoder"

    def __init__(self, data: ScenesData, val: ScenesData, src: Path, batch: int = 16, thing_weight: float = 8.0):
        from diffusers import AutoencoderKL

        super().__init__(data, val, batch, thing_weight)
        self.vae = AutoencoderKL.from_pretrained(src).float()
        self.vae.requires_grad_(False)
        for part in (self.vae.decoder, self.vae.post_quant_conv):
            part.requires_grad_(True)

    def loss(self, batch):
        x, w = batch
        vae = self.prepared or self.vae
        with torch.no_grad():  # z ~ q(z|x): the decoder must draw every latent the U-Net may land on
            z = vae.encode(x).latent_dist.sample()
        rec = vae.decode(z).sample
        return self.reconstruction(rec, x, w), {"mse": F.mse_loss(rec.detach(), x)}

    def evaluate(self, vae) -> dict[str, float]:
        from ..worlds.scenes_judge import load_judge

        trips = round_trips(vae, self.val.images[:1000])
        read = judge_accuracy(load_judge(), trips, self.val.scenes[:1000])
        return super().evaluate(vae) | {f"judge_{k}": v for k, v in read.items() if k != "n"}

    def save(self, vae, out: Path) -> None:  # the encoder, and so the latents' scaling factor, are unchanged
        vae.save_pretrained(out, safe_serialization=True)


class CLIPStage(Stage):
    """A CLIPModel trained contrastively on image / caption pairs, a fresh wording of the caption every time."""

    name = "clip"

    def __init__(self, data: ScenesData, batch: int = 64):
        self.data, self.batch = data, batch
        self.tok = scenes_tokenizer()
        self.clip = build_clip(self.tok)

    def model(self):
        return self.clip

    def optimizer(self, params, cfg):
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.05)

    def batches(self, generator):
        while True:
            idx = torch.randint(0, len(self.data), (self.batch,), generator=generator)
            ids = token_ids(self.tok, captions(self.data.scenes, idx, generator, caption_for))
            yield ids, to_pixels(self.data.images[idx.numpy()])

    def loss(self, batch):
        ids, pix = batch
        out = (self.prepared or self.clip)(input_ids=ids, pixel_values=pix, return_loss=True)
        acc = (out.logits_per_text.argmax(1) == torch.arange(len(ids), device=ids.device)).float().mean()
        return out.loss, {"top1": acc}

    def save(self, clip, out: Path) -> None:
        clip.save_pretrained(out, safe_serialization=True)
        self.tok.save_pretrained(out / "tokenizer")


class UNetStage(Stage):
    """ε-prediction on cached VAE posteriors, Min-SNR-5 weighting, 10 % empty captions; the CLIP text tower frozen
    (as SD 1.x), or with `text_lr` > 0 fine-tuned with the U-Net at that learning rate (to measure what freezing
    costs)."""

    name = "unet"

    def __init__(self, data: ScenesData, latents: tuple[torch.Tensor, torch.Tensor], scale: float, text_encoder,
                 tokenizer, batch: int = 32, cond_dropout: float = 0.1, text_lr: float = 0.0,
                 mix: dict[str, float] | None = None, save_text: bool = False):
        self.data, (self.mean, self.std), self.scale = data, latents, scale
        # how often each scene is drawn, relative to the data (`--unet-mix pair=2,boat=3`): None = uniform
        self.weights = None if not mix else torch.tensor([mix_weight(s, mix) for s in data.scenes],
                                                         dtype=torch.float64)
        self.text_lr, self.tok, self.save_text = text_lr, tokenizer, save_text or text_lr > 0
        self.text_encoder = text_encoder.requires_grad_(text_lr > 0).train(text_lr > 0)
        self.batch, self.cond_dropout = batch, cond_dropout
        self.noise = sd_noise_schedule()
        self.unet = build_unet()
        self.parts = torch.nn.ModuleDict({"unet": self.unet, "text_encoder": self.text_encoder})

    def setup(self, device):
        super().setup(device)
        self.text_encoder.to(device)

    def model(self):
        return self.parts if self.text_lr else self.unet

    def optimizer(self, params, cfg):
        if not self.text_lr:
            return super().optimizer(params, cfg)
        return torch.optim.AdamW([{"params": self.unet.parameters(), "lr": cfg.lr},
                                  {"params": self.text_encoder.parameters(), "lr": self.text_lr}],
                                 weight_decay=cfg.weight_decay)

    def batches(self, generator):
        while True:
            idx = (torch.randint(0, len(self.data), (self.batch,), generator=generator) if self.weights is None else
                   torch.multinomial(self.weights, self.batch, replacement=True, generator=generator))
            z = sample_posterior(self.mean, self.std, idx, generator, self.scale)
            ids = token_ids(self.tok, captions(self.data.scenes, idx, generator, caption_for, self.cond_dropout))
            t = torch.randint(0, 1000, (self.batch,), generator=generator)
            eps = torch.randn(z.shape, generator=generator)
            yield z, ids, t, eps

    def loss(self, batch):
        z, ids, t, eps = batch
        model = self.prepared or self.model()
        unet, text = (model["unet"], model["text_encoder"]) if self.text_lr else (model, self.text_encoder)
        with torch.set_grad_enabled(bool(self.text_lr)):
            cond = text(ids)[0]
        noisy = self.noise.add_noise(z, eps, t)
        pred = unet(noisy, t, encoder_hidden_states=cond).sample
        return min_snr_eps_loss(pred, eps, self.noise.alphas_cumprod, t), {}

    def save(self, model, out: Path) -> None:
        """The U-Net to `out`; its text tower beside it (`out/../text_encoder`, a `CLIPTextModel`) when it was
        fine-tuned here or came with `--init-from` (`--init-text pipeline`: not the work's CLIP)."""
        from transformers import CLIPTextModel

        text_dir = out.parent / "text_encoder"
        shutil.rmtree(text_dir, ignore_errors=True)  # never a stale one from an earlier run in this --work
        (model["unet"] if self.text_lr else model).save_pretrained(out, safe_serialization=True)
        if self.save_text:
            text = tower = model["text_encoder"] if self.text_lr else self.text_encoder
            if not isinstance(text, CLIPTextModel):  # CLIPModel's text tower is a bare transformer in older releases
                text = CLIPTextModel(tower.config)
                getattr(text, "text_model", text).load_state_dict(tower.state_dict())
            text.save_pretrained(text_dir, safe_serialization=True)


STAGES = ("all", "data", "vae", "vae-decoder", "clip", "judge", "unet", "assemble")
ALL = ("data", "vae", "vae-decoder", "clip", "judge", "unet")  # what --stage all runs, in order


def _cfg(args, stage: str, steps: int, lr: float, ema: float | None = None, **kw) -> FitConfig:
    return flags.fit_config(args, stage, steps, lr, args.work / stage / "model", ema=ema, **kw)


def _record(args, stage: str, res, **extra) -> None:
    """Append this run of `stage` to `--work/<stage>/runs.jsonl` (its flags, updates, minutes, last numbers): the
    model card's training table is read from these."""
    keys = ("images", "steps", "lr", "batch")
    prefix = {"vae-decoder": "dec"}.get(stage, stage)
    rec = {"updates_total": res.steps_done, "minutes": round(res.minutes, 2), "stopped_early": res.stopped_early,
           "threads": torch.get_num_threads(), "device": args.device,
           **{k: getattr(args, f"{prefix}_{k}", None) for k in keys}, "metrics": res.metrics,
           "evaluation": res.evaluation, **extra}
    with open(args.work / stage / "runs.jsonl", "a") as f:
        f.write(json.dumps(rec, default=float) + "\n")


def run_data(args) -> None:
    scenes_dataset(args.work, args.chunk, start=EVAL_SEED, chunk=args.chunk, workers=args.workers)
    scenes_dataset(args.work, args.data_images, chunk=args.chunk, workers=args.workers)


def run_vae(args) -> None:
    data = scenes_dataset(args.work, args.vae_images, chunk=args.chunk)
    val = scenes_dataset(args.work, args.chunk, start=EVAL_SEED, chunk=args.chunk)
    cfg = _cfg(args, "vae", args.vae_steps, args.vae_lr, warmup=200, eval_every=500)
    res = fit(VAEStage(data, val, batch=args.vae_batch), cfg)
    print("vae", res.steps_done, res.evaluation)
    _record(args, "vae", res)


def run_vae_decoder(args) -> None:
    data = scenes_dataset(args.work, args.vae_images, chunk=args.chunk)
    val = scenes_dataset(args.work, args.chunk, start=EVAL_SEED, chunk=args.chunk)
    stage = VAEDecoderStage(data, val, args.work / "vae" / "model", batch=args.dec_batch,
                            thing_weight=args.dec_thing_weight)
    res = fit(stage, _cfg(args, "vae-decoder", args.dec_steps, args.dec_lr, warmup=100, eval_every=1000))
    print("vae-decoder", res.steps_done, res.evaluation)
    _record(args, "vae-decoder", res, images=args.vae_images, thing_weight=args.dec_thing_weight)


def run_clip(args) -> None:
    data = scenes_dataset(args.work, args.clip_images, chunk=args.chunk)
    res = fit(CLIPStage(data, batch=args.clip_batch), _cfg(args, "clip", args.clip_steps, args.clip_lr, warmup=200))
    print("clip", res.steps_done, res.metrics)
    _record(args, "clip", res)


def run_judge(args) -> None:
    data = scenes_dataset(args.work, args.judge_images, start=JUDGE_SEED, chunk=args.chunk)  # held-out combinations too
    val = scenes_dataset(args.work, args.chunk, start=EVAL_SEED, chunk=args.chunk)
    trips = val_trips = None
    if vae_folder(args.work).is_dir():
        val_trips = _round_trips(args.work, val.images[:1000], "eval")
        if args.judge_round_trips:
            trips = _round_trips(args.work, data.images[:args.judge_round_trips], "train")
    stage = JudgeStage(data, val, batch=args.judge_batch, round_trips=trips, val_round_trips=val_trips)
    if args.judge_from is not None:  # fine-tune a trained judge (e.g. the shipped one on a new VAE's round trips)
        from ..worlds.scenes_judge import load_judge

        stage.net.load_state_dict(load_judge(args.judge_from).state_dict())
    res = fit(stage, _cfg(args, "judge", args.judge_steps, args.judge_lr, warmup=100, eval_every=500))
    print("judge", res.steps_done, res.evaluation)
    extra = {}
    if args.judge_from is not None:  # its updates continue those of the judge it started from (earlier runs here)
        prior = _last_log(args.work / "judge")["runs"]
        before = prior[-1]["updates_total"] + prior[-1].get("updates_before", 0) if prior else 0
        extra = {"judge_from": str(args.judge_from), "updates_before": before}
    _record(args, "judge", res, round_trips=len(trips) if trips is not None else 0, first_seed=JUDGE_SEED, **extra)


def _round_trips(work: Path, images: np.ndarray, tag: str) -> np.ndarray:
    """VAE round trips (posterior mean -> decoder) of `images`, uint8, cached in `work/judge` (made again when the
    VAE has trained on since)."""
    from diffusers import AutoencoderKL
    from safetensors.numpy import load_file, save_file

    cache = work / "judge" / f"round_trips_{tag}_{len(images)}.safetensors"
    weights = vae_folder(work) / "diffusion_pytorch_model.safetensors"
    if cache.exists() and cache.stat().st_mtime > weights.stat().st_mtime:
        return load_file(str(cache))["images"]
    trips = round_trips(AutoencoderKL.from_pretrained(weights.parent).eval(), images)
    cache.parent.mkdir(parents=True, exist_ok=True)
    save_file({"images": trips}, str(cache))
    return trips


def text_folder(work: Path) -> Path:
    """The text encoder the pipeline gets: the one the U-Net stage saved (fine-tuned with it, `--text-lr` > 0, or
    taken from `--init-from`) where there is one, else the frozen text tower of the trained CLIP."""
    tuned = work / "unet" / "text_encoder"
    return tuned if tuned.is_dir() else work / "clip" / "model"


def vae_folder(work: Path) -> Path:
    """The VAE the pipeline gets: the decoder fine-tune's where there is one, else the vae stage's."""
    tuned = work / "vae-decoder" / "model"
    return tuned if tuned.is_dir() else work / "vae" / "model"


def run_unet(args) -> None:
    from diffusers import AutoencoderKL
    from transformers import CLIPModel, PreTrainedTokenizerFast

    vae = AutoencoderKL.from_pretrained(args.work / "vae" / "model").eval()
    clip = CLIPModel.from_pretrained(args.work / "clip" / "model", torch_dtype=torch.float32)  # fp16 on disk too
    tok = PreTrainedTokenizerFast.from_pretrained(args.work / "clip" / "model" / "tokenizer")
    carry_text = args.init_from is not None and args.init_text == "pipeline" and args.stage != "all"
    data = scenes_dataset(args.work, args.unet_images, chunk=args.chunk)
    latents = encode_posterior(vae, data.images, cache=args.work / "unet" / f"latents_{args.unet_images}.safetensors")
    stage = UNetStage(data, latents, vae.config.scaling_factor, clip.text_model, tok, batch=args.unet_batch,
                      cond_dropout=args.cond_dropout, text_lr=args.text_lr, mix=args.unet_mix,
                      save_text=carry_text)
    extra = {"text_lr": args.text_lr} | ({"mix": args.unet_mix} if args.unet_mix else {})
    if args.init_from is not None:  # fine-tune: start from a scenes-sd pipeline's U-Net
        from diffusers import UNet2DConditionModel
        from transformers import CLIPTextModel

        stage.unet.load_state_dict(UNet2DConditionModel.from_pretrained(args.init_from / "unet").float().state_dict())
        if carry_text:  # and goes on with the text tower that U-Net was trained against
            text = CLIPTextModel.from_pretrained(args.init_from / "text_encoder", torch_dtype=torch.float32)
            stage.text_encoder.load_state_dict(getattr(text, "text_model", text).state_dict())
        prior = json.loads((args.init_from / "training.json").read_text())["unet"]["runs"]
        before = prior[-1]["updates_total"] + prior[-1].get("updates_before", 0) if prior else 0
        extra |= {"init_from": str(args.init_from), "updates_before": before,
                  "text_updates_before": text_updates(prior)}
    res = fit(stage, _cfg(args, "unet", args.unet_steps, args.unet_lr, ema=0.999, warmup=500))
    print("unet", res.steps_done, res.metrics)
    _record(args, "unet", res, cond_dropout=args.cond_dropout, **extra)
    run_assemble(args)


def run_assemble(args) -> None:
    assemble(args.work, flags.out_folder(args, "scenes-sd"))


def assemble(work: Path, out: Path) -> None:
    """Write the StableDiffusionPipeline folder (safetensors, fp16 on disk), the CLIP pair under `clip/` and the
    scenes judge beside it (`scenes-judge/`)."""
    from diffusers import AutoencoderKL, DPMSolverMultistepScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPModel, CLIPTextModel, PreTrainedTokenizerFast

    clip = CLIPModel.from_pretrained(work / "clip" / "model")
    pipe = StableDiffusionPipeline(
        vae=AutoencoderKL.from_pretrained(vae_folder(work)),
        text_encoder=CLIPTextModel.from_pretrained(text_folder(work)),
        tokenizer=PreTrainedTokenizerFast.from_pretrained(work / "clip" / "model" / "tokenizer"),
        unet=UNet2DConditionModel.from_pretrained(work / "unet" / "model"),
        scheduler=DPMSolverMultistepScheduler.from_config(sd_noise_schedule().config),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    out.mkdir(parents=True, exist_ok=True)
    pipe.to(torch.float16).save_pretrained(out, safe_serialization=True)
    clip.to(torch.float16).save_pretrained(out / "clip", safe_serialization=True)
    if (work / "judge" / "model").is_dir():
        shutil.copytree(work / "judge" / "model", out.parent / "scenes-judge", dirs_exist_ok=True)
    logs = {s: _last_log(work / s) for s in ("vae", "vae-decoder", "clip", "judge", "unet")}
    (out / "training.json").write_text(json.dumps(logs, indent=1))
    write_card(out)
    print("saved", out)


def _last_log(run_dir: Path) -> dict:
    def lines(name):
        path = run_dir / name
        return [json.loads(x) for x in path.read_text().splitlines() if x.strip()] if path.exists() else []

    log = lines("log.jsonl")
    return {"last": next((x for x in reversed(log) if "loss" in x), None),
            "eval": next((x for x in reversed(log) if "eval" in x), None), "runs": lines("runs.jsonl")}


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The scenes world's own flags (`python -m explainer.train --world scenes --stage ...`)."""
    p.set_defaults(work=Path("runs/scenes"))
    g = p.add_argument_group("--world scenes")
    g.add_argument("--data-images", type=int, default=60_000, help="scenes rendered by --stage data")
    g.add_argument("--chunk", type=int, default=CHUNK, help="scenes per file on disk (image counts are multiples)")
    g.add_argument("--workers", type=int, default=1, help="processes rendering scenes (stage data)")
    for name, images, steps, lr, batch in (("vae", 12_000, 12_000, 5e-4, 16), ("clip", 12_000, 3_000, 5e-4, 64),
                                           ("judge", 12_000, 4_000, 2e-3, 64), ("unet", 60_000, 20_000, 3e-4, 32)):
        g.add_argument(f"--{name}-images", type=int, default=images, help=f"training scenes of --stage {name}")
        g.add_argument(f"--{name}-steps", type=int, default=steps)
        g.add_argument(f"--{name}-lr", type=float, default=lr)
        g.add_argument(f"--{name}-batch", type=int, default=batch)
    g.add_argument("--dec-steps", type=int, default=4_000, help="updates of --stage vae-decoder (decoder only)")
    g.add_argument("--dec-lr", type=float, default=2e-4)
    g.add_argument("--dec-batch", type=int, default=16)
    g.add_argument("--dec-thing-weight", type=float, default=8.0,
                   help="how many times a thing's pixel weighs in the decoder's loss (1 = plain)")
    g.add_argument("--judge-round-trips", type=int, default=6_000,
                   help="training scenes the judge also sees as VAE round trips (when the VAE is trained)")
    g.add_argument("--text-lr", type=float, default=0.0,
                   help="0 (default): the CLIP text tower stays frozen while the U-Net trains, as SD 1.x; > 0: it is "
                        "fine-tuned with the U-Net at this learning rate (to measure what freezing costs)")
    g.add_argument("--init-text", choices=("pipeline", "clip"), default="pipeline",
                   help="the text tower a --stage unet --init-from fine-tune reads: the pipeline's own text_encoder "
                        "(pipeline, default: the U-Net goes on with what it was trained against) or --work's clip "
                        "stage (clip: adapt the U-Net to a retrained CLIP; --stage all always does)")
    g.add_argument("--unet-mix", type=parse_mix, default=None, metavar="KEY=W,...",
                   help="while the U-Net trains, draw the scenes that have KEY (a kind of scene: "
                        f"{', '.join(KINDS)}; a thing; a ground; a sky; a relation: left_of, right_of, above, below) W "
                        "times as often as the data holds them (a scene with several keys: the product), e.g. "
                        "pair=2,count=2,boat=3,right_of=2; the rest stay at 1")
    g.add_argument("--init-from", type=Path, default=None,
                   help="a scenes-sd pipeline folder whose unet/ (and text_encoder/, see --init-text) the unet stage "
                        "starts from (a fine-tune); its earlier updates are counted in the card")
    g.add_argument("--judge-from", type=Path, default=None,
                   help="a trained judge folder (model.safetensors + config.json) the judge stage starts from, e.g. "
                        "explainer/assets/scenes-judge to fine-tune it on a new VAE's round trips")


def check_arguments(args: argparse.Namespace, error: flags.Error) -> None:
    """Every scenes flag in range before any scene is rendered."""
    for name in ("chunk", "workers"):
        flags.checked(error, args, name, V.check_positive_int)
    used = ALL if args.stage == "all" else (args.stage,)
    for u in used:
        if u in ("data", "vae", "clip", "judge", "unet"):
            v = getattr(args, f"{u}_images")
            if v % args.chunk:
                error(f"--{u}-images must be a multiple of --chunk {args.chunk}, got {v}")
        if u in ("vae", "vae-decoder", "clip", "judge", "unet"):
            flags.check_checkpoint(args, error, u)
    if "vae-decoder" in used:
        if not args.dec_thing_weight >= 1.0:
            error(f"--dec-thing-weight must be >= 1 (1 = plain loss), got {args.dec_thing_weight}")
        if args.stage == "vae-decoder" and not (args.work / "vae" / "model").is_dir():
            error(f"--stage vae-decoder tunes the VAE under --work: {args.work / 'vae' / 'model'} does not exist "
                  "(run --stage vae first)")
    flags.checked(error, args, "judge_round_trips", V.check_int, 0, args.judge_images)
    if args.init_from is not None and not all((args.init_from / p).exists()
                                              for p in ("unet", "text_encoder", "training.json")):
        error("--init-from must be a scenes-sd pipeline folder with unet/, text_encoder/ and training.json, "
              f"got {args.init_from}")
    if args.judge_from is not None and not (args.judge_from / "model.safetensors").is_file():
        error(f"--judge-from must be a judge folder holding model.safetensors, got {args.judge_from}")


def run(args: argparse.Namespace) -> None:
    stages = {"data": run_data, "vae": run_vae, "vae-decoder": run_vae_decoder, "clip": run_clip, "judge": run_judge,
              "unet": run_unet, "assemble": run_assemble}
    for name in ALL if args.stage == "all" else (args.stage,):
        stages[name](args)
