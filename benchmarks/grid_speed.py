"""Grid speed: the same seed x CFG grid batched (one pipeline call per group) vs serial (one call per cell).

    python benchmarks/grid_speed.py [--threads 1] [--steps 20] [--repeats 3] [--model PATH]

Uses the shipped model when it is there (else the shipped architecture with random weights: same shapes, same
cost). Runs are interleaved (batched, serial, batched, ...) and the median is reported; the grids are also
checked to be bit-identical. Threads are pinned (torch.set_num_threads) so the figures are comparable.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import numpy as np
import torch


def shipped_or_random(model: str | None):
    import explainer
    from explainer.models import SHIPPED_MODEL, quiet_libraries

    if model or (SHIPPED_MODEL / "model_index.json").exists():
        return explainer.load_pipeline(model), "shipped model" if not model else model
    quiet_libraries()
    from diffusers import DPMSolverMultistepScheduler, StableDiffusionPipeline
    from transformers import CLIPTextModel

    from explainer.train.components import build_clip, build_noise_scheduler, build_tokenizer, build_unet, build_vae

    torch.manual_seed(0)
    tok = build_tokenizer()
    pipe = StableDiffusionPipeline(
        vae=build_vae().eval(), text_encoder=CLIPTextModel(build_clip(tok).config.text_config).eval(), tokenizer=tok,
        unet=build_unet().eval(), scheduler=DPMSolverMultistepScheduler.from_config(build_noise_scheduler().config),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe, "shipped architecture, random weights (the shipped model is not there yet)"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=1, help="torch threads (pinned)")
    p.add_argument("--steps", type=int, default=20, help="denoising steps per image")
    p.add_argument("--seeds", type=int, default=4, help="number of seeds (rows)")
    p.add_argument("--cfgs", type=float, nargs="+", default=[3.0, 5.0, 7.5, 10.0], help="CFG values (columns)")
    p.add_argument("--repeats", type=int, default=3, help="interleaved repeats; the median is reported")
    p.add_argument("--model", default=None, help="a pipeline folder (default: the shipped model)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    from explainer.sweeps import grid

    pipe, what = shipped_or_random(args.model)
    prompt = "a red circle left of a blue square"
    kw = dict(seeds=list(range(args.seeds)), cfgs=args.cfgs, steps=args.steps)
    grid(pipe, prompt, **dict(kw, seeds=[0], cfgs=args.cfgs[:2], steps=2))  # warm-up (and the batching self-check)
    times: dict[bool, list[float]] = {True: [], False: []}
    results = {}
    for _ in range(args.repeats):
        for batch in (True, False):
            t0 = time.perf_counter()
            results[batch] = grid(pipe, prompt, batch=batch, **kw)
            times[batch].append(time.perf_counter() - t0)
    b, s = results[True], results[False]
    identical = all(np.array_equal(np.asarray(b.image(r, c)), np.asarray(s.image(r, c)))
                    for r in range(b.shape[0]) for c in range(b.shape[1]))
    tb, ts = statistics.median(times[True]), statistics.median(times[False])
    n = b.shape[0] * b.shape[1]
    print(f"model: {what}; {n} images ({args.seeds} seeds x {len(args.cfgs)} CFGs), {args.steps} steps, "
          f"torch threads {args.threads}, {args.repeats} interleaved repeats (median)")
    print(f"batched: {tb:.2f} s ({b.pipeline_calls} pipeline call(s), {b.batched_cells} cells batched)")
    print(f"serial:  {ts:.2f} s ({s.pipeline_calls} pipeline calls)")
    print(f"speed-up: {ts / tb:.2f}x; cells bit-identical: {identical}")


if __name__ == "__main__":
    main()
