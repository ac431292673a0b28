"""Lesson 7 on real things: a CFG sweep of unseen scenes-world prompts read by the scenes judge, the same measures
taken from the shapes model's sweep (`guidance.cfg_sweep`), and the claim's verdicts for each model.

One `ModelSweep` per model holds one number per image and scale (whole prompt right, share of the prompt's checks
right, saturation, clipped values, things the prompt did not name); every prompt is drawn with the same seed at
every scale, so two scales compare paired, and the intervals resample prompts (the unit that was drawn).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import verdicts as vd
from ..worlds.scenes import Scene
from ..worlds.scenes_judge import check, read
from .guidance import clipped_fraction, saturation
from .scenes_eval import generate, prompt_sets

SCALES = (1.0, 3.0, 5.0, 7.5, 12.0, 20.0)
KINDS = ("single", "pair")  # one thing, and two things in a relation: what "skips parts of the prompt" can show
N_PER_KIND = 8  # 16 unseen prompts: 8 or more units give an interval
KEYS = ("all", "parts", "saturation", "clipped", "extra")


@dataclass
class ModelSweep:
    """A CFG sweep of one model, one number per image (the order of `prompts`) and scale, for each of `KEYS`:

    all         the judge reads the whole prompt right (0 / 1)
    parts       the share of the prompt's checks the judge reads right (things, colours, relation, ground, sky...)
    saturation  mean HSV saturation of the pixels (0 grey .. 1 pure colour)
    clipped     share of colour channel values at exactly 0 or 255
    extra       the judge reads a thing (or more copies) the prompt did not ask for (0 / 1)
    """

    model: str
    scales: list[float]
    prompts: list[str]
    seeds: list[int]
    steps: int
    values: dict[str, dict[float, list[float]]]  # key -> scale -> per image
    images: dict[float, list[np.ndarray]] = field(repr=False)  # scale -> uint8 (h, w, 3) per image
    seconds: float = 0.0

    def mean(self, key: str, scale: float) -> float:
        return float(np.mean(self.values[key][scale]))

    def interval(self, key: str, scale: float) -> vd.Interval:
        """The mean with its 95 % interval, resampling whole prompts."""
        return vd.bootstrap_mean(self.values[key][scale], groups=self.prompts)

    def best(self, key: str = "all") -> float:
        """The scale with the highest mean (ties: the smaller scale)."""
        return max(self.scales, key=lambda s: (self.mean(key, s), -s))

    @property
    def units(self) -> int:
        return len(set(self.prompts))

    def table(self) -> str:
        """Per scale: each measure's mean with its 95 % interval over prompts (none under 8 prompts)."""
        head = f"{'CFG':>5} | " + " | ".join(f"{k:^22}" for k in KEYS)
        lines = [f"{self.model}: {len(self.prompts)} images per scale ({self.units} prompts, one seed each, "
                 f"{self.steps} steps); mean [95 % interval over prompts]", head, "-" * len(head)]
        for s in self.scales:
            cells = [self.interval(k, s).text(3 if k in ("saturation", "clipped") else 2) for k in KEYS]
            lines.append(f"{s:>5g} | " + " | ".join(f"{c:^22}" for c in cells))
        lines.append("all: whole prompt read right; parts: share of the prompt's checks read right; saturation: mean "
                     "HSV saturation; clipped: share of channel values at 0 or 255; extra: a thing not asked for")
        return "\n".join(lines)


def sweep_scenes(n_per_kind: int = N_PER_KIND, kinds: Sequence[str] = KINDS) -> list[Scene]:
    """The unseen scenes (evaluation seeds) whose canonical captions the sweep draws: `n_per_kind` of each kind."""
    sets = prompt_sets(n_per_kind)
    return [s for k in kinds for s in sets[k]]


def _extra(reading: Any, scene: Scene) -> bool:
    """The judge reads a thing the scene does not hold, or more copies of one than it holds."""
    want: dict[str, int] = {}
    for t in scene.things:
        want[t.name] = want.get(t.name, 0) + 1
    return any(n > min(want.get(name, 0), 3) for name, n in reading.counts.items())


def judge_scenes(images: np.ndarray, scenes: Sequence[Scene], judge: Any = None) -> dict[str, list[float]]:
    """Per image: whole prompt right, share of its checks right, saturation, clipped values, extra things."""
    out: dict[str, list[float]] = {k: [] for k in KEYS}
    for im, r, s in zip(images, read(images, judge), scenes, strict=True):
        c = check(r, s)
        out["all"].append(float(all(c.values())))
        out["parts"].append(float(np.mean(list(c.values()))))
        out["saturation"].append(saturation(im))
        out["clipped"].append(clipped_fraction(im))
        out["extra"].append(float(_extra(r, s)))
    return out


def scenes_sweep(pipe: Any, scenes: Sequence[Scene] | None = None, scales: Sequence[float] = SCALES, steps: int = 20,
                 seed: int = 0, judge: Any = None, model: str = "scenes-sd") -> ModelSweep:
    """Every scene's canonical caption at every scale, prompt k always from seed `seed` + k (paired across scales),
    read by the scenes judge (`judge`: a SceneJudgeNet, None = the shipped one)."""
    scenes = list(sweep_scenes() if scenes is None else scenes)
    if not scenes:
        raise ValueError("scenes must hold at least one scene")
    t0 = time.perf_counter()
    prompts, seeds = [s.caption for s in scenes], [seed + k for k in range(len(scenes))]
    res = ModelSweep(model, [float(s) for s in scales], prompts, seeds, int(steps), {k: {} for k in KEYS}, {})
    for s in res.scales:
        images = generate(pipe, prompts, seeds, steps, s)
        res.images[s] = list(images)
        for k, v in judge_scenes(images, scenes, judge).items():
            res.values[k][s] = v
    res.seconds = time.perf_counter() - t0
    return res


