"""Train shapes-dit: an SD3-style joint-attention diffusion transformer (MMDiT) on the shapes world.

`python -m explainer.train --stage dit` writes a standard `StableDiffusion3Pipeline` folder:

  transformer     SD3Transformer2DModel: every 8x8 latent pixel is one image token (patch size 1); each block
                  attends jointly over image tokens and text tokens (text->image and image->text in one softmax)
  scheduler       FlowMatchEulerDiscreteScheduler (rectified flow, as SD3); trained on the velocity eps - x0
  vae             the shipped shapes-sd AutoencoderKL, unchanged (shift_factor set to 0, scaling_factor kept)
  text_encoder    CLIPTextModelWithProjection: the text tower + text_projection of shapes-sd's contrastive CLIP pair
  text_encoder_2  CLIPTextModelWithProjection: shapes-sd's fine-tuned text encoder (+ the pair's text_projection)
  tokenizer(_2)   the shipped word-level tokenizer (24 tokens); text_encoder_3 / tokenizer_3 = None (T5 zeros)

Both text encoders stay frozen: they are the shipped ones, so the two models read the very same words, and the
DiT's whole budget goes to the transformer. Conditioning is built by the pipeline's own `encode_prompt`, so training
and inference see the same tensors.

The pipeline appends `max_sequence_length` (default 256) all-zero "T5" tokens to the 24 CLIP tokens. Those zero
tokens are identical at every layer (same input, same weights, same attention), so 256 copies act in every softmax
exactly like one copy whose logit is raised by log(256). Training uses that identity (one zero token plus a log-count
bias, `CollapsedPadProcessor`) to save ~3/4 of the compute; `check_collapsed_pad` verifies it matches the standard
processor on 256 real zero tokens.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
from pathlib import Path

import torch
import torch.nn.functional as F

from ..models import sd3_parts_from, write_shared_parts
from ..shapes import EVAL_SEED, caption_for, make_dataset
from . import flags
from .common import Stage, captions, encode_posterior, fit, sample_posterior

SHAPES_SD = flags.ASSETS / "shapes-sd"
EMA = 0.999  # the recipe's EMA decay
T5_ZEROS = 256  # StableDiffusion3Pipeline's default max_sequence_length: the zero tokens appended at inference


def build_transformer(layers: int = 5, heads: int = 4, head_dim: int = 32, patch_size: int = 1):
    """A small SD3Transformer2DModel for 8x8x4 latents and the 2 x 128-wide CLIP features of our text encoders."""
    from diffusers import SD3Transformer2DModel

    return SD3Transformer2DModel(
        sample_size=8, patch_size=patch_size, in_channels=4, out_channels=4, num_layers=layers,
        attention_head_dim=head_dim, num_attention_heads=heads,
        joint_attention_dim=256,  # two CLIP towers of 128 concatenated (the pipeline pads CLIP features to this)
        caption_projection_dim=heads * head_dim,
        pooled_projection_dim=128,  # two 64-wide text_embeds concatenated
        pos_embed_max_size=8 // patch_size,
    )


def build_flow_scheduler():
    from diffusers import FlowMatchEulerDiscreteScheduler

    # shift 1: our 64-token images need none of the high-resolution shift SD3 uses (3.0 at 1024 px).
    return FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=1.0)


def build_pipeline(transformer=None, src: Path = SHAPES_SD):
    """A StableDiffusion3Pipeline from the shipped VAE, tokenizer and text encoders, and `transformer`."""
    from diffusers import StableDiffusion3Pipeline
    from transformers import PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast.from_pretrained(src / "tokenizer")
    return StableDiffusion3Pipeline(
        transformer=transformer if transformer is not None else build_transformer(), scheduler=build_flow_scheduler(),
        tokenizer=tok, tokenizer_2=copy.deepcopy(tok), text_encoder_3=None, tokenizer_3=None, **sd3_parts_from(src),
    )


class CollapsedPadProcessor:
    """JointAttnProcessor2_0 for a context whose LAST token stands for `copies` identical zero-T5 tokens.

    softmax over n identical keys == one key with its logit raised by log(n), so this gives the same output as the
    standard processor run on all n copies (and the image tokens never see a difference).
    """

    def __init__(self, copies: int = T5_ZEROS):
        self.log_copies = math.log(copies)

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, *args, **kwargs):
        b, n_img = hidden_states.shape[0], hidden_states.shape[1]

        def heads(x):
            return x.view(b, -1, attn.heads, x.shape[-1] // attn.heads).transpose(1, 2)

        q, k, v = heads(attn.to_q(hidden_states)), heads(attn.to_k(hidden_states)), heads(attn.to_v(hidden_states))
        if attn.norm_q is not None:
            q, k = attn.norm_q(q), attn.norm_k(k)
        cq = heads(attn.add_q_proj(encoder_hidden_states))
        ck = heads(attn.add_k_proj(encoder_hidden_states))
        cv = heads(attn.add_v_proj(encoder_hidden_states))
        if attn.norm_added_q is not None:
            cq, ck = attn.norm_added_q(cq), attn.norm_added_k(ck)
        q, k, v = torch.cat([q, cq], 2), torch.cat([k, ck], 2), torch.cat([v, cv], 2)
        bias = torch.zeros(k.shape[2], dtype=q.dtype, device=q.device)
        bias[-1] = self.log_copies
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.view(1, 1, 1, -1))
        out = out.transpose(1, 2).reshape(b, -1, attn.heads * (q.shape[-1]))
        img, ctx = out[:, :n_img], out[:, n_img:]
        if not attn.context_pre_only:
            ctx = attn.to_add_out(ctx)
        img = attn.to_out[1](attn.to_out[0](img))
        return img, ctx


def collapsed_conditioning(pipe, captions: list[str], device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The pipeline's own `encode_prompt`, with the zero-T5 part collapsed to one token (see CollapsedPadProcessor)."""
    with torch.no_grad():
        emb, _, pooled, _ = pipe.encode_prompt(prompt=captions, prompt_2=None, prompt_3=None, device=device,
                                               do_classifier_free_guidance=False, max_sequence_length=1)
    return emb, pooled


