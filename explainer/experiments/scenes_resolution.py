"""Lesson 11 on real things: what the scenes model, trained on 64x64 pictures only, draws at sizes it never saw —
twice the size (128x128) and wide (64x128, height x width, 2:1) — read by the scenes judge.

The judge reads 64x64 pictures, so a larger picture is scaled down to 64x64 first (box filter; the wide one is
squeezed to half its width, which narrows things but keeps their number, the ground and the sky). Per picture: the
whole prompt right, the subject found, extra copies of the subject, things the prompt did not ask for, the ground and
the sky right. Every prompt is drawn from the same seed at every size, so sizes compare paired, and the intervals
resample prompts (the unit that was drawn).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from .. import verdicts as vd
from ..worlds.scenes import IMAGE_SIZE, Scene
from ..worlds.scenes_judge import check, read
from .guidance import generate_many
from .resolution import Cost
from .scenes_cfg import _extra
from .scenes_eval import prompt_sets

TRAINED = (IMAGE_SIZE, IMAGE_SIZE)
SIZES = (TRAINED, (2 * IMAGE_SIZE, 2 * IMAGE_SIZE), (IMAGE_SIZE, 2 * IMAGE_SIZE))  # (height, width)
N_PROMPTS = 12  # one-thing prompts (thing, ground, sky named), one seed each: 8 or more give an interval
KEYS = ("all", "object", "copies", "extra", "ground", "sky")
WHAT = {"all": "whole prompt right", "object": "the thing found", "copies": "more than one of it",
        "extra": "a thing not asked for (or extra copies)", "ground": "ground right", "sky": "sky right"}


def name(size: tuple[int, int]) -> str:
    return f"{size[0]}x{size[1]}"


def for_judge(image: Any) -> np.ndarray:
    """A picture of any size as the judge reads it: uint8 64x64 (box-filtered down; a wide one squeezed)."""
    im = image if hasattr(image, "convert") else Image.fromarray(np.asarray(image, dtype=np.uint8))
    return np.asarray(im.convert("RGB").resize((IMAGE_SIZE, IMAGE_SIZE), Image.BOX), dtype=np.uint8)


@dataclass
class OffSize:
    """Per size (h, w), per key of `KEYS`, one 0/1 value per prompt (the order of `prompts`)."""

    model: str
    sizes: list[tuple[int, int]]
    prompts: list[str]
    seeds: list[int]
    steps: int
    values: dict[str, dict[tuple[int, int], list[float]]]
    images: dict[tuple[int, int], list[Any]] = field(repr=False)
    seconds: dict[tuple[int, int], float] = field(default_factory=dict)
    trained: tuple[int, int] = (64, 64)  # (h, w) the pipeline draws by default: the size it was trained at
    cfg: float = 7.5

    def mean(self, key: str, size: tuple[int, int]) -> float:
        return float(np.mean(self.values[key][size]))

    def table(self) -> str:
        head = f"{'size':>8} | " + " | ".join(f"{WHAT[k][:22]:^22}" for k in KEYS)
        lines = [f"{self.model}: {len(self.prompts)} one-thing prompts, one seed each, {self.steps} steps; share of "
                 "pictures [95 % interval over prompts]", head, "-" * len(head)]
        for s in self.sizes:
            cells = [vd.bootstrap_mean(self.values[k][s], groups=self.prompts).text(2) for k in KEYS]
            lines.append(f"{name(s):>8} | " + " | ".join(f"{c:^22}" for c in cells))
        return "\n".join(lines)


def off_size_scenes(n: int = N_PROMPTS) -> list[Scene]:
    """`n` unseen one-thing scenes of a large thing (not the sun, moon or a star): big enough that the judge finds it
    at the training size, so that copies of it can be counted at others."""
    k = n
    while True:
        singles = [s for s in prompt_sets(k)["single"]
                   if s.things[0].size == "large" and s.things[0].name not in ("sun", "moon", "star")]
        if len(singles) >= n:
            return singles[:n]
        k *= 2


def off_size(pipe: Any, scenes: Sequence[Scene] | None = None, sizes: Sequence[tuple[int, int]] = SIZES,
             steps: int = 20, cfg: float = 7.5, seed: int = 0, judge: Any = None,
             model: str = "scenes-sd") -> OffSize:
    """Every scene's caption at every size (h, w), scene k always from seed `seed` + k, read by the scenes judge."""
    scenes = list(off_size_scenes() if scenes is None else scenes)
    prompts, seeds = [s.caption for s in scenes], [seed + k for k in range(len(scenes))]
    side = pipe.unet.config.sample_size * pipe.vae_scale_factor
    res = OffSize(model, [tuple(s) for s in sizes], prompts, seeds, int(steps), {k: {} for k in KEYS}, {},
                  trained=(side, side), cfg=float(cfg))
    for size in res.sizes:
        t0 = time.perf_counter()
        ims = generate_many(pipe, prompts, seeds, cfg=cfg, steps=steps, height=size[0], width=size[1])
        res.seconds[size] = time.perf_counter() - t0
        res.images[size] = ims
        readings = read(np.stack([for_judge(im) for im in ims]), judge)
        rows = [_measures(r, s) for r, s in zip(readings, scenes, strict=True)]
        for k in KEYS:
            res.values[k][size] = [row[k] for row in rows]
    return res


