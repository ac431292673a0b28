"""What tracing costs: plain pipeline vs trace(attention=False) vs trace(attention=True), same seed and settings.

    python benchmarks/trace_overhead.py --model shipped            # the shipped shapes model on CPU
    python benchmarks/trace_overhead.py --model tiny-sd            # shipped architecture, random weights
    python benchmarks/trace_overhead.py --model sd15-random --device cuda --dtype float16   # SD1.5-size U-Net, 512 px
    python benchmarks/trace_overhead.py --model sd15-random --size 256 --steps 2 --repeats 2  # ... squeezed onto a CPU
    python benchmarks/trace_overhead.py --model families --repeats 25  # one table over every family's tiny config
        (explainer.testing): SD, SDXL, PixArt-alpha, SD3 (CLIP only / with T5), Flux (and Flux with true CFG)
    python benchmarks/trace_overhead.py --model real --threads 2 --steps 1 --repeats 3   # real block widths:
        SD 1.5's U-Net levels at 512 px, SDXL's 64x64 level, 2 SD3-medium blocks, a Flux-dev double + single block
        (benchmarks/real_width.py), 1,024+ image tokens, real text lengths; also --only sd15 flux ...

Runs are interleaved (plain, no-attention, attention, plain, ...) so drifting machine load hits all three alike;
prints the median seconds of each and the ratios to plain. Also prints Trace.nbytes and the projected bytes of an
SD1.5-architecture trace at 512x512, 50 steps, with attention.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

sys.path.insert(0, str(Path(__file__).resolve().parent))

from explainer.schedulers import make_scheduler  # noqa: E402
from explainer.trace import trace  # noqa: E402

PROMPT = "a red circle left of a blue square"


def word_tokenizer(max_tokens: int):
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    words = "a red green blue circle square triangle star left right of above below the big small".split()
    specials = ["<pad>", "<|startoftext|>", "<|endoftext|>", "<unk>"]
    vocab = {w: i for i, w in enumerate(specials + words)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="<|startoftext|> $A <|endoftext|>", special_tokens=[("<|startoftext|>", 1), ("<|endoftext|>", 2)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|startoftext|>", eos_token="<|endoftext|>",
                                   pad_token="<pad>", unk_token="<unk>", model_max_length=max_tokens)


def random_pipeline(kind: str, device: str, dtype: torch.dtype):
    """tiny-sd: the shipped model's architecture; sd15-random: Stable Diffusion 1.5's, with random weights."""
    from diffusers import AutoencoderKL, DPMSolverMultistepScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(0)
    if kind == "tiny-sd":
        from explainer.train.components import build_tokenizer, build_unet, build_vae

        tokenizer, unet, vae = build_tokenizer(), build_unet(), build_vae()
        text = CLIPTextConfig(vocab_size=len(tokenizer), hidden_size=128, intermediate_size=256, num_hidden_layers=3,
                              num_attention_heads=4, max_position_embeddings=tokenizer.model_max_length)
    else:
        tokenizer = word_tokenizer(77)
        unet = UNet2DConditionModel(sample_size=64, cross_attention_dim=768, attention_head_dim=8,
                                    block_out_channels=(320, 640, 1280, 1280))
        vae = AutoencoderKL(block_out_channels=(128, 256, 512, 512), latent_channels=4, sample_size=512,
                            down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                            layers_per_block=2)
        text = CLIPTextConfig(vocab_size=len(tokenizer), hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                              num_attention_heads=12, max_position_embeddings=77)
    text.bos_token_id, text.eos_token_id, text.pad_token_id = (tokenizer.bos_token_id, tokenizer.eos_token_id,
                                                               tokenizer.pad_token_id)
    sched = DPMSolverMultistepScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                        steps_offset=1)
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=CLIPTextModel(text), tokenizer=tokenizer, unet=unet,
                                   scheduler=sched, safety_checker=None, feature_extractor=None, image_encoder=None,
                                   requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device=device, dtype=dtype)


def projected_nbytes(latent_hw=(64, 64), channels=4, steps=50, levels=(64, 32, 16, 8), tokens=77, text_dim=768,
                     latent_bytes=2, image_hw=(512, 512), cfg=True, max_res=64) -> int:
    """Bytes of a trace from shapes alone: per step 5 (6 with CFG) latent-sized tensors, fp16 attention per level
    (pooled to max_res per side), per-token text states per branch, pooled outputs, timesteps/sigmas, the image."""
    h, w = latent_hw
    per_step = (6 if cfg else 5) * channels * h * w * latent_bytes + 2 * 8
    attn = sum(min(s, max_res) ** 2 * tokens * 2 for s in levels)
    text = (2 if cfg else 1) * (tokens * text_dim + text_dim) * latent_bytes
    return steps * (per_step + attn) + text + image_hw[0] * image_hw[1] * 3


FAMILIES = {  # name -> (builder, sampler, size, extra trace/plain kwargs)
    "sd": ("build_tiny_sd", "dpm++2m", 16, {}),
    "sdxl": ("build_tiny_sdxl", "euler", 16, {}),
    "pixart-alpha": ("build_tiny_pixart", "dpm++2m", 16, {}),
    "sd3 (no T5)": ("build_tiny_sd3", "flow_euler", 16, {}),
    "sd3 + T5": ("build_tiny_sd3", "flow_euler", 16, {"t5": True}),
    "flux": ("build_tiny_flux", "flow_euler", 16, {}),
    "flux true-cfg": ("build_tiny_flux", "flow_euler", 16, {"true_cfg": 2.0}),
}


def bench(pipe, scheduler: str, steps: int, size: int | None, repeats: int, true_cfg: float = 1.0,
          sync=lambda: None, modes: tuple[str, ...] = ("plain", "no attention", "attention")) -> dict:
    """Interleaved plain / trace(attention=False) / trace(attention=True) runs; medians, per-rep ratios, bytes."""
    from explainer.adapters import get_adapter

    cfg, seed = 7.5, 0
    adapter = get_adapter(pipe)
    neg = "green star" if true_cfg > 1 else None
    call = adapter.call_kwargs(cfg, neg, true_cfg)
    if adapter.family == "pixart":
        call["clean_caption"] = False
    saved = pipe.scheduler
    pipe.scheduler = make_scheduler(scheduler, saved.config)  # plain runs use the same sampler

    def plain():
        return pipe(PROMPT, num_inference_steps=steps, height=size, width=size,
                    generator=torch.Generator().manual_seed(seed), **call).images[0]

    def traced(attention):
        return lambda: trace(pipe, PROMPT, seed=seed, steps=steps, cfg=cfg, scheduler=scheduler, height=size,
                             width=size, attention=attention, negative_prompt=neg,
                             **({"true_cfg": true_cfg} if adapter.family == "flux" else {}))

    from real_width import PeakRSS

    modes = {m: fn for m, fn in (("plain", plain), ("no attention", traced(False)), ("attention", traced(True)))
             if m in modes}
    try:
        outs, rss = {}, {}
        for m, fn in modes.items():  # warm-up (its peak RSS), and a correctness check while we are at it
            with PeakRSS() as p:
                outs[m] = fn()
            rss[m] = p.increase
        ref = plain()
        identical = all(outs[m].image.tobytes() == ref.tobytes() for m in modes if m != "plain")
        assert identical, "a traced image differs from the plain pipeline's"
        times: dict[str, list[float]] = {m: [] for m in modes}
        names = list(modes)
        for r in range(repeats):
            k = r % len(names)
            for m in names[k:] + names[:k]:  # rotate the order each round
                sync()
                t0 = time.perf_counter()
                modes[m]()
                sync()
                times[m].append(time.perf_counter() - t0)
    finally:
        pipe.scheduler = saved
    med = {m: statistics.median(v) for m, v in times.items()}
    per_rep = {m: sorted(a / b for a, b in zip(times[m], times["plain"], strict=True)) for m in names[1:]}
    return {"median": med, "times": times, "per_rep": per_rep, "trace": outs["attention"], "rss": rss,
            "identical": identical, "bytes_no_attn": outs["no attention"].nbytes if "no attention" in outs else None,
            "bytes_attn": outs["attention"].nbytes, "levels": outs["attention"].levels}


def families_table(steps: int, repeats: int, only: list[str] | None = None) -> None:
    from explainer import testing

    print(f"tiny configs (explainer.testing), CPU, 1 thread, {steps} steps, {repeats} interleaved repetitions, "
          "CFG 7.5 (Flux: guidance embedding 7.5)")
    print(f"{'family':15s} {'sampler':11s} {'plain s':>8s} {'no-attn':>8s} {'attn':>8s}  {'per-rep attn ratio':>24s}"
          f" {'kept (no attn / attn)':>24s}  blocks/levels captured")
    for name, (builder, sched, size, extra) in FAMILIES.items():
        if only and name not in only:
            continue
        extra = dict(extra)
        true_cfg = extra.pop("true_cfg", 1.0)
        pipe = getattr(testing, builder)(**extra)
        r = bench(pipe, sched, steps, size, repeats, true_cfg)
        m, pr = r["median"], r["per_rep"]["attention"]
        q1, q3 = pr[len(pr) // 4], pr[(3 * len(pr)) // 4]
        print(f"{name:15s} {sched:11s} {m['plain']:8.4f} {m['no attention'] / m['plain']:8.3f} "
              f"{m['attention'] / m['plain']:8.3f}  {f'IQR {q1:.2f}-{q3:.2f}':>24s} "
              f"{r['bytes_no_attn'] / 1e3:9.1f} / {r['bytes_attn'] / 1e3:7.1f} kB  {', '.join(r['levels'])}")


def real_table(steps: int, repeats: int, threads: int, only: list[str] | None = None) -> None:
    """Real block widths (benchmarks/real_width.py, few blocks, random weights, CPU): plain vs trace(attention=True),
    interleaved; ratio of medians, attention bytes kept (and had every text position been kept), peak RSS increase
    of each run, bit identity, and the attention bytes projected to the full-size run."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import real_width as R

    print(f"real block widths, random weights, CPU, {threads} thread(s), {steps} step(s), {repeats} interleaved "
          f"repetitions (+1 warm-up), CFG 7.5 (Flux: guidance embedding), prompt {PROMPT!r}")
    from explainer import probes

    spent: list[float] = []  # seconds inside the probes' score computation (less noisy than whole-run ratios)
    post = probes.AttentionProbe._post

    def timed_post(self, *a, **k):
        t0 = time.perf_counter()
        try:
            return post(self, *a, **k)
        finally:
            spent.append(time.perf_counter() - t0)

    probes.AttentionProbe._post = timed_post
    for fam in only or R.FAMILIES:
        pipe = R.build(fam, "few")
        size, sched = R.image_size(fam, "few"), R.sampler(fam)
        spent.clear()
        r = bench(pipe, sched, steps, size, repeats, modes=("plain", "attention"))
        probe_s = sum(spent) / (repeats + 1)  # per traced run (the warm-up and each repetition)
        m, tr = r["median"], r["trace"]
        attn = sum(tr._t[f"attention.{lv}"].numel() * 2 for lv in tr.levels)
        cols = tr._t[f"attention.{tr.levels[0]}"].shape[-1]
        reps = ", ".join(f"{x:.3f}" for x in r["per_rep"]["attention"])
        proj = R.projected_attention_bytes(fam, tr, steps)
        side, full_steps = R.FULL[fam]
        print(f"- {R.LABELS[fam]} ({', '.join(tr.levels)}; {size} px, {tr.steps[0].latents.shape[-1]}x"
              f"{tr.steps[0].latents.shape[-2]} latents): plain {m['plain']:.3f} s, traced {m['attention']:.3f} s, "
              f"ratio of medians {m['attention'] / m['plain']:.3f} (per repetition: {reps}; time inside the probes "
              f"{probe_s:.3f} s per traced run = {probe_s / m['plain']:.1%} of plain); "
              f"attention kept {attn / 1e6:.3f} MB ({cols} of {len(tr.tokens)} columns; all columns would be "
              f"{attn * len(tr.tokens) / cols / 1e6:.2f} MB); whole trace {tr.nbytes / 1e6:.2f} MB; peak RSS + "
              f"plain {_mb(r['rss']['plain'])}, traced {_mb(r['rss']['attention'])}; bit-identical "
              f"{'yes' if r['identical'] else 'NO'}; projected at {side} px, {full_steps} steps, every block: "
              f"{proj['kept'] / 1e6:.0f} MB (every text position kept: {proj['all_tokens'] / 1e6:.0f} MB)",
              flush=True)
        del pipe, r, tr


