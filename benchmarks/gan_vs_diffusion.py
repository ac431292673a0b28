"""GAN vs diffusion on the shapes world: the full table of lesson 15.

    python benchmarks/gan_vs_diffusion.py [--seeds 128] [--threads 2] [--prompts "a red circle" ...]

For each under-specified prompt: n seeds from the shipped GAN (explainer/assets/shapes-gan) and from the shipped
diffusion pipeline (CFG 5, 25 steps, DPM++ 2M), and n rendered scenes from the data's own distribution. Prints, per
model and prompt: coverage of the world's 30 (position, size, background) combos, their entropy in bits, the share of
images where the judge found the asked object, judged adherence (colour, shape, one object), precision / recall /
density / coverage (`prdc`, k = 5) of CLIP image embeddings against the real scenes, and seconds per image (wall
clock, so the GAN/diffusion speed ratio is the figure to read). Then the pooled verdicts and the stability summary.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, default=128, help="seeds per prompt per model (>= 64 for the issue's table)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--prompts", nargs="*", default=None)
    p.add_argument("--json", type=Path, default=None, help="also write the rows and verdicts here")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    from explainer import load_pipeline
    from explainer.experiments import gan as E
    from explainer.gan import load_gan

    t0 = time.time()
    gan, pipe = load_gan(), load_pipeline()
    prompts = args.prompts or list(E.OPEN_PROMPTS)
    study = E.diversity_study(gan, pipe, prompts, n_seeds=args.seeds)
    rows = study.rows()
    head = ("model", "prompt", "n", "combos /30", "entropy bits", "found", "adherence", "precision", "recall",
            "density", "coverage", "s/image")
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in rows:
        cells = [r["model"], r["prompt"], str(r["n"]), f"{30 * r['combo_coverage']:.0f}", f"{r['entropy_bits']:.2f}",
                 f"{100 * r['found']:.0f}%", f"{100 * r['adherence']:.0f}%"]
        cells += [f"{r[k]:.2f}" if k in r else "—" for k in ("precision", "recall", "density", "coverage")]
        spi = r["seconds_per_image"]
        cells.append("—" if spi is None else f"{spi * 1000:.1f} ms")
        print("| " + " | ".join(cells) + " |")
    print()
    for m in ("GAN", "diffusion"):
        pr = study.prdc_pooled(m)
        print(f"{m} pooled prdc: " + ", ".join(f"{k} {v.text()}" for k, v in pr.items()))
    for m in ("data", "GAN", "diffusion"):
        iv = E.entropy_interval(study.pooled(m))
        print(f"{m} pooled combo entropy: {iv.text()} bits (ceiling 4.91 for 30 combos)")
    ratio = study.seconds_per_image("diffusion") / study.seconds_per_image("GAN")
    print(f"speed: diffusion {study.seconds_per_image('diffusion') * 1000:.1f} ms / image, GAN "
          f"{study.seconds_per_image('GAN') * 1000:.2f} ms / image -> GAN {ratio:.0f}x faster "
          f"({args.threads} threads)")
    stab = E.stability(E.load_logs())
    print(f"stability at step {stab.common_step}: EMA adherence {stab.adherence_at_common}, live "
          f"{stab.raw_adherence_at_common}, worst drop {stab.worst_drop}, loss_d std {stab.loss_d_std}")
    table = E.verdicts(study, stab)
    print()
    print(table.to_markdown())
    print(f"\ntotal {time.time() - t0:.0f} s")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "verdicts": [v.__dict__ for v in table]}, indent=1))


if __name__ == "__main__":
    main()
