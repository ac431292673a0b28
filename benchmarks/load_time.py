"""How long `explainer.load_pipeline()` takes, split into the libraries' import and the model load, and how long the
first pictures then take.

    python benchmarks/load_time.py                        # 3 fresh processes, the default model (shapes-sd)
    python benchmarks/load_time.py --model scenes-sd      # the model the playground and classroom open on

Each repeat is a fresh Python process (as a learner's first notebook cell is): it imports torch, then diffusers and
transformers (the classes the shipped pipeline needs), then explainer, then calls `load_pipeline(MODEL)` twice, then
draws one picture of the model's size (`pipe(prompt, num_inference_steps=--steps)`, CFG 7.5) `--images` times on
`--threads` threads: the first, and the median of the rest. Prints the median of each part over the processes and the
model load as a share of the whole start-up.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import numpy as np

CHILD = r"""
import json, sys, time
model, threads, steps, images, prompt = json.loads(sys.argv[1])
t0 = time.perf_counter()
import torch
torch.set_num_threads(threads)
t1 = time.perf_counter()
from diffusers import AutoencoderKL, DPMSolverMultistepScheduler, StableDiffusionPipeline, UNet2DConditionModel
from transformers import CLIPTextModel, PreTrainedTokenizerFast
t2 = time.perf_counter()
import explainer as ex
t3 = time.perf_counter()
ex.load_pipeline(model)
t4 = time.perf_counter()
pipe = ex.load_pipeline(model)
t5 = time.perf_counter()
times = []
for i in range(images):
    t = time.perf_counter()
    image = pipe(prompt, num_inference_steps=steps, guidance_scale=7.5,
                 generator=torch.Generator().manual_seed(i)).images[0]
    times.append(time.perf_counter() - t)
rest = sorted(times[1:]) or times
print(json.dumps({"torch": t1 - t0, "diffusers+transformers": t2 - t1, "explainer": t3 - t2,
                  "load_pipeline": t4 - t3, "load_pipeline again": t5 - t4, "total": t4 - t0,
                  "first image": times[0], "next images (median)": rest[len(rest) // 2], "size": image.size[0]}))
"""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=3, help="fresh processes to time (1 to 20)")
    p.add_argument("--model", default=None, help="a shipped model's name (scenes-sd, shapes-sd, shapes-dit) or a "
                                                 "pipeline folder; default: load_pipeline()'s own (shapes-sd)")
    p.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    p.add_argument("--steps", type=int, default=20, help="denoising steps per picture (default 20)")
    p.add_argument("--images", type=int, default=5, help="pictures drawn one at a time after the load (default 5)")
    p.add_argument("--prompt", default=None, help="default: the model's own first prompt (the fox on scenes-sd)")
    args = p.parse_args()
    if not 1 <= args.repeats <= 20:
        p.error(f"--repeats must be from 1 to 20, got {args.repeats}")
    if args.threads < 1 or args.steps < 1 or args.images < 1:
        p.error("--threads, --steps and --images must be at least 1")
    from explainer.shipped import first_prompt

    prompt = args.prompt or first_prompt(args.model or "shapes-sd")
    job = json.dumps([args.model, args.threads, args.steps, args.images, prompt])
    runs = []
    for _ in range(args.repeats):
        out = subprocess.run([sys.executable, "-c", CHILD, job], capture_output=True, text=True, check=True).stdout
        runs.append(json.loads(out.strip().splitlines()[-1]))
    size = runs[0].pop("size")
    for r in runs[1:]:
        r.pop("size")
    print(f"model {args.model or 'shapes-sd (the default)'}, {args.threads} thread(s), {prompt!r}, {args.steps} steps, "
          f"CFG 7.5, {size}x{size} px; medians over {args.repeats} fresh processes")
    med = {k: float(np.median([r[k] for r in runs])) for k in runs[0]}
    for k, v in med.items():
        print(f"{k:<22} {v:6.2f} s   (runs: {', '.join(f'{r[k]:.2f}' for r in runs)})")
    print(f"the model load is {100 * med['load_pipeline'] / med['total']:.0f} % of a fresh process's start-up; "
          f"the libraries' import is {100 * (med['torch'] + med['diffusers+transformers']) / med['total']:.0f} %")


if __name__ == "__main__":
    main()
