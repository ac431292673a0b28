"""Lesson 9, samplers and steps: quality against steps and against U-Net evaluations for Euler, DPM++ 2M, DDIM, Heun
and LCM, measured as the distance to a long-run reference image and as judged prompt adherence; and the denoising
paths of several samplers in latent space."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import generation
from ..judge import judge_against
from .guidance import adherence_table, generate_many

PROMPTS = ("a large red circle on the left", "a small blue star at the top",
           "a yellow square left of a purple triangle", "a green cross above a white circle")
SEEDS = (0, 1, 2, 3)
# Step counts per sampler. Heun makes two U-Net evaluations per step (one on its last step), so its step counts are
# chosen to span the same numbers of evaluations as the others. LCM is meant for LCM-distilled models (4-8 steps).
PLAN: dict[str, tuple[int, ...]] = {
    "dpm++2m": (5, 10, 20, 40, 80),
    "euler": (5, 10, 20, 40),
    "ddim": (5, 10, 20, 40),
    "heun": (3, 5, 10, 20),
    "lcm": (4, 8),
}
REFERENCE = ("dpm++2m", 100)


def rmse(a: Any, b: Any) -> float:
    """Root-mean-square pixel difference of two images, in 0..1 units."""
    x = np.asarray(a.convert("RGB"), dtype=np.float64) / 255.0
    y = np.asarray(b.convert("RGB"), dtype=np.float64) / 255.0
    return float(np.sqrt(((x - y) ** 2).mean()))


@dataclass
class Run:
    sampler: str
    steps: int
    unet_evals: int  # U-Net calls per image (the sampler's schedule length; each call holds cond and uncond)
    distance: float  # mean RMSE to the reference image (0..1 pixel units)
    adherence: float  # judged share of images that follow the whole prompt
    seconds: float
    images: list[Any] = field(repr=False)


@dataclass
class SamplerStudy:
    prompts: list[str]
    seeds: list[int]
    reference: tuple[str, int]
    reference_adherence: float
    runs: list[Run]
    reference_images: list[Any] = field(repr=False)

    def run(self, sampler: str, steps: int) -> Run:
        return next(r for r in self.runs if r.sampler == sampler and r.steps == steps)

    def distances(self, sampler: str, steps: int) -> list[float]:
        """Per image, the RMSE to its reference image."""
        return [rmse(a, b) for a, b in zip(self.run(sampler, steps).images, self.reference_images, strict=True)]

    def changes(self, sampler: str, a: int, b: int) -> list[float]:
        """Per image, the RMSE between the images made with `a` and with `b` steps."""
        ra, rb = self.run(sampler, a), self.run(sampler, b)
        return [rmse(x, y) for x, y in zip(ra.images, rb.images, strict=True)]

    def adherent(self, sampler: str, steps: int) -> list[bool]:
        """Per image, whether the judge finds the whole prompt right."""
        return [bool(judge_against(im, p)["all"]) for im, p in zip(self.run(sampler, steps).images, self.prompts,
                                                                    strict=True)]

    def change(self, sampler: str, a: int, b: int) -> float:
        """Mean RMSE between the images made with `a` and with `b` steps (same seeds): how much the picture moves."""
        ra, rb = self.run(sampler, a), self.run(sampler, b)
        return float(np.mean([rmse(x, y) for x, y in zip(ra.images, rb.images, strict=True)]))

    def table(self) -> str:
        head = f"{'sampler':>8} {'steps':>5} {'U-Net evals':>11} {'dist. to ref':>12} {'adherence':>9} {'time s':>6}"
        lines = [head, "-" * len(head)]
        for r in self.runs:
            lines.append(f"{r.sampler:>8} {r.steps:>5} {r.unet_evals:>11} {r.distance:>12.3f} {r.adherence:>9.2f} "
                         f"{r.seconds:>6.1f}")
        return "\n".join(lines)

def sampler_study(pipe: Any, prompts: Sequence[str] = PROMPTS, seeds: Sequence[int] = SEEDS,
                  plan: dict[str, Sequence[int]] | None = None, reference: tuple[str, int] = REFERENCE,
                  cfg: float = 7.5) -> SamplerStudy:
    """Every (sampler, steps) in `plan` on the same prompt/seed pairs; distance to the reference and adherence."""
    plan = PLAN if plan is None else plan
    prompts, seeds = list(prompts), list(seeds)
    ref_images = generate_many(pipe, prompts, seeds, cfg=cfg, steps=reference[1], scheduler=reference[0])
    runs = []
    for name, step_list in plan.items():
        for n in step_list:
            t0 = time.perf_counter()
            ims = generate_many(pipe, prompts, seeds, cfg=cfg, steps=n, scheduler=name)
            dt = time.perf_counter() - t0
            evals = generation.expected_denoiser_calls(pipe, name, n)  # per image: the sampler's schedule length
            runs.append(Run(name, n, evals, float(np.mean([rmse(a, b) for a, b in zip(ims, ref_images,
                                                                                         strict=True)])),
                            adherence_table(ims, prompts)["all"], dt, ims))
    return SamplerStudy(prompts, seeds, tuple(reference), adherence_table(ref_images, prompts)["all"], runs,
                        ref_images)


def sampler_traces(pipe: Any, prompt: str = "a yellow square left of a purple triangle", seed: int = 0,
                   samplers: Sequence[str] = ("euler", "dpm++2m", "ddim", "heun"), steps: int = 20) -> list[Any]:
    """One trace per sampler, same prompt, seed and step count (attention off: only the paths are needed)."""
    from ..trace import trace

    return [trace(pipe, prompt, seed=seed, steps=steps, scheduler=s, attention=False) for s in samplers]


VISIBLE = 0.02  # RMSE (0..1) we call a visible change: ~5 grey levels on average, e.g. an edge moved by a pixel


def steps_verdict(study: SamplerStudy, sampler: str = "dpm++2m") -> list[str]:
    """Claim #5 with the numbers: is 20 -> 40 a visible gain, and 40 -> 80 not?"""
    a, b = study.change(sampler, 20, 40), study.change(sampler, 40, 80)
    def seen(x: float) -> str:
        return "visible" if x >= VISIBLE else "not visible"

    lines = [f"{sampler} 20 -> 40 steps: the image changes by RMSE {a:.4f} ({seen(a)} by our yardstick of {VISIBLE})",
             f"{sampler} 40 -> 80 steps: the image changes by RMSE {b:.4f} ({seen(b)})"]
    agrees = a >= VISIBLE > b
    lines.append("claim '20 -> 40 is a visible gain, 40 -> 80 rarely is': "
                 + ("agrees" if agrees else "does not agree as stated")
                 + (f"; diminishing returns hold (the second doubling changes less: {b:.4f} < {a:.4f})" if b < a
                    else "; the second doubling changes as much or more"))
    return lines


