"""How well the shipped ControlNets make the output follow a map, and what wins when map and prompt disagree.

    python benchmarks/controlnet.py                 # both ControlNets (~10-20 min on 2 shared cores)
    python benchmarks/controlnet.py --condition edges --n 12

Prints, per condition: layout agreement (mask IoU of the output's foreground vs the map's regions, mean +- s.e.,
judged centre within 3 px, judged size word, mean centre distance) without the ControlNet and at conditioning scales
0 / 0.25 / 0.5 / 1 / 1.5 on validation scenes never trained on (prompts name what to draw, not where); the map-vs-prompt
conflict (a square's map, prompt "a red circle": share judged square / circle / red per scale); the residual norm per
U-Net skip over the steps of one traced run (share of each residual's summed norm in the first half of the steps);
and the seconds of one 12-step image with and without the ControlNet (a ratio). Writes --out (JSON).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

import explainer as ex
from explainer import shapes
from explainer.experiments import controlnet as X


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--condition", choices=["edges", "segmentation", "both"], default="both")
    p.add_argument("--n", type=int, default=12, help="validation scenes")
    p.add_argument("--conflict-n", type=int, default=8)
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=Path("/tmp/controlnet_benchmark.json"))
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    conds = ["edges", "segmentation"] if args.condition == "both" else [args.condition]
    report = {}
    for cond in conds:
        pipe = ex.load_pipeline(controlnet=cond)
        scenes = X.validation_scenes(args.n)
        sweep = X.scale_sweep(pipe, cond, scenes, steps=args.steps)
        print(f"\n== {cond} ControlNet: layout agreement on {args.n} validation scenes ({args.steps} steps, CFG 5)")
        print(f"{'setting':>14} | IoU mean +- s.e. | centre <= 3 px | size word | centre distance px")
        rows = [("without", sweep["without"])] + [(f"scale {s:g}", sc) for s, sc in sorted(sweep["scales"].items())]
        for name, sc in rows:
            print(f"{name:>14} | {sc.iou:.3f} +- {sc.iou_se:.3f}    | {sc.position:>13.0%} | {sc.size:>8.0%} | "
                  f"{sc.distance:.2f}")
        same0 = all(np.array_equal(np.asarray(a), np.asarray(b))
                    for a, b in zip(sweep["images"]["without"], sweep["images"][0.0], strict=True))
        print(f"scale 0 gives the same images as no ControlNet: {same0}")
        conf = X.conflict(pipe, cond, n=args.conflict_n, steps=args.steps)
        print(f"-- conflict: a square's {cond} map, prompt {conf['prompt']!r} (n={conf['n']} placements)")
        for s, r in sorted(conf["scales"].items()):
            print(f"   scale {s:<4g}: judged square {r['map_shape']:.0%}, circle {r['prompt_shape']:.0%}, "
                  f"red {r['prompt_color']:.0%}, IoU vs map {r['iou']:.2f}")
        scene = scenes[0]
        tr = ex.trace(pipe, X.layout_prompt(scene), seed=0, steps=args.steps, cfg=5.0, attention=False,
                      control_image=shapes.render_condition(scene, cond))
        prof = X.residual_profile(tr)
        print(f"-- residual norms over {args.steps} steps (one run: {X.layout_prompt(scene)!r}, seed 0)")
        for k, name in enumerate(prof["names"]):
            row = " ".join(f"{v:6.2f}" for v in prof["norm"][:, k])
            print(f"   {name:>6}: {row}  | first-half share {prof['early_share'][name]:.2f}")
        gen = torch.Generator().manual_seed(0)
        t0 = time.perf_counter()
        pipe("a red circle", image=shapes.render_condition(scene, cond), num_inference_steps=args.steps,
             generator=gen)
        t_cn = time.perf_counter() - t0
        plain = ex.load_pipeline()
        t0 = time.perf_counter()
        plain("a red circle", num_inference_steps=args.steps, generator=torch.Generator().manual_seed(0))
        t_plain = time.perf_counter() - t0
        print(f"-- one {args.steps}-step image: {t_cn:.2f} s with the ControlNet, {t_plain:.2f} s without "
              f"(ratio {t_cn / t_plain:.2f})")
        report[cond] = {"without": sweep["without"].as_dict(),
                        "scales": {str(s): sc.as_dict() for s, sc in sweep["scales"].items()},
                        "scale0_equals_without": same0,
                        "conflict": {str(s): r for s, r in conf["scales"].items()},
                        "residual_early_share": prof["early_share"],
                        "residual_norm": prof["norm"].tolist(), "seconds_ratio": t_cn / t_plain}
    args.out.write_text(json.dumps(report, indent=1))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
