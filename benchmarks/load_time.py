"""How long `explainer.load_pipeline()` takes, split into the libraries' import and the model load.

    python benchmarks/load_time.py            # 3 fresh processes

Each repeat is a fresh Python process (as a learner's first notebook cell is): it imports torch, then diffusers and
transformers (the classes the shipped pipeline needs), then explainer, then calls `load_pipeline()` twice. Prints the
median of each part and the model load as a share of the whole start-up.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import numpy as np

CHILD = r"""
import json, time
t0 = time.perf_counter()
import torch
t1 = time.perf_counter()
from diffusers import AutoencoderKL, DPMSolverMultistepScheduler, StableDiffusionPipeline, UNet2DConditionModel
from transformers import CLIPTextModel, PreTrainedTokenizerFast
t2 = time.perf_counter()
import explainer as ex
t3 = time.perf_counter()
ex.load_pipeline()
t4 = time.perf_counter()
ex.load_pipeline()
t5 = time.perf_counter()
print(json.dumps({"torch": t1 - t0, "diffusers+transformers": t2 - t1, "explainer": t3 - t2,
                  "load_pipeline": t4 - t3, "load_pipeline again": t5 - t4, "total": t4 - t0}))
"""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=3, help="fresh processes to time (1 to 20)")
    args = p.parse_args()
    if not 1 <= args.repeats <= 20:
        p.error(f"--repeats must be from 1 to 20, got {args.repeats}")
    runs = []
    for _ in range(args.repeats):
        out = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, check=True).stdout
        runs.append(json.loads(out.strip().splitlines()[-1]))
    med = {k: float(np.median([r[k] for r in runs])) for k in runs[0]}
    for k, v in med.items():
        print(f"{k:<22} {v:6.2f} s   (runs: {', '.join(f'{r[k]:.2f}' for r in runs)})")
    print(f"the model load is {100 * med['load_pipeline'] / med['total']:.0f} % of a fresh process's start-up; "
          f"the libraries' import is {100 * (med['torch'] + med['diffusers+transformers']) / med['total']:.0f} %")


if __name__ == "__main__":
    main()