def check_collapsed_pad(pipe, device: str = "cpu") -> float:
    """Largest |difference| between the training forward (collapsed pad) and the standard one (256 zero tokens)."""
    from diffusers.models.attention_processor import JointAttnProcessor2_0

    tr = pipe.transformer
    caps = ["a red circle", "", "a small blue star on the left of a green square"]
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 4, 8, 8, generator=g).to(device)
    t = torch.tensor([100.0, 500.0, 900.0], device=device)
    with torch.no_grad():
        full, _, pooled, _ = pipe.encode_prompt(prompt=caps, prompt_2=None, prompt_3=None, device=device,
                                                do_classifier_free_guidance=False, max_sequence_length=T5_ZEROS)
        tr.set_attn_processor(JointAttnProcessor2_0())
        ref = tr(x, encoder_hidden_states=full, pooled_projections=pooled, timestep=t).sample
        emb, pooled1 = collapsed_conditioning(pipe, caps, device)
        tr.set_attn_processor(CollapsedPadProcessor(T5_ZEROS))
        got = tr(x, encoder_hidden_states=emb, pooled_projections=pooled1, timestep=t).sample
        tr.set_attn_processor(JointAttnProcessor2_0())
    return (ref - got).abs().max().item()


def count_parameters(module) -> int:
    return sum(p.numel() for p in module.parameters())


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("--stage dit (not in all): an SD3-style MMDiT on the shipped VAE and text encoders")
    g.add_argument("--dit-steps", type=int, default=3_000, help="updates of --stage dit")
    g.add_argument("--dit-batch", type=int, default=32)
    g.add_argument("--dit-lr", type=float, default=3e-4)
    g.add_argument("--dit-images", type=int, default=60_000, help="training scenes of --stage dit")
    g.add_argument("--dit-layers", type=int, default=5, help="joint-attention transformer blocks")
    g.add_argument("--dit-heads", type=int, default=4)
    g.add_argument("--dit-head-dim", type=int, default=32)
    g.add_argument("--dit-patch", type=int, choices=[1, 2], default=1, help="latent pixels per patch side")
    g.add_argument("--dit-resume", type=Path, default=None,
                   help="a shapes-dit pipeline folder whose transformer training continues (its sizes are kept; "
                        "training.json adds the updates and seconds of the earlier runs)")


def check_arguments(args: argparse.Namespace, error: flags.Error) -> None:
    if args.dit_resume is not None and not (args.dit_resume / "transformer" / "config.json").is_file():
        error(f"--dit-resume must be a pipeline folder with transformer/, got {args.dit_resume}")
    if args.data_seed + args.dit_images > EVAL_SEED:
        error(f"--data-seed must be from 0 to {EVAL_SEED - args.dit_images:,} with --dit-images "
              f"{args.dit_images:,}, got {args.data_seed}")
    flags.check_checkpoint(args, error, "dit")


