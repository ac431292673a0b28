"""Is the attention map right? Print the scores of every map method against the objects' pixels.

    python benchmarks/attention_quality.py                    # the shipped U-Net model, 240 prompts, 200 renders
    python benchmarks/attention_quality.py --n 40 --renders 40 --judge-n 50   # a quick look

Prints, for the shipped model (or `--model PATH`; an SD3-style transformer such as shapes-dit gets ConceptAttention
scored in place of the U-Net-only noised-render part):
1. how reliable the judge's masks are (IoU against the renderer's exact masks, clean and blurred+noised renders);
2. method x level x step range -> pointing, mass inside (with the object's area = chance), ROC AUC, best IoU, for
   colour and shape words on generated images (judge masks), then per word class, then on noised renders (exact masks);
3. colour-word leakage onto the other object against judged failures (wrong colour, swapped relation).
Numbers are means over images with 95 % half-widths (each image's words averaged first).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=240, help="two-object prompts to generate (>= 200 for the leakage)")
    ap.add_argument("--renders", type=int, default=200, help="rendered scenes read by the U-Net")
    ap.add_argument("--concept-n", type=int, default=None, help="prompts for ConceptAttention on a DiT (default: --n)")
    ap.add_argument("--judge-n", type=int, default=200, help="renders for the judge-mask reliability")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--cfg", type=float, default=7.5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--model", default=None, help="pipeline folder (default: the shipped shapes model)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    import explainer as ex
    from explainer import attention_scores as S
    from explainer.experiments import attention_quality as Q
    from explainer.experiments import concepts as C

    t0 = time.time()
    print("== 1. judge masks vs the renderer's exact masks (two-object renders) ==")
    for degrade in (False, True):
        r = S.judge_mask_reliability(args.judge_n, degrade=degrade)
        kind = "blurred+noised" if degrade else "clean"
        print(f"{kind:<15} {r.n_scenes} scenes, {r.n_objects} objects: found {r.found:.1%}, mean IoU {r.mean_iou:.3f} "
              f"[95% CI {r.iou_ci[0]:.3f}, {r.iou_ci[1]:.3f}], IoU >= 0.5 for {r.share_above_half:.1%}")

    pipe = ex.load_pipeline(args.model) if args.model else ex.load_pipeline()
    name = args.model or "shapes-sd (shipped U-Net)"
    dit = C.concept_attention_available(pipe)
    print(f"\n== 2. maps vs objects, {name}: {args.n} prompts, {args.steps} steps, CFG {args.cfg} ==")
    runs = Q.generated_runs(pipe, n=args.n, seed=args.seed, steps=args.steps, cfg=args.cfg, progress=True)
    print(f"usable images (the judge found both named colours): {sum(runs.usable)} of {args.n}")
    sc = Q.score_generated(runs)
    summary = Q.summarise(sc)
    print("\ncolour and shape words, each against its own object (generated images, judge masks):")
    print(Q.format_table(summary))
    b, d = Q.best(summary, method="raw"), Q.best(summary, method="summed")
    print(f"\nbest raw map by AUC: level {b['level']}, steps {b['steps']} (AUC {b['auc']:.3f}); best summed: level "
          f"{d['level']}, steps {d['steps']} (AUC {d['auc']:.3f})")
    all_steps = Q.range_label((0, args.steps))
    print(f"\nper word class, summed over steps {all_steps} (DAAM) and the best raw cell; content words vs their own "
          "object, relation words and articles vs both objects:")
    for cls in Q.WORD_CLASSES:
        rows = [r for r in Q.summarise(sc, classes=(cls,)) if (r["method"], r["level"], r["steps"]) in
                {("summed", "all", all_steps), ("summed", "8x8", all_steps), ("raw", b["level"], b["steps"])}]
        for r in rows:
            r["source"] = cls
        print(Q.format_table(rows))
    if dit:
        print(f"\nConceptAttention ({name}): concept = each colour and shape word + 'background', mean over steps:")
        n_c = args.concept_n or args.n
        cs, usable = C.score_concepts(pipe, n=n_c, seed=args.seed, steps=args.steps, cfg=args.cfg, progress=True)
        print(f"usable images: {usable} of {n_c}")
        print(Q.format_table(Q.summarise(cs)))
    else:
        print("\nthe same scenes' kind, rendered, noised to t and read once by the U-Net (exact renderer masks):")
        rs = Q.render_attention(pipe, n=args.renders, seed=args.seed)
        print(Q.format_table(Q.summarise(rs)))
        print("\nrelation words and articles vs both objects (renders):")
        print(Q.format_table([r for r in Q.summarise(rs, classes=("relation", "article"))
                              if r["level"] in ("8x8", "all")]))

    print("\n== 3. leakage vs judged failures ==")
    lk = Q.leakage(runs)
    print(Q.format_leakage(lk))
    mis = Q.find_misleading(runs)
    if mis is not None:
        print(f"\nmost misleading map: '{mis.word}' in \"{mis.prompt}\" (seed {mis.seed}): {mis.own_mass:.3f} of its "
              f"mass on its own object, {mis.other_mass:.3f} on the other")
    print(f"\n(took {time.time() - t0:.0f} s on {args.threads} thread(s); chance: pointing = mass inside = area, "
          f"AUC = 0.5; {np.mean(runs.usable):.0%} of images usable)")


if __name__ == "__main__":
    main()
