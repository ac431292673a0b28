"""Lesson 6 on real things: where the words of "a red fox sitting in autumn leaves" look, and what a position of the
textured ground looks at, on the scenes model, measured against where things are.

Where things are: the scenes judge reads the fox's centre in the final picture (`scenes_cfg.footprint`: the latent
cells within `RADIUS` px of it), and the world puts the ground below its horizon, which `scenes.sample_scene` draws
between `HORIZON` px from the top: cells whose centre lies below the lower bound are ground in every scene, cells
above the upper bound are sky.

* `cross_study` -- over fox-in-leaves prompts (one seed each): the share of each word's map on the fox's cells and on
  the ground's cells, beside the share of the area those cells cover (what a map that looks nowhere in particular,
  a uniform one, would give).
* `self_study`  -- the same prompts, self-attention of the first 8 x 8 layer (`attention.record_self_attention`):
  from each ground cell away from the fox, the share that goes to other ground cells, to its neighbours (1 cell
  away) and far (more than 2 cells away), each beside a uniform map's share.

The prompt is the unit that was drawn: each prompt gives one value per measure, and the intervals resample prompts.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .. import verdicts as vd
from ..generation import run_pipeline
from ..trace import trace_batch
from ..worlds.scenes import GROUND_PHRASES, IMAGE_SIZE
from .attention import record_self_attention, self_attention_layers
from .scenes_cfg import footprint

HORIZON = (26.0, 36.0)  # px from the top: the range `scenes.sample_scene` draws the horizon from
RADIUS = 10.0  # px around the judged fox's centre that count as the fox
WORDS = ("fox", "leaves")
UNIT = "prompts (one seed each)"


def fox_prompts(n: int = 12) -> list[str]:
    """`n` prompts of a fox in autumn leaves, the article's first: its colour word kept or dropped, a verb or none,
    and each of the world's leaves phrases ("in autumn leaves", "on autumn leaves", "in fallen leaves", ...)."""
    heads = ("a red fox sitting", "a fox", "a red fox", "a fox standing", "a red fox standing", "a fox sitting")
    out = ["a red fox sitting in autumn leaves"]
    for i in range(len(heads) * len(GROUND_PHRASES["leaves"])):
        p = f"{heads[i % len(heads)]} {GROUND_PHRASES['leaves'][i % len(GROUND_PHRASES['leaves'])]}"
        if p not in out:
            out.append(p)
    if n > len(out):
        raise ValueError(f"at most {len(out)} fox-in-leaves prompts, asked for {n}")
    return out[:n]


def regions(h: int, w: int, horizon: tuple[float, float] = HORIZON) -> tuple[np.ndarray, np.ndarray]:
    """(ground, sky) masks of an (h, w) grid: cells whose centre lies below the lowest horizon / above the highest."""
    ys = (np.arange(h) + 0.5) * IMAGE_SIZE / h
    ground = np.repeat((ys > horizon[1])[:, None], w, 1)
    sky = np.repeat((ys < horizon[0])[:, None], w, 1)
    return ground, sky


def _share(amap: np.ndarray, mask: np.ndarray) -> float:
    return float((amap * mask).sum() / amap.sum())


@dataclass
class CrossStudy:
    """Per prompt: each word's share on the fox's and the ground's cells, and those cells' share of the area."""

    prompts: list[str]
    seeds: list[int]
    steps: int
    level: str  # the U-Net level whose maps were scored
    fox_found: list[bool]
    on_fox: dict[str, list[float]]  # word -> per prompt (NaN where the judge found no fox)
    on_ground: dict[str, list[float]]
    fox_area: list[float]  # NaN where no fox
    ground_area: float
    fox_masks: list[np.ndarray] = field(repr=False, default_factory=list)  # per prompt: the fox's cells (bool)
    traces: list[Any] = field(repr=False, default_factory=list)
    seconds: float = 0.0
    cfg: float = 7.5

    def judged(self, values: Sequence[float]) -> list[float]:
        """The values of the prompts whose picture the judge found a fox in."""
        return [v for v, ok in zip(values, self.fox_found, strict=True) if ok]


def cross_study(pipe: Any, prompts: Sequence[str] | None = None, seed: int = 0, steps: int = 20, cfg: float = 7.5,
                words: Sequence[str] = WORDS, level: str | int = 0, judge: Any = None) -> CrossStudy:
    """Trace each prompt (seed `seed` + k) and score each word's map (mean over steps, at `level`: default the
    finest, `tr.levels[0]`, the one with the most positions) on the fox the judge reads and on the ground the world
    guarantees."""
    prompts = list(prompts or fox_prompts())
    t0 = time.perf_counter()
    seeds = [seed + k for k in range(len(prompts))]
    traces = trace_batch(pipe, prompts, seeds, steps=steps, cfg=cfg)
    res = CrossStudy(prompts, seeds, int(steps), traces[0].levels[level] if isinstance(level, int) else level, [],
                     {w: [] for w in words}, {w: [] for w in words}, [], 0.0, traces=traces, cfg=float(cfg))
    for tr in traces:
        maps = {w: tr.attention(w, level=level).double().numpy() for w in words}
        h, w_ = next(iter(maps.values())).shape
        ground, _ = regions(h, w_)
        fox = footprint(tr.image, ["fox"], size=(h, w_), radius=RADIUS, judge=judge) > 0
        res.fox_masks.append(fox)
        res.fox_found.append(bool(fox.any()))
        res.fox_area.append(float(fox.mean()) if fox.any() else float("nan"))
        res.ground_area = float(ground.mean())
        for word, m in maps.items():
            res.on_fox[word].append(_share(m, fox) if fox.any() else float("nan"))
            res.on_ground[word].append(_share(m, ground))
    res.seconds = time.perf_counter() - t0
    return res