class DiTStage(Stage):
    """Flow-matching training of the transformer (velocity target, logit-normal timesteps, frozen text encoders)."""

    name = "dit"

    def __init__(self, args: argparse.Namespace, run_dir: Path):
        self.args, self.run_dir = args, run_dir
        self.earlier: list[dict] = []

    def setup(self, device) -> None:
        a = self.args
        self.device = device
        if a.dit_resume is not None:  # continue an earlier run: its weights, sizes and record
            from diffusers import SD3Transformer2DModel

            transformer = SD3Transformer2DModel.from_pretrained(a.dit_resume / "transformer",
                                                                torch_dtype=torch.float32)
            cfg = transformer.config
            a.dit_layers, a.dit_heads = cfg.num_layers, cfg.num_attention_heads
            a.dit_head_dim, a.dit_patch = cfg.attention_head_dim, cfg.patch_size
            before = json.loads((a.dit_resume / "training.json").read_text())
            self.earlier = before.pop("runs", []) + [before]
        else:
            transformer = build_transformer(a.dit_layers, a.dit_heads, a.dit_head_dim, a.dit_patch)
        self.src = a.init_from if a.init_from is not None else SHAPES_SD
        pipe = build_pipeline(transformer, self.src).to(device)
        for m in (pipe.vae, pipe.text_encoder, pipe.text_encoder_2):
            m.requires_grad_(False)
        err = check_collapsed_pad(pipe, str(device))
        print(f"collapsed zero-T5 pad vs standard processor on {T5_ZEROS} zero tokens: max |diff| = {err:.2e}")
        if err > 1e-4:
            raise RuntimeError(f"the collapsed-pad training forward differs from the pipeline's by {err}")
        transformer.set_attn_processor(CollapsedPadProcessor(T5_ZEROS))
        self.pipe = pipe
        # The U-Net's data recipe: scenes encoded once by the VAE, z ~ q(z|x) every step, fresh wording each time.
        images, _, self.scenes = make_dataset(a.dit_images, start_seed=a.data_seed, two_object_p=a.two_object_p)
        self.mean, self.std = encode_posterior(pipe.vae, images, device)
        self.scale, self.shift = pipe.vae.config.scaling_factor, pipe.vae.config.shift_factor

    def model(self):
        return self.pipe.transformer

    def optimizer(self, params, cfg):
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.01)

    def batches(self, generator):
        a = self.args
        while True:
            idx = torch.randint(0, len(self.mean), (a.dit_batch,), generator=generator)
            # some empty captions: the unconditional branch classifier-free guidance needs ("" is the pipeline's
            # default negative prompt, so the same tensors as at inference).
            caps = captions(self.scenes, idx, generator, caption_for, a.cond_dropout)
            z0 = sample_posterior(self.mean, self.std, idx, generator, self.scale, self.shift)
            noise = torch.randn(z0.shape, generator=generator)
            # Logit-normal timestep sampling (SD3, Esser et al. 2024): sigma = sigmoid(n), n ~ N(0, 1).
            sigma = torch.sigmoid(torch.randn(len(idx), generator=generator))
            s = sigma.view(-1, 1, 1, 1)
            yield {"captions": caps, "zt": (1 - s) * z0 + s * noise, "target": noise - z0, "t": sigma * 1000}

    def loss(self, b):
        emb, pooled = collapsed_conditioning(self.pipe, b["captions"], str(self.device))
        pred = self.prepared(b["zt"], encoder_hidden_states=emb, pooled_projections=pooled, timestep=b["t"]).sample
        return F.mse_loss(pred, b["target"]), {}  # the velocity the Euler flow scheduler integrates

    def save(self, transformer, out: Path) -> None:
        from diffusers.models.attention_processor import JointAttnProcessor2_0

        a = self.args
        transformer.set_attn_processor(JointAttnProcessor2_0())
        live, self.pipe.transformer = self.pipe.transformer, transformer
        out.mkdir(parents=True, exist_ok=True)
        try:
            self.pipe.to(torch.float16).save_pretrained(out, safe_serialization=True)
            write_shared_parts(out, self.src)  # the VAE and text encoders stay in shapes-sd: no copies
        finally:
            self.pipe.transformer = live
            self.pipe.to(torch.float32)
        state = json.loads((self.run_dir / "checkpoint" / "state.json").read_text())
        meta = {"dit_steps": state["step"], "dit_seconds": round(60 * state["minutes"], 1), "batch": a.dit_batch,
                "lr": a.dit_lr, "images": a.dit_images, "data_seed": a.data_seed, "two_object_p": a.two_object_p,
                "threads": torch.get_num_threads(), "device": a.device,
                "transformer_parameters": count_parameters(transformer), "layers": a.dit_layers,
                "heads": a.dit_heads, "head_dim": a.dit_head_dim, "patch_size": a.dit_patch,
                "timestep_sampling": "logit-normal(0, 1)", "ema": EMA if a.ema is None else a.ema,
                "cond_dropout": a.cond_dropout, "seed": a.seed, "text_encoders": "frozen (shipped)"}
        if self.earlier:  # a resumed run: the earlier runs it continues, and the totals
            meta |= {"runs": self.earlier, "total_steps": meta["dit_steps"] + sum(r["dit_steps"] for r in self.earlier),
                     "total_seconds": meta["dit_seconds"] + sum(r["dit_seconds"] for r in self.earlier)}
        (out / "training.json").write_text(json.dumps(meta, indent=1))


def run(args: argparse.Namespace):
    """--stage dit: fit the transformer and write a StableDiffusion3Pipeline folder."""
    cfg = flags.fit_config(args, "dit", args.dit_steps, args.dit_lr, flags.out_folder(args, "shapes-dit"), ema=EMA,
                           warmup=200)
    result = fit(DiTStage(args, cfg.run_dir), cfg)
    print(f"saved {result.out} after {result.steps_done} updates")
    return result
