"""Lesson 10, seeds and reproducibility: the same seed and settings give the same bits; what a seed decides (the
layout, measured against a changed prompt); and walking between two seeds' noise."""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .. import verdicts as vd
from ..arrays import mask_iou
from ..generation import seed_generator
from ..judge import judge
from ..shapes import BACKGROUNDS
from ..sweeps import _latent_shape, generate, slerp
from .guidance import generate_many


@dataclass
class Reproducibility:
    identical: bool  # same seed, same settings, two separate runs: every byte equal
    max_pixel_difference: int  # over the two runs (0 when identical)
    other_seed_differs: bool  # a different seed gives a different image
    other_seed_mean_difference: float  # mean |pixel difference| (0..255) against the other seed
    noise_identical: bool  # the starting noise itself, drawn twice from the same seed


def reproducibility(pipe: Any, prompt: str = "a red circle left of a blue square", seed: int = 0,
                    other_seed: int = 1, steps: int = 25, cfg: float = 7.5) -> tuple[Reproducibility, list[Any]]:
    """Run the same settings twice (two independent pipeline calls) and once with another seed; the starting noise
    (the pipeline's own latent shape) drawn twice from the seed."""
    a = generate(pipe, prompt, seed=seed, steps=steps, cfg=cfg)
    b = generate(pipe, prompt, seed=seed, steps=steps, cfg=cfg)
    c = generate(pipe, prompt, seed=other_seed, steps=steps, cfg=cfg)
    xa, xb, xc = (np.asarray(i, dtype=np.int16) for i in (a, b, c))
    shape = _latent_shape(pipe, None, None)
    n1 = torch.randn(shape, generator=seed_generator(seed))
    n2 = torch.randn(shape, generator=seed_generator(seed))
    return Reproducibility(a.tobytes() == b.tobytes(), int(np.abs(xa - xb).max()), a.tobytes() != c.tobytes(),
                           float(np.abs(xa - xc).mean()), bool(torch.equal(n1, n2))), [a, b, c]


def foreground(image: Any) -> np.ndarray:
    """(h, w) bool: pixels that differ clearly from the judged background colour (the objects)."""
    a = np.asarray(image.convert("RGB"), dtype=np.float64)
    bg = np.array(BACKGROUNDS[judge(image).background], dtype=np.float64)
    return np.linalg.norm(a - bg, axis=-1) > 60