def _mb(b: int | None) -> str:
    return "n/a" if b is None else f"{b / 1e6:.0f} MB"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", choices=["shipped", "tiny-sd", "sd15-random", "families", "real"], default="shipped")
    ap.add_argument("--only", nargs="*", default=None, help=f"with --model families: a subset of {list(FAMILIES)}; "
                    "with --model real: of sd15 sdxl sd3 flux")
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--size", type=int, default=None, help="image side in pixels (sd15-random default 512)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--dtype", choices=["float32", "float16", "bfloat16"], default=None)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (pinned)")
    ap.add_argument("--scheduler", default="dpm++2m")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    if args.model == "families":
        families_table(args.steps, args.repeats, args.only)
        return
    if args.model == "real":
        real_table(args.steps, args.repeats, args.threads, args.only)
        return
    dtype = getattr(torch, args.dtype) if args.dtype else (torch.float16 if args.device.startswith("cuda")
                                                            else torch.float32)
    if args.model == "shipped":
        import explainer

        pipe = explainer.load_pipeline(device=args.device, dtype=dtype)
    else:
        pipe = random_pipeline(args.model, args.device, dtype)
    size = args.size or (512 if args.model == "sd15-random" else None)
    cfg, seed = 7.5, 0
    pipe.scheduler = make_scheduler(args.scheduler, pipe.scheduler.config)  # plain runs use the same sampler

    def sync():
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()

    def plain():
        return pipe(PROMPT, num_inference_steps=args.steps, guidance_scale=cfg, height=size, width=size,
                    generator=torch.Generator().manual_seed(seed)).images[0]

    def traced(attention):
        return lambda: trace(pipe, PROMPT, seed=seed, steps=args.steps, cfg=cfg, scheduler=args.scheduler,
                               height=size, width=size, attention=attention)

    modes = {"plain": plain, "trace(attention=False)": traced(False), "trace(attention=True)": traced(True)}
    for fn in modes.values():  # warm-up, and a correctness check while we are at it
        out = fn()
    ref = plain()
    assert out.image.tobytes() == ref.tobytes(), "traced image differs from the plain pipeline's"
    times: dict[str, list[float]] = {m: [] for m in modes}
    names = list(modes)
    for r in range(args.repeats):
        for m in names[r % 3:] + names[:r % 3]:  # rotate the order each round
            sync()
            t0 = time.perf_counter()
            modes[m]()
            sync()
            times[m].append(time.perf_counter() - t0)
    med = {m: statistics.median(v) for m, v in times.items()}
    print(f"model={args.model} device={args.device} dtype={dtype} steps={args.steps} size={size or 'default'} "
          f"threads={args.threads} repeats={args.repeats} scheduler={args.scheduler}")
    for m in names:
        print(f"  {m:24s} median {med[m]:8.4f} s   ratio {med[m] / med['plain']:.3f}   "
              f"(min {min(times[m]):.4f}, max {max(times[m]):.4f})")
    tr = out
    lat = tr.steps[0].latents
    proj_same = projected_nbytes(tuple(lat.shape[1:]), lat.shape[0], args.steps,
                                 [int(lv.split("x")[0]) for lv in tr.levels], len(tr.tokens),
                                 tr.text_embeddings["text_encoder"]["cond"].shape[-1], lat.element_size(),
                                 tr.image.size[::-1])
    print(f"  Trace.nbytes (attention=True): {tr.nbytes:,} B = {tr.nbytes / 1e6:.2f} MB "
          f"(shape formula: {proj_same:,} B; the formula ignores pooled outputs' exact sizes)")
    for lb, label in ((2, "fp16"), (4, "fp32")):
        p = projected_nbytes(latent_bytes=lb)
        print(f"  projected SD1.5 trace, 512x512, 50 steps, attention, {label} latents: {p / 1e6:.1f} MB "
              f"(budget 300 MB)")


if __name__ == "__main__":
    main()