# --------------------------------------------------------------------------------------------- few-step sampling
FEW_STEP_PLAN: dict[str, tuple[int, ...]] = {"lcm": (4, 8), "dpm++2m": (5, 10, 25)}


@dataclass
class FewStep:
    """Few-step samplers judged by prompt adherence (the yardstick that suits a sampler that re-noises every step)."""

    prompts: list[str]
    seeds: list[int]
    adherent: dict[tuple[str, int], list[bool]]  # (sampler, steps) -> per image: whole prompt judged right
    images: dict[tuple[str, int], list[Any]] = field(repr=False)

    def rate(self, sampler: str, steps: int) -> float:
        v = self.adherent[(sampler, steps)]
        return sum(v) / len(v)

    def table(self) -> str:
        lines = [f"{len(self.prompts)} prompts x 1 seed each; share of images the judge finds entirely right",
                 f"{'sampler':>8} {'steps':>5} {'adherence':>9}"]
        for (name, n), v in self.adherent.items():
            lines.append(f"{name:>8} {n:>5} {sum(v) / len(v):>9.2f}")
        return "\n".join(lines)


def few_step_adherence(pipe: Any, n: int = 16, plan: dict[str, Sequence[int]] | None = None, cfg: float = 7.5,
                       seed: int = 0) -> FewStep:
    """LCM and DPM++ 2M at few steps on `n` unseen one- and two-object prompts, judged by adherence."""
    from .. import shapes

    plan = FEW_STEP_PLAN if plan is None else plan
    prompts = [shapes.caption_for(shapes.sample_scene(20_000_000 + i)) for i in range(n)]
    seeds = [seed + i for i in range(n)]
    adherent, images = {}, {}
    for name, step_list in plan.items():
        for k in step_list:
            ims = generate_many(pipe, prompts, seeds, cfg=cfg, steps=k, scheduler=name)
            adherent[(name, k)] = [bool(judge_against(im, p)["all"]) for im, p in zip(ims, prompts, strict=True)]
            images[(name, k)] = ims
    return FewStep(prompts, seeds, adherent, images)