def centroid(mask: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    return np.array([xs.mean(), ys.mean()]) if len(xs) else np.array([np.nan, np.nan])


@dataclass
class Layout:
    prompts: list[str]
    seeds: list[int]
    same_seed_iou: float  # mean foreground IoU between two prompts' images made with the same seed
    other_seed_iou: float  # ... made with different seeds
    same_seed_shift: float  # mean distance (pixels) between the objects' centroids, same seed
    other_seed_shift: float  # ... different seeds
    same_seed_position: float  # share of same-seed pairs whose judged position word agrees
    other_seed_position: float
    images: list[list[Any]] = field(repr=False)  # images[prompt][seed]
    seconds: float = 0.0
    same_ious: list[float] = field(default_factory=list, repr=False)  # per same-seed pair of prompts
    other_ious: list[float] = field(default_factory=list, repr=False)  # per different-seed pair
    steps: int = 25  # the settings every picture was made with (for the figure's title)
    cfg: float = 7.5
    model: str = ""  # the model's name, e.g. "shapes-sd" ("" when the pipeline does not say)

def layout_study(pipe: Any, prompts: Sequence[str] = ("a large red circle", "a large blue square",
                                                       "a small green star"),
                 seeds: Sequence[int] = range(8), steps: int = 25, cfg: float = 7.5) -> Layout:
    """Prompts without a position word, each with every seed: compare layouts across prompts, same vs other seed."""
    t0 = time.perf_counter()
    prompts, seeds = list(prompts), list(seeds)
    ims = generate_many(pipe, [p for p in prompts for _ in seeds], [s for _ in prompts for s in seeds],
                        cfg=cfg, steps=steps)
    grid = [ims[i * len(seeds):(i + 1) * len(seeds)] for i in range(len(prompts))]
    masks = [[foreground(im) for im in row] for row in grid]
    pos = [[(judge(im).objects[0].position if judge(im).objects else None) for im in row] for row in grid]
    same, other = {"iou": [], "shift": [], "pos": []}, {"iou": [], "shift": [], "pos": []}
    for pa, pb in itertools.combinations(range(len(prompts)), 2):
        for i, j in itertools.product(range(len(seeds)), repeat=2):
            d = same if i == j else other
            d["iou"].append(mask_iou(masks[pa][i], masks[pb][j]))
            shift = np.linalg.norm(centroid(masks[pa][i]) - centroid(masks[pb][j]))
            if np.isfinite(shift):
                d["shift"].append(shift)
            d["pos"].append(pos[pa][i] is not None and pos[pa][i] == pos[pb][j])
    return Layout(prompts, seeds, float(np.mean(same["iou"])), float(np.mean(other["iou"])),
                  float(np.mean(same["shift"])), float(np.mean(other["shift"])), float(np.mean(same["pos"])),
                  float(np.mean(other["pos"])), grid, time.perf_counter() - t0, same["iou"], other["iou"],
                  steps=int(steps), cfg=float(cfg),
                  model=str(getattr(pipe, "explainer_model_id", "") or "").rsplit("/", 1)[-1])


def noise_norms(seed_a: int = 0, seed_b: int = 1, shape: tuple[int, ...] = (1, 4, 8, 8), pipe: Any = None
                ) -> dict[str, float]:
    """Why slerp: the norm of two seeds' noise, of their straight-line midpoint and of their slerp midpoint (noise
    of `shape`, or of the pipeline's own latent shape when `pipe` is given)."""
    shape = _latent_shape(pipe, None, None) if pipe is not None else shape
    a = torch.randn(shape, generator=seed_generator(seed_a))
    b = torch.randn(shape, generator=seed_generator(seed_b))
    return {"seed_a": float(a.norm()), "seed_b": float(b.norm()), "lerp_midpoint": float((0.5 * a + 0.5 * b).norm()),
            "slerp_midpoint": float(slerp(a, b, 0.5).norm())}


def layout_flip_seed(pipe: Any, prompt_a: str, prompt_b: str, seeds: Sequence[int] = range(16), steps: int = 25,
                     cfg: float = 7.5) -> int | None:
    """The first seed whose judged position differs between the two prompts (the layout 'flips'), or None."""
    seeds = list(seeds)
    ims = generate_many(pipe, [prompt_a] * len(seeds) + [prompt_b] * len(seeds), seeds + seeds, cfg=cfg, steps=steps)
    for k, s in enumerate(seeds):
        ja, jb = judge(ims[k]), judge(ims[len(seeds) + k])
        if ja.objects and jb.objects and ja.objects[0].position != jb.objects[0].position:
            return s
    return None


def bits_verdicts(rep: Reproducibility) -> list[vd.Verdict]:
    """Same seed and settings give the same bits; another seed gives another picture (exact facts, two runs)."""
    return [vd.exact("same seed and settings give the same bits", rep.identical and rep.max_pixel_difference == 0,
                     f"largest pixel difference {rep.max_pixel_difference}", "two runs"),
            vd.exact("another seed gives another picture", rep.other_seed_differs,
                     f"mean difference {rep.other_seed_mean_difference:.1f} of 255", "two runs")]


def slerp_verdict(norms: dict[str, float]) -> vd.Verdict:
    """Slerp's midpoint keeps the noise's size (within 5 %), a straight mix shrinks it (below 0.8x): `noise_norms`."""
    mid = (norms["seed_a"] + norms["seed_b"]) / 2
    return vd.exact("slerp keeps the noise's size; a straight mix shrinks it",
                    abs(norms["slerp_midpoint"] - mid) < 0.05 * norms["seed_a"]
                    and norms["lerp_midpoint"] < 0.8 * min(norms["seed_a"], norms["seed_b"]),
                    f"norms: seeds {norms['seed_a']:.1f} / {norms['seed_b']:.1f}, slerp midpoint "
                    f"{norms['slerp_midpoint']:.1f}, lerp midpoint {norms['lerp_midpoint']:.1f}", "one pair")
