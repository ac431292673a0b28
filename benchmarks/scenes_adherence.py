"""Prompt adherence of a scenes-world pipeline (scenes-sd), GenEval-style, judged by the scenes judge.

    python benchmarks/adherence.py --model scenes-sd             # dispatches here
    python benchmarks/scenes_adherence.py --model PATH --n 64    # per kind: single, pair, count, landscape

Prints the table by category (share, n prompts, Wilson 95 % interval over prompts: one image per prompt), the
article's prompts over seeds with the share the judge reads right, a CFG sweep (1, 3, 5, 7.5, 12, 20), a steps sweep
(5, 10, 20, 40, 80), how much of the layout a seed fixes, which things it draws (single-object prompts per thing,
against the VAE round trips of the same scenes), and the seconds for one image.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

import explainer as ex
from explainer.experiments import scenes_seeds
from explainer.experiments.scenes_eval import (
    CATEGORIES,
    adherence,
    article_grid,
    generate,
    prompt_sets,
    text_confusion,
    thing_study,
)
from explainer.models import SHIPPED_MODELS
from explainer.train.scenes_card import write_card
from explainer.worlds.scenes_judge import load_judge


def row(name: str, table: dict) -> str:
    cells = [f"{100 * table[k]['share']:5.1f}% (n {table[k]['n']})" if k in table else "      -      "
             for k in CATEGORIES]
    return f"{name:<12}" + " ".join(f"{c:>16}" for c in cells)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="scenes-sd")
    p.add_argument("--n", type=int, default=128, help="prompts per kind (single, pair, count, landscape)")
    p.add_argument("--sweep-n", type=int, default=32, help="prompts per kind in the sweeps")
    p.add_argument("--cfg", type=float, default=7.5)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--seeds", type=int, default=10, help="seeds per article prompt")
    p.add_argument("--thing-n", type=int, default=16, help="single-object prompts per thing in the by-thing study")
    p.add_argument("--quick", action="store_true", help="main table and article grid only")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--figure", type=Path, default=None,
                   help="save the article's prompts x seeds, as the judge reads them, to this PNG")
    p.add_argument("--judge", type=Path, default=None, help="a scenes judge folder (default: the shipped one)")
    p.add_argument("--card", action="store_true", help="write the numbers into the model folder's MODEL_CARD.md "
                                                       "and adherence.json (a full run only)")
    args = p.parse_args(argv)
    if args.card and args.quick:
        p.error("--card needs the full measurement (drop --quick)")
    if not 1 <= args.thing_n <= 200:
        p.error(f"--thing-n must be from 1 to 200, got {args.thing_n}")
    torch.set_num_threads(args.threads)
    pipe = ex.load_pipeline(args.model)
    judge = load_judge(args.judge) if args.judge else None
    sets = prompt_sets(args.n)
    scenes = [s for v in sets.values() for s in v]
    out: dict = {"model": str(args.model), "n_prompts": len(scenes), "cfg": {}, "steps": {}, "cfg_main": args.cfg,
                 "steps_main": args.steps, "seeds": args.seeds, "threads": args.threads}
    print(f"{len(scenes)} unseen prompts; CFG {args.cfg:g}, {args.steps} steps")
    print(f"{'setting':<12}" + " ".join(f"{k:>16}" for k in CATEGORIES))
    out["main"] = adherence(pipe, scenes, args.steps, args.cfg, judge=judge).table()
    print(row("main", out["main"]))
    grid = article_grid(pipe, range(args.seeds), args.steps, args.cfg, judge)
    out["article"] = grid["right"]
    if args.figure:
        from explainer.experiments.scenes_eval import article_checks
        from explainer.plots import plot_article_grid

        name = args.model if args.model in SHIPPED_MODELS else Path(args.model).name
        plot_article_grid(grid, article_checks, name, args.steps, args.cfg).savefig(args.figure, dpi=110)
        print("wrote", args.figure)
    for prompt, share in grid["right"].items():
        print(f"  {prompt!r:<40} read right for {100 * share:5.1f}% of {args.seeds} seeds")
    if not args.quick:
        small = [s for v in prompt_sets(args.sweep_n).values() for s in v]
        for cfg in (1, 3, 5, 7.5, 12, 20):
            out["cfg"][cfg] = adherence(pipe, small, args.steps, cfg, judge=judge).table()
            print(row(f"cfg {cfg:g}", out["cfg"][cfg]))
        for steps in (5, 10, 20, 40, 80):
            out["steps"][steps] = adherence(pipe, small, steps, args.cfg, judge=judge).table()
            print(row(f"{steps} steps", out["steps"][steps]))
        study = scenes_seeds.layout_study(pipe, steps=args.steps, cfg=args.cfg, judge=judge)
        out["layout"] = [{"claim": v.claim, "status": v.status, "numbers": v.numbers, "n": v.n}
                         for v in scenes_seeds.verdicts(study)]
        for v in scenes_seeds.verdicts(study):
            print("layout:", v.sentence())
        out["things"] = thing_study(pipe, args.thing_n, args.steps, args.cfg, judge)
        print(f"{'thing':<12}{'drawn':>8}{'round trip':>12}{'render':>8}   round trip - drawn (95 % interval)")
        for t, r in sorted(out["things"].items(), key=lambda kv: kv[1]["drawn"]):
            gap = "too few to tell" if r["too_few"] else \
                f"{100 * r['gap']:+5.1f} pp [{100 * r['gap_low']:+5.1f}, {100 * r['gap_high']:+5.1f}]"
            print(f"{t:<12}{100 * r['drawn']:7.1f}%{100 * r['round_trip']:11.1f}%{100 * r['render']:7.1f}%   {gap}"
                  f"   reads like {r['text_nearest']} ({r['text_cosine']:.2f})")
        rho = text_confusion(out["things"])
        out["text_confusion"] = {"rho": rho.estimate, "low": rho.low, "high": rho.high, "n": rho.units,
                                 "too_few": rho.too_few}
        print(f"Spearman rho (text-encoder cosine to the nearest other name vs drawn share): {rho.text()} over "
              f"{rho.units} things")
    t = time.perf_counter()
    generate(pipe, ["a red fox sitting in autumn leaves"], [0], args.steps, args.cfg, batch=1)
    out["seconds_one_image"] = time.perf_counter() - t
    print(f"one {args.steps}-step image at CFG {args.cfg:g}: {out['seconds_one_image']:.2f} s ({args.threads} threads)")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1, default=str))
    if args.card:
        folder = SHIPPED_MODELS.get(args.model, Path(args.model))
        print("wrote", write_card(folder, out))
    return out


if __name__ == "__main__":
    main()