def sampler_verdicts(study: SamplerStudy, few: FewStep | None = None, sampler: str = "dpm++2m") -> list[Any]:
    """Lesson 9's claims as Verdicts: paired bootstraps over the study's images (same prompt and seed), and Wilson /
    paired comparisons of adherence for the few-step samplers."""
    from .. import verdicts as vd

    unit = "images (same prompts and seeds)"
    out = []
    c1, c2, c3 = study.changes(sampler, 10, 20), study.changes(sampler, 20, 40), study.changes(sampler, 40, 80)
    out.append(vd.compare(f"diminishing returns: {sampler} 10 -> 20 steps changes the image more than 20 -> 40",
                          c1, c2, labels=("10->20", "20->40"), digits=4, unit=unit, note="RMSE between the images"))
    out.append(vd.from_interval(f"20 -> 40 steps is a visible gain ({sampler})", vd.bootstrap_mean(c2), f"{len(c2)} "
                                + unit, "RMSE 20->40", threshold=VISIBLE, digits=4,
                                note=f"visible = RMSE above {VISIBLE} (about an edge moved by a pixel)"))
    out.append(vd.from_interval(f"40 -> 80 steps is not a visible gain ({sampler})", vd.bootstrap_mean(c3),
                                f"{len(c3)} " + unit, "RMSE 40->80", threshold=VISIBLE, claim_above=False, digits=4))
    out.append(vd.compare("Heun wins per U-Net evaluation (heun 10 steps vs euler 20 steps, ~20 evaluations each)",
                          study.distances("euler", 20), study.distances("heun", 10),
                          labels=("euler 20", "heun 10"), digits=3, unit=unit,
                          note="distance to the reference; positive = Heun closer"))
    det = [s for s in ("euler", "ddim", "dpm++2m") if any(r.sampler == s for r in study.runs)]
    for n in (5, 10):
        rival = min((s for s in det if s != sampler), key=lambda s: study.run(s, n).distance)
        out.append(vd.compare(f"the popular default {sampler} is the most accurate deterministic sampler at {n} steps "
                              f"(vs the best other, {rival})", study.distances(rival, n), study.distances(sampler, n),
                              labels=(rival, sampler), digits=3, unit=unit,
                              note="distance to the reference; positive = " + sampler + " closer"))
    if few is not None:
        for lk, dk in (((("lcm", 4)), ("dpm++2m", 5)), (("lcm", 8), ("dpm++2m", 10))):
            if lk in few.adherent and dk in few.adherent:
                out.append(vd.compare(f"LCM sampling needs an LCM-distilled model: on ours, LCM {lk[1]} steps is "
                                      f"judged right less often than DPM++ 2M {dk[1]} steps", few.adherent[dk],
                                      few.adherent[lk], labels=(f"dpm++2m {dk[1]}", f"lcm {lk[1]}"), percent=True,
                                      unit=f"prompts (paired, {len(few.prompts)} unseen)",
                                      note="adherence, not distance: LCM re-noises at every step"))
        best = max(few.adherent, key=lambda k: few.rate(*k))
        if ("dpm++2m", 25) in few.adherent and ("lcm", 4) in few.adherent:
            out.append(vd.compare("LCM at 4 steps falls short of an ordinary 25-step run",
                                  few.adherent[("dpm++2m", 25)], few.adherent[("lcm", 4)],
                                  labels=("dpm++2m 25", "lcm 4"), percent=True,
                                  unit=f"prompts (paired, {len(few.prompts)} unseen)",
                                  note=f"best of the few-step table: {best[0]} {best[1]} steps"))
    return out
