"""Lesson 10 on real things: how much of the picture a seed fixes on the scenes model. One-thing prompts that name no
position, ground or sky leave the where and the light to the seed; every prompt is drawn with every seed, and
pictures of two different prompts are compared when they share a seed and when they do not.

Three measures, per pair of pictures: the distance between the subjects' centres as the scenes judge reads them, the
correlation of the pictures' coarse brightness (8 x 8 cells: where the light and the dark masses are, judge-free),
and whether the judge reads the same sky (the lighting: dawn, day, dusk, night). The seed is the unit that was
drawn: each seed's same-seed pairs are averaged against its pairs with the other seeds, and the intervals resample
seeds.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import verdicts as vd
from ..worlds.scenes import NAMES
from ..worlds.scenes_judge import read
from .scenes_eval import generate

#: things drawn in their own colours (a coloured thing's captions always name its colour)
LAYOUT_THINGS = ("fox", "cat", "dog", "rabbit", "owl", "penguin")
LAYOUT_SEEDS = tuple(range(10))
MEASURES = ("centre_px", "coarse_corr", "same_sky")


@dataclass
class SceneLayout:
    model: str
    prompts: list[str]
    things: list[str]  # the thing each prompt names
    seeds: list[int]
    steps: int
    cfg: float
    images: np.ndarray = field(repr=False)  # (prompts, seeds, h, w, 3) uint8
    centres: list[list[tuple[float, float] | None]] = field(repr=False)  # [prompt][seed]: the subject's judged centre
    skies: list[list[str]] = field(repr=False)  # [prompt][seed]: the judged sky
    # measure -> ("same" | "other") -> one value per seed (NaN: the seed has no pair to measure)
    by_seed: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    pairs: dict[str, dict[str, int]] = field(default_factory=dict)  # measure -> same / other -> image pairs used
    seconds: float = 0.0

    def paired(self, measure: str) -> tuple[list[float], list[float]]:
        """Same-seed and other-seed values of the seeds where both are measured (the paired units)."""
        same, other = self.by_seed[measure]["same"], self.by_seed[measure]["other"]
        keep = [k for k in range(len(self.seeds)) if np.isfinite(same[k]) and np.isfinite(other[k])]
        return [same[k] for k in keep], [other[k] for k in keep]


def coarse(image: np.ndarray, cells: int = 8) -> np.ndarray:
    """The picture's brightness averaged over `cells` x `cells` blocks, standardised (mean 0, norm 1)."""
    g = np.asarray(image, dtype=np.float64).mean(-1)
    h, w = g.shape
    c = g.reshape(cells, h // cells, cells, w // cells).mean((1, 3)).ravel()
    c = c - c.mean()
    n = np.linalg.norm(c)
    return c / n if n > 0 else c


def per_seed(values: Sequence[Sequence[Any]], score: Callable[[Any, Any], float | None]
             ) -> tuple[list[float], list[float], int, int]:
    """For each seed k: the mean `score` over pairs of different prompts that both use seed k, and over pairs of
    different prompts where one uses seed k and the other another seed (`values[prompt][seed]`; a None score is left
    out). Returns (same per seed, other per seed, same pairs, other pairs); NaN where a seed has no pair."""
    n_p, n_s = len(values), len(values[0])
    same: list[list[float]] = [[] for _ in range(n_s)]
    other: list[list[float]] = [[] for _ in range(n_s)]
    for a, b in itertools.permutations(range(n_p), 2):
        for i, j in itertools.product(range(n_s), repeat=2):
            if i == j and a > b:
                continue  # a same-seed pair counted once
            x = score(values[a][i], values[b][j])
            if x is not None:
                (same if i == j else other)[i].append(float(x))
    mean = [float(np.mean(v)) if v else float("nan") for v in same]
    # a pair of different seeds i, j sits in both seeds' lists: count it once
    return (mean, [float(np.mean(v)) if v else float("nan") for v in other], sum(map(len, same)),
            sum(map(len, other)) // 2)


def _distance(p: Any, q: Any) -> float | None:
    return None if p is None or q is None else float(np.hypot(p[0] - q[0], p[1] - q[1]))


def layout_prompts(things: Sequence[str] = LAYOUT_THINGS) -> list[str]:
    """One prompt per thing, naming nothing else: no position, ground or sky ("a fox", "a cat", ...)."""
    return [f"{'an' if NAMES[t][0][0] in 'aeiou' else 'a'} {NAMES[t][0]}" for t in things]


def layout_study(pipe: Any, things: Sequence[str] = LAYOUT_THINGS, seeds: Sequence[int] = LAYOUT_SEEDS,
                 steps: int = 20, cfg: float = 7.5, judge: Any = None, model: str = "scenes-sd") -> SceneLayout:
    """Every one-thing prompt with every seed, read by the scenes judge (None: the shipped one)."""
    things, seeds = list(things), list(seeds)
    if len(things) < 2 or len(seeds) < 2:
        raise ValueError(f"the study compares pictures of different prompts and seeds: needs 2 or more of each, got "
                         f"{len(things)} things and {len(seeds)} seeds")
    t0 = time.perf_counter()
    prompts = layout_prompts(things)
    flat = generate(pipe, [p for p in prompts for _ in seeds], [s for _ in prompts for s in seeds], steps, cfg)
    readings = read(flat, judge)
    images = flat.reshape(len(prompts), len(seeds), *flat.shape[1:])
    grid = [readings[k * len(seeds):(k + 1) * len(seeds)] for k in range(len(prompts))]
    centres = [[r.centers.get(t) for r in row] for t, row in zip(things, grid, strict=True)]
    skies = [[r.sky for r in row] for row in grid]
    res = SceneLayout(model, prompts, things, seeds, int(steps), float(cfg), images, centres, skies)
    maps = [[coarse(im) for im in row] for row in images]
    for name, values, score in (("centre_px", centres, _distance),
                                ("coarse_corr", maps, lambda u, v: float(u @ v)),
                                ("same_sky", skies, lambda u, v: float(u == v))):
        same, other, n_same, n_other = per_seed(values, score)
        res.by_seed[name] = {"same": same, "other": other}
        res.pairs[name] = {"same": n_same, "other": n_other}
    res.seconds = time.perf_counter() - t0
    return res


def fixed_share(study: SceneLayout) -> float:
    """How much nearer the subjects' centres are when two prompts share a seed: 1 - same / other distance (0: the
    seed fixes nothing of where the subject goes; 1: the same place every time); NaN without pairs."""
    same, other = study.paired("centre_px")
    return float(1 - np.mean(same) / np.mean(other)) if same and np.mean(other) > 0 else float("nan")


def verdicts(study: SceneLayout) -> list[vd.Verdict]:
    """Sharing a seed keeps the subject's place, the coarse picture and the lighting across prompts (paired by seed,
    resampling seeds); a measure no seed could give is reported as too few to tell."""
    m = study.model
    unit = "seeds (paired: each seed's same-seed pairs vs its pairs with other seeds)"
    specs = (("centre_px", "the same seed keeps the layout across prompts (distance between the subjects' centres, "
              "px)", False, 1), ("coarse_corr", "the same seed keeps the picture's coarse layout across prompts "
              "(8 x 8 brightness correlation)", True, 2),
             ("same_sky", "the same seed keeps the lighting across prompts (the judge reads the same sky)", True, 0))
    out = []
    for key, claim, above, digits in specs:
        same, other = study.paired(key)
        note = (f"{study.pairs[key]['same']} same-seed and {study.pairs[key]['other']} other-seed picture pairs of "
                f"{len(study.prompts)} prompts, averaged per seed")
        if not same:
            out.append(vd.Verdict(f"{m}: {claim}", vd.TOO_FEW, "no seed has a pair the judge could measure",
                                  f"0 of {len(study.seeds)} seeds", note))
            continue
        out.append(vd.compare(f"{m}: {claim}", same, other, labels=("same seed", "other seeds"),
                              claim_above=above, digits=digits, percent=key == "same_sky", unit=unit, note=note))
    return out


def shapes_verdict(layout: Any, same: Sequence[float], other: Sequence[float], model: str = "shapes-sd"
                   ) -> vd.Verdict:
    """The shapes model's layout study (`seeds.layout_study`, averaged per seed by `summaries.layout_by_seed`)."""
    return vd.compare(f"{model}: the same seed keeps the layout across prompts (foreground overlap, IoU)", same, other,
                      labels=("same seed", "other seeds"), digits=2,
                      unit="seeds (paired: each seed's same-seed pairs vs its pairs with other seeds)",
                      note=f"{len(layout.same_ious)} same-seed and {len(layout.other_ious)} other-seed picture pairs "
                           f"of {len(layout.prompts)} prompts, averaged per seed")