SHAPES_CHECKS = ("color", "shape", "size", "position", "count", "objects", "relation", "background")


def from_shapes_sweep(sweep: Any, model: str = "shapes-sd") -> ModelSweep:
    """The same measures from a finished shapes `guidance.cfg_sweep` (its judge's keys as the prompt's checks)."""
    values: dict[str, dict[float, list[float]]] = {k: {} for k in KEYS}
    for s in sweep.scales:
        recs = sweep.per_image[s]
        values["all"][s] = [float(bool(r["all"])) for r in recs]
        values["parts"][s] = [float(np.mean([bool(r[k]) for k in SHAPES_CHECKS if r.get(k) is not None] or [0.0]))
                              for r in recs]
        for k in ("saturation", "clipped", "extra"):
            values[k][s] = [float(r[k]) for r in recs]
    images = {s: [np.asarray(im.convert("RGB")) for im in sweep.images[s]] for s in sweep.scales}
    return ModelSweep(model, [float(s) for s in sweep.scales], list(sweep.prompts), list(sweep.seeds), sweep.steps,
                      values, images, sweep.seconds)


def verdicts(ms: ModelSweep, low: float = 1.0, mid: float = 7.5, high: float = 20.0) -> list[vd.Verdict]:
    """The claim's parts on one model, each scale pair compared on the same prompts and seeds, resampling prompts:
    low CFG skips parts of the prompt (and draws the whole prompt less often) than the usual 7.5; 7.5 beats 20;
    high CFG over-saturates, clips, and adds things the prompt did not name."""
    for value, nm in ((low, "low"), (mid, "mid"), (high, "high")):
        if value not in ms.scales:
            raise ValueError(f"{nm}={value:g} is not a scale of the sweep {ms.scales}")
    m, v = ms.model, ms.values
    unit = f"images of {ms.units} prompts (the same prompt and seed at each scale)"

    def cmp(claim: str, key: str, a: float, b: float, **kw: Any) -> vd.Verdict:
        return vd.compare(f"{m}: {claim}", v[key][a], v[key][b], labels=(f"CFG {a:g}", f"CFG {b:g}"),
                          groups=ms.prompts, unit=unit, **kw)

    return [
        cmp(f"low CFG skips parts of the prompt (share of its checks read right, CFG {mid:g} vs {low:g})", "parts",
            mid, low, percent=True),
        cmp(f"CFG {mid:g} draws the whole prompt right more often than CFG {low:g}", "all", mid, low, percent=True),
        cmp(f"CFG {mid:g} draws the whole prompt right more often than CFG {high:g}", "all", mid, high, percent=True),
        cmp(f"high CFG over-saturates (mean HSV saturation, CFG {high:g} vs {mid:g})", "saturation", high, mid,
            digits=3),
        cmp(f"high CFG clips colour values (channel values at 0 or 255, CFG {high:g} vs {mid:g})", "clipped", high,
            mid, digits=4),
        cmp(f"high CFG adds things the prompt did not name (CFG {high:g} vs {mid:g})", "extra", high, mid,
            percent=True),
    ]


def sweet_spot(vs: Sequence[vd.Verdict], model: str, mid: float = 7.5) -> str:
    """The status of "a middle scale is the sweet spot" on `model`: both of its comparisons (CFG `mid` against the
    low and the high end) must agree; either saying the opposite says the opposite; otherwise the weaker reading."""
    both = [x.status for x in vs if x.claim.startswith(f"{model}: CFG {mid:g} draws the whole prompt")]
    if len(both) != 2:
        raise KeyError(f"{len(both)} sweet-spot verdicts for {model}")
    for status in (vd.DISAGREES, vd.TOO_FEW, vd.NOISE):
        if status in both:
            return status
    return vd.AGREES


def agreeing(vs: Sequence[vd.Verdict], start: str, models: Sequence[str]) -> list[str]:
    """The models whose verdict "<model>: <start>..." agrees."""
    return [m for m in models if any(v.claim.startswith(f"{m}: {start}") and v.agrees for v in vs)]


def footprint(image: Any, names: Sequence[str], size: tuple[int, int] = (8, 8), radius: float = 10.0,
              judge: Any = None) -> np.ndarray:
    """Where the named things are, at latent resolution: the cells within `radius` pixels of each named thing's
    centre as the scenes judge reads it (all zero when the judge finds none of them)."""
    a = np.asarray(image.convert("RGB") if hasattr(image, "convert") else image, dtype=np.uint8)
    r = read(a, judge)[0]
    h, w = size
    ys, xs = (np.mgrid[0:h, 0:w] + 0.5) * np.array([a.shape[0] / h, a.shape[1] / w])[:, None, None]
    mask = np.zeros(size)
    for name in names:
        if name in r.centers:
            cx, cy = r.centers[name]
            mask = np.maximum(mask, (np.hypot(xs - cx, ys - cy) <= radius).astype(float))
    return mask
