"""The verdict tables of lessons 2, 3, 5, 8, 10, 11 and 13: each claim the lesson makes, judged from the numbers its
experiments return, with the sample size and a 95 % interval (Wilson for shares, bootstrap for means and paired
differences) or, for deterministic facts, an exact check. Lessons 1, 4, 6, 7 and 9 keep theirs beside their
experiments (pipeline_tour.verdicts, denoising.structure_verdicts / swap_verdicts, attention.lesson6_verdicts,
guidance.verdicts, samplers.sampler_verdicts)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import verdicts as vd


def _share(rate: float, n: int) -> int:
    return int(round(rate * n))


def lesson2(sims: dict[str, float], mm: Any, ret: Any, n_pairs: int) -> list[vd.Verdict]:
    """Wording similarity (means over `n_pairs` prompt pairs), the meaning map's k-NN agreement, CLIP retrieval."""
    syn = sims["same meaning (synonym)"]
    one = {k: v for k, v in sims.items() if k in ("other colour", "other shape", "other position")}
    closest = max(one, key=one.get)
    out = [vd.exact("a synonym moves the embedding less than any one changed word of meaning", syn > max(one.values()),
                    f"cosine similarity: synonym {syn:.3f} vs {closest} {one[closest]:.3f} (the closest of the three)",
                    f"{n_pairs} prompt pairs per change (means)")]
    n = len(mm.prompts)
    for attr in ("colour", "shape"):
        k = _share(mm.knn_accuracy[attr], n)
        out.append(vd.proportion(f"prompts' nearest neighbours share their {attr}", k, n,
                                 threshold=mm.chance[attr], what="agree", unit="prompts",
                                 note=f"chance (always the commonest {attr}) = {mm.chance[attr]:.0%}"))
    n = len(ret.captions)
    out.append(vd.proportion("CLIP pairs each image with its own caption far above chance",
                             _share(ret.image_to_caption, n), n, threshold=10 * ret.chance, what="right caption",
                             unit="unseen scenes", note=f"chance = {ret.chance:.1%}; claim: above 10x chance"))
    return out


def lesson3(c: dict, rec: Any, ch: Any, nb: Any, it: Any) -> list[vd.Verdict]:
    """Compression, reconstruction, latent distance follows looks, latent neighbours, interpolation."""
    n_rec = len(rec.originals)
    out = [vd.exact(f"the latent holds {c['factor']:.0f}x fewer numbers than the pixels",
                    c["pixel_values"] == c["factor"] * c["latent_values"],
                    f"{c['pixel_values']} pixel values vs {c['latent_values']} latent values", "exact count"),
           vd.from_interval("the VAE round trip keeps the picture (PSNR above 25 dB)",
                            vd.bootstrap_mean(_psnr_each(rec)), f"{n_rec} unseen scenes", "PSNR (dB)",
                            threshold=25.0, digits=1)]
    order = sorted(ch.latent, key=ch.latent.get)
    out.append(vd.exact("latent distance follows how pictures look: a 1-pixel move is the smallest change",
                        order[0] == "moved 1 pixel", "latent distance: " + ", ".join(f"{k} {ch.latent[k]:.2f}"
                                                                                   for k in order),
                        "means over the scenes of the lesson"))
    n = len(nb.latents)
    for attr in nb.knn_accuracy:
        out.append(vd.proportion(f"latent neighbours share their {attr}", _share(nb.knn_accuracy[attr], n), n,
                                 threshold=nb.chance[attr], what="agree", unit="encoded scenes",
                                 note=f"chance = {nb.chance[attr]:.0%}"))
    out.append(vd.exact("a straight latent line looks like a pixel cross-fade (mean difference under 20 of 255)",
                        it.mean_abs_difference < 20, f"mean difference {it.mean_abs_difference:.1f} of 255",
                        f"{len(it.alphas) - 2} inner frames"))
    return out


