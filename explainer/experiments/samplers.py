"""Lesson 9, samplers and steps: quality against steps and against U-Net evaluations for Euler, DPM++ 2M, DDIM, Heun
and LCM, measured as the distance to a long-run reference image (the same prompt and seed) and as judged prompt
adherence; and the denoising paths of several samplers in latent space.

`run_study` is the one study for any model: it takes the model's judge as a function (images -> whole prompt right
per image). `sampler_study` runs it on the shapes model with the shapes judge; `scenes_samplers.study` on the scenes
model with the scenes judge. `sampler_verdicts` judges the lesson's claims on either, resampling prompts."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import generation
from ..judge import judge_against
from .guidance import generate_many

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


def pixels(a: Any) -> np.ndarray:
    """An image (PIL, or uint8 (h, w, 3)) as floats in 0..1."""
    return np.asarray(a.convert("RGB") if hasattr(a, "convert") else a, dtype=np.float64) / 255.0


def rmse(a: Any, b: Any) -> float:
    """Root-mean-square pixel difference of two images, in 0..1 units."""
    return float(np.sqrt(((pixels(a) - pixels(b)) ** 2).mean()))


@dataclass
class Run:
    sampler: str
    steps: int
    unet_evals: int  # U-Net calls per image (the sampler's schedule length; each call holds cond and uncond)
    distance: float  # mean RMSE to the reference image (0..1 pixel units)
    adherence: float  # judged share of images that follow the whole prompt
    seconds: float
    images: list[Any] = field(repr=False)
    right: list[bool] = field(default_factory=list, repr=False)  # per image: the judge reads the whole prompt right


@dataclass
class SamplerStudy:
    prompts: list[str]
    seeds: list[int]
    reference: tuple[str, int]
    reference_adherence: float
    runs: list[Run]
    reference_images: list[Any] = field(repr=False)
    model: str = "shapes-sd"
    cfg: float = 7.5

    def run(self, sampler: str, steps: int) -> Run:
        return next(r for r in self.runs if r.sampler == sampler and r.steps == steps)

    def has(self, sampler: str, steps: int) -> bool:
        return any(r.sampler == sampler and r.steps == steps for r in self.runs)

    def distances(self, sampler: str, steps: int) -> list[float]:
        """Per image, the RMSE to its reference image."""
        return [rmse(a, b) for a, b in zip(self.run(sampler, steps).images, self.reference_images, strict=True)]

    def changes(self, sampler: str, a: int, b: int) -> list[float]:
        """Per image, the RMSE between the images made with `a` and with `b` steps."""
        ra, rb = self.run(sampler, a), self.run(sampler, b)
        return [rmse(x, y) for x, y in zip(ra.images, rb.images, strict=True)]

    def adherent(self, sampler: str, steps: int) -> list[bool]:
        """Per image, whether the judge reads the whole prompt right."""
        return list(self.run(sampler, steps).right)

    def change(self, sampler: str, a: int, b: int) -> float:
        """Mean RMSE between the images made with `a` and with `b` steps (same seeds): how much the picture moves."""
        return float(np.mean(self.changes(sampler, a, b)))

    @property
    def units(self) -> int:
        """Prompts: the unit that was drawn (one seed each)."""
        return len(set(self.prompts))

    def table(self) -> str:
        head = f"{'sampler':>8} {'steps':>5} {'U-Net evals':>11} {'dist. to ref':>12} {'adherence':>9} {'time s':>6}"
        lines = [f"{self.model}: {len(self.prompts)} images ({self.units} prompts, one seed each), CFG {self.cfg:g}; "
                 f"reference {self.reference[0]} {self.reference[1]} steps", head, "-" * len(head)]
        for r in self.runs:
            lines.append(f"{r.sampler:>8} {r.steps:>5} {r.unet_evals:>11} {r.distance:>12.3f} {r.adherence:>9.2f} "
                         f"{r.seconds:>6.1f}")
        return "\n".join(lines)


def run_study(pipe: Any, prompts: Sequence[str], seeds: Sequence[int], plan: dict[str, Sequence[int]],
              reference: tuple[str, int], cfg: float, right: Callable[[list[Any]], list[bool]],
              model: str) -> SamplerStudy:
    """Every (sampler, steps) in `plan` on the same prompt / seed pairs: distance to the reference images and the
    judge's reading (`right`: images -> per image, whole prompt right). A reference that is also in `plan` is drawn
    once (its run is then at distance 0: use it where only the changes between step counts matter)."""
    prompts, seeds = list(prompts), list(seeds)
    ref_images = generate_many(pipe, prompts, seeds, cfg=cfg, steps=reference[1], scheduler=reference[0])
    runs = []
    for name, step_list in plan.items():
        for n in step_list:
            t0 = time.perf_counter()
            same = (name, n) == tuple(reference)
            ims = ref_images if same else generate_many(pipe, prompts, seeds, cfg=cfg, steps=n, scheduler=name)
            dt = time.perf_counter() - t0
            evals = generation.expected_denoiser_calls(pipe, name, n)  # per image: the sampler's schedule length
            ok = [bool(x) for x in right(ims)]
            runs.append(Run(name, n, evals, float(np.mean([rmse(a, b) for a, b in zip(ims, ref_images, strict=True)])),
                            float(np.mean(ok)), dt, ims, ok))
    return SamplerStudy(prompts, seeds, tuple(reference), float(np.mean(right(ref_images))), runs, ref_images, model,
                        float(cfg))


def sampler_study(pipe: Any, prompts: Sequence[str] = PROMPTS, seeds: Sequence[int] = SEEDS,
                  plan: dict[str, Sequence[int]] | None = None, reference: tuple[str, int] = REFERENCE,
                  cfg: float = 7.5, model: str = "shapes-sd") -> SamplerStudy:
    """The study on the shapes model, read by the shapes judge."""
    prompts = list(prompts)

    def right(ims: list[Any]) -> list[bool]:
        return [bool(judge_against(im, p)["all"]) for im, p in zip(ims, prompts, strict=True)]

    return run_study(pipe, prompts, seeds, PLAN if plan is None else plan, reference, cfg, right, model)


def sampler_traces(pipe: Any, prompt: str = "a yellow square left of a purple triangle", seed: int = 0,
                   samplers: Sequence[str] = ("euler", "dpm++2m", "ddim", "heun"), steps: int = 20) -> list[Any]:
    """One trace per sampler, same prompt, seed and step count (attention off: only the paths are needed)."""
    from ..trace import trace

    return [trace(pipe, prompt, seed=seed, steps=steps, scheduler=s, attention=False) for s in samplers]


VISIBLE = 0.02  # RMSE (0..1) we call a visible change: ~5 grey levels on average, e.g. an edge moved by a pixel


UNIT = "prompts, one seed each (the same prompt and seed under both settings)"


def steps_verdicts(study: SamplerStudy, sampler: str = "dpm++2m") -> list[Any]:
    """Claim #5 on `study.model`: each doubling of the steps changes the picture less (10 -> 20 vs 20 -> 40); 20 -> 40
    is a visible change, 40 -> 80 is not (mean RMSE between the two pictures against `VISIBLE`). Prompts resampled."""
    from .. import verdicts as vd

    m, g, unit = study.model, study.prompts, UNIT
    c1, c2, c3 = study.changes(sampler, 10, 20), study.changes(sampler, 20, 40), study.changes(sampler, 40, 80)
    n = f"{len(c2)} {unit}"
    return [vd.compare(f"{m}: diminishing returns: {sampler} 10 -> 20 steps changes the picture more than 20 -> 40",
                       c1, c2, labels=("10->20", "20->40"), groups=g, digits=4, unit=unit,
                       note="RMSE between the two pictures"),
            vd.from_interval(f"{m}: 20 -> 40 steps is a visible gain ({sampler})", vd.bootstrap_mean(c2, groups=g), n,
                             "RMSE 20->40", threshold=VISIBLE, digits=4,
                             note=f"visible = RMSE above {VISIBLE} (about five grey levels per pixel on average)"),
            vd.from_interval(f"{m}: 40 -> 80 steps is not a visible gain ({sampler})", vd.bootstrap_mean(c3, groups=g),
                             n, "RMSE 40->80", threshold=VISIBLE, claim_above=False, digits=4)]


HEUN_PAIRS = ((10, 20), (20, 40))  # (Heun steps, Euler steps): about the same number of U-Net evaluations


def heun_verdicts(study: SamplerStudy) -> list[Any]:
    """Heun against Euler at about the same number of U-Net evaluations, by distance to the reference."""
    from .. import verdicts as vd

    out = []
    for h, e in HEUN_PAIRS:
        if not (study.has("heun", h) and study.has("euler", e)):
            continue
        rh, re_ = study.run("heun", h), study.run("euler", e)
        out.append(vd.compare(f"{study.model}: Heun wins per U-Net evaluation: heun {h} steps ({rh.unet_evals} U-Net "
                              f"calls) lands closer to the reference than euler {e} steps ({re_.unet_evals})",
                              study.distances("euler", e), study.distances("heun", h),
                              labels=(f"euler {e}", f"heun {h}"), groups=study.prompts, digits=3, unit=UNIT,
                              note="distance to the reference; positive = Heun closer"))
    return out


def default_verdicts(study: SamplerStudy, sampler: str = "dpm++2m", steps: Sequence[int] = (5, 10)) -> list[Any]:
    """The popular default against the best other deterministic sampler at few steps, by distance to the reference."""
    from .. import verdicts as vd

    det = [s for s in ("euler", "ddim", "dpm++2m") if any(r.sampler == s for r in study.runs)]
    out = []
    for n in steps:
        rival = min((s for s in det if s != sampler), key=lambda s: study.run(s, n).distance)
        out.append(vd.compare(f"{study.model}: the popular default {sampler} is the most accurate deterministic "
                              f"sampler at {n} steps (vs the best other, {rival})", study.distances(rival, n),
                              study.distances(sampler, n), labels=(rival, sampler), groups=study.prompts, digits=3,
                              unit=UNIT, note="distance to the reference; positive = " + sampler + " closer"))
    return out


LCM_PAIRS = ((4, 5), (8, 10))  # (LCM steps, DPM++ 2M steps): few steps each


def lcm_verdicts(study: SamplerStudy, ordinary: int = 20) -> list[Any]:
    """LCM sampling on a model that was not distilled for it, judged by adherence (LCM re-noises at every step, so
    the distance to the reference is the wrong yardstick): against DPM++ 2M at about as few steps, and against an
    ordinary run."""
    from .. import verdicts as vd

    m, unit, out = study.model, UNIT, []
    for lk, dk in LCM_PAIRS:
        if study.has("lcm", lk) and study.has("dpm++2m", dk):
            out.append(vd.compare(f"{m}: LCM sampling needs an LCM-distilled model: LCM {lk} steps is judged right "
                                  f"less often than DPM++ 2M {dk} steps", study.adherent("dpm++2m", dk),
                                  study.adherent("lcm", lk), labels=(f"dpm++2m {dk}", f"lcm {lk}"), percent=True,
                                  groups=study.prompts, unit=unit,
                                  note="adherence, not distance: LCM re-noises at every step"))
    if study.has("lcm", 4) and study.has("dpm++2m", ordinary):
        out.append(vd.compare(f"{m}: LCM at 4 steps falls short of an ordinary {ordinary}-step run",
                              study.adherent("dpm++2m", ordinary), study.adherent("lcm", 4),
                              labels=(f"dpm++2m {ordinary}", "lcm 4"), percent=True, groups=study.prompts, unit=unit))
    return out


def sampler_verdicts(study: SamplerStudy, sampler: str = "dpm++2m") -> list[Any]:
    """Lesson 9's claims on one model's study, every interval resampling prompts (the unit that was drawn)."""
    return (steps_verdicts(study, sampler) + heun_verdicts(study) + default_verdicts(study, sampler)
            + lcm_verdicts(study))
