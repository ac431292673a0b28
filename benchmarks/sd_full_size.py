"""A full-size Stable Diffusion 1.5-architecture pipeline (random weights, no download) traced at 512x512 on the CPU.

    python benchmarks/sd_full_size.py                  # 3 steps, 1 thread: about 15 minutes on a loaded 2-core box
    python benchmarks/sd_full_size.py --steps 2 --threads 2

The U-Net (860 M parameters: blocks 320/640/1280/1280, cross-attention at 64x64, 32x32, 16x16 with 768-d text),
the VAE (128/256/512/512) and the CLIP-L-sized text encoder (12 layers, 768 wide) have Stable Diffusion 1.5's
configs; the tokenizer is the locally built CLIP BPE tokenizer of `explainer.testing` (77 tokens; only its
vocabulary is small). The scheduler is the one SD 1.5's folder ships (PNDM, whose first step evaluates the U-Net
twice), set on the pipeline, so `trace` uses it (scheduler=None).

Measured, not projected: the trace's tensors after `--steps` steps, split into what grows with every step (latents,
predictions, attention maps: first dimension = steps), with every U-Net evaluation (PNDM's extra one: first dimension
= evaluations) and what is fixed (text embeddings, image). The 50-step size is fixed + 50 x per-step + 51 x
per-evaluation bytes from those measured tensors, and the saved file of the short trace is weighed too. Then the
wall-clock ratio traced / plain for the same call (interleaved: plain, traced, plain, traced).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PROMPT = "a red fox sitting in autumn leaves"


def build_sd15_random(seed: int = 0):
    from diffusers import AutoencoderKL, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from explainer import testing

    torch.manual_seed(seed)
    tok = testing.clip_bpe_tokenizer()
    unet = UNet2DConditionModel(
        sample_size=64, in_channels=4, out_channels=4, layers_per_block=2,
        block_out_channels=(320, 640, 1280, 1280),
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=768, attention_head_dim=8, norm_num_groups=32)
    vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(128, 256, 512, 512),
                        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                        layers_per_block=2, norm_num_groups=32, sample_size=512, scaling_factor=0.18215)
    text = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(tok), hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
        max_position_embeddings=77, hidden_act="quick_gelu", projection_dim=768, bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)).eval()
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text, tokenizer=tok, unet=unet,
                                   scheduler=testing.make_real_scheduler("pndm"), safety_checker=None,
                                   feature_extractor=None, image_encoder=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def split_bytes(tr) -> dict[str, int]:
    """Bytes of the trace's tensors by what they grow with: steps, U-Net evaluations, or nothing."""
    S = len(tr.steps)
    E = int(tr.settings["n_evals"])
    out = {"per_step": 0, "per_eval": 0, "fixed": 0}
    for k, t in tr._t.items():
        b = t.numel() * t.element_size()
        if k.startswith("evals.") and t.ndim and t.shape[0] == E:
            out["per_eval"] += b
        elif t.ndim and t.shape[0] == S and not k.startswith(("text.", "image")):
            out["per_step"] += b
        else:
            out["fixed"] += b
    return {"per_step": out["per_step"] // S, "per_eval": out["per_eval"] // E if out["per_eval"] else 0,
            "fixed": out["fixed"], "steps": S, "evals": E}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=3, help="denoising steps per run (default 3)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("--repeats", type=int, default=1, help="plain/traced pairs to time (default 1)")
    ap.add_argument("--size", type=int, default=512, help="image side in pixels (default 512)")
    args = ap.parse_args()
    if args.steps < 1 or args.repeats < 1 or args.size % 8:
        ap.error("--steps and --repeats must be >= 1 and --size a multiple of 8")
    torch.set_num_threads(args.threads)
    from tqdm import tqdm

    import explainer as ex

    t0 = time.perf_counter()
    pipe = build_sd15_random()
    n_params = sum(p.numel() for p in pipe.unet.parameters())
    print(f"built SD1.5-architecture pipeline in {time.perf_counter() - t0:.0f} s: U-Net {n_params / 1e6:.0f} M "
          f"parameters, scheduler {type(pipe.scheduler).__name__}, {args.size}x{args.size} px "
          f"({args.size // 8}x{args.size // 8} latents), {args.threads} thread(s)")
    kw = dict(num_inference_steps=args.steps, guidance_scale=7.5, height=args.size, width=args.size)
    plain_s, traced_s, tr, ref = [], [], None, None
    with torch.no_grad():
        for _ in tqdm(range(args.repeats), desc="plain/traced pairs"):
            t = time.perf_counter()
            ref = pipe(PROMPT, generator=torch.Generator().manual_seed(0), **kw).images[0]
            plain_s.append(time.perf_counter() - t)
            t = time.perf_counter()
            tr = ex.trace(pipe, PROMPT, seed=0, steps=args.steps, cfg=7.5, height=args.size, width=args.size)
            traced_s.append(time.perf_counter() - t)
    import numpy as np

    same = np.array_equal(np.asarray(ref), np.asarray(tr.image))
    b = split_bytes(tr)
    with tempfile.TemporaryDirectory() as d:
        file_bytes = tr.save(Path(d) / "t.safetensors").stat().st_size
    evals_50 = 50 + (b["evals"] - b["steps"])  # PNDM: one extra evaluation, whatever the step count
    proj = b["fixed"] + 50 * b["per_step"] + (evals_50 * b["per_eval"] if b["per_eval"] else 0)
    levels = {lv: tr._meta["levels"][lv]["size"] for lv in tr.levels}
    print(f"traced image == plain image: {same}")
    cols = tr._t[f"attention.{tr.levels[0]}"].shape[-1]
    print(f"attention levels kept: {levels} x {cols} of {len(tr.tokens)} token columns (the prompt's real tokens "
          "and the padding's total; fp16)")
    print(f"measured trace after {b['steps']} steps ({b['evals']} U-Net evaluations): Trace.nbytes = "
          f"{tr.nbytes:,} B; saved file {file_bytes:,} B")
    print(f"  grows per step: {b['per_step']:,} B; per evaluation (PNDM's evals.*): {b['per_eval']:,} B; "
          f"fixed (text embeddings, image): {b['fixed']:,} B")
    print(f"50-step trace with attention, from these measured tensors: {proj:,} B = {proj / 1e6:.1f} MB "
          f"({evals_50} evaluations)")
    p, q = statistics.median(plain_s), statistics.median(traced_s)
    print(f"plain {p:.1f} s, traced {q:.1f} s (median of {args.repeats}): traced/plain = {q / p:.3f}")


if __name__ == "__main__":
    main()