@dataclass
class SelfStudy:
    """Per prompt, averaged over its ground cells away from the fox: self-attention shares and a uniform map's."""

    prompts: list[str]
    layer: str
    size: tuple[int, int]
    values: dict[str, list[float]]  # measure -> per prompt: on_ground, near, far and uniform_* beside each
    example: np.ndarray = field(repr=False, default=None)  # (h, w): the first prompt's map of its first ground query
    example_query: tuple[int, int] = (0, 0)
    example_image: Any = field(repr=False, default=None)


def _query_shares(probs: np.ndarray, h: int, w: int, queries: np.ndarray, ground: np.ndarray) -> dict[str, float]:
    rr, cc = np.mgrid[0:h, 0:w]
    out: dict[str, list[float]] = {k: [] for k in ("on_ground", "near", "far", "uniform_on_ground", "uniform_near",
                                                   "uniform_far")}
    for q in np.flatnonzero(queries.ravel()):
        row = probs[q].reshape(h, w)
        cheb = np.maximum(abs(rr - q // w), abs(cc - q % w))
        for name, mask in (("on_ground", ground), ("near", (cheb == 1)), ("far", cheb > 2)):
            out[name].append(float(row[mask].sum()))
            out[f"uniform_{name}"].append(float(mask.mean()))
    return {k: float(np.mean(v)) for k, v in out.items()}


def self_study(pipe: Any, prompts: Sequence[str] | None = None, seed: int = 0, steps: int = 20, cfg: float = 7.5,
               layer: str | None = None, fox_cells: Sequence[np.ndarray] | None = None) -> SelfStudy:
    """Self-attention of `layer` (default: the first, at the finest level) for each prompt (seed `seed` + k), mean
    over steps, read from the ground cells that are not the fox's (`fox_cells[k]`, e.g. a cross study's `fox_masks`;
    None: every ground cell)."""
    prompts = list(prompts or fox_prompts())
    layer = layer or self_attention_layers(pipe.unet)[0]
    values: dict[str, list[float]] = {}
    res = SelfStudy(prompts, layer, (0, 0), values)
    for k, p in enumerate(prompts):
        with record_self_attention(pipe.unet, layer, 1) as probe:
            image = run_pipeline(pipe, p, seed + k, steps, cfg)[0]
        probs = torch.stack([c[0] for c in probe.calls]).mean(0).double().numpy()  # (N, N), mean over steps
        h = w = int(round(probs.shape[-1] ** 0.5))
        ground, _ = regions(h, w)
        queries = ground & ~(fox_cells[k] if fox_cells is not None else np.zeros_like(ground))
        for name, v in _query_shares(probs, h, w, queries, ground).items():
            values.setdefault(name, []).append(v)
        if k == 0:
            q = int(np.flatnonzero(queries.ravel())[0])
            res.size, res.example, res.example_query, res.example_image = (h, w), probs[q].reshape(h, w), \
                (q // w, q % w), image
    return res


def cross_verdicts(cs: CrossStudy) -> list[vd.Verdict]:
    """Each word on its region against a uniform map (the region's area) and against the other word, paired by
    prompt, resampling prompts."""
    j = cs.judged
    nj = f"{UNIT}, the {sum(cs.fox_found)} of {len(cs.prompts)} whose picture the judge found the fox in"
    return [
        vd.compare("the word \u201cfox\u201d's cross-attention lands on the fox (share on the judged fox's cells vs "
                   "their share of the area)", j(cs.on_fox["fox"]), j(cs.fox_area), labels=("share", "area"),
                   digits=3, unit=nj),
        vd.compare("the word \u201cfox\u201d looks at the fox more than \u201cleaves\u201d does (share on the fox's "
                   "cells)", j(cs.on_fox["fox"]), j(cs.on_fox["leaves"]), labels=("fox", "leaves"), digits=3, unit=nj),
        vd.compare("the word \u201cleaves\u201d's cross-attention lands on the ground (share on the ground cells vs "
                   "their share of the area)", cs.on_ground["leaves"], [cs.ground_area] * len(cs.prompts),
                   labels=("share", "area"), digits=3, unit=UNIT),
        vd.compare("the word \u201cleaves\u201d looks at the ground more than \u201cfox\u201d does (share on the "
                   "ground cells)", cs.on_ground["leaves"], cs.on_ground["fox"], labels=("leaves", "fox"), digits=3,
                   unit=UNIT),
    ]


def self_verdicts(ss: SelfStudy) -> list[vd.Verdict]:
    """Self-attention of the ground against a uniform map: on the ground, near, far; paired by prompt."""
    v = ss.values

    def cmp(claim: str, key: str) -> vd.Verdict:
        return vd.compare(claim, v[key], v[f"uniform_{key}"], labels=("measured", "uniform"), digits=3, unit=UNIT)

    return [cmp("self-attention of the ground stays on the ground (share from a ground cell to ground cells)",
                "on_ground"),
            cmp("self-attention looks near (share on the 8 neighbouring cells)", "near"),
            cmp("self-attention looks far (share more than 2 cells away)", "far")]