def _psnr_each(rec: Any) -> list[float]:
    a = rec.originals.astype(np.float64) / (255.0 if rec.originals.dtype == np.uint8 else 1.0)
    b = rec.decoded.astype(np.float64) / (255.0 if rec.decoded.dtype == np.uint8 else 1.0)
    mse = ((a - b) ** 2).reshape(len(a), -1).mean(1)
    return list(10 * np.log10(1.0 / np.maximum(mse, 1e-12)))


def lesson5(live: Any, few: Any, near: Any, ho: Any) -> list[vd.Verdict]:
    """Live training, little data, copying, held-out pairs."""
    last = live.steps
    out = [vd.exact("training lowers the held-out loss (by at least a fifth)",
                    live.heldout[last] < 0.8 * live.heldout[0],
                    f"held-out loss {live.heldout[0]:.3f} at step 0 -> {live.heldout[last]:.3f} at step {last}",
                    "256 held-out scenes, fixed noise"),
           vd.exact("little data generalises worse: 32 scenes leave a larger train/held-out gap than 2000",
                    few.heldout[last] - few.train_eval[last] > live.heldout[last] - live.train_eval[last],
                    f"gap {few.heldout[last] - few.train_eval[last]:+.3f} (32 scenes) vs "
                    f"{live.heldout[last] - live.train_eval[last]:+.3f} (2000 scenes)", "one training run each")]
    return out + lesson5_copies(near, ho)


def lesson5_copies(near: Any, ho: Any) -> list[vd.Verdict]:
    """No copying (paired distances to the training set) and held-out colour x shape pairs."""
    out = []
    out.append(vd.compare("the model does not copy: generated pictures are no closer to the training set than fresh "
                          "renders are", near.real_distance, near.gen_distance, labels=("fresh renders", "generated"),
                          claim_above=False, margin=0.0, digits=3, unit="prompts (paired)",
                          note="distance to the nearest training image; agrees if generated are surely further"))
    n = len(ho.prompts)
    out.append(vd.proportion("held-out colour x shape pairs are drawn right (colour and shape) in most images",
                             _share(ho.both, n), n, threshold=0.5, what="both right", unit="held-out prompts",
                             note=f"{ho.in_training} training scenes hold such a pair"))
    out.append(vd.compare("held-out pairs are drawn less reliably than seen ones",
                          [1.0] * _share(ho.seen_both, n) + [0.0] * (n - _share(ho.seen_both, n)),
                          [1.0] * _share(ho.both, n) + [0.0] * (n - _share(ho.both, n)), labels=("seen", "held out"),
                          paired=False, percent=True, unit="prompts each"))
    return out


def lesson8(what: Any, effect: Any) -> list[vd.Verdict]:
    """The negative prompt is the unconditional branch; "white" as a negative removes white circles."""
    n = len(effect.seeds)
    w0, w1 = _share(effect.share("white", with_negative=False), n), _share(effect.share("white", with_negative=True), n)
    k0, k1 = _share(effect.asked_kept_without, n), _share(effect.asked_kept_with, n)
    return [vd.exact("the negative prompt is encoded into the unconditional branch, nothing else changes",
                     what.uncond_vs_negative_encoding < 1e-5 and what.cond_same < 1e-5,
                     f"uncond vs encode(negative) {what.uncond_vs_negative_encoding:.1e}; prompt side changed by "
                     f"{what.cond_same:.1e}", "every step of one run"),
            vd.exact("guidance then moves away from the negative prompt", what.moved_away > 0.999,
                     f"mean cosine {what.moved_away:.4f} (1 = straight away)", "every step of one run"),
            vd.compare(f"\u201c{effect.negative}\u201d as negative prompt removes {effect.negative} from "
                       f"\u201c{effect.prompt}\u201d", [1.0] * w0 + [0.0] * (n - w0), [1.0] * w1 + [0.0] * (n - w1),
                       labels=("without", "with"), paired=False, percent=True, unit="seeds each",
                       note=f"{effect.negative} circles: {w0}/{n} without, {w1}/{n} with"),
            vd.compare("the asked object survives the negative prompt (judge still accepts the prompt)",
                       [1.0] * k1 + [0.0] * (n - k1), [1.0] * k0 + [0.0] * (n - k0), labels=("with", "without"),
                       paired=False, percent=True, margin=-0.1, unit="seeds each",
                       note="agrees if the drop is surely under 10 points")]


