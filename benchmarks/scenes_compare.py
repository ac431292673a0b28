"""Two scenes-world pipelines on the same unseen prompts and seeds, prompt by prompt: which draws more of what it is
asked, and is the difference more than noise? (e.g. the text encoder frozen vs fine-tuned with the U-Net, both
stopped at the same update of the same schedule; or a model before and after more training.)

    python benchmarks/scenes_compare.py --a runs/frozen/scenes-sd --b runs/tuned/scenes-sd --labels frozen tuned

Each prompt is drawn once by each model with the same seed and read by the same judge (the shipped scenes judge, or
`--judge FOLDER`), so the comparison is paired: per category, each model's share and the difference b - a with a 95 %
interval from resampling prompts (the unit drawn); the article's prompts over seeds the same way, the seeds resampled.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

import explainer as ex
from explainer.experiments.scenes_eval import CATEGORIES, adherence, article_checks, article_grid, prompt_sets
from explainer.verdicts import bootstrap_difference
from explainer.worlds.scenes_judge import load_judge


def paired(a: list[bool], b: list[bool]) -> dict:
    """Shares of a and b and the paired difference b - a (percentage points) with its interval over the units."""
    d = bootstrap_difference(np.asarray(b, float), np.asarray(a, float), paired=True)
    return {"n": len(a), "a": float(np.mean(a)), "b": float(np.mean(b)), "diff": d.estimate, "low": d.low,
            "high": d.high, "too_few": d.too_few}


def line(name: str, r: dict) -> str:
    gap = ("too few to tell" if r["too_few"] else
           f"{100 * r['diff']:+5.1f} pp [{100 * r['low']:+5.1f}, {100 * r['high']:+5.1f}]")
    return f"{name:<38} {100 * r['a']:5.1f}%  {100 * r['b']:5.1f}%   {gap}   (n {r['n']})"


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--a", required=True, type=Path, help="a scenes-sd pipeline folder")
    p.add_argument("--b", required=True, type=Path, help="another, compared against --a")
    p.add_argument("--labels", nargs=2, default=("a", "b"), metavar=("A", "B"))
    p.add_argument("--n", type=int, default=128, help="prompts per kind (single, pair, count, landscape)")
    p.add_argument("--seeds", type=int, default=10, help="seeds per article prompt")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--cfg", type=float, default=7.5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--judge", type=Path, default=None, help="a scenes judge folder (default: the shipped one)")
    args = p.parse_args(argv)
    for name in ("a", "b"):
        if not (getattr(args, name) / "model_index.json").is_file():
            p.error(f"--{name} must be a diffusers pipeline folder (model_index.json), got {getattr(args, name)}")
    if not 1 <= args.n <= 1000 or not 1 <= args.seeds <= 100:
        p.error("--n must be from 1 to 1000 and --seeds from 1 to 100")
    if args.judge is not None and not (args.judge / "model.safetensors").is_file():
        p.error(f"--judge must be a scenes judge folder (model.safetensors), got {args.judge}")
    torch.set_num_threads(args.threads)
    judge = load_judge(args.judge) if args.judge else None
    scenes = [s for v in prompt_sets(args.n).values() for s in v]
    runs = {}
    for name in ("a", "b"):
        pipe = ex.load_pipeline(str(getattr(args, name)))
        runs[name] = (adherence(pipe, scenes, args.steps, args.cfg, judge=judge),
                      article_grid(pipe, range(args.seeds), args.steps, args.cfg, judge))
    la, lb = args.labels
    print(f"{len(scenes)} unseen prompts, one image each (same seeds for both); CFG {args.cfg:g}, {args.steps} steps")
    print(f"{'':<38} {la[:6]:>6}  {lb[:6]:>6}   {lb} - {la}, 95 % interval over prompts")
    out: dict = {"labels": [la, lb], "a": str(args.a), "b": str(args.b), "categories": {}, "article": {}}
    for k in CATEGORIES:
        ha, hb = runs["a"][0].hits.get(k, []), runs["b"][0].hits.get(k, [])
        if ha:
            out["categories"][k] = paired(ha, hb)
            print(line(k, out["categories"][k]))
    print(f"article prompts over {args.seeds} seeds (read right: every question the prompt asks)")
    for prompt in runs["a"][1]["right"]:
        per = [[all(article_checks(r, prompt).values()) for r, q in zip(g["readings"], _prompts(g), strict=True)
                if q == prompt] for g in (runs["a"][1], runs["b"][1])]
        out["article"][prompt] = paired(per[0], per[1])
        print(line(repr(prompt), out["article"][prompt]))
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    return out


def _prompts(grid: dict) -> list[str]:
    """The prompt of each reading of an article grid, in order."""
    return [p for p in grid["right"] for _ in grid["seeds"]]


if __name__ == "__main__":
    main()