def _measures(reading: Any, scene: Scene) -> dict[str, float]:
    c, thing = check(reading, scene), scene.things[0].name
    return {"all": float(all(c.values())), "object": float(reading.has(thing)),
            "copies": float(reading.counts.get(thing, 0) > 1), "extra": float(_extra(reading, scene)),
            "ground": float(c["ground"]), "sky": float(c["sky"])}


def off_size_verdicts(off: OffSize, base: tuple[int, int] = TRAINED) -> list[vd.Verdict]:
    """At each size it never saw, against its training size, paired by prompt: the whole prompt right less often,
    extra copies of the subject more often; and whether the ground and the sky stay right (share above half)."""
    unit = f"one-thing prompts (the same prompt and seed at {name(base)} and the other size)"
    v, b, out = off.values, name(base), []

    def cmp(claim: str, key: str, hi: tuple[int, int], lo: tuple[int, int], size: tuple[int, int]) -> vd.Verdict:
        return vd.compare(f"{off.model}: at {name(size)}, a size it never saw, {claim}", v[key][hi], v[key][lo],
                          labels=(name(hi), name(lo)), groups=off.prompts, percent=True, unit=unit)

    for size in off.sizes:
        if size == base:
            continue
        s = name(size)
        out += [cmp(f"it draws the whole prompt right less often than at {b}", "all", base, size, size),
                cmp(f"it draws extra copies of the thing more often than at {b}", "copies", size, base, size),
                cmp(f"it draws things the prompt did not ask for more often than at {b}", "extra", size, base, size)]
        for key in ("ground", "sky"):
            k = int(round(sum(v[key][size])))
            out.append(vd.proportion(f"{off.model}: ... but keeps the {key} right at {s}", k, len(off.prompts),
                                     threshold=0.5, what=f"{key} right", unit="one-thing prompts",
                                     note=f"at {b}: {off.mean(key, base):.0%}"))
    return out


def cost_verdicts(costs: Sequence[Cost], rows: Sequence[dict]) -> list[vd.Verdict]:
    """Cost grows with the size (one timed run each: never a verdict with an interval), and the attention pairs grow
    with the square of the latent positions (an exact count)."""
    a, z = costs[0], costs[-1]
    out = [vd.one_run("cost grows with resolution: time", z.seconds > a.seconds,
                      f"{name(a.size)}: {a.seconds:.2f} s, {name(z.size)}: {z.seconds:.2f} s", "one timed run each"),
           vd.one_run("cost grows with resolution: peak memory", z.peak_bytes > a.peak_bytes,
                      f"{name(a.size)}: {a.peak_bytes / 2**20:.1f} MiB, {name(z.size)}: {z.peak_bytes / 2**20:.1f} MiB",
                      "one timed run each", note="peak resident memory growth during the call")]
    r0, r1 = rows[0], rows[-1]
    ratio = r1["latent positions"] / r0["latent positions"]
    out.append(vd.exact("self-attention pairs grow with the square of the latent positions",
                        r1["self-attention pairs"] == ratio ** 2 * r0["self-attention pairs"],
                        f"{r0['image']} -> {r1['image']}: {ratio:g}x the positions, "
                        f"{r1['self-attention pairs'] / max(r0['self-attention pairs'], 1):g}x the pairs",
                        "exact count from the U-Net's config"))
    return out