def lesson10(rep: Any, layout: Any, norms: dict[str, float]) -> list[vd.Verdict]:
    """Same seed, same bits; the seed keeps layout only weakly; slerp keeps the noise size."""
    out = [vd.exact("same seed and settings give the same bits", rep.identical and rep.max_pixel_difference == 0,
                    f"largest pixel difference {rep.max_pixel_difference}", "two runs"),
           vd.exact("another seed gives another picture", rep.other_seed_differs,
                    f"mean difference {rep.other_seed_mean_difference:.1f} of 255", "two runs")]
    if layout.same_ious and layout.other_ious:
        out.append(vd.compare("the same seed keeps the layout across prompts (foreground overlap, IoU)",
                              layout.same_ious, layout.other_ious, labels=("same seed", "other seeds"), paired=False,
                              digits=2, unit="same-seed pairs",
                              note=f"{len(layout.other_ious)} other-seed pairs; a weak tendency if small"))
        out.append(vd.compare("... but only weakly: the same seed adds less than 0.15 IoU", layout.same_ious,
                              layout.other_ious, labels=("same seed", "other seeds"), paired=False, digits=2,
                              claim_above=False, margin=0.15, unit="same-seed pairs"))
    mid = (norms["seed_a"] + norms["seed_b"]) / 2
    out.append(vd.exact("slerp keeps the noise's size; a straight mix shrinks it",
                        abs(norms["slerp_midpoint"] - mid) < 0.05 * norms["seed_a"]
                        and norms["lerp_midpoint"] < 0.8 * min(norms["seed_a"], norms["seed_b"]),
                        f"norms: seeds {norms['seed_a']:.1f} / {norms['seed_b']:.1f}, slerp midpoint "
                        f"{norms['slerp_midpoint']:.1f}, lerp midpoint {norms['lerp_midpoint']:.1f}", "one pair"))
    return out


def lesson11(costs: list[Any], off: Any) -> list[vd.Verdict]:
    """Cost grows with size; at sizes it never saw the model draws extra objects but keeps the colour."""
    n = len(off.prompts)
    base = (32, 32)
    out = [vd.exact("cost grows with resolution", costs[-1].seconds > costs[0].seconds,
                    f"{costs[0].size[0]}x{costs[0].size[1]}: {costs[0].seconds:.2f} s, {costs[-1].size[0]}x"
                    f"{costs[-1].size[1]}: {costs[-1].seconds:.2f} s", "one timed run each")]
    for size in off.sizes:
        if size == base:
            continue
        k_base, k = _share(off.one_object[base], n), _share(off.one_object[size], n)
        out.append(vd.compare(f"at {size[0]}x{size[1]}, a size it never saw, it draws exactly one object less often "
                              f"than at {base[0]}x{base[1]}", [1.0] * k_base + [0.0] * (n - k_base),
                              [1.0] * k + [0.0] * (n - k), labels=(f"{base[0]}x{base[1]}", f"{size[0]}x{size[1]}"),
                              paired=False, percent=True, unit="one-object prompts each",
                              note=f"mean objects {off.mean_objects[base]:.1f} vs {off.mean_objects[size]:.1f}"))
        out.append(vd.proportion(f"... but keeps the asked colour at {size[0]}x{size[1]}",
                                 _share(off.colour[size], n), n, threshold=0.5, what="colour right",
                                 unit="one-object prompts"))
    return out


def lesson13(checks: dict[str, Any], prompt: str) -> list[vd.Verdict]:
    """The playground's one run, read by the judge, key by key."""
    wrong = [k for k, v in checks.items() if v is False and k != "all"]
    return [vd.exact(f"the playground's first run draws \u201c{prompt}\u201d as asked", not wrong,
                     "wrong: " + (", ".join(wrong) or "nothing"), "1 image",
                     "relations are our model's weakest skill" if "relation" in wrong else "")]
