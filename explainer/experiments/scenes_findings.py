"""The verdict tables of lessons 2 and 3 on the scenes model: each claim judged from the numbers the lesson's
experiments return, with intervals that resample the unit that was drawn -- the base prompt of a wording pair, the
caption of the meaning map, the unseen scene, the drawn pair of pictures, the walk -- and "too few to tell" under 8."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import verdicts as vd
from .summaries import psnr_each

SYNONYM = "same meaning (synonym)"


def _share(rate: float, n: int) -> int:
    return int(round(rate * n))


def lesson2(prefix: Any, sims: dict[str, np.ndarray], mm: Any, ret: Any, fox: Any, full: str, short: str,
            wrong: dict[str, str]) -> list[vd.Verdict]:
    """Causal prefix, wording moves (paired by base prompt), neighbours share meaning, CLIP retrieval and the fox's
    captions (paired by picture). `wrong`: what is wrong in each caption (e.g. "ground") -> the caption."""
    n_pos = len(prefix.cosine)
    differs = prefix.first_different < n_pos and prefix.cosine[prefix.first_different] < 1 - 1e-6
    out = [vd.exact("the text encoder is causal: positions before the first different word hold the same numbers",
                    prefix.max_abs_before < 1e-5 and differs,
                    f"\u201c{prefix.prompts[0]}\u201d vs \u201c{prefix.prompts[1]}\u201d: largest difference "
                    f"{prefix.max_abs_before:.1e} at positions 0..{prefix.first_different - 1}; cosine "
                    f"{prefix.cosine[prefix.first_different]:.3f} at position {prefix.first_different}",
                    f"2 prompts, {n_pos} positions")]
    for change in ("other thing", "other ground", "other light"):
        out.append(vd.compare(f"a synonym moves the embedding less than {change.replace('other', 'another')}",
                              sims[SYNONYM], sims[change], labels=("synonym", change), digits=3,
                              unit="base prompts (paired)", note="cosine similarity of the token tables to the "
                              "base prompt's; each base prompt is one unit"))
    one = np.mean([sims[c] for c in ("other thing", "other ground", "other light")], axis=0)
    out.append(vd.compare("one changed word moves the embedding less than an unrelated scene", one,
                          sims["unrelated scene"], labels=("one word (mean of three)", "unrelated"), digits=3,
                          unit="base prompts (paired)"))
    m = len(mm.prompts)
    for attr in mm.knn_accuracy:
        out.append(vd.proportion(f"captions' nearest neighbours share their {attr}", _share(mm.knn_accuracy[attr], m),
                                 m, threshold=mm.chance[attr], what="agree", unit="distinct captions",
                                 note=f"chance (always the commonest {attr}) = {mm.chance[attr]:.0%}"))
    k = len(ret.captions)
    out.append(vd.proportion("CLIP pairs each image with its own caption far above chance", int(sum(ret.image_hits)),
                             k, threshold=min(1.0, 10 * ret.chance), what="right caption", unit="unseen scenes",
                             note=f"chance = {ret.chance:.1%}; claim: above 10x chance"))
    p = len(fox.images)
    out.append(vd.compare(f"CLIP scores \u201c{full}\u201d above \u201c{short}\u201d on pictures of it",
                          fox.column(full), fox.column(short), labels=("full caption", short), digits=3,
                          unit="pictures (paired)"))
    for what, caption in wrong.items():
        out.append(vd.compare(f"CLIP scores the full caption above one with the wrong {what} (\u201c{caption}\u201d)",
                              fox.column(full), fox.column(caption), labels=("full caption", f"wrong {what}"),
                              digits=3, unit="pictures (paired)", note=f"{p} rendered pictures of {full}"))
    return out


def lesson3(c: dict, rec: Any, nf: Any, ch: Any, off_line: list[float]) -> list[vd.Verdict]:
    """Compression, the round trip, near and far in latent and CLIP space, one thing changed, the walks."""
    out = [vd.exact(f"the latent holds {c['factor']:.0f}x fewer numbers than the pixels",
                    c["pixel_values"] == c["factor"] * c["latent_values"],
                    f"{c['pixel_values']} pixel values vs {c['latent_values']} latent values", "exact count"),
           vd.from_interval("the VAE round trip keeps the picture (PSNR above 25 dB)",
                            vd.bootstrap_mean(psnr_each(rec)), f"{len(rec.originals)} unseen scenes",
                            "mean per-scene PSNR (dB)", threshold=25.0, digits=1)]
    out += near_far(nf)
    out.append(vd.from_interval("latent distance follows pixel distance (rank correlation per scene above 0)",
                                vd.bootstrap_mean(ch.rank_agreement()), f"{len(ch.latent)} unseen scenes",
                                f"mean Spearman correlation over {len(ch.changes)} changes", digits=2))
    j_thing, j_light = ch.changes.index("other thing"), ch.changes.index("other light")
    out.append(vd.compare("latent distance is distance in meaning: another thing moves the latent further than "
                          "another light", ch.latent[:, j_thing], ch.latent[:, j_light],
                          labels=("another thing", "another light"), digits=1, unit="scenes (paired)"))
    fa, fb = nf.pairs["far apart"]
    k = sum(v < 0.05 for v in off_line)
    out.append(vd.proportion("a straight latent line looks like a pixel cross-fade (fewer than 5 % of the pixels of "
                             "every inner frame in a colour of neither end)", k, len(off_line), threshold=0.5,
                             what="walks like a cross-fade", unit=f"walks from \u201c{fa}\u201d to \u201c{fb}\u201d"))
    return out


def near_far(nf: Any) -> list[vd.Verdict]:
    """Neighbours nearer than the far pair: in latent space and CLIP's image space (unpaired, each drawn pair one
    unit), and in CLIP's text space (exact: two pairs of prompts, nothing drawn)."""
    out: list[vd.Verdict] = []
    (na, nb), (fa, fb) = nf.pairs["neighbours"], nf.pairs["far apart"]
    near, far = f"\u201c{na}\u201d sits nearer \u201c{nb}\u201d", f"\u201c{fa}\u201d to \u201c{fb}\u201d"
    units = "drawn pairs"
    out.append(vd.compare(f"in latent space, {near} than {far}",
                          nf.latent_distance["neighbours"], nf.latent_distance["far apart"],
                          labels=("neighbours", "far apart"), paired=False, claim_above=False, digits=1, unit=units,
                          note="Euclidean distance between the two pictures' VAE latents"))
    out.append(vd.compare(f"in CLIP's image space, {near} than {far}", nf.clip_similarity["neighbours"],
                          nf.clip_similarity["far apart"], labels=("neighbours", "far apart"), paired=False,
                          digits=3, unit=units, note="cosine similarity of the two pictures' CLIP vectors"))
    tn, tf = nf.text_similarity["neighbours"], nf.text_similarity["far apart"]
    out.append(vd.exact(f"in CLIP's text space, {near} than {far}", tn > tf,
                        f"cosine similarity {tn:.3f} vs {tf:.3f}", "2 pairs of prompts (exact: no drawing)",
                        "the two neighbours get the same vector: the words that tell them apart never reach CLIP's "
                        "sentence vector" if tn > 1 - 1e-6 else ""))
    return out
