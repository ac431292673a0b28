"""Prompt adherence of a pipeline on the shapes world, judged by `explainer.judge`.

    python benchmarks/adherence.py                      # the full table of the model card (~10 min on 2 cores)
    python benchmarks/adherence.py --n 64 --quick       # a smoke run
    python benchmarks/adherence.py --model shapes-dit   # the same table for the diffusion transformer (shapes-dit)
    python benchmarks/adherence.py --model scenes-sd    # the scenes world's table (benchmarks/scenes_adherence.py)

Prompts come from scenes with seeds >= 10,000,000 (never used in training), written as canonical captions.
Prints, per setting: single object colour/shape/size/position, held-out colour x shape combinations (both right),
two objects (both objects and their relation right); then the seconds for one 25-step image and a batch of 16.

U-Net pipelines are sampled with DPM++ 2M (the model card's setting); SD3 pipelines (shapes-dit) with their own
flow-matching Euler scheduler. An SD3 pipeline appends 256 all-zero T5 tokens to the prompt; by default the benchmark
runs it with those collapsed into one token whose attention logit carries log(256) (`CollapsedPadProcessor`), the same
arithmetic (checked below on every run) at a quarter of the cost; `--plain-sd3` runs the pipeline untouched. Timings
are printed for both.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

import explainer as ex
from explainer.judge import judge_against
from explainer.schedulers import make_scheduler
from explainer.shapes import (
    EVAL_SEED,  # noqa: E402 (one definition, in the shapes world: never used in training)
    caption_for,
    sample_scene,
)


def prompt_sets(n: int) -> dict[str, list[str]]:
    return {
        "single": [caption_for(sample_scene(EVAL_SEED + i, two_object_p=0.0, held_out="allow")) for i in range(n)],
        "held_out": [caption_for(sample_scene(EVAL_SEED + 50_000 + i, two_object_p=0.0, held_out="only"))
                     for i in range(max(n // 2, 50))],
        "two": [caption_for(sample_scene(EVAL_SEED + 100_000 + i, two_object_p=1.0, held_out="allow"))
                for i in range(n)],
    }


CALL_KWARGS: dict = {}  # extra pipeline arguments (max_sequence_length=1 for a collapsed-pad SD3 pipeline)


def generate(pipe, prompts: list[str], steps: int, cfg: float, batch: int = 16) -> list:
    images = []
    for i in range(0, len(prompts), batch):
        chunk = prompts[i:i + batch]
        gens = [torch.Generator().manual_seed(i + k) for k in range(len(chunk))]
        images += pipe(chunk, num_inference_steps=steps, guidance_scale=cfg, generator=gens, **CALL_KWARGS).images
    return images


def is_sd3(pipe) -> bool:
    return type(pipe).__name__.startswith("StableDiffusion3")


def collapse_pad(pipe) -> float:
    """Install the collapsed zero-T5 processor on an SD3 pipeline; returns the max |pixel difference| (0..255) it makes
    on a 25-step CFG 5 image against the untouched pipeline (it should be 0 or 1 from float rounding)."""
    from diffusers.models.attention_processor import JointAttnProcessor2_0

    from explainer.train.dit import T5_ZEROS, CollapsedPadProcessor

    kw = dict(num_inference_steps=25, guidance_scale=5.0, output_type="np")
    pipe.transformer.set_attn_processor(JointAttnProcessor2_0())
    ref = pipe("a red star above a blue square", generator=torch.Generator().manual_seed(0), **kw).images
    pipe.transformer.set_attn_processor(CollapsedPadProcessor(T5_ZEROS))
    got = pipe("a red star above a blue square", generator=torch.Generator().manual_seed(0), max_sequence_length=1,
               **kw).images
    CALL_KWARGS["max_sequence_length"] = 1
    return float(np.abs(ref * 255 - got * 255).max())


def judged(pipe, prompts: list[str], steps: int, cfg: float) -> list[dict]:
    return [judge_against(im, p) for im, p in zip(generate(pipe, prompts, steps, cfg), prompts, strict=True)]


def score(pipe, sets: dict[str, list[str]], steps: int, cfg: float) -> dict[str, float]:
    out: dict[str, float] = {}
    single = judged(pipe, sets["single"], steps, cfg)
    for key in ("color", "shape", "size", "position"):
        out[key] = float(np.mean([r[key] for r in single]))
    out["held_out"] = float(np.mean([r["color"] and r["shape"] for r in judged(pipe, sets["held_out"], steps, cfg)]))
    two = judged(pipe, sets["two"], steps, cfg)
    out["two_objects"] = float(np.mean([r["objects"] for r in two]))
    out["two_all"] = float(np.mean([r["objects"] and r["relation"] for r in two]))
    return out


def timing(pipe, steps: int = 25, cfg: float = 7.5, repeats: int = 3, **call_kwargs) -> dict[str, float]:
    res = {}
    for n in (1, 16):
        ts = []
        for r in range(repeats):
            t0 = time.perf_counter()
            pipe(["a red circle on the left"] * n, num_inference_steps=steps, guidance_scale=cfg,
                 generator=[torch.Generator().manual_seed(r * 100 + k) for k in range(n)], **call_kwargs)
            ts.append(time.perf_counter() - t0)
        res[f"seconds_batch_{n}"] = float(np.median(ts))
    return res


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None,
                   help="shapes-sd (default), shapes-dit, or a pipeline folder")
    p.add_argument("--n", type=int, default=200, help="prompts per set (single, two objects); held-out gets n/2")
    p.add_argument("--sweep-n", type=int, default=64, help="prompts per set in the CFG and steps sweeps")
    p.add_argument("--cfg", type=float, default=None, help="the recommended CFG (default: best of the sweep)")
    p.add_argument("--scheduler", default=None,
                   help="scheduler name (default: dpm++2m for U-Net pipelines, the pipeline's own for SD3)")
    p.add_argument("--cfgs", default="1,3,5,7.5,12,20", help="CFG scales of the sweep, comma-separated")
    p.add_argument("--steps-list", default="5,10,20,40", help="step counts of the steps sweep, comma-separated")
    p.add_argument("--plain-sd3", action="store_true", help="run an SD3 pipeline without the collapsed zero-T5 pad")
    p.add_argument("--sweeps-only", action="store_true", help="only the CFG and steps sweeps (no main, no timing)")
    p.add_argument("--no-timing", action="store_true", help="skip the seconds-per-image measurement")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--quick", action="store_true", help="only the default setting, no sweeps")
    p.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args, _ = p.parse_known_args()
    if args.model and "scenes" in Path(str(args.model)).name:  # the scenes world has its own judge and table
        import scenes_adherence

        scenes_adherence.main(sys.argv[1:])
        return
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    pipe = ex.load_pipeline(args.model)
    sd3 = is_sd3(pipe)
    if args.scheduler is None:
        args.scheduler = "own" if sd3 else "dpm++2m"
    if args.scheduler != "own":
        pipe.scheduler = make_scheduler(args.scheduler, pipe.scheduler.config)
    args.scheduler = args.scheduler if args.scheduler != "own" else type(pipe.scheduler).__name__
    if sd3 and not args.plain_sd3:
        diff = collapse_pad(pipe)
        print(f"collapsed zero-T5 pad: max pixel difference against the plain pipeline {diff:g} (of 255)")
    sets, small = prompt_sets(args.n), prompt_sets(args.sweep_n)
    print(f"main table: {len(sets['single'])} single, {len(sets['held_out'])} held-out, {len(sets['two'])} two-object "
          f"prompts; sweeps: {len(small['single'])}/{len(small['held_out'])}/{len(small['two'])}; "
          f"scheduler {args.scheduler}; threads {args.threads}")
    results: dict = {"cfg": {}, "steps": {}, "model": args.model or "shapes-sd", "scheduler": args.scheduler,
                     "n": {k: len(v) for k, v in sets.items()}}
    header = f"{'setting':<16}" + "".join(f"{k:>12}" for k in
                                          ("color", "shape", "size", "position", "held_out", "two_objects", "two_all"))
    print(header)

    def row(name: str, r: dict) -> None:
        print(f"{name:<16}" + "".join(f"{100 * r[k]:>11.1f}%" for k in
                                      ("color", "shape", "size", "position", "held_out", "two_objects", "two_all")))

    cfgs = [float(c) for c in args.cfgs.split(",")]
    if args.quick:
        args.cfg = args.cfg or 7.5
    if not args.quick:
        print("-- CFG sweep, 25 steps (sweep prompts)")
        for cfg in tqdm(cfgs, desc="CFG sweep", leave=False):
            results["cfg"][cfg] = score(pipe, small, 25, cfg)
            row(f"cfg {cfg:g}", results["cfg"][cfg])
    # Every column counts (relations twice: the hardest skill); a tie goes to the lower CFG.
    overall = lambda r: sum(r.values()) + r["two_all"]  # noqa: E731
    best = args.cfg or max(results["cfg"], key=lambda c: overall(results["cfg"][c]))
    results["recommended_cfg"] = best
    if not args.quick:
        print(f"-- steps sweep at CFG {best:g} (sweep prompts)")
        for steps in tqdm([int(s) for s in args.steps_list.split(",")], desc="steps sweep", leave=False):
            results["steps"][steps] = score(pipe, small, steps, best)
            row(f"{steps} steps", results["steps"][steps])
    if args.sweeps_only:
        if args.json:
            args.json.write_text(json.dumps(results, indent=1))
        return
    print(f"-- main table: CFG {best:g}, 25 steps, {args.scheduler}")
    results["main"] = score(pipe, sets, 25, best)
    row("main", results["main"])
    if args.no_timing:
        if args.json:
            args.json.write_text(json.dumps(results, indent=1))
        return
    results["timing"] = timing(pipe, cfg=best, **CALL_KWARGS)
    print(f"recommended CFG {best:g}; one 25-step image {results['timing']['seconds_batch_1']:.2f} s, "
          f"a batch of 16 {results['timing']['seconds_batch_16']:.2f} s ({args.threads} threads)")
    if sd3 and CALL_KWARGS:  # the pipeline as a user calls it: 24 CLIP + 256 zero T5 tokens
        from diffusers.models.attention_processor import JointAttnProcessor2_0

        pipe.transformer.set_attn_processor(JointAttnProcessor2_0())
        results["timing_plain"] = timing(pipe, cfg=best)
        print(f"plain SD3 call (256 zero T5 tokens): one image {results['timing_plain']['seconds_batch_1']:.2f} s, "
              f"a batch of 16 {results['timing_plain']['seconds_batch_16']:.2f} s")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
