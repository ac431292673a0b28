"""Lesson 9 on real things: samplers and steps on the scenes model, where pictures have texture to refine (fur, autumn
leaves, grass). The study is `samplers.run_study` with the scenes judge: unseen scenes of an animal or a forest on
leaves or grass, one seed each, every sampler at several step counts, each picture compared with a many-step
reference of the same prompt and seed and read by the judge.

What a step count changes is split into two parts at the edge of lesson 4's fine band
(`scenes_denoising.coarse_fine_rms`, by FFT): coarse (periods of 4 px and more: where things are and what colour;
lesson 4's coarse and middle bands) and fine (periods under 4 px: texture and edges). Prompts are the unit that was
drawn: every interval resamples prompts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import verdicts as vd
from ..worlds.scenes import ANIMALS, EVAL_SEED, Scene, sample_scene
from ..worlds.scenes_judge import check, read
from .samplers import REFERENCE, UNIT, SamplerStudy, run_study, steps_verdicts
from .scenes_denoising import coarse_fine_rms, fine_part

#: step counts per sampler (Heun: 2n - 1 U-Net calls; LCM is the "not trained for few steps" case)
PLAN: dict[str, tuple[int, ...]] = {
    "dpm++2m": (5, 10, 20, 40, 80),
    "euler": (5, 10, 20, 40),
    "ddim": (5, 10),
    "heun": (10, 20),
    "lcm": (4, 8),
}
N_SCENES = 12  # prompts (one seed each): 8 or more give an interval
TEXTURED = ("leaves", "grass")
STEPS = (5, 10, 20, 40, 80)  # the step counts of the steps claim (DPM++ 2M, the model's own sampler)


def texture_scenes(n: int = N_SCENES, start: int = EVAL_SEED) -> list[Scene]:
    """`n` unseen scenes with texture to refine: one animal, or a forest, on autumn leaves or grass."""
    out, seed = [], start
    while len(out) < n:
        s = sample_scene(seed)
        if s.ground in TEXTURED and (s.kind == "forest" or (s.kind == "single" and s.things[0].name in ANIMALS)):
            out.append(s)
        seed += 1
    return out


def uint8(images: Sequence[Any]) -> np.ndarray:
    """PIL images (or uint8 arrays) as one uint8 array (n, h, w, 3), as the scenes judge reads them."""
    return np.stack([np.asarray(im.convert("RGB") if hasattr(im, "convert") else im, dtype=np.uint8)
                     for im in images])


def study(pipe: Any, scenes: Sequence[Scene] | None = None, plan: dict[str, Sequence[int]] | None = None,
          reference: tuple[str, int] = REFERENCE, cfg: float = 7.5, seed: int = 0, judge: Any = None,
          model: str = "scenes-sd") -> SamplerStudy:
    """The sampler study on the scenes model: scene k's caption from seed `seed` + k, read by the scenes judge
    (`judge`: a SceneJudgeNet, None = the shipped one) against the scene it describes."""
    scenes = list(texture_scenes() if scenes is None else scenes)

    def right(images: list[Any]) -> list[bool]:
        return [all(check(r, s).values()) for r, s in zip(read(uint8(images), judge), scenes, strict=True)]

    return run_study(pipe, [s.caption for s in scenes], [seed + k for k in range(len(scenes))],
                     PLAN if plan is None else plan, reference, cfg, right, model)


def bands(study: SamplerStudy, sampler: str, steps: int, other: int | None = None) -> tuple[list[float], list[float]]:
    """Per image, the (coarse, fine) RMS of the difference between the picture at `steps` and the one at `other`
    steps (None: the reference picture)."""
    ims = uint8(study.run(sampler, steps).images)
    to = uint8(study.reference_images if other is None else study.run(sampler, other).images)
    pairs = [coarse_fine_rms(a, b) for a, b in zip(ims, to, strict=True)]
    return [c for c, _ in pairs], [f for _, f in pairs]


def band_table(study: SamplerStudy, sampler: str = "dpm++2m") -> dict[int, dict[str, float]]:
    """Per step count of `sampler`: mean coarse and fine distance to the reference."""
    out = {}
    for r in (r for r in study.runs if r.sampler == sampler):
        c, f = bands(study, sampler, r.steps)
        out[r.steps] = {"coarse": float(np.mean(c)), "fine": float(np.mean(f))}
    return out


def detail_maps(study: SamplerStudy, index: int, sampler: str = "dpm++2m") -> list[np.ndarray]:
    """For one prompt, per step count of `sampler`: where its picture still differs from the reference in fine
    detail (the difference's fine band, periods under 4 px, RMS over the colour channels, 0..1)."""
    ref = uint8([study.reference_images[index]])[0].astype(np.float64) / 255.0
    out = []
    for r in (r for r in study.runs if r.sampler == sampler):
        out.append(np.sqrt((fine_part(uint8([r.images[index]])[0].astype(np.float64) / 255.0 - ref) ** 2).mean(-1)))
    return out


def texture_verdicts(study: SamplerStudy, sampler: str = "dpm++2m", a: int = 20, b: int = 40) -> list[vd.Verdict]:
    """What `a` -> `b` steps changes: fine detail more than coarse layout; and whether the judge reads the whole
    prompt right more often after it."""
    m, unit = study.model, UNIT
    coarse, fine = bands(study, sampler, a, b)
    return [vd.compare(f"{m}: what {a} -> {b} steps still changes is fine detail (texture) more than coarse layout "
                       f"({sampler})", fine, coarse, labels=("fine", "coarse"), groups=study.prompts, digits=4,
                       unit=unit,
                       note="RMS of the change's two parts: fine = periods under 4 px (lesson 4's fine band)"),
            vd.compare(f"{m}: {b} steps draws the whole prompt right more often than {a} ({sampler}, the scenes "
                       "judge's reading)", study.adherent(sampler, b), study.adherent(sampler, a),
                       labels=(f"{b} steps", f"{a} steps"), percent=True, groups=study.prompts, unit=unit)]


def agreeing(vs: Sequence[vd.Verdict], models: Sequence[str]) -> dict[str, bool]:
    """Per model: whether its sample agrees with the whole steps claim ("20 -> 40 is a visible gain, 40 -> 80 is
    not": both verdicts agree)."""
    def ok(m: str, start: str) -> bool:
        return any(v.claim.startswith(f"{m}: {start}") and v.agrees for v in vs)

    return {m: ok(m, "20 -> 40 steps is a visible gain") and ok(m, "40 -> 80 steps is not") for m in models}


__all__ = ["PLAN", "N_SCENES", "STEPS", "texture_scenes", "study", "bands", "band_table", "detail_maps",
           "texture_verdicts", "agreeing", "steps_verdicts", "uint8"]
